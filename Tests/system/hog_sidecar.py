"""The Python reference sidecar (Protocol/examples/sidecar.py) with two more `pydemo`
subcommands for the isolation tests: `pydemo limits` answers what the process runs as and
within (uid, gid, groups, rlimits, environment names) as JSON; `pydemo hog MIB` allocates and
touches that many MiB, and aborts (as a native sidecar whose allocation fails would) when the
allocation is refused."""

import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sidecar  # noqa: E402  (copied next to this file by the test)

HELD = []
original = sidecar.Policy.ctl


def ctl(self, req):
    if req.command == "pydemo" and req.args == ("limits",):
        def lim(r):
            soft, _ = resource.getrlimit(r)
            return -1 if soft == resource.RLIM_INFINITY else soft
        body = {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
                "memory_max": lim(resource.RLIMIT_AS), "open_files": lim(resource.RLIMIT_NOFILE),
                "cpu_seconds": lim(resource.RLIMIT_CPU), "env": sorted(os.environ),
                "fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}
        return sidecar.CtlReply(sidecar.CTL_OK, json.dumps(body), json.dumps(body))
    if req.command == "pydemo" and len(req.args) == 2 and req.args[0] == "hog":
        try:
            block = bytearray(int(req.args[1]) << 20)
            block[::4096] = b"x" * len(block[::4096])
        except MemoryError:
            os.abort()
        HELD.append(block)
        return sidecar.CtlReply(sidecar.CTL_OK, f"holding {sum(len(b) for b in HELD) >> 20} MiB", "")
    return original(self, req)


sidecar.Policy.ctl = ctl

if __name__ == "__main__":
    sys.exit(sidecar.main())
