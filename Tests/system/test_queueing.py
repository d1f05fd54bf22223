"""Requirement 3 (continued): offline queueing for persistent sessions."""

import time

import pytest

import mqttraw as m
from clients import Client, connect_props

MAX_QUEUED = 5


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(mqtt={"max_queued_messages": MAX_QUEUED}, sys={"interval": 1})


def offline_subscriber(broker, cid, topic, version, qos=1):
    """Create a persistent session subscribed to topic, then go offline."""
    if version == 5:
        c = Client(broker, cid, version=5, clean=True, properties=connect_props(SessionExpiryInterval=300))
    else:
        Client(broker, cid, version=4, clean=True).disconnect()
        c = Client(broker, cid, version=4, clean=False)
    c.subscribe(topic, qos=qos)
    c.disconnect()


def reconnect(broker, cid, version):
    if version == 5:
        c = Client(broker, cid, version=5, clean=False, properties=connect_props(SessionExpiryInterval=300))
    else:
        c = Client(broker, cid, version=4, clean=False)
    assert c.session_present
    return c


def publish_all(broker, topic, payloads, qos=1):
    pub = Client(broker)
    for p, q in zip(payloads, qos if isinstance(qos, list) else [qos] * len(payloads)):
        pub.publish(topic, p, qos=q)
    pub.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_messages_queued_while_offline(broker, uniq, version):
    cid = f"{uniq}-off"
    offline_subscriber(broker, cid, f"{uniq}/t", version)
    payloads = [b"m%d" % i for i in range(MAX_QUEUED)]
    publish_all(broker, f"{uniq}/t", payloads)
    c = reconnect(broker, cid, version)
    got = c.collect(MAX_QUEUED)
    assert [x.payload for x in got] == payloads
    assert all(x.qos == 1 for x in got)
    c.expect_none(1.0)
    c.disconnect()


def test_qos2_messages_queued_while_offline(broker, uniq):
    cid = f"{uniq}-off2"
    offline_subscriber(broker, cid, f"{uniq}/t", 5, qos=2)
    publish_all(broker, f"{uniq}/t", [b"a", b"b"], qos=2)
    c = reconnect(broker, cid, 5)
    got = c.collect(2)
    assert [(x.payload, x.qos) for x in got] == [(b"a", 2), (b"b", 2)]
    c.expect_none(1.0)
    c.disconnect()


def read_sys_counter(client, topic, timeout=5.0):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        for msg in client.drain(0.2):
            if msg.topic == topic:
                value = float(msg.payload)
        if value is not None:
            return value
    raise AssertionError(f"no {topic} within {timeout}s")


def test_queue_bounded_and_dropped_counter(broker, uniq):
    dropped_topic = broker.sys_topic("metrics/messages/dropped")
    sysc = Client(broker)
    sysc.subscribe(dropped_topic)
    before = read_sys_counter(sysc, dropped_topic)

    cid = f"{uniq}-bound"
    offline_subscriber(broker, cid, f"{uniq}/t", 4)
    n = 2 * MAX_QUEUED
    payloads = [b"%d" % i for i in range(n)]
    publish_all(broker, f"{uniq}/t", payloads)
    c = reconnect(broker, cid, 4)
    got = [x.payload for x in c.collect(MAX_QUEUED)]
    c.expect_none(1.5)
    assert got in (payloads[:MAX_QUEUED], payloads[-MAX_QUEUED:]), \
        f"expected the oldest or the newest {MAX_QUEUED} messages, got {got}"
    c.disconnect()

    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline and after < before + MAX_QUEUED:
        after = read_sys_counter(sysc, dropped_topic)
    assert after >= before + MAX_QUEUED, f"dropped counter went from {before} to {after}"
    sysc.disconnect()


def test_queue_qos0_true_queues_qos0(broker, uniq):
    cid = f"{uniq}-q0"
    offline_subscriber(broker, cid, f"{uniq}/t", 4)
    publish_all(broker, f"{uniq}/t", [b"zero", b"one"], qos=[0, 1])
    c = reconnect(broker, cid, 4)
    got = c.collect(2)
    assert [(x.payload, x.qos) for x in got] == [(b"zero", 0), (b"one", 1)]
    c.disconnect()


def test_queue_qos0_false_drops_qos0(broker_factory, uniq):
    b = broker_factory(mqtt={"queue_qos0": False})
    cid = f"{uniq}-noq0"
    offline_subscriber(b, cid, f"{uniq}/t", 4)
    publish_all(b, f"{uniq}/t", [b"zero", b"one", b"zero again"], qos=[0, 1, 0])
    c = reconnect(b, cid, 4)
    got = c.collect(1)
    assert got[0].payload == b"one"
    c.expect_none(1.0)
    c.disconnect()


def test_queue_qos0_false_still_delivers_qos0_online(broker_factory, uniq):
    b = broker_factory(mqtt={"queue_qos0": False})
    sub = Client(b, f"{uniq}-on", version=4, clean=False)
    sub.subscribe(f"{uniq}/t", qos=1)
    publish_all(b, f"{uniq}/t", [b"zero"], qos=0)
    assert sub.get().payload == b"zero"
    sub.disconnect()


def test_queued_messages_survive_v5_session_but_not_expiry(broker, uniq):
    cid = f"{uniq}-qexp"
    c = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=1))
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    publish_all(broker, f"{uniq}/t", [b"lost"])
    time.sleep(2.5)
    c = Client(broker, cid, clean=False, properties=connect_props(SessionExpiryInterval=1))
    assert not c.session_present
    c.expect_none(1.0)
    c.disconnect()
