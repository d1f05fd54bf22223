"""`swiftlet-ctl recon` (issue 18 point 1) against a running broker under load: memory by
component, allocated, node_stats, bin_leak and the sidecars' /proc figures, each checked
against what the test put into the broker."""

import os
import threading
import time

import pytest

from clients import Client, wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from mqttraw import RawClient
from test_plugins import start_with_template
from sidecars import short_dir, wait_registered

MiB = 1 << 20


class Load:
    """A publisher at ~200 msg/s to a subscriber, until stopped."""

    def __init__(self, b):
        self.sub = Client(b, version=5, username="alice", password="secret")
        self.sub.subscribe("load/#", qos=0)
        self.pub = Client(b, version=5, username="alice", password="secret")
        self.flag = threading.Event()
        self.sent = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.flag.is_set():
            self.pub.publish(f"load/{self.sent % 10}", b"x" * 100, qos=0, wait=False)
            self.sent += 1
            time.sleep(0.005)

    def stop(self):
        self.flag.set()
        self.t.join(5)
        self.pub.disconnect()
        self.sub.disconnect()


@pytest.fixture
def loaded(broker_factory):
    b, ctl, _ = start_with_template(broker_factory)
    wait_registered(b, "template")
    # 100 retained messages of 1,000 bytes.
    c = Client(b, version=5, username="alice", password="secret")
    for i in range(100):
        c.publish(f"retained/{i}", b"r" * 1000, qos=1, retain=True)
    # An offline persistent session holding 50 queued messages of 1,000 bytes.
    off = RawClient(b, version=4)
    off.connect("offline-holder", clean=False, username="alice", password=b"secret")
    off.subscribe("queued/#", qos=1)
    off.close()
    wait_for(lambda: any(r["clientid"] == "offline-holder" and not r["connected"]
                         for r in ctl_ok(ctl, "sessions", "list", json_out=True)), msg="session offline")
    for i in range(50):
        c.publish(f"queued/{i}", b"q" * 1000, qos=1)
    c.disconnect()
    # A client whose receive buffer grew with 60 KB packets, then idles.
    big = RawClient(b, version=4)
    big.connect("big-reader", username="alice", password=b"secret")
    for i in range(8):
        big.publish("big/x", os.urandom(60_000), qos=1, pid=i + 1)
    load = Load(b)
    yield b, ctl, big
    load.stop()
    big.close()


def test_recon_memory_by_component(loaded):
    b, ctl, _ = loaded
    m = ctl_ok(ctl, "recon", "memory", json_out=True)
    assert 4 * MiB < m["rss_bytes"] < 8 << 30
    assert 0 < m["heap_in_use_bytes"] and m["heap_free_bytes"] >= 0
    comp = m["components"]
    assert set(comp) == {"sessions_bytes", "queues_bytes", "retained_bytes", "receive_buffers_bytes",
                         "auth_cache_bytes", "sidecar_links_bytes"}
    assert comp["retained_bytes"] >= 100 * 1000          # the 100 retained payloads at least
    assert comp["queues_bytes"] >= 50 * 1000             # the offline session's queue at least
    assert comp["sessions_bytes"] > 0 and comp["receive_buffers_bytes"] > 0
    assert comp["auth_cache_bytes"] > 0                  # the template answered CONNECTs, cached
    assert comp["sidecar_links_bytes"] > 0               # the template is connected
    assert sum(comp.values()) < m["rss_bytes"]
    assert m["counts"]["queued_messages"] >= 50 and m["counts"]["retained"] >= 100
    text = ctl_ok(ctl, "recon", "memory")
    assert "retained" in text and "heap_in_use" in text


def test_recon_allocated_current_and_peak(loaded):
    _, ctl, _ = loaded
    a = ctl_ok(ctl, "recon", "allocated", json_out=True)
    assert a["peak"]["rss_bytes"] >= a["current"]["rss_bytes"] > 4 * MiB
    assert a["current"]["heap_in_use_bytes"] > 0
    assert a["peak"]["vm_bytes"] >= a["current"]["vm_bytes"]


def test_recon_node_stats_samples_the_load(loaded):
    b, ctl, _ = loaded
    cores = os.cpu_count()
    s = ctl_ok(ctl, "recon", "node_stats", "3", "0.5", json_out=True)["samples"]
    assert len(s) == 3
    for row in s:
        assert row["connections"] >= 3                   # publisher, subscriber, big-reader
        assert row["messages_in"] > 0 and row["messages_out"] > 0
        assert 0 < row["messages_in_per_second"] < 100_000
        assert 0 < row["cpu_percent"] <= 100 * cores + 50
        assert len(row["loops"]) >= 1
        for loop in row["loops"]:
            assert 0 <= loop["busy_fraction"] <= 1 and loop["queue_depth"] >= 0 and loop["task_wait_ms"] >= 0
    assert "sample(s)" in ctl_ok(ctl, "recon", "node_stats", "1", "0.1")
    for bad in (["0"], ["61"], ["2", "0.01"], ["x"], ["2", "30"]):
        r = run_ctl(ctl, "recon", "node_stats", *bad)
        assert r.rc == 2, (bad, r)


def test_recon_bin_leak_trims_a_grown_receive_buffer(loaded):
    b, ctl, big = loaded
    before = ctl_ok(ctl, "recon", "memory", json_out=True)["components"]["receive_buffers_bytes"]
    r = ctl_ok(ctl, "recon", "bin_leak", json_out=True)
    assert r["receive_buffers_trimmed"] >= 1              # big-reader's 64 KiB buffer
    assert r["rss_after_bytes"] > 4 * MiB and r["rss_released_bytes"] >= 0
    after = ctl_ok(ctl, "recon", "memory", json_out=True)["components"]["receive_buffers_bytes"]
    assert after < before
    # The connection still works with its smaller buffer.
    assert big.publish("big/x", os.urandom(60_000), qos=1, pid=99).rc in (0, None)
    b.assert_alive()


def test_recon_sidecars_from_proc(loaded):
    _, ctl, _ = loaded
    rows = ctl_ok(ctl, "recon", "sidecars", json_out=True)
    t = [r for r in rows if r["name"] == "template"]
    assert t, rows
    pid = [p for p in ctl_ok(ctl, "plugins", "list", json_out=True) if p["name"] == "template"][0]["pid"]
    assert t[0]["pid"] == pid and t[0]["kind"] == "managed"
    assert 1 * MiB < t[0]["rss_bytes"] < 4 << 30
    assert t[0]["open_files"] >= 3 and t[0]["cpu_seconds"] >= 0


def test_recon_usage(loaded):
    _, ctl, _ = loaded
    for args in (["recon"], ["recon", "bogus"], ["recon", "memory", "extra"]):
        r = run_ctl(ctl, *args)
        assert r.rc == 1 and "recon memory" in r.err, r


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


def test_malloc_thread_cache_off_in_the_broker_and_as_it_was_in_sidecars(loaded):
    """The broker re-executes itself with glibc's per-thread malloc cache off (decision 0010);
    its sidecars get the environment's GLIBC_TUNABLES as it was."""
    b, ctl, _ = loaded
    env = environ(b.proc.pid)
    # /proc shows the variable up to its first ':' (glibc cuts it there); ours comes first.
    assert env[b"GLIBC_TUNABLES"].split(b":")[0] == b"glibc.malloc.tcache_count=0", env.get(b"GLIBC_TUNABLES")
    assert ctl_ok(ctl, "recon", "memory", json_out=True)["malloc_thread_cache"] == "off"
    assert "malloc_thread_cache: off" in ctl_ok(ctl, "recon", "memory")
    pid = [p for p in ctl_ok(ctl, "plugins", "list", json_out=True) if p["name"] == "template"][0]["pid"]
    side = environ(pid)
    # /proc shows a GLIBC_TUNABLES up to its first ':' once glibc has read it.
    cut = lambda v: v.split(b":")[0] if v is not None else None
    assert cut(side.get(b"GLIBC_TUNABLES")) == cut(os.environb.get(b"GLIBC_TUNABLES"))
    assert b"SWIFTLET_GLIBC_TUNABLES_BEFORE" not in side


@pytest.mark.parametrize("env", [{"SWIFTLET_MALLOC_TCACHE": "on"},
                                 {"SWIFTLET_MALLOC_TCACHE": "1"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"},
                                 # Already re-executed (the marker is set): never a second time.
                                 {"SWIFTLET_GLIBC_TUNABLES_BEFORE": ""}])
def test_malloc_thread_cache_left_as_the_operator_set_it(broker_factory, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    b = broker_factory()
    got = environ(b.proc.pid)
    expected = os.environ.get("GLIBC_TUNABLES")
    assert got.get(b"GLIBC_TUNABLES") == (expected.encode() if expected is not None else None)
    assert got.get(b"SWIFTLET_GLIBC_TUNABLES_BEFORE") == (b"" if "SWIFTLET_GLIBC_TUNABLES_BEFORE" in env else None)
    c = Client(b, version=5)
    c.subscribe("t", qos=1)
    c.publish("t", b"x", qos=1)
    assert c.get().payload == b"x"
    c.disconnect()


def test_malloc_thread_cache_off_unless_the_operator_says_on(broker_factory, monkeypatch):
    monkeypatch.setenv("SWIFTLET_MALLOC_TCACHE", "off")
    b = broker_factory()
    assert environ(b.proc.pid)[b"GLIBC_TUNABLES"].startswith(b"glibc.malloc.tcache_count=0")


def test_malloc_thread_cache_off_keeps_the_operators_other_tunables(broker_factory, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    d = short_dir()
    b = broker_factory(extra=ctl_config(d / "ctl.sock"))
    got = environ(b.proc.pid)
    # /proc shows the variable up to its first ':' (glibc cuts it there; getenv sees it all).
    assert got[b"GLIBC_TUNABLES"].startswith(b"glibc.malloc.tcache_count=0")
    assert got[b"SWIFTLET_GLIBC_TUNABLES_BEFORE"] == b"glibc.malloc.arena_max=4"
    assert ctl_ok(d / "ctl.sock", "recon", "memory", json_out=True)["malloc_thread_cache"] == "off"
