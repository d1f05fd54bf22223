"""Subscriptions returned with an authentication answer (sidecar protocol version 3,
AUTHN_REPLY_SUBS, Protocol/SPEC.md section 8): the client is subscribed right after CONNACK
as if it had sent SUBSCRIBE, with ACL per filter, retained messages, hooks and ctl listings.
The Python reference sidecar returns a user's "subscriptions" from its users file."""

import pytest

import mqttraw as m

from clients import Client, wait_for
from ctl import ctl_config, ctl_ok
from sidecars import PySidecar, Reader, frame, read_frame, short_dir, sidecar_config, wait_registered
from test_hooks import raw_sidecar

USERS = {
    "users": {
        "pub": {"password": "p"},
        # a/... is allowed by the ACL below, b/... is not, "a/#/x" is not a valid filter.
        "sue": {"password": "s", "subscriptions": {"a/static/one": 1, "a/static/+": 0, "b/refused": 1,
                                                   "a/#/x": 0}},
        "tom": {"password": "t"},
        # A superuser (no ACL questions: every answer synchronous) with many subscriptions.
        "many": {"password": "m", "superuser": True, "subscriptions": {f"many/{i}": i % 3 for i in range(20_000)}},
    },
    "acl": [
        {"allow": True, "username": "$all", "access": "pubsub", "topic": "a/#"},
        {"allow": False, "username": "$all", "access": "pubsub", "topic": "#"},
    ],
}


@pytest.fixture
def env(broker_factory):
    d = short_dir()
    sock = d / "sc.sock"
    ctl = d / "ctl.sock"
    b = broker_factory(extra=sidecar_config(sock) + ctl_config(ctl))
    sc = PySidecar(sock, d, users=USERS).start(b)
    yield b, sc, sock, ctl
    sc.stop()


def subs_of(ctl, cid):
    return {(s["filter"], s["qos"]) for s in ctl_ok(ctl, "subscriptions", "list", cid, json_out=True)}


@pytest.mark.parametrize("version", [4, 5])
def test_static_subscriptions_deliver_retained_and_live_messages(env, version):
    b, _, _, ctl = env
    pub = Client(b, client_id=f"pub{version}", version=5, username="pub", password="p")
    pub.publish("a/static/one", b"retained", qos=1, retain=True)
    sue = Client(b, client_id=f"sue{version}", version=version, username="sue", password="s")
    try:
        # Never sent SUBSCRIBE: the retained message arrives through the static subscriptions
        # (once per matching filter: a/static/one at QoS 1 and a/static/+ at QoS 0).
        got = sorted((m.topic, m.payload, m.qos, m.retain) for m in sue.collect(2))
        assert got == [("a/static/one", b"retained", 0, True), ("a/static/one", b"retained", 1, True)]
        assert subs_of(ctl, f"sue{version}") == {("a/static/one", 1), ("a/static/+", 0)}
        pub.publish("a/static/two", b"live", qos=1)
        m = sue.get()
        assert (m.topic, m.payload, m.qos, m.retain) == ("a/static/two", b"live", 0, False)
        # The client's own subscriptions work next to them.
        sue.subscribe("a/own", qos=1)
        pub.publish("a/own", b"own", qos=1)
        assert sue.get().payload == b"own"
    finally:
        pub.publish("a/static/one", b"", qos=1, retain=True)
        sue.disconnect()
        pub.disconnect()


def test_refused_and_invalid_static_subscriptions_are_left_out_and_logged(env):
    b, _, _, ctl = env
    sue = Client(b, client_id="sue-acl", version=5, username="sue", password="s")
    pub = Client(b, client_id="pub-acl", version=5, username="pub", password="p")
    try:
        wait_for(lambda: subs_of(ctl, "sue-acl") == {("a/static/one", 1), ("a/static/+", 0)}, msg="static subscriptions")
        wait_for(lambda: any("subscription refused" in l and "not authorized" in l and "b/refused" in l
                             for l in b.log_text().splitlines()), msg="refusal logged")
        assert "static subscription with an invalid topic filter left out" in b.log_text()
        # Still connected and served.
        pub.publish("a/static/x", b"still here", qos=1)
        assert sue.get().payload == b"still here"
    finally:
        sue.disconnect()
        pub.disconnect()


def test_static_subscriptions_fire_the_subscribe_hooks(env):
    b, _, sock, _ = env
    s, accepted = raw_sidecar(sock, "hooks", ["client.subscribe", "session.subscribed"])
    assert sorted(accepted) == ["client.subscribe", "session.subscribed"]
    wait_registered(b, "hooks")
    sue = Client(b, client_id="sue-hooks", version=4, username="sue", password="s")
    seen = {"client.subscribe": set(), "session.subscribed": set()}
    s.settimeout(5)
    want_subscribed = {(b"a/static/one", b"1"), (b"a/static/+", b"0")}
    try:
        while seen["session.subscribed"] != want_subscribed or len(seen["client.subscribe"]) < 3:
            kind, rid, body = read_frame(s)
            if kind == 0x05:  # health PING
                s.sendall(frame(0x06, rid))
                continue
            for hook, fields in Reader(body).events():
                if fields["client_id"] == b"sue-hooks":
                    seen[hook].add((fields["topic"], fields["qos"]))
        # client.subscribe fires before authorization (SPEC 3.4): the refused filter too.
        assert {(b"a/static/one", b"1"), (b"a/static/+", b"0"), (b"b/refused", b"1")} <= seen["client.subscribe"]
    finally:
        sue.disconnect()
        s.close()


def test_users_without_subscriptions_and_clients_that_subscribe_themselves_are_unchanged(env):
    b, _, _, ctl = env
    tom = Client(b, client_id="tom", version=5, username="tom", password="t")
    try:
        assert subs_of(ctl, "tom") == set()
        assert tom.subscribe("a/tom", qos=1) == [1]
        tom.publish("a/tom", b"x", qos=1)
        assert tom.get().payload == b"x"
    finally:
        tom.disconnect()


def test_twenty_thousand_filters_at_once(env):
    """20,000 static subscriptions, and a client SUBSCRIBE of 20,000 filters: answered, the
    broker alive (ACL decisions for many filters are a loop: a recursion per filter
    overflowed the event loop's stack at a few thousand)."""
    b, _, _, ctl = env
    c = Client(b, client_id="many-static", version=5, username="many", password="m")
    try:
        wait_for(lambda: len(ctl_ok(ctl, "subscriptions", "list", "many-static", json_out=True)) == 20_000,
                 timeout=30, msg="20,000 static subscriptions")
    finally:
        c.disconnect()
    with m.RawClient(b, version=4, timeout=30) as raw:
        raw.connect("many-filters", username="many", password=b"m")
        raw.send(m.subscribe(1, [(f"f/{i}", 0) for i in range(20_000)], version=4))
        ack = raw.expect(m.SUBACK, timeout=30)
        assert ack.rcs == [0] * 20_000
    b.assert_alive()
