"""Durable store ([persistence]): retained messages, sessions (subscriptions, queued and
in-flight messages, inbound QoS 2 packet ids) survive kill -9; session and message expiry
count the time the broker was down; damaged stores are moved aside and salvaged;
`--check-store`; mode = "none"; clean sessions and QoS 0 never touch the store.

The long kill -9 streams are in test_persistence_kill.py."""

import random
import sqlite3
import time

import pytest
from paho.mqtt.packettypes import PacketTypes

import mqttraw as m
from clients import Client, connect_props, props
from persist import (check_store, kill9, kill9_restart, log_since, restart, start_store_broker,
                     store_path)

COMMIT_WAIT = 0.3  # for changes whose acknowledgement does not wait for the store (SUBACK, DISCONNECT, ...)


def v5_persistent(b, cid, expiry=3600, clean=True, **kw):
    return Client(b, client_id=cid, version=5, clean=clean,
                  properties=connect_props(SessionExpiryInterval=expiry), **kw)


def retained_under(b, prefix, wait=1.0):
    s = Client(b, version=5)
    try:
        assert s.subscribe(f"{prefix}/#", qos=1) == [1]
        got = s.drain(wait)
    finally:
        s.disconnect()
    return got


# -- retained messages ----------------------------------------------------------------

def test_retained_set_replaced_cleared_survive_kill9(broker_factory, uniq):
    b = start_store_broker(broker_factory)
    p = Client(b, version=5)
    pub = lambda t, payload, qos=1, **kw: p.publish(f"{uniq}/{t}", payload, qos=qos, retain=True, **kw)
    pub("a", b"a1")
    pub("b", b"b1")
    pub("c", b"c1")
    pub("d/e", b"de1")
    pub("x", b"x1")
    pub("a", b"a2")             # replaced
    pub("b", b"")               # cleared
    pub("x", b"x2")
    pub("x", b"", qos=2)        # cleared with QoS 2
    pub("c", b"c2", qos=2)      # replaced with QoS 2
    pub("bin", bytes(range(256)) * 40)
    pub("p", b"with props", properties=props(ContentType="text/plain", UserProperty=[("k", "v")],
                                             PayloadFormatIndicator=1))
    p.kill()
    expected = {f"{uniq}/a": b"a2", f"{uniq}/c": b"c2", f"{uniq}/d/e": b"de1",
                f"{uniq}/bin": bytes(range(256)) * 40, f"{uniq}/p": b"with props"}

    kill9_restart(b)  # immediately after the last acknowledgement
    got = retained_under(b, uniq)
    assert {x.topic: x.payload for x in got} == expected, "retained messages after kill -9"
    assert len(got) == len(expected), f"duplicates: {got}"
    assert all(x.retain for x in got), got
    withprops = next(x for x in got if x.topic == f"{uniq}/p")
    assert withprops.prop("ContentType") == "text/plain", withprops.properties
    assert withprops.prop("UserProperty") == [("k", "v")], withprops.properties
    assert withprops.prop("PayloadFormatIndicator") == 1, withprops.properties

    # Changes to restored retained messages are durable too.
    p = Client(b, version=4)
    p.publish(f"{uniq}/a", b"", qos=1, retain=True)
    p.publish(f"{uniq}/d/e", b"de2", qos=1, retain=True)
    p.kill()
    expected.pop(f"{uniq}/a")
    expected[f"{uniq}/d/e"] = b"de2"
    kill9_restart(b)
    got = retained_under(b, uniq)
    assert {x.topic: x.payload for x in got} == expected, "second kill -9"
    assert len(got) == len(expected)

    # And a clean restart keeps them as well.
    b.stop()
    restart(b)
    assert {x.topic: x.payload for x in retained_under(b, uniq)} == expected, "after SIGTERM"


def test_retained_message_expiry_counts_downtime(broker_factory, uniq):
    b = start_store_broker(broker_factory)
    p = Client(b, version=5)
    p.publish(f"{uniq}/short", b"s", qos=1, retain=True, properties=props(MessageExpiryInterval=2))
    p.publish(f"{uniq}/long", b"l", qos=1, retain=True, properties=props(MessageExpiryInterval=3600))
    p.publish(f"{uniq}/forever", b"f", qos=1, retain=True)
    p.kill()
    kill9_restart(b, down=3.0)
    got = {x.topic: x for x in retained_under(b, uniq)}
    assert set(got) == {f"{uniq}/long", f"{uniq}/forever"}, \
        f"retained message with expiry 2s survived 3s of downtime: {got}"
    left = got[f"{uniq}/long"].prop("MessageExpiryInterval")
    assert left is not None and 3590 <= left <= 3600, f"remaining expiry {left}"
    assert got[f"{uniq}/forever"].prop("MessageExpiryInterval") is None


# -- sessions ---------------------------------------------------------------------------

@pytest.mark.parametrize("connected_at_kill", [False, True], ids=["disconnected", "connected"])
def test_session_expired_while_broker_down(broker_factory, uniq, connected_at_kill):
    """Expiry 2 s, broker down 5 s: the session is gone after restart. When the client was
    still connected at the kill, the session's time starts at the last moment the broker was alive."""
    b = start_store_broker(broker_factory)
    cid = f"{uniq}-short"
    c = v5_persistent(b, cid, expiry=2)
    assert c.subscribe(f"{uniq}/t", qos=1) == [1]
    if not connected_at_kill:
        c.disconnect()
    time.sleep(COMMIT_WAIT)
    kill9_restart(b, down=5.0)
    if connected_at_kill:
        c.c.loop_stop()
    c = v5_persistent(b, cid, expiry=2, clean=False)
    assert c.session_present is False, "session with expiry 2s survived 5s of broker downtime"
    # and its subscription is gone
    Client(b, version=5).publish(f"{uniq}/t", b"x", qos=1)
    c.expect_none(0.5)
    c.disconnect()


@pytest.mark.parametrize("version", [5, 4])
@pytest.mark.parametrize("connected_at_kill", [False, True], ids=["disconnected", "connected"])
def test_long_session_survives_kill9_and_delivers(broker_factory, uniq, version, connected_at_kill):
    b = start_store_broker(broker_factory)
    cid = f"{uniq}-long"
    make = ((lambda clean: v5_persistent(b, cid, expiry=3600, clean=clean)) if version == 5 else
            (lambda clean: Client(b, client_id=cid, version=4, clean=False)))
    c = make(True)
    assert c.subscribe(f"{uniq}/t/+", qos=1) == [1]
    assert c.subscribe(f"{uniq}/q2", qos=2) == [2]
    if not connected_at_kill:
        c.disconnect()
    p = Client(b, version=5)
    p.publish(f"{uniq}/t/1", b"queued-1", qos=1)
    p.publish(f"{uniq}/q2", b"queued-2", qos=2)
    p.publish(f"{uniq}/t/0", b"qos0", qos=0)  # QoS 0: may or may not survive
    p.kill()
    kill9_restart(b, down=1.0)
    if connected_at_kill:
        c.c.loop_stop()
    c = make(False)
    assert c.session_present is True, "persistent session (expiry 3600) lost"
    got = [(x.topic, x.payload, x.qos) for x in c.drain(1.0)]
    got = [g for g in got if g[1] != b"qos0"]
    if not connected_at_kill:  # else the messages were delivered before the kill (maybe unacknowledged)
        assert got == [(f"{uniq}/t/1", b"queued-1", 1), (f"{uniq}/q2", b"queued-2", 2)], got
    # the restored subscriptions deliver without re-subscribing
    p = Client(b, version=4)
    p.publish(f"{uniq}/t/2", b"after-1", qos=1)
    p.publish(f"{uniq}/q2", b"after-2", qos=2)
    got = [(x.topic, x.payload, x.qos) for x in c.collect(2)]
    assert got == [(f"{uniq}/t/2", b"after-1", 1), (f"{uniq}/q2", b"after-2", 2)], got
    c.expect_none(0.3)
    c.disconnect()
    p.disconnect()


def test_session_expiry_remaining_time_counts_downtime(broker_factory, uniq):
    """Two sessions with expiry 6 s disconnect at T0; the broker is down ~4 s. Right after the
    restart one is still there (remaining ~1.5 s); the other, reconnected at T0+7.5 s, is gone:
    the restart did not give them a fresh 6 s."""
    b = start_store_broker(broker_factory)
    a = v5_persistent(b, f"{uniq}-a", expiry=6)
    bb = v5_persistent(b, f"{uniq}-b", expiry=6)
    a.subscribe(f"{uniq}/t", qos=1)
    bb.subscribe(f"{uniq}/t", qos=1)
    a.disconnect()
    bb.disconnect()
    t0 = time.monotonic()
    time.sleep(COMMIT_WAIT)
    kill9_restart(b, down=4.0)
    assert time.monotonic() - t0 < 5.5, "restart too slow for this test's timing"
    bb = v5_persistent(b, f"{uniq}-b", expiry=6, clean=False)
    assert bb.session_present is True, f"session lost {time.monotonic() - t0:.1f}s after disconnect (expiry 6s)"
    bb.disconnect()
    time.sleep(max(0.0, 7.5 - (time.monotonic() - t0)))
    a = v5_persistent(b, f"{uniq}-a", expiry=6, clean=False)
    assert a.session_present is False, \
        "session still present 7.5s after its disconnect with expiry 6s: downtime not counted"
    a.disconnect()


def test_v311_session_expiry_config_counts_downtime(broker_factory, uniq):
    b = start_store_broker(broker_factory, mqtt_cfg={"session_expiry_interval": 2})
    c = Client(b, client_id=f"{uniq}-c", version=4, clean=False)
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    time.sleep(COMMIT_WAIT)
    kill9_restart(b, down=4.0)
    c = Client(b, client_id=f"{uniq}-c", version=4, clean=False)
    assert c.session_present is False
    c.disconnect()


def test_outbound_inflight_state_survives_kill9(broker_factory, uniq):
    """Unacknowledged QoS 1 and QoS 2 (before PUBREC) deliveries are resent with DUP and the
    same packet id; a QoS 2 delivery that was PUBRECed gets its PUBREL again, not the PUBLISH."""
    b = start_store_broker(broker_factory)
    cid = f"{uniq}-raw"
    kw = {"props": [(m.SESSION_EXPIRY_INTERVAL, 3600)]}
    with m.connected(b, version=5, client_id=cid, **kw) as s:
        s.subscribe([(f"{uniq}/q1", 1), (f"{uniq}/q2a", 2), (f"{uniq}/q2b", 2)])
        p = Client(b, version=5)
        p.publish(f"{uniq}/q1", b"one", qos=1)
        p.publish(f"{uniq}/q2a", b"two-a", qos=2)
        p.publish(f"{uniq}/q2b", b"two-b", qos=2)
        p.kill()
        first = {}
        for _ in range(3):
            x = s.expect(m.PUBLISH)
            first[x.topic] = x
        assert set(first) == {f"{uniq}/q1", f"{uniq}/q2a", f"{uniq}/q2b"}
        s.send(m.pubrec(first[f"{uniq}/q2b"].pid))  # q2b: PUBRECed; q1, q2a: unacknowledged
        rel = s.expect(m.PUBREL)
        assert rel.pid == first[f"{uniq}/q2b"].pid
        time.sleep(COMMIT_WAIT)
        kill9(b)
    restart(b)
    with m.RawClient(b, version=5) as s:
        ack = s.connect(cid, clean=False, **kw)
        assert ack.session_present, "session lost"
        pkts = []
        try:
            while True:
                pkts.append(s.recv(1.5))
        except TimeoutError:
            pass
        pubs = {x.topic: x for x in pkts if x and x.type == m.PUBLISH}
        rels = [x for x in pkts if x and x.type == m.PUBREL]
        assert f"{uniq}/q2b" not in pubs, f"PUBRECed QoS 2 message sent again after restart: {pkts}"
        assert [r.pid for r in rels] == [first[f"{uniq}/q2b"].pid], f"PUBREL not resent: {pkts}"
        for t in (f"{uniq}/q1", f"{uniq}/q2a"):
            assert t in pubs, f"unacknowledged {t} not resent: {pkts}"
            assert pubs[t].dup, f"resent {t} without DUP: {pubs[t]}"
            assert pubs[t].pid == first[t].pid, f"resent {t} with packet id {pubs[t].pid}, was {first[t].pid}"
            assert pubs[t].payload == first[t].payload
        s.send(m.puback(pubs[f"{uniq}/q1"].pid))
        s.send(m.pubrec(pubs[f"{uniq}/q2a"].pid))
        assert s.expect(m.PUBREL).pid == pubs[f"{uniq}/q2a"].pid
        s.send(m.pubcomp(pubs[f"{uniq}/q2a"].pid))
        s.send(m.pubcomp(first[f"{uniq}/q2b"].pid))
        time.sleep(COMMIT_WAIT)
    kill9_restart(b)
    with m.RawClient(b, version=5) as s:
        assert s.connect(cid, clean=False, **kw).session_present
        s.expect_nothing(1.0)  # everything was completed before the second kill


@pytest.mark.parametrize("resend_publish", [False, True], ids=["pubrel", "dup-publish-then-pubrel"])
def test_inbound_qos2_packet_ids_survive_kill9(broker_factory, uniq, resend_publish):
    """A persistent publisher's QoS 2 message PUBRECed before kill -9: after restart its PUBREL
    is known (PUBCOMP success) and a resent DUP PUBLISH is not delivered a second time."""
    b = start_store_broker(broker_factory)
    sub = v5_persistent(b, f"{uniq}-sub")
    sub.subscribe(f"{uniq}/t", qos=2)
    sub.disconnect()
    cid = f"{uniq}-pub"
    kw = {"props": [(m.SESSION_EXPIRY_INTERVAL, 3600)]}
    with m.connected(b, version=5, client_id=cid, **kw) as p:
        p.send(m.publish(f"{uniq}/t", b"once", qos=2, pid=7, version=5))
        rec = p.expect(m.PUBREC)
        assert rec.pid == 7 and rec.rc == 0, rec
        kill9(b)
    restart(b)
    with m.RawClient(b, version=5) as p:
        assert p.connect(cid, clean=False, **kw).session_present, "publisher session lost"
        if resend_publish:
            p.send(m.publish(f"{uniq}/t", b"once", qos=2, pid=7, dup=True, version=5))
            rec = p.expect(m.PUBREC)
            assert rec.pid == 7 and rec.rc < 0x80, rec
        p.send(m.pubrel(7))
        comp = p.expect(m.PUBCOMP)
        assert comp.pid == 7 and comp.rc == 0, f"inbound QoS 2 packet id forgotten after kill -9: {comp!r}"
    sub = v5_persistent(b, f"{uniq}-sub", clean=False)
    assert sub.session_present
    got = [x.payload for x in sub.drain(1.0)]
    assert got == [b"once"], f"subscriber got {got}"
    sub.disconnect()


def test_session_changes_are_durable(broker_factory, uniq):
    """Unsubscribes, sessions discarded by clean start / clean session / DISCONNECT with expiry 0,
    and acknowledged deliveries do not come back after kill -9."""
    b = start_store_broker(broker_factory)
    # unsubscribe
    u = v5_persistent(b, f"{uniq}-u")
    u.subscribe(f"{uniq}/keep", qos=1)
    u.subscribe(f"{uniq}/drop", qos=1)
    u.unsubscribe(f"{uniq}/drop")
    u.disconnect()
    # 5.0 clean start replaces a session that had subscriptions and queued messages
    c5 = v5_persistent(b, f"{uniq}-c5")
    c5.subscribe(f"{uniq}/keep", qos=1)
    c5.disconnect()
    # 3.1.1 clean session 1 discards the persistent session
    c4 = Client(b, client_id=f"{uniq}-c4", version=4, clean=False)
    c4.subscribe(f"{uniq}/keep", qos=1)
    c4.disconnect()
    # 5.0 DISCONNECT with Session Expiry Interval 0 ends the session
    d0 = v5_persistent(b, f"{uniq}-d0")
    d0.subscribe(f"{uniq}/keep", qos=1)
    # acknowledged deliveries
    a = v5_persistent(b, f"{uniq}-a")
    a.subscribe(f"{uniq}/keep", qos=2)
    a.disconnect()
    p = Client(b, version=5)
    p.publish(f"{uniq}/keep", b"old-keep", qos=1)
    p.publish(f"{uniq}/drop", b"old-drop", qos=1)
    d0.disconnect(reasoncode=0, properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    a = v5_persistent(b, f"{uniq}-a", clean=False)
    assert [x.payload for x in a.collect(1)] == [b"old-keep"]
    a.expect_none(0.3)
    a.disconnect()
    c5 = v5_persistent(b, f"{uniq}-c5", clean=True)   # fresh session, no subscriptions
    c5.disconnect()
    c4 = Client(b, client_id=f"{uniq}-c4", version=4, clean=True)
    c4.disconnect()
    time.sleep(COMMIT_WAIT)
    kill9_restart(b)
    p = Client(b, version=5)
    p.publish(f"{uniq}/keep", b"new-keep", qos=1)
    p.publish(f"{uniq}/drop", b"new-drop", qos=1)
    p.disconnect()
    u = v5_persistent(b, f"{uniq}-u", clean=False)
    assert u.session_present
    assert [x.payload for x in u.drain(1.0)] == [b"old-keep", b"new-keep"], "unsubscribe not durable"
    u.disconnect()
    c5 = v5_persistent(b, f"{uniq}-c5", clean=False)
    assert c5.session_present, "the clean-start session (expiry 3600) was lost"
    got = [x.payload for x in c5.drain(1.0)]
    assert got == [], f"the session replaced by clean start came back after kill -9: {got}"
    c5.disconnect()
    c4 = Client(b, client_id=f"{uniq}-c4", version=4, clean=False)
    assert not c4.session_present, "3.1.1 session discarded by clean session 1 came back after kill -9"
    c4.disconnect()
    d0 = v5_persistent(b, f"{uniq}-d0", clean=False)
    assert not d0.session_present, "session ended by DISCONNECT expiry 0 came back after kill -9"
    d0.disconnect()
    a = v5_persistent(b, f"{uniq}-a", clean=False)
    assert a.session_present
    got = [x.payload for x in a.drain(1.0)]
    assert got == [b"new-keep"], f"acknowledged QoS 2 delivery came back (or new one lost): {got}"
    a.disconnect()


def test_queued_message_expiry_counts_downtime(broker_factory, uniq):
    b = start_store_broker(broker_factory)
    s = v5_persistent(b, f"{uniq}-s")
    s.subscribe(f"{uniq}/t", qos=1)
    s.disconnect()
    p = Client(b, version=5)
    p.publish(f"{uniq}/t", b"short", qos=1, properties=props(MessageExpiryInterval=2))
    p.publish(f"{uniq}/t", b"long", qos=1, properties=props(MessageExpiryInterval=3600))
    p.publish(f"{uniq}/t", b"forever", qos=1)
    p.kill()
    kill9_restart(b, down=3.0)
    s = v5_persistent(b, f"{uniq}-s", clean=False)
    got = s.drain(1.0)
    assert [x.payload for x in got] == [b"long", b"forever"], \
        f"queued message with expiry 2s delivered after 3s of downtime? {got}"
    left = got[0].prop("MessageExpiryInterval")
    assert left is not None and 3590 <= left <= 3597, f"remaining expiry {left} (down 3s)"
    s.disconnect()


def test_delayed_will_due_while_down_is_published_at_restart(broker_factory, uniq):
    """A will with delay 2 s pending when the broker is killed, broker down 3 s: the will is
    published at restart to the persistent subscribers (restored before or after its owner)."""
    b = start_store_broker(broker_factory)
    before = v5_persistent(b, f"{uniq}-0before")
    before.subscribe(f"{uniq}/will", qos=1)
    before.disconnect()
    w = v5_persistent(b, f"{uniq}-1owner", will={"topic": f"{uniq}/will", "payload": b"gone", "qos": 1,
                                                  "properties": props(PacketTypes.WILLMESSAGE,
                                                                      WillDelayInterval=2)})
    after = v5_persistent(b, f"{uniq}-2after")
    after.subscribe(f"{uniq}/will", qos=1)
    after.disconnect()
    w.kill()  # connection lost: will pending for 2 s
    time.sleep(0.5)
    kill9_restart(b, down=3.0)
    for cid in (f"{uniq}-0before", f"{uniq}-2after"):
        s = v5_persistent(b, cid, clean=False)
        assert s.session_present
        got = [x.payload for x in s.drain(1.0)]
        assert got == [b"gone"], f"{cid}: delayed will due while the broker was down: got {got}"
        s.disconnect()


# -- damaged stores -------------------------------------------------------------------

def populate(b, uniq, retained=150):
    """A persistent session with a subscription and queued messages, and retained messages."""
    s = v5_persistent(b, f"{uniq}-sess")
    s.subscribe(f"{uniq}/q", qos=1)
    s.disconnect()
    p = Client(b, version=5)
    for i in range(retained):
        p.publish(f"{uniq}/r/{i}", b"r%d-" % i + b"x" * 500, qos=1, retain=True, wait=(i == retained - 1))
    for i in range(50):
        p.publish(f"{uniq}/q", b"q%d" % i, qos=1, wait=(i == 49))
    p.disconnect()


def damage(path, how):
    if how == "truncated":
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif how == "garbage":
        size = path.stat().st_size
        path.write_bytes(random.Random(1).randbytes(size))
    elif how == "newer_schema":
        db = sqlite3.connect(str(path))
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
    else:
        raise ValueError(how)


def assert_serves(b, uniq):
    s = Client(b, version=5)
    assert s.subscribe(f"{uniq}/live", qos=1) == [1]
    p = Client(b, version=4)
    p.publish(f"{uniq}/live", b"ok", qos=1)
    assert s.get().payload == b"ok"
    p.disconnect()
    s.disconnect()


@pytest.mark.parametrize("how", ["truncated", "garbage", "newer_schema"])
def test_damaged_store_is_moved_aside_and_broker_serves(broker_factory, uniq, how):
    b = start_store_broker(broker_factory)
    populate(b, uniq)
    b.stop()
    assert b.returncode == 0
    path = store_path(b)
    assert path.exists() and not (path.parent / "swiftlet.db-wal").exists()
    rc, out, counts = check_store(b)
    assert rc == 0 and "OK" in out, f"healthy store: exit {rc}\n{out}"
    assert counts.get("retained") == 150 and counts.get("sessions") == 1 and counts.get("messages") == 50, out

    damage(path, how)
    rc, out, _ = check_store(b)
    assert rc == 1, f"--check-store on a {how} store exited {rc}:\n{out}"
    assert "DAMAGED" in out and "problem" in out, out
    if how == "newer_schema":
        assert "99" in out and "newer" in out, out

    before = len(b.log_text())
    restart(b)
    log = log_since(b, before)
    err = [line for line in log.splitlines() if "damaged" in line and "error" in line.lower()]
    assert err, f"no error logged about the damaged store:\n{log}"
    assert "moved" in log or "aside" in log, log
    aside = list(path.parent.glob("swiftlet.db.damaged-*"))
    assert aside, f"damaged file not moved aside: {list(path.parent.iterdir())}"
    assert_serves(b, uniq)
    restored = retained_under(b, f"{uniq}/r", wait=0.5)
    if how == "newer_schema":
        assert not restored, "data from a newer schema must not be loaded"
        assert "newer" in log, log
    for x in restored:  # salvaged rows are intact
        i = int(x.payload.split(b"-")[0][1:])
        assert x.topic == f"{uniq}/r/{i}" and x.payload == b"r%d-" % i + b"x" * 500, x
    print(f"{how}: {len(restored)} of 150 retained messages salvaged")

    # The new store works: a persistent session survives a kill -9, and it checks OK.
    c = v5_persistent(b, f"{uniq}-new")
    c.subscribe(f"{uniq}/new", qos=1)
    c.disconnect()
    Client(b, version=5).publish(f"{uniq}/new", b"n", qos=1)
    kill9_restart(b)
    c = v5_persistent(b, f"{uniq}-new", clean=False)
    assert c.session_present and c.get().payload == b"n"
    c.disconnect()
    b.stop()
    rc, out, counts = check_store(b)
    assert rc == 0, f"store created after salvage is not OK:\n{out}"


def readable_rows(path, uniq):
    """Oracle: what SQLite itself can still read from a damaged store copy (with
    writable_schema, which skips the file-size check a truncated file fails)."""
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA writable_schema = ON")
    out = {"retained": set(), "sessions": set(), "queued": 0}
    try:
        rowids = [r for r, in db.execute("SELECT rowid FROM retained")]
    except sqlite3.DatabaseError:
        rowids = []
    for rid in rowids:
        try:
            topic, payload = db.execute("SELECT topic, payload FROM retained WHERE rowid = ?", (rid,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        i = int(topic.rsplit("/", 1)[1])
        if payload == b"r%d-" % i + b"x" * 500:
            out["retained"].add(topic)
    try:
        out["sessions"] = {c for c, in db.execute("SELECT client_id FROM sessions")}
        out["queued"] = db.execute("SELECT COUNT(*) FROM session_messages s JOIN messages m ON m.id = s.message_id"
                                   " WHERE s.client_id = ?", (f"{uniq}-sess",)).fetchone()[0]
        subs = db.execute("SELECT COUNT(*) FROM subscriptions WHERE client_id = ?", (f"{uniq}-sess",)).fetchone()[0]
        if subs != 1:
            out["sessions"] = set()
    except sqlite3.DatabaseError:
        out["sessions"] = set()
    db.close()
    return out


def test_truncated_store_salvages_readable_rows(broker_factory, uniq, tmp_path):
    """'Salvages what it can': rows SQLite can still read from a store truncated to half its
    size (oracle: python's sqlite3 with writable_schema) are restored by the broker."""
    b = start_store_broker(broker_factory)
    populate(b, uniq)
    b.stop()
    path = store_path(b)
    damage(path, "truncated")
    copy = tmp_path / "oracle.db"
    copy.write_bytes(path.read_bytes())
    oracle = readable_rows(copy, uniq)
    if not oracle["retained"] and not oracle["sessions"]:
        pytest.skip("nothing readable in the truncated file (page layout)")
    restart(b)
    restored = {x.topic for x in retained_under(b, f"{uniq}/r", wait=0.5)}
    s = v5_persistent(b, f"{uniq}-sess", clean=False)
    queued = len(s.drain(1.0)) if s.session_present else 0
    s.disconnect()
    missing = sorted(oracle["retained"] - restored)
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(oracle['retained'])} readable retained messages not salvaged "
                        f"(broker restored {len(restored)})")
    if f"{uniq}-sess" in oracle["sessions"] and queued < oracle["queued"]:
        problems.append(f"readable session with {oracle['queued']} queued messages not salvaged "
                        f"(session present {s.session_present}, {queued} delivered)")
    assert not problems, "; ".join(problems) + "\n" + "\n".join(
        line for line in b.log_text().splitlines() if "salvag" in line or "damaged" in line)


def test_check_store_without_store_file(tmp_path):
    """No store yet: --check-store says so, exits 0, and creates nothing."""
    from types import SimpleNamespace
    cfg = tmp_path / "swiftlet.toml"
    cfg.write_text('[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:1"\n\n[persistence]\ndata_dir = "never-used"\n')
    rc, out, _ = check_store(SimpleNamespace(config_path=cfg, workdir=tmp_path))
    assert rc == 0, out
    assert "no store file" in out, out
    assert not (tmp_path / "never-used").exists(), "--check-store created the data dir"


def test_check_store_leaves_the_data_dir_unchanged(broker_factory, uniq):
    """--check-store "inspects a store without changing it": no files appear in the data dir
    (a -shm/-wal left by a check run as another user, e.g. root, can lock the broker out)."""
    b = start_store_broker(broker_factory)
    Client(b, version=5).publish(f"{uniq}/r", b"v", qos=1, retain=True)
    b.stop()
    before = sorted(p.name for p in store_path(b).parent.iterdir())
    rc, out, counts = check_store(b)
    assert rc == 0 and counts.get("retained") == 1, out
    after = sorted(p.name for p in store_path(b).parent.iterdir())
    assert after == before, f"--check-store changed the data dir: {before} -> {after}"


def test_check_store_after_kill9_with_wal(broker_factory, uniq):
    """--check-store reads a store left by kill -9 (WAL not checkpointed) and counts its rows."""
    b = start_store_broker(broker_factory)
    c = v5_persistent(b, f"{uniq}-s")
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    p = Client(b, version=5)
    for i in range(10):
        p.publish(f"{uniq}/t", b"%d" % i, qos=1)
    p.publish(f"{uniq}/r", b"r", qos=1, retain=True)
    kill9(b)
    rc, out, counts = check_store(b)
    assert rc == 0, out
    assert counts.get("sessions") == 1 and counts.get("messages") == 10 and counts.get("retained") == 1 \
        and counts.get("subscriptions") == 1 and counts.get("session_messages") == 10, out
    restart(b)  # and the check did not break it
    c = v5_persistent(b, f"{uniq}-s", clean=False)
    assert c.session_present
    assert [x.payload for x in c.collect(10)] == [b"%d" % i for i in range(10)]
    c.disconnect()


# -- modes -------------------------------------------------------------------------------

def test_mode_none_nothing_survives_kill9(broker_factory, uniq):
    b = start_store_broker(broker_factory, mode="none")
    c = v5_persistent(b, f"{uniq}-s")
    c.subscribe(f"{uniq}/t", qos=1)
    c.disconnect()
    p = Client(b, version=5)
    p.publish(f"{uniq}/t", b"queued", qos=1)
    p.publish(f"{uniq}/r", b"retained", qos=1, retain=True)
    p.kill()
    # memory only: still works while the broker runs
    c = v5_persistent(b, f"{uniq}-s", clean=False)
    assert c.session_present and c.get().payload == b"queued"
    c.disconnect()
    time.sleep(COMMIT_WAIT)
    kill9_restart(b)
    c = v5_persistent(b, f"{uniq}-s", clean=False)
    assert c.session_present is False, "mode none: session survived kill -9"
    c.disconnect()
    assert not retained_under(b, uniq, wait=0.5), "mode none: retained message survived kill -9"
    # Memory only: no store file (the data dir may hold the sidecar and ctl sockets only).
    data = b.workdir / "data"
    assert not data.exists() or all(p.is_socket() for p in data.iterdir()), f"mode none created {list(data.iterdir())}"
    assert not list(b.workdir.rglob("*.db*")), list(b.workdir.rglob("*.db*"))


def test_data_dir_is_used(broker_factory, uniq):
    b = start_store_broker(broker_factory, data_dir="state/store")
    r = Client(b, version=5)
    r.publish(f"{uniq}/r", b"v", qos=1, retain=True)
    r.kill()
    assert (b.workdir / "state" / "store" / "swiftlet.db").exists()
    assert not (b.workdir / "data").exists()
    kill9_restart(b)
    assert [x.payload for x in retained_under(b, uniq, wait=0.5)] == [b"v"]


# -- what never touches the store --------------------------------------------------------

def test_clean_sessions_and_qos0_never_touch_the_store(broker_factory, uniq):
    b = start_store_broker(broker_factory)
    subs = [Client(b, version=4, clean=True), Client(b, version=5, clean=True),
            Client(b, version=5, clean=True, properties=connect_props(SessionExpiryInterval=0))]
    for i, s in enumerate(subs):
        s.subscribe(f"{uniq}/#", qos=2)
    pubs = [Client(b, version=4, clean=True), Client(b, version=5, clean=True)]
    n = 0
    for p in pubs:
        for qos in (0, 1, 2):
            for i in range(20):
                p.publish(f"{uniq}/t{qos}", b"m%d" % i, qos=qos, wait=qos > 0)
                n += 1
    for s in subs:
        assert len(s.collect(n, timeout=20)) == n
    for c in subs + pubs:
        c.disconnect()
    b.stop()
    rc, out, counts = check_store(b)
    assert rc == 0, out
    for t in ("sessions", "messages", "session_messages", "subscriptions", "awaiting_rel", "retained"):
        assert counts.get(t) == 0, f"clean-session traffic wrote {t}:\n{out}"

    # QoS 0 to an offline persistent session: the session is stored, its QoS 0 queue is not.
    restart(b)
    s = v5_persistent(b, f"{uniq}-p")
    s.subscribe(f"{uniq}/z", qos=0)
    s.disconnect()
    p = Client(b, version=5)
    for i in range(20):
        p.publish(f"{uniq}/z", b"z%d" % i, qos=0)
    p.publish(f"{uniq}/z", b"last", qos=1)  # downgraded to QoS 0 for the QoS 0 subscription
    p.disconnect()
    time.sleep(COMMIT_WAIT)
    b.stop()
    rc, out, counts = check_store(b)
    assert rc == 0, out
    assert counts.get("sessions") == 1 and counts.get("subscriptions") == 1, out
    assert counts.get("messages") == 0 and counts.get("session_messages") == 0, \
        f"QoS 0 deliveries were written to the store:\n{out}"


# -- packet ids across a crash ------------------------------------------------------------

RAW_KW = {"props": [(m.SESSION_EXPIRY_INTERVAL, 3600)]}


def test_qos2_packet_id_reused_after_pubcomp_and_kill9_is_a_new_message(broker_factory, uniq):
    """PUBCOMP waits for the store to forget the packet id: reusing it after a crash is a new message."""
    b = start_store_broker(broker_factory)
    sub = Client(b, client_id=f"{uniq}-sub", version=5, clean=True, properties=connect_props(SessionExpiryInterval=3600))
    sub.subscribe(f"{uniq}/t", qos=2)
    sub.disconnect()
    cid = f"{uniq}-pub"
    with m.connected(b, version=5, client_id=cid, **RAW_KW) as p:
        p.send(m.publish(f"{uniq}/t", b"a", qos=2, pid=1, version=5))
        assert p.expect(m.PUBREC).rc == 0
        p.send(m.pubrel(1))
        assert p.expect(m.PUBCOMP).rc == 0
        kill9(b)
    restart(b)
    with m.RawClient(b, version=5) as p:
        assert p.connect(cid, clean=False, **RAW_KW).session_present
        p.send(m.publish(f"{uniq}/t", b"b", qos=2, pid=1, version=5))
        rec = p.expect(m.PUBREC)
        assert rec.rc == 0, rec
        p.send(m.pubrel(1))
        assert p.expect(m.PUBCOMP).rc == 0
    sub = Client(b, client_id=f"{uniq}-sub", version=5, clean=False, properties=connect_props(SessionExpiryInterval=3600))
    got = [x.payload for x in sub.drain(1.0)]
    assert got == [b"a", b"b"], got

def test_outbound_qos2_resent_with_its_packet_id_after_kill9(broker_factory, uniq):
    b = start_store_broker(broker_factory)
    cid = f"{uniq}-raw"
    with m.connected(b, version=5, client_id=cid, **RAW_KW) as s:
        s.subscribe([(f"{uniq}/q2", 2)])
        Client(b, version=5).publish(f"{uniq}/q2", b"x", qos=2, wait=False)
        first = s.expect(m.PUBLISH)
        s.send(m.pubrec(first.pid))
        kill9(b)
    restart(b)
    with m.RawClient(b, version=5) as s:
        assert s.connect(cid, clean=False, **RAW_KW).session_present
        pkts = []
        try:
            while True: pkts.append(s.recv(1.0))
        except TimeoutError: pass
        pubs = [x for x in pkts if x and x.type == m.PUBLISH]
        assert all(x.pid == first.pid for x in pubs), f"QoS 2 resent with another packet id: first {first}, now {pkts}"
