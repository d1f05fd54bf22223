"""Conformance points found by checking the broker byte by byte against outside suites
(issue 10): zero-length topic filters, a CONNACK over the client's Maximum Packet Size,
acknowledgements that break the QoS flow, control characters (strict_utf8), and the drain
after a DISCONNECT so that a client still sending reads the reason code."""

import socket
import struct
import time

import pytest

import mqttraw as m


@pytest.fixture(scope="module")
def lax(module_broker_factory):
    return module_broker_factory(mqtt={"strict_utf8": False})


# -- zero-length topic filters (MQTT-4.7.3-1) ------------------------------------------

@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
def test_zero_length_filter_v311_closes(broker, kind):
    c = m.connected(broker, 4)
    c.send(m.subscribe(1, [("", 0)]) if kind == "subscribe" else m.unsubscribe(1, [""]))
    assert c.wait_closed() == [], "3.1.1: no SUBACK/UNSUBACK, the connection is closed"


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
def test_zero_length_filter_v5_is_malformed(broker, kind):
    c = m.connected(broker, 5)
    c.send(m.subscribe(1, [("a", 0), ("", 0)], version=5) if kind == "subscribe"
           else m.unsubscribe(1, ["a", ""], version=5))
    pkts = m.assert_closed_with(c, codes=(m.RC_MALFORMED,))
    assert [p.type for p in pkts] == [m.DISCONNECT]


# -- Maximum Packet Size on CONNACK (MQTT-3.1.2-24) ---------------------------------------

def test_connack_larger_than_client_maximum_is_not_sent(broker):
    c = m.RawClient(broker, version=5)
    c.send(m.connect("tiny-max", version=5, props=[(m.MAXIMUM_PACKET_SIZE, 2)]))
    assert c.wait_closed() == [], "nothing fits in 2 bytes: the broker closes without a CONNACK"


def test_disconnect_drops_its_reason_string_to_fit(broker):
    c = m.RawClient(broker, version=5)
    c.send(m.connect("small-max", version=5, props=[(m.MAXIMUM_PACKET_SIZE, 20)]))
    assert c.expect(m.CONNACK).rc == 0
    c.send(m.connect("again", version=5))  # a second CONNECT: protocol error
    pkts = c.wait_closed()
    assert [p.type for p in pkts] == [m.DISCONNECT]
    assert pkts[0].rc == m.RC_PROTOCOL_ERROR
    assert pkts[0].prop(m.REASON_STRING) is None


# -- acknowledgements that break the QoS flow -------------------------------------------

def _subscriber_with_message(broker, version, qos, uniq):
    topic = f"flow/{uniq}"
    sub = m.connected(broker, version)
    sub.subscribe(topic, qos=qos)
    pub = m.connected(broker, 4)
    pub.publish(topic, b"x", qos=qos)
    p = sub.expect(m.PUBLISH)
    pub.close()
    return sub, p.pid


@pytest.mark.parametrize("qos,ack", [(1, m.pubrec), (1, m.pubcomp), (2, m.puback), (2, m.pubcomp)])
@pytest.mark.parametrize("version", [4, 5])
def test_wrong_acknowledgement_is_a_protocol_error(broker, uniq, version, qos, ack):
    sub, pid = _subscriber_with_message(broker, version, qos, uniq)
    sub.send(ack(pid))
    pkts = m.assert_closed_with(sub, codes=(m.RC_PROTOCOL_ERROR,))
    assert m.PUBREL not in [p.type for p in pkts], "a stray PUBREC is not answered with PUBREL"


@pytest.mark.parametrize("version", [4, 5])
def test_right_acknowledgements_keep_the_connection(broker, uniq, version):
    sub, pid = _subscriber_with_message(broker, version, 2, uniq)
    sub.send(m.pubrec(pid))
    assert sub.expect(m.PUBREL).pid == pid
    sub.send(m.pubcomp(pid))
    assert sub.ping().type == m.PINGRESP


# -- strict_utf8 -------------------------------------------------------------------------

CONTROLS = ["\x01", "\t", "\x1f", "\x7f", "\u0080", "\u009f"]


@pytest.mark.parametrize("ch", CONTROLS)
def test_control_character_in_client_id_refused(broker, ch):
    c5 = m.RawClient(broker, version=5)
    c5.send(m.connect(f"dev{ch}ice", version=5))
    pkts = m.assert_connect_refused(c5, codes=(m.RC_MALFORMED,))
    assert [p.rc for p in pkts] == [m.RC_MALFORMED]
    c4 = m.RawClient(broker, version=4)
    c4.send(m.connect(f"dev{ch}ice", version=4))
    assert c4.wait_closed() == []


@pytest.mark.parametrize("ch", CONTROLS)
def test_control_character_in_username_refused(broker, ch):
    c = m.RawClient(broker, version=5)
    c.send(m.connect("u-ctl", version=5, username=f"us{ch}er", password=b"x"))
    m.assert_connect_refused(c, codes=(m.RC_MALFORMED,))


@pytest.mark.parametrize("ch", CONTROLS)
@pytest.mark.parametrize("version", [4, 5])
def test_control_character_in_topic_or_filter(broker, version, ch):
    c = m.connected(broker, version)
    c.send(m.publish(f"a/{ch}b", b"x", version=version))
    m.assert_closed_with(c, codes=(m.RC_MALFORMED,))
    c = m.connected(broker, version)
    c.send(m.subscribe(1, [(f"a/{ch}b", 0)], version=version))
    m.assert_closed_with(c, codes=(m.RC_MALFORMED,))


def test_strict_utf8_off_passes_control_characters(lax, uniq):
    topic = f"ctl/{uniq}/\x07"
    sub = m.connected(lax, 5, client_id=f"bell\x07{uniq}")
    sub.subscribe(topic)
    pub = m.connected(lax, 4)
    pub.publish(topic, b"ding")
    p = sub.expect(m.PUBLISH)
    assert p.topic == topic and p.payload == b"ding"


# -- DISCONNECT, then drain ---------------------------------------------------------------

def test_client_still_sending_reads_the_reason_code(broker, uniq):
    """Past Receive Maximum (32 QoS 2 messages awaiting PUBREL) the broker sends DISCONNECT 0x93;
    the client goes on writing, as the Paho interoperability suite's flow-control test does. It
    must read the DISCONNECT and then an orderly end of stream, never a connection reset."""
    s = socket.create_connection((broker.host, broker.port), timeout=10)
    s.sendall(m.connect(f"flow-{uniq}", version=5))
    first = s.recv(4096)
    assert first and first[0] >> 4 == m.CONNACK
    for pid in range(1, 34):
        s.sendall(m.publish(f"drain/{uniq}", b"x", qos=2, pid=pid, version=5))
    # Keep writing after the broker gave up on us (these would make a closed socket answer RST).
    time.sleep(0.3)
    try:
        for _ in range(20):
            s.sendall(m.publish(f"drain/{uniq}", b"y" * 1000, qos=0, version=5))
    except (BrokenPipeError, ConnectionResetError) as e:
        pytest.fail(f"broker reset the connection while it should drain: {e!r}")
    data = bytearray()
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            pytest.fail(f"connection reset after {len(data)} bytes instead of an orderly close")
        if not chunk:
            break
        data += chunk
    s.close()
    kinds = []
    pos = 0
    while pos < len(data):
        rl, body = m.dec_varint(data, pos + 1)
        kinds.append((data[pos] >> 4, bytes(data[body:body + rl])))
        pos = body + rl
    discs = [b for t, b in kinds if t == m.DISCONNECT]
    assert discs and discs[0][0] == m.RC_RECEIVE_MAXIMUM_EXCEEDED, kinds
