"""Hostile input, continued: huge or abusive but well-framed traffic. As in test_hostile.py, a
well-behaved client publishes QoS 1 to itself throughout and must lose nothing."""

import threading
import time

import pytest

import mqttraw as m
from clients import Client

MAX_PACKET = 4 * 1024 * 1024
MP = m.MALFORMED_OR_PROTOCOL


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(mqtt={"max_packet_size": MAX_PACKET})


def _assert_publish_rejected(c, pid):
    """A PUBLISH the broker must not accept: 5.0 -> PUBACK with an error or DISCONNECT; 3.1.1 -> close
    (or, since 3.1.1 cannot signal it, acknowledge and drop)."""
    p = c.recv(10)
    if p is None:
        return
    if p.type == m.PUBACK:
        assert p.pid == pid
        if c.version == 5:
            assert p.rc >= 0x80, f"accepted: {p!r}"
        return
    assert c.version == 5 and p.type == m.DISCONNECT, p
    assert p.rc in MP + (m.RC_TOPIC_NAME_INVALID, m.RC_PACKET_TOO_LARGE), p
    assert c.recv(5) is None


@pytest.mark.parametrize("version", [4, 5])
def test_65000_topic_levels_publish(broker, good, uniq, version):
    w = Client(broker)
    w.subscribe(f"{uniq}/#", qos=1)
    w.subscribe("/#", qos=1)
    for i, topic in enumerate(["/" * 64999, f"{uniq}/" + "a/" * 32498 + "a"], 1):
        c = m.connected(broker, version)
        c.send(m.publish(topic, b"levels", qos=1, pid=i, version=version))
        _assert_publish_rejected(c, i)
        c.close()
    assert not [x for x in w.drain(1.0) if x.payload == b"levels"]
    w.disconnect()
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_65000_topic_levels_subscribe(broker, good, version):
    for flt in ["/" * 64999, "+/" * 32499 + "#"]:
        c = m.connected(broker, version)
        c.send(m.subscribe(1, [(flt, 1)], version=version))
        m.assert_subscribe_rejected(c)
        c.close()
    good.check()


@pytest.mark.parametrize("flt", ["$share/ab", "$share/ab/", "$share//t", "$share/a+b/t", "$share/a#/t",
                                 "$share/", "$queue/"])
@pytest.mark.parametrize("version", [4, 5])
def test_bad_shared_subscription(broker, good, version, flt):
    c = m.connected(broker, version)
    c.send(m.subscribe(1, [(flt, 1)], version=version))
    m.assert_subscribe_rejected(c)
    c.close()
    good.check()


def test_100000_user_properties(broker, good, uniq):
    n = 100_000
    user_props = [(m.USER_PROPERTY, (f"k{i}", "v")) for i in range(n)]
    sub = m.connected(broker, 5)
    sub.subscribe([(f"{uniq}/up", 1)])
    pub = m.connected(broker, 5, props=user_props)  # also in CONNECT
    pub.send(m.publish(f"{uniq}/up", b"many props", qos=1, pid=5, version=5, props=user_props))
    ack = pub.expect(m.PUBACK, timeout=30)
    assert ack.pid == 5 and ack.rc < 0x80
    p = sub.expect(m.PUBLISH, timeout=30)
    assert p.payload == b"many props"
    got = p.props_all(m.USER_PROPERTY)
    assert len(got) == n and got[:3] == [("k0", "v"), ("k1", "v"), ("k2", "v")] and got[-1] == (f"k{n - 1}", "v")
    sub.send(m.puback(p.pid))
    assert pub.ping().type == m.PINGRESP and sub.ping().type == m.PINGRESP
    sub.close()
    pub.close()
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_packet_id_reused_10000_times(broker, good, uniq, version):
    sub = Client(broker)
    sub.subscribe(f"{uniq}/q2", qos=2)
    c = m.connected(broker, version)
    rss_before = broker.rss_kb()
    pkt = m.publish(f"{uniq}/q2", b"exactly once", qos=2, pid=1, version=version)
    total, batch = 10_000, 250
    for _ in range(total // batch):
        c.send(pkt * batch)
        for _ in range(batch):
            rec = c.expect(m.PUBREC, timeout=15)
            assert rec.pid == 1 and rec.rc < 0x80, rec
    rss_after = broker.rss_kb()
    c.send(m.pubrel(1))
    comp = c.expect(m.PUBCOMP)
    assert comp.pid == 1 and comp.rc == 0
    got = sub.collect(1) + sub.drain(1.5)
    assert [x.payload for x in got] == [b"exactly once"], f"{len(got)} deliveries"
    if rss_before and rss_after:
        assert rss_after - rss_before < 64 * 1024, f"RSS grew from {rss_before} kB to {rss_after} kB"
    assert c.ping().type == m.PINGRESP
    c.close()
    sub.disconnect()
    good.check()


@pytest.mark.parametrize("version", [4, 5])
def test_unknown_packet_ids_in_acks(broker, good, version):
    c = m.connected(broker, version)
    c.send(m.puback(77) + m.pubcomp(79))  # nothing outstanding: ignored
    c.send(m.pubrel(80))
    comp = c.expect(m.PUBCOMP)
    assert comp.pid == 80 and comp.rc in ((0x00, 0x92) if version == 5 else (0x00,))
    assert c.ping().type == m.PINGRESP
    c.close()
    good.check()


def test_100_connections_sharing_one_client_id(broker, good, uniq):
    cid = f"{uniq}-shared"
    stop_at = time.monotonic() + 6
    lock = threading.Lock()
    stats = {"connacks": 0, "subacks": 0, "unsubacks": 0, "errors": []}

    def bump(key):
        with lock:
            stats[key] += 1

    def worker(n):
        version = 5 if n % 2 else 4
        while time.monotonic() < stop_at:
            try:
                c = m.RawClient(broker, version=version, timeout=10)
            except OSError as e:
                stats["errors"].append(f"connect: {e!r}")
                return
            try:
                c.send(m.connect(cid, version=version, clean=n % 3 != 0))
                p = c.recv(10)
                if p is None:
                    continue
                assert p.type == m.CONNACK and p.rc == 0, p
                bump("connacks")
                pid = 1
                while time.monotonic() < stop_at:
                    for pkt, want, key in ((m.subscribe(pid, [(f"{uniq}/s/{n}", 1)], version=version),
                                            m.SUBACK, "subacks"),
                                           (m.unsubscribe(pid, f"{uniq}/s/{n}", version=version),
                                            m.UNSUBACK, "unsubacks")):
                        if not c.try_send(pkt):
                            raise EOFError
                        p = c.recv(10)
                        if p is None:
                            raise EOFError  # taken over by another connection
                        if p.type == want:
                            bump(key)
                        elif p.type != m.DISCONNECT:
                            raise AssertionError(f"unexpected {p!r}")
                    pid = pid % 65535 + 1
            except EOFError:
                pass
            except (TimeoutError, AssertionError, OSError) as e:
                with lock:
                    stats["errors"].append(repr(e))
            finally:
                c.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(stop_at - time.monotonic(), 0) + 30)
    assert not [t for t in threads if t.is_alive()], "workers hung"
    assert not stats["errors"], stats["errors"][:5]
    assert stats["connacks"] >= 100, stats

    # The client id still works normally afterwards.
    last = Client(broker, cid, clean=True)
    last.subscribe(f"{uniq}/final", qos=1)
    Client(broker).publish(f"{uniq}/final", b"done", qos=1)
    assert last.get().payload == b"done"
    last.disconnect()
    good.check()
