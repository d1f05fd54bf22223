"""Durable store under kill -9: every message whose PUBACK (QoS 1) / PUBREC (QoS 2) the
publisher saw reaches every persistent session that was subscribed, after any number of
kill -9 / restarts of the broker at random moments of a publish stream.

Set SWIFTLET_TEST_SEED to replay the kill moments of a failed run."""

import threading
import time

import mqttraw as m
from clients import Client, connect_props
from persist import (PahoQoS1Publisher, RawPublisher, check_stream, kill9, receive_all, restart,
                     rng_for, seqs_of, start_store_broker, summarize)


def run_kills(b, pub, rng, kills, min_run=0.3, max_run=1.5, deadline=None):
    """kill -9 the broker `kills` times at random moments while `pub` streams; returns a log."""
    log = []
    for i in range(kills):
        assert deadline is None or time.monotonic() < deadline, f"time budget exceeded after {i} kills: {log}"
        pub.wait_acked(pub.acked_count() + 10, timeout=20)  # the stream runs on this incarnation
        time.sleep(rng.uniform(min_run, max_run))
        acked = pub.acked_count()
        t0 = time.monotonic()
        kill9(b)
        restart(b)
        log.append(f"kill {i + 1} at ack #{acked} (next seq {pub.next_seq}), restart {time.monotonic() - t0:.2f}s")
    pub.wait_acked(pub.acked_count() + 10, timeout=20)  # the stream resumes after the last restart
    pub.halt()
    return log


def persistent_subscriber(b, client_id, topic, qos, version):
    if version == 5:
        s = Client(b, client_id=client_id, version=5, clean=True,
                   properties=connect_props(SessionExpiryInterval=3600))
    else:
        s = Client(b, client_id=client_id, version=4, clean=False)
    assert s.subscribe(topic, qos=qos) == [qos]
    s.disconnect()
    return s


def reconnect_subscriber(b, client_id, version):
    if version == 5:
        s = Client(b, client_id=client_id, version=5, clean=False,
                   properties=connect_props(SessionExpiryInterval=3600))
    else:
        s = Client(b, client_id=client_id, version=4, clean=False)
    return s


def stream_test(broker_factory, uniq, name, mode, qos, sub_version, kills, make_pub, budget):
    start = time.monotonic()
    rng, seed = rng_for(name)
    b = start_store_broker(broker_factory, mode=mode)
    topic = f"{uniq}/stream"
    sid = f"{uniq}-sub"
    persistent_subscriber(b, sid, topic, qos, sub_version)
    pub = make_pub(b, topic).start()
    try:
        log = run_kills(b, pub, rng, kills, deadline=start + budget)
    finally:
        pub.stop_ev.set()
    assert not pub.nosub, (f"broker answered 'no matching subscribers' (0x10) for {len(pub.nosub)} messages: "
                           f"{summarize(pub.nosub)} - the persistent subscription was lost (kills: {log}, seed {seed})")
    assert not pub.failed, f"failure reason codes: {pub.failed[:10]} (seed {seed})"
    acked = list(pub.acked)
    assert len(acked) > 50 and pub.connections == kills + 1, (len(acked), pub.connections)

    s = reconnect_subscriber(b, sid, sub_version)
    try:
        assert s.session_present, f"persistent session lost after kills {log} (seed {seed})"
        received = receive_all(s, acked, timeout=max(20.0, start + budget + 20 - time.monotonic()))
        seqs, dups = check_stream(received, acked, pub.next_seq, qos, f"{log} seed {seed}")
    finally:
        s.disconnect()
    b.assert_alive()
    assert time.monotonic() - start < budget + 30, f"took {time.monotonic() - start:.0f}s"
    return acked, seqs, dups, log


def test_qos1_stream_survives_repeated_kill9(broker_factory, uniq):
    """6 kills at random moments of a QoS 1 stream to an offline 3.1.1 clean-session-0
    subscriber: every PUBACKed message arrives, in order (duplicates allowed)."""
    acked, seqs, dups, log = stream_test(
        broker_factory, uniq, "qos1", "batched", 1, 4, kills=6,
        make_pub=lambda b, t: PahoQoS1Publisher(b, t, window=30), budget=60)
    print(f"acked {len(acked)}, received {len(seqs)}, duplicates {len(dups)}; {log}")


def test_qos2_stream_survives_kill9_exactly_once(broker_factory, uniq):
    """3 kills of a QoS 2 stream to an offline 5.0 subscriber (session expiry 3600): every
    PUBRECed message arrives exactly once, in order."""
    acked, seqs, dups, log = stream_test(
        broker_factory, uniq, "qos2", "batched", 2, 5, kills=3,
        make_pub=lambda b, t: RawPublisher(b, t, qos=2, window=10), budget=40)
    print(f"acked {len(acked)}, received {len(seqs)}; {log}")


def test_sync_mode_qos1_stream_survives_kill9(broker_factory, uniq):
    """mode = "sync": the QoS 1 promise holds over 2 kills (5.0 subscriber)."""
    acked, seqs, dups, log = stream_test(
        broker_factory, uniq, "sync", "sync", 1, 5, kills=2,
        make_pub=lambda b, t: PahoQoS1Publisher(b, t, window=30), budget=30)
    print(f"acked {len(acked)}, received {len(seqs)}, duplicates {len(dups)}; {log}")


def test_qos1_stream_to_two_persistent_sessions(broker_factory, uniq):
    """Two persistent sessions (3.1.1, and 5.0 with two overlapping filters), 3 kills, raw
    QoS 1 publisher: both receive every PUBACKed message, in order."""
    start = time.monotonic()
    rng, seed = rng_for("two")
    b = start_store_broker(broker_factory)
    topic = f"{uniq}/a/b"
    persistent_subscriber(b, f"{uniq}-s4", topic, 1, 4)
    s5 = Client(b, client_id=f"{uniq}-s5", version=5, clean=True, properties=connect_props(SessionExpiryInterval=3600))
    assert s5.subscribe(f"{uniq}/#", qos=1) == [1]
    assert s5.subscribe(f"{uniq}/+/b", qos=1) == [1]
    s5.disconnect()
    pub = RawPublisher(b, topic, qos=1, window=20).start()
    try:
        log = run_kills(b, pub, rng, 3, deadline=start + 40)
    finally:
        pub.stop_ev.set()
    assert not pub.nosub and not pub.failed, (summarize(pub.nosub), pub.failed[:5])
    acked = list(pub.acked)
    for sid, version in ((f"{uniq}-s4", 4), (f"{uniq}-s5", 5)):
        s = reconnect_subscriber(b, sid, version)
        try:
            assert s.session_present, f"{sid}: session lost ({log}, seed {seed})"
            received = receive_all(s, acked, timeout=30)
            check_stream(received, acked, pub.next_seq, 1, f"{sid}: {log} seed {seed}")
        finally:
            s.disconnect()


class OnlineSubscriber:
    """A persistent 5.0 subscriber that stays connected, reconnecting (clean start 0) after
    every broker restart; collects everything it receives across connections."""

    def __init__(self, b, client_id, topic, qos):
        self.b, self.client_id = b, client_id
        self.received = []
        self.connections = []  # session_present of each connection after the first
        self.stop_ev = threading.Event()
        s = Client(b, client_id=client_id, version=5, clean=True, properties=connect_props(SessionExpiryInterval=3600))
        assert s.subscribe(topic, qos=qos) == [qos]
        self.thread = threading.Thread(target=self._run, args=(s,), daemon=True)
        self.thread.start()

    def _pump(self, s):
        while not self.stop_ev.is_set() and not s.disconnected.is_set():
            self.received += s.drain(0.05)
        self.received += s.drain(0.05)
        s.c.loop_stop()

    def _run(self, s):
        self._pump(s)
        while not self.stop_ev.is_set():
            try:
                s = Client(self.b, client_id=self.client_id, version=5, clean=False,
                           properties=connect_props(SessionExpiryInterval=3600))
            except (OSError, AssertionError):
                time.sleep(0.05)
                continue
            self.connections.append(s.session_present)
            self._pump(s)
        if not s.disconnected.is_set():
            s.disconnect()

    def wait_for(self, acked, timeout):
        """Until every seq in `acked` was received (or timeout), then 0.5 s more; stops the thread."""
        want = set(acked)
        deadline = time.monotonic() + timeout
        while want and time.monotonic() < deadline:
            time.sleep(0.2)
            want -= set(seqs_of(list(self.received)))
        time.sleep(0.5)
        self.halt()

    def halt(self):
        self.stop_ev.set()
        self.thread.join(15)


def test_qos1_stream_to_online_subscriber_survives_kill9(broker_factory, uniq):
    """A persistent subscriber connected during the stream (in-flight deliveries at each kill)
    reconnects after each of 4 restarts: it receives every PUBACKed message, first occurrences in order."""
    start = time.monotonic()
    rng, seed = rng_for("online")
    b = start_store_broker(broker_factory)
    topic = f"{uniq}/online"
    sub = OnlineSubscriber(b, f"{uniq}-sub", topic, 1)
    pub = PahoQoS1Publisher(b, topic, window=30).start()
    try:
        log = run_kills(b, pub, rng, 4, deadline=start + 40)
        acked = list(pub.acked)
        sub.wait_for(acked, timeout=30)
    finally:
        pub.stop_ev.set()
        sub.halt()
    assert not pub.nosub and not pub.failed, (summarize(pub.nosub), pub.failed[:5])
    assert all(sub.connections) and len(sub.connections) >= 4, \
        f"session_present after reconnections: {sub.connections} (kills {log}, seed {seed})"
    seqs, dups = check_stream(sub.received, acked, pub.next_seq, 1, f"{log} seed {seed}")
    print(f"acked {len(acked)}, received {len(seqs)}, duplicates {len(dups)}; {log}")


def test_burst_of_puback_sharing_commits_keeps_order_and_survives_kill9(broker_factory, uniq):
    """400 QoS 1 PUBLISHes in one write, alternating a topic with a persistent (offline)
    subscriber, whose PUBACKs wait for the commit (many share one), and a topic with no
    subscriber, whose PUBACKs need none: every PUBACK comes back in PUBLISH order with its
    reason code, and after kill -9 the subscriber receives every stored message."""
    b = start_store_broker(broker_factory)
    stored, nobody = f"{uniq}/stored", f"{uniq}/nobody"
    sid = f"{uniq}-sub"
    persistent_subscriber(b, sid, stored, 1, 5)
    c = m.RawClient(b, version=5, timeout=10)
    try:
        c.send(m.connect(f"{uniq}-pub", version=5, clean=True))
        ack = c.recv(5)
        assert ack is not None and ack.type == m.CONNACK and ack.rc == 0
        n = 400
        c.send(b"".join(m.publish(stored if i % 2 == 0 else nobody, b"seq=%d" % i, qos=1, pid=i + 1, version=5)
                        for i in range(n)))
        acks = []
        deadline = time.monotonic() + 30
        while len(acks) < n and time.monotonic() < deadline:
            p = c.recv(10)
            assert p is not None, f"connection closed after {len(acks)} PUBACKs"
            if p.type == m.PUBACK:
                acks.append((p.pid, p.rc))
    finally:
        c.close()
    assert [pid for pid, _ in acks] == list(range(1, n + 1))
    assert [rc for _, rc in acks] == [0x00 if i % 2 == 0 else 0x10 for i in range(n)]
    kill9(b)
    restart(b)
    s = reconnect_subscriber(b, sid, 5)
    try:
        got = receive_all(s, range(0, n, 2), timeout=30)
    finally:
        s.disconnect()
    assert sorted(set(seqs_of(got))) == list(range(0, n, 2))
