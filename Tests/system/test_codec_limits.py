"""Requirement 1: codec limits (max_packet_size, max_topic_levels)."""

import pytest

import mqttraw as m
from clients import Client

MAX_PACKET = 1024
MAX_LEVELS = 8


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(mqtt={"max_packet_size": MAX_PACKET, "max_topic_levels": MAX_LEVELS})


def publish_of_size(topic, total, version, qos=1):
    """A PUBLISH packet of exactly `total` bytes, fixed header included."""
    base = m.publish(topic, b"", qos=qos, pid=1 if qos else None, version=version)
    # The payload also grows the remaining-length field: adjust until exact.
    n = total - len(base)
    while True:
        pkt = m.publish(topic, b"x" * n, qos=qos, pid=1 if qos else None, version=version)
        if len(pkt) == total:
            return pkt
        n -= len(pkt) - total


def watcher(broker, topic):
    c = Client(broker)
    c.subscribe(topic, qos=1)
    return c


def test_v5_connack_advertises_maximum_packet_size(broker):
    with m.RawClient(broker, version=5) as c:
        ack = c.connect("mps-adv")
        assert ack.prop(m.MAXIMUM_PACKET_SIZE) == MAX_PACKET


@pytest.mark.parametrize("version", [4, 5])
def test_packet_at_limit_is_accepted(broker, uniq, version):
    w = watcher(broker, f"{uniq}/#")
    with m.RawClient(broker, version=version) as c:
        c.connect(f"{uniq}-pub")
        pkt = publish_of_size(f"{uniq}/a", MAX_PACKET, version)
        assert len(pkt) == MAX_PACKET
        c.send(pkt)
        ack = c.expect(m.PUBACK)
        assert ack.rc < 0x80
    msg = w.get()
    assert msg.topic == f"{uniq}/a"
    w.disconnect()


def test_v311_oversize_publish_closes_connection(broker, uniq):
    w = watcher(broker, f"{uniq}/#")
    with m.RawClient(broker, version=4) as c:
        c.connect(f"{uniq}-big")
        c.send(publish_of_size(f"{uniq}/a", MAX_PACKET + 1, 4))
        m.assert_closed_with(c)
    w.expect_none(1.0)
    w.disconnect()


def test_v5_oversize_publish_disconnect_0x95(broker, uniq):
    w = watcher(broker, f"{uniq}/#")
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-big5")
        c.send(publish_of_size(f"{uniq}/a", 5000, 5))
        m.assert_closed_with(c, codes=(m.RC_PACKET_TOO_LARGE,))
    w.expect_none(1.0)
    w.disconnect()


def test_v5_oversize_by_one_byte_disconnect_0x95(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-big5b")
        c.send(publish_of_size(f"{uniq}/a", MAX_PACKET + 1, 5))
        m.assert_closed_with(c, codes=(m.RC_PACKET_TOO_LARGE,))


def test_oversize_connect_is_refused(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        c.send(m.connect("x" * 2000, version=5))
        m.assert_connect_refused(c, codes=(m.RC_PACKET_TOO_LARGE,))


def test_oversize_declared_length_closes_before_body(broker):
    """Only the fixed header of a too-large packet is sent: the broker must not wait for the body."""
    with m.RawClient(broker, version=4) as c:
        c.connect("declared-big")
        c.send(bytes([0x30]) + m.enc_varint(MAX_PACKET * 10))
        m.assert_closed_with(c)


def levels(n, prefix):
    return "/".join([prefix] + [f"l{i}" for i in range(n - 1)])


@pytest.mark.parametrize("version", [4, 5])
def test_topic_at_max_levels_is_accepted(broker, uniq, version):
    topic = levels(MAX_LEVELS, uniq)
    assert topic.count("/") + 1 == MAX_LEVELS
    w = watcher(broker, f"{uniq}/#")
    with m.RawClient(broker, version=version) as c:
        c.connect(f"{uniq}-lv")
        ack = c.subscribe([(topic, 1)])
        assert ack.rcs == [1]
        ack = c.publish(topic, b"ok", qos=1)
        assert ack.rc < 0x80
    assert w.get().topic == topic
    w.disconnect()


def test_v5_publish_over_max_levels_rejected(broker, uniq):
    topic = levels(MAX_LEVELS + 1, uniq)
    w = watcher(broker, f"{uniq}/#")
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-lv5")
        c.send(m.publish(topic, b"no", qos=1, pid=7, version=5))
        p = c.recv(5.0)
        if p is not None and p.type == m.PUBACK:
            assert p.pid == 7 and p.rc == m.RC_TOPIC_NAME_INVALID, p
        else:
            # Alternatively the broker treats it as fatal.
            assert p is not None and p.type == m.DISCONNECT, p
            assert p.rc in (m.RC_TOPIC_NAME_INVALID,) + m.MALFORMED_OR_PROTOCOL
            assert c.recv(5.0) is None
    w.expect_none(1.0)
    w.disconnect()


def test_v311_publish_over_max_levels_not_delivered(broker, uniq):
    topic = levels(MAX_LEVELS + 1, uniq)
    w = watcher(broker, f"{uniq}/#")
    with m.RawClient(broker, version=4) as c:
        c.connect(f"{uniq}-lv4")
        c.send(m.publish(topic, b"no", qos=1, pid=7))
        try:
            p = c.recv(3.0)
        except TimeoutError:
            p = "timeout"
        # Either closed (None) or the broker acknowledged and dropped it.
        assert p is None or p == "timeout" or p.type == m.PUBACK, p
    w.expect_none(1.0)
    w.disconnect()


@pytest.mark.parametrize("version,failures", [(4, (0x80,)), (5, (0x80, m.RC_TOPIC_FILTER_INVALID))])
def test_subscribe_over_max_levels_rejected(broker, uniq, version, failures):
    with m.RawClient(broker, version=version) as c:
        c.connect(f"{uniq}-slv")
        c.send(m.subscribe(3, [(levels(MAX_LEVELS + 1, uniq), 1), (f"{uniq}/ok", 1)], version=version))
        ack = c.expect(m.SUBACK)
        assert ack.rcs[0] in failures, ack
        assert ack.rcs[1] == 1, ack
