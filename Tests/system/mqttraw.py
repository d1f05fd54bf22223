"""A small raw MQTT 3.1.1 / 5.0 packet builder and parser for black-box tests.

Builders return the bytes of a complete packet and deliberately allow invalid
input (bad flags, duplicate or mistyped properties, bytes for strings, ...).
"""

import os
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, \
    UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(1, 16)
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# Property identifiers (MQTT 5.0, 2.2.2.2)
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

BYTE, U16, U32, VARINT, STR, BIN, PAIR = "byte", "u16", "u32", "varint", "str", "bin", "pair"
PROP_TYPES = {
    0x01: BYTE, 0x02: U32, 0x03: STR, 0x08: STR, 0x09: BIN, 0x0B: VARINT, 0x11: U32, 0x12: STR,
    0x13: U16, 0x15: STR, 0x16: BIN, 0x17: BYTE, 0x18: U32, 0x19: BYTE, 0x1A: STR, 0x1C: STR,
    0x1F: STR, 0x21: U16, 0x22: U16, 0x23: U16, 0x24: BYTE, 0x25: BYTE, 0x26: PAIR, 0x27: U32,
    0x28: BYTE, 0x29: BYTE, 0x2A: BYTE,
}

# Reason codes used by the tests
RC_SUCCESS = 0x00
RC_DISCONNECT_WITH_WILL = 0x04
RC_NO_MATCHING_SUBSCRIBERS = 0x10
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_CLIENT_ID_NOT_VALID = 0x85
RC_SERVER_SHUTTING_DOWN = 0x8B
RC_KEEP_ALIVE_TIMEOUT = 0x8D
RC_SESSION_TAKEN_OVER = 0x8E
RC_TOPIC_FILTER_INVALID = 0x8F
RC_TOPIC_NAME_INVALID = 0x90
RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93
RC_TOPIC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
MALFORMED_OR_PROTOCOL = (RC_MALFORMED, RC_PROTOCOL_ERROR)


class Incomplete(Exception):
    pass


class Raw:
    """A property value written verbatim (for wrong-type properties)."""

    def __init__(self, data):
        self.data = bytes(data)


# -- encoding -----------------------------------------------------------------

def enc_varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def dec_varint(data, pos):
    mult, val = 1, 0
    for _ in range(4):
        if pos >= len(data):
            raise Incomplete()
        b = data[pos]
        pos += 1
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, pos
        mult *= 128
    raise ValueError("variable byte integer longer than 4 bytes")


def enc_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


enc_bin = enc_str


def enc_prop_value(pid, v):
    if isinstance(v, Raw):
        return v.data
    t = PROP_TYPES[pid]
    if t == BYTE:
        return bytes([v])
    if t == U16:
        return struct.pack("!H", v)
    if t == U32:
        return struct.pack("!I", v)
    if t == VARINT:
        return enc_varint(v)
    if t in (STR, BIN):
        return enc_str(v)
    k, val = v
    return enc_str(k) + enc_str(val)


def enc_props(props):
    """props: None, raw bytes (the property block without its length), a dict or a list of (id, value)."""
    if props is None:
        body = b""
    elif isinstance(props, (bytes, bytearray)):
        body = bytes(props)
    else:
        items = props.items() if isinstance(props, dict) else props
        body = b"".join(enc_varint(pid) + enc_prop_value(pid, v) for pid, v in items)
    return enc_varint(len(body)) + body


def packet(ptype, flags, body, remaining_length=None):
    rl = len(body) if remaining_length is None else remaining_length
    return bytes([(ptype << 4) | (flags & 0x0F)]) + enc_varint(rl) + body


def connect(client_id="", version=4, clean=True, keepalive=60, username=None, password=None,
            will_topic=None, will_payload=b"", will_qos=0, will_retain=False, props=None,
            will_props=None, flags=None, protocol_name=None):
    name = protocol_name or ("MQIsdp" if version == 3 else "MQTT")
    if flags is None:
        flags = (0x02 if clean else 0)
        if will_topic is not None:
            flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        if password is not None:
            flags |= 0x40
        if username is not None:
            flags |= 0x80
    vh = enc_str(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += enc_props(props)
    pl = enc_str(client_id)
    if will_topic is not None:
        if version == 5:
            pl += enc_props(will_props)
        pl += enc_str(will_topic) + enc_bin(will_payload)
    if username is not None:
        pl += enc_str(username)
    if password is not None:
        pl += enc_bin(password)
    return packet(CONNECT, 0, vh + pl)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None, version=4,
            flags=None):
    if isinstance(payload, str):
        payload = payload.encode()
    body = enc_str(topic)
    if qos > 0 or pid is not None:
        body += struct.pack("!H", 1 if pid is None else pid)
    if version == 5:
        body += enc_props(props)
    body += payload
    if flags is None:
        flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return packet(PUBLISH, flags, body)


def _ack(ptype, pid, rc=None, props=None, version=4, flags=None):
    body = struct.pack("!H", pid)
    if version == 5 and (rc is not None or props):
        body += bytes([rc or 0])
        if props:
            body += enc_props(props)
    return packet(ptype, (2 if ptype == PUBREL else 0) if flags is None else flags, body)


def puback(pid, **kw):
    return _ack(PUBACK, pid, **kw)


def pubrec(pid, **kw):
    return _ack(PUBREC, pid, **kw)


def pubrel(pid, **kw):
    return _ack(PUBREL, pid, **kw)


def pubcomp(pid, **kw):
    return _ack(PUBCOMP, pid, **kw)


def sub_opts(qos=0, no_local=False, rap=False, rh=0):
    return qos | (4 if no_local else 0) | (8 if rap else 0) | (rh << 4)


def subscribe(pid, topics, props=None, version=4, flags=2):
    """topics: a filter string, or a list of (filter, options-byte)."""
    if isinstance(topics, (str, bytes)):
        topics = [(topics, 0)]
    body = struct.pack("!H", pid)
    if version == 5:
        body += enc_props(props)
    body += b"".join(enc_str(f) + bytes([o]) for f, o in topics)
    return packet(SUBSCRIBE, flags, body)


def unsubscribe(pid, filters, props=None, version=4, flags=2):
    if isinstance(filters, (str, bytes)):
        filters = [filters]
    body = struct.pack("!H", pid)
    if version == 5:
        body += enc_props(props)
    body += b"".join(enc_str(f) for f in filters)
    return packet(UNSUBSCRIBE, flags, body)


def pingreq():
    return packet(PINGREQ, 0, b"")


def disconnect(rc=None, props=None, version=4):
    body = b""
    if version == 5 and (rc is not None or props):
        body = bytes([rc or 0]) + (enc_props(props) if props else b"")
    return packet(DISCONNECT, 0, body)


# -- decoding -----------------------------------------------------------------

def dec_props(data, pos):
    length, pos = dec_varint(data, pos)
    end = pos + length
    props = []
    while pos < end:
        pid, pos = dec_varint(data, pos)
        t = PROP_TYPES.get(pid)
        if t == BYTE:
            v, pos = data[pos], pos + 1
        elif t == U16:
            v, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif t == U32:
            v, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif t == VARINT:
            v, pos = dec_varint(data, pos)
        elif t in (STR, BIN, PAIR):
            vals = []
            for _ in range(2 if t == PAIR else 1):
                n = struct.unpack_from("!H", data, pos)[0]
                raw = bytes(data[pos + 2:pos + 2 + n])
                vals.append(raw if t == BIN else raw.decode("utf-8", errors="replace"))
                pos += 2 + n
            v = tuple(vals) if t == PAIR else vals[0]
        else:
            raise ValueError(f"unknown property id 0x{pid:02x}")
        props.append((pid, v))
    return props, end


class Packet:
    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body
        self.props = []
        self.rc = None
        self.pid = None

    @property
    def name(self):
        return NAMES.get(self.type, f"TYPE{self.type}")

    def prop(self, pid, default=None):
        for k, v in self.props:
            if k == pid:
                return v
        return default

    def props_all(self, pid):
        return [v for k, v in self.props if k == pid]

    def __repr__(self):
        extra = []
        for attr in ("rc", "pid", "topic", "qos", "dup", "retain", "session_present", "rcs"):
            v = getattr(self, attr, None)
            if v is not None:
                extra.append(f"{attr}={(hex(v) if attr == 'rc' else v)!s}")
        if self.props:
            extra.append(f"props={self.props[:6]}{'...' if len(self.props) > 6 else ''}")
        if self.type == PUBLISH:
            extra.append(f"payload={self.payload[:40]!r}")
        return f"<{self.name} {' '.join(extra)}>"


def parse(ptype, flags, body, version):
    p = Packet(ptype, flags, body)
    v5 = version == 5
    if ptype == CONNACK:
        p.session_present = bool(body[0] & 1)
        p.rc = body[1]
        if v5 and len(body) > 2:
            p.props, _ = dec_props(body, 2)
    elif ptype == PUBLISH:
        p.qos, p.retain, p.dup = (flags >> 1) & 3, bool(flags & 1), bool(flags & 8)
        n = struct.unpack_from("!H", body, 0)[0]
        p.topic_bytes = bytes(body[2:2 + n])
        p.topic = p.topic_bytes.decode("utf-8", errors="replace")
        pos = 2 + n
        if p.qos:
            p.pid = struct.unpack_from("!H", body, pos)[0]
            pos += 2
        if v5:
            p.props, pos = dec_props(body, pos)
        p.payload = bytes(body[pos:])
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.pid = struct.unpack_from("!H", body, 0)[0]
        p.rc = body[2] if len(body) > 2 else 0
        if len(body) > 3:
            p.props, _ = dec_props(body, 3)
    elif ptype in (SUBACK, UNSUBACK):
        p.pid = struct.unpack_from("!H", body, 0)[0]
        pos = 2
        if v5:
            p.props, pos = dec_props(body, pos)
        p.rcs = list(body[pos:])
    elif ptype in (DISCONNECT, AUTH):
        p.rc = body[0] if body else 0
        if len(body) > 1:
            p.props, _ = dec_props(body, 1)
    return p


class RawClient:
    """A blocking MQTT connection on a plain socket. recv() returns None once the peer closed."""

    def __init__(self, host, port=None, version=4, timeout=5.0):
        if hasattr(host, "port"):  # a Broker
            host, port = host.host, host.port
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.closed = False
        self.aliases = {}  # outbound topic aliases chosen by the server

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """Send, returning False instead of raising if the broker already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _try_parse(self):
        if len(self.buf) < 2:
            return None
        try:
            rl, pos = dec_varint(self.buf, 1)
        except Incomplete:
            return None
        if len(self.buf) < pos + rl:
            return None
        first = self.buf[0]
        body = bytes(self.buf[pos:pos + rl])
        del self.buf[:pos + rl]
        p = parse(first >> 4, first & 0x0F, body, self.version)
        if p.type == PUBLISH and self.version == 5:
            alias = p.prop(TOPIC_ALIAS)
            if alias is not None:
                if p.topic:
                    self.aliases[alias] = p.topic
                p.resolved_topic = p.topic or self.aliases.get(alias)
            else:
                p.resolved_topic = p.topic
        elif p.type == PUBLISH:
            p.resolved_topic = p.topic
        return p

    def recv(self, timeout=5.0):
        """Return the next packet, or None if the connection was closed. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no packet within {timeout}s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError(f"no packet within {timeout}s") from None
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
            else:
                self.buf += chunk

    def expect(self, ptype, timeout=5.0, skip=()):
        """The next packet (ignoring types in skip) must be of type ptype."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                p = self.recv(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise AssertionError(f"no {NAMES[ptype]} within {timeout}s") from None
            if p is None:
                raise AssertionError(f"connection closed while waiting for {NAMES[ptype]}")
            if p.type in skip:
                continue
            assert p.type == ptype, f"expected {NAMES[ptype]}, got {p!r}"
            return p

    def expect_nothing(self, timeout=1.0):
        """Assert that no packet arrives (and the connection stays open) for timeout seconds."""
        try:
            p = self.recv(timeout)
        except TimeoutError:
            return
        assert p is not None, "connection closed unexpectedly"
        raise AssertionError(f"unexpected packet {p!r}")

    def wait_closed(self, timeout=5.0):
        """Read until the broker closes the connection; return the packets received meanwhile."""
        pkts = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                p = self.recv(remaining)
            except TimeoutError:
                raise AssertionError(f"broker did not close the connection within {timeout}s; "
                                     f"received {pkts!r}") from None
            if p is None:
                return pkts
            pkts.append(p)

    # -- conveniences -----------------------------------------------------
    def connect(self, client_id="", expect_rc=0, **kw):
        self.send(connect(client_id, version=self.version, **kw))
        ack = self.expect(CONNACK)
        if expect_rc is not None:
            assert ack.rc == expect_rc, f"CONNACK {ack!r}"
        return ack

    def subscribe(self, topics, pid=1, props=None, qos=None):
        if isinstance(topics, str):
            topics = [(topics, qos or 0)]
        self.send(subscribe(pid, topics, props=props, version=self.version))
        ack = self.expect(SUBACK, skip=(PUBLISH,))
        assert ack.pid == pid
        return ack

    def publish(self, topic, payload=b"", qos=0, pid=None, **kw):
        """Publish and complete the QoS 1/2 handshake; returns the final ack (or None for QoS 0)."""
        if qos and pid is None:
            pid = 1
        self.send(publish(topic, payload, qos=qos, pid=pid, version=self.version, **kw))
        if qos == 1:
            return self.expect(PUBACK, skip=(PUBLISH,))
        if qos == 2:
            rec = self.expect(PUBREC, skip=(PUBLISH,))
            assert rec.pid == pid
            if rec.rc >= 0x80:
                return rec
            self.send(pubrel(pid))
            return self.expect(PUBCOMP, skip=(PUBLISH,))
        return None

    def ping(self, timeout=5.0):
        self.send(pingreq())
        return self.expect(PINGRESP, timeout=timeout, skip=(PUBLISH,))


def connected(broker, version=4, client_id=None, **kw):
    """A RawClient that has completed CONNECT/CONNACK (with a random client id by default)."""
    c = RawClient(broker, version=version)
    c.connect(client_id if client_id is not None else f"raw-{os.urandom(5).hex()}", **kw)
    return c


def assert_closed_with(client, codes=MALFORMED_OR_PROTOCOL, timeout=5.0):
    """The spec answer to a bad packet after CONNACK.

    3.1.1: the broker closes the connection (3.1.1 servers have no DISCONNECT to send).
    5.0:   the broker sends DISCONNECT with a reason code from `codes`, then closes.
    """
    pkts = client.wait_closed(timeout)
    discs = [p for p in pkts if p.type == DISCONNECT]
    if client.version == 5:
        assert discs, f"expected DISCONNECT {[hex(c) for c in codes]} before close, got {pkts!r}"
        assert discs[-1].rc in codes, \
            f"DISCONNECT reason {discs[-1].rc:#x}, expected one of {[hex(c) for c in codes]}"
        assert pkts[-1].type == DISCONNECT, f"packets after DISCONNECT: {pkts!r}"
    else:
        assert not discs, f"a 3.1.1 server must not send DISCONNECT: {pkts!r}"
    return pkts


def assert_connect_refused(client, codes=MALFORMED_OR_PROTOCOL, timeout=5.0):
    """The spec answer to a bad CONNECT: close, optionally after a CONNACK carrying an error code."""
    pkts = client.wait_closed(timeout)
    assert all(p.type == CONNACK for p in pkts), f"only a CONNACK may precede the close: {pkts!r}"
    for p in pkts:
        if client.version == 5:
            assert p.rc in codes, f"CONNACK reason {p.rc:#x}, expected one of {[hex(c) for c in codes]}"
        else:
            assert p.rc != 0, f"bad CONNECT was accepted: {p!r}"
    return pkts


def assert_subscribe_rejected(client, timeout=10.0):
    """The answer to a SUBSCRIBE whose first filter is invalid: a SUBACK with a failure code for it
    (3.1.1: 0x80, 5.0: 0x80/0x8F/0x97) and the connection stays usable, or the connection is closed
    (5.0: after DISCONNECT 0x81/0x82/0x8F). Returns the SUBACK or None."""
    p = client.recv(timeout)
    if p is None:
        assert client.version == 4, "a 5.0 client must get a SUBACK or a DISCONNECT with a reason code"
        return None
    if p.type == SUBACK:
        ok = (0x80,) if client.version == 4 else (0x80, RC_TOPIC_FILTER_INVALID, 0x97)
        assert p.rcs[0] in ok, f"invalid filter accepted: {p!r}"
        assert client.ping().type == PINGRESP
        return p
    assert client.version == 5 and p.type == DISCONNECT, p
    assert p.rc in MALFORMED_OR_PROTOCOL + (RC_TOPIC_FILTER_INVALID,), p
    assert client.recv(5) is None
    return None
