"""Helpers for the swiftlet-gateways system tests: the gateway process (external, next to a
test broker), a raw STOMP socket client for the edge cases, and a stomp.py listener."""

import queue
import socket
import subprocess
import time
from pathlib import Path

from brokers import free_port, swiftlet_path, toml_value
from ctl import ctl_config
from sidecars import ROOT, sidecar_config, short_dir, wait_registered


def gateways_binary():
    return swiftlet_path().parent / "swiftlet-gateways"


def shipped_config(replacements):
    """etc/plugins/gateways.toml as shipped, with `replacements` (old -> new) applied."""
    text = (ROOT / "etc" / "plugins" / "gateways.toml").read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in etc/plugins/gateways.toml"
        text = text.replace(old, new)
    return text


def auth_broker(factory, passwords, acl, plugins_dir=None, d=None):
    """A broker with a sidecar socket, a ctl socket, built-in users `passwords` (name ->
    password) and ACL text `acl`; returns (broker, its folder)."""
    from test_builtin_auth import pbkdf2_sha512
    d = d or short_dir()
    users = d / "users.toml"
    users.write_text("\n".join(f"[users.{n}]\npassword = {toml_value(pbkdf2_sha512(p))}\n" for n, p in passwords.items()))
    (d / "acl.toml").write_text(acl)
    managed = f"plugins_dir = {toml_value(str(plugins_dir))}\n" if plugins_dir else ""
    b = factory(extra=sidecar_config(d / "sc.sock") + managed + ctl_config(d / "ctl.sock")
                + f"\n[auth]\nusers_file = {toml_value(str(users))}\nacl_file = {toml_value(str(d / 'acl.toml'))}\n")
    return b, d


class GatewayProcess:
    """swiftlet-gateways run as an external sidecar: `--socket PATH --config FILE`."""

    def __init__(self, workdir, sock, config_text, name="gateways"):
        self.workdir = Path(workdir)
        self.sock = str(sock)
        self.name = name
        self.config = self.workdir / f"{name}.toml"
        self.config.write_text(config_text)
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None

    def start(self, broker=None, count=1):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(gateways_binary()), "--socket", self.sock, "--config", str(self.config),
                                      "--name", self.name],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if broker is not None:
            wait_registered(broker, self.name, count=count)
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Frame:
    def __init__(self, command, headers, body):
        self.command, self.headers, self.body = command, headers, body

    def __repr__(self):
        return f"Frame({self.command}, {self.headers}, {self.body[:60]!r})"


class RawStomp:
    """A STOMP client on a plain socket: exact bytes out, frames (and heart-beats) in."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.heartbeats = 0
        self.eof = False

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def frame(self, command, headers=(), body=b""):
        text = command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers) + "\n"
        self.send(text.encode() + (body if isinstance(body, bytes) else body.encode()) + b"\x00")

    def connect(self, version="1.2", login=None, passcode=None, heart_beat=None):
        h = [("accept-version", version), ("host", "swiftlet")]
        if login is not None:
            h += [("login", login), ("passcode", passcode)]
        if heart_beat:
            h.append(("heart-beat", heart_beat))
        self.frame("CONNECT", h)
        return self.read()

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame in time")
        self.s.settimeout(remaining)
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            raise TimeoutError("no frame in time") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += chunk

    def read(self, timeout=5.0):
        """The next frame; heart-beats in between are counted."""
        deadline = time.monotonic() + timeout
        while True:
            while self.buf[:1] in (b"\n", b"\r"):
                if self.buf[:2] == b"\r\n":
                    del self.buf[:2]
                else:
                    del self.buf[:1]
                self.heartbeats += 1
            end = self.buf.find(b"\n\n")
            if end >= 0:
                head = self.buf[:end].decode()
                lines = head.split("\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.setdefault(k, v)
                start = end + 2
                if "content-length" in headers:
                    n = int(headers["content-length"])
                    if len(self.buf) >= start + n + 1:
                        body = bytes(self.buf[start:start + n])
                        assert self.buf[start + n] == 0
                        del self.buf[:start + n + 1]
                        return Frame(lines[0], headers, body)
                else:
                    nul = self.buf.find(b"\x00", start)
                    if nul >= 0:
                        body = bytes(self.buf[start:nul])
                        del self.buf[:nul + 1]
                        return Frame(lines[0], headers, body)
            self._fill(deadline)

    def wait_heartbeat(self, timeout=5.0):
        """Waits for an end of line from the gateway (nothing else may come first)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf[:1] == b"\n":
                del self.buf[:1]
                self.heartbeats += 1
                return
            assert not self.buf, f"expected a heart-beat, got {bytes(self.buf[:40])!r}"
            self._fill(deadline)

    def closed(self, timeout=5.0):
        """True when the gateway closes the connection within timeout (frames before are skipped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.buf.clear()
                self._fill(deadline)
        except EOFError:
            return True
        except TimeoutError:
            return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Collector:
    """A stomp.py listener: MESSAGE, RECEIPT and ERROR frames in queues."""

    def __init__(self):
        import stomp
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.disconnected = False
        collector = self

        class L(stomp.ConnectionListener):
            def on_message(self, frame):
                collector.messages.put(frame)

            def on_receipt(self, frame):
                collector.receipts.put(frame.headers.get("receipt-id"))

            def on_error(self, frame):
                collector.errors.put(frame)

            def on_disconnected(self):
                collector.disconnected = True
        self.listener = L()

    def get(self, timeout=5.0):
        return self.messages.get(timeout=timeout)

    def none(self, wait=0.5):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message {m.headers} {m.body!r}")

    def receipt(self, timeout=5.0):
        return self.receipts.get(timeout=timeout)

    def error(self, timeout=5.0):
        return self.errors.get(timeout=timeout)


def stomp_client(port, version="1.2", login=None, passcode=None, heartbeats=(0, 0), headers=None):
    """A connected stomp.py connection at `version` and its Collector."""
    import stomp
    cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
    kw = {} if version == "1.0" else {"heartbeats": heartbeats}
    c = cls([("127.0.0.1", port)], **kw)
    col = Collector()
    c.set_listener("", col.listener)
    c.connect(login, passcode, wait=True, headers=headers)
    return c, col


__all__ = ["auth_broker", "GatewayProcess", "RawStomp", "Collector", "stomp_client", "wait_port", "free_port", "shipped_config",
           "gateways_binary"]
