"""Per-listener limits and the rate-limited log of refused and malformed connections (issue 17,
points 5 and 6): max_connections, max_conn_rate under a burst (over-limit connections are
closed before their CONNECT is read), backlog, the counters in ctl and $SYS, and a flood of
malformed connections that writes a bounded number of log lines plus a summary."""

import re
import socket
import subprocess
import threading
import time
import uuid

import pytest

from brokers import free_port
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok
from mqttraw import CONNACK, RawClient, connect
from sidecars import short_dir


def start(factory, listener_opts, sys_interval=None, log_level="info"):
    d = short_dir()
    sock = d / "ctl.sock"
    lines = ["[[listeners]]", 'type = "tcp"', 'bind = "127.0.0.1:{port}"']
    lines += [f"{k} = {v}" for k, v in listener_opts.items()]
    extra = ""
    if sys_interval is not None:
        extra += f"\n[sys]\ninterval = {sys_interval}\n"
    b = factory(config_text=f'[log]\nlevel = "{log_level}"\n' + "\n".join(lines) + "\n" + ctl_config(sock) + extra)
    b.ctl = sock
    return b


def listener(b):
    [l] = ctl_ok(b.ctl, "listeners", json_out=True)["listeners"]
    return l


def mqtt_connect(b, timeout=5.0):
    """A raw CONNECT; the client when CONNACK 0 came back, else None (closed or no answer)."""
    try:
        c = RawClient(b, timeout=timeout)
    except OSError:
        return None
    if not c.try_send(connect(f"lim-{uuid.uuid4().hex[:8]}", version=4)):
        c.close()
        return None
    try:
        p = c.recv(timeout=timeout)
    except (TimeoutError, OSError):
        p = None
    if p is None or p.type != CONNACK or p.rc != 0:
        c.close()
        return None
    return c


def test_max_connections(broker_factory):
    b = start(broker_factory, {"max_connections": 3})
    held = [mqtt_connect(b) for _ in range(3)]
    assert all(held)
    # wait_ready's probe and the three clients: the fourth is closed as it is accepted.
    wait_for(lambda: listener(b)["connections"] == 3, msg="three connections open")
    assert mqtt_connect(b) is None
    l = listener(b)
    assert l["refused_by_reason"]["max_connections"] >= 1 and l["connections"] == 3
    text = ctl_ok(b.ctl, "listeners")
    assert re.search(r"tcp\s+127\.0\.0\.1:\d+\s+127\.0\.0\.1:\d+\s+3\s+3\s", text), text
    # One leaves, another gets in.
    held.pop().close()
    wait_for(lambda: listener(b)["connections"] == 2, msg="the closed one is gone")
    again = mqtt_connect(b)
    assert again is not None
    for c in held + [again]:
        c.close()


def test_connection_rate_limit_holds_under_a_burst(broker_factory):
    rate = 5
    b = start(broker_factory, {"max_conn_rate": rate})
    time.sleep(1.1)  # the readiness probe took a token: let the bucket fill again
    results = []
    lock = threading.Lock()
    burst = 40
    start_at = time.monotonic()

    def one():
        c = mqtt_connect(b, timeout=10)
        with lock:
            results.append(c)

    threads = [threading.Thread(target=one) for _ in range(burst)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - start_at
    accepted = [c for c in results if c]
    refused = burst - len(accepted)
    # The bucket holds one second of tokens and refills at `rate` per second.
    assert 1 <= len(accepted) <= rate + rate * elapsed + 1, (len(accepted), elapsed)
    assert refused > 0
    wait_for(lambda: listener(b)["refused_by_reason"]["max_conn_rate"] >= refused, msg="refusals counted")
    for c in accepted:
        c.close()
    b.assert_alive()


def test_refused_connection_gets_no_connack_even_with_its_connect_sent_at_once(broker_factory):
    """Over the limit the socket is closed as it is accepted: a CONNECT already in flight is
    never read (no CONNACK), and the broker does not count a client."""
    b = start(broker_factory, {"max_conn_rate": 1})
    time.sleep(1.1)
    first = mqtt_connect(b)
    assert first is not None
    s = socket.create_connection((b.host, b.port), timeout=5)
    try:
        s.sendall(connect("should-not-be-read", version=4))
    except OSError:
        pass
    try:
        data = s.recv(10)
    except OSError:
        data = b""
    s.close()
    assert data == b""
    assert "should-not-be-read" not in ctl_ok(b.ctl, "clients", "list")
    first.close()


def test_backlog_is_the_listen_queue(broker_factory):
    b = start(broker_factory, {"backlog": 37})
    out = subprocess.run(["ss", "-ltnH", f"sport = :{b.port}"], capture_output=True, text=True, check=True).stdout
    # For a listening socket ss shows the backlog as Send-Q.
    assert re.search(r"LISTEN\s+\d+\s+37\s", out), out


def test_malformed_flood_logs_bounded_lines_and_a_summary(broker_factory):
    b = start(broker_factory, {"log_limit": 2, "log_interval": 1}, sys_interval=1)
    flood = 25
    for i in range(flood):
        s = socket.create_connection((b.host, b.port), timeout=5)
        # CONNECT with a remaining length of five bytes: malformed.
        s.sendall(b"\x10\xff\xff\xff\xff\x7f")
        try:
            s.recv(10)
        except OSError:
            pass
        s.close()
    wait_for(lambda: listener(b)["malformed"] == flood, msg="every malformed connection counted")
    name = listener(b)["name"]

    def counts():
        log = b.log_text()
        written = len(re.findall(rf"listener={re.escape(name)} .*closing on invalid input", log))
        suppressed = sum(int(n) for n in re.findall(
            rf"listener={re.escape(name)} suppressed=(\d+) .*refused/malformed connection lines suppressed", log))
        return written, suppressed

    wait_for(lambda: sum(counts()) == flood, timeout=15, msg="lines written + suppressed = connections")
    written, suppressed = counts()
    assert suppressed > 0 and written <= flood - suppressed
    # At most log_limit lines per window: the windows seen so far bound what was written.
    assert listener(b)["log_suppressed"] == suppressed

    # $SYS carries the same counters.
    c = Client(b, client_id=f"sys-{uuid.uuid4().hex[:6]}", version=4)
    try:
        c.connect()
        c.subscribe(f"$SYS/brokers/+/listeners/{name}/malformed")
        c.subscribe("$SYS/brokers/+/metrics/connections/malformed")
        got = {}
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.get(timeout=5)
            got[m.topic.split("/", 3)[3]] = m.payload
        assert got[f"listeners/{name}/malformed"] == str(flood).encode()
        assert got["metrics/connections/malformed"] == str(flood).encode()
    finally:
        c.disconnect()


def test_refused_connects_are_counted_and_rate_limited(broker_factory):
    d = short_dir()
    sock = d / "ctl.sock"
    text = ('[log]\nlevel = "info"\n[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:{port}"\nlog_limit = 1\n'
            '[mqtt]\nallow_anonymous = false\n' + ctl_config(sock))
    b = broker_factory(config_text=text)
    b.ctl = sock
    for _ in range(5):
        assert mqtt_connect(b) is None  # CONNACK 5, then closed
    wait_for(lambda: listener(b)["refused_by_reason"]["connect_refused"] == 5, msg="refused CONNECTs counted")
    assert len(re.findall(r"reason=connect_refused .*connection refused", b.log_text())) == 1
