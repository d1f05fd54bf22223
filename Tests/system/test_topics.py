"""Requirement 4: wildcards, $SYS isolation, shared subscriptions, overlapping subscriptions,
subscription options (no-local, retain-as-published, retain handling)."""

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

import mqttraw as m
from clients import Client, props


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(sys={"interval": 1})


MATCHING = [
    ("a/+/c", ["a/b/c", "a//c", "a/xyz/c"], ["a/b/c/d", "a/c", "b/b/c", "a/b/cc"]),
    ("a/#", ["a", "a/b", "a/b/c", "a/"], ["ab", "b/a"]),
    ("+", ["a", "b"], ["a/b", "/a"]),
    ("+/+", ["/a", "a/b", "a/"], ["a", "a/b/c"]),
    ("/+", ["/a", "/"], ["a", "a/b", "//a"]),
    ("+/b/#", ["a/b", "a/b/c", "/b/c/d"], ["a/c", "b"]),
    ("#", ["a", "a/b/c", "/"], []),
    ("a/b", ["a/b"], ["a/b/", "a", "A/b"]),
]


@pytest.mark.parametrize("flt,yes,no", MATCHING, ids=[x[0] for x in MATCHING])
def test_wildcard_matching(broker, uniq, flt, yes, no):
    # Topics are scoped under a unique first level, so rewrite filters and topics accordingly.
    scoped = lambda t: f"{uniq}/{t}"  # noqa: E731
    sub = Client(broker)
    sub.subscribe(scoped(flt), qos=1)
    pub = Client(broker)
    for t in no + yes:
        pub.publish(scoped(t), t.encode(), qos=1)
    got = sub.collect(len(yes))
    got += sub.drain(0.7)
    assert sorted(x.topic for x in got) == sorted(scoped(t) for t in yes)
    sub.disconnect()
    pub.disconnect()


def test_wildcard_at_top_level(broker, uniq):
    sub = Client(broker)
    sub.subscribe("+/lvl2/#", qos=1)
    pub = Client(broker)
    pub.publish(f"{uniq}/lvl2/x", b"1", qos=1)
    pub.publish(f"{uniq}/other/x", b"2", qos=1)
    assert sub.get().topic == f"{uniq}/lvl2/x"
    sub.expect_none(0.5)
    sub.disconnect()
    pub.disconnect()


def test_sys_not_matched_by_wildcards(broker):
    control = Client(broker)
    control.subscribe(f"$SYS/brokers/{broker.node}/#")
    assert control.get(5.0).topic.startswith("$SYS/")
    sub = Client(broker)
    sub.subscribe([("#", SubscribeOptions(qos=0)), ("+/brokers/#", SubscribeOptions(qos=0)),
                   ("+/+/+/+", SubscribeOptions(qos=0))])
    control.drain(0.1)
    control.get(5.0)  # a new $SYS round was published meanwhile
    got = [x.topic for x in sub.drain(2.5)]
    assert not [t for t in got if t.startswith("$")], got
    sub.disconnect()
    control.disconnect()


@pytest.mark.parametrize("invalid", ["a/#/b", "a/b#", "a+/b", "#/a", "a/+b"])
@pytest.mark.parametrize("version", [4, 5])
def test_invalid_filters_rejected(broker, invalid, version):
    # paho refuses to send these, so use a raw client
    with m.RawClient(broker, version=version) as c:
        c.connect(f"inv-{version}")
        c.send(m.subscribe(1, [(invalid, 0), ("valid/+", 0)], version=version))
        ack = m.assert_subscribe_rejected(c)
        assert ack is None or ack.rcs[1] == 0


# -- shared subscriptions ------------------------------------------------------

def shared_run(broker, members_by_group, topic, n=30):
    pub = Client(broker)
    for i in range(n):
        pub.publish(topic, b"%d" % i, qos=1)
    pub.disconnect()
    result = {}
    for group, members in members_by_group.items():
        per_member = [[int(x.payload) for x in c.drain(1.0)] for c in members]
        result[group] = per_member
    return result


def make_group(broker, share_filter, count, version=5):
    members = []
    for _ in range(count):
        c = Client(broker, version=version)
        assert c.subscribe(share_filter, qos=1) == [1]
        members.append(c)
    return members


def test_shared_subscription_round_robin(broker, uniq):
    members = make_group(broker, f"$share/g/{uniq}/t", 3)
    per = shared_run(broker, {"g": members}, f"{uniq}/t")["g"]
    assert sorted(sum(per, [])) == list(range(30)), f"each message exactly once: {per}"
    assert all(len(p) > 0 for p in per), f"round_robin should use every member: {[len(p) for p in per]}"
    for c in members:
        c.disconnect()


def test_shared_subscription_two_groups_and_plain_subscriber(broker, uniq):
    g1 = make_group(broker, f"$share/g1/{uniq}/+", 2)
    g2 = make_group(broker, f"$share/g2/{uniq}/#", 3)
    plain = make_group(broker, f"{uniq}/t", 1)
    res = shared_run(broker, {"g1": g1, "g2": g2, "plain": plain}, f"{uniq}/t", n=20)
    for g in ("g1", "g2", "plain"):
        assert sorted(sum(res[g], [])) == list(range(20)), f"group {g}: {res[g]}"
    for c in g1 + g2 + plain:
        c.disconnect()


def test_shared_subscription_v311_members(broker, uniq):
    members = make_group(broker, f"$share/g/{uniq}/t", 2, version=4)
    per = shared_run(broker, {"g": members}, f"{uniq}/t", n=10)["g"]
    assert sorted(sum(per, [])) == list(range(10))
    for c in members:
        c.disconnect()


def test_queue_subscription(broker, uniq):
    members = make_group(broker, f"$queue/{uniq}/t", 3)
    per = shared_run(broker, {"q": members}, f"{uniq}/t")["q"]
    assert sorted(sum(per, [])) == list(range(30)), per
    for c in members:
        c.disconnect()


def test_shared_member_leaving_gets_no_more(broker, uniq):
    members = make_group(broker, f"$share/g/{uniq}/t", 2)
    members[0].c.unsubscribe(f"$share/g/{uniq}/t")
    members[0].drain(0.5)
    per = shared_run(broker, {"g": members}, f"{uniq}/t", n=10)["g"]
    assert per[0] == [] and sorted(per[1]) == list(range(10)), per
    for c in members:
        c.disconnect()


@pytest.mark.parametrize("strategy", ["random", "round_robin", "sticky", "hash_clientid", "hash_topic"])
def test_shared_subscription_strategies(broker_factory, uniq, strategy):
    b = broker_factory(mqtt={"shared_subscription_strategy": strategy})
    members = make_group(b, f"$share/g/{uniq}/t", 3)
    per = shared_run(b, {"g": members}, f"{uniq}/t")["g"]
    assert sorted(sum(per, [])) == list(range(30)), per
    counts = [len(p) for p in per]
    if strategy == "round_robin":
        assert counts == [10, 10, 10], counts
    if strategy in ("sticky", "hash_clientid", "hash_topic"):
        # one publisher, one topic: every message goes to the same member
        assert sorted(counts) == [0, 0, 30], counts
    for c in members:
        c.disconnect()


# -- overlapping subscriptions -------------------------------------------------

def test_overlapping_subscriptions_delivered_once_with_all_ids(broker, uniq):
    c = Client(broker)
    c.subscribe(f"{uniq}/+", qos=0, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=1))
    c.subscribe(f"{uniq}/#", qos=2, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=2))
    c.subscribe(f"{uniq}/a", qos=1)  # no identifier
    pub = Client(broker)
    pub.publish(f"{uniq}/a", b"once", qos=2)
    msg = c.get()
    c.expect_none(1.0)
    assert msg.qos == 2, "maximum QoS of the matching subscriptions"
    assert sorted(msg.prop("SubscriptionIdentifier", [])) == [1, 2]
    c.disconnect()
    pub.disconnect()


def test_overlapping_subscriptions_v311_once_max_qos(broker, uniq):
    c = Client(broker, version=4)
    c.subscribe(f"{uniq}/+", qos=1)
    c.subscribe(f"{uniq}/#", qos=0)
    pub = Client(broker)
    pub.publish(f"{uniq}/a", b"once", qos=1)
    msg = c.get()
    c.expect_none(1.0)
    assert msg.qos == 1
    c.disconnect()
    pub.disconnect()


def test_subscription_identifier_on_single_match(broker, uniq):
    c = Client(broker)
    c.subscribe(f"{uniq}/x", qos=1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=268435455))
    Client(broker).publish(f"{uniq}/x", b"id", qos=1)
    assert c.get().prop("SubscriptionIdentifier") == [268435455]
    c.disconnect()


# -- subscription options -------------------------------------------------------

def test_no_local(broker, uniq):
    c = Client(broker)
    c.subscribe(f"{uniq}/nl", options=SubscribeOptions(qos=1, noLocal=True))
    other = Client(broker)
    other.subscribe(f"{uniq}/nl", qos=1)
    c.publish(f"{uniq}/nl", b"mine", qos=1)
    assert other.get().payload == b"mine"
    c.expect_none(1.0)
    other.publish(f"{uniq}/nl", b"theirs", qos=1)
    assert c.get().payload == b"theirs"
    c.disconnect()
    other.disconnect()


def test_without_no_local_own_messages_arrive(broker, uniq):
    c = Client(broker)
    c.subscribe(f"{uniq}/l", qos=1)
    c.publish(f"{uniq}/l", b"echo", qos=1)
    assert c.get().payload == b"echo"
    c.disconnect()


def test_retain_as_published(broker, uniq):
    rap = Client(broker)
    rap.subscribe(f"{uniq}/r", options=SubscribeOptions(qos=1, retainAsPublished=True))
    plain = Client(broker)
    plain.subscribe(f"{uniq}/r", options=SubscribeOptions(qos=1, retainAsPublished=False))
    pub = Client(broker)
    pub.publish(f"{uniq}/r", b"kept", qos=1, retain=True)
    assert rap.get().retain is True
    assert plain.get().retain is False
    pub.publish(f"{uniq}/r", b"", qos=1, retain=True)
    for c in (rap, plain, pub):
        c.disconnect()


def test_retain_handling(broker, uniq):
    topic = f"{uniq}/rh"
    pub = Client(broker)
    pub.publish(topic, b"retained", qos=1, retain=True)
    counts = {}
    for rh in (0, 1, 2):
        c = Client(broker)
        c.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=rh))
        first = c.drain(1.0)
        c.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=rh))  # existing subscription
        second = c.drain(1.0)
        counts[rh] = (len(first), len(second))
        assert all(x.retain and x.payload == b"retained" for x in first + second)
        c.disconnect()
    assert counts == {0: (1, 1), 1: (1, 0), 2: (0, 0)}, counts
    pub.publish(topic, b"", qos=1, retain=True)
    pub.disconnect()


def test_many_subscribers_each_get_one_copy(broker, uniq):
    subs = [Client(broker) for _ in range(10)]
    for s in subs:
        s.subscribe(f"{uniq}/fan", qos=1)
    Client(broker).publish(f"{uniq}/fan", b"fan", qos=1)
    for s in subs:
        assert s.get().payload == b"fan"
        s.expect_none(0.2)
        s.disconnect()


def test_max_subscriptions(broker_factory, uniq):
    """mqtt.max_subscriptions: the filter past the limit gets 0x97 (5.0) / 0x80 (3.1.1), the
    others in the same SUBSCRIBE are granted, a repeated filter still replaces, and an
    UNSUBSCRIBE makes room again."""
    b = broker_factory(mqtt={"max_subscriptions": 2})
    c = Client(b)
    codes = c.subscribe([(f"{uniq}/a", SubscribeOptions(qos=1)), (f"{uniq}/b", SubscribeOptions(qos=1)),
                         (f"{uniq}/c", SubscribeOptions(qos=1))])
    assert [int(getattr(x, "value", x)) for x in codes] == [1, 1, 0x97]
    again = c.subscribe(f"{uniq}/a", qos=0)
    assert [int(getattr(x, "value", x)) for x in again] == [0], "a repeated filter replaces the old one"
    c.unsubscribe(f"{uniq}/b")
    assert [int(getattr(x, "value", x)) for x in c.subscribe(f"{uniq}/c", qos=1)] == [1]
    pub = Client(b)
    pub.publish(f"{uniq}/c", b"x", qos=1)
    assert c.get().topic == f"{uniq}/c"
    c.disconnect()
    v3 = Client(b, version=4)
    v3.subscribe(f"{uniq}/x", qos=1)
    v3.subscribe(f"{uniq}/y", qos=1)
    assert [int(getattr(x, "value", x)) for x in v3.subscribe(f"{uniq}/z", qos=1)] == [0x80]
    v3.disconnect()
    pub.disconnect()


# "é" precomposed (C3 A9) and "e" + combining acute (65 CC 81): one text after Unicode
# normalization, two topics in MQTT.
PRE, DEC = "caf\u00e9", "cafe\u0301"


def _got(c, n):
    return sorted((m.topic.encode(), m.payload) for m in c.collect(n) + c.drain(0.5))


def test_topics_compare_bytes_without_normalization(broker, uniq):
    """MQTT-4.7.3-4: the server performs no normalization of topic names or filters. Routing,
    retained messages, a session's own subscriptions and client ids all compare bytes."""
    pre, dec = f"{uniq}/{PRE}", f"{uniq}/{DEC}"
    assert pre != dec and pre.encode() != dec.encode()
    sub_pre, sub_dec = Client(broker), Client(broker)
    sub_pre.subscribe(pre, qos=1)
    sub_dec.subscribe(dec, qos=1)
    pub = Client(broker)
    pub.publish(pre, b"pre", qos=1, retain=True)
    pub.publish(dec, b"dec", qos=1, retain=True)
    assert _got(sub_pre, 1) == [(pre.encode(), b"pre")]
    assert _got(sub_dec, 1) == [(dec.encode(), b"dec")]
    # Two retained messages, not one replacing the other.
    late = Client(broker)
    late.subscribe(f"{uniq}/#", qos=1)
    assert _got(late, 2) == sorted([(pre.encode(), b"pre"), (dec.encode(), b"dec")])
    # One session, two subscriptions: unsubscribing one leaves the other.
    both = Client(broker)
    codes = both.subscribe([(f"{uniq}/s/{PRE}", SubscribeOptions(qos=1)), (f"{uniq}/s/{DEC}", SubscribeOptions(qos=1))])
    assert [int(getattr(x, "value", x)) for x in codes] == [1, 1]
    both.unsubscribe(f"{uniq}/s/{DEC}")
    pub.publish(f"{uniq}/s/{DEC}", b"gone", qos=1)
    pub.publish(f"{uniq}/s/{PRE}", b"kept", qos=1)
    assert _got(both, 1) == [(f"{uniq}/s/{PRE}".encode(), b"kept")]
    # Two client ids, two sessions: the second CONNECT takes nothing over.
    a = Client(broker, client_id=f"{uniq}-{PRE}")
    b = Client(broker, client_id=f"{uniq}-{DEC}")
    assert not a.disconnected.wait(0.5), "a client id only canonically equal to another is another client"
    for c in (sub_pre, sub_dec, pub, late, both, a, b):
        c.disconnect()
    clean = Client(broker)
    for t in (pre, dec):
        clean.publish(t, b"", qos=1, retain=True)
    clean.disconnect()


def test_no_local_names_the_client_by_its_bytes(broker, uniq):
    """No Local skips the publisher's own client id, not another id that is only
    canonically equal to it."""
    c = Client(broker, client_id=f"{uniq}-{PRE}")
    c.subscribe(f"{uniq}/nl", options=SubscribeOptions(qos=1, noLocal=True))
    other = Client(broker, client_id=f"{uniq}-{DEC}")
    other.publish(f"{uniq}/nl", b"theirs", qos=1)
    assert c.get().payload == b"theirs"
    c.publish(f"{uniq}/nl", b"mine", qos=1)
    c.expect_none(0.5)
    c.disconnect()
    other.disconnect()
