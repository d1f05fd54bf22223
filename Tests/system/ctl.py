"""Running swiftlet-ctl from the system tests.

Environment:
  SWIFTLET_CTL   path of the ctl binary (default: swiftlet-ctl next to SWIFTLET_BIN,
                 else <repo>/.build/debug/swiftlet-ctl)
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from brokers import swiftlet_path


def ctl_path():
    if os.environ.get("SWIFTLET_CTL"):
        return Path(os.environ["SWIFTLET_CTL"])
    return swiftlet_path().parent / "swiftlet-ctl"


class Result:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<ctl rc={self.rc} out={self.out[:400]!r} err={self.err[:400]!r}>"


def run_ctl(socket_path, *args, json_out=False, env=None, timeout=60):
    binary = ctl_path()
    if not binary.exists():
        pytest.fail(f"swiftlet-ctl binary not found at {binary} (set SWIFTLET_CTL)")
    cmd = [str(binary)]
    if socket_path is not None:
        cmd += ["--socket", str(socket_path)]
    if json_out:
        cmd.append("--json")
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return Result(p)


def ctl_ok(socket_path, *args, json_out=False):
    r = run_ctl(socket_path, *args, json_out=json_out)
    assert r.rc == 0, r
    return r.json() if json_out else r.out


def ctl_config(sock, extra=""):
    return f'\n[ctl]\nsocket = {json.dumps(str(sock))}\n' + extra
