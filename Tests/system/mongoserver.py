"""A MongoDB wire-protocol server with SCRAM authentication for the tests and benchmarks of
swiftlet-auth-mongo. MongoDB is not in Debian: SecantusDB (PyPI, a MongoDB-compatible server
on WiredTiger) runs it, from a virtualenv of its own under a cache folder (created on first
use, or by scripts/test), never as a system service.

Each server: a temporary folder, a free 127.0.0.1 port, `--standalone`. SecantusDB cannot
create the first user under `--auth`, so a new server starts without it, gets its users
(`createUser` with both SCRAM mechanisms), and is restarted with `--auth`; its data stays in
its folder across stop / start.

  python3 Tests/system/mongoserver.py --install     creates the virtualenv (scripts/test)
"""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokers import free_port  # noqa: E402

SECANTUSDB = "secantusdb==0.7.0b3"
CACHE = Path(os.environ.get("SWIFTLET_TEST_CACHE", Path.home() / ".cache" / "swiftlet-test"))
VENV = CACHE / "secantusdb-venv"
SECANTUSD = VENV / "bin" / "secantusd-py"

ADMIN_USER, ADMIN_PASSWORD = "root", "rootpw"
DB_USER, DB_PASSWORD = "mqtt", "mqtt pw:@/?"   # characters a connection string would need escaped
DATABASE = "mqtt"
MECHANISMS = ["SCRAM-SHA-1", "SCRAM-SHA-256"]


def install():
    """The SecantusDB virtualenv, made once (several processes may ask at the same time)."""
    if SECANTUSD.exists():
        return SECANTUSD
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "secantusdb-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not SECANTUSD.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", SECANTUSDB],
                           check=True)
    return SECANTUSD


def available():
    """Why the tests cannot run a server, or None."""
    try:
        import pymongo  # noqa: F401
    except ImportError:
        return "pymongo missing (pip install -r Tests/system/requirements.txt)"
    try:
        install()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"SecantusDB could not be installed into {VENV}: {e}"
    return None


class Mongo:
    """One secantusd-py process on 127.0.0.1:<free port>, data in its own temporary folder,
    users `root` (admin) and `mqtt` (readWrite on `mqtt`), then running with --auth."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="swmongo", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "secantusd.log"
        self.port = free_port()
        self.proc = None
        self._client = None

    def create(self):
        """Starts without auth, creates the users, restarts with --auth."""
        import pymongo
        self.start(auth=False)
        c = pymongo.MongoClient(f"mongodb://127.0.0.1:{self.port}/", serverSelectionTimeoutMS=10000)
        c.admin.command("createUser", ADMIN_USER, pwd=ADMIN_PASSWORD, roles=["root"], mechanisms=MECHANISMS)
        c[DATABASE].command("createUser", DB_USER, pwd=DB_PASSWORD,
                            roles=[{"role": "readWrite", "db": DATABASE}], mechanisms=MECHANISMS)
        c.close()
        self.stop()
        self.start(auth=True)
        return self

    def start(self, auth=True):
        args = [str(install()), "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", str(self.data),
                "--standalone", "--log-level", "WARNING", "--cache-size", "64M"]
        if auth:
            args.append("--auth")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"secantusd-py did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def _answers(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: the server is gone at once (its data stays)."""
        self._drop_client()
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self):
        self._drop_client()
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def pause(self):
        """SIGSTOP: connections stay open, nothing is answered (a server that hangs)."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def destroy(self):
        if self.alive():
            self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _drop_client(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def db(self):
        """The `mqtt` database, as root (the test's own writes)."""
        import pymongo
        if self._client is None:
            self._client = pymongo.MongoClient(
                f"mongodb://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{self.port}/?authSource=admin",
                serverSelectionTimeoutMS=20000)
        return self._client[DATABASE]

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        print(install())
    else:
        sys.exit(__doc__)
