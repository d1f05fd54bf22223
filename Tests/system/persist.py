"""Helpers for the durable store tests: store configs, kill -9 / restart, --check-store,
and publishers that record exactly which messages the broker acknowledged."""

import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt

import mqttraw as m
from brokers import ALL_BROKERS, swiftlet_path

STORE = os.path.join("data", "swiftlet.db")


def persistence_extra(mode="batched", commit_interval=None, data_dir=None):
    lines = ["[persistence]", f'mode = "{mode}"']
    if commit_interval is not None:
        lines.append(f"commit_interval = {commit_interval!r}")
    if data_dir is not None:
        lines.append(f'data_dir = "{data_dir}"')
    return "\n".join(lines) + "\n"


def start_store_broker(factory, mode="batched", mqtt_cfg=None, **kw):
    """A broker with a [persistence] table; max_queued_messages large so nothing is dropped."""
    cfg = {"max_queued_messages": 100000}
    cfg.update(mqtt_cfg or {})
    return factory(mqtt=cfg, extra=persistence_extra(mode, **kw))


def store_path(b):
    return b.workdir / STORE


def kill9(b):
    b.stop(signal.SIGKILL)
    assert b.returncode == -signal.SIGKILL, f"broker exited {b.returncode} before kill -9"


def restart(b):
    """Starts a new broker process in the same workdir, port and config (after stop/kill)."""
    assert not b.alive()
    b.start()
    while ALL_BROKERS.count(b) > 1:  # keep the failure report to one log tail per broker
        ALL_BROKERS.remove(b)
    return b


def kill9_restart(b, down=0.0):
    kill9(b)
    if down:
        time.sleep(down)
    return restart(b)


def log_since(b, offset):
    return b.log_text()[offset:]


def check_store(b, timeout=30):
    """Runs `swiftlet --config <cfg> --check-store` in the broker's workdir.
    Returns (exit code, output, {table: rows})."""
    r = subprocess.run([str(swiftlet_path()), "--config", str(b.config_path), "--check-store"],
                       cwd=b.workdir, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    counts = {t: int(n) for t, n in re.findall(r"^\s+(\w+): (\d+) rows$", out, re.M)}
    return r.returncode, out, counts


def rng_for(name):
    """A seeded random generator (SWIFTLET_TEST_SEED to reproduce); returns (rng, seed)."""
    seed = int(os.environ.get("SWIFTLET_TEST_SEED", random.randrange(1 << 30)))
    return random.Random(f"{name}:{seed}"), seed


# -- publishers -------------------------------------------------------------------

class _PublisherBase:
    """Publishes `seq=N` to one topic in a background thread, reconnecting after every
    broker restart, and records which N the broker acknowledged."""

    def __init__(self, broker, topic, qos):
        self.broker = broker
        self.topic = topic
        self.qos = qos
        self.next_seq = 0
        self.acked = []          # seqs whose PUBACK / PUBREC (success) was seen, in ack order
        self.nosub = []          # seqs acknowledged with 0x10 No matching subscribers
        self.failed = []         # seqs acknowledged with a failure reason code (>= 0x80)
        self.connections = 0
        self.error = None
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def acked_count(self):
        return len(self.acked)

    def wait_acked(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            if self.error is not None:
                raise AssertionError(f"publisher failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"publisher: only {len(self.acked)} of {n} acknowledged after {timeout}s "
                                     f"(connections {self.connections})")
            time.sleep(0.01)

    def halt(self):
        self.stop_ev.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "publisher thread did not stop"
        if self.error is not None:
            raise AssertionError(f"publisher failed: {self.error!r}")

    def payload(self, seq):
        return b"seq=%d" % seq

    def _main(self):
        try:
            while not self.stop_ev.is_set():
                self._session()
        except Exception as e:  # noqa: BLE001 - reported by halt()/wait_acked()
            self.error = e


class PahoQoS1Publisher(_PublisherBase):
    """QoS 1 through paho (v5, clean start): up to `window` PUBLISHes in flight. A message
    counts as acknowledged when paho saw its PUBACK with a success reason code."""

    def __init__(self, broker, topic, window=50):
        super().__init__(broker, topic, 1)
        self.window = window

    def _session(self):
        rcs = {}
        disconnected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:10]}",
                        protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        c.max_inflight_messages_set(self.window)
        c.max_queued_messages_set(0)
        c.on_publish = lambda cl, ud, mid, rc, props: rcs.__setitem__(mid, rc.value if hasattr(rc, "value") else rc)
        c.on_disconnect = lambda *a: disconnected.set()
        connected = threading.Event()
        c.on_connect = lambda cl, ud, fl, rc, pr: connected.set() if not rc.is_failure else disconnected.set()
        try:
            c.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=True)
        except OSError:
            time.sleep(0.05)  # broker down (being restarted)
            return
        c.loop_start()
        try:
            if not connected.wait(5) or disconnected.is_set():
                return
            self.connections += 1
            pending = []  # (seq, info) in publish order

            def scan():
                keep = []
                for seq, info in pending:
                    if info.is_published():
                        rc = rcs.pop(info.mid, None)
                        if rc is None:
                            self.acked.append(seq)  # cannot happen (on_publish runs first)
                        elif rc == 0:
                            self.acked.append(seq)
                        elif rc == 0x10:
                            self.nosub.append(seq)
                        else:
                            self.failed.append((seq, rc))
                    else:
                        keep.append((seq, info))
                pending[:] = keep

            while not self.stop_ev.is_set() and not disconnected.is_set():
                if len(pending) >= self.window:
                    scan()
                    if len(pending) >= self.window:
                        time.sleep(0.0005)
                        continue
                seq = self.next_seq
                self.next_seq += 1
                info = c.publish(self.topic, self.payload(seq), qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                pending.append((seq, info))
            # Stopping: give the outstanding acknowledgements a moment (not after a kill).
            deadline = time.monotonic() + (3 if not disconnected.is_set() else 0)
            while pending and time.monotonic() < deadline and not disconnected.is_set():
                scan()
                time.sleep(0.01)
            scan()
        finally:
            try:
                c.disconnect()
            except Exception:  # noqa: BLE001
                pass
            c.loop_stop()


class RawPublisher(_PublisherBase):
    """QoS 1 or 2 over a raw MQTT 5.0 socket, up to `window` packet ids in flight. A QoS 2
    message counts as acknowledged when its PUBREC (success) arrived; it is then released
    (PUBREL) and never published again, so the subscriber must see it exactly once."""

    def __init__(self, broker, topic, qos=2, window=10, version=5):
        super().__init__(broker, topic, qos)
        self.window = window
        self.version = version

    def _session(self):
        try:
            c = m.RawClient(self.broker, version=self.version, timeout=5)
        except OSError:
            time.sleep(0.05)
            return
        try:
            try:
                c.send(m.connect(f"rawpub-{uuid.uuid4().hex[:10]}", version=self.version, clean=True))
                ack = c.recv(5)
            except (OSError, TimeoutError):
                return
            if ack is None or ack.type != m.CONNACK or ack.rc != 0:
                return
            self.connections += 1
            free = list(range(1, self.window + 1))
            inflight = {}  # pid -> seq (awaiting PUBREC, or PUBCOMP once released)
            while not self.stop_ev.is_set():
                try:
                    while free:
                        pid = free.pop(0)
                        seq = self.next_seq
                        self.next_seq += 1
                        inflight[pid] = seq
                        c.send(m.publish(self.topic, self.payload(seq), qos=self.qos, pid=pid, version=self.version))
                    p = c.recv(5)
                except (OSError, TimeoutError):
                    return
                if p is None:
                    return
                if p.type in (m.PUBACK, m.PUBREC):
                    seq = inflight.get(p.pid)
                    if seq is None:
                        raise AssertionError(f"{p!r} for a packet id not in flight")
                    if p.rc == 0:
                        self.acked.append(seq)
                    elif p.rc == 0x10:
                        self.nosub.append(seq)
                    else:
                        self.failed.append((seq, p.rc))
                    if p.type == m.PUBACK or p.rc >= 0x80:
                        del inflight[p.pid]
                        free.append(p.pid)
                    else:
                        try:
                            c.send(m.pubrel(p.pid, version=self.version))
                        except OSError:
                            return
                elif p.type == m.PUBCOMP:
                    if p.pid in inflight:
                        del inflight[p.pid]
                        free.append(p.pid)
                elif p.type == m.DISCONNECT:
                    return
            # Stopping: wait for the last PUBRECs / PUBACKs.
            deadline = time.monotonic() + 3
            while inflight and time.monotonic() < deadline:
                try:
                    p = c.recv(max(deadline - time.monotonic(), 0.01))
                except (OSError, TimeoutError):
                    return
                if p is None:
                    return
                if p.type in (m.PUBACK, m.PUBREC) and p.pid in inflight:
                    seq = inflight[p.pid]
                    (self.acked.append(seq) if p.rc == 0 else
                     self.nosub.append(seq) if p.rc == 0x10 else self.failed.append((seq, p.rc)))
                    if p.type == m.PUBREC and p.rc < 0x80:
                        c.try_send(m.pubrel(p.pid, version=self.version))
                    else:
                        del inflight[p.pid]
                elif p.type == m.PUBCOMP:
                    inflight.pop(p.pid, None)
        finally:
            c.close()


# -- checking what a subscriber received --------------------------------------------

SEQ_RE = re.compile(rb"^seq=(\d+)$")


def seqs_of(messages):
    out = []
    for msg in messages:
        mt = SEQ_RE.match(msg.payload)
        assert mt, f"unexpected payload {msg.payload!r} on {msg.topic}"
        out.append(int(mt.group(1)))
    return out


def receive_all(client, expected, timeout=60.0, quiet=1.0):
    """Messages until every seq in `expected` arrived (or timeout), then until `quiet` s of silence."""
    want = set(expected)
    got = []
    deadline = time.monotonic() + timeout
    while want and time.monotonic() < deadline:
        try:
            msg = client.messages.get(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
        except Exception:  # noqa: BLE001 - queue.Empty
            continue
        got.append(msg)
        mt = SEQ_RE.match(msg.payload)
        if mt:
            want.discard(int(mt.group(1)))
    got += client.drain(quiet)
    return got


def summarize(seqs, limit=20):
    """Compact ranges: [1,2,3,7] -> '1-3,7'."""
    seqs = sorted(set(seqs))
    parts = []
    i = 0
    while i < len(seqs):
        j = i
        while j + 1 < len(seqs) and seqs[j + 1] == seqs[j] + 1:
            j += 1
        parts.append(f"{seqs[i]}" if i == j else f"{seqs[i]}-{seqs[j]}")
        i = j + 1
    s = ",".join(parts[:limit])
    return s + (f",... ({len(parts)} ranges, {len(seqs)} values)" if len(parts) > limit else "")


def check_stream(received, acked, published, qos, kill_log):
    """The delivery promise: every acknowledged seq received; first occurrences in increasing
    order; nothing never published; no duplicates for QoS 2."""
    seqs = seqs_of(received)
    wrong_qos = [msg for msg in received if msg.qos != qos]
    assert not wrong_qos, f"delivered with the wrong QoS: {wrong_qos[:5]}"
    bogus = [s for s in seqs if s >= published]
    assert not bogus, f"received seqs never published: {summarize(bogus)}"
    seen = set()
    firsts = []
    dups = []
    for s in seqs:
        if s in seen:
            dups.append(s)
        else:
            seen.add(s)
            firsts.append(s)
    lost = sorted(set(acked) - seen)
    assert not lost, (f"{len(lost)} acknowledged messages lost after kill -9: {summarize(lost)}\n"
                      f"acked {len(acked)}, received {len(seqs)} ({len(seen)} distinct), kills: {kill_log}")
    disorder = [(a, b) for a, b in zip(firsts, firsts[1:]) if b <= a]
    assert not disorder, f"first occurrences out of order at {disorder[:10]} (kills: {kill_log})"
    if qos == 2:
        assert not dups, f"QoS 2 duplicates: {summarize(dups)} (kills: {kill_log})"
    return seqs, dups
