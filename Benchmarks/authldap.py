#!/usr/bin/env python3
"""slapd for the auth-ldap benchmark rows of scripts/bench: the server of the system tests
(Tests/system/ldapserver.py: a temporary directory, a free loopback port, the tree loaded with
slapadd, slapd in the foreground as a child of this script's caller's process group), with N
users uid=bench0..bench<N-1>,ou=People,dc=example,dc=com, password "bench-pw" stored {SSHA}.

  authldap.py start STATE N     starts it, writes STATE (JSON: port, pid, directory)
  authldap.py stop STATE        stops it, removes its directory
"""

import json
import sys
from pathlib import Path

from authredis import stop  # the same state file: port, pid, directory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "system"))

PASSWORD = "bench-pw"


def start(state, n):
    from ldapserver import Slapd, user_ldif
    ldif = "".join(user_ldif(f"bench{i}", PASSWORD, uid_number=100000 + i) for i in range(n))
    s = Slapd(ldif=ldif).start()
    Path(state).write_text(json.dumps({"port": s.port, "pid": s.proc.pid, "dir": str(s.dir)}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "start":
        start(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
