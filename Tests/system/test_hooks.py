"""Hooks: events reach the sidecars that registered them, asynchronously and batched; a
sidecar that stops reading never slows delivery; a synchronous message.publish hook may
pass, rewrite or drop a message within its budget."""

import socket
import struct
import threading
import time

import pytest

from clients import Client, wait_for
from sidecars import (PySidecar, Reader, frame, hello, ipc_str, read_frame, register, short_dir,
                      sidecar_config, unix_connect, wait_registered)


@pytest.fixture
def hook_broker(broker_factory):
    d = short_dir()
    sock = d / "sc.sock"
    b = broker_factory(extra=sidecar_config(sock, mqtt={"allow_anonymous": True}) + "hook_queue_size = 1000\n")
    return b, sock, d


def raw_sidecar(sock, name, hooks=(), budget=None):
    s = unix_connect(sock)
    s.sendall(hello(name))
    assert read_frame(s)[0] == 0x02
    s.sendall(register(hooks, budget))
    kind, _, body = read_frame(s)
    assert kind == 0x04, kind
    r = Reader(body)
    accepted = [r.str() for _ in range(r.u16())]
    return s, accepted


def test_python_sidecar_receives_client_connected(broker_factory):
    d = short_dir()
    sock = d / "sc.sock"
    b = broker_factory(extra=sidecar_config(sock, mqtt={"allow_anonymous": True}))
    sc = PySidecar(sock, d).start(b)
    c = Client(b, client_id="hooked-client", version=5)
    wait_for(lambda: "event client.connected" in sc.log() and "hooked-client" in sc.log(), msg="hook event")
    c.disconnect()
    sc.stop()


def test_all_nine_hooks_with_fields(hook_broker, uniq):
    b, sock, _ = hook_broker
    names = ["client.connected", "client.subscribe", "client.unsubscribe", "session.subscribed",
             "session.unsubscribed", "message.publish", "message.delivered", "message.acked", "client.disconnected"]
    s, accepted = raw_sidecar(sock, "hooks", names + ["no.such.hook"])
    assert sorted(accepted) == sorted(names)
    wait_registered(b, "hooks")
    c = Client(b, client_id=f"{uniq}-c", version=5)
    c.subscribe(f"{uniq}/t", qos=1)
    c.publish(f"{uniq}/t", b"payload-1", qos=1)
    assert c.get().payload == b"payload-1"
    c.unsubscribe(f"{uniq}/t")
    c.disconnect()
    seen = {}
    s.settimeout(5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(seen) < len(names):
        f = read_frame(s)
        assert f is not None
        kind, rid, body = f
        if kind == 0x05:  # PING from the broker's health check
            s.sendall(frame(0x06, rid))
            continue
        assert kind == 0x20 and rid == 0
        for hook, fields in Reader(body).events():
            seen.setdefault(hook, fields)
    assert sorted(seen) == sorted(names)
    cid = f"{uniq}-c".encode()
    assert seen["client.connected"]["client_id"] == cid
    assert seen["client.connected"]["protocol"] == b"5"
    assert seen["client.subscribe"]["topic"] == f"{uniq}/t".encode()
    assert seen["session.subscribed"]["qos"] == b"1"
    assert seen["message.publish"]["payload"] == b"payload-1"
    assert seen["message.delivered"]["from"] == cid
    assert seen["message.acked"]["packet_id"] != b""
    assert seen["client.disconnected"]["reason"] == b"normal"
    s.close()


def test_sidecar_that_never_reads_does_not_slow_delivery(hook_broker, uniq):
    b, sock, _ = hook_broker
    s, _ = raw_sidecar(sock, "stuck", ["message.publish", "message.delivered"])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    wait_registered(b, "stuck")
    sub = Client(b, version=5)
    sub.subscribe(f"{uniq}/flood", qos=0)
    pub = Client(b, version=5)
    payload = b"x" * 1000
    n = 5000
    for i in range(n):
        pub.publish(f"{uniq}/flood", payload, qos=0, wait=False)
    got = sub.collect(n, timeout=30)
    assert len(got) == n
    b.assert_alive()
    s.close()


def sync_sidecar(sock, budget_ms, stop):
    s, accepted = raw_sidecar(sock, "filter", [], budget_ms)
    assert accepted == ["message.publish"]

    def serve():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                f = read_frame(s)
            except OSError:
                return
            if f is None:
                continue
            kind, rid, body = f
            if kind == 0x05:
                s.sendall(frame(0x06, rid))
            elif kind == 0x21:
                r = Reader(body)
                r.client()
                topic, payload = r.str(), r.bytes()
                qos, retain = r.u8(), r.u8()
                if topic.endswith("/drop"):
                    s.sendall(frame(0x22, rid, b"\x02"))
                elif topic.endswith("/rewrite"):
                    body = (b"\x01" + ipc_str(topic) + struct.pack(">I", 9) + b"rewritten" + bytes([qos, retain])
                            + struct.pack(">H", 1) + ipc_str("by") + struct.pack(">I", 6) + b"filter")
                    s.sendall(frame(0x22, rid, body))
                elif topic.endswith("/slow"):
                    pass  # never answers: the budget passes, the message goes on unchanged
                else:
                    s.sendall(frame(0x22, rid, b"\x00"))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s


def test_sync_publish_hook_passes_rewrites_drops(hook_broker, uniq):
    b, sock, _ = hook_broker
    stop = threading.Event()
    s = sync_sidecar(sock, 300, stop)
    wait_registered(b, "filter")
    sub = Client(b, version=5)
    sub.subscribe(f"{uniq}/#", qos=1)
    pub = Client(b, version=5)
    for t in ("pass", "rewrite", "drop", "slow"):
        pub.publish(f"{uniq}/{t}", t.encode(), qos=1)
    got = {m.topic: m for m in sub.drain(1.5)}
    stop.set()
    s.close()
    assert got[f"{uniq}/pass"].payload == b"pass"
    assert got[f"{uniq}/rewrite"].payload == b"rewritten"
    assert ("by", "filter") in (got[f"{uniq}/rewrite"].prop("UserProperty") or [])
    assert f"{uniq}/drop" not in got
    assert got[f"{uniq}/slow"].payload == b"slow"
    # Order is kept per publisher even though each message waited for the filter.
    assert [t.split("/")[-1] for t in got] == ["pass", "rewrite", "slow"]
