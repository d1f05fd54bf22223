"""sidecar.py as a process, against a fake broker on a Unix socket in a temporary directory.

Every wait is bounded (socket timeouts, process timeouts).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import sidecar as sc

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "sidecar.py")
TIMEOUT = 10.0

USERS = {
    "users": {
        "alice": {"password": "secret", "superuser": False},
        "root": {"password": "toor", "superuser": True},
        "sue": {"password": "s", "subscriptions": {"inbox/sue": 1, "news/#": 0}},
    },
    "acl": [
        {"allow": True, "username": "alice", "access": "pubsub", "topic": "a/#"},
        {"allow": False, "username": "$all", "access": "publish", "topic": "a/secret"},
        {"allow": True, "username": "$all", "access": "subscribe", "topic": "public/+"},
    ],
}


def client(username, cid="c1"):
    return sc.Client(cid, username, "127.0.0.1", 40000, 5, "tcp:0.0.0.0:1883")


class FakeBroker:
    def __init__(self, path):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.listener.settimeout(TIMEOUT)
        self.conn = None
        self.decoder = None
        self.pending = []

    def accept(self):
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(TIMEOUT)
        self.decoder = sc.FrameDecoder(1 << 20)
        self.pending = []

    def send(self, msg, rid=0):
        self.conn.sendall(sc.encode(msg, rid))

    def recv(self):
        """Next (request_id, message); None at end of stream."""
        while not self.pending:
            data = self.conn.recv(65536)
            if not data:
                self.decoder.finish()
                return None
            self.pending += self.decoder.feed(data)
        f = self.pending.pop(0)
        return f.request_id, sc.decode_message(f.kind, f.body)

    def recv_reply(self):
        """Next frame that is not a PING from the sidecar (those are answered)."""
        while True:
            got = self.recv()
            if got is not None and isinstance(got[1], sc.Ping):
                self.send(sc.Pong(), got[0])
                continue
            return got

    def handshake(self, version=1):
        self.accept()
        rid, hello = self.recv()
        assert isinstance(hello, sc.Hello) and rid != 0
        self.send(sc.Welcome(version, "test", "node-t", 65_536), rid)
        rid2, reg = self.recv()
        assert isinstance(reg, sc.Register) and rid2 != 0 and rid2 != rid
        self.send(sc.Registered(["client.connected"]), rid2)
        return hello, reg

    def close(self):
        if self.conn:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def env(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    # AF_UNIX paths are limited to ~108 bytes: keep the socket path short.
    sock = os.path.join(f"/tmp/sc-{os.getpid()}-{time.monotonic_ns() % 10**9}.sock")
    broker = FakeBroker(sock)
    procs = []

    def start(*extra, env_name="pytest-sidecar"):
        e = dict(os.environ, SWIFTLET_SOCKET=sock, SWIFTLET_SIDECAR_NAME=env_name)
        p = subprocess.Popen([sys.executable, SCRIPT, "--users", str(users), *extra], env=e,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    yield broker, start, users
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=TIMEOUT)
        p.stderr.close()
    broker.close()
    if os.path.exists(sock):
        os.unlink(sock)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_subscriptions_come_with_an_allow_in_version_3_only(env, version):
    broker, start, _ = env
    start()
    broker.handshake(version)
    broker.send(sc.AuthnRequest(client("sue"), b"s"), 7)
    broker.send(sc.AuthnRequest(client("sue"), b"bad"), 8)
    broker.send(sc.AuthnRequest(client("alice"), b"secret"), 9)
    got = dict(broker.recv_reply() for _ in range(3))
    if version >= 3:
        assert got[7] == sc.AuthnReplySubs(sc.ALLOW, False, 0, "ok", (("inbox/sue", 1), ("news/#", 0)))
    else:
        assert got[7] == sc.AuthnReply(sc.ALLOW, False, 0, "ok")
    assert got[8] == sc.AuthnReply(sc.DENY, False, 0, "bad password")
    assert got[9] == sc.AuthnReply(sc.ALLOW, False, 0, "ok")  # no subscriptions: the old reply


def test_handshake_and_requests(env):
    broker, start, _ = env
    p = start("--order", "42")
    hello, reg = broker.handshake()
    assert (hello.min_version, hello.max_version, hello.name) == (1, 3, "pytest-sidecar")
    assert reg.capabilities == (
        sc.AuthnCapability(42), sc.AuthzCapability(42),
        sc.HookCapability("client.connected", False, 0),
        sc.CtlCapability("pydemo", reg.capabilities[3].usage))

    # several requests outstanding at once, in one write; replies carry their ids
    reqs = {
        101: sc.AuthnRequest(client("alice"), b"secret"),
        102: sc.AuthnRequest(client("alice"), b"wrong"),
        103: sc.AuthnRequest(client("mallory"), b"x"),
        104: sc.AuthnRequest(client(None), None),
        105: sc.AuthnRequest(client("root"), b"toor"),
        106: sc.AuthnRequest(client("alice"), None),
        201: sc.AuthzRequest(client("alice"), 2, "a/b", 1, False),
        202: sc.AuthzRequest(client("bob"), 2, "a/secret", 0, False),
        203: sc.AuthzRequest(client("bob"), 1, "public/x", 0, False),
        204: sc.AuthzRequest(client("bob"), 1, "public/#", 0, False),
        205: sc.AuthzRequest(client("alice"), 1, "a/+/c", 0, False),
        301: sc.CtlRequest("pydemo", []),
        302: sc.CtlRequest("pydemo", ["bogus"]),
        401: sc.Ping(),
        402: sc.HookPublish(client("alice"), sc.PublishMessage("t", b"p", 0, False)),
    }
    broker.conn.sendall(b"".join(sc.encode(m, rid) for rid, m in reqs.items()))
    got = {}
    while len(got) < len(reqs):
        rid, msg = broker.recv_reply()
        assert rid not in got
        got[rid] = msg
    assert got[101] == sc.AuthnReply(sc.ALLOW, False, 0, "ok")
    assert got[102].decision == sc.DENY
    assert got[103].decision == sc.IGNORE
    assert got[104].decision == sc.IGNORE
    assert got[105] == sc.AuthnReply(sc.ALLOW, True, 0, "ok")
    assert got[106].decision == sc.DENY
    assert got[201].decision == sc.ALLOW
    assert got[202].decision == sc.DENY
    assert got[203].decision == sc.ALLOW
    assert got[204].decision == sc.IGNORE  # public/+ does not cover public/#
    assert got[205].decision == sc.ALLOW
    assert got[301].status == sc.CTL_OK and got[301].text == "users: alice, root, sue"
    assert json.loads(got[301].json) == {"users": ["alice", "root", "sue"]}
    assert got[302].status == sc.CTL_USAGE
    assert got[401] == sc.Pong()
    assert got[402] == sc.HookPublishReply(sc.ACTION_CONTINUE)

    # unknown request kind -> ERROR 2 with the same id; the connection goes on
    broker.conn.sendall(sc.encode_frame(0x09, 77, b""))
    assert broker.recv_reply() == (77, sc.Error(2, "unknown kind 0x09"))

    # hook events are logged to stderr
    broker.send(sc.HookEvents([sc.Event("client.connected", 1, [("client_id", b"zed-42")])]))
    broker.send(sc.Ping(), 9)
    assert broker.recv_reply() == (9, sc.Pong())

    broker.send(sc.Goodbye("test over"))
    assert p.wait(timeout=TIMEOUT) == 0
    err = p.stderr.read()
    assert "zed-42" in err and "client.connected" in err


def test_sidecar_pings_broker(env):
    broker, start, _ = env
    p = start("--ping-interval", "0.2")
    broker.handshake()
    rid, msg = broker.recv()
    assert isinstance(msg, sc.Ping) and rid != 0
    broker.send(sc.Pong(), rid)
    rid2, msg2 = broker.recv()
    assert isinstance(msg2, sc.Ping) and rid2 != rid
    broker.conn.close()  # EOF: exits cleanly without --reconnect
    assert p.wait(timeout=TIMEOUT) == 0


def test_reconnects_and_says_goodbye_on_sigterm(env):
    broker, start, _ = env
    p = start("--reconnect")
    broker.handshake()
    broker.conn.close()
    t0 = time.monotonic()
    broker.handshake()  # the sidecar came back
    assert time.monotonic() - t0 < 5
    p.send_signal(signal.SIGTERM)
    assert broker.recv() == (0, sc.Goodbye("shutdown"))
    assert p.wait(timeout=TIMEOUT) == 0


def test_sighup_reloads_and_invalidates(env):
    broker, start, users = env
    p = start()
    broker.handshake()
    data = dict(USERS, users={"carol": {"password": "pw"}})
    users.write_text(json.dumps(data))
    p.send_signal(signal.SIGHUP)
    assert broker.recv_reply() == (0, sc.Invalidate(sc.SCOPE_ALL, ""))
    broker.send(sc.CtlRequest("pydemo"), 5)
    assert broker.recv_reply() == (5, sc.CtlReply(0, "users: carol", '{"users":["carol"]}'))
    broker.send(sc.Goodbye(""))
    assert p.wait(timeout=TIMEOUT) == 0


def test_malformed_body_closes_with_goodbye(env):
    broker, start, _ = env
    p = start()
    broker.handshake()
    broker.conn.sendall(bytes.fromhex("0000000f 11 00000003 00 02 0000ea60 0002 6f6b".replace(" ", "")))
    rid, msg = broker.recv_reply()
    assert rid == 0 and isinstance(msg, sc.Goodbye) and "malformed" in msg.reason
    assert broker.recv_reply() is None
    assert p.wait(timeout=TIMEOUT) == 1


def test_error_8_on_hello_exits_non_zero(env):
    broker, start, _ = env
    p = start()
    broker.accept()
    rid, hello = broker.recv()
    broker.send(sc.Error(8, "version not supported"), rid)
    broker.conn.close()
    assert p.wait(timeout=TIMEOUT) == 1


def test_no_broker_exits_non_zero(env):
    broker, start, _ = env
    broker.listener.close()
    os.unlink(broker.path)
    p = start()
    assert p.wait(timeout=TIMEOUT) == 1
