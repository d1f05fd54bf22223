#!/usr/bin/env python3
"""MariaDB and PostgreSQL for the auth-sql benchmark rows of scripts/bench: the servers of the
system tests (Tests/system/dbservers.py: temporary directories, free loopback ports, the
seed's tables, plus on PostgreSQL the index on username its MySQL schema has), with N users bench0..bench<N-1>, password "bench-pw", sha256 as emqttd
stored it. Root only.

  authdb.py start STATE N     starts both, writes STATE (JSON: ports, pids, directories)
  authdb.py stop STATE        stops both, removes their directories
"""

import hashlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "system"))

PASSWORD = "bench-pw"


def start(state, n):
    from dbservers import MariaDB, PostgreSQL
    h = hashlib.sha256(PASSWORD.encode()).hexdigest()
    out = {}
    for kind, cls in (("mysql", MariaDB), ("pgsql", PostgreSQL)):
        db = cls()
        if kind == "pgsql":
            # The seed's PostgreSQL mqtt_user has no index on username (its MySQL one has a
            # unique key): every lookup would scan the table. docs/plugins/auth-sql.md says to add it.
            db.sql("CREATE UNIQUE INDEX mqtt_username ON mqtt_user (username);")
        for first in range(0, n, 5000):
            values = ",".join(f"('bench{i}', '{h}')" for i in range(first, min(n, first + 5000)))
            db.sql(f"INSERT INTO mqtt_user (username, password) VALUES {values};")
        out[kind] = {"port": db.port, "pid": db.proc.pid, "dir": str(db.dir), "socket": str(getattr(db, "socket", db.dir))}
    Path(state).write_text(json.dumps(out))


def stop(state):
    info = json.loads(Path(state).read_text())
    for kind, s in info.items():
        try:
            os.kill(s["pid"], signal.SIGINT if kind == "pgsql" else signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(300):
            try:
                os.kill(s["pid"], 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        shutil.rmtree(s["dir"], ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "start":
        start(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
