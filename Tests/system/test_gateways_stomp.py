"""swiftlet-gateways' STOMP gateway (emqttd_stomp) end to end: stomp.py at 1.0, 1.1 and 1.2
exchanging messages with paho-mqtt clients both ways through a real broker, receipts, acks,
transactions, heart-beats, the frame limits, and auth/ACL through the broker's chain. One
gateway process (external: --socket/--config) serves the module; the managed and kill -9
tests start their own."""

import os
import signal
import socket
import time

import pytest

from brokers import free_port, toml_value
from clients import Client, wait_for
from ctl import ctl_ok, run_ctl
from sidecars import managed_pid, short_dir, wait_registered
from stompgw import GatewayProcess, auth_broker, RawStomp, gateways_binary, shipped_config, stomp_client, wait_port

pytestmark = pytest.mark.skipif(not gateways_binary().exists(),
                                reason=f"{gateways_binary()} not built (swift build --product swiftlet-gateways)")

PASSWORDS = {"alice": "alice-pw", "guest": "guest", "watcher": "watcher-pw"}

ACL = """
[[rules]]
permission = "deny"
user = "alice"
topics = ["secret/#"]

[[rules]]
permission = "allow"
topics = ["#", "$SYS/#"]
"""

RECEIVE_MAXIMUM = 4


def gateway_config(port, **stomp):
    text = shipped_config({"enabled = false": "enabled = true",
                           "listener = 61613 ": f"listener = \"127.0.0.1:{port}\" ",
                           "listener = 1884 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           "listener = 61616 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           f"receive_maximum = 64 ": f"receive_maximum = {RECEIVE_MAXIMUM} "})
    for k, v in stomp.items():
        text = text.replace("[stomp]\n", f"[stomp]\n{k} = {toml_value(v)}\n", 1)
    # Managed-only keys stay; an external process ignores [sidecar].
    return text


@pytest.fixture(scope="module")
def gw(module_broker_factory):
    b, d = auth_broker(module_broker_factory, PASSWORDS, ACL)
    port = free_port()
    g = GatewayProcess(d, d / "sc.sock", gateway_config(port)).start(b)
    wait_port(port)
    yield b, port, d, g
    g.stop()


def watcher(b):
    return Client(b, version=5, username="watcher", password=PASSWORDS["watcher"])


def stomp_login(port, version="1.2", **kw):
    return stomp_client(port, version, login="alice", passcode=PASSWORDS["alice"], **kw)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_stomp_and_mqtt_exchange_both_ways(gw, uniq, version):
    b, port, _, _ = gw
    c, col = stomp_login(port, version)
    c.subscribe(destination=f"/topic/{uniq}/down/#", id="s1", ack="auto", headers={"receipt": "sub-1"})
    assert col.receipt() == "sub-1"
    w = watcher(b)
    assert w.subscribe(f"{uniq}/up/#", qos=1) == [1]
    # MQTT -> STOMP: the destination keeps the subscriber's /topic/ form.
    w.publish(f"{uniq}/down/x", b"from paho", qos=1)
    m = col.get()
    assert (m.headers["destination"], m.body) == (f"/topic/{uniq}/down/x", "from paho")
    assert m.headers["subscription"] == "s1"
    # STOMP -> MQTT, with and without the /topic/ prefix.
    c.send(destination=f"/topic/{uniq}/up/a", body="from stomp a")
    c.send(destination=f"{uniq}/up/b", body="from stomp b", headers={"receipt": "send-b"})
    assert col.receipt() == "send-b"
    got = {w.get().topic: None for _ in range(2)}
    assert set(got) == {f"{uniq}/up/a", f"{uniq}/up/b"}
    c.disconnect()
    w.disconnect()


def test_bare_destination_is_delivered_bare(gw, uniq):
    b, port, _, _ = gw
    c, col = stomp_login(port)
    c.subscribe(destination=f"{uniq}/+/t", id="bare", headers={"receipt": "r"})
    c.subscribe(destination=f"/topic/{uniq}/#", id="prefixed", headers={"receipt": "r2"})
    assert {col.receipt(), col.receipt()} == {"r", "r2"}
    w = watcher(b)
    w.publish(f"{uniq}/x/t", b"both", qos=1)
    got = {}
    for _ in range(2):
        m = col.get()
        got[m.headers["subscription"]] = m.headers["destination"]
    assert got == {"bare": f"{uniq}/x/t", "prefixed": f"/topic/{uniq}/x/t"}
    col.none()
    c.disconnect()


def test_stomp_to_stomp_across_versions(gw, uniq):
    _, port, _, _ = gw
    old, old_col = stomp_login(port, "1.0")
    new, new_col = stomp_login(port, "1.2")
    new.subscribe(destination=f"/topic/{uniq}", id="n", headers={"receipt": "r"})
    assert new_col.receipt() == "r"
    old.send(destination=f"/topic/{uniq}", body="from 1.0")
    assert new_col.get().body == "from 1.0"
    old.disconnect()
    new.disconnect()


def test_anonymous_connect_is_the_default_user_and_listed(gw):
    b, port, d, _ = gw
    r = RawStomp(port)
    f = r.connect("1.2")
    assert f.command == "CONNECTED", f
    assert f.headers["version"] == "1.2"
    client_id = f.headers["session"]
    rows = {row["clientid"]: row for row in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)}
    assert rows[client_id]["username"] == "guest"
    assert rows[client_id]["listener"] == f"stomp:tcp:127.0.0.1:{port}"
    assert rows[client_id]["peer"].startswith("127.0.0.1:")
    # ctl kick reaches the STOMP client: ERROR, then the gateway closes.
    ctl_ok(d / "ctl.sock", "clients", "kick", client_id)
    e = r.read()
    assert e.command == "ERROR" and e.headers["message"] == "disconnected by the broker", e
    assert b"administrative action" in e.body
    assert r.closed()


def test_wrong_passcode_is_refused_by_the_broker(gw):
    _, port, _, _ = gw
    r = RawStomp(port)
    f = r.connect("1.1", login="alice", passcode="nope")
    assert f.command == "ERROR" and f.headers["message"] == "login refused", f
    assert b"bad user name or password" in f.body
    assert r.closed()
    import stomp
    with pytest.raises(stomp.exception.ConnectFailedException):
        stomp_client(port, "1.2", login="alice", passcode="nope")


def test_acl_applies_to_subscribe_and_send(gw, uniq):
    b, port, _, _ = gw
    w = watcher(b)
    assert w.subscribe("secret/#", qos=1) == [1]
    r = RawStomp(port)
    assert r.connect("1.2", login="alice", passcode=PASSWORDS["alice"]).command == "CONNECTED"
    r.frame("SEND", [("destination", f"/topic/secret/{uniq}"), ("receipt", "s1")], "no")
    f = r.read()
    assert f.command == "ERROR" and f.headers["message"] == "publish refused" and f.headers["receipt-id"] == "s1", f
    assert b"not authorized" in f.body
    assert r.closed()
    w.expect_none(0.5)
    r = RawStomp(port)
    assert r.connect("1.2", login="alice", passcode=PASSWORDS["alice"]).command == "CONNECTED"
    r.frame("SUBSCRIBE", [("destination", "/topic/secret/#"), ("id", "1"), ("receipt", "s2")])
    f = r.read()
    assert f.command == "ERROR" and f.headers["message"] == "subscription refused", f
    assert r.closed()


def test_client_ack_bounds_unacknowledged_messages(gw, uniq):
    """ack:client — the broker sends at most receive_maximum messages the client has not
    ACKed; a cumulative ACK lets the rest through."""
    b, port, _, _ = gw
    c, col = stomp_login(port, "1.2")
    c.subscribe(destination=f"/topic/{uniq}", id="q", ack="client", headers={"receipt": "r"})
    assert col.receipt() == "r"
    w = watcher(b)
    n = RECEIVE_MAXIMUM + 3
    for i in range(n):
        w.publish(uniq, f"m{i}".encode(), qos=1)
    first = [col.get() for _ in range(RECEIVE_MAXIMUM)]
    assert [m.body for m in first] == [f"m{i}" for i in range(RECEIVE_MAXIMUM)]
    col.none(0.7)
    c.ack(first[-1].headers["ack"], receipt="ack-1")
    assert col.receipt() == "ack-1"
    rest = [col.get().body for _ in range(n - RECEIVE_MAXIMUM)]
    assert rest == [f"m{i}" for i in range(RECEIVE_MAXIMUM, n)]
    c.disconnect()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_client_individual_ack_and_nack(gw, uniq, version):
    b, port, _, _ = gw
    c, col = stomp_login(port, version)
    c.subscribe(destination=uniq, id="i", ack="client-individual", headers={"receipt": "r"})
    assert col.receipt() == "r"
    w = watcher(b)
    for i in range(2):
        w.publish(uniq, f"x{i}".encode(), qos=1)
    a, z = col.get(), col.get()
    key = "ack" if version == "1.2" else "message-id"
    if version == "1.2":
        c.nack(z.headers[key], receipt="n")
        c.ack(a.headers[key], receipt="a")
    else:
        c.nack(z.headers[key], "i", receipt="n")
        c.ack(a.headers[key], "i", receipt="a")
    assert {col.receipt(), col.receipt()} == {"n", "a"}
    assert col.errors.empty()
    c.disconnect()


def test_transactions_commit_and_abort(gw, uniq):
    b, port, _, _ = gw
    w = watcher(b)
    assert w.subscribe(f"{uniq}/#", qos=1) == [1]
    c, col = stomp_login(port, "1.2")
    c.begin("t1")
    c.send(destination=f"{uniq}/a", body="aborted", headers={"transaction": "t1"})
    c.abort("t1")
    c.begin("t2")
    c.send(destination=f"{uniq}/b", body="one", headers={"transaction": "t2"})
    c.send(destination=f"/topic/{uniq}/c", body="two", headers={"transaction": "t2"})
    w.expect_none(0.5)
    c.commit("t2", headers={"receipt": "commit"})
    assert col.receipt() == "commit"
    got = [(m.topic, m.payload) for m in (w.get(), w.get())]
    assert got == [(f"{uniq}/b", b"one"), (f"{uniq}/c", b"two")]
    w.expect_none(0.3)
    r = RawStomp(port)
    r.connect("1.2", login="alice", passcode=PASSWORDS["alice"])
    r.frame("COMMIT", [("transaction", "never")])
    f = r.read()
    assert f.command == "ERROR" and f.headers["message"] == "no transaction never"
    c.disconnect()


def test_body_with_nul_and_content_length_both_ways(gw, uniq):
    b, port, _, _ = gw
    w = watcher(b)
    assert w.subscribe(f"{uniq}/up", qos=1) == [1]
    r = RawStomp(port)
    assert r.connect("1.2", login="alice", passcode=PASSWORDS["alice"]).command == "CONNECTED"
    r.frame("SUBSCRIBE", [("destination", f"{uniq}/down"), ("id", "1"), ("receipt", "s")])
    assert r.read().headers["receipt-id"] == "s"
    body = b"a\x00b\x00\xffc"
    r.frame("SEND", [("destination", f"{uniq}/up"), ("content-length", str(len(body))), ("content-type", "application/x")], body)
    assert w.get().payload == body
    w.publish(f"{uniq}/down", body, qos=1)
    m = r.read()
    assert m.command == "MESSAGE" and m.body == body and m.headers["content-length"] == str(len(body))


def test_header_escaping_in_1_2(gw, uniq):
    b, port, _, _ = gw
    c, col = stomp_login(port, "1.2")
    c.subscribe(destination=f"{uniq}/#", id="e", headers={"receipt": "r"})
    assert col.receipt() == "r"
    w = watcher(b)
    w.publish(f"{uniq}/a:b\\c", b"escaped", qos=1)
    assert col.get().headers["destination"] == f"{uniq}/a:b\\c"
    r = RawStomp(port)
    r.connect("1.2", login="alice", passcode=PASSWORDS["alice"])
    r.frame("SUBSCRIBE", [("destination", f"{uniq}/#"), ("id", "1"), ("receipt", "s")])
    assert r.read().headers["receipt-id"] == "s"
    w.publish(f"{uniq}/x:y", b"raw", qos=1)
    raw = r.read()
    assert raw.headers["destination"] == f"{uniq}/x\\cy", raw
    c.disconnect()


def test_no_frame_before_connect(gw, uniq):
    b, port, _, _ = gw
    w = watcher(b)
    assert w.subscribe(f"{uniq}", qos=1) == [1]
    r = RawStomp(port)
    r.frame("SEND", [("destination", uniq)], "sneaky")
    f = r.read()
    assert f.command == "ERROR" and f.headers["message"] == "no frame is processed before CONNECT"
    assert r.closed()
    w.expect_none(0.5)


@pytest.mark.parametrize("what,frame,message", [
    ("body", ("SEND", [("destination", "a")], "x" * 8193), "body too long (max_body_length = 8192)"),
    ("headers", ("SEND", [(f"h{i}", "v") for i in range(11)], ""), "too many headers (max_headers = 10)"),
    ("header length", ("SEND", [("destination", "a" * 1100)], ""), "header line too long (max_header_length = 1024)"),
    ("content-length", ("SEND", [("destination", "a"), ("content-length", "100000")], ""), "body too long (max_body_length = 8192)"),
])
def test_frame_limits_answer_error(gw, what, frame, message):
    _, port, _, _ = gw
    r = RawStomp(port)
    assert r.connect("1.2").command == "CONNECTED"
    r.frame(*frame)
    f = r.read()
    assert f.command == "ERROR" and f.headers["message"] == message, (what, f)
    assert r.closed()


def test_garbage_is_an_error_not_a_crash(gw):
    b, port, _, g = gw
    for junk in (b"\x00\x01\x02garbage\n\n\x00", b"connect\n\n\x00", b"\r\x00", os.urandom(4096)):
        r = RawStomp(port)
        r.send(junk)
        assert r.closed(), junk[:20]
    assert g.alive()
    r = RawStomp(port)
    assert r.connect("1.2").command == "CONNECTED"


def test_version_negotiation(gw):
    _, port, _, _ = gw
    r = RawStomp(port)
    f = r.connect("1.0,1.1")
    assert f.headers["version"] == "1.1" and "heart-beat" in f.headers
    r = RawStomp(port)
    r.frame("CONNECT", [("login", "alice"), ("passcode", PASSWORDS["alice"])])
    f = r.read()
    assert f.command == "CONNECTED" and f.headers["version"] == "1.0"
    r = RawStomp(port)
    f = r.connect("3.0")
    assert f.command == "ERROR" and f.headers["version"] == "1.0,1.1,1.2"


def test_heart_beats_both_ways(gw):
    _, port, _, _ = gw
    r = RawStomp(port)
    f = r.connect("1.2", heart_beat="0,1000")
    assert f.headers["heart-beat"] == "1000,1000"
    r.wait_heartbeat(timeout=5)
    r.wait_heartbeat(timeout=5)
    # A client that promised heart-beats and sends nothing is given up.
    quiet = RawStomp(port)
    assert quiet.connect("1.2", heart_beat="1000,0").command == "CONNECTED"
    f = quiet.read(timeout=10)
    assert f.command == "ERROR" and f.headers["message"] == "heart-beat timeout"
    assert quiet.closed()
    # One that keeps sending them stays.
    busy = RawStomp(port)
    assert busy.connect("1.2", heart_beat="1000,0").command == "CONNECTED"
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        busy.send(b"\n")
        time.sleep(0.3)
    busy.frame("SUBSCRIBE", [("destination", "hb"), ("id", "1"), ("receipt", "alive")])
    assert busy.read().headers["receipt-id"] == "alive"


def test_gateway_clients_in_sys_and_hooks_counts(gw):
    """$SYS counts gateway clients like any other: the connected count grows by one."""
    b, port, d, _ = gw
    before = len(ctl_ok(d / "ctl.sock", "clients", "list", json_out=True))
    c, _ = stomp_login(port)
    wait_for(lambda: len(ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)) == before + 1, msg="listed")
    c.disconnect()
    wait_for(lambda: len(ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)) == before, msg="gone")
    out = ctl_ok(d / "ctl.sock", "gateways")
    assert "stomp: clients=" in out


def test_sys_event_and_hooks_see_the_stomp_client(gw, uniq):
    """$SYS client events and the hooks of a sidecar report a STOMP client like any other."""
    import json
    from sidecars import PySidecar
    b, port, d, _ = gw
    hooks = PySidecar(d / "sc.sock", d, name=f"hooks{uniq[-4:]}", users={"users": {}, "acl": []}).start(b)
    try:
        sys_events = watcher(b)
        assert sys_events.subscribe(f"$SYS/brokers/{b.node}/clients/+/connected", qos=1) == [1]
        c, _ = stomp_login(port)
        client_id = None
        deadline = time.monotonic() + 5
        while client_id is None and time.monotonic() < deadline:
            for m in sys_events.drain(0.2):
                ev = json.loads(m.payload)
                if str(ev.get("clientid", "")).startswith("stomp-") and ev.get("username") == "alice":
                    client_id = ev["clientid"]
        assert client_id, "no $SYS connected event for the STOMP client"
        wait_for(lambda: f"client_id='{client_id}'" in hooks.log() and "event client.connected" in hooks.log(),
                 msg="client.connected hook event for the STOMP client")
        c.disconnect()
    finally:
        hooks.stop()


def test_a_slow_stomp_subscriber_is_bounded_and_others_are_served(gw, uniq):
    """A STOMP subscriber that stops reading: its QoS 0 messages are dropped and counted by the
    gateway once its socket is full (not buffered without end); other clients are served."""
    b, port, d, g = gw
    slow = RawStomp(port)
    assert slow.connect("1.2", login="alice", passcode=PASSWORDS["alice"]).command == "CONNECTED"
    slow.frame("SUBSCRIBE", [("destination", f"{uniq}/flood"), ("id", "1"), ("receipt", "s")])
    assert slow.read().headers["receipt-id"] == "s"
    before = int(ctl_ok(d / "ctl.sock", "gateways").split("stomp:")[1].split("dropped=")[1].split()[0])
    w = watcher(b)
    n, size = 6000, 4000  # 24 MB: more than the socket buffers of both ends hold
    for i in range(n):
        w.publish(f"{uniq}/flood", bytes([i % 256]) * size, qos=0, wait=False)
    w.publish(f"{uniq}/flood-done", b"", qos=1)
    wait_for(lambda: int(ctl_ok(d / "ctl.sock", "gateways").split("stomp:")[1].split("dropped=")[1].split()[0]) > before,
             msg="dropped QoS 0 messages counted")
    # Meanwhile another STOMP client gets its receipts and messages at once.
    other, col = stomp_login(port)
    other.subscribe(destination=f"/topic/{uniq}/other", id="o", headers={"receipt": "r"})
    assert col.receipt() == "r"
    w.publish(f"{uniq}/other", b"still served", qos=1)
    assert col.get().body == "still served"
    other.disconnect()
    # The slow one reads again: what arrives is whole frames, fewer than were published.
    got = 0
    try:
        while True:
            f = slow.read(timeout=2)
            assert f.command == "MESSAGE" and len(f.body) == size
            got += 1
    except TimeoutError:
        pass
    assert 0 < got < n, got
    assert g.alive()


# -- managed by the broker, max_clients, kill -9 ------------------------------------------

@pytest.fixture
def managed(broker_factory):
    d = short_dir()
    port = free_port()
    (d / "plugins").mkdir()
    text = shipped_config({'command = ".build/release/swiftlet-gateways"': f"command = {toml_value(str(gateways_binary()))}",
                           "listener = 61613 ": f"listener = \"127.0.0.1:{port}\" ",
                           "max_clients = 512 ": "max_clients = 2 ",
                           "listener = 1884 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           "listener = 61616 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           "initial_backoff = 0.5 ": "initial_backoff = 0.1 ",
                           "enabled = false": "enabled = true"})
    (d / "plugins" / "gateways.toml").write_text(text)
    b, _ = auth_broker(broker_factory, PASSWORDS, ACL, plugins_dir=d / "plugins", d=d)
    wait_registered(b, "gateways")
    wait_port(port)
    return b, port, d


def test_managed_gateway_max_clients_and_kill_9(managed, uniq):
    b, port, d = managed
    one, _ = stomp_login(port)
    two, two_col = stomp_login(port)
    r = RawStomp(port)
    f = r.read()
    assert f.command == "ERROR" and f.headers["message"] == "too many clients"
    assert r.closed()
    # An MQTT client of the same broker, busy during the crash.
    w = watcher(b)
    assert w.subscribe(f"{uniq}/still", qos=1) == [1]
    assert w.subscribe(f"{uniq}/up", qos=1) == [1]
    pid = managed_pid(b, "gateways")
    os.kill(pid, signal.SIGKILL)
    wait_registered(b, "gateways", count=2)
    assert b.alive()
    w.publish(f"{uniq}/still", b"here", qos=1)
    assert w.get().payload == b"here", "the MQTT client noticed nothing"
    # The STOMP clients lost their connection; they reconnect to the restarted gateway.
    wait_for(lambda: two_col.disconnected, msg="stomp client saw the gateway go")
    wait_port(port)
    again, col = stomp_login(port)
    again.subscribe(destination=f"/topic/{uniq}/back", id="b", headers={"receipt": "r"})
    assert col.receipt() == "r"
    w.publish(f"{uniq}/back", b"welcome back", qos=1)
    assert col.get().body == "welcome back"
    again.send(destination=f"{uniq}/up", body="reconnected")
    assert w.get().payload == b"reconnected"
    assert managed_pid(b, "gateways") != pid
    again.disconnect()


def test_reload_of_a_managed_gateway_keeps_the_running_one(managed, uniq):
    """The new process of a hand-over cannot bind the gateway's ports while the old one holds
    them: it exits before registering, the reload says so, and the running gateway and its
    clients carry on (docs/sidecars.md, "Reload: a hand-over")."""
    b, port, d = managed
    ctl = d / "ctl.sock"
    pid = managed_pid(b, "gateways")
    c, col = stomp_login(port)
    c.subscribe(destination=f"/topic/{uniq}/#", id="s", headers={"receipt": "r"})
    assert col.receipt() == "r"
    r = run_ctl(ctl, "plugins", "reload", "gateways")
    assert r.rc == 2 and "keeps serving" in r.err, r
    row = [x for x in ctl_ok(ctl, "plugins", "list", json_out=True) if x["name"] == "gateways"][0]
    assert row["pid"] == pid and row["state"] == "running" and row["connected"]
    w = watcher(b)
    w.publish(f"{uniq}/after", b"still served", qos=1)
    assert col.get().body == "still served"
    assert not col.disconnected
    c.disconnect()
    w.disconnect()
