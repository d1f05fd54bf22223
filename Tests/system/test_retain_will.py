"""Requirement 5 (part): retained messages and wills."""

import time

import pytest

import mqttraw as m
from clients import Client, props
from paho.mqtt.packettypes import PacketTypes


# -- retained ---------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_retained_set_replace_clear(broker, uniq, version):
    topic = f"{uniq}/r"
    pub = Client(broker, version=version)
    pub.publish(topic, b"v1", qos=1, retain=True)
    s = Client(broker, version=version)
    s.subscribe(topic, qos=1)
    msg = s.get()
    assert (msg.payload, msg.retain, msg.topic) == (b"v1", True, topic)
    s.expect_none(0.5)
    s.disconnect()

    pub.publish(topic, b"v2", qos=1, retain=True)
    s = Client(broker, version=version)
    s.subscribe(topic, qos=1)
    assert [(x.payload, x.retain) for x in s.collect(1) + s.drain(0.5)] == [(b"v2", True)]
    s.disconnect()

    pub.publish(topic, b"", qos=1, retain=True)
    s = Client(broker, version=version)
    s.subscribe(topic, qos=1)
    s.expect_none(1.0)
    s.disconnect()
    pub.disconnect()


def test_retained_delivered_for_wildcard_subscription(broker, uniq):
    pub = Client(broker)
    for t in ("a", "b/c", "d"):
        pub.publish(f"{uniq}/{t}", t.encode(), qos=1, retain=True)
    s = Client(broker)
    s.subscribe(f"{uniq}/#", qos=1)
    got = s.collect(3)
    assert sorted(x.topic for x in got) == sorted(f"{uniq}/{t}" for t in ("a", "b/c", "d"))
    assert all(x.retain for x in got)
    s.disconnect()
    for t in ("a", "b/c", "d"):
        pub.publish(f"{uniq}/{t}", b"", qos=1, retain=True)
    pub.disconnect()


def test_retained_qos_is_min_of_stored_and_granted(broker, uniq):
    pub = Client(broker)
    pub.publish(f"{uniq}/q2", b"two", qos=2, retain=True)
    pub.publish(f"{uniq}/q0", b"zero", qos=0, retain=True)
    s = Client(broker)
    s.subscribe(f"{uniq}/q2", qos=1)
    s.subscribe(f"{uniq}/q0", qos=2)
    got = {x.payload: x.qos for x in s.collect(2)}
    assert got == {b"two": 1, b"zero": 0}
    s.disconnect()
    pub.publish(f"{uniq}/q2", b"", qos=1, retain=True)
    pub.publish(f"{uniq}/q0", b"", qos=1, retain=True)
    pub.disconnect()


def test_live_delivery_of_retained_publish_has_retain_clear_v311(broker, uniq):
    s = Client(broker, version=4)
    s.subscribe(f"{uniq}/live", qos=1)
    pub = Client(broker, version=4)
    pub.publish(f"{uniq}/live", b"now", qos=1, retain=True)
    msg = s.get()
    assert msg.payload == b"now" and msg.retain is False
    pub.publish(f"{uniq}/live", b"", qos=1, retain=True)
    clear = s.get()
    assert clear.payload == b"", "an empty retained message is still forwarded to subscribers"
    s.disconnect()
    pub.disconnect()


# -- wills --------------------------------------------------------------------------

def will_watcher(broker, topic, qos=1):
    w = Client(broker)
    w.subscribe(topic, qos=qos)
    return w


@pytest.mark.parametrize("version", [4, 5])
def test_will_published_on_abrupt_close(broker, uniq, version):
    w = will_watcher(broker, f"{uniq}/will")
    c = m.RawClient(broker, version=version)
    c.connect(f"{uniq}-w", will_topic=f"{uniq}/will", will_payload=b"bye", will_qos=1)
    c.close()
    msg = w.get()
    assert (msg.payload, msg.qos) == (b"bye", 1)
    w.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_no_will_on_normal_disconnect(broker, uniq, version):
    w = will_watcher(broker, f"{uniq}/will")
    with m.RawClient(broker, version=version) as c:
        c.connect(f"{uniq}-nw", will_topic=f"{uniq}/will", will_payload=b"should not")
        c.send(m.disconnect(version=version))
        assert c.wait_closed() == []
    w.expect_none(1.5)
    w.disconnect()


def test_no_will_on_paho_disconnect(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will")
    c = Client(broker, will={"topic": f"{uniq}/will", "payload": b"no"})
    c.disconnect()
    w.expect_none(1.5)
    w.disconnect()


def test_disconnect_with_will_message_0x04(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will")
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-w4", will_topic=f"{uniq}/will", will_payload=b"sent on purpose")
        c.send(m.disconnect(rc=m.RC_DISCONNECT_WITH_WILL, version=5))
        c.wait_closed()
    assert w.get().payload == b"sent on purpose"
    w.disconnect()


def test_will_retain(broker, uniq):
    topic = f"{uniq}/will"
    c = m.RawClient(broker, version=4)
    c.connect(f"{uniq}-wr", will_topic=topic, will_payload=b"retained will", will_qos=1, will_retain=True)
    c.close()
    time.sleep(1.0)
    s = Client(broker)
    s.subscribe(topic, qos=1)
    msg = s.get()
    assert (msg.payload, msg.retain) == (b"retained will", True)
    Client(broker).publish(topic, b"", qos=1, retain=True)
    s.disconnect()


def test_will_properties_passed_through(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will")
    c = m.RawClient(broker, version=5)
    c.connect(f"{uniq}-wp", will_topic=f"{uniq}/will", will_payload=b"{}",
              will_props=[(m.CONTENT_TYPE, "application/json"), (m.USER_PROPERTY, ("k", "v")),
                          (m.RESPONSE_TOPIC, f"{uniq}/resp"), (m.PAYLOAD_FORMAT_INDICATOR, 1)])
    c.close()
    msg = w.get()
    assert msg.prop("ContentType") == "application/json"
    assert msg.prop("UserProperty") == [("k", "v")]
    assert msg.prop("ResponseTopic") == f"{uniq}/resp"
    assert msg.prop("PayloadFormatIndicator") == 1
    w.disconnect()


def _connect_with_delayed_will(broker, cid, topic, delay=2, expiry=60):
    c = m.RawClient(broker, version=5)
    c.connect(cid, clean=True, props=[(m.SESSION_EXPIRY_INTERVAL, expiry)],
              will_topic=topic, will_payload=b"delayed", will_props=[(m.WILL_DELAY_INTERVAL, delay)])
    return c


def test_will_delay_cancelled_by_reconnect(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will")
    cid = f"{uniq}-wd"
    _connect_with_delayed_will(broker, cid, f"{uniq}/will").close()
    time.sleep(0.5)
    with m.RawClient(broker, version=5) as c:
        ack = c.connect(cid, clean=False, props=[(m.SESSION_EXPIRY_INTERVAL, 60)])
        assert ack.session_present
        w.expect_none(3.5)
        c.send(m.disconnect(version=5))
    w.expect_none(0.5)
    w.disconnect()


def test_will_delay_published_after_delay(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will")
    _connect_with_delayed_will(broker, f"{uniq}-wd2", f"{uniq}/will").close()
    closed_at = time.monotonic()
    msg = w.get(8.0)
    assert msg.payload == b"delayed"
    assert time.monotonic() - closed_at >= 1.5, "will published before its 2 s delay"
    w.disconnect()


def test_will_published_when_session_expires_before_delay(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will")
    _connect_with_delayed_will(broker, f"{uniq}-wd3", f"{uniq}/will", delay=60, expiry=1).close()
    assert w.get(8.0).payload == b"delayed"
    w.disconnect()


def test_will_with_session_expiry_zero_ignores_delay(broker, uniq):
    """Session ends at disconnect, so the will goes out then even with a will delay."""
    w = will_watcher(broker, f"{uniq}/will")
    _connect_with_delayed_will(broker, f"{uniq}-wd4", f"{uniq}/will", delay=60, expiry=0).close()
    assert w.get(5.0).payload == b"delayed"
    w.disconnect()


def test_paho_will_qos_and_properties(broker, uniq):
    w = will_watcher(broker, f"{uniq}/will", qos=2)
    c = Client(broker, will={"topic": f"{uniq}/will", "payload": b"paho will", "qos": 2,
                             "properties": props(PacketTypes.WILLMESSAGE, MessageExpiryInterval=100)})
    c.kill()
    msg = w.get()
    assert (msg.payload, msg.qos) == (b"paho will", 2)
    assert 0 < msg.prop("MessageExpiryInterval") <= 100
    w.disconnect()
