"""A raw protocol-version-2 gateway sidecar for the system tests (Protocol/SPEC.md section 7):
a blocking Unix socket that says HELLO 1..2, registers gateway capabilities, answers the
broker's PINGs while it waits, and keeps each session's MQTT stream from GW_DATA frames."""

import socket
import struct
import time

import mqttraw as m
from sidecars import Reader, frame, ipc_str, unix_connect

HELLO, WELCOME, REGISTER, REGISTERED, PING, PONG, ERROR, GOODBYE = range(1, 9)
GW_OPEN, GW_OPENED, GW_DATA, GW_CLOSE = 0x50, 0x51, 0x52, 0x53


def gw_open_body(sid, protocol, peer, port, listener):
    return struct.pack(">I", sid) + ipc_str(protocol) + ipc_str(peer) + struct.pack(">H", port) + ipc_str(listener)


def gw_data_frame(sid, data):
    return frame(GW_DATA, 0, struct.pack(">II", sid, len(data)) + data)


def gw_close_frame(sid, reason=""):
    return frame(GW_CLOSE, 0, struct.pack(">I", sid) + ipc_str(reason))


def register_body(protocols=(), hooks=()):
    caps = b""
    for h in hooks:
        caps += b"\x03" + ipc_str(h) + b"\x00" + struct.pack(">I", 0)
    for p in protocols:
        caps += b"\x05" + ipc_str(p)
    return struct.pack(">H", len(hooks) + len(protocols)) + caps


class GatewayLink:
    """One sidecar connection. `welcome` is (version, max_frame); `registered` is the REGISTER
    answer as (kind, body)."""

    def __init__(self, sock_path, name="gw", protocols=("mqtt-test",), versions=(1, 2), max_frame=1 << 20,
                 register=True):
        self.s = unix_connect(sock_path)
        self.buf = bytearray()
        self.replies = {}     # request id -> (kind, body)
        self.streams = {}     # session -> bytearray of MQTT bytes from the broker
        self.closes = {}      # session -> reason of the broker's GW_CLOSE
        self.others = []      # other frames (kind, rid, body)
        self.eof = False
        self.next_rid = 10
        self.recv_max = 65536
        self.send(frame(HELLO, 1, struct.pack(">HH", *versions) + ipc_str(name) + ipc_str("0")
                        + struct.pack(">I", max_frame)))
        kind, body = self.reply(1)
        assert kind == WELCOME, (kind, body)
        r = Reader(body)
        self.version, _, _, self.max_frame = r.u16(), r.str(), r.str(), r.u32()
        # Frames after WELCOME are bounded by the smaller maximum (SPEC 2).
        self.recv_max = max(65536, min(max_frame, self.max_frame))
        self.registered = self.request(REGISTER, register_body(protocols)) if register else None

    # -- raw I/O
    def send(self, data):
        self.s.sendall(data)

    def _read_frame(self, deadline):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">I", self.buf)
                assert 5 <= n <= self.recv_max, f"frame length {n} outside 5..{self.recv_max}"
                if len(self.buf) >= 4 + n:
                    kind, rid = self.buf[4], struct.unpack_from(">I", self.buf, 5)[0]
                    body = bytes(self.buf[9:4 + n])
                    del self.buf[:4 + n]
                    return kind, rid, body
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame in time")
            self.s.settimeout(remaining)
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("no frame in time") from None
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def pump(self, deadline):
        """Reads one frame and files it; False at end of stream."""
        got = self._read_frame(deadline)
        if got is None:
            return False
        kind, rid, body = got
        r = Reader(body)
        if kind == PING and rid:
            self.send(frame(PONG, rid))
        elif kind == GW_DATA:
            sid = r.u32()
            self.streams.setdefault(sid, bytearray()).extend(r.bytes())
        elif kind == GW_CLOSE:
            sid = r.u32()
            self.closes[sid] = r.str()
        elif kind in (WELCOME, REGISTERED, PONG, ERROR, GW_OPENED):
            self.replies[rid] = (kind, body)
        else:
            self.others.append((kind, rid, body))
        return True

    def wait(self, cond, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not cond():
            try:
                if not self.pump(deadline):
                    if cond():
                        return
                    raise AssertionError(f"connection closed while waiting for {what}")
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout}s") from None

    def reply(self, rid, timeout=5.0):
        self.wait(lambda: rid in self.replies, timeout, f"reply to request {rid}")
        return self.replies.pop(rid)

    def request(self, kind, body, timeout=5.0):
        self.next_rid += 1
        rid = self.next_rid
        self.send(frame(kind, rid, body))
        return self.reply(rid, timeout)

    def closed_by_broker(self, timeout=5.0):
        """True when the broker closes the connection within timeout."""
        try:
            self.wait(lambda: self.eof, timeout, "end of stream")
            return True
        except AssertionError:
            return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    # -- sessions
    def open(self, sid, protocol="mqtt-test", peer="192.0.2.10", port=47000, listener="mqtt-test:udp:0.0.0.0:1884"):
        """GW_OPEN; returns (kind, body) of the answer."""
        return self.request(GW_OPEN, gw_open_body(sid, protocol, peer, port, listener))

    def open_ok(self, sid, **kw):
        kind, body = self.open(sid, **kw)
        assert kind == GW_OPENED and struct.unpack(">I", body) == (sid,), (kind, body)

    def data(self, sid, data):
        self.send(gw_data_frame(sid, data))

    def gw_close(self, sid, reason="client gone"):
        self.send(gw_close_frame(sid, reason))

    def packet(self, sid, version=4, timeout=5.0):
        """The next MQTT packet the broker sent in session sid."""
        out = []

        def parsed():
            buf = self.streams.get(sid, bytearray())
            if len(buf) < 2:
                return False
            try:
                rl, pos = m.dec_varint(buf, 1)
            except m.Incomplete:
                return False
            if len(buf) < pos + rl:
                return False
            first = buf[0]
            out.append(m.parse(first >> 4, first & 0x0F, bytes(buf[pos:pos + rl]), version))
            del buf[:pos + rl]
            return True
        self.wait(parsed, timeout, f"an MQTT packet in session {sid}")
        return out[0]

    def expect(self, sid, ptype, version=4, timeout=5.0):
        p = self.packet(sid, version, timeout)
        assert p.type == ptype, f"expected {m.NAMES[ptype]}, got {p!r}"
        return p

    def wait_close(self, sid, timeout=5.0):
        """The reason of the broker's GW_CLOSE for sid."""
        self.wait(lambda: sid in self.closes, timeout, f"GW_CLOSE for session {sid}")
        return self.closes.pop(sid)

    def connect(self, sid, client_id, version=4, expect_rc=0, **kw):
        self.data(sid, m.connect(client_id, version=version, **kw))
        ack = self.expect(sid, m.CONNACK, version)
        assert ack.rc == expect_rc, ack
        return ack
