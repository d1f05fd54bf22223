#!/usr/bin/env python3
"""A MongoDB wire-protocol server for the auth-mongo benchmark rows of scripts/bench: the
server of the system tests (Tests/system/mongoserver.py: SecantusDB from its virtualenv, a
temporary folder, a free loopback port, SCRAM users, --auth), with N users bench0..bench<N-1>
in the seed's mqtt_user collection (password = sha256("bench-pw"), is_superuser false) and an
index on username.

  authmongo.py start STATE N     starts it, writes STATE (JSON: port, pid, directory, login)
  authmongo.py stop STATE        stops it, removes its directory
"""

import hashlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "system"))

PASSWORD = "bench-pw"


def start(state, n):
    from mongoserver import DB_PASSWORD, DB_USER, Mongo
    m = Mongo().create()
    h = hashlib.sha256(PASSWORD.encode()).hexdigest()
    users = m.db.mqtt_user
    users.create_index("username", unique=True)
    for first in range(0, n, 5000):
        users.insert_many([{"username": f"bench{i}", "password": h, "is_superuser": False}
                           for i in range(first, min(n, first + 5000))])
    m.stop_client()
    Path(state).write_text(json.dumps({"port": m.port, "pid": m.proc.pid, "dir": str(m.dir),
                                       "login": DB_USER, "password": DB_PASSWORD}))


def stop(state):
    info = json.loads(Path(state).read_text())
    try:
        os.killpg(info["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    shutil.rmtree(info["dir"], ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "start":
        start(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
