#!/usr/bin/env python3
"""Gateway benchmarks (scripts/bench-gateways): STOMP one-to-one through swiftlet-gateways
next to RabbitMQ's STOMP plugin in the same run, and MQTT-SN QoS 0 / QoS 1 next to the same
load over native MQTT (the gateway's overhead as a ratio). Loopback only, bounded in time;
every server is started here on free ports and stopped at the end. Writes the "Gateways"
section of docs/benchmarks.md (between the gateway markers)."""

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- gateways:begin -->", "<!-- gateways:end -->"


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n, low=None):
    """n distinct free TCP ports (held open together while chosen); from `low` upwards (below
    the ephemeral range, which RabbitMQ's distribution port check trips on) when given."""
    socks = []
    candidate = low
    while len(socks) < n:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", candidate or 0))
        except OSError:
            s.close()
            candidate += 1
            continue
        if candidate:
            candidate += 1
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing on port {port}")


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


# -- servers ---------------------------------------------------------------------------------

class Swiftlet:
    def __init__(self, work, release):
        self.work = work
        self.mqtt, self.stomp, sockjs = free_ports(3)
        self.sn = free_port(socket.SOCK_DGRAM)
        sock = work / "sc.sock"
        (work / "broker.toml").write_text(f"""
[log]
level = "warning"
[[listeners]]
type = "tcp"
bind = "127.0.0.1:{self.mqtt}"
[mqtt]
allow_anonymous = true
[sidecars]
socket = "{sock}"
""")
        gw = (ROOT / "etc/plugins/gateways.toml").read_text()
        for old, new in {"listener = 61613 ": f'listener = "127.0.0.1:{self.stomp}" ',
                         "listener = 1884 ": f'listener = "127.0.0.1:{self.sn}" ',
                         "listener = 61616 ": f'listener = "127.0.0.1:{sockjs}" ',
                         "rate_limit = 200 ": "rate_limit = 1000000 ",
                         "max_queued = 128 ": "max_queued = 100000 "}.items():
            assert old in gw, old
            gw = gw.replace(old, new)
        (work / "gateways.toml").write_text(gw)
        self.broker = subprocess.Popen([str(release / "swiftlet"), "--config", str(work / "broker.toml")], cwd=work,
                                       stdout=open(work / "broker.log", "w"), stderr=subprocess.STDOUT)
        wait_port(self.mqtt)
        self.gateway = subprocess.Popen([str(release / "swiftlet-gateways"), "--socket", str(sock), "--config",
                                         str(work / "gateways.toml"), "--log-level", "warning"],
                                        stdout=open(work / "gateways.log", "w"), stderr=subprocess.STDOUT)
        wait_port(self.stomp)
        time.sleep(1.0)  # registered with the broker

    @property
    def pids(self):
        return [self.broker.pid, self.gateway.pid]

    def stop(self):
        for p in (self.gateway, self.broker):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def beam_running():
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "comm").read_text().startswith("beam"):
                return True
        except OSError:
            pass
    return False


class RabbitMQ:
    """rabbitmq-server (Debian) with rabbitmq_stomp, a node of its own on loopback ports."""

    def __init__(self, work):
        self.work = work
        self.stomp, amqp, dist = free_ports(3, low=20000 + os.getpid() % 5000)
        (work / "enabled_plugins").write_text("[rabbitmq_stomp].\n")
        (work / "rabbitmq.conf").write_text(f"""listeners.tcp.1 = 127.0.0.1:{amqp}
stomp.listeners.tcp.1 = 127.0.0.1:{self.stomp}
loopback_users = none
stomp.default_user = guest
stomp.default_pass = guest
log.console.level = warning
""")
        env = {**os.environ, "HOME": str(work), "ERL_EPMD_ADDRESS": "127.0.0.1",
               "RABBITMQ_NODENAME": f"gwbench{os.getpid()}@localhost", "RABBITMQ_DIST_PORT": str(dist),
               "RABBITMQ_MNESIA_BASE": str(work / "mnesia"), "RABBITMQ_LOG_BASE": str(work / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
               "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq.conf")}
        self.proc = subprocess.Popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], cwd=work, env=env,
                                     stdout=open(work / "rabbitmq.log", "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_port(self.stomp, timeout=90)
        self.version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True,
                                      text=True).stdout

    @property
    def pids(self):
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if str(self.work) in (p / "cmdline").read_bytes().decode(errors="replace"):
                        out.append(int(p.name))
                except OSError:
                    pass
        return out

    def stop(self):
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, 9)
        # The Erlang port mapper it started stays behind; stop it when no other node uses it.
        if shutil.which("epmd") and not beam_running():
            subprocess.run(["epmd", "-kill"], capture_output=True)


# -- STOMP -----------------------------------------------------------------------------------

def stomp_frame(command, headers, body=b""):
    return (command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers) + "\n").encode() + body + b"\x00"


def stomp_connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(stomp_frame("CONNECT", [("accept-version", "1.2"), ("host", "/"), ("login", "guest"), ("passcode", "guest")]))
    data = b""
    while b"\x00" not in data:
        data += s.recv(4096)
    assert data.startswith(b"CONNECTED"), data
    return s


def stomp_one_to_one(port, duration, size=64, batch=500):
    """A publisher sending batches of `batch` SENDs (the last with a receipt, awaited before
    the next batch) to one subscriber; returns delivered msg/s over the measured window."""
    dest = "/topic/bench"
    sub = stomp_connect(port)
    sub.sendall(stomp_frame("SUBSCRIBE", [("id", "1"), ("destination", dest), ("ack", "auto"), ("receipt", "s")]))
    data = b""
    while b"RECEIPT" not in data:
        data += sub.recv(4096)
    received = [0]
    stop = threading.Event()

    def count():
        sub.settimeout(0.5)
        while not stop.is_set():
            try:
                chunk = sub.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            received[0] += chunk.count(b"\x00")
    t = threading.Thread(target=count, daemon=True)
    t.start()
    pub = stomp_connect(port)
    body = b"x" * size
    plain = stomp_frame("SEND", [("destination", dest)], body) * (batch - 1)
    sent = 0
    end_warm = time.monotonic() + 1.0
    start_count = None
    deadline = end_warm + duration
    n = 0
    buf = b""
    while time.monotonic() < deadline:
        if start_count is None and time.monotonic() >= end_warm:
            start_count = (received[0], time.monotonic())
        n += 1
        pub.sendall(plain + stomp_frame("SEND", [("destination", dest), ("receipt", f"b{n}")], body))
        sent += batch
        while f"receipt-id:b{n}".encode() not in buf:
            buf += pub.recv(65536)
            if len(buf) > 1 << 16:
                buf = buf[-256:]
    got, t0 = received[0] - start_count[0], start_count[1]
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    stop.set()
    pub.close()
    sub.close()
    return got / elapsed, sent, received[0]


# -- MQTT and MQTT-SN ------------------------------------------------------------------------

def mqtt_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def mqtt_packet(first, body):
    n, rl = len(body), b""
    while True:
        d, n = n % 128, n // 128
        rl += bytes([d | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + rl + body


def mqtt_connect(port, cid):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mqtt_packet(0x10, mqtt_str("MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + mqtt_str(cid)))
    assert s.recv(4)[0] == 0x20
    return s


class MQTTReader:
    """Reads MQTT packets from a socket: (type, body)."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def packet(self):
        while True:
            if len(self.buf) >= 2:
                mult, rl, i = 1, 0, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    rl += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + rl:
                    p = (self.buf[0], self.buf[i:i + rl])
                    self.buf = self.buf[i + rl:]
                    return p
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk


def latency_subscriber(port, topic, stop, out):
    """A native MQTT QoS 0 subscriber recording (receive time - send time in the payload)."""
    s = mqtt_connect(port, f"lat-{os.getpid()}-{topic.replace('/', '-')}")
    s.sendall(mqtt_packet(0x82, struct.pack(">H", 1) + mqtt_str(topic) + b"\x00"))
    r = MQTTReader(s)
    assert r.packet()[0] >> 4 == 9
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            first, body = r.packet()
        except socket.timeout:
            continue
        except EOFError:
            return
        if first >> 4 == 3:
            tl = struct.unpack(">H", body[:2])[0]
            payload = body[2 + tl + (2 if first & 0x06 else 0):]
            out.append(time.monotonic() - struct.unpack(">d", payload[:8])[0])


def sn_dgram(t, body):
    return bytes([len(body) + 2, t]) + body


class SNPublisher:
    def __init__(self, port, cid, topic):
        self.addr = ("127.0.0.1", port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(5)
        self.s.sendto(sn_dgram(0x04, bytes([0x04, 1]) + struct.pack(">H", 60) + cid.encode()), self.addr)
        assert self.s.recv(100)[1] == 0x05
        self.s.sendto(sn_dgram(0x0A, struct.pack(">HH", 0, 1) + topic.encode()), self.addr)
        m = self.s.recv(100)
        self.tid = struct.unpack(">H", m[2:4])[0]
        self.mid = 1

    def publish(self, payload, qos):
        self.mid = self.mid % 65535 + 1
        self.s.sendto(sn_dgram(0x0C, bytes([qos << 5]) + struct.pack(">HH", self.tid, self.mid if qos else 0) + payload),
                      self.addr)
        if qos:
            while True:
                m = self.s.recv(100)
                if m[1] == 0x0D:
                    return


class MQTTPublisher:
    def __init__(self, port, cid, topic):
        self.s = mqtt_connect(port, cid)
        self.r = MQTTReader(self.s)
        self.topic = mqtt_str(topic)
        self.pid = 0

    def publish(self, payload, qos):
        if not qos:
            self.s.sendall(mqtt_packet(0x30, self.topic + payload))
            return
        self.pid = self.pid % 65535 + 1
        self.s.sendall(mqtt_packet(0x32, self.topic + struct.pack(">H", self.pid) + payload))
        while self.r.packet()[0] >> 4 != 4:
            pass


def paced_run(sw, kind, qos, rate, duration, size=64):
    """`kind` publisher ("mqtt-sn" through the gateway, or "mqtt" direct) at `rate` msg/s
    (QoS 0) or stop-and-wait (QoS 1, rate ignored) for `duration` s, to one native MQTT
    subscriber: (delivered msg/s, lost, p50 ms, p99 ms, server CPU s per 1,000 msgs)."""
    topic = f"bench/{kind}/{qos}"
    stop, lat = threading.Event(), []
    t = threading.Thread(target=latency_subscriber, args=(sw.mqtt, topic, stop, lat), daemon=True)
    t.start()
    time.sleep(0.5)
    pub = (SNPublisher(sw.sn, f"snpub-{qos}", topic) if kind == "mqtt-sn"
           else MQTTPublisher(sw.mqtt, f"mqpub-{qos}", topic))
    pad = b"p" * max(0, size - 8)
    cpu0 = cpu_seconds(sw.pids)
    t0 = time.monotonic()
    sent = 0
    while True:
        now = time.monotonic()
        if now - t0 >= duration:
            break
        if qos == 0:
            due = int((now - t0) * rate)
            while sent < due:
                pub.publish(struct.pack(">d", time.monotonic()) + pad, 0)
                sent += 1
            time.sleep(0.001)
        else:
            pub.publish(struct.pack(">d", time.monotonic()) + pad, 1)
            sent += 1
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    cpu = cpu_seconds(sw.pids) - cpu0
    stop.set()
    t.join(2)
    lat_ms = sorted(x * 1000 for x in lat)

    def pct(p):
        return lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * p))] if lat_ms else float("nan")
    return {"rate": len(lat) / elapsed, "sent": sent, "lost": sent - len(lat), "p50": pct(0.50), "p99": pct(0.99),
            "cpu_per_k": cpu / max(1, len(lat)) * 1000}


# -- report ----------------------------------------------------------------------------------

def report(results, args, rabbit_version):
    lines = [BEGIN, "## Gateways", "",
             f"`scripts/bench-gateways` at {git_rev()} on this machine ({os.cpu_count()} cores), loopback only, "
             f"{args.duration} s per run after 1 s of warm-up, release builds. The load generators are Python "
             "(Benchmarks/gateways.py), the same for both sides of every row.", "",
             "STOMP: one publisher and one subscriber (`ack:auto`) on `/topic/bench`, 64-byte bodies, SENDs in batches "
             "of 500 whose last asks for a receipt awaited before the next batch (so neither server is flooded "
             f"past its flow control); delivered messages per second at the subscriber. RabbitMQ {rabbit_version} with "
             "rabbitmq_stomp, started by the script as a node of its own.", "",
             "| scenario | swiftlet-gateways | RabbitMQ STOMP | unit | ratio | target |", "|---|---:|---:|---|---:|---|"]
    s, r = results["stomp-swiftlet"], results.get("stomp-rabbitmq")
    if r:
        ratio = s[0] / r[0]
        lines.append(f"| STOMP one-to-one, 64 B | {s[0]:,.0f} | {r[0]:,.0f} | msg/s | {ratio:.2f}x | >= 2x "
                     f"({'met' if ratio >= 2 else 'not met'}) |")
    else:
        lines.append(f"| STOMP one-to-one, 64 B | {s[0]:,.0f} | (not run) | msg/s | | >= 2x |")
    lines += ["", "MQTT-SN: one MQTT-SN publisher (UDP, through the gateway and its gateway session) against one "
              "native MQTT publisher (TCP, straight to the broker), each to one native MQTT subscriber that timestamps "
              "arrivals; QoS 0 at a fixed offered rate, QoS 1 stop-and-wait (each PUBLISH waits for its PUBACK, so "
              "its rate is one round trip per message). Latency is publisher send to subscriber receive. "
              "The ratio is MQTT-SN over MQTT: the gateway's overhead.", "",
              "| scenario | MQTT-SN | MQTT | unit | ratio (SN / MQTT) |", "|---|---:|---:|---|---:|"]
    for label, key, unit, field in (
            (f"QoS 0 at {args.sn_rate:,} msg/s: delivered", "q0", "msg/s", "rate"),
            ("QoS 0: lost", "q0", "msgs", "lost"),
            ("QoS 0: latency p50", "q0", "ms", "p50"), ("QoS 0: latency p99", "q0", "ms", "p99"),
            ("QoS 0: server CPU per 1,000 msgs (broker + gateway)", "q0", "CPU s", "cpu_per_k"),
            ("QoS 1 stop-and-wait: throughput", "q1", "msg/s", "rate"),
            ("QoS 1: latency p50", "q1", "ms", "p50"), ("QoS 1: latency p99", "q1", "ms", "p99"),
            ("QoS 1: server CPU per 1,000 msgs (broker + gateway)", "q1", "CPU s", "cpu_per_k")):
        a, b = results[f"sn-{key}"][field], results[f"mqtt-{key}"][field]
        fmt = (lambda v: f"{v:,.0f}") if unit in ("msg/s", "msgs") else (lambda v: f"{v:.3f}")
        ratio = f"{a / b:.2f}x" if b else "—"
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {unit} | {ratio} |")
    lines += ["", END]
    return "\n".join(lines)


def git_rev():
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--sn-rate", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "docs/benchmarks.md"))
    ap.add_argument("--no-rabbitmq", action="store_true")
    args = ap.parse_args()
    release = ROOT / ".build" / "release"
    work = Path(tempfile.mkdtemp(prefix="gwbench"))
    results = {}
    rabbit_version = ""
    (work / "sw").mkdir()
    sw = Swiftlet(work / "sw", release)
    try:
        print("STOMP one-to-one through swiftlet-gateways", file=sys.stderr)
        results["stomp-swiftlet"] = stomp_one_to_one(sw.stomp, args.duration)
        print(f"  {results['stomp-swiftlet']}", file=sys.stderr)
        for qos in (0, 1):
            for kind in ("mqtt-sn", "mqtt"):
                print(f"{kind} QoS {qos}", file=sys.stderr)
                key = ("sn" if kind == "mqtt-sn" else "mqtt") + f"-q{qos}"
                results[key] = paced_run(sw, kind, qos, args.sn_rate, args.duration)
                print(f"  {results[key]}", file=sys.stderr)
    finally:
        sw.stop()
    if not args.no_rabbitmq and Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        (work / "rabbit").mkdir()
        rb = RabbitMQ(work / "rabbit")
        try:
            rabbit_version = rb.version
            print("STOMP one-to-one through RabbitMQ", file=sys.stderr)
            results["stomp-rabbitmq"] = stomp_one_to_one(rb.stomp, args.duration)
            print(f"  {results['stomp-rabbitmq']}", file=sys.stderr)
        finally:
            rb.stop()
    section = report(results, args, rabbit_version)
    out = Path(args.out)
    text = out.read_text() if out.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    out.write_text(text)
    print(section)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
