"""swiftlet-ctl against running brokers (docs/operations.md): every command, with and
without --json, against real MQTT clients; exit codes 1 (usage / unknown command),
2 (failed) and 3 (broker not running); users, ACL and the auth cache end to end."""

import json
import os
import shutil
import socket
import stat
import time
import uuid

import pytest

from clients import Client, wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from sidecars import short_dir

BUILTINS = ["acl", "cache", "clients", "help", "listeners", "retained", "sessions", "status", "subscriptions",
            "topics", "users"]


@pytest.fixture(scope="module")
def env(module_broker_factory):
    d = short_dir()
    sock = d / "ctl.sock"
    b = module_broker_factory(mqtt={"allow_anonymous": True}, extra=ctl_config(sock))
    yield b, sock
    shutil.rmtree(d, ignore_errors=True)


def uid():
    return f"ctl-{uuid.uuid4().hex[:8]}"


# -- exit codes and the socket ---------------------------------------------------------

def test_broker_not_running_exits_3(tmp_path):
    path = short_dir() / "absent.sock"
    r = run_ctl(path, "status")
    assert r.rc == 3, r
    assert "not running" in r.err and str(path) in r.err
    # the environment variable names the default socket
    r = run_ctl(None, "status", env={"SWIFTLET_CTL_SOCKET": str(path)})
    assert r.rc == 3 and str(path) in r.err, r


def test_stale_socket_file_is_not_running(tmp_path):
    d = short_dir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "stale.sock"))
    s.close()  # the file stays, nobody listens
    r = run_ctl(d / "stale.sock", "status")
    assert r.rc == 3, r


def test_unknown_command_exits_1(env):
    b, sock = env
    r = run_ctl(sock, "frobnicate", "x")
    assert r.rc == 1, r
    assert "unknown command" in r.err and "frobnicate" in r.err
    r = run_ctl(sock, "frobnicate", json_out=True)
    assert r.rc == 1, r


def test_usage_errors_exit_1(env):
    b, sock = env
    for args in (["clients"], ["clients", "frob"], ["subscriptions", "add", "x"], ["subscriptions", "add", "c", "a", "7"],
                 ["cache", "clear", "--bogus", "x"], ["status", "extra"], ["users", "add", "onlyname"], ["topics"]):
        r = run_ctl(sock, *args)
        assert r.rc == 1, (args, r)
        assert "usage" in r.err, (args, r)


def test_socket_is_private(env):
    b, sock = env
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600


def test_garbage_on_the_socket_is_a_usage_error(env):
    b, sock = env
    for line in (b"garbage\n", b"[1]\n", b'{"command": 3}\n', b'{"command": "status", "args": [1]}\n', b"\xff\xfe\n"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(sock))
            s.sendall(line)
            reply = json.loads(s.makefile("rb").readline())
            assert reply["status"] == 1, (line, reply)
    # an endless line is refused, the connection closed
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        try:
            s.sendall(b"x" * (3 << 20))
        except OSError:
            pass
        data = s.makefile("rb").readline()
        assert json.loads(data)["status"] == 1
    # several requests on one connection are answered in order
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(b'{"command": "help"}\n{"command": "nope"}\n{"command": "status"}\n')
        f = s.makefile("rb")
        got = [json.loads(f.readline())["status"] for _ in range(3)]
        assert got == [0, 1, 0]
    b.assert_alive()
    assert ctl_ok(sock, "status", json_out=True)["running"] is True


# -- help, status, listeners -----------------------------------------------------------

def test_help_lists_every_command(env):
    b, sock = env
    for out in (ctl_ok(sock, "help"), ctl_ok(sock)):
        for c in BUILTINS:
            assert f"\n  {c}" in out, (c, out)
        assert "users add <username> <password> [--superuser]" in out
    j = ctl_ok(sock, "help", json_out=True)
    assert {c["command"] for c in j["commands"]} >= set(BUILTINS)
    assert all(c["owner"] == "broker" for c in j["commands"] if c["command"] in BUILTINS)


def test_status(env):
    b, sock = env
    c = Client(b, client_id=uid())
    try:
        out = ctl_ok(sock, "status")
        assert "is running" in out and b.node in out
        assert "clients:" in out
        j = ctl_ok(sock, "status", json_out=True)
        assert j["running"] is True and j["node"] == b.node
        assert j["clients"] >= 1 and j["sessions"] >= 1
        for k in ("uptime_seconds", "subscriptions", "retained", "messages_received", "messages_sent", "version"):
            assert k in j
        # trailing --json works too
        r = run_ctl(sock, "status", "--json")
        assert r.rc == 0 and r.json()["running"] is True
    finally:
        c.disconnect()


def test_listeners(env):
    b, sock = env
    out = ctl_ok(sock, "listeners")
    assert f"127.0.0.1:{b.port}" in out and "tcp" in out
    j = ctl_ok(sock, "listeners", json_out=True)
    assert j["ctl_socket"] == str(sock)
    [l] = j["listeners"]
    assert l["type"] == "tcp" and l["bind"] == f"127.0.0.1:{b.port}" and l["connections"] >= 0


# -- clients ---------------------------------------------------------------------------

def test_clients_list_and_show(env):
    b, sock = env
    v5, v3 = uid(), uid()
    c5 = Client(b, client_id=v5, version=5, keepalive=33)
    c3 = Client(b, client_id=v3, version=4)
    try:
        c5.subscribe("x/1")
        out = ctl_ok(sock, "clients", "list")
        assert v5 in out and v3 in out and "5.0" in out and "3.1.1" in out
        j = {c["clientid"]: c for c in ctl_ok(sock, "clients", "list", json_out=True)}
        assert j[v5]["protocol"] == 5 and j[v5]["keepalive"] == 33 and j[v5]["subscriptions"] == 1
        assert j[v3]["protocol"] == 4 and j[v3]["username"] is None
        assert j[v5]["peer"].startswith("127.0.0.1:")

        out = ctl_ok(sock, "clients", "show", v5)
        assert f"clientid:" in out and v5 in out and "keepalive:     33" in out
        j = ctl_ok(sock, "clients", "show", v5, json_out=True)
        assert j["clientid"] == v5 and j["subscriptions"] == 1 and j["listener"].startswith("tcp:")

        r = run_ctl(sock, "clients", "show", "nobody-" + v5)
        assert r.rc == 2 and "no connected client" in r.err, r
    finally:
        c5.disconnect()
        c3.disconnect()
    wait_for(lambda: v5 not in ctl_ok(sock, "clients", "list"), msg="client gone from the list")


def test_clients_kick_closes_the_client(env):
    b, sock = env
    v5, v3 = uid(), uid()
    c5 = Client(b, client_id=v5, version=5)
    c3 = Client(b, client_id=v3, version=4)
    out = ctl_ok(sock, "clients", "kick", v5)
    assert f"client {v5} kicked" in out
    assert c5.wait_disconnected() == 0x98  # administrative action
    assert ctl_ok(sock, "clients", "kick", v3, json_out=True) == {"kicked": v3}
    c3.wait_disconnected()
    wait_for(lambda: not {v5, v3} & {c["clientid"] for c in ctl_ok(sock, "clients", "list", json_out=True)},
             msg="kicked clients gone")
    r = run_ctl(sock, "clients", "kick", v5)
    assert r.rc == 2, r
    b.assert_alive()


# -- sessions, subscriptions, topics -----------------------------------------------------

def test_sessions_list_and_show(env):
    b, sock = env
    cid = uid()
    c = Client(b, client_id=cid, version=4, clean=False)
    c.subscribe("sess/+/a", qos=1)
    c.disconnect()
    out = ctl_ok(sock, "sessions", "list")
    line = next(l for l in out.splitlines() if l.startswith(cid))
    assert " no " in f" {line} "  # not connected
    j = {s["clientid"]: s for s in ctl_ok(sock, "sessions", "list", json_out=True)}
    assert j[cid]["connected"] is False and j[cid]["subscriptions"] == 1

    out = ctl_ok(sock, "sessions", "show", cid)
    assert "connected:       no" in out and "sess/+/a" in out
    j = ctl_ok(sock, "sessions", "show", cid, json_out=True)
    assert j["clientid"] == cid and j["connected"] is False
    assert j["subscriptions"] == [{"filter": "sess/+/a", "qos": 1, "no_local": False, "retain_as_published": False,
                                   "retain_handling": 0, "subscription_identifier": None}]
    assert j["offline_seconds"] is not None

    r = run_ctl(sock, "sessions", "show", "nobody-" + cid)
    assert r.rc == 2 and "no session" in r.err, r
    # clean it up: a clean session ends it
    Client(b, client_id=cid, version=4, clean=True).disconnect()


def test_subscriptions_add_list_del(env):
    b, sock = env
    cid, pub = uid(), uid()
    topic = f"ctl/{cid}/t"
    c = Client(b, client_id=cid)
    p = Client(b, client_id=pub)
    try:
        c.subscribe(f"ctl/{cid}/own", qos=0)
        out = ctl_ok(sock, "subscriptions", "add", cid, f"ctl/{cid}/+", "1")
        assert "subscribed" in out
        out = ctl_ok(sock, "subscriptions", "list", cid)
        assert f"ctl/{cid}/+" in out and f"ctl/{cid}/own" in out
        j = ctl_ok(sock, "subscriptions", "list", cid, json_out=True)
        assert {(s["clientid"], s["filter"], s["qos"]) for s in j} == {(cid, f"ctl/{cid}/+", 1), (cid, f"ctl/{cid}/own", 0)}
        allsubs = ctl_ok(sock, "subscriptions", "list", json_out=True)
        assert {s["filter"] for s in allsubs if s["clientid"] == cid} == {f"ctl/{cid}/+", f"ctl/{cid}/own"}

        # the session receives what the added subscription matches, at its QoS
        p.publish(topic, b"hello", qos=1)
        m = c.get()
        assert (m.topic, m.payload, m.qos) == (topic, b"hello", 1)

        j = ctl_ok(sock, "subscriptions", "del", cid, f"ctl/{cid}/+", json_out=True)
        assert j == {"clientid": cid, "filter": f"ctl/{cid}/+"}
        p.publish(topic, b"after", qos=1)
        c.expect_none(0.5)
        assert f"ctl/{cid}/+" not in ctl_ok(sock, "subscriptions", "list", cid)

        r = run_ctl(sock, "subscriptions", "del", cid, f"ctl/{cid}/+")
        assert r.rc == 2, r
        r = run_ctl(sock, "subscriptions", "add", "nobody-" + cid, "a/b", "0")
        assert r.rc == 2 and "no session" in r.err, r
        r = run_ctl(sock, "subscriptions", "add", cid, "a/#/b", "0")
        assert r.rc == 2 and "invalid" in r.err, r
        r = run_ctl(sock, "subscriptions", "list", "nobody-" + cid)
        assert r.rc == 2, r
    finally:
        c.disconnect()
        p.disconnect()


def test_subscriptions_add_sends_retained(env):
    b, sock = env
    cid = uid()
    p = Client(b)
    p.publish(f"ret/{cid}/x", b"kept", qos=1, retain=True)
    c = Client(b, client_id=cid)
    try:
        ctl_ok(sock, "subscriptions", "add", cid, f"ret/{cid}/#", "1")
        m = c.get()
        assert (m.topic, m.payload, m.retain) == (f"ret/{cid}/x", b"kept", True)
    finally:
        ctl_ok(sock, "retained", "del", f"ret/{cid}/x")
        c.disconnect()
        p.disconnect()


def test_topics_list(env):
    b, sock = env
    tag = uid()
    clients = [Client(b) for _ in range(3)]
    try:
        for c in clients:
            c.subscribe(f"{tag}/shared")
        clients[0].subscribe(f"{tag}/only/+")
        out = ctl_ok(sock, "topics", "list")
        assert f"{tag}/shared" in out and f"{tag}/only/+" in out
        j = {t["filter"]: t["subscribers"] for t in ctl_ok(sock, "topics", "list", json_out=True)}
        assert j[f"{tag}/shared"] == 3 and j[f"{tag}/only/+"] == 1
    finally:
        for c in clients:
            c.disconnect()


# -- retained ------------------------------------------------------------------------

def test_retained_list_and_del(env):
    b, sock = env
    tag = uid()
    p = Client(b)
    try:
        p.publish(f"{tag}/a", b"alpha", qos=1, retain=True)
        p.publish(f"{tag}/b", b"\x00\xff", qos=0, retain=True)
        out = ctl_ok(sock, "retained", "list")
        assert f"{tag}/a" in out and "alpha" in out and "<binary>" in out
        j = {m["topic"]: m for m in ctl_ok(sock, "retained", "list", f"{tag}/#", json_out=True)}
        assert set(j) == {f"{tag}/a", f"{tag}/b"}
        assert j[f"{tag}/a"]["payload"] == "alpha" and j[f"{tag}/a"]["qos"] == 1 and j[f"{tag}/a"]["bytes"] == 5
        assert j[f"{tag}/b"]["payload_base64"] == "AP8="

        out = ctl_ok(sock, "retained", "del", f"{tag}/a")
        assert "deleted 1" in out
        assert ctl_ok(sock, "retained", "del", f"{tag}/b", json_out=True) == {"deleted": [f"{tag}/b"]}
        r = run_ctl(sock, "retained", "del", f"{tag}/a")
        assert r.rc == 2, r
        # a new subscriber gets nothing
        c = Client(b)
        c.subscribe(f"{tag}/#")
        c.expect_none(0.5)
        c.disconnect()
        assert ctl_ok(sock, "retained", "list", f"{tag}/#", json_out=True) == []
    finally:
        p.disconnect()


# -- cache ---------------------------------------------------------------------------

def test_cache_stats_and_clear(env):
    b, sock = env
    # With credentials: an anonymous client without any is decided without the cache.
    c = Client(b, client_id=uid(), username="cache-user", password="pw")
    c.disconnect()
    out = ctl_ok(sock, "cache", "stats")
    assert "authn" in out and "authz" in out and "builtin" in out
    j = ctl_ok(sock, "cache", "stats", json_out=True)
    assert j["authn"]["entries"] >= 1 and j["authn"]["capacity"] > 0
    assert any(p["name"] == "builtin" and p["requests"] >= 1 for p in j["providers"])
    j = ctl_ok(sock, "cache", "clear", "--client", c.client_id, json_out=True)
    assert j["dropped"] >= 1 and j["scope"] == f"client {c.client_id}"
    assert "entries dropped" in ctl_ok(sock, "cache", "clear", "--user", "nobody")
    ctl_ok(sock, "cache", "clear")
    assert ctl_ok(sock, "cache", "stats", json_out=True)["authn"]["entries"] == 0


# -- users and ACL (anonymous access off) ---------------------------------------------------

ACL_OPEN = """
[[rules]]
permission = "allow"
"""

ACL_CLOSED = """
[[rules]]
permission = "deny"
access = "subscribe"
topics = ["secret/#"]

[[rules]]
permission = "allow"
"""


@pytest.fixture
def auth_env(broker_factory):
    d = short_dir()
    (d / "acl.toml").write_text(ACL_OPEN)
    extra = ctl_config(d / "ctl.sock", f'\n[auth]\nusers_file = "{d}/users.toml"\nacl_file = "{d}/acl.toml"\n')
    b = broker_factory(mqtt={"allow_anonymous": False}, extra=extra)
    yield b, d / "ctl.sock", d
    shutil.rmtree(d, ignore_errors=True)


def connack(b, user, password):
    c = Client(b, username=user, password=password, expect_rc=None)
    rc = c.connack[1]
    c.disconnect() if rc == 0 else c.c.loop_stop()
    return rc


def test_users_add_passwd_del(auth_env):
    b, sock, d = auth_env
    assert connack(b, "erin", "pw1") != 0  # unknown user, anonymous off

    assert "user erin added" in ctl_ok(sock, "users", "add", "erin", "pw1")
    assert connack(b, "erin", "pw1") == 0
    assert connack(b, "erin", "wrong") != 0
    text = (d / "users.toml").read_text()
    assert "erin" in text and "pw1" not in text
    assert stat.S_IMODE(os.stat(d / "users.toml").st_mode) == 0o600

    r = run_ctl(sock, "users", "add", "erin", "again")
    assert r.rc == 2 and "exists" in r.err, r

    j = ctl_ok(sock, "users", "add", "root", "r00t", "--superuser", json_out=True)
    assert j == {"username": "root", "superuser": True, "users": 2}
    out = ctl_ok(sock, "users", "list")
    assert "erin" in out and "root" in out and "yes" in out and "r00t" not in out
    j = {u["username"]: u for u in ctl_ok(sock, "users", "list", json_out=True)}
    assert j["root"]["superuser"] is True and j["erin"]["superuser"] is False and j["erin"]["hash"] == "bcrypt"

    # a new password takes effect at once, although the old answer was cached
    ctl_ok(sock, "users", "passwd", "erin", "pw2")
    assert connack(b, "erin", "pw1") != 0
    assert connack(b, "erin", "pw2") == 0
    r = run_ctl(sock, "users", "passwd", "nobody", "x")
    assert r.rc == 2, r

    ctl_ok(sock, "users", "del", "erin")
    assert connack(b, "erin", "pw2") != 0
    r = run_ctl(sock, "users", "del", "erin")
    assert r.rc == 2 and "no user" in r.err, r
    assert [u["username"] for u in ctl_ok(sock, "users", "list", json_out=True)] == ["root"]
    b.assert_alive()


def test_users_without_users_file_fail(env):
    b, sock = env
    r = run_ctl(sock, "users", "add", "x", "y")
    assert r.rc == 2 and "users_file" in r.err, r
    r = run_ctl(sock, "acl", "add", "deny", "all", "pubsub", "#")
    assert r.rc == 2 and "acl_file" in r.err, r
    assert len(ctl_ok(sock, "acl", "list", json_out=True)["rules"]) == 5
    assert ctl_ok(sock, "users", "list", json_out=True) == []


def test_acl_list_and_reload(auth_env):
    b, sock, d = auth_env
    ctl_ok(sock, "users", "add", "frank", "pw")
    out = ctl_ok(sock, "acl", "list")
    assert "allow" in out and "1 rule(s)" in out
    c = Client(b, username="frank", password="pw")
    assert c.subscribe("secret/a") == [0]
    c.disconnect()

    (d / "acl.toml").write_text(ACL_CLOSED)
    j = ctl_ok(sock, "acl", "reload", json_out=True)
    assert j["rules"] == 2
    rules = ctl_ok(sock, "acl", "list", json_out=True)["rules"]
    assert rules[0] == {"n": 1, "permission": "deny", "access": "subscribe", "topics": ["secret/#"]}
    c = Client(b, username="frank", password="pw")
    assert c.subscribe("secret/b") == [0x87]
    assert c.subscribe("public/b") == [0]
    c.disconnect()

    # a broken file keeps the old rules
    (d / "acl.toml").write_text("[[rules]\nbroken")
    r = run_ctl(sock, "acl", "reload")
    assert r.rc == 2 and "old rules kept" in r.err, r
    assert len(ctl_ok(sock, "acl", "list", json_out=True)["rules"]) == 2
    b.assert_alive()


def test_acl_add_set_move_del(auth_env):
    b, sock, d = auth_env
    ctl_ok(sock, "users", "add", "gina", "pw")
    c = Client(b, username="gina", password="pw")
    assert c.subscribe("vault/a") == [0]
    # a deny rule in front of the open one takes effect at once (the cached answer is dropped)
    out = ctl_ok(sock, "acl", "add", "deny", "user=gina", "subscribe", "vault/#", "other/+", "--at", "1")
    assert "rule 1 added" in out, out
    assert c.subscribe("vault/a") == [0x87]
    assert c.subscribe("other/x") == [0x87]
    assert c.subscribe("public/x") == [0]
    rules = ctl_ok(sock, "acl", "list", json_out=True)["rules"]
    assert rules[0] == {"n": 1, "permission": "deny", "user": "gina", "access": "subscribe", "topics": ["vault/#", "other/+"]}
    assert rules[1]["permission"] == "allow" and len(rules) == 2
    # the file holds the rules: a reload reads back the same list
    assert "vault/#" in (d / "acl.toml").read_text()
    ctl_ok(sock, "acl", "reload")
    assert ctl_ok(sock, "acl", "list", json_out=True)["rules"] == rules

    # replace, move behind the open rule (no longer reached), delete
    ctl_ok(sock, "acl", "set", "1", "deny", "clientid=" + c.client_id, "pubsub", "vault/#")
    assert ctl_ok(sock, "acl", "list", json_out=True)["rules"][0]["clientid"] == c.client_id
    assert c.subscribe("vault/b") == [0x87]
    ctl_ok(sock, "acl", "move", "1", "2")
    assert c.subscribe("vault/b") == [0]
    ctl_ok(sock, "acl", "del", "1")
    assert [r["permission"] for r in ctl_ok(sock, "acl", "list", json_out=True)["rules"]] == ["deny"]
    ctl_ok(sock, "acl", "add", "allow", "ipaddr=127.0.0.0/8", "pubsub", "#")
    assert ctl_ok(sock, "acl", "list", json_out=True)["rules"][1]["ipaddr"] == "127.0.0.0/8"
    c.disconnect()

    # bad input: a clear error, nothing changed
    before = ctl_ok(sock, "acl", "list", json_out=True)["rules"]
    for args, why in [(("del", "9"), "no rule 9"), (("move", "1", "5"), "position 5 is outside 1 to 2"),
                      (("add", "maybe", "all", "pubsub", "#"), "allow or deny"),
                      (("add", "allow", "host=x", "pubsub", "#"), "who must be"),
                      (("add", "allow", "ipaddr=10.0.0.300", "pubsub", "#"), "bad address"),
                      (("add", "allow", "all", "read", "#"), "publish, subscribe or pubsub"),
                      (("add", "allow", "all", "pubsub", ""), "topic"),
                      (("add", "allow", "all", "pubsub", "#", "--at", "7"), "position 7"),
                      (("set", "3", "allow", "all", "pubsub", "#"), "no rule 3")]:
        r = run_ctl(sock, "acl", *args)
        assert r.rc == 2 and why in r.err, (args, r)
    assert run_ctl(sock, "acl", "add", "allow").rc == 2
    assert ctl_ok(sock, "acl", "list", json_out=True)["rules"] == before
    b.assert_alive()


def test_ctl_socket_gone_after_shutdown(broker_factory):
    d = short_dir()
    b = broker_factory(extra=ctl_config(d / "ctl.sock"))
    assert ctl_ok(d / "ctl.sock", "status", json_out=True)["running"] is True
    assert b.stop() == 0
    assert not (d / "ctl.sock").exists()
    assert run_ctl(d / "ctl.sock", "status").rc == 3
    shutil.rmtree(d, ignore_errors=True)
