"""Gateway sessions (Protocol/SPEC.md section 7, protocol version 2) end to end: a raw Python
sidecar opens sessions and speaks MQTT bytes in GW_DATA frames; the broker treats each one as
a client like any other (built-in auth and ACL, wills, persistent sessions, ctl listings),
and every misuse costs at most that session or that sidecar connection."""

import struct

import pytest

import mqttraw as m
from brokers import toml_value
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok
from gateways import (ERROR, GW_OPEN, GW_OPENED, REGISTERED, GatewayLink, gw_data_frame, gw_open_body,
                      register_body)
from brokers import free_port
from sidecars import PySidecar, Reader, frame, short_dir, sidecar_config
from test_builtin_auth import pbkdf2_sha512

PASSWORDS = {"gw": "gw-pw", "watcher": "watcher-pw"}

ACL = """
[[rules]]
permission = "deny"
topics = ["gw/denied/#"]

[[rules]]
permission = "allow"
topics = ["gw/#"]
"""

LISTENER = "mqtt-test:udp:0.0.0.0:1884"


@pytest.fixture
def env(broker_factory):
    d = short_dir()
    users = d / "users.toml"
    users.write_text("\n".join(f"[users.{n}]\npassword = {toml_value(pbkdf2_sha512(p))}\n" for n, p in PASSWORDS.items()))
    (d / "acl.toml").write_text(ACL)
    extra = (sidecar_config(d / "sc.sock") + ctl_config(d / "ctl.sock")
             + f"\n[auth]\nusers_file = {toml_value(str(users))}\nacl_file = {toml_value(str(d / 'acl.toml'))}\n")
    b = broker_factory(extra=extra)
    links = []

    def link(**kw):
        g = GatewayLink(d / "sc.sock", **kw)
        links.append(g)
        return g
    yield b, link, d
    for g in links:
        g.close()


def watcher(b, **kw):
    return Client(b, version=4, username="watcher", password=PASSWORDS["watcher"], **kw)


def error_of(answer):
    kind, body = answer
    assert kind == ERROR, answer
    r = Reader(body)
    return r.u16(), r.str()


def assert_serving(b):
    """A TCP client still gets through, publishes and receives."""
    c = watcher(b)
    assert c.subscribe("gw/health", qos=1) == [1]
    c.publish("gw/health", b"ok", qos=1)
    assert c.get().payload == b"ok"
    c.disconnect()


def gw_login(g, sid, client_id, version=4, **kw):
    g.open_ok(sid)
    return g.connect(sid, client_id, version=version, username="gw", password=PASSWORDS["gw"].encode(), **kw)


def test_version_2_is_negotiated_and_gateway_registered(env):
    _, link, _ = env
    g = link()
    assert g.version == 2
    assert g.registered[0] == REGISTERED


def test_gateway_publish_reaches_paho_subscriber(env, uniq):
    b, link, _ = env
    w = watcher(b)
    assert w.subscribe(f"gw/{uniq}/#", qos=1) == [1]
    g = link()
    gw_login(g, 1, "gw-pub")
    g.data(1, m.publish(f"gw/{uniq}/t", b"from the gateway", qos=1, pid=5))
    assert g.expect(1, m.PUBACK).pid == 5
    got = w.get()
    assert (got.topic, got.payload) == (f"gw/{uniq}/t", b"from the gateway")


def test_paho_publish_reaches_gateway_session(env, uniq):
    b, link, _ = env
    g = link()
    gw_login(g, 1, "gw-sub", version=5)
    g.data(1, m.subscribe(1, [(f"gw/{uniq}/#", 1)], version=5))
    assert g.expect(1, m.SUBACK, version=5).rcs == [1]
    w = watcher(b)
    w.publish(f"gw/{uniq}/x", b"to the gateway", qos=1)
    p = g.expect(1, m.PUBLISH, version=5)
    assert (p.topic, p.payload, p.qos) == (f"gw/{uniq}/x", b"to the gateway", 1)
    g.data(1, m.puback(p.pid, version=5))


def test_data_may_follow_gw_open_without_waiting(env):
    _, link, _ = env
    g = link()
    connect = m.connect("pipelined", version=4, username="gw", password=PASSWORDS["gw"].encode())
    g.send(frame(GW_OPEN, 99, gw_open_body(7, "mqtt-test", "::1", 1, LISTENER)) + gw_data_frame(7, connect[:3])
           + gw_data_frame(7, b"") + gw_data_frame(7, connect[3:]))
    assert g.reply(99)[0] == GW_OPENED
    assert g.expect(7, m.CONNACK).rc == 0


def test_gateway_client_is_listed_with_gateway_peer_and_listener(env):
    b, link, d = env
    g = link(name="gwlist")
    g.open_ok(3, peer="2001:db8::7", port=5683, listener=LISTENER)
    g.connect(3, "gw-listed", username="gw", password=PASSWORDS["gw"].encode())
    rows = {r["clientid"]: r for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)}
    assert rows["gw-listed"]["listener"] == LISTENER
    assert rows["gw-listed"]["peer"] in ("2001:db8::7:5683", "[2001:db8::7]:5683")
    plugins = {r["name"]: r for r in ctl_ok(d / "ctl.sock", "plugins", "list", json_out=True)}
    assert plugins["gwlist"]["gateway_sessions"] == 1
    assert "SESSIONS" in ctl_ok(d / "ctl.sock", "plugins", "list")
    # Kicking it closes the session: the sidecar gets GW_CLOSE.
    ctl_ok(d / "ctl.sock", "clients", "kick", "gw-listed")
    assert g.wait_close(3) == "disconnected"
    wait_for(lambda: {r["name"]: r for r in ctl_ok(d / "ctl.sock", "plugins", "list", json_out=True)}
             ["gwlist"]["gateway_sessions"] == 0, msg="session count back to 0")


@pytest.mark.parametrize("version,rc", [(4, 4), (5, 0x86)])
def test_builtin_auth_refuses_a_bad_password(env, version, rc):
    _, link, _ = env
    g = link()
    g.open_ok(1)
    g.connect(1, "gw-bad", version=version, expect_rc=rc, username="gw", password=b"wrong")
    assert g.wait_close(1) == "disconnected"


def test_acl_applies_to_gateway_clients(env, uniq):
    b, link, _ = env
    w = watcher(b)
    assert w.subscribe("gw/#", qos=1) == [1]
    g = link()
    gw_login(g, 1, "gw-acl", version=5)
    g.data(1, m.subscribe(1, [("secret/#", 1), (f"gw/{uniq}", 1)], version=5))
    assert g.expect(1, m.SUBACK, version=5).rcs == [0x87, 1]
    g.data(1, m.publish(f"gw/denied/{uniq}", b"no", qos=1, pid=2, version=5))
    assert g.expect(1, m.PUBACK, version=5).rc == 0x87
    w.expect_none(0.5)


def test_closing_the_sidecar_connection_fires_wills_and_keeps_sessions(env, uniq):
    b, link, d = env
    w = watcher(b)
    assert w.subscribe(f"gw/{uniq}/will", qos=1) == [1]
    g = link()
    gw_login(g, 1, "gw-will", clean=False, will_topic=f"gw/{uniq}/will", will_payload=b"gone", will_qos=1)
    g.data(1, m.subscribe(1, [(f"gw/{uniq}/kept", 1)]))
    assert g.expect(1, m.SUBACK).rcs == [1]
    g.close()
    assert w.get().payload == b"gone"
    wait_for(lambda: "gw-will" not in {r["clientid"] for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)},
             msg="gateway client disconnected")
    # The persistent session stayed: a TCP reconnect finds it and its subscription.
    with m.RawClient(b, version=4) as r:
        ack = r.connect("gw-will", clean=False, username="gw", password=PASSWORDS["gw"].encode())
        assert ack.session_present
        w.publish(f"gw/{uniq}/kept", b"still subscribed", qos=1)
        assert r.expect(m.PUBLISH).payload == b"still subscribed"
    assert_serving(b)


def test_gw_close_from_sidecar_without_disconnect_fires_the_will(env, uniq):
    b, link, _ = env
    w = watcher(b)
    assert w.subscribe(f"gw/{uniq}/#", qos=1) == [1]
    g = link()
    gw_login(g, 1, "gw-close-a", will_topic=f"gw/{uniq}/a", will_payload=b"will a", will_qos=1)
    gw_login(g, 2, "gw-close-b", will_topic=f"gw/{uniq}/b", will_payload=b"will b", will_qos=1)
    # Session 2 ends with DISCONNECT then GW_CLOSE (no will); session 1 with GW_CLOSE alone.
    g.data(2, m.disconnect())
    g.gw_close(2)
    # The broker may end session 2 on the DISCONNECT before it reads the GW_CLOSE: one
    # GW_CLOSE either way.
    assert g.wait_close(2) in ("closed by sidecar", "disconnected")
    g.gw_close(1)
    assert g.wait_close(1) == "closed by sidecar"
    got = w.get()
    assert (got.topic, got.payload) == (f"gw/{uniq}/a", b"will a")
    w.expect_none(0.5)
    # The ids are free again once the broker's GW_CLOSE arrived.
    gw_login(g, 1, "gw-close-a2")


def test_broker_closes_the_session_after_disconnect(env):
    _, link, _ = env
    g = link()
    gw_login(g, 1, "gw-bye", version=5)
    g.data(1, m.pingreq())
    assert g.expect(1, m.PINGRESP, version=5)
    g.data(1, m.disconnect(version=5))
    assert g.wait_close(1) == "disconnected"
    # Data and GW_CLOSE after the close are ignored; the connection stays.
    g.data(1, m.pingreq())
    g.gw_close(1)
    gw_login(g, 2, "gw-after")


def test_unknown_session_ids_are_ignored(env):
    b, link, _ = env
    g = link()
    g.data(12345, m.pingreq())
    g.gw_close(777)
    gw_login(g, 1, "gw-known")
    g.data(1, m.pingreq())
    assert g.expect(1, m.PINGRESP)
    assert 12345 not in g.streams and 777 not in g.closes
    assert_serving(b)


def test_duplicate_session_id_is_refused_and_the_open_one_unaffected(env):
    _, link, _ = env
    g = link()
    gw_login(g, 1, "gw-dup")
    code, _ = error_of(g.open(1))
    assert code == 5
    g.data(1, m.pingreq())
    assert g.expect(1, m.PINGRESP)


def test_overflow_closes_only_that_session(env):
    b, link, _ = env
    g = link(max_frame=4 << 20)
    gw_login(g, 1, "gw-calm")
    gw_login(g, 2, "gw-flood")
    g.data(2, b"\x00" * ((1 << 20) + 1))
    assert g.wait_close(2) == "overflow"
    g.data(1, m.pingreq())
    assert g.expect(1, m.PINGRESP)
    gw_login(g, 3, "gw-next")
    assert_serving(b)


def test_version_1_sidecar_cannot_register_a_gateway(env):
    b, link, _ = env
    g = link(versions=(1, 1), register=False)
    assert g.version == 1
    code, _ = error_of(g.request(3, register_body(["mqtt-test"])))
    assert code == 4
    # It may register without it; gateway frames stay unknown kinds in version 1.
    assert g.request(3, register_body(hooks=["client.connected"]))[0] == REGISTERED
    code, _ = error_of(g.open(1))
    assert code == 2
    assert g.closed_by_broker()
    assert_serving(b)


def test_sidecar_without_gateway_capability_cannot_open(env):
    b, link, _ = env
    g = link(protocols=())
    code, _ = error_of(g.open(1))
    assert code == 5
    other = link(name="gw-other", protocols=("stomp",))
    code, _ = error_of(other.open(1, protocol="mqtt-sn"))
    assert code == 5
    other.open_ok(1, protocol="stomp")
    assert_serving(b)


def test_session_zero_is_a_protocol_violation(env):
    b, link, _ = env
    g = link()
    gw_login(g, 1, "gw-victim", will_topic="gw/zero/will", will_payload=b"z", will_qos=0)
    w = watcher(b)
    assert w.subscribe("gw/zero/will", qos=1) == [1]
    g.send(gw_data_frame(0, b"x"))
    assert g.closed_by_broker()
    assert w.get().payload == b"z"
    assert_serving(b)


def test_empty_gateway_protocol_is_refused(env):
    _, link, _ = env
    g = link(register=False)
    code, _ = error_of(g.request(3, register_body([""])))
    assert code == 1
    assert g.request(3, register_body(["mqtt-test"]))[0] == REGISTERED
    gw_login(g, 1, "gw-after-retry")


def test_large_broker_data_is_split_and_arrives_whole(env, uniq):
    """A 200 KiB message crosses a 64 KiB frame maximum in several GW_DATA frames."""
    b, link, _ = env
    g = link(max_frame=65536)
    assert g.max_frame == 16 << 20
    gw_login(g, 1, "gw-big")
    g.data(1, m.subscribe(1, [(f"gw/{uniq}", 0)]))
    assert g.expect(1, m.SUBACK).rcs == [0]
    payload = bytes(range(256)) * 800
    w = watcher(b)
    w.publish(f"gw/{uniq}", payload, qos=0)
    assert g.expect(1, m.PUBLISH).payload == payload


class Endpoint:
    """Where a paho client connects (host and port, like a Broker)."""

    def __init__(self, host, port):
        self.host, self.port = host, port


def test_python_reference_gateway_carries_paho_clients(env, uniq):
    """Protocol/examples/sidecar.py --gateway: real paho clients connect to the sidecar, which
    carries them into the broker as gateway sessions; stopping it drops them (wills fire).
    (It registers authn/authz too: stopped with GOODBYE it leaves the auth chain, so the will's
    authorization falls to the built-in rules rather than to the fallback for a crashed one.)"""
    b, _, d = env
    port = free_port()
    # No users or rules of its own: auth and ACL are the broker's built-in ones.
    sc = PySidecar(d / "sc.sock", d, name="pygw", users={"users": {}, "acl": []},
                   args=["--gateway", f"127.0.0.1:{port}"]).start(b)
    try:
        relay = Endpoint("127.0.0.1", port)
        w = watcher(b)
        assert w.subscribe(f"gw/{uniq}/up", qos=1) == [1]
        assert w.subscribe(f"gw/{uniq}/will", qos=1) == [1]
        via = Client(relay, version=5, client_id="via-gateway", username="gw", password=PASSWORDS["gw"],
                     will={"topic": f"gw/{uniq}/will", "payload": b"relay gone", "qos": 1})
        assert via.subscribe(f"gw/{uniq}/down", qos=1) == [1]
        via.publish(f"gw/{uniq}/up", b"through the relay", qos=1)
        assert w.get().payload == b"through the relay"
        w.publish(f"gw/{uniq}/down", b"back through it", qos=1)
        assert via.get().payload == b"back through it"
        rows = {r["clientid"]: r for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)}
        assert rows["via-gateway"]["listener"] == f"mqtt-relay:tcp:127.0.0.1:{port}"
        assert rows["via-gateway"]["peer"].startswith("127.0.0.1:")
        sc.stop()
        got = w.get()
        assert (got.topic, got.payload) == (f"gw/{uniq}/will", b"relay gone")
        assert_serving(b)
    finally:
        sc.stop()


@pytest.fixture
def capped(broker_factory):
    d = short_dir()
    extra = sidecar_config(d / "sc.sock", mqtt={"allow_anonymous": True}).replace(
        "[sidecars]\n", "[sidecars]\nmax_gateway_sessions = 2\n")
    b = broker_factory(extra=extra)
    g = GatewayLink(d / "sc.sock")
    yield b, g
    g.close()


def test_session_limit_per_sidecar(capped):
    b, g = capped
    g.open_ok(1)
    g.open_ok(2)
    code, text = error_of(g.open(3))
    assert code == 6 and "at most 2" in text, text
    g.gw_close(1)
    assert g.wait_close(1) == "closed by sidecar"
    g.open_ok(3)
    g.connect(3, "gw-capped")
    assert "gateway session refused: limit reached" in b.log_text()


def test_a_stalled_sidecar_slows_only_its_sessions(env, uniq):
    """The sidecar stops reading: the broker stops reading the session's socketpair, the MQTT
    connection becomes unwritable and its QoS 0 traffic is dropped like a slow TCP client's,
    instead of piling up in the broker. Other clients are served meanwhile; the session lives on."""
    b, link, _ = env
    g = link()
    gw_login(g, 1, "gw-slow")
    g.data(1, m.subscribe(1, [(f"gw/{uniq}/flood", 0)]))
    assert g.expect(1, m.SUBACK).rcs == [0]
    n, size = 3000, 4096
    flood = b"".join(m.publish(f"gw/{uniq}/flood", bytes([i % 256]) * size) for i in range(n))
    with m.connected(b, version=4, username="watcher", password=PASSWORDS["watcher"].encode()) as r:
        r.send(flood)  # 12 MB at QoS 0 while the gateway reads nothing
        r.send(m.pingreq())
        assert r.expect(m.PINGRESP)
        assert_serving(b)
    # Read again (well within the health timeout): what was not dropped arrives, in order.
    g.data(1, m.pingreq())
    got = 0
    while True:
        p = g.packet(1, timeout=10)
        if p.type == m.PINGRESP:
            break
        assert p.type == m.PUBLISH and len(p.payload) == size
        got += 1
    assert 0 < got < n * 0.8, f"{got} of {n} delivered: the stalled session was not bounded"
    g.data(1, m.pingreq())
    assert g.expect(1, m.PINGRESP)


def test_gateway_clients_cost_the_broker_no_file_descriptor(env, uniq):
    """Issue 10: a gateway session drives the MQTT connection directly (no socketpair)."""
    import os
    b, link, _ = env
    g = link(name="gwfd")
    fds_before = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
    n = 200
    for sid in range(1, n + 1):
        gw_login(g, sid, f"gw-fd-{uniq}-{sid}")
    fds_after = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
    assert fds_after - fds_before < 10, (fds_before, fds_after)
    # And they are real clients: one of them publishes, another receives.
    g.data(1, m.subscribe(1, [(f"gw/{uniq}/fd", 1)]))
    assert g.expect(1, m.SUBACK).rcs == [1]
    g.data(n, m.publish(f"gw/{uniq}/fd", b"no descriptors", qos=1, pid=3))
    assert g.expect(n, m.PUBACK).pid == 3
    assert g.expect(1, m.PUBLISH).payload == b"no descriptors"
