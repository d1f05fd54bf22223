#!/usr/bin/env python3
"""redis-server for the auth-redis benchmark rows of scripts/bench: the server of the system
tests (Tests/system/redisserver.py: a temporary directory, a free loopback port, nothing
saved), with N users bench0..bench<N-1> in the seed's layout (mqtt_user:<name> password =
sha256("bench-pw"), as emqttd stored it).

  authredis.py start STATE N     starts it, writes STATE (JSON: port, pid, directory)
  authredis.py stop STATE        stops it, removes its directory
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
    from redisserver import Redis
    r = Redis().start()
    h = hashlib.sha256(PASSWORD.encode()).hexdigest()
    for first in range(0, n, 5000):
        r.pipeline([["HSET", f"mqtt_user:bench{i}", "password", h] for i in range(first, min(n, first + 5000))])
    Path(state).write_text(json.dumps({"port": r.port, "pid": r.proc.pid, "dir": str(r.dir)}))


def stop(state):
    info = json.loads(Path(state).read_text())
    try:
        os.kill(info["pid"], signal.SIGTERM)
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
