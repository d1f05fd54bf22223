"""swiftlet-gateways' MQTT-SN 1.2 gateway (emqttd_sn) end to end: the mqtt-sn-12 client from
PyPI (its mqtt_sn_pub / mqtt_sn_sub tools) and raw datagrams against a real broker, with
paho-mqtt on the other side: CONNECT and the will exchange, REGISTER both ways, the three
topic id types, QoS -1/0/1/2, sleeping clients, retransmission, keep-alive, SEARCHGW and
ADVERTISE, hostile datagrams and a flood, auth and ACL through the broker's chain."""

import shutil
import socket
import struct
import subprocess
import time

import pytest

from brokers import free_port
from clients import Client
from ctl import ctl_ok
from stompgw import GatewayProcess, auth_broker, gateways_binary, shipped_config

pytestmark = pytest.mark.skipif(not gateways_binary().exists(),
                                reason=f"{gateways_binary()} not built (swift build --product swiftlet-gateways)")

PASSWORDS = {"sn": "sn-pw", "watcher": "watcher-pw"}
ACL = """
[[rules]]
permission = "deny"
user = "sn"
topics = ["secret/#"]

[[rules]]
permission = "allow"
topics = ["#"]
"""

# Message types
ADVERTISE, SEARCHGW, GWINFO, CONNECT, CONNACK, WILLTOPICREQ, WILLTOPIC, WILLMSGREQ, WILLMSG = 0, 1, 2, 4, 5, 6, 7, 8, 9
REGISTER, REGACK, PUBLISH, PUBACK, PUBCOMP, PUBREC, PUBREL = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18
WILLTOPICUPD, WILLTOPICRESP, WILLMSGUPD, WILLMSGRESP = 0x1A, 0x1B, 0x1C, 0x1D
NORMAL, PREDEFINED, SHORT = 0, 1, 2


def flags(qos=0, retain=False, will=False, clean=False, tid=NORMAL, dup=False):
    q = 3 if qos == -1 else qos
    return (0x80 if dup else 0) | (q << 5) | (0x10 if retain else 0) | (0x08 if will else 0) | (0x04 if clean else 0) | tid


def dgram(mtype, body=b""):
    n = len(body) + 2
    if n <= 255:
        return bytes([n, mtype]) + body
    return b"\x01" + struct.pack(">H", n + 2) + bytes([mtype]) + body


class Msg:
    def __init__(self, data):
        if data[0] == 1:
            self.type, self.body = data[3], data[4:]
        else:
            self.type, self.body = data[1], data[2:]

    def __repr__(self):
        return f"Msg(0x{self.type:02x}, {self.body!r})"


class SnRaw:
    """A raw MQTT-SN client on a UDP socket."""

    def __init__(self, port):
        self.addr = ("127.0.0.1", port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))

    def send(self, data):
        self.s.sendto(data, self.addr)

    def recv(self, timeout=5.0):
        self.s.settimeout(timeout)
        try:
            data, _ = self.s.recvfrom(65536)
        except socket.timeout:
            raise AssertionError("no datagram in time") from None
        return Msg(data)

    def expect(self, mtype, timeout=5.0):
        m = self.recv(timeout)
        assert m.type == mtype, f"expected 0x{mtype:02x}, got {m!r}"
        return m

    def none(self, wait=0.5):
        self.s.settimeout(wait)
        try:
            data, _ = self.s.recvfrom(65536)
        except socket.timeout:
            return True
        raise AssertionError(f"unexpected datagram {Msg(data)!r}")

    def connect(self, client_id, duration=60, clean=True, will=False):
        self.send(dgram(CONNECT, bytes([flags(clean=clean, will=will), 1]) + struct.pack(">H", duration) + client_id.encode()))

    def connected(self, client_id, duration=60, clean=True):
        self.connect(client_id, duration, clean)
        assert self.expect(CONNACK).body == b"\x00"

    def register(self, name, msg_id=1):
        self.send(dgram(REGISTER, struct.pack(">HH", 0, msg_id) + name.encode()))
        m = self.expect(REGACK)
        tid, mid, rc = struct.unpack(">HHB", m.body)
        assert (mid, rc) == (msg_id, 0), m
        return tid

    def publish(self, tid, data, qos=0, msg_id=0, tid_type=NORMAL, retain=False, dup=False):
        self.send(dgram(PUBLISH, bytes([flags(qos, retain, tid=tid_type, dup=dup)]) + struct.pack(">HH", tid, msg_id) + data))

    def subscribe(self, topic, qos=1, msg_id=2, tid_type=NORMAL):
        body = topic.encode() if isinstance(topic, str) else struct.pack(">H", topic)
        self.send(dgram(SUBSCRIBE, bytes([flags(qos, tid=tid_type)]) + struct.pack(">H", msg_id) + body))
        m = self.expect(SUBACK)
        fl, tid, mid, rc = struct.unpack(">BHHB", m.body)
        assert mid == msg_id
        return (fl >> 5) & 3, tid, rc

    def read_publish(self, timeout=5.0):
        """(flags, topic id, msg id, data) of the next PUBLISH, answering REGISTERs on the way."""
        while True:
            m = self.recv(timeout)
            if m.type == REGISTER:
                tid, mid = struct.unpack(">HH", m.body[:4])
                self.topics[tid] = m.body[4:].decode()
                self.send(dgram(REGACK, struct.pack(">HHB", tid, mid, 0)))
                continue
            assert m.type == PUBLISH, m
            fl, tid, mid = struct.unpack(">BHH", m.body[:5])
            return fl, tid, mid, m.body[5:]

    topics = {}

    def close(self):
        self.s.close()


def gateway_config(sn_port, stomp_port, advertise_port):
    text = shipped_config({"listener = 1884 ": f"listener = \"127.0.0.1:{sn_port}\" ",
                           "listener = 61613 ": f"listener = \"127.0.0.1:{stomp_port}\" ",
                           "listener = 61616 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           "# username = \"\"": "username = \"sn\"",
                           "# password = \"\"": f"password = \"{PASSWORDS['sn']}\"",
                           "retry_interval = 5000 ": "retry_interval = 700 ",
                           "max_retries = 4 ": "max_retries = 2 ",
                           "rate_limit = 200 ": "rate_limit = 50 ",
                           "advertise_interval = 0 ": "advertise_interval = 1 ",
                           'advertise_address = "255.255.255.255:1884"': f'advertise_address = "127.0.0.1:{advertise_port}"',
                           "# 1 = \"sensors/temperature\"": "1 = \"sensors/temperature\"\n9 = \"secret/pre\""})
    return text


@pytest.fixture(scope="module")
def sn(module_broker_factory):
    b, d = auth_broker(module_broker_factory, PASSWORDS, ACL)
    adv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    adv.bind(("127.0.0.1", 0))
    port = free_port()
    g = GatewayProcess(d, d / "sc.sock", gateway_config(port, free_port(), adv.getsockname()[1])).start(b)
    yield b, port, d, g, adv
    g.stop()
    adv.close()


def watcher(b):
    return Client(b, version=5, username="watcher", password=PASSWORDS["watcher"])


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (pip install mqtt-sn-12) not installed")
    return path


@pytest.mark.parametrize("qos", [0, 1])
def test_mqtt_sn_12_publisher_reaches_paho(sn, uniq, qos):
    b, port, _, _, _ = sn
    w = watcher(b)
    assert w.subscribe(f"{uniq}/#", qos=1) == [1]
    p = subprocess.run([tool("mqtt_sn_pub"), "-h", "127.0.0.1", "-p", str(port), "-t", f"{uniq}/pub", "-m", f"hello qos {qos}",
                        "-q", str(qos), "-i", f"snpub-{uniq}"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    m = w.get()
    assert (m.topic, m.payload) == (f"{uniq}/pub", f"hello qos {qos}".encode())


def test_mqtt_sn_12_subscriber_gets_paho_message(sn, uniq):
    b, port, _, _, _ = sn
    sub = subprocess.Popen([tool("mqtt_sn_sub"), "-h", "127.0.0.1", "-p", str(port), "-t", f"{uniq}/down", "-1", "-i", f"snsub-{uniq}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        w = watcher(b)
        deadline = time.monotonic() + 10
        # The tool subscribes after it started; publish until it has its message.
        while sub.poll() is None and time.monotonic() < deadline:
            w.publish(f"{uniq}/down", b"to the sensor", qos=1)
            time.sleep(0.3)
        out = sub.communicate(timeout=10)[0]
        assert "to the sensor" in out, out
    finally:
        if sub.poll() is None:
            sub.kill()


def test_register_publish_qos1_and_listing(sn, uniq):
    b, port, d, _, _ = sn
    w = watcher(b)
    assert w.subscribe(f"{uniq}/#", qos=1) == [1]
    c = SnRaw(port)
    c.connected(f"raw-{uniq}")
    tid = c.register(f"{uniq}/reg")
    c.publish(tid, b"registered", qos=1, msg_id=77)
    ack = c.expect(PUBACK)
    assert struct.unpack(">HHB", ack.body) == (tid, 77, 0)
    assert w.get().payload == b"registered"
    rows = {r["clientid"]: r for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)}
    assert rows[f"raw-{uniq}"]["listener"] == f"mqtt-sn:udp:127.0.0.1:{port}"
    assert rows[f"raw-{uniq}"]["username"] == "sn"
    # Unknown topic id: PUBACK "invalid topic id".
    c.publish(999, b"x", qos=1, msg_id=78)
    assert struct.unpack(">HHB", c.expect(PUBACK).body) == (999, 78, 2)


def test_predefined_short_and_qos2(sn, uniq):
    b, port, _, _, _ = sn
    w = watcher(b)
    assert w.subscribe("sensors/temperature", qos=1) == [1]
    assert w.subscribe("zq", qos=2) == [2]
    c = SnRaw(port)
    c.connected(f"pre-{uniq}")
    c.publish(1, b"21.5", qos=0, tid_type=PREDEFINED)
    assert (w.get().topic, ) == ("sensors/temperature",)
    c.publish(struct.unpack(">H", b"zq")[0], b"short two", qos=2, msg_id=5, tid_type=SHORT)
    assert struct.unpack(">H", c.expect(PUBREC).body) == (5,)
    c.send(dgram(PUBREL, struct.pack(">H", 5)))
    assert struct.unpack(">H", c.expect(PUBCOMP).body) == (5,)
    m = w.get()
    assert (m.topic, m.payload) == ("zq", b"short two")
    w.expect_none(0.3)


def test_subscribe_wildcard_gateway_registers_and_qos2_delivery(sn, uniq):
    b, port, _, _, _ = sn
    c = SnRaw(port)
    c.connected(f"wild-{uniq}")
    granted, tid, rc = c.subscribe(f"{uniq}/+/t", qos=2)
    assert (granted, tid, rc) == (2, 0, 0)
    w = watcher(b)
    w.publish(f"{uniq}/abc/t", b"deep", qos=2)
    fl, tid, mid, data = c.read_publish()
    assert c.topics[tid] == f"{uniq}/abc/t" and data == b"deep" and (fl >> 5) & 3 == 2
    c.send(dgram(PUBREC, struct.pack(">H", mid)))
    assert struct.unpack(">H", c.expect(PUBREL).body) == (mid,)
    c.send(dgram(PUBCOMP, struct.pack(">H", mid)))
    # Subscribe by predefined id, unsubscribe by name.
    assert c.subscribe(1, qos=1, msg_id=3, tid_type=PREDEFINED) == (1, 1, 0)
    c.send(dgram(UNSUBSCRIBE, bytes([flags()]) + struct.pack(">H", 4) + f"{uniq}/+/t".encode()))
    assert struct.unpack(">H", c.expect(UNSUBACK).body) == (4,)
    w.publish(f"{uniq}/abc/t", b"gone", qos=1)
    c.none(0.5)


def test_unacknowledged_publish_is_retransmitted(sn, uniq):
    b, port, _, _, _ = sn
    c = SnRaw(port)
    c.connected(f"retx-{uniq}")
    c.subscribe("rx", qos=1, tid_type=SHORT)
    watcher(b).publish("rx", b"again", qos=1)
    fl, tid, mid, data = c.read_publish()
    assert not fl & 0x80 and data == b"again"
    fl2, _, mid2, data2 = c.read_publish(timeout=5)
    assert fl2 & 0x80 and (mid2, data2) == (mid, b"again"), "the same message again, DUP set"
    c.send(dgram(PUBACK, struct.pack(">HHB", tid, mid, 0)))
    c.none(1.2)


def test_will_exchange_and_keep_alive_timeout(sn, uniq):
    b, port, _, _, _ = sn
    w = watcher(b)
    assert w.subscribe(f"{uniq}/will", qos=1) == [1]
    c = SnRaw(port)
    c.connect(f"will-{uniq}", duration=1, will=True)
    c.expect(WILLTOPICREQ)
    c.send(dgram(WILLTOPIC, bytes([flags(qos=1)]) + f"{uniq}/will".encode()))
    c.expect(WILLMSGREQ)
    c.send(dgram(WILLMSG, b"sensor lost"))
    assert c.expect(CONNACK).body == b"\x00"
    # Silence beyond 1.5 x the keep-alive: the broker publishes the will.
    m = w.get(timeout=10)
    assert (m.topic, m.payload) == (f"{uniq}/will", b"sensor lost")


def test_will_updates_are_what_is_published(sn, uniq):
    b, port, _, _, _ = sn
    w = watcher(b)
    assert w.subscribe(f"{uniq}/#", qos=1) == [1]
    c = SnRaw(port)
    c.connect(f"wupd-{uniq}", duration=1, will=True)
    c.expect(WILLTOPICREQ)
    c.send(dgram(WILLTOPIC, bytes([flags()]) + f"{uniq}/old".encode()))
    c.expect(WILLMSGREQ)
    c.send(dgram(WILLMSG, b"old will"))
    c.expect(CONNACK)
    c.send(dgram(WILLTOPICUPD, bytes([flags(qos=1)]) + f"{uniq}/new".encode()))
    assert c.expect(WILLTOPICRESP).body == b"\x00"
    c.send(dgram(WILLMSGUPD, b"new will"))
    assert c.expect(WILLMSGRESP).body == b"\x00"
    m = w.get(timeout=10)
    assert (m.topic, m.payload) == (f"{uniq}/new", b"new will")
    w.expect_none(0.5)


def test_sleeping_client_gets_buffered_messages_on_pingreq(sn, uniq):
    b, port, _, _, _ = sn
    c = SnRaw(port)
    cid = f"sleep-{uniq}"
    c.connected(cid, duration=30)
    c.subscribe(f"{uniq}/s", qos=1)
    c.send(dgram(DISCONNECT, struct.pack(">H", 30)))
    c.expect(DISCONNECT)
    w = watcher(b)
    for i in range(3):
        w.publish(f"{uniq}/s", f"while asleep {i}".encode(), qos=1)
    c.none(0.5)
    c.send(dgram(PINGREQ, cid.encode()))
    got = []
    while True:
        m = c.recv()
        if m.type == PINGRESP:
            break
        if m.type == REGISTER:
            tid, mid = struct.unpack(">HH", m.body[:4])
            c.send(dgram(REGACK, struct.pack(">HHB", tid, mid, 0)))
            continue
        assert m.type == PUBLISH, m
        fl, tid, mid = struct.unpack(">BHH", m.body[:5])
        got.append(m.body[5:])
        c.send(dgram(PUBACK, struct.pack(">HHB", tid, mid, 0)))
    assert got == [f"while asleep {i}".encode() for i in range(3)]


def test_qos_minus_one_without_connection(sn, uniq):
    b, port, _, _, _ = sn
    w = watcher(b)
    assert w.subscribe("sensors/temperature", qos=0) == [0]
    c = SnRaw(port)
    c.publish(1, b"no connection", qos=-1, tid_type=PREDEFINED)
    assert w.get().payload == b"no connection"
    c.publish(5, b"normal ids cannot be used", qos=-1, tid_type=NORMAL)
    w.expect_none(0.5)


def test_searchgw_and_advertise(sn):
    _, port, _, _, adv = sn
    c = SnRaw(port)
    c.send(dgram(SEARCHGW, b"\x01"))
    assert c.expect(GWINFO).body == b"\x01"
    adv.settimeout(5)
    data, _ = adv.recvfrom(100)
    m = Msg(data)
    assert m.type == ADVERTISE and struct.unpack(">BH", m.body) == (1, 1)


def test_acl_through_the_broker(sn, uniq):
    b, port, _, _, _ = sn
    c = SnRaw(port)
    c.connected(f"acl-{uniq}")
    c.publish(9, b"denied", qos=1, msg_id=3, tid_type=PREDEFINED)
    assert struct.unpack(">HHB", c.expect(PUBACK).body) == (9, 3, 3)
    assert c.subscribe("secret/#", qos=1, msg_id=4)[2] == 3


def test_hostile_datagrams_are_dropped_and_the_gateway_serves_on(sn, uniq):
    b, port, d, g, _ = sn
    s = SnRaw(port)
    for junk in (b"", b"\x00", b"\x05\x16ab", b"\x03\x16", b"\x01\x00", b"\x01\x00\x09\x16", b"\x02\x03", b"\x02\xfe",
                 b"\x04\x0c\x00\x00", b"\xff" * 300, bytes(range(256)), b"\x03\x12\x03"):
        s.send(junk)
    # A non-CONNECT from an unknown address gets no answer.
    s.send(dgram(PINGREQ))
    s.none(0.5)
    assert g.alive()
    c = SnRaw(port)
    c.connected(f"after-{uniq}")
    c.send(dgram(PINGREQ))
    c.expect(PINGRESP)
    out = ctl_ok(d / "ctl.sock", "gateways")
    malformed = int(out.split("mqtt-sn:")[1].split("malformed=")[1].split()[0])
    assert malformed >= 10, out


def test_flood_from_one_address_is_rate_limited(sn, uniq):
    b, port, d, g, _ = sn
    c = SnRaw(port)
    c.connected(f"flood-{uniq}")
    time.sleep(2.1)  # a full bucket: rate_limit = 50, bursts of 100
    n = 1000
    for _ in range(n):
        c.send(dgram(PINGREQ))
    answers = 0
    c.s.settimeout(1.0)
    try:
        while True:
            data, _ = c.s.recvfrom(100)
            answers += Msg(data).type == PINGRESP
    except socket.timeout:
        pass
    assert 0 < answers < n, answers
    out = ctl_ok(d / "ctl.sock", "gateways")
    assert int(out.split("mqtt-sn:")[1].split("dropped=")[1].split()[0]) > 0, out
    assert g.alive()
    other = SnRaw(port)
    other.connected(f"other-{uniq}")
