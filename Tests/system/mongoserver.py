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


class PortTaken(Exception):
    """The free port was taken by another process before the server bound it."""


class Mongo:
    """One secantusd-py process on 127.0.0.1:<free port>, data in its own temporary folder,
    users `root` (admin) and `mqtt` (readWrite on `mqtt`), then running with --auth."""

    def __init__(self, tls=False, standalone=True):
        self.dir = Path(tempfile.mkdtemp(prefix="swmongo", dir="/tmp"))
        # standalone=False: the server says it is the primary of a one-member replica set
        # "secantus" (hosts: 127.0.0.1:<port>), so drivers given several seeds find it.
        self.standalone = standalone
        # With tls: a CA, a server certificate for 127.0.0.1 signed by it, and a client
        # certificate with its key in one PEM file (libmongoc's tlsCertificateKeyFile); the
        # server then accepts TLS only and requires the client certificate.
        self.tls = make_certificates(self.dir) if tls else None
        self.data = self.dir / "data"
        self.log = self.dir / "secantusd.log"
        self.port = free_port()
        self.proc = None
        self._client = None

    def create(self):
        """Starts without auth, creates the users, restarts with --auth."""
        import pymongo
        self._start_on_a_free_port(auth=False)
        c = pymongo.MongoClient(f"mongodb://127.0.0.1:{self.port}/", serverSelectionTimeoutMS=10000,
                                directConnection=True, **self._tls_args())
        c.admin.command("createUser", ADMIN_USER, pwd=ADMIN_PASSWORD, roles=["root"], mechanisms=MECHANISMS)
        c[DATABASE].command("createUser", DB_USER, pwd=DB_PASSWORD,
                            roles=[{"role": "readWrite", "db": DATABASE}], mechanisms=MECHANISMS)
        c.close()
        self.stop()
        # The port was free while the server restarted: if another process took it meanwhile,
        # the server starts on a new one (nothing has connected to it yet).
        return self._start_on_a_free_port(auth=True)

    def _start_on_a_free_port(self, auth, attempts=4):
        for attempt in range(attempts):
            try:
                return self.start(auth=auth)
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()

    def start(self, auth=True):
        args = [str(install()), "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", str(self.data),
                "--log-level", "WARNING", "--cache-size", "64M"]
        if self.standalone:
            args.append("--standalone")
        if auth:
            args.append("--auth")
        if self.tls:
            args += ["--tls-cert-file", self.tls["server_cert"], "--tls-key-file", self.tls["server_key"],
                     "--tls-ca-file", self.tls["ca"], "--tls-require-client-cert"]
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 60
        # Answering is not enough: the listener on the port must be this process's (a port
        # from free_port() can be taken by another process before the server binds it, and
        # then that process would answer in its place).
        while not (self._answers() and self._owns_port()):
            if self.proc.poll() is not None:
                if "Address already in use" in self.log_tail():
                    raise PortTaken(f"127.0.0.1:{self.port} was taken before secantusd-py bound it")
                raise AssertionError(f"secantusd-py did not start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
                raise AssertionError(f"secantusd-py did not start listening on 127.0.0.1:{self.port}:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def _owns_port(self):
        """True when the LISTEN socket on 127.0.0.1:port belongs to this server's process."""
        inodes = set()
        with open("/proc/net/tcp") as f:
            for line in f.read().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[1].endswith(f":{self.port:04X}"):
                    inodes.add(f"socket:[{cols[9]}]")
        if not inodes:
            return False
        fds = Path(f"/proc/{self.proc.pid}/fd")
        owned = set()
        try:
            for fd in fds.iterdir():
                try:
                    owned.add(os.readlink(fd))
                except OSError:
                    pass
        except OSError:
            return False
        return inodes <= owned

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
        # Returns once every thread is stopped, so what the test does next meets a server
        # that cannot answer.
        deadline = time.monotonic() + 10
        while not self._all_threads_stopped():
            if time.monotonic() > deadline:
                raise AssertionError(f"secantusd-py (pid {self.proc.pid}) did not stop on SIGSTOP")
            time.sleep(0.01)

    def _all_threads_stopped(self):
        tasks = Path(f"/proc/{self.proc.pid}/task")
        try:
            # /proc/PID/task/TID/stat: "TID (comm) STATE ..."; comm may hold spaces or ')'.
            states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        except OSError:
            return False
        return bool(states) and all(s in ("T", "t") for s in states)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def destroy(self):
        if self.alive():
            self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop_client(self):
        """Closes the test's own connection (the server keeps running)."""
        self._drop_client()

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
                f"mongodb://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{self.port}/?authSource=admin&directConnection=true",
                serverSelectionTimeoutMS=20000, **self._tls_args())
        return self._client[DATABASE]

    def _tls_args(self):
        if not self.tls:
            return {}
        return {"tls": True, "tlsCAFile": self.tls["ca"], "tlsCertificateKeyFile": self.tls["client_pem"]}

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def make_certificates(d):
    """A CA, a server certificate (127.0.0.1) and a client certificate with its key in one PEM,
    made with openssl in folder `d`; also a second CA that signed none of them."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    f = {k: str(d / f"{k}.pem") for k in ["ca", "ca_key", "other_ca", "other_ca_key", "server_cert", "server_key",
                                          "server_csr", "client_cert", "client_key", "client_csr", "client_pem"]}
    ext = d / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for ca, key, cn in [("ca", "ca_key", "swiftlet test CA"), ("other_ca", "other_ca_key", "another CA")]:
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", f[key], "-out", f[ca], "-subj", f"/CN={cn}")
    for who, cn in [("server", "127.0.0.1"), ("client", "swiftlet-auth-mongo")]:
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f[f"{who}_key"], "-out", f[f"{who}_csr"], "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f[f"{who}_csr"], "-CA", f["ca"], "-CAkey", f["ca_key"], "-CAcreateserial",
            "-days", "2", "-out", f[f"{who}_cert"], *(["-extfile", str(ext)] if who == "server" else []))
    Path(f["client_pem"]).write_text(Path(f["client_cert"]).read_text() + Path(f["client_key"]).read_text())
    return f


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        print(install())
    else:
        sys.exit(__doc__)
