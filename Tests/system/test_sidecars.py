"""Sidecars end to end: the Python reference sidecar (written from Protocol/SPEC.md alone)
authenticates and authorizes real MQTT clients through the broker's chain and cache; hostile
frames cost only their own connection."""

import os
import signal
import socket
import struct
import subprocess
import time

import pytest

import mqttraw as m
from clients import Client, wait_for
from sidecars import (GOLDEN, PySidecar, frame, golden, hello, read_frame, registrations, short_dir,
                      sidecar_config, unix_connect, wait_closed, wait_registered)


@pytest.fixture
def env(broker_factory):
    d = short_dir()
    sock = d / "sc.sock"
    b = broker_factory(extra=sidecar_config(sock))
    sc = PySidecar(sock, d).start(b)
    yield b, sc, sock, d
    sc.stop()


def v3(b, user, pw, rc=0, cid=None):
    if rc:
        # paho reports 3.1.1 return codes as 5.0 reason codes: check the wire bytes instead.
        with m.RawClient(b, version=4) as r:
            r.connect(cid or "v3-refused", expect_rc=rc, username=user,
                      password=None if pw is None else pw.encode())
        return None
    return Client(b, version=4, username=user, password=pw, expect_rc=rc, client_id=cid)


def v5(b, user, pw, rc=0, cid=None):
    return Client(b, version=5, username=user, password=pw, expect_rc=rc, client_id=cid)


def test_python_sidecar_authenticates(env):
    b, sc, _, _ = env
    v3(b, "alice", "secret").disconnect()
    v5(b, "alice", "secret").disconnect()
    v3(b, "alice", "wrong", rc=4)
    v5(b, "alice", "wrong", rc=0x86)
    # Unknown to the sidecar (ignore) and to the built-in store: refused.
    v3(b, "mallory", "x", rc=4)
    v5(b, "mallory", "x", rc=0x86)
    # No credentials at all, anonymous access off: not authorized.
    v3(b, None, None, rc=5)
    Client(b, version=5, expect_rc=0x87)


def test_python_sidecar_authorizes_publish_and_subscribe(env, uniq):
    b, _, _, _ = env
    c = v5(b, "alice", "secret")
    assert c.subscribe(f"a/{uniq}/#", qos=1) == [1]
    assert c.subscribe(f"b/{uniq}/#", qos=1) == [0x87]
    c.publish(f"a/{uniq}/x", b"ok", qos=1)
    assert c.get().payload == b"ok"
    # v5: a denied QoS 1 PUBLISH gets PUBACK 0x87; nothing is delivered.
    with m.connected(b, version=5, username="alice", password=b"secret") as raw:
        raw.subscribe([(f"#", 0)], pid=2)  # denied, but keeps the connection
        ack = raw.publish(f"b/{uniq}/x", b"no", qos=1, pid=7)
        assert ack.rc == 0x87
    c.expect_none(0.5)
    # v3: SUBACK 0x80 for the denied filter; a denied PUBLISH is acknowledged and dropped.
    c3 = v3(b, "alice", "secret")
    assert c3.subscribe(f"b/{uniq}/#", qos=1) == [0x80]
    assert c3.subscribe(f"a/{uniq}/#", qos=1) == [1]
    with m.connected(b, version=4, username="alice", password=b"secret") as raw:
        ack = raw.publish(f"b/{uniq}/y", b"no", qos=1, pid=3)
        assert ack.type == m.PUBACK
    c3.expect_none(0.5)


def test_superuser_bypasses_acl(env, uniq):
    b, _, _, _ = env
    su = v5(b, "admin", "root")
    assert su.subscribe(f"b/{uniq}/#", qos=1) == [1]
    su.publish(f"b/{uniq}/x", b"su", qos=1)
    assert su.get().payload == b"su"


def test_cache_second_connect_does_not_reach_sidecar(env):
    b, sc, _, _ = env
    v5(b, "dave", "d4ve", cid="dave-1").disconnect()
    v5(b, "dave", "d4ve", cid="dave-1").disconnect()
    time.sleep(0.3)
    assert sc.authn_count("dave") == 1, sc.log()


def test_concurrent_identical_lookups_reach_sidecar_once(env):
    b, sc, _, _ = env
    raws = [m.RawClient(b, version=4) for _ in range(100)]
    pkt = m.connect("same-id-and-user", version=4, username="carol", password=b"c4rol")
    for r in raws:
        r.send(pkt)
    acks = [r.expect(m.CONNACK) for r in raws]
    # Takeovers may close earlier ones, but every CONNECT was accepted.
    assert all(a.rc == 0 for a in acks)
    for r in raws:
        r.close()
    assert sc.authn_count("carol") == 1, sc.log()


def test_invalidate_from_sidecar_takes_effect(env):
    b, sc, _, _ = env
    v5(b, "alice", "secret", cid="inv").disconnect()
    v5(b, "alice", "secret", cid="inv").disconnect()
    assert sc.authn_count("alice") == 1
    # SIGHUP: the sidecar reloads its users file and sends INVALIDATE (all).
    sc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "cache invalidated by sidecar" in b.log_text(), msg="INVALIDATE logged")
    v5(b, "alice", "secret", cid="inv").disconnect()
    wait_for(lambda: sc.authn_count("alice") == 2, msg="second lookup reached the sidecar")


def test_sidecar_down_cached_clients_served_others_fallback(env):
    b, sc, sock, d = env
    v5(b, "alice", "secret", cid="cached").disconnect()
    sc.kill()
    wait_for(lambda: "sidecar disconnected" in b.log_text(), msg="broker saw the sidecar go")
    # Cached: still accepted. Never seen: the fallback (deny).
    v5(b, "alice", "secret", cid="cached").disconnect()
    v5(b, "carol", "c4rol", cid="new", rc=0x86)
    # Back: new clients get in.
    sc2 = PySidecar(sock, d).start()
    wait_registered(b, "py", count=2)
    v5(b, "carol", "c4rol", cid="new").disconnect()
    sc2.stop()
    b.assert_alive()


def test_sidecar_restart_drops_cached_answers(env):
    b, sc, sock, d = env
    v5(b, "alice", "secret", cid="r").disconnect()
    sc.kill()
    sc2 = PySidecar(sock, d, name="py").start()
    wait_registered(b, "py", count=2)
    v5(b, "alice", "secret", cid="r").disconnect()
    wait_for(lambda: sc2.authn_count("alice") == 2, msg="lookup after restart reached the sidecar")
    sc2.stop()


@pytest.mark.parametrize("name", sorted(p.name for p in (GOLDEN / "hostile").glob("*.hex")))
def test_hostile_frames_close_only_that_connection(env, name):
    b, _, sock, _ = env
    c = v5(b, "alice", "secret")
    s = unix_connect(sock)
    data = golden(f"hostile/{name}")
    if name not in ("length_too_large.hex", "length_too_small.hex", "truncated.hex"):
        # Frames that need a handshake first.
        s.sendall(hello("hostile"))
        assert read_frame(s)[0] == 0x02  # WELCOME
    s.sendall(data)
    if name == "truncated.hex":
        s.shutdown(socket.SHUT_WR)
    assert wait_closed(s), f"broker kept the connection open after {name}"
    s.close()
    wait_for(lambda: "protocol violation" in b.log_text(), msg="violation logged")
    b.assert_alive()
    c.publish("a/hostile", b"still", qos=1)
    v5(b, "alice", "secret").disconnect()


def test_garbage_after_handshake_and_unknown_reply_id(env):
    b, _, sock, _ = env
    s = unix_connect(sock)
    s.sendall(hello("garbage"))
    assert read_frame(s)[0] == 0x02
    s.sendall(os.urandom(64) + b"\xff" * 8)
    assert wait_closed(s)
    s2 = unix_connect(sock)
    s2.sendall(hello("badreply"))
    assert read_frame(s2)[0] == 0x02
    s2.sendall(frame(0x11, 99999, b"\x00\x00\x00\x00\x00\x00\x00\x00"))  # AUTHN_REPLY nobody asked for
    assert wait_closed(s2)
    b.assert_alive()
    v5(b, "alice", "secret").disconnect()


def test_request_flood_closes_connection(env):
    b, _, sock, _ = env
    s = unix_connect(sock)
    s.sendall(hello("flood"))
    assert read_frame(s)[0] == 0x02
    s.sendall(frame(0x03, 2, struct.pack(">H", 0)))  # REGISTER nothing
    assert read_frame(s)[0] == 0x04
    s.sendall(b"".join(frame(0x05, 10 + i) for i in range(5000)))
    assert wait_closed(s, timeout=10)
    wait_for(lambda: "flood" in b.log_text(), msg="flood logged")
    b.assert_alive()
    v5(b, "alice", "secret").disconnect()


def test_no_hello_within_handshake_timeout(broker_factory):
    d = short_dir()
    sock = d / "sc.sock"
    b = broker_factory(extra=sidecar_config(sock) + "handshake_timeout = 0.5\n")
    s = unix_connect(sock)
    assert wait_closed(s, timeout=5)
    assert "no HELLO within the handshake timeout" in b.log_text()


def test_socket_mode_0600_refuses_other_users(env):
    b, _, sock, _ = env
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another user")
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
            "try:\n s.connect(sys.argv[1]); print('connected')\nexcept PermissionError: print('refused')\n")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", code, str(sock)],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "refused", out


def test_unhealthy_sidecar_is_disconnected(env):
    """A sidecar that stops answering (SIGSTOP) is closed after the health timeout."""
    b, sc, _, _ = env
    sc.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: "no PONG within the health timeout" in b.log_text(), timeout=10, msg="health timeout")
    finally:
        sc.proc.send_signal(signal.SIGCONT)
    b.assert_alive()


def test_fallback_answer_is_not_kept_by_the_connection(env, uniq):
    """A publish denied by the fallback while the sidecar was down is asked again once it is back."""
    b, sc, sock, d = env
    with m.connected(b, version=5, username="alice", password=b"secret") as raw:
        sc.kill()
        wait_for(lambda: "sidecar disconnected" in b.log_text(), msg="sidecar gone")
        assert raw.publish(f"a/{uniq}/x", b"1", qos=1, pid=1).rc == 0x87
        sc2 = PySidecar(sock, d).start()
        wait_registered(b, "py", count=2)
        assert raw.publish(f"a/{uniq}/x", b"2", qos=1, pid=2).rc in (0, 0x10)
        sc2.stop()
