"""Requirement 3: QoS flows, downgrade, receive maximum, in-flight windows, redelivery, ordering."""

import pytest

import mqttraw as m
from clients import Client, connect_props

RECEIVE_MAXIMUM = 4
MAX_INFLIGHT = 3


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(mqtt={"receive_maximum": RECEIVE_MAXIMUM, "max_inflight": MAX_INFLIGHT})


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_qos_matrix_with_downgrade(broker, uniq, version, pub_qos, sub_qos):
    sub = Client(broker, version=version)
    granted = sub.subscribe(f"{uniq}/q", qos=sub_qos)
    assert granted == [sub_qos]
    pub = Client(broker, version=version)
    pub.publish(f"{uniq}/q", b"payload-%d" % pub_qos, qos=pub_qos)  # waits for PUBACK / PUBCOMP
    msg = sub.get()
    assert msg.payload == b"payload-%d" % pub_qos
    assert msg.qos == min(pub_qos, sub_qos)
    sub.expect_none(0.5)
    sub.disconnect()
    pub.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_raw_qos2_flows_both_directions(broker, uniq, version):
    with m.RawClient(broker, version=version) as sub, m.RawClient(broker, version=version) as pub:
        sub.connect(f"{uniq}-s2")
        assert sub.subscribe([(f"{uniq}/t", 2)]).rcs == [2]
        pub.connect(f"{uniq}-p2")
        pub.send(m.publish(f"{uniq}/t", b"exactly once", qos=2, pid=42, version=version))
        rec = pub.expect(m.PUBREC)
        assert rec.pid == 42 and rec.rc < 0x80
        pub.send(m.pubrel(42))
        comp = pub.expect(m.PUBCOMP)
        assert comp.pid == 42 and comp.rc == 0
        p = sub.expect(m.PUBLISH)
        assert p.qos == 2 and p.payload == b"exactly once" and p.pid != 0
        sub.send(m.pubrec(p.pid))
        rel = sub.expect(m.PUBREL)
        assert rel.pid == p.pid and rel.flags == 0x2
        sub.send(m.pubcomp(p.pid))
        sub.expect_nothing(0.5)
        assert sub.ping().type == m.PINGRESP


@pytest.mark.parametrize("version", [4, 5])
def test_raw_qos1_flows_both_directions(broker, uniq, version):
    with m.RawClient(broker, version=version) as sub, m.RawClient(broker, version=version) as pub:
        sub.connect(f"{uniq}-s1")
        assert sub.subscribe([(f"{uniq}/t", 1)]).rcs == [1]
        pub.connect(f"{uniq}-p1")
        ack = pub.publish(f"{uniq}/t", b"at least once", qos=1, pid=9)
        assert ack.pid == 9 and ack.rc == 0
        p = sub.expect(m.PUBLISH)
        assert p.qos == 1 and p.payload == b"at least once" and not p.dup
        sub.send(m.puback(p.pid))
        sub.expect_nothing(0.5)


def test_v5_puback_no_matching_subscribers(broker, uniq):
    with m.RawClient(broker, version=5) as pub:
        pub.connect(f"{uniq}-nm")
        ack = pub.publish(f"{uniq}/nobody", b"x", qos=1, pid=3)
        assert ack.rc in (0x00, m.RC_NO_MATCHING_SUBSCRIBERS)


def test_receive_maximum_advertised_and_enforced(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        ack = c.connect(f"{uniq}-rm")
        assert ack.prop(m.RECEIVE_MAXIMUM) == RECEIVE_MAXIMUM
        for pid in range(1, RECEIVE_MAXIMUM + 1):
            c.send(m.publish(f"{uniq}/t", b"x", qos=2, pid=pid, version=5))
            assert c.expect(m.PUBREC).pid == pid
        c.send(m.publish(f"{uniq}/t", b"x", qos=2, pid=RECEIVE_MAXIMUM + 1, version=5))
        m.assert_closed_with(c, codes=(m.RC_RECEIVE_MAXIMUM_EXCEEDED,))


def test_receive_maximum_window_frees_on_pubcomp(broker, uniq):
    with m.RawClient(broker, version=5) as c:
        c.connect(f"{uniq}-rm2")
        for pid in range(1, 3 * RECEIVE_MAXIMUM):
            c.send(m.publish(f"{uniq}/t", b"x", qos=2, pid=pid, version=5))
            assert c.expect(m.PUBREC).pid == pid
            c.send(m.pubrel(pid))
            assert c.expect(m.PUBCOMP).pid == pid
        assert c.ping().type == m.PINGRESP


def _publish_n(broker, topic, n, qos=1):
    pub = Client(broker)
    for i in range(n):
        pub.publish(topic, b"%d" % i, qos=qos)
    pub.disconnect()


def test_client_receive_maximum_respected(broker, uniq):
    with m.RawClient(broker, version=5) as sub:
        sub.connect(f"{uniq}-crm", props=[(m.RECEIVE_MAXIMUM, 2)])
        sub.subscribe([(f"{uniq}/t", 1)])
        _publish_n(broker, f"{uniq}/t", 5)
        first = [sub.expect(m.PUBLISH), sub.expect(m.PUBLISH)]
        sub.expect_nothing(1.0)  # only 2 unacknowledged in flight
        got = list(first)
        sub.send(m.puback(first[0].pid))
        third = sub.expect(m.PUBLISH)
        got.append(third)
        sub.expect_nothing(0.5)
        for p in [first[1], third]:
            sub.send(m.puback(p.pid))
        while len(got) < 5:
            p = sub.expect(m.PUBLISH)
            got.append(p)
            sub.send(m.puback(p.pid))
        assert [p.payload for p in got] == [b"0", b"1", b"2", b"3", b"4"]


def test_broker_max_inflight_respected(broker, uniq):
    with m.RawClient(broker, version=4) as sub:
        sub.connect(f"{uniq}-mif")
        sub.subscribe([(f"{uniq}/t", 1)])
        _publish_n(broker, f"{uniq}/t", MAX_INFLIGHT + 3)
        got = [sub.expect(m.PUBLISH) for _ in range(MAX_INFLIGHT)]
        sub.expect_nothing(1.0)
        for p in list(got):
            sub.send(m.puback(p.pid))
        while len(got) < MAX_INFLIGHT + 3:
            p = sub.expect(m.PUBLISH)
            got.append(p)
            sub.send(m.puback(p.pid))
        assert [p.payload for p in got] == [b"%d" % i for i in range(MAX_INFLIGHT + 3)]


@pytest.mark.parametrize("version", [4, 5])
def test_dup_redelivery_on_reconnect(broker, uniq, version):
    cid = f"{uniq}-dup"
    kw = {"props": [(m.SESSION_EXPIRY_INTERVAL, 300)]} if version == 5 else {}
    with m.RawClient(broker, version=version) as sub:
        sub.connect(cid, clean=(version == 5), **kw)  # 3.1.1: clean session 0
        sub.subscribe([(f"{uniq}/t", 1)])
        _publish_n(broker, f"{uniq}/t", 2)
        p1 = sub.expect(m.PUBLISH)
        p2 = sub.expect(m.PUBLISH)
        assert not p1.dup and not p2.dup
        sub.send(m.puback(p1.pid))  # only the first is acknowledged
    with m.RawClient(broker, version=version) as sub:
        ack = sub.connect(cid, clean=False, **kw)
        assert ack.session_present
        r = sub.expect(m.PUBLISH)
        assert r.dup and r.pid == p2.pid and r.payload == p2.payload and r.qos == 1
        sub.send(m.puback(r.pid))
        sub.expect_nothing(1.0)
        sub.send(m.disconnect(version=version))
    with m.RawClient(broker, version=version) as sub:
        sub.connect(cid, clean=True)


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_pubrel_resent_on_reconnect(broker, uniq, version):
    cid = f"{uniq}-rel"
    kw = {"props": [(m.SESSION_EXPIRY_INTERVAL, 300)]} if version == 5 else {}
    with m.RawClient(broker, version=version) as sub:
        sub.connect(cid, clean=(version == 5), **kw)  # 3.1.1: clean session 0
        sub.subscribe([(f"{uniq}/t", 2)])
        _publish_n(broker, f"{uniq}/t", 1, qos=2)
        p = sub.expect(m.PUBLISH)
        sub.send(m.pubrec(p.pid))
        sub.expect(m.PUBREL)  # not completed: connection dropped
    with m.RawClient(broker, version=version) as sub:
        assert sub.connect(cid, clean=False, **kw).session_present
        rel = sub.expect(m.PUBREL)
        assert rel.pid == p.pid
        sub.send(m.pubcomp(rel.pid))
        sub.expect_nothing(1.0)  # the message itself is not sent again
    with m.RawClient(broker, version=version) as sub:
        sub.connect(cid, clean=True)


@pytest.mark.parametrize("version", [4, 5])
def test_in_order_delivery_1000_qos1(broker, uniq, version):
    n = 1000
    sub = Client(broker, version=version)
    sub.subscribe(f"{uniq}/order", qos=1)
    pub = Client(broker, version=version)
    infos = [pub.publish(f"{uniq}/order", b"%d" % i, qos=1, wait=False) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    got = sub.collect(n, timeout=60)
    assert [int(x.payload) for x in got] == list(range(n))
    sub.expect_none(0.5)
    sub.disconnect()
    pub.disconnect()
