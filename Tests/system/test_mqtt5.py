"""Requirement 5 (part): MQTT 5.0 features - message expiry, topic aliases, maximum packet size,
property pass-through, request/response information, reason strings."""

import time

import pytest

import mqttraw as m
from clients import Client, connect_props, props

ALIAS_MAX = 8


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(mqtt={"max_topic_alias": ALIAS_MAX})


# -- message expiry ---------------------------------------------------------------

def test_queued_message_expiry_and_decrement(broker, uniq):
    cid = f"{uniq}-mx"
    c = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=300))
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    pub = Client(broker)
    pub.publish(f"{uniq}/t", b"short", qos=1, properties=props(MessageExpiryInterval=1))
    pub.publish(f"{uniq}/t", b"long", qos=1, properties=props(MessageExpiryInterval=60))
    pub.publish(f"{uniq}/t", b"forever", qos=1)
    time.sleep(2.5)
    c = Client(broker, cid, clean=False, properties=connect_props(SessionExpiryInterval=300))
    assert c.session_present
    got = c.collect(2) + c.drain(1.0)
    assert [x.payload for x in got] == [b"long", b"forever"], got
    remaining = got[0].prop("MessageExpiryInterval")
    assert remaining is not None and 0 < remaining <= 58, f"expiry not decremented: {remaining}"
    assert got[1].prop("MessageExpiryInterval") is None
    c.disconnect()
    Client(broker, cid, clean=True).disconnect()
    pub.disconnect()


def test_live_message_expiry_forwarded(broker, uniq):
    s = Client(broker)
    s.subscribe(f"{uniq}/t", qos=1)
    Client(broker).publish(f"{uniq}/t", b"x", qos=1, properties=props(MessageExpiryInterval=60))
    v = s.get().prop("MessageExpiryInterval")
    assert v is not None and 55 <= v <= 60
    s.disconnect()


def test_retained_message_expires(broker, uniq):
    pub = Client(broker)
    pub.publish(f"{uniq}/r", b"old news", qos=1, retain=True, properties=props(MessageExpiryInterval=1))
    time.sleep(2.5)
    s = Client(broker)
    s.subscribe(f"{uniq}/r", qos=1)
    s.expect_none(1.0)
    s.disconnect()
    pub.disconnect()


# -- topic aliases: client -> broker -------------------------------------------

def test_inbound_topic_alias_set_and_reused(broker, uniq):
    w = Client(broker)
    w.subscribe(f"{uniq}/#", qos=1)
    with m.RawClient(broker, version=5) as c:
        ack = c.connect(f"{uniq}-ta")
        assert ack.prop(m.TOPIC_ALIAS_MAXIMUM) == ALIAS_MAX
        steps = [(f"{uniq}/a", 1, b"1"), ("", 1, b"2"), (f"{uniq}/b", ALIAS_MAX, b"3"),
                 ("", ALIAS_MAX, b"4"), (f"{uniq}/c", 1, b"5"), ("", 1, b"6")]
        for i, (topic, alias, payload) in enumerate(steps, 1):
            a = c.publish(topic, payload, qos=1, pid=i, props=[(m.TOPIC_ALIAS, alias)])
            assert a.rc < 0x80, a
        assert c.ping().type == m.PINGRESP
    got = [(x.topic, x.payload) for x in w.collect(6)]
    assert got == [(f"{uniq}/a", b"1"), (f"{uniq}/a", b"2"), (f"{uniq}/b", b"3"), (f"{uniq}/b", b"4"),
                   (f"{uniq}/c", b"5"), (f"{uniq}/c", b"6")]
    w.disconnect()


@pytest.mark.parametrize("alias", [0, ALIAS_MAX + 1, 65535])
def test_inbound_topic_alias_out_of_range(broker, uniq, alias):
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-tabad")
        c.send(m.publish(f"{uniq}/a", b"x", qos=1, pid=1, version=5, props=[(m.TOPIC_ALIAS, alias)]))
        m.assert_closed_with(c, codes=(m.RC_TOPIC_ALIAS_INVALID,))


def test_inbound_alias_never_set(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-taunset")
        c.send(m.publish("", b"x", qos=1, pid=1, version=5, props=[(m.TOPIC_ALIAS, 3)]))
        m.assert_closed_with(c, codes=(m.RC_PROTOCOL_ERROR, m.RC_TOPIC_ALIAS_INVALID))


def test_aliases_are_per_connection(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-tapc")
        c.publish(f"{uniq}/a", b"x", qos=1, pid=1, props=[(m.TOPIC_ALIAS, 2)])
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-tapc")
        c.send(m.publish("", b"x", qos=1, pid=1, version=5, props=[(m.TOPIC_ALIAS, 2)]))
        m.assert_closed_with(c, codes=(m.RC_PROTOCOL_ERROR, m.RC_TOPIC_ALIAS_INVALID))


def test_topic_alias_disabled(broker_factory, uniq):
    b = broker_factory(mqtt={"max_topic_alias": 0})
    with m.RawClient(b, version=5) as c:
        ack = c.connect(f"{uniq}-ta0")
        assert ack.prop(m.TOPIC_ALIAS_MAXIMUM, 0) == 0
        c.send(m.publish(f"{uniq}/a", b"x", qos=1, pid=1, version=5, props=[(m.TOPIC_ALIAS, 1)]))
        m.assert_closed_with(c, codes=(m.RC_TOPIC_ALIAS_INVALID,))


# -- topic aliases: broker -> client --------------------------------------------

def test_outbound_topic_alias_assigned(broker, uniq):
    with m.RawClient(broker, version=5) as s:
        s.connect(f"{uniq}-oa", props=[(m.TOPIC_ALIAS_MAXIMUM, 10)])
        s.subscribe([(f"{uniq}/out", 0)])
        pub = Client(broker)
        pub.publish(f"{uniq}/out", b"first", qos=1)
        pub.publish(f"{uniq}/out", b"second", qos=1)
        p1, p2 = s.expect(m.PUBLISH), s.expect(m.PUBLISH)
        assert p1.topic == f"{uniq}/out" and p1.payload == b"first"
        alias = p1.prop(m.TOPIC_ALIAS)
        assert alias is not None and 1 <= alias <= 10, p1
        assert p2.topic == "" and p2.prop(m.TOPIC_ALIAS) == alias and p2.payload == b"second", p2
        pub.disconnect()


def test_outbound_aliases_respect_client_maximum(broker, uniq):
    topics = [f"{uniq}/o{i}" for i in range(5)]
    with m.RawClient(broker, version=5) as s:
        s.connect(f"{uniq}-oa2", props=[(m.TOPIC_ALIAS_MAXIMUM, 2)])
        s.subscribe([(f"{uniq}/#", 0)])
        pub = Client(broker)
        for _ in range(3):
            for t in topics:
                pub.publish(t, t.encode(), qos=1)
        pub.disconnect()
        for _ in range(15):
            p = s.expect(m.PUBLISH)
            alias = p.prop(m.TOPIC_ALIAS)
            assert alias is None or 1 <= alias <= 2, p
            assert p.resolved_topic == p.payload.decode(), p


def test_no_outbound_aliases_unless_allowed(broker, uniq):
    with m.RawClient(broker, version=5) as s:
        s.connect(f"{uniq}-oa3")
        s.subscribe([(f"{uniq}/out", 0)])
        pub = Client(broker)
        for _ in range(3):
            pub.publish(f"{uniq}/out", b"x", qos=1)
        pub.disconnect()
        for _ in range(3):
            p = s.expect(m.PUBLISH)
            assert p.topic == f"{uniq}/out" and p.prop(m.TOPIC_ALIAS) is None


# -- maximum packet size towards the client ------------------------------------------

def test_client_maximum_packet_size_respected(broker, uniq):
    s = Client(broker, properties=connect_props(MaximumPacketSize=100))
    s.subscribe(f"{uniq}/t", qos=1)
    pub = Client(broker)
    pub.publish(f"{uniq}/t", b"B" * 1000, qos=1)
    pub.publish(f"{uniq}/t", b"small", qos=1)
    assert s.get().payload == b"small"
    s.expect_none(1.0)
    assert s.c.is_connected()
    s.disconnect()
    pub.disconnect()


# -- pass-through of PUBLISH properties ------------------------------------------------

PASS_PROPS = dict(PayloadFormatIndicator=1, ContentType="application/json; charset=utf-8",
                  ResponseTopic="reply/here", CorrelationData=b"\x00\x01corr\xff",
                  UserProperty=[("a", "1"), ("b", "2"), ("a", "3"), ("ünï", "cødé")])


def check_pass_props(msg):
    for k, v in PASS_PROPS.items():
        assert msg.prop(k) == v, f"{k}: sent {v!r}, got {msg.prop(k)!r}"


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_properties_passed_through(broker, uniq, qos):
    s = Client(broker)
    s.subscribe(f"{uniq}/p", qos=2)
    pub = Client(broker)
    pub.publish(f"{uniq}/p", b'{"x": 1}', qos=qos, properties=props(**PASS_PROPS))
    msg = s.get()
    assert msg.payload == b'{"x": 1}'
    check_pass_props(msg)
    s.disconnect()
    pub.disconnect()


def test_retained_message_keeps_properties(broker, uniq):
    pub = Client(broker)
    pub.publish(f"{uniq}/rp", b"{}", qos=1, retain=True, properties=props(**PASS_PROPS))
    s = Client(broker)
    s.subscribe(f"{uniq}/rp", qos=1)
    msg = s.get()
    assert msg.retain
    check_pass_props(msg)
    pub.publish(f"{uniq}/rp", b"", qos=1, retain=True)
    s.disconnect()
    pub.disconnect()


def test_request_response_pattern(broker, uniq):
    responder = Client(broker)
    responder.subscribe(f"{uniq}/req", qos=1)
    requester = Client(broker)
    requester.subscribe(f"{uniq}/resp", qos=1)
    requester.publish(f"{uniq}/req", b"ping", qos=1,
                      properties=props(ResponseTopic=f"{uniq}/resp", CorrelationData=b"42"))
    req = responder.get()
    responder.publish(req.prop("ResponseTopic"), b"pong", qos=1,
                      properties=props(CorrelationData=req.prop("CorrelationData")))
    resp = requester.get()
    assert (resp.payload, resp.prop("CorrelationData")) == (b"pong", b"42")
    responder.disconnect()
    requester.disconnect()


# -- request/response information, reason strings ---------------------------------

def test_response_information_when_requested(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        ack = c.connect(f"{uniq}-ri", props=[(m.REQUEST_RESPONSE_INFORMATION, 1)])
        info = ack.prop(m.RESPONSE_INFORMATION)
        assert isinstance(info, str) and info, ack
    with m.RawClient(broker, version=5) as c:
        ack = c.connect(f"{uniq}-ri0")
        assert ack.prop(m.RESPONSE_INFORMATION) is None


def test_client_reason_strings_accepted(broker, uniq):
    w = Client(broker)
    w.subscribe(f"{uniq}/will", qos=1)
    with m.RawClient(broker, version=5) as s:
        s.connect(f"{uniq}-rs", will_topic=f"{uniq}/will", will_payload=b"no")
        s.subscribe([(f"{uniq}/t", 1)])
        Client(broker).publish(f"{uniq}/t", b"x", qos=1)
        p = s.expect(m.PUBLISH)
        s.send(m.puback(p.pid, rc=0, props=[(m.REASON_STRING, "thanks"), (m.USER_PROPERTY, ("k", "v"))],
                        version=5))
        assert s.ping().type == m.PINGRESP
        s.send(m.disconnect(rc=0, props=[(m.REASON_STRING, "done for today")], version=5))
        assert s.wait_closed() == []
    w.expect_none(1.0)
    w.disconnect()


def test_no_reason_string_when_problem_information_not_requested(broker, uniq):
    deep = "/".join(["l"] * 200)  # over the default max_topic_levels: a non-fatal SUBACK failure
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-rpi", props=[(m.REQUEST_PROBLEM_INFORMATION, 0)])
        c.send(m.subscribe(1, [(deep, 1)], version=5))
        ack = c.expect(m.SUBACK)
        assert ack.rcs[0] >= 0x80
        c.send(m.pubrel(99))  # unknown packet id: PUBCOMP 0x92
        comp = c.expect(m.PUBCOMP)
        for p in (ack, comp):
            assert p.prop(m.REASON_STRING) is None and not p.props_all(m.USER_PROPERTY), p


def test_subscription_identifiers_available(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        ack = c.connect(f"{uniq}-sia")
        assert ack.prop(m.SUBSCRIPTION_IDENTIFIER_AVAILABLE, 1) == 1
        assert ack.prop(m.SHARED_SUBSCRIPTION_AVAILABLE, 1) == 1
        assert ack.prop(m.WILDCARD_SUBSCRIPTION_AVAILABLE, 1) == 1
        assert ack.prop(m.RETAIN_AVAILABLE, 1) == 1
        assert ack.prop(m.MAXIMUM_QOS, 2) == 2
        sub = c.subscribe([(f"{uniq}/s", 1)], props=[(m.SUBSCRIPTION_IDENTIFIER, 77)])
        assert sub.rcs == [1]
