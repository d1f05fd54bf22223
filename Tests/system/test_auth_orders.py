"""A sidecar's authn and authz orders are independent (Protocol/SPEC.md 3.1), and `cache stats`
counts requests and cache hits per provider.

A raw sidecar written here from the spec registers authn at order 2000 (after the built-in
store at 1000) and authz at order 10 (before it). CONNECT is therefore decided by the built-in
users first, ACL by the sidecar first: both orders are visible in what clients get, not only
in listings."""

import base64
import hashlib
import os
import socket
import struct
import threading

import pytest

import mqttraw as m
from brokers import toml_value
from clients import wait_for
from ctl import ctl_config, ctl_ok
from sidecars import Reader, frame, hello, ipc_str, read_frame, short_dir, sidecar_config, unix_connect, wait_registered

AUTHN, AUTHZ = 0x10, 0x12


def pbkdf2_sha512(password, rounds=10_000):
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds, 64)
    return f"pbkdf2-sha512${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


class OrderedSidecar:
    """Allows every CONNECT it is asked about; denies publishing under sc/deny/, ignores the rest.
    Records which questions reached it."""

    def __init__(self, sock_path, name="ordered", authn_order=2000, authz_order=10):
        self.name = name
        self.asked = []
        self.s = unix_connect(sock_path)
        self.s.sendall(hello(name))
        kind, _, _ = read_frame(self.s)
        assert kind == 0x02, "WELCOME"
        caps = b"\x01" + struct.pack(">H", authn_order) + b"\x02" + struct.pack(">H", authz_order)
        self.s.sendall(frame(0x03, 2, struct.pack(">H", 2) + caps))
        kind, rid, _ = read_frame(self.s)
        assert (kind, rid) == (0x04, 2), "REGISTERED"
        self.s.settimeout(None)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            f = read_frame(self.s)
            if f is None:
                return
            kind, rid, body = f
            r = Reader(body)
            if kind == 0x05:  # PING
                self.s.sendall(frame(0x06, rid))
            elif kind == AUTHN:
                client = r.client()
                self.asked.append(("authn", client["username"]))
                self.s.sendall(frame(0x11, rid, b"\x00\x00" + struct.pack(">I", 60_000) + ipc_str("")))
            elif kind == AUTHZ:
                client, access, topic = r.client(), r.u8(), r.str()
                self.asked.append(("authz", topic))
                decision = 1 if access == 2 and topic.startswith("sc/deny/") else 2
                self.s.sendall(frame(0x13, rid, bytes([decision]) + struct.pack(">I", 60_000) + ipc_str("")))

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


@pytest.fixture
def env(broker_factory):
    d = short_dir()
    users = d / "users.toml"
    users.write_text(f"[users.ord]\npassword = {toml_value(pbkdf2_sha512('builtin-pw'))}\n")
    extra = f"\n[auth]\nusers_file = {toml_value(str(users))}\n" + ctl_config(d / "ctl.sock")
    b = broker_factory(extra=sidecar_config(d / "sc.sock", extra=extra))
    sc = OrderedSidecar(d / "sc.sock")
    wait_registered(b, "ordered")
    yield b, sc, d / "ctl.sock"
    sc.close()


def test_authn_follows_the_authn_order(env):
    b, sc, _ = env
    # The built-in store (order 1000) knows "ord" and decides before the sidecar (2000).
    with m.connected(b, version=5, client_id="o1", username="ord", password=b"builtin-pw"):
        pass
    with m.RawClient(b, version=5) as r:
        r.connect("o2", expect_rc=0x86, username="ord", password=b"sidecar-would-allow")
    assert ("authn", "ord") not in sc.asked
    # A user the built-in store does not know passes on to the sidecar.
    with m.connected(b, version=5, client_id="o3", username="stranger", password=b"x"):
        pass
    assert ("authn", "stranger") in sc.asked


def test_authz_follows_the_authz_order(env, uniq):
    b, sc, _ = env
    with m.connected(b, version=5, client_id="o4", username="ord", password=b"builtin-pw") as r:
        # The built-in default rules allow everything for a local client, but the sidecar
        # (order 10) is asked first and denies.
        assert r.publish(f"sc/deny/{uniq}", b"x", qos=1, pid=1).rc == 0x87
        assert r.publish(f"sc/ok/{uniq}", b"x", qos=1, pid=2).rc in (0, 0x10)  # 0x10: no subscribers
    assert ("authz", f"sc/deny/{uniq}") in sc.asked
    assert ("authz", f"sc/ok/{uniq}") in sc.asked, "ignored by the sidecar, then allowed by the built-in rules"


def test_cache_stats_per_provider(env, uniq):
    b, sc, ctl = env
    with m.connected(b, version=5, client_id="o5", username="ord", password=b"builtin-pw") as r:
        for pid in range(1, 4):
            assert r.publish(f"sc/deny/{uniq}", b"x", qos=1, pid=pid).rc == 0x87
    for _ in range(2):  # the same CONNECT twice: the second comes from the shared cache
        with m.connected(b, version=5, client_id="o6", username="stranger", password=b"x"):
            pass
    assert sc.asked.count(("authz", f"sc/deny/{uniq}")) == 1
    assert sc.asked.count(("authn", "stranger")) == 1

    j = ctl_ok(ctl, "cache", "stats", json_out=True)
    p = {x["name"]: x for x in j["providers"]}
    o = p["ordered"]
    assert (o["authn_order"], o["authz_order"]) == (2000, 10)
    assert o["connection_cache_hits"] == 2, o
    assert o["shared_cache_hits"] == 1, o
    assert o["cache_hits"] == 3 and o["requests"] >= 2, o
    assert p["builtin"]["requests"] >= 1
    text = ctl_ok(ctl, "cache", "stats")
    assert "AUTHN ORDER" in text and "CACHE HITS" in text
    row = next(line for line in text.splitlines() if line.startswith("ordered"))
    assert row.split()[1:3] == ["2000", "10"], row
