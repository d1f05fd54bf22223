"""The dashboard's REST API (/api/v5, docs/api.md) and Prometheus endpoint (issue 13): every
endpoint with its status codes, paging, filters, auth failures and bad input, against the
real broker binary with a managed plugin (the template sidecar)."""

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from brokers import free_port, swiftlet_path
from clients import Client, wait_for
from ctl import ctl_config, run_ctl
from sidecars import short_dir, sidecar_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NEW_PWD = "n3w-secret-pw"


class API:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.token = None

    def call(self, method, path, body=None, token=..., headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        tok = self.token if token is ... else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return r.status, (json.loads(text) if text and r.headers.get("Content-Type", "").startswith("application/json") else text), r.headers
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text), e.headers
            except ValueError:
                return e.code, text, e.headers

    def wait(self, timeout=20.0):
        """The dashboard starts after the MQTT listeners: wait until it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.call("GET", "/status", token=None)[0] == 200:
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("dashboard did not answer /status")
            time.sleep(0.05)

    def ok(self, method, path, body=None, status=200):
        code, out, _ = self.call(method, path, body)
        assert code == status, f"{method} {path}: {code} {out}"
        return out

    def login(self, user="admin", pwd=NEW_PWD):
        code, out, _ = self.call("POST", "/api/v5/login", {"username": user, "password": pwd}, token=None)
        assert code == 200, out
        self.token = out["token"]
        return out


@pytest.fixture(scope="module")
def dash(module_broker_factory):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    template = swiftlet_path().parent / "swiftlet-sidecar-template"
    text = open(os.path.join(ROOT, "etc", "plugins", "template.toml")).read()
    text = text.replace('command = ".build/release/swiftlet-sidecar-template"', f'command = "{template}"')
    text = text.replace("enabled = false", "enabled = true")
    (plugins / "template.toml").write_text(text)
    port = free_port()
    users = d / "users.toml"
    users.write_text("")
    (d / "acl.toml").write_text('[[rules]]\npermission = "allow"\n')
    extra = (sidecar_config(d / "sc.sock", mqtt={"allow_anonymous": True}) + f'plugins_dir = "{plugins}"\n'
             + ctl_config(d / "ctl.sock")
             + f'\n[auth]\nusers_file = "{users}"\nacl_file = "{d}/acl.toml"\n'
             + f'\n[dashboard]\nlistener = "127.0.0.1:{port}"\nlogin_attempts_per_minute = 20\n')
    b = module_broker_factory(extra=extra)
    api = API(port).wait()
    # First login: the default admin must change its password before anything else.
    out = api.login("admin", "public")
    assert out["password_change_required"] is True
    code, err, _ = api.call("GET", "/api/v5/clients")
    assert code == 403 and err["code"] == "PASSWORD_CHANGE_REQUIRED", err
    api.ok("POST", "/api/v5/users/admin/change_pwd", {"old_pwd": "public", "new_pwd": NEW_PWD}, status=204)
    api.ok("GET", "/api/v5/clients")
    return b, api, d / "ctl.sock"


def test_open_endpoints_and_auth_failures(dash):
    b, api, _ = dash
    code, out, h = api.call("GET", "/status", token=None)
    assert code == 200 and out["status"] == "running"
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    code, out, _ = api.call("GET", "/api/v5/openapi.json", token=None)
    assert code == 200 and out["openapi"].startswith("3.") and "/clients" in out["paths"]
    for path in ["/api/v5/clients", "/api/v5/stats", "/api/v5/plugins", "/api/v5/banned"]:
        code, out, _ = api.call("GET", path, token=None)
        assert code == 401 and out["code"] == "UNAUTHORIZED", (path, out)
    code, out, _ = api.call("GET", "/api/v5/clients", token="not-a-token")
    assert code == 401 and out["code"] == "UNAUTHORIZED"
    code, out, _ = api.call("POST", "/api/v5/login", {"username": "admin", "password": "wrong"}, token=None)
    assert code == 401 and out["code"] == "BAD_USERNAME_OR_PWD"
    code, out, _ = api.call("POST", "/api/v5/login", {"username": "nobody", "password": "wrong"}, token=None)
    assert code == 401 and out["code"] == "BAD_USERNAME_OR_PWD"


def test_openapi_document_is_the_one_in_docs(dash):
    _, api, _ = dash
    _, served, _ = api.call("GET", "/api/v5/openapi.json", token=None)
    kept = json.load(open(os.path.join(ROOT, "docs", "openapi.json")))
    assert served == kept, "docs/openapi.json differs from the served document: refresh it from /api/v5/openapi.json"


def test_bad_input_is_400_with_a_message(dash):
    _, api, _ = dash
    cases = [
        ("POST", "/api/v5/publish", None, b"{not json"),
        ("POST", "/api/v5/publish", None, b"[1,2]"),
        ("POST", "/api/v5/publish", {"topic": "a", "bogus": 1}, None),
        ("POST", "/api/v5/publish", {"payload": "x"}, None),
        ("POST", "/api/v5/publish", {"topic": "a/#"}, None),
        ("POST", "/api/v5/publish", {"topic": "a", "qos": 3}, None),
        ("POST", "/api/v5/publish", {"topic": "a", "qos": True}, None),
        ("POST", "/api/v5/publish", {"topic": "a", "retain": 1}, None),
        ("POST", "/api/v5/publish", {"topic": "a", "payload": "%%%", "payload_encoding": "base64"}, None),
        ("POST", "/api/v5/publish", None, b'{"topic":"a","payload":"' + b"x" * 70000 + b'"}'),
        ("GET", "/api/v5/clients?limit=0", None, None),
        ("GET", "/api/v5/clients?limit=1001", None, None),
        ("GET", "/api/v5/clients?page=x", None, None),
        ("GET", "/api/v5/clients?conn_state=maybe", None, None),
        ("POST", "/api/v5/banned", {"as": "nothing", "who": "x"}, None),
        ("POST", "/api/v5/users", {"username": "x y", "password": "longenough"}, None),
        ("POST", "/api/v5/users", {"username": "short", "password": "1234"}, None),
    ]
    for method, path, body, raw in cases:
        code, out, _ = api.call(method, path, body, raw=raw)
        assert code == 400, (path, body, raw and raw[:40], code, out)
        assert out["code"] == "BAD_REQUEST" and out["message"], out


def test_clients_paging_filters_show_kick(dash, uniq):
    b, api, _ = dash
    clients = [Client(b, version=5 if i % 2 else 4, client_id=f"{uniq}-c{i}", username=f"u{i % 3}") for i in range(7)]
    wait_for(lambda: api.ok("GET", f"/api/v5/clients?like_clientid={uniq}")["meta"]["count"] == 7, msg="7 clients listed")
    page1 = api.ok("GET", f"/api/v5/clients?like_clientid={uniq}&limit=3&page=1")
    page3 = api.ok("GET", f"/api/v5/clients?like_clientid={uniq}&limit=3&page=3")
    assert page1["meta"] == {"page": 1, "limit": 3, "count": 7, "hasnext": True}
    assert len(page1["data"]) == 3 and len(page3["data"]) == 1 and page3["meta"]["hasnext"] is False
    c0 = api.ok("GET", f"/api/v5/clients?clientid={uniq}-c0")["data"]
    assert len(c0) == 1 and c0[0]["username"] == "u0" and c0[0]["ip_address"] == "127.0.0.1" and c0[0]["connected"] is True
    assert c0[0]["proto_ver"] == 4
    by_user = api.ok("GET", f"/api/v5/clients?like_clientid={uniq}&username=u1")["data"]
    assert sorted(c["clientid"] for c in by_user) == [f"{uniq}-c1", f"{uniq}-c4"]
    assert api.ok("GET", f"/api/v5/clients?like_clientid={uniq}&ip_address=127.0.0.1")["meta"]["count"] == 7
    assert api.ok("GET", f"/api/v5/clients?like_clientid={uniq}&ip_address=10.0.0.1")["meta"]["count"] == 0
    one = api.ok("GET", f"/api/v5/clients/{uniq}-c1")
    assert one["clientid"] == f"{uniq}-c1" and one["proto_ver"] == 5
    code, out, _ = api.call("GET", f"/api/v5/clients/{uniq}-nobody")
    assert code == 404 and out["code"] == "CLIENTID_NOT_FOUND"
    api.ok("DELETE", f"/api/v5/clients/{uniq}-c1", status=204)
    clients[1].wait_disconnected()
    wait_for(lambda: api.call("GET", f"/api/v5/clients/{uniq}-c1")[0] == 404, msg="kicked client gone")
    code, out, _ = api.call("DELETE", f"/api/v5/clients/{uniq}-c1")
    assert code == 404
    for c in clients:
        c.disconnect()


def test_subscriptions_topics_sessions(dash, uniq):
    b, api, _ = dash
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    c = Client(b, version=5, client_id=f"{uniq}-s", clean=False, properties=props)
    assert c.subscribe(f"{uniq}/a/#", qos=1) == [1]
    api.ok("POST", f"/api/v5/clients/{uniq}-s/subscribe", {"topic": f"{uniq}/b", "qos": 2})
    subs = api.ok("GET", f"/api/v5/clients/{uniq}-s/subscriptions")
    assert sorted((s["topic"], s["qos"]) for s in subs) == [(f"{uniq}/a/#", 1), (f"{uniq}/b", 2)]
    listed = api.ok("GET", f"/api/v5/subscriptions?clientid={uniq}-s&qos=2")["data"]
    assert [s["topic"] for s in listed] == [f"{uniq}/b"]
    topics = api.ok("GET", f"/api/v5/topics?topic={uniq}/a/%23")["data"]
    assert topics and topics[0]["topic"] == f"{uniq}/a/#"
    api.ok("POST", f"/api/v5/clients/{uniq}-s/unsubscribe", {"topic": f"{uniq}/b"}, status=204)
    assert [s["topic"] for s in api.ok("GET", f"/api/v5/clients/{uniq}-s/subscriptions")] == [f"{uniq}/a/#"]
    c.disconnect()
    wait_for(lambda: api.ok("GET", f"/api/v5/sessions?clientid={uniq}-s&conn_state=disconnected")["meta"]["count"] == 1,
             msg="offline session listed")
    offline = api.ok("GET", f"/api/v5/clients?clientid={uniq}-s&conn_state=disconnected")["data"]
    assert len(offline) == 1 and offline[0]["connected"] is False
    code, out, _ = api.call("POST", f"/api/v5/clients/{uniq}-nobody/subscribe", {"topic": "x"})
    assert code == 404, out


def test_publish_and_retained(dash, uniq):
    b, api, _ = dash
    sub = Client(b, version=5, client_id=f"{uniq}-sub")
    sub.subscribe(f"{uniq}/#", qos=1)
    api.ok("POST", "/api/v5/publish", {"topic": f"{uniq}/plain", "payload": "hello", "qos": 1})
    assert sub.get().payload == b"hello"
    api.ok("POST", "/api/v5/publish", {"topic": f"{uniq}/bin", "payload": base64.b64encode(b"\x00\xff").decode(),
                                       "payload_encoding": "base64", "retain": True})
    assert sub.get().payload == b"\x00\xff"
    enc = urllib.parse.quote(f"{uniq}/bin", safe="")
    m = api.ok("GET", f"/api/v5/mqtt/retainer/message/{enc}")
    assert base64.b64decode(m["payload"]) == b"\x00\xff" and m["topic"] == f"{uniq}/bin"
    listed = api.ok("GET", "/api/v5/mqtt/retainer/messages?limit=1000")["data"]
    assert any(x["topic"] == f"{uniq}/bin" for x in listed)
    api.ok("DELETE", f"/api/v5/mqtt/retainer/message/{enc}", status=204)
    code, _, _ = api.call("GET", f"/api/v5/mqtt/retainer/message/{enc}")
    assert code == 404
    sub.disconnect()


def test_stats_metrics_nodes_listeners_monitor(dash):
    b, api, _ = dash
    stats = api.ok("GET", "/api/v5/stats")
    for k in ["connections.count", "sessions.count", "subscriptions.count", "retained.count", "topics.count"]:
        assert isinstance(stats[k], int), (k, stats)
    metrics = api.ok("GET", "/api/v5/metrics")
    assert isinstance(metrics["messages.received"], int)
    nodes = api.ok("GET", "/api/v5/nodes")
    assert nodes[0]["node_status"] == "running" and nodes[0]["memory_used"] > 0
    assert api.ok("GET", f"/api/v5/nodes/{nodes[0]['node']}")["node"] == nodes[0]["node"]
    assert api.call("GET", "/api/v5/nodes/other@host")[0] == 404
    listeners = api.ok("GET", "/api/v5/listeners")
    assert listeners[0]["type"] == "tcp" and listeners[0]["running"] is True
    cur = api.ok("GET", "/api/v5/monitor_current")
    assert {"received_msg_rate", "sent_msg_rate", "dropped_msg_rate", "connections"} <= set(cur)
    # The event stream: two monitor events.
    req = urllib.request.Request(api.base + "/api/v5/monitor/stream", headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = 0
        while events < 2:
            line = r.readline().decode()
            if line.startswith("data: "):
                assert "received_msg_rate" in json.loads(line[6:])
                events += 1


def test_prometheus_parses_and_has_low_cardinality_labels(dash, uniq):
    from prometheus_client.parser import text_string_to_metric_families
    b, api, _ = dash
    c = Client(b, version=5, client_id=f"{uniq}-prom")
    c.publish(f"{uniq}/t", b"x")
    for path in ["/api/v5/prometheus/stats", "/metrics"]:
        code, text, h = api.call("GET", path, token=None)
        assert code == 200 and h["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        for name in ["swiftlet_connections", "swiftlet_connections_parked", "swiftlet_messages_received", "swiftlet_listener_connections", "swiftlet_sidecar_up"]:
            assert name in families, (name, sorted(families))
        for f in families.values():
            for s in f.samples:
                assert set(s.labels) <= {"node", "listener", "sidecar", "role"}, s
                assert uniq not in json.dumps(s.labels)
    c.disconnect()


def test_plugins_list_unload_load_and_masked_config(dash):
    b, api, _ = dash
    wait_for(lambda: any(p["name"] == "template" and p["connected"] for p in api.ok("GET", "/api/v5/plugins")), msg="template up")
    api.ok("PUT", "/api/v5/plugins/template/unload")
    wait_for(lambda: any(p["name"] == "template" and not p["connected"] for p in api.ok("GET", "/api/v5/plugins")), msg="unloaded")
    api.ok("PUT", "/api/v5/plugins/template/load")
    wait_for(lambda: any(p["name"] == "template" and p["connected"] for p in api.ok("GET", "/api/v5/plugins")), msg="loaded again")
    p = next(p for p in api.ok("GET", "/api/v5/plugins") if p["name"] == "template")
    assert "restarts" in p and p["state"] == "running"
    pid = p.get("pid")
    api.ok("PUT", "/api/v5/plugins/template/reload")
    wait_for(lambda: any(q["name"] == "template" and q["connected"] and q.get("pid") != pid
                         for q in api.ok("GET", "/api/v5/plugins")), msg="reloaded: a new process, connected")
    cfg = api.ok("GET", "/api/v5/plugins/template/config")["config"]
    assert 'password = "******"' in cfg and '"secret"' not in cfg
    assert api.call("PUT", "/api/v5/plugins/nothing/load")[0] in (400, 404)
    assert api.call("GET", "/api/v5/plugins/..%2Fetc/config")[0] == 404


def test_builtin_users_acl_cache(dash, uniq):
    b, api, _ = dash
    base = "/api/v5/authentication/password_based:built_in_database/users"
    api.ok("POST", base, {"user_id": f"{uniq}u", "password": "pw1", "is_superuser": False}, status=201)
    code, out, _ = api.call("POST", base, {"user_id": f"{uniq}u", "password": "pw1"})
    assert code == 400, out
    assert any(u["user_id"] == f"{uniq}u" for u in api.ok("GET", base)["data"])
    api.ok("PUT", f"{base}/{uniq}u", {"password": "pw2"})
    api.ok("DELETE", f"{base}/{uniq}u", status=204)
    assert api.call("DELETE", f"{base}/{uniq}u")[0] == 404
    rules = api.ok("GET", "/api/v5/authorization/sources/built_in_database/rules")
    assert isinstance(rules["rules"], list) and rules["rules"]
    stats = api.ok("GET", "/api/v5/authorization/cache")
    assert "authn" in stats and "providers" in stats
    api.ok("DELETE", "/api/v5/authorization/cache", status=204)


def test_acl_rules_crud(dash, uniq):
    b, api, _ = dash
    base = "/api/v5/authorization/sources/built_in_database/rules"
    c = Client(b, version=5, client_id=f"{uniq}-acl")
    assert c.subscribe(f"{uniq}/secret") == [0]
    # EMQX's field names (action, topic) and ours (access, topics) both work; position 1 goes first
    out = api.ok("POST", base, {"permission": "deny", "clientid": f"{uniq}-acl", "action": "subscribe",
                                "topic": f"{uniq}/secret", "position": 1}, status=201)
    assert out["rules"] == 2 and "rule 1 added" in out["change"]
    assert c.subscribe(f"{uniq}/secret") == [0x87]
    rules = api.ok("GET", base)["rules"]
    assert rules[0] == {"n": 1, "permission": "deny", "clientid": f"{uniq}-acl", "access": "subscribe",
                        "topics": [f"{uniq}/secret"]}
    api.ok("POST", base, {"permission": "allow", "username": "nobody", "access": "pubsub", "topics": ["a/#", "b/+"]}, status=201)
    assert api.ok("GET", base)["rules"][2]["user"] == "nobody"
    # replace rule 1 (now denies publish only), move it last, delete the others
    api.ok("PUT", f"{base}/1", {"permission": "deny", "clientid": f"{uniq}-acl", "action": "publish", "topic": f"{uniq}/secret"})
    assert c.subscribe(f"{uniq}/secret") == [0]
    api.ok("POST", f"{base}/1/move", {"position": 3})
    assert [r["permission"] for r in api.ok("GET", base)["rules"]] == ["allow", "allow", "deny"]
    api.ok("DELETE", f"{base}/3", status=204)
    api.ok("DELETE", f"{base}/2", status=204)
    assert len(api.ok("GET", base)["rules"]) == 1
    # the file was written: a reload reads back the same rules
    api.ok("POST", "/api/v5/authorization/sources/built_in_database/reload")
    assert api.ok("GET", base)["rules"] == [{"n": 1, "permission": "allow", "access": "pubsub", "topics": ["#"]}]
    # bad input: 400 or 404 with a reason, nothing changed
    for method, path, body, want in [
        ("DELETE", f"{base}/9", None, 404), ("PUT", f"{base}/9", {"permission": "allow"}, 404),
        ("DELETE", f"{base}/0", None, 400), ("DELETE", f"{base}/x", None, 400),
        ("POST", base, {"permission": "perhaps"}, 400), ("POST", base, {}, 400),
        ("POST", base, {"permission": "allow", "username": "a", "clientid": "b"}, 400),
        ("POST", base, {"permission": "allow", "ipaddr": "300.1.1.1"}, 400),
        ("POST", base, {"permission": "allow", "action": "read"}, 400),
        ("POST", base, {"permission": "allow", "topics": []}, 400),
        ("POST", base, {"permission": "allow", "topics": [1]}, 400),
        ("POST", base, {"permission": "allow", "colour": "red"}, 400),
        ("POST", base, {"permission": "allow", "position": 5}, 400),
        ("POST", f"{base}/1/move", {"position": 4}, 400), ("POST", f"{base}/7/move", {"position": 1}, 404),
    ]:
        code, err, _ = api.call(method, path, body)
        assert code == want and err and err.get("message"), (method, path, body, code, err)
    assert len(api.ok("GET", base)["rules"]) == 1
    c.disconnect()
    b.assert_alive()


def test_banned_refuses_at_connect_and_kicks(dash, uniq):
    b, api, _ = dash
    c = Client(b, version=5, client_id=f"{uniq}-bad")
    api.ok("POST", "/api/v5/banned", {"as": "clientid", "who": f"{uniq}-bad", "reason": "test"})
    c.wait_disconnected()
    Client(b, version=5, client_id=f"{uniq}-bad", expect_rc=0x8A)
    # 3.1.1 has no "banned": CONNACK 5, which paho reports as 0x87 (not authorized).
    Client(b, version=4, client_id=f"{uniq}-bad", expect_rc=0x87)
    listed = api.ok("GET", "/api/v5/banned")["data"]
    assert any(x["who"] == f"{uniq}-bad" and x["as"] == "clientid" for x in listed)
    api.ok("DELETE", f"/api/v5/banned/clientid/{uniq}-bad", status=204)
    Client(b, version=5, client_id=f"{uniq}-bad").disconnect()
    assert api.call("DELETE", f"/api/v5/banned/clientid/{uniq}-bad")[0] == 404


def test_admins_api_keys_and_ctl(dash, uniq):
    b, api, ctl = dash
    api.ok("POST", "/api/v5/users", {"username": f"{uniq}adm", "password": "long-enough-1"})
    assert api.call("POST", "/api/v5/users", {"username": f"{uniq}adm", "password": "long-enough-1"})[0] == 409
    other = API(api.base.rsplit(":", 1)[1]).wait()
    assert other.login(f"{uniq}adm", "long-enough-1")["password_change_required"] is False
    other.ok("GET", "/api/v5/stats")
    listed = {a["username"]: a for a in api.ok("GET", "/api/v5/users")}
    assert listed[f"{uniq}adm"]["password_change_required"] is False and "password" not in listed[f"{uniq}adm"]
    # Logging out revokes that token only.
    third = API(api.base.rsplit(":", 1)[1]).wait()
    third.login(f"{uniq}adm", "long-enough-1")
    third.ok("POST", "/api/v5/logout", status=204)
    assert third.call("GET", "/api/v5/stats")[0] == 401
    other.ok("GET", "/api/v5/stats")
    # An admin changes only its own password.
    code, out, _ = other.call("POST", "/api/v5/users/admin/change_pwd", {"old_pwd": NEW_PWD, "new_pwd": "whatever-123"})
    assert code == 403
    key = api.ok("POST", "/api/v5/api_key", {"name": f"{uniq}key", "desc": "ci"})
    basic = base64.b64encode(f"{key['api_key']}:{key['api_secret']}".encode()).decode()
    code, out, _ = api.call("GET", "/api/v5/stats", token=None, headers={"Authorization": f"Basic {basic}"})
    assert code == 200, out
    bad = base64.b64encode(f"{key['api_key']}:wrong".encode()).decode()
    code, out, _ = api.call("GET", "/api/v5/stats", token=None, headers={"Authorization": f"Basic {bad}"})
    assert code == 401 and out["code"] == "BAD_API_KEY_OR_SECRET"
    assert any(k["name"] == f"{uniq}key" and "api_secret" not in k for k in api.ok("GET", "/api/v5/api_key"))
    api.ok("DELETE", f"/api/v5/api_key/{uniq}key", status=204)
    code, _, _ = api.call("GET", "/api/v5/stats", token=None, headers={"Authorization": f"Basic {basic}"})
    assert code == 401
    # swiftlet-ctl admins: the same store.
    out = run_ctl(ctl, "admins", "list")
    assert out.rc == 0 and f"{uniq}adm" in out.out
    assert run_ctl(ctl, "admins", "passwd", f"{uniq}adm", "changed-by-ctl").rc == 0
    code, _, _ = other.call("GET", "/api/v5/stats")
    assert code == 401, "a password change revokes the admin's tokens"
    other.login(f"{uniq}adm", "changed-by-ctl")
    assert run_ctl(ctl, "admins", "del", f"{uniq}adm").rc == 0
    assert other.call("GET", "/api/v5/stats")[0] == 401
    assert api.call("DELETE", "/api/v5/users/admin")[0] == 400, "an admin cannot delete itself"


def test_cookie_session_needs_csrf_token(dash):
    b, api, _ = dash
    req = urllib.request.Request(api.base + "/api/v5/login", data=json.dumps({"username": "admin", "password": NEW_PWD}).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        cookie = r.headers["Set-Cookie"]
        csrf = json.loads(r.read())["csrf_token"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    code, _, _ = api.call("GET", "/api/v5/stats", token=None, headers={"Cookie": session})
    assert code == 200
    body = {"topic": "csrf/t", "payload": "x"}
    code, out, _ = api.call("POST", "/api/v5/publish", body, token=None, headers={"Cookie": session})
    assert code == 403, out
    code, out, _ = api.call("POST", "/api/v5/publish", body, token=None, headers={"Cookie": session, "X-CSRF-Token": csrf})
    assert code == 200, out


def test_ctl_endpoint_runs_plugin_commands(dash):
    _, api, _ = dash
    out = api.ok("POST", "/api/v5/ctl", {"args": ["status"]})
    assert out["status"] == 0 and out["json"]["running"] is True
    code, out, _ = api.call("POST", "/api/v5/ctl", {"args": ["no-such-command"]})
    assert code == 400 and out["status"] == 1


def test_recon_and_reload_endpoints(dash):
    """The REST forms of swiftlet-ctl recon and reload config (issue 18 point 1)."""
    _, api, _ = dash
    m = api.ok("GET", "/api/v5/recon/memory")
    assert m["rss_bytes"] > 1 << 20 and m["heap_in_use_bytes"] > 0 and "sessions_bytes" in m["components"]
    a = api.ok("GET", "/api/v5/recon/allocated")
    assert a["peak"]["rss_bytes"] >= a["current"]["rss_bytes"] > 0
    s = api.ok("GET", "/api/v5/recon/node_stats?samples=2&interval=0.2")["samples"]
    assert len(s) == 2 and all(0 <= l["busy_fraction"] <= 1 for r in s for l in r["loops"])
    code, out, _ = api.call("GET", "/api/v5/recon/node_stats?samples=500")
    assert code == 400, out
    assert api.ok("POST", "/api/v5/recon/bin_leak")["rss_after_bytes"] > 0
    assert any(r["name"] == "template" and r["rss_bytes"] > 0 for r in api.ok("GET", "/api/v5/recon/sidecars"))
    r = api.ok("POST", "/api/v5/reload/config")
    assert "needs_restart" in r and any("auth cache" in x for x in r["applied"])


def test_login_rate_limit_answers_429(broker_factory):
    port = free_port()
    b = broker_factory(extra=f'\n[dashboard]\nlistener = "127.0.0.1:{port}"\nlogin_attempts_per_minute = 5\n')
    api = API(port).wait()
    codes = [api.call("POST", "/api/v5/login", {"username": "admin", "password": "nope"}, token=None)[0] for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
    code, out, h = api.call("POST", "/api/v5/login", {"username": "admin", "password": "public"}, token=None)
    assert code == 429 and out["code"] == "TOO_MANY_REQUESTS" and int(h["Retry-After"]) >= 1


def test_dashboard_port_in_use_is_a_clear_start_error(broker_factory):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        b = broker_factory(extra=f'\n[dashboard]\nlistener = "127.0.0.1:{port}"\n', wait=False)
        assert b.wait_exit(timeout=20) != 0
        assert "dashboard" in b.log_text().lower() and ("in use" in b.log_text().lower() or "address" in b.log_text().lower())
    finally:
        s.close()


def test_dashboard_over_tls_and_a_missing_key_names_the_key(broker_factory, tmp_path):
    import ssl
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    broker_factory(extra=f'\n[dashboard]\nlistener = "127.0.0.1:{port}"\ncertfile = "{cert}"\nkeyfile = "{key}"\n')
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/status", context=ctx, timeout=5) as r:
                assert json.loads(r.read())["status"] == "running"
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            assert time.monotonic() < deadline, "no HTTPS dashboard"
            time.sleep(0.1)
    req = urllib.request.Request(f"https://127.0.0.1:{port}/api/v5/login", method="POST",
                                 data=json.dumps({"username": "admin", "password": "public"}).encode())
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        assert "Secure" in r.headers["Set-Cookie"]
    port2 = free_port()
    b = broker_factory(extra=f'\n[dashboard]\nlistener = "127.0.0.1:{port2}"\ncertfile = "{cert}"\nkeyfile = "{tmp_path}/missing.pem"\n',
                       wait=False)
    assert b.wait_exit(timeout=20) != 0
    assert "dashboard.keyfile" in b.log_text(), b.tail()
