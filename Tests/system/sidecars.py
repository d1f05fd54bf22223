"""Helpers for tests with sidecars: a broker with a sidecar socket, and the Python reference
sidecar (Protocol/examples/sidecar.py) run as an external sidecar."""

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY_SIDECAR = ROOT / "Protocol" / "examples" / "sidecar.py"
GOLDEN = ROOT / "Protocol" / "golden"

USERS = {
    "users": {
        "alice": {"password": "secret"},
        "carol": {"password": "c4rol"},
        "dave": {"password": "d4ve"},
        "admin": {"password": "root", "superuser": True},
    },
    "acl": [
        {"allow": True, "username": "$all", "access": "pubsub", "topic": "a/#"},
        {"allow": False, "username": "$all", "access": "pubsub", "topic": "#"},
    ],
}


def short_dir():
    """A temp folder with a short path (Unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="swsc", dir="/tmp"))


def sidecar_config(sock, mqtt=None, extra=""):
    lines = ["[mqtt]"]
    for k, v in {"allow_anonymous": False, **(mqtt or {})}.items():
        lines.append(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}")
    lines += ["", "[sidecars]", f"socket = {json.dumps(str(sock))}", "health_interval = 1", "health_timeout = 2", ""]
    return "\n".join(lines) + extra


class PySidecar:
    """The Python reference sidecar as an external process."""

    def __init__(self, sock, workdir, name="py", users=None, order=100, args=()):
        self.sock, self.name, self.order, self.args = str(sock), name, order, list(args)
        self.workdir = Path(workdir)
        self.users_path = self.workdir / f"{name}-users.json"
        self.users_path.write_text(json.dumps(users or USERS))
        self.log_path = self.workdir / f"{name}-sidecar.log"
        self.proc = None

    def start(self, broker=None, wait=True):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(PY_SIDECAR), "--socket", self.sock, "--name", self.name,
             "--users", str(self.users_path), "--order", str(self.order), "--reconnect", *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait and broker is not None:
            wait_registered(broker, self.name)
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def authn_count(self, username):
        return sum(1 for line in self.log().splitlines() if f"authn {username} (" in line)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def registrations(broker, name):
    return sum(1 for line in broker.log_text().splitlines()
               if "sidecar registered" in line and f"sidecar.name={name}" in line)


def wait_registered(broker, name, count=1, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registrations(broker, name) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"sidecar {name} did not register ({count}) within {timeout}s:\n{broker.tail()}")


# -- raw IPC ------------------------------------------------------------------------------

def frame(kind, rid, body=b""):
    return struct.pack(">IBI", 5 + len(body), kind, rid) + body


def ipc_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def hello(name="raw", max_frame=65536):
    return frame(0x01, 1, struct.pack(">HH", 1, 1) + ipc_str(name) + ipc_str("0") + struct.pack(">I", max_frame))


def golden(name):
    text = (GOLDEN / name).read_text()
    hexd = "".join(line.split("#")[0] for line in text.splitlines() if not line.strip().startswith("#"))
    return bytes.fromhex("".join(hexd.split()))


def unix_connect(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def read_frame(s):
    head = recv_exact(s, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    rest = recv_exact(s, n)
    if rest is None:
        return None
    return rest[0], struct.unpack(">I", rest[1:5])[0], rest[5:]


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (ConnectionResetError, socket.timeout):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def wait_closed(s, timeout=5.0):
    """True when the peer closes the socket within timeout (frames before that are ignored)."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        if not d:
            return True
    return False


def register(hooks=(), sync_publish_budget=None, rid=2):
    """REGISTER with hook capabilities (and message.publish sync when a budget is given)."""
    caps = b""
    n = 0
    for h in hooks:
        caps += b"\x03" + ipc_str(h) + b"\x00" + struct.pack(">I", 0)
        n += 1
    if sync_publish_budget is not None:
        caps += b"\x03" + ipc_str("message.publish") + b"\x01" + struct.pack(">I", sync_publish_budget)
        n += 1
    return frame(0x03, rid, struct.pack(">H", n) + caps)


class Reader:
    """Parses IPC body fields."""

    def __init__(self, body):
        self.b, self.i = body, 0

    def take(self, n):
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def str(self):
        return self.take(self.u16()).decode()

    def bytes(self):
        return self.take(self.u32())

    def opt(self, f):
        return f() if self.u8() else None

    def client(self):
        return {"client_id": self.str(), "username": self.opt(self.str), "peer": self.str(), "port": self.u16(),
                "level": self.u8(), "listener": self.str(), "cn": self.opt(self.str), "dn": self.opt(self.str)}

    def events(self):
        out = []
        for _ in range(self.u16()):
            hook, ts = self.str(), self.u64()
            fields = {}
            for _ in range(self.u16()):
                k = self.str()
                fields[k] = self.bytes()
            out.append((hook, fields))
        return out


def managed_plugin(plugins_dir, name, users_path, restart=None, enabled=True, extra_args=()):
    """Declares the Python reference sidecar as a managed plugin <plugins_dir>/<name>.toml."""
    plugins_dir = Path(plugins_dir)
    plugins_dir.mkdir(parents=True, exist_ok=True)
    r = {"initial_backoff": 0.1, "max_backoff": 0.5, "max_restarts": 50, "period": 60, "shutdown_grace": 2}
    r.update(restart or {})
    args = [str(PY_SIDECAR), "--users", str(users_path), "--reconnect", *extra_args]
    text = "\n".join([
        "[sidecar]",
        f"command = {json.dumps(sys.executable)}",
        f"args = {json.dumps(args)}",
        f"enabled = {'true' if enabled else 'false'}",
        'env = { PYTHONUNBUFFERED = "1" }',
        "[sidecar.restart]",
        *[f"{k} = {v}" for k, v in r.items()],
        "",
    ])
    (plugins_dir / f"{name}.toml").write_text(text)


def users_file(d, users=None):
    p = Path(d) / "users.json"
    p.write_text(json.dumps(users or USERS))
    return p


def sidecar_pids(name_fragment):
    """Pids of running processes whose command line contains name_fragment."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if name_fragment in cmd:
            out.append(int(p.name))
    return out


# -- managed plugin sidecars (auth_http, auth_sql, auth_redis, ...) -------------------------

def managed_pid(broker, name):
    """The pid of the last start of managed sidecar `name`, from the broker's log."""
    line = [l for l in broker.log_text().splitlines() if "sidecar started" in l and f"sidecar.name={name}" in l][-1]
    return int(line.split("sidecar.pid=")[1].split()[0])


def raw_login(broker, version, user, password, client_id=None, expect_rc=0):
    """A RawClient that sent CONNECT with user/password (str or bytes); returns (client, CONNACK)."""
    from mqttraw import RawClient
    c = RawClient(broker, version=version)
    cid = client_id if client_id is not None else f"raw-{os.urandom(4).hex()}"
    pw = password.encode() if isinstance(password, str) else password
    return c, c.connect(cid, username=user, password=pw, expect_rc=expect_rc)


def shipped_plugin_broker(broker_factory, name, replacements):
    """A broker with etc/plugins/<name>.toml as shipped (disabled), with `replacements`
    (old text -> new text, e.g. the binary and the server's address) applied; returns the
    broker and its ctl socket."""
    text = (ROOT / "etc" / "plugins" / f"{name}.toml").read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in etc/plugins/{name}.toml"
        text = text.replace(old, new)
    assert "enabled = false" in text
    d = short_dir()
    (d / "plugins").mkdir()
    (d / "plugins" / f"{name}.toml").write_text(text)
    ctl = d / "ctl.sock"
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{d / "plugins"}"\n'
                       + f'\n[ctl]\nsocket = {json.dumps(str(ctl))}\n')
    return b, ctl


class ConnectLoad:
    """`clients` threads, each CONNECTing (3.1.1, user/password) and closing in a loop until
    stop(); `results` counts ok / refused / other (no CONNACK). With clients > 1 they start
    together, so that many CONNECTs are in flight at once."""

    def __init__(self, broker, clients, user, password, prefix="load"):
        import threading
        self.results = {"ok": 0, "refused": 0, "other": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start = threading.Barrier(clients)
        pw = password.encode() if isinstance(password, str) else password

        def run(n):
            from mqttraw import RawClient
            try:
                self._start.wait(30)
            except threading.BrokenBarrierError:
                pass
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    c = RawClient(broker, version=4, timeout=10)
                    ack = c.connect(f"{prefix}-{n}-{i}", username=user, password=pw, expect_rc=None)
                    c.close()
                    key = "ok" if ack.rc == 0 else "refused"
                except Exception:
                    key = "other"
                with self._lock:
                    self.results[key] += 1

        self._threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(clients)]
        for t in self._threads:
            t.start()

    @property
    def ok(self):
        return self.results["ok"]

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(15)


def kill9_under_load(broker, name, user, password, clients=200):
    """SIGKILLs managed sidecar `name` while `clients` threads CONNECT as user/password in a
    loop (ConnectLoad): the supervisor must restart it (a second registration, a new pid, the
    exit logged), CONNECTs must be served again, and the broker must stay up."""
    import signal
    from clients import wait_for
    first = managed_pid(broker, name)
    load = ConnectLoad(broker, clients, user, password)
    try:
        wait_for(lambda: load.ok >= clients, timeout=60, msg=f"{clients} concurrent CONNECTs served")
        os.kill(first, signal.SIGKILL)
        wait_registered(broker, name, count=2, timeout=20)
        ok_at_restart = load.ok
        wait_for(lambda: load.ok >= ok_at_restart + clients, timeout=60, msg="served again after the restart")
    finally:
        load.stop()
    assert managed_pid(broker, name) != first
    assert "sidecar exited unexpectedly" in broker.log_text()
    broker.assert_alive()
