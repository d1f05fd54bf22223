"""redis-server for the tests and benchmarks of swiftlet-auth-redis: a process on a free
127.0.0.1 port and a Unix socket in a temporary folder, nothing saved to disk (no system
service), and a few lines of RESP to talk to it."""

import shutil
import socket
import subprocess
import time

from brokers import free_port
from sidecars import short_dir

REDIS_SERVER = shutil.which("redis-server")


class Redis:
    """One redis-server process: 127.0.0.1:<free port> and a Unix socket, in its own folder,
    nothing saved to disk."""

    def __init__(self, password=None):
        self.dir = short_dir()
        self.port = free_port()
        self.password = password
        self.socket = str(self.dir / "redis.sock")
        self.proc = None

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "no", "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            # Ours only: a server that answers on the port but is another process (the port
            # taken between free_port and bind, ours exiting on the bind error) is not started.
            try:
                if self.proc.poll() is None and self.server_pid() == self.proc.pid:
                    return self
            except (OSError, RuntimeError):  # not listening yet, or an error reply while it starts
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"redis-server did not start: {(self.dir / 'redis.log').read_text(errors='replace')}")
            time.sleep(0.05)

    def server_pid(self):
        """The process id the server on our port reports (INFO server)."""
        info = self.cmd("INFO", "server")
        if isinstance(info, bytes):
            info = info.decode(errors="replace")
        for line in str(info).splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pipeline(self, commands):
        """Many commands on one connection, replies read after all are sent."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            f = s.makefile("rb")
            if self.password:
                commands = [["AUTH", self.password], *commands]
            s.sendall(b"".join(encode(c) for c in commands))
            return [read_reply(f) for _ in commands]

    def cmd(self, *args):
        """One command, each argument sent as a bulk string (str or bytes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(encode(["AUTH", self.password]))
                read_reply(f)
            s.sendall(encode(args))
            return read_reply(f)


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise OSError(f"bad reply {line!r}")
