"""swiftlet-auth-http (emqttd_auth_http as a sidecar) against a real HTTP service: a Python
ThreadingHTTPServer on a free loopback port with its own users and ACL, run by the broker as a
managed plugin. What MQTT clients see on the wire (3.1.1 and 5.0), what reaches the service,
and how outages, slow or broken services, kill -9 and invalidation play out."""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from brokers import REPO, swiftlet_path
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok
from mqttraw import CONNACK, PUBACK, PUBLISH, RawClient, connected
from sidecars import registrations, short_dir, sidecar_config, wait_registered

NAME = "auth_http"


def sidecar_binary():
    return swiftlet_path().parent / "swiftlet-auth-http"


pytestmark = pytest.mark.skipif(not sidecar_binary().exists(),
                                reason=f"{sidecar_binary()} not built (swift build --product swiftlet-auth-http)")


# -- the HTTP service ----------------------------------------------------------------------

class AuthService:
    """An emqttd_auth_http service: users, superusers and an ACL, every request recorded.

    Users: name -> password. The ACL allows a user to publish and subscribe under
    `<topic prefix>/` entries of `acl[user]`; `pub_only`/`sub_only` restrict the access.
    `mode` changes the answers: normal, slow (sleep `delay` first), error500, huge (10 MB
    body), huge_chunked (10 MB, no Content-Length), ignore (200 "ignore").
    """

    def __init__(self):
        self.users = {"alice": "secret", "bob": "b0b", "admin": "root"}
        self.superusers = {"admin"}
        self.acl = {"alice": ["alice/", "shared/"], "bob": ["bob/", "shared/"]}
        self.pub_only = {"shared/"}          # subscribe to shared/ is denied, publish allowed
        self.mode = "normal"
        self.delay = 0.0
        self.requests = []                   # (path, method, params, content type)
        self.peers = set()                   # client ports seen (connections opened)
        self.lock = threading.Lock()
        self.conns = set()
        self.port = None
        self.server = None
        self.thread = None

    # bookkeeping
    def count(self, path, **match):
        with self.lock:
            return sum(1 for p, _, params, _ in self.requests
                       if p == path and all(params.get(k) == [v] for k, v in match.items()))

    def last(self, path):
        with self.lock:
            for p, method, params, ctype in reversed(self.requests):
                if p == path:
                    return method, params, ctype
        raise AssertionError(f"no request to {path}; got {[r[0] for r in self.requests]}")

    # decisions
    def decide(self, path, params):
        one = {k: v[0] for k, v in params.items()}
        user = one.get("username", "")
        if path == "/mqtt/auth":
            return 200 if user in self.users and self.users[user] == one.get("password") else 401
        if path == "/mqtt/superuser":
            return 200 if user in self.superusers else 403
        if path == "/mqtt/acl":
            topic, access = one.get("topic", ""), one.get("access")
            for prefix in self.acl.get(user, []):
                if topic.startswith(prefix):
                    if access == "1" and prefix in self.pub_only:
                        return 403
                    return 200
            return 403
        return 404

    # server
    def start(self, port=None, tls=None):
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"      # keep-alive
            disable_nagle_algorithm = True     # headers and body are two writes: no 40 ms Nagle stall

            def setup(self):
                super().setup()
                with service.lock:
                    service.conns.add(self.connection)
                    service.peers.add(self.client_address[1])

            def finish(self):
                with service.lock:
                    service.conns.discard(self.connection)
                super().finish()

            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urlsplit(self.path)
                self.answer(u.path, parse_qs(u.query, keep_blank_values=True, strict_parsing=False), "")

            def do_POST(self):
                u = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                ctype = self.headers.get("Content-Type", "")
                if ctype == "application/json":
                    params = {k: [v] for k, v in json.loads(body).items()}
                else:
                    params = parse_qs(body, keep_blank_values=True)
                self.answer(u.path, params, ctype)

            def answer(self, path, params, ctype):
                with service.lock:
                    service.requests.append((path, self.command, params, ctype))
                    mode, delay = service.mode, service.delay
                if mode == "slow":
                    time.sleep(delay)
                if mode == "error500":
                    return self.reply(500, b"boom")
                if mode == "ignore":
                    return self.reply(200, b"ignore")
                if mode in ("huge", "huge_chunked"):
                    return self.huge(chunked=mode == "huge_chunked")
                status = service.decide(path, params)
                self.reply(status, b"ok" if status == 200 else b"no")

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def huge(self, chunked):
                block = b"x" * 65536
                self.send_response(200)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(160 * len(block)))
                self.end_headers()
                try:
                    for _ in range(160):                # 10 MB
                        if chunked:
                            self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
                        else:
                            self.wfile.write(block)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass                                # the sidecar hung up: as it should
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 128          # listen backlog (default 5): the sidecar opens many at once

        self.server = Server(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stops listening and drops the kept-alive connections: the service is gone."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
def service():
    s = AuthService().start()
    yield s
    try:
        s.stop()
    except Exception:
        pass


# -- the broker with the sidecar -----------------------------------------------------------

def plugin_toml(service, auth=True, superuser=True, acl=True, method="post", acl_method="get",
                content_type="form", timeout=2.0, admin=False, extra="", tls=None):
    lines = [
        "[sidecar]",
        f"command = {json.dumps(str(sidecar_binary()))}",
        "enabled = true",
        "[sidecar.restart]",
        "initial_backoff = 0.1", "max_backoff = 0.5", "max_restarts = 50", "period = 60", "shutdown_grace = 2",
        "",
        "[auth_http]",
        f"timeout = {timeout}",
    ]
    if admin:
        lines.append('admin_listen = "127.0.0.1:0"')
    lines.append(extra)
    if tls:
        lines.append("[auth_http.tls]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in tls.items()]
    if auth:
        lines += ["[auth_http.auth_req]", f'method = "{method}"', f'url = "{service.url("/mqtt/auth")}"',
                  'params = "clientid=%c,username=%u,password=%P,ipaddr=%a"', f'content_type = "{content_type}"']
    if superuser:
        lines += ["[auth_http.super_req]", f'method = "{method}"', f'url = "{service.url("/mqtt/superuser")}"',
                  'params = { username = "%u", clientid = "%c" }', f'content_type = "{content_type}"']
    if acl:
        lines += ["[auth_http.acl_req]", f'method = "{acl_method}"', f'url = "{service.url("/mqtt/acl")}"',
                  'params = "access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t"', f'content_type = "{content_type}"']
    return "\n".join(lines) + "\n"


def start_broker(broker_factory, service, auth_extra="", mqtt=None, **kw):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    (plugins / f"{NAME}.toml").write_text(plugin_toml(service, **kw))
    b = broker_factory(extra=sidecar_config(d / "sc.sock", mqtt=mqtt) + f'plugins_dir = "{plugins}"\n' + auth_extra)
    wait_registered(b, NAME)
    return b


def sidecar_pid(b):
    line = [l for l in b.log_text().splitlines() if "sidecar started" in l and f"sidecar.name={NAME}" in l][-1]
    return int(line.split("sidecar.pid=")[1].split()[0])


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def admin_port(b, count=1):
    def ports():
        return re.findall(r"admin endpoint listening on 127\.0\.0\.1:(\d+)", b.log_text())
    wait_for(lambda: len(ports()) >= count, msg="admin endpoint address in the log")
    return int(ports()[-1])


def admin_post(port, query):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"POST /invalidate?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split()[1]), data.split(b"\r\n\r\n", 1)[1].decode()


def raw(b, version, user, password, client_id=None, expect_rc=0):
    c = RawClient(b, version=version)
    cid = client_id if client_id is not None else f"raw-{os.urandom(4).hex()}"
    ack = c.connect(cid, username=user, password=None if password is None else password.encode(), expect_rc=expect_rc)
    return c, ack


REFUSED = {5: 0x86, 4: 4, 3: 4}   # credentials given and refused (docs/auth.md)
OK = (0, 0x10)                    # PUBACK: success, or success with no subscriber


def test_shipped_plugin_file_loads_on_demand(broker_factory, service):
    """etc/plugins/auth_http.toml as shipped (disabled), with the service's address and the
    debug binary: the broker accepts the declaration, `plugins load` starts it."""
    text = (REPO / "etc" / "plugins" / f"{NAME}.toml").read_text()
    text = text.replace('command = ".build/release/swiftlet-auth-http"', f'command = "{sidecar_binary()}"')
    text = text.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{service.port}")
    assert "enabled = false" in text and str(service.port) in text
    d = short_dir()
    (d / "plugins").mkdir()
    (d / "plugins" / f"{NAME}.toml").write_text(text)
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{d / "plugins"}"\n'
                       + ctl_config(d / "ctl.sock"))
    rows = ctl_ok(d / "ctl.sock", "plugins", "list", json_out=True)
    assert [r for r in rows if r["name"] == NAME][0]["state"] == "stopped"
    raw(b, 5, "alice", "secret", expect_rc=0x86)[0].close()
    ctl_ok(d / "ctl.sock", "plugins", "load", NAME)
    wait_registered(b, NAME)
    c, _ = raw(b, 5, "alice", "secret")
    assert c.publish("bob/x", b"x", qos=1, pid=1).rc == 0x87
    assert service.last("/mqtt/acl")[0] == "GET"


# -- authentication -------------------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 4, 5])
def test_allow_wrong_password_unknown_user(broker_factory, service, version):
    b = start_broker(broker_factory, service)
    c, _ = raw(b, version, "alice", "secret")
    c.close()
    raw(b, version, "alice", "wrong", expect_rc=REFUSED[version])[0].close()
    raw(b, version, "mallory", "secret", expect_rc=REFUSED[version])[0].close()
    assert service.count("/mqtt/auth", username="alice", password="secret") == 1
    assert service.count("/mqtt/auth", username="alice", password="wrong") == 1
    assert service.count("/mqtt/auth", username="mallory") == 1
    # super_req follows only a successful auth_req, as in emqttd.
    assert service.count("/mqtt/superuser") == 1


def test_request_contract_post_form_and_get(broker_factory, service):
    b = start_broker(broker_factory, service)
    c, _ = raw(b, 5, "alice", "secret", client_id="contract-1")
    c.subscribe("alice/in", qos=1)
    c.publish("alice/out", b"x", qos=1)
    method, params, ctype = service.last("/mqtt/auth")
    assert (method, ctype) == ("POST", "application/x-www-form-urlencoded")
    assert params == {"clientid": ["contract-1"], "username": ["alice"], "password": ["secret"], "ipaddr": ["127.0.0.1"]}
    method, params, _ = service.last("/mqtt/superuser")
    assert method == "POST" and params == {"username": ["alice"], "clientid": ["contract-1"]}
    assert service.count("/mqtt/acl", access="1", topic="alice/in", username="alice", clientid="contract-1",
                         ipaddr="127.0.0.1") == 1
    assert service.count("/mqtt/acl", access="2", topic="alice/out") == 1
    assert service.last("/mqtt/acl")[0] == "GET"
    c.close()


def test_json_content_type(broker_factory, service):
    b = start_broker(broker_factory, service, content_type="json", acl_method="post")
    c, _ = raw(b, 5, "alice", "secret", client_id="json-1")
    c.publish("alice/x", b"x", qos=1)
    method, params, ctype = service.last("/mqtt/auth")
    assert (method, ctype) == ("POST", "application/json")
    assert params["password"] == ["secret"] and params["clientid"] == ["json-1"]
    assert service.last("/mqtt/acl")[1]["access"] == ["2"]
    c.close()


def test_keep_alive_connections_are_reused(broker_factory, service):
    b = start_broker(broker_factory, service)
    for i in range(30):
        raw(b, 4, "alice", "secret", client_id=f"ka-{i}")[0].close()
    assert service.count("/mqtt/auth") == 30
    assert len(service.peers) <= 3, f"{len(service.peers)} connections for 30 requests"


# -- authorization --------------------------------------------------------------------------

def test_publish_and_subscribe_v5(broker_factory, service):
    b = start_broker(broker_factory, service)
    watcher, _ = raw(b, 5, "admin", "root")
    watcher.subscribe([("#", 0)])
    c, _ = raw(b, 5, "alice", "secret")
    assert c.subscribe([("alice/a", 1), ("bob/a", 1), ("shared/a", 1)], pid=2).rcs == [1, 0x87, 0x87]
    assert c.publish("alice/x", b"ok", qos=1, pid=3).rc in OK
    assert c.publish("shared/x", b"ok", qos=1, pid=4).rc in OK          # publish only
    assert c.publish("bob/x", b"no", qos=1, pid=5).rc == 0x87
    c.publish("bob/y", b"no", qos=0)
    got = {watcher.expect(PUBLISH).topic for _ in range(2)}
    assert got == {"alice/x", "shared/x"}
    watcher.expect_nothing(0.5)


@pytest.mark.parametrize("version", [3, 4])
def test_publish_and_subscribe_v3(broker_factory, service, version):
    b = start_broker(broker_factory, service)
    watcher, _ = raw(b, 5, "admin", "root")
    watcher.subscribe([("#", 0)])
    c, _ = raw(b, version, "alice", "secret")
    assert c.subscribe([("alice/a", 1), ("bob/a", 1)], pid=2).rcs == [1, 0x80]
    assert c.publish("alice/x", b"ok", qos=1, pid=3).pid == 3
    # Denied: still acknowledged (emqttd), never delivered.
    assert c.publish("bob/x", b"no", qos=1, pid=4).pid == 4
    assert watcher.expect(PUBLISH).topic == "alice/x"
    watcher.expect_nothing(0.5)


def test_superuser_bypasses_acl(broker_factory, service):
    b = start_broker(broker_factory, service)
    sub, _ = raw(b, 5, "admin", "root")
    assert sub.subscribe([("bob/#", 1), ("#", 0)], pid=1).rcs == [1, 0]
    pub, _ = raw(b, 4, "admin", "root")
    pub.publish("bob/secret", b"x", qos=1, pid=2)
    assert sub.expect(PUBLISH).topic == "bob/secret"
    assert service.count("/mqtt/acl") == 0
    assert service.count("/mqtt/superuser", username="admin") == 2


def test_acl_req_absent_leaves_acl_to_the_chain(broker_factory, service):
    b = start_broker(broker_factory, service, acl=False)
    c, _ = raw(b, 5, "alice", "secret")
    # The built-in default ACL (clients from 127.0.0.1 may do anything) decides.
    assert c.subscribe([("bob/a", 1)], pid=1).rcs == [1]
    assert c.publish("bob/a", b"x", qos=1, pid=2).rc in OK
    assert service.count("/mqtt/acl") == 0


def test_super_req_absent_means_no_superuser(broker_factory, service):
    b = start_broker(broker_factory, service, superuser=False)
    c, _ = raw(b, 5, "admin", "root")
    assert c.publish("bob/x", b"x", qos=1, pid=1).rc == 0x87
    assert service.count("/mqtt/superuser") == 0


def test_ignore_passes_to_the_next_provider(broker_factory, service):
    b = start_broker(broker_factory, service)
    c, _ = raw(b, 5, "alice", "secret")
    service.mode = "ignore"
    # acl_req says "ignore": the built-in ACL (loopback may do anything) allows.
    assert c.publish("bob/x", b"x", qos=1, pid=1).rc in OK
    # auth_req says "ignore": nobody else knows bob, anonymous is off.
    raw(b, 5, "bob", "b0b", expect_rc=0x86)[0].close()


# -- the service away, slow, broken ---------------------------------------------------------

def test_service_stopped_and_back(broker_factory, service):
    b = start_broker(broker_factory, service)
    watcher, _ = raw(b, 5, "admin", "root")
    watcher.subscribe([("#", 0)])
    alice, _ = raw(b, 5, "alice", "secret", client_id="alice-1")
    assert alice.publish("alice/x", b"1", qos=1, pid=1).rc in OK
    port = service.port
    service.stop()
    # Cached decisions keep working: the connected client, and a reconnect with the same
    # credentials.
    assert alice.publish("alice/x", b"2", qos=1, pid=2).rc in OK
    alice.close()
    alice, _ = raw(b, 5, "alice", "secret", client_id="alice-1")
    assert alice.publish("alice/x", b"3", qos=1, pid=3).rc in OK
    # What is not cached gets the fallback (deny), and is not cached.
    assert alice.publish("alice/new", b"4", qos=1, pid=4).rc == 0x87
    raw(b, 5, "bob", "b0b", expect_rc=0x86)[0].close()
    raw(b, 4, "bob", "b0b", expect_rc=4)[0].close()
    wait_for(lambda: "auth_req failed" in b.log_text(), msg="the sidecar logs why")
    assert "Connection refused" in b.log_text() or "Couldn't connect" in b.log_text()
    service.start(port)
    raw(b, 5, "bob", "b0b")[0].close()
    assert alice.publish("alice/new", b"5", qos=1, pid=5).rc in OK
    assert [watcher.expect(PUBLISH).payload for _ in range(4)] == [b"1", b"2", b"3", b"5"]


def test_service_answering_after_the_timeout(broker_factory, service):
    b = start_broker(broker_factory, service, timeout=0.5)
    service.mode, service.delay = "slow", 2.0
    raw(b, 5, "alice", "secret", expect_rc=0x86)[0].close()
    # The sidecar gave up after its own timeout (0.5 s), not the broker's (5 s).
    pattern = r"auth_req failed: Operation timed out after (\d+) milliseconds"
    wait_for(lambda: re.search(pattern, b.log_text()), msg="timeout logged")
    assert int(re.search(pattern, b.log_text()).group(1)) < 4000
    assert "provider error: auth_req: Operation timed out" in b.log_text()
    service.mode = "normal"
    raw(b, 5, "alice", "secret")[0].close()   # the error was not cached


def test_service_answering_500(broker_factory, service):
    b = start_broker(broker_factory, service)
    alice, _ = raw(b, 5, "alice", "secret")
    service.mode = "error500"
    raw(b, 5, "bob", "b0b", expect_rc=0x86)[0].close()
    assert alice.publish("alice/y", b"x", qos=1, pid=1).rc == 0x87
    wait_for(lambda: "HTTP 500" in b.log_text(), msg="500 logged")
    service.mode = "normal"
    raw(b, 5, "bob", "b0b")[0].close()        # errors are never cached
    assert alice.publish("alice/y", b"x", qos=1, pid=2).rc in OK


@pytest.mark.parametrize("mode", ["huge", "huge_chunked"])
def test_10mb_body_is_refused_without_buffering(broker_factory, service, mode):
    b = start_broker(broker_factory, service)
    raw(b, 5, "alice", "secret")[0].close()
    pid = sidecar_pid(b)
    before = rss_kb(pid)
    service.mode = mode
    for i in range(5):
        raw(b, 5, "alice", "secret", client_id=f"huge-{i}", expect_rc=0x86)[0].close()
    wait_for(lambda: "over 65536 bytes" in b.log_text(), msg="refusal logged")
    after = rss_kb(pid)
    assert after - before < 8 * 1024, f"sidecar RSS grew from {before} kB to {after} kB"
    service.mode = "normal"
    raw(b, 5, "alice", "secret", client_id="after-huge")[0].close()
    assert sidecar_pid(b) == pid


# -- https -------------------------------------------------------------------------------------

def make_cert(d, name):
    """A self-signed certificate for 127.0.0.1 (its own CA): (cert path, key path)."""
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {"server": make_cert(d, "server"), "client": make_cert(d, "client")}


@pytest.mark.parametrize("case", ["ca", "no_ca", "no_verify", "client_cert", "no_client_cert"])
def test_https_service(broker_factory, certs, case):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*map(str, certs["server"]))
    if case in ("client_cert", "no_client_cert"):
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(certs["client"][0]))
    svc = AuthService().start(tls=ctx)
    try:
        tls = {"ca": {"cafile": str(certs["server"][0])},
               "no_ca": {},
               "no_verify": {"verify": False},
               "client_cert": {"cafile": str(certs["server"][0]), "certfile": str(certs["client"][0]),
                               "keyfile": str(certs["client"][1])},
               "no_client_cert": {"cafile": str(certs["server"][0])}}[case]
        b = start_broker(broker_factory, svc, tls=tls)
        if case in ("no_ca", "no_client_cert"):
            # The service cannot be trusted / refuses the sidecar: an error, the fallback.
            raw(b, 5, "alice", "secret", expect_rc=0x86)[0].close()
            wait_for(lambda: "auth_req failed" in b.log_text(), msg="TLS failure logged")
            assert svc.count("/mqtt/auth") == 0
        else:
            c, _ = raw(b, 5, "alice", "secret")
            assert c.publish("bob/x", b"x", qos=1, pid=1).rc == 0x87
            raw(b, 5, "alice", "wrong", expect_rc=0x86)[0].close()
            assert svc.count("/mqtt/auth") == 2 and svc.count("/mqtt/acl") == 1
    finally:
        svc.stop()


# -- values that must arrive intact ----------------------------------------------------------

HOSTILE = [
    "a&b=c", "100%", "50%25", "p+q", "x#y", "with space", "line\nbreak", "ünïcødé-日本-😀",
    "%u%P%c", "k=v&username=admin", "?a=1;b", "z" * 1000,
]


@pytest.mark.parametrize("method", ["get", "post"])
def test_hostile_usernames_and_client_ids_arrive_unchanged(broker_factory, service, method):
    # strict_utf8 off: "line\nbreak" is a control character the broker refuses by default.
    b = start_broker(broker_factory, service, mqtt={"strict_utf8": False}, method=method, acl_method=method)
    for i, value in enumerate(HOSTILE):
        service.users[value] = f"pw {value}"
        service.acl[value] = ["t/"]
        cid = f"{value}-{i}"
        c, _ = raw(b, 5, value, f"pw {value}", client_id=cid)
        assert c.publish("t/1", b"x", qos=1, pid=1).rc in OK
        c.close()
        assert service.count("/mqtt/auth", username=value, clientid=cid, password=f"pw {value}") == 1, value
        assert service.count("/mqtt/superuser", username=value, clientid=cid) == 1, value
        assert service.count("/mqtt/acl", username=value, clientid=cid, topic="t/1", access="2") == 1, value
        assert service.last("/mqtt/auth")[0] == method.upper()


# -- the broker's cache ------------------------------------------------------------------------

def test_second_identical_connect_is_answered_from_the_cache(broker_factory, service):
    b = start_broker(broker_factory, service)
    for _ in range(3):
        c, _ = raw(b, 5, "alice", "secret", client_id="cached-1")
        c.publish("alice/x", b"x", qos=1, pid=1)
        c.close()
    assert service.count("/mqtt/auth", clientid="cached-1") == 1
    assert service.count("/mqtt/acl", clientid="cached-1") == 1
    # A different password is a different question.
    raw(b, 5, "alice", "nope", client_id="cached-1", expect_rc=0x86)[0].close()
    assert service.count("/mqtt/auth", clientid="cached-1") == 2


def test_admin_invalidate(broker_factory, service):
    b = start_broker(broker_factory, service, admin=True)
    port = admin_port(b)
    alice, _ = raw(b, 5, "alice", "secret", client_id="inv-1")
    assert alice.publish("alice/x", b"x", qos=1, pid=1).rc in OK
    raw(b, 5, "alice", "secret", client_id="inv-1b")[0].close()
    # The service revokes alice: cached answers still let her in ...
    service.users["alice"] = "changed"
    service.acl["alice"] = []
    assert alice.publish("alice/x", b"x", qos=1, pid=2).rc in OK
    raw(b, 5, "alice", "secret", client_id="inv-1b")[0].close()
    # ... until the service asks the sidecar to drop them.
    assert admin_post(port, "username=alice") == (200, "invalidated\n")
    wait_for(lambda: "admin invalidate" in b.log_text(), msg="invalidate logged")
    assert alice.publish("alice/x", b"x", qos=1, pid=3).rc == 0x87
    raw(b, 5, "alice", "secret", client_id="inv-1b", expect_rc=0x86)[0].close()
    # By client id, and everything.
    raw(b, 5, "bob", "b0b", client_id="inv-2")[0].close()
    service.users["bob"] = "changed"
    assert admin_post(port, "clientid=inv-2")[0] == 200
    raw(b, 5, "bob", "b0b", client_id="inv-2", expect_rc=0x86)[0].close()
    assert admin_post(port, "all=1")[0] == 200
    assert admin_post(port, "")[0] == 400
    assert admin_post(port, "bogus=1")[0] == 400


# -- the sidecar killed -----------------------------------------------------------------------

def test_kill9_under_load_is_restarted_and_serves(broker_factory, service):
    b = start_broker(broker_factory, service)
    first = sidecar_pid(b)
    stop = threading.Event()
    results = {"ok": 0, "refused": 0, "other": 0}
    lock = threading.Lock()

    def load(n):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                c = RawClient(b, version=4)
                ack = c.connect(f"load-{n}-{i}", username="alice", password=b"secret", expect_rc=None)
                c.close()
                key = "ok" if ack.rc == 0 else "refused"
            except Exception:
                key = "other"
            with lock:
                results[key] += 1

    threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: results["ok"] >= 20, msg="load running")
    os.kill(first, signal.SIGKILL)
    wait_registered(b, NAME, count=2, timeout=15)
    ok_at_restart = results["ok"]
    wait_for(lambda: results["ok"] >= ok_at_restart + 20, msg="served again after the restart")
    stop.set()
    for t in threads:
        t.join(10)
    assert sidecar_pid(b) != first
    assert "sidecar exited unexpectedly" in b.log_text()
    b.assert_alive()
    raw(b, 5, "bob", "b0b")[0].close()
