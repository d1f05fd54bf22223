"""swiftlet-bench, the load generator behind docs/benchmarks.md, against a running broker.

The generator counts a PUBLISH from its first bytes and drops the rest of a large payload
unread, writes large messages as a header and a shared tail, and opens connections from its
event loops: whatever the size, protocol or QoS, every message must be counted once and in
order, and every connection made.
"""

import json
import subprocess

import pytest

from brokers import swiftlet_path


def run_bench(broker, *args):
    bench = swiftlet_path().parent / "swiftlet-bench"
    out = subprocess.run([str(bench), *args, "-p", str(broker.port), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", ["3.1.1", "5"])
@pytest.mark.parametrize("qos", [0, 1])
# 64 B: many to a read; 16 KB: several to a read, most straddling two; 100 KB: over several reads.
@pytest.mark.parametrize("size", [64, 16384, 100_000])
def test_pairs_count_every_message_once_and_in_order(broker, version, qos, size):
    r = run_bench(broker, "pairs", "-c", "1", "-q", str(qos), "-s", str(size), "-V", version,
                  "-d", "1", "--warmup", "0", "--drain", "2")
    assert r["received"] > 0
    assert r["received"] == r["sent"]
    assert r.get("lost", 0) == 0
    assert r.get("gaps", 0) == 0
    assert r.get("outOfOrder", 0) == 0
    assert r.get("duplicates", 0) == 0
    assert r["protocolErrors"] == 0


def test_conn_opens_every_connection(broker):
    r = run_bench(broker, "conn", "-c", "300", "--concurrency", "40", "--hold", "0")
    c = r["connections"]
    assert c["attempted"] == 300
    assert c["connected"] == 300
    assert c["errors"] == 0
    assert r["protocolErrors"] == 0


def test_conn_beyond_the_file_limit_reports_the_failures(broker):
    """More connections than the generator's file limit: every failed socket() is counted and
    reported, and the generator exits with an error, not a crash. Each failure completed at
    once and opened the next connection from inside the last one's callback (a stack overflow
    after some thousands), and the failed client's promise leaked (a trap in debug builds)."""
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    bench = swiftlet_path().parent / "swiftlet-bench"
    out = subprocess.run([str(bench), "conn", "-c", "6000", "--concurrency", "200", "--hold", "0",
                          "-p", str(broker.port), "--json"],
                         capture_output=True, text=True, timeout=120, preexec_fn=low_limit)
    assert out.returncode == 1, f"exit {out.returncode}: {out.stderr[-500:]}"
    c = json.loads(out.stdout.strip().splitlines()[-1])["connections"]
    assert c["attempted"] == 6000
    assert 0 < c["connected"] < 6000
    assert c["connected"] + c["errors"] == 6000
    assert any("Too many open files" in e for e in c["firstErrors"])


def test_conn_at_a_rate_opens_every_connection(broker):
    r = run_bench(broker, "conn", "-c", "100", "--connect-rate", "500", "--hold", "0")
    assert r["connections"]["connected"] == 100
    assert r["connections"]["errors"] == 0


@pytest.mark.parametrize("rate", [50, 500])
def test_fixed_rate_publishers_are_paced_and_lose_nothing(broker, rate):
    """Fixed-rate publishers share one timer per event loop (bench/Pacer.swift): each still
    ticks at its own interval (here 1 s and 100 ms for 50 publishers), so the run sends
    about rate x duration messages, not a closed loop's flood, and every one arrives. Loose
    bounds: the point is pacing at all, not its precision."""
    r = run_bench(broker, "pairs", "-c", "50", "--same-connection", "-q", "1", "-s", "64",
                  "-r", str(rate), "-d", "3", "--warmup", "0", "--drain", "2")
    assert rate <= r["sent"] <= rate * 3 * 4, r
    assert r["received"] == r["sent"]
    assert r.get("lost", 0) == 0
    assert r["protocolErrors"] == 0
