"""Requirement 6: $SYS topics and client connected/disconnected events."""

import json
import time

import pytest

import mqttraw as m
from clients import Client

NUMERIC = ["stats/clients/count", "stats/clients/max", "stats/clients/parked", "stats/subscriptions/count",
           "stats/retained/count", "metrics/messages/received", "metrics/messages/sent",
           "metrics/messages/dropped", "metrics/bytes/received", "metrics/bytes/sent",
           "metrics/messages/received/rate"]
ALL = ["version", "uptime", "datetime"] + NUMERIC


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(sys={"interval": 1})


class SysReader:
    def __init__(self, broker):
        self.broker = broker
        self.prefix = f"$SYS/brokers/{broker.node}/"
        self.c = Client(broker)
        self.c.subscribe(self.prefix + "#", qos=0)
        self.latest = {}
        self.first = {}

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.c.drain(0.1):
                key = msg.topic[len(self.prefix):] if msg.topic.startswith(self.prefix) else msg.topic
                self.first.setdefault(key, msg)
                self.latest[key] = msg
            if not self.c.messages.qsize():
                time.sleep(0.05)

    def wait_value(self, key, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.3)
            msg = self.latest.get(key)
            if msg is not None and predicate(float(msg.payload)):
                return float(msg.payload)
        last = self.latest.get(key)
        raise AssertionError(f"{key}: condition not met within {timeout}s, last value "
                             f"{last.payload if last else None!r}")

    def close(self):
        self.c.disconnect()


@pytest.fixture
def sysr(broker):
    r = SysReader(broker)
    yield r
    r.close()


def test_all_sys_topics_published(sysr):
    sysr.pump(3.5)
    missing = [k for k in ALL if k not in sysr.latest]
    assert not missing, f"missing $SYS topics: {missing}; got {sorted(sysr.latest)}"
    assert sysr.latest["version"].payload.strip()
    assert sysr.latest["datetime"].payload.strip()
    assert sysr.latest["uptime"].payload.strip()
    for k in NUMERIC:
        value = float(sysr.latest[k].payload)
        assert value >= 0, f"{k} = {value}"


def test_sys_topics_are_retained(broker, sysr):
    sysr.pump(2.0)  # make sure at least one round was published
    late = Client(broker)
    late.subscribe(f"$SYS/brokers/{broker.node}/version", qos=0)
    msg = late.get(3.0)
    assert msg.retain is True
    late.disconnect()


def test_uptime_advances(sysr):
    sysr.pump(1.5)
    first = sysr.latest["uptime"].payload
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and sysr.latest["uptime"].payload == first:
        sysr.pump(0.5)
    assert sysr.latest["uptime"].payload != first


def test_clients_count_and_max(broker, sysr):
    base = sysr.wait_value("stats/clients/count", lambda v: v >= 1)
    extra = [Client(broker) for _ in range(3)]
    n = sysr.wait_value("stats/clients/count", lambda v: v >= base + 3)
    mx = sysr.wait_value("stats/clients/max", lambda v: v >= n)
    for c in extra:
        c.disconnect()
    sysr.wait_value("stats/clients/count", lambda v: v <= n - 3)
    assert float(sysr.latest["stats/clients/max"].payload) >= mx


def test_subscriptions_and_retained_count(broker, sysr, uniq):
    subs = sysr.wait_value("stats/subscriptions/count", lambda v: v >= 1)
    c = Client(broker)
    for i in range(3):
        c.subscribe(f"{uniq}/s{i}", qos=0)
    sysr.wait_value("stats/subscriptions/count", lambda v: v >= subs + 3)
    retained = sysr.wait_value("stats/retained/count", lambda v: v >= 0)
    c.publish(f"{uniq}/r", b"keep", qos=1, retain=True)
    sysr.wait_value("stats/retained/count", lambda v: v >= retained + 1)
    c.publish(f"{uniq}/r", b"", qos=1, retain=True)
    sysr.wait_value("stats/retained/count", lambda v: v <= retained)
    c.disconnect()


def test_message_and_byte_metrics(broker, sysr, uniq):
    recv0 = sysr.wait_value("metrics/messages/received", lambda v: v >= 0)
    sent0 = sysr.wait_value("metrics/messages/sent", lambda v: v >= 0)
    brecv0 = sysr.wait_value("metrics/bytes/received", lambda v: v >= 0)
    bsent0 = sysr.wait_value("metrics/bytes/sent", lambda v: v >= 0)
    s = Client(broker)
    s.subscribe(f"{uniq}/m", qos=1)
    p = Client(broker)
    for _ in range(20):
        p.publish(f"{uniq}/m", b"x" * 100, qos=1)
    s.collect(20)
    sysr.wait_value("metrics/messages/received", lambda v: v >= recv0 + 20)
    sysr.wait_value("metrics/messages/sent", lambda v: v >= sent0 + 20)
    sysr.wait_value("metrics/bytes/received", lambda v: v >= brecv0 + 2000)
    sysr.wait_value("metrics/bytes/sent", lambda v: v >= bsent0 + 2000)
    s.disconnect()
    p.disconnect()


def test_received_rate(broker, sysr, uniq):
    p = Client(broker)
    deadline = time.monotonic() + 8
    seen = 0.0
    while time.monotonic() < deadline and seen <= 0:
        for _ in range(50):
            p.publish(f"{uniq}/rate", b"r", qos=0, wait=False)
        time.sleep(0.2)
        sysr.pump(0.1)
        msg = sysr.latest.get("metrics/messages/received/rate")
        seen = float(msg.payload) if msg else 0.0
    assert seen > 0, "received rate stayed 0 while publishing"
    p.disconnect()


def events(broker):
    c = Client(broker)
    c.subscribe(f"$SYS/brokers/{broker.node}/clients/#", qos=1)
    return c


def wait_event(watcher, cid, kind, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in watcher.drain(0.2):
            if msg.topic.endswith(f"/clients/{cid}/{kind}"):
                return json.loads(msg.payload)
    raise AssertionError(f"no {kind} event for {cid}")


def assert_ts(ts):
    assert isinstance(ts, (int, float)), ts
    now = time.time()
    seconds = ts / 1000 if ts > 1e11 else ts
    assert abs(seconds - now) < 120, f"ts {ts} is not the current time"


@pytest.mark.parametrize("version", [4, 5])
def test_client_connected_and_disconnected_events(broker, uniq, version):
    w = events(broker)
    cid = f"{uniq}-ev"
    c = Client(broker, cid, version=version, clean=True, username="alice", password="secret")
    ev = wait_event(w, cid, "connected")
    assert ev["clientid"] == cid
    assert ev["username"] == "alice"
    assert str(ev["ipaddress"]).startswith("127.0.0.1")
    assert ev["clean_start"] is True
    assert ev["protocol"] == version
    assert ev["connack"] == 0
    assert_ts(ev["ts"])
    assert "secret" not in json.dumps(ev)
    c.disconnect()
    ev = wait_event(w, cid, "disconnected")
    assert ev["clientid"] == cid and ev["username"] == "alice"
    assert "reason" in ev
    assert_ts(ev["ts"])
    w.disconnect()


def test_connected_event_for_anonymous_persistent_v311(broker, uniq):
    w = events(broker)
    cid = f"{uniq}-anon"
    with m.RawClient(broker, version=4) as c:
        c.connect(cid, clean=False)
        ev = wait_event(w, cid, "connected")
        assert ev["clean_start"] is False and ev["protocol"] == 4
        assert ev["username"] in (None, "")
    ev = wait_event(w, cid, "disconnected")  # dropped connection without DISCONNECT
    assert ev["clientid"] == cid and "reason" in ev
    with m.RawClient(broker, version=4) as c:
        c.connect(cid, clean=True)
    w.disconnect()
