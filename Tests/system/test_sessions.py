"""Requirement 2: client identifiers, clean start / persistent sessions, expiry, takeover, keep alive."""

import time

import pytest

import mqttraw as m
from clients import Client, connect_props


# -- client identifiers ---------------------------------------------------------

def test_v5_empty_client_id_gets_assigned_identifier(broker):
    with m.RawClient(broker, version=5) as c:
        ack = c.connect("")
        assigned = ack.prop(m.ASSIGNED_CLIENT_IDENTIFIER)
        assert assigned, f"no Assigned Client Identifier in {ack!r}"
        assert c.ping().type == m.PINGRESP
    with m.RawClient(broker, version=5) as c2:
        other = c2.connect("").prop(m.ASSIGNED_CLIENT_IDENTIFIER)
        assert other and other != assigned


def test_v311_empty_client_id_with_clean_session_accepted(broker):
    with m.RawClient(broker, version=4) as c:
        ack = c.connect("", clean=True)
        assert ack.rc == 0 and not ack.session_present
        assert c.ping().type == m.PINGRESP


def test_v311_empty_client_id_without_clean_session_rejected(broker):
    with m.RawClient(broker, version=4) as c:
        c.send(m.connect("", clean=False))
        ack = c.expect(m.CONNACK)
        assert ack.rc == 0x02, f"expected identifier rejected (0x02), got {ack!r}"
        assert c.wait_closed() == []


def test_v31_client_connects(broker, uniq):
    with m.RawClient(broker, version=3) as c:
        ack = c.connect(f"{uniq}-31")
        assert ack.rc == 0


# -- clean start / session present --------------------------------------------

def test_v311_session_present_flag(broker, uniq):
    cid = f"{uniq}-p311"
    with m.RawClient(broker, version=4) as c:
        assert not c.connect(cid, clean=True).session_present
    with m.RawClient(broker, version=4) as c:
        assert not c.connect(cid, clean=False).session_present
        c.subscribe(f"{uniq}/t", qos=1)
        c.send(m.disconnect())
    with m.RawClient(broker, version=4) as c:
        assert c.connect(cid, clean=False).session_present
        c.send(m.disconnect())
    with m.RawClient(broker, version=4) as c:
        assert not c.connect(cid, clean=True).session_present
        c.send(m.disconnect())
    with m.RawClient(broker, version=4) as c:
        # the clean connection above ended the persistent session
        assert not c.connect(cid, clean=False).session_present
    with m.RawClient(broker, version=4) as c:
        c.connect(cid, clean=True)


def test_v5_persistent_session_keeps_subscriptions(broker, uniq):
    cid = f"{uniq}-p5"
    sub = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=300))
    assert not sub.session_present
    sub.subscribe(f"{uniq}/t", qos=1)
    sub.disconnect()
    sub = Client(broker, cid, clean=False, properties=connect_props(SessionExpiryInterval=300))
    assert sub.session_present
    pub = Client(broker)
    pub.publish(f"{uniq}/t", b"still subscribed", qos=1)
    assert sub.get().payload == b"still subscribed"
    sub.disconnect()
    pub.disconnect()
    Client(broker, cid, clean=True).disconnect()


def test_v5_session_without_expiry_ends_on_disconnect(broker, uniq):
    cid = f"{uniq}-e0"
    Client(broker, cid, clean=True).disconnect()  # Session Expiry Interval absent = 0
    c = Client(broker, cid, clean=False)
    assert not c.session_present
    c.disconnect()


def test_v5_clean_start_discards_session(broker, uniq):
    cid = f"{uniq}-cs"
    c = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=300))
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    c = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=300))
    assert not c.session_present
    pub = Client(broker)
    pub.publish(f"{uniq}/t", b"x", qos=1)
    c.expect_none(1.0)
    c.disconnect()
    pub.disconnect()


def test_v5_session_expiry_interval(broker, uniq):
    cid = f"{uniq}-exp"
    c = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=1))
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    time.sleep(3)
    c = Client(broker, cid, clean=False, properties=connect_props(SessionExpiryInterval=1))
    assert not c.session_present, "session should have expired after 1 s"
    pub = Client(broker)
    pub.publish(f"{uniq}/t", b"gone", qos=1)
    c.expect_none(1.0)
    c.disconnect()
    pub.disconnect()


def test_v5_session_expiry_not_yet_elapsed(broker, uniq):
    cid = f"{uniq}-exp10"
    c = Client(broker, cid, clean=True, properties=connect_props(SessionExpiryInterval=10))
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    time.sleep(1)
    c = Client(broker, cid, clean=False, properties=connect_props(SessionExpiryInterval=10))
    assert c.session_present
    c.disconnect()
    Client(broker, cid, clean=True).disconnect()


# -- takeover ------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_takeover_closes_old_connection_and_publishes_will(broker, uniq, version):
    cid = f"{uniq}-tk"
    watcher = Client(broker)
    watcher.subscribe(f"{uniq}/will", qos=1)
    old = m.RawClient(broker, version=version)
    old.connect(cid, will_topic=f"{uniq}/will", will_payload=b"old died", will_qos=1)
    with m.RawClient(broker, version=version) as new:
        new.connect(cid)
        pkts = old.wait_closed(5.0)
        if version == 5:
            assert pkts and pkts[-1].type == m.DISCONNECT, f"old client got {pkts!r}"
            assert pkts[-1].rc == m.RC_SESSION_TAKEN_OVER
        else:
            assert pkts == []
        assert watcher.get().payload == b"old died"
        assert new.ping().type == m.PINGRESP
    old.close()
    watcher.disconnect()


def test_takeover_with_paho_v5_sees_0x8e(broker, uniq):
    cid = f"{uniq}-tkp"
    old = Client(broker, cid)
    new = Client(broker, cid)
    assert old.wait_disconnected() == m.RC_SESSION_TAKEN_OVER
    assert new.c.is_connected()
    new.disconnect()


def test_takeover_keeps_persistent_session(broker, uniq):
    cid = f"{uniq}-tks"
    with m.RawClient(broker, version=4) as old:
        old.connect(cid, clean=True)
        old.send(m.disconnect())
    old = m.RawClient(broker, version=4)
    old.connect(cid, clean=False)
    old.subscribe(f"{uniq}/t", qos=1)
    with m.RawClient(broker, version=4) as new:
        ack = new.connect(cid, clean=False)
        assert ack.session_present
        old.wait_closed()
        pub = Client(broker)
        pub.publish(f"{uniq}/t", b"to new", qos=1)
        p = new.expect(m.PUBLISH)
        assert p.payload == b"to new"
        new.send(m.puback(p.pid))
        pub.disconnect()
    old.close()


# -- keep alive ----------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_keep_alive_enforced_and_will_published(broker, uniq, version):
    watcher = Client(broker)
    watcher.subscribe(f"{uniq}/ka", qos=1)
    with m.RawClient(broker, version=version) as c:
        c.connect(f"{uniq}-ka", keepalive=1, will_topic=f"{uniq}/ka", will_payload=b"timed out")
        start = time.monotonic()
        pkts = c.wait_closed(6.0)  # 1.5 x keepalive, with slack for scheduling
        elapsed = time.monotonic() - start
        assert elapsed >= 1.0, f"closed after only {elapsed:.2f}s with keep alive 1"
        if version == 5:
            assert all(p.type == m.DISCONNECT and p.rc == m.RC_KEEP_ALIVE_TIMEOUT for p in pkts), pkts
        else:
            assert pkts == []
    assert watcher.get().payload == b"timed out"
    watcher.disconnect()


def test_keep_alive_satisfied_by_pings(broker, uniq):
    with m.RawClient(broker, version=4) as c:
        c.connect(f"{uniq}-kaok", keepalive=1)
        for _ in range(8):
            time.sleep(0.5)
            assert c.ping().type == m.PINGRESP


def test_keep_alive_zero_is_not_enforced(broker, uniq):
    with m.RawClient(broker, version=4) as c:
        c.connect(f"{uniq}-ka0", keepalive=0)
        c.expect_nothing(3.0)
        assert c.ping().type == m.PINGRESP


def test_server_keep_alive(broker_factory, uniq):
    b = broker_factory(mqtt={"server_keep_alive": 5})
    with m.RawClient(b, version=5) as c:
        ack = c.connect(f"{uniq}-ska", keepalive=60)
        assert ack.prop(m.SERVER_KEEP_ALIVE) == 5
    with m.RawClient(b, version=5) as c:
        ack = c.connect(f"{uniq}-ska0", keepalive=0)
        assert ack.prop(m.SERVER_KEEP_ALIVE) == 5


def test_server_keep_alive_is_enforced(broker_factory, uniq):
    b = broker_factory(mqtt={"server_keep_alive": 1})
    with m.RawClient(b, version=5) as c:
        ack = c.connect(f"{uniq}-ska1", keepalive=300)
        assert ack.prop(m.SERVER_KEEP_ALIVE) == 1
        pkts = c.wait_closed(6.0)
        assert all(p.type == m.DISCONNECT and p.rc == m.RC_KEEP_ALIVE_TIMEOUT for p in pkts), pkts
