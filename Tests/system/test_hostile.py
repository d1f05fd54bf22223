"""Hostile input. Every case runs on its own raw connection while a well-behaved paho client keeps
publishing QoS 1 messages to itself; afterwards the broker must be up and the good client must have
received everything it sent, in order.

Spec answers: 3.1.1 -> the broker closes the connection; 5.0 -> DISCONNECT with 0x81 (malformed),
0x82 (protocol error) or the specific reason code, then close. Errors in CONNECT may be answered with
a CONNACK carrying an error code, or just a close."""

import socket
import time

import pytest

import mqttraw as m

MAX_PACKET = 4 * 1024 * 1024
MP = m.MALFORMED_OR_PROTOCOL


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(mqtt={"max_packet_size": MAX_PACKET})


def raw_connect(broker):
    return socket.create_connection((broker.host, broker.port), timeout=10)


# -- framing ------------------------------------------------------------------------

def test_huge_remaining_length_on_200_connections(broker, good):
    socks = [raw_connect(broker) for _ in range(200)]
    for s in socks:
        s.sendall(b"\x10\xff\xff\xff\x7f")
    deadline = time.monotonic() + 10
    still_open = 0
    for s in socks:
        s.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            while s.recv(4096):
                pass
        except socket.timeout:
            still_open += 1
        except OSError:
            pass
        finally:
            s.close()
    assert still_open == 0, f"{still_open} of 200 connections not closed"
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_huge_remaining_length_after_connect(broker, good, version):
    c = m.connected(broker, version)
    c.send(b"\x30\xff\xff\xff\x7f")
    m.assert_closed_with(c, codes=(m.RC_PACKET_TOO_LARGE,))
    good.check()


def test_five_byte_remaining_length_in_connect(broker, good):
    c = m.RawClient(broker, version=5)
    c.send(b"\x10\xff\xff\xff\xff\x01")
    assert all(p.type == m.CONNACK and p.rc >= 0x80 for p in c.wait_closed()), "must not be accepted"
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_five_byte_remaining_length_after_connect(broker, good, version):
    c = m.connected(broker, version)
    c.send(b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 16)
    m.assert_closed_with(c, codes=(m.RC_MALFORMED,))
    good.check()


def test_declared_length_longer_than_data_then_close(broker, good):
    for data in (b"\x10\x64" + m.connect("short")[2:12], b"\x10\xff\x7f\x00\x04MQTT"):
        s = raw_connect(broker)
        s.sendall(data)
        s.close()
    c = m.connected(broker, 5)
    c.send(b"\x30\xe8\x07" + m.enc_str("a/b") + b"x" * 10)  # 1000 declared, 15 sent
    c.close()
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_declared_length_shorter_than_data(broker, good, version):
    c = m.connected(broker, version)
    pkt = bytearray(m.subscribe(1, [("a/b/c/d/e/f", 1)], version=version))
    pkt[1] -= 5  # the filter string now runs past the end of the packet
    c.send(bytes(pkt))
    m.assert_closed_with(c, codes=(m.RC_MALFORMED,))
    good.check()


def test_connect_declared_shorter_than_data(broker, good):
    pkt = bytearray(m.connect("client-with-long-id", version=5))
    pkt[1] -= 6
    c = m.RawClient(broker, version=5)
    c.send(bytes(pkt))
    m.assert_connect_refused(c)
    good.check()


# -- sequencing ---------------------------------------------------------------------

FIRST_PACKETS = {
    "publish": m.publish("a/b", b"x"),
    "subscribe": m.subscribe(1, "a/b"),
    "pingreq": m.pingreq(),
    "disconnect": m.disconnect(),
    "connack": b"\x20\x02\x00\x00",
    "garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(FIRST_PACKETS))
def test_first_packet_not_connect(broker, good, name):
    c = m.RawClient(broker, version=4)
    c.send(FIRST_PACKETS[name])
    assert c.wait_closed() == []
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_second_connect(broker, good, version):
    c = m.connected(broker, version)
    c.send(m.connect("again", version=version))
    m.assert_closed_with(c, codes=(m.RC_PROTOCOL_ERROR,))
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_client_sends_connack(broker, good, version):
    c = m.connected(broker, version)
    c.send(b"\x20\x02\x00\x00" if version == 4 else b"\x20\x03\x00\x00\x00")
    m.assert_closed_with(c, codes=MP)
    good.check()


@pytest.mark.parametrize("level,name", [(9, "MQTT"), (4, "MQTX"), (5, "MQIsdp")])
def test_bad_protocol_name_or_level(broker, good, level, name):
    c = m.RawClient(broker, version=4)
    c.send(m.connect("proto", version=level, protocol_name=name))
    for p in c.wait_closed():
        assert p.type == m.CONNACK and p.rc in (0x01, 0x84, 0x81, 0x82), p
    good.check()


# -- malformed or forbidden content after CONNECT ------------------------------------

def _props_raw(*chunks):
    return b"".join(chunks)


V5_BAD = {
    # name: (packet, acceptable reason codes)
    "empty topic": (m.publish("", b"x", qos=1, pid=1, version=5), MP + (m.RC_TOPIC_NAME_INVALID,)),
    "wildcard + in topic": (m.publish("a/+/b", b"x", version=5), MP + (m.RC_TOPIC_NAME_INVALID,)),
    "wildcard # in topic": (m.publish("a/#", b"x", qos=1, pid=1, version=5), MP + (m.RC_TOPIC_NAME_INVALID,)),
    "qos 3": (m.publish("a/b", b"x", pid=1, version=5, flags=0x06), MP),
    "invalid utf-8 topic": (m.publish(b"a/\xff\xfe", b"x", version=5), MP + (m.RC_TOPIC_NAME_INVALID,)),
    "U+0000 in topic": (m.publish("a/\x00b", b"x", version=5), MP + (m.RC_TOPIC_NAME_INVALID,)),
    "utf-16 surrogate in topic": (m.publish(b"a/\xed\xa0\x80", b"x", version=5), MP + (m.RC_TOPIC_NAME_INVALID,)),
    "invalid utf-8 filter": (m.subscribe(1, [(b"a/\xc3", 0)], version=5), MP + (m.RC_TOPIC_FILTER_INVALID,)),
    "U+0000 in filter": (m.subscribe(1, [("a\x00", 0)], version=5), MP + (m.RC_TOPIC_FILTER_INVALID,)),
    "subscribe flags 0": (m.subscribe(1, "a/b", version=5, flags=0), MP),
    "unsubscribe flags 0": (m.unsubscribe(1, "a/b", version=5, flags=0), MP),
    "pubrel flags 0": (m.pubrel(1, version=5, flags=0), MP),
    "pingreq flags 1": (m.packet(m.PINGREQ, 1, b""), MP),
    "puback flags 1": (m.puback(1, version=5, flags=1), MP),
    "disconnect flags 1": (m.packet(m.DISCONNECT, 1, b""), MP),
    "subscribe without filters": (m.subscribe(1, [], version=5), MP),
    "unsubscribe without filters": (m.unsubscribe(1, [], version=5), MP),
    "subscription qos 3": (m.subscribe(1, [("a/b", 3)], version=5), MP),
    "subscription reserved bits": (m.subscribe(1, [("a/b", 0xC0)], version=5), MP),
    "retain handling 3": (m.subscribe(1, [("a/b", 0x30)], version=5), MP),
    "no-local on shared": (m.subscribe(1, [("$share/g/a", 0x04)], version=5), MP),
    "publish pid 0": (m.publish("a/b", b"x", qos=1, pid=0, version=5), MP),
    "qos2 publish pid 0": (m.publish("a/b", b"x", qos=2, pid=0, version=5), MP),
    "subscribe pid 0": (m.subscribe(0, "a/b", version=5), MP),
    "unsubscribe pid 0": (m.unsubscribe(0, "a/b", version=5), MP),
    "topic alias 0": (m.publish("a/b", b"x", version=5, props=[(m.TOPIC_ALIAS, 0)]), (m.RC_TOPIC_ALIAS_INVALID,)),
    "topic alias above maximum": (m.publish("a/b", b"x", version=5, props=[(m.TOPIC_ALIAS, 65)]),
                                  (m.RC_TOPIC_ALIAS_INVALID,)),
    "alias never set": (m.publish("", b"x", version=5, props=[(m.TOPIC_ALIAS, 7)]),
                        (m.RC_PROTOCOL_ERROR, m.RC_TOPIC_ALIAS_INVALID)),
    "duplicate payload format": (m.publish("a/b", b"x", version=5, props=[(1, 0), (1, 0)]), MP),
    "duplicate message expiry": (m.publish("a/b", b"x", version=5, props=[(2, 5), (2, 6)]), MP),
    "duplicate topic alias": (m.publish("a/b", b"x", version=5, props=[(0x23, 1), (0x23, 2)]),
                              MP + (m.RC_TOPIC_ALIAS_INVALID,)),
    "subscription id in publish": (m.publish("a/b", b"x", version=5, props=[(0x0B, 1)]), MP),
    "session expiry in publish": (m.publish("a/b", b"x", version=5, props=[(0x11, 1)]), MP),
    "unknown property id": (m.publish("a/b", b"x", version=5, props=_props_raw(b"\x7f\x00")), MP),
    "truncated string property": (m.publish("a/b", b"x", version=5, props=_props_raw(b"\x03\x00\x09ab")), MP),
    "property length past packet": (m.packet(m.PUBLISH, 0, m.enc_str("a/b") + m.enc_varint(500) + b"\x01\x00"), MP),
    "subscription id 0": (m.subscribe(1, "a/b", props=[(0x0B, 0)], version=5), MP),
    "duplicate subscription id": (m.subscribe(1, "a/b", props=[(0x0B, 1), (0x0B, 2)], version=5), MP),
    "auth without method": (m.packet(m.AUTH, 0, b"\x18\x00"), MP),
}


@pytest.mark.parametrize("name", list(V5_BAD))
def test_v5_bad_packet(broker, good, name):
    pkt, codes = V5_BAD[name]
    c = m.connected(broker, 5)
    c.send(pkt)
    m.assert_closed_with(c, codes=codes)
    good.check()


V4_BAD = {
    "empty topic": m.publish("", b"x", qos=1, pid=1),
    "wildcard in topic": m.publish("a/+/b", b"x"),
    "qos 3": m.publish("a/b", b"x", pid=1, flags=0x06),
    "invalid utf-8 topic": m.publish(b"a/\xff", b"x"),
    "U+0000 in topic": m.publish("a\x00", b"x"),
    "invalid utf-8 filter": m.subscribe(1, [(b"\xc0\xaf", 0)]),
    "subscribe flags 0": m.subscribe(1, "a/b", flags=0),
    "pubrel flags 0": m.pubrel(1, flags=0),
    "subscribe without filters": m.subscribe(1, []),
    "subscription qos 3": m.subscribe(1, [("a/b", 3)]),
    "subscription reserved bits": m.subscribe(1, [("a/b", 0x04)]),
    "publish pid 0": m.publish("a/b", b"x", qos=1, pid=0),
    "subscribe pid 0": m.subscribe(0, "a/b"),
}


@pytest.mark.parametrize("name", list(V4_BAD))
def test_v311_bad_packet(broker, good, name):
    c = m.connected(broker, 4)
    c.send(V4_BAD[name])
    m.assert_closed_with(c)
    good.check()


# -- bad CONNECT packets ----------------------------------------------------------------

def _connect5(**kw):
    kw.setdefault("client_id", "bad-connect")
    return m.connect(version=5, **kw)


BAD_CONNECTS = {
    "invalid utf-8 client id (5.0)": (5, _connect5(client_id=b"\xff\xfe")),
    "U+0000 in client id (5.0)": (5, _connect5(client_id="a\x00b")),
    "invalid utf-8 client id (3.1.1)": (4, m.connect(b"id\xc3")),
    "U+0000 in client id (3.1.1)": (4, m.connect("id\x00")),
    "invalid utf-8 username": (5, _connect5(username=b"\xff")),
    "invalid utf-8 will topic": (5, _connect5(will_topic=b"w/\xff", will_payload=b"x")),
    "wildcard will topic": (4, m.connect("wt", will_topic="w/#", will_payload=b"x")),
    "reserved connect flag": (4, m.connect("rf", flags=0x03)),
    "will qos 3": (4, m.connect("wq", flags=0x1E, will_topic="w", will_payload=b"x")),
    "will flags without will": (4, m.connect("wf", flags=0x2A)),
    "password without username (3.1.1)": (4, m.connect("pw", flags=0x42, password=b"pw")),
    "duplicate session expiry": (5, _connect5(props=[(0x11, 10), (0x11, 20)])),
    "duplicate receive maximum": (5, _connect5(props=[(0x21, 10), (0x21, 10)])),
    "receive maximum 0": (5, _connect5(props=[(0x21, 0)])),
    "maximum packet size 0": (5, _connect5(props=[(0x27, 0)])),
    "topic alias in connect": (5, _connect5(props=[(0x23, 1)])),
    "wrong-type receive maximum": (5, _connect5(props=_props_raw(b"\x21\x05"))),
    "unknown connect property": (5, _connect5(props=_props_raw(b"\x7e\x00\x00"))),
    "duplicate will delay": (5, _connect5(will_topic="w", will_props=[(0x18, 1), (0x18, 2)])),
    "session expiry in will": (5, _connect5(will_topic="w", will_props=[(0x11, 1)])),
    "topic alias in will": (5, _connect5(will_topic="w", will_props=[(0x23, 1)])),
    "wrong-type will property": (5, _connect5(will_topic="w", will_props=_props_raw(b"\x03\x00\x20x"))),
    "duplicate will content type": (5, _connect5(will_topic="w", will_props=[(0x03, "a"), (0x03, "b")])),
}


@pytest.mark.parametrize("name", list(BAD_CONNECTS))
def test_bad_connect(broker, good, name):
    version, pkt = BAD_CONNECTS[name]
    c = m.RawClient(broker, version=version)
    c.send(pkt)
    m.assert_connect_refused(c, codes=MP + (m.RC_CLIENT_ID_NOT_VALID, m.RC_TOPIC_NAME_INVALID,
                                            m.RC_PACKET_TOO_LARGE))
    good.check()
