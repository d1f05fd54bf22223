#!/usr/bin/env python3
"""Turns the results folder of scripts/bench into docs/benchmarks.md.

    report.py RESULTS_DIR > docs/benchmarks.md    the whole report
    report.py --line RUN.json                      one human line per run (progress output)

RESULTS_DIR holds <scenario>.<broker>.json (swiftlet-bench --json, one object per line),
commands.txt (scenario<TAB>command), meta.env, syscalls-q*.<broker>.{perf,strace,tool},
alloc.md (package-benchmark's markdown) and the two broker configurations.
"""

import json
import re
import sys
from pathlib import Path

BROKERS = ("swiftlet", "mosquitto")

# scenario -> (title, metric, unit, better)
ROWS = [
    ("one-to-one-q0", "One-to-one, QoS 0, 64 B", "recv", "msg/s", "higher"),
    ("one-to-one-q1", "One-to-one, QoS 1, 64 B", "recv", "msg/s", "higher"),
    ("fanout-100-q0", "Fan-out 1 -> 100, QoS 0, 64 B", "recv", "msg/s", "higher"),
    ("fanin-100-q1", "Fan-in 100 -> 1, QoS 1, 64 B", "recv", "msg/s", "higher"),
    ("pairs-50-q1", "50 pairs, QoS 1, 64 B", "recv", "msg/s", "higher"),
    ("one-to-one-16k-q0", "One-to-one, QoS 0, 16 KB", "recv", "msg/s", "higher"),
    ("latency-10k-q1", "Latency p50 at 10,000 msg/s, QoS 1", "p50", "ms", "lower"),
    ("latency-10k-q1", "Latency p99 at 10,000 msg/s, QoS 1", "p99", "ms", "lower"),
    ("connect-rate", "CONNECT rate (10,000 connections)", "connrate", "conn/s", "higher"),
    ("idle-10k", "Broker RSS per idle connection (10,000)", "rssconn", "bytes", "lower"),
    ("persistent-q1-batched", "QoS 1 to a persistent session, durable (batched vs persistence true)", "recv", "msg/s", "higher"),
    ("persistent-q1-sync", "QoS 1 to a persistent session, durable (sync vs persistence true)", "recv", "msg/s", "higher"),
]


def load_runs(path):
    runs = []
    try:
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                runs.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return runs


def metric(run, kind):
    if run is None:
        return None
    lat = run.get("latency") or {}
    bp = run.get("brokerProcess") or {}
    if kind == "recv":
        return run.get("receivedPerSecond")
    if kind == "p50":
        return lat.get("p50Micros", 0) / 1000 if lat else None
    if kind == "p99":
        return lat.get("p99Micros", 0) / 1000 if lat else None
    if kind == "connrate":
        return (run.get("connections") or {}).get("perSecond")
    if kind == "rssconn":
        return bp.get("rssPerConnectionBytes")
    return None


def fmt(v, unit=""):
    if v is None:
        return "—"
    if unit == "ms":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


def human_line(run):
    lat = run.get("latency") or {}
    conn = run.get("connections") or {}
    bp = run.get("brokerProcess") or {}
    parts = [f"{run.get('scenario')} [{run.get('label') or run.get('broker')}]"]
    if run.get("receivedPerSecond") is not None:
        parts.append(f"recv {fmt(run['receivedPerSecond'])}/s")
    if run.get("sentPerSecond") is not None:
        parts.append(f"sent {fmt(run['sentPerSecond'])}/s")
    if lat:
        parts.append(f"p50 {lat['p50Micros'] / 1000:.3f} p99 {lat['p99Micros'] / 1000:.3f} ms")
    if run.get("lost"):
        parts.append(f"lost {run['lost']}")
    parts.append(f"conn {conn.get('connected')}/{conn.get('attempted')} ({fmt(conn.get('perSecond'))}/s)")
    if bp:
        parts.append(f"broker cpu {bp.get('coresUsed', 0):.2f} cores")
        if bp.get("rssPerConnectionBytes"):
            parts.append(f"{fmt(bp['rssPerConnectionBytes'])} B/conn")
    if (run.get("bench") or {}).get("saturated"):
        parts.append("GENERATOR SATURATED")
    return " | ".join(parts)


def read_meta(res):
    meta = {}
    p = res / "meta.env"
    if p.exists():
        for line in p.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                meta[k] = v
    return meta


def syscalls_per_message(res, q, broker):
    tool = (res / f"syscalls-q{q}.{broker}.tool")
    runs = load_runs(res / f"syscalls-q{q}.{broker}.json")
    if not tool.exists() or not runs:
        return None, None
    run = runs[-1]
    msgs = (run.get("received") or 0) + (run.get("sent") or 0)
    if msgs == 0:
        return None, None
    total = None
    if tool.read_text().strip() == "perf":
        f = res / f"syscalls-q{q}.{broker}.perf"
        if f.exists():
            for line in f.read_text().splitlines():
                cols = line.split(",")
                if len(cols) > 2 and cols[2].strip() == "raw_syscalls:sys_enter" and cols[0].strip().isdigit():
                    total = int(cols[0])
    else:
        f = res / f"syscalls-q{q}.{broker}.strace"
        if f.exists():
            for line in f.read_text().splitlines():
                cols = line.split()
                if cols and cols[-1] == "total":
                    nums = [c for c in cols if re.fullmatch(r"\d+", c)]
                    if nums:
                        total = int(nums[0])
    if total is None:
        return None, tool.read_text().strip()
    # Each message is received once from the publisher and written once to the subscriber:
    # per message forwarded = syscalls / messages received by subscribers.
    recv = run.get("received") or msgs
    return total / recv, tool.read_text().strip()


def report(res):
    res = Path(res)
    meta = read_meta(res)
    runs = {}
    for f in sorted(res.glob("*.json")):
        m = re.fullmatch(r"(.+)\.(swiftlet|mosquitto)\.json", f.name)
        if m and not m.group(1).startswith("syscalls-"):
            rs = load_runs(f)
            if rs:
                runs[(m.group(1), m.group(2))] = rs[-1]
    commands = {}
    if (res / "commands.txt").exists():
        for line in (res / "commands.txt").read_text().splitlines():
            if "\t" in line:
                k, v = line.split("\t", 1)
                commands[k] = v

    out = []
    w = out.append
    w("# Benchmarks: swiftlet and mosquitto, side by side")
    w("")
    w("Generated by `scripts/bench` (do not edit by hand). Both brokers ran on the same machine in")
    w("the same run, each scenario against both, alternating which went first, with the same")
    w("load generator (`swiftlet-bench`, release build) on loopback. Ratios are swiftlet ÷")
    w("mosquitto; the *better* column says which direction wins.")
    w("")
    w("## Machine and run")
    w("")
    for k, label in [("DATE", "date (UTC)"), ("COMMIT", "swiftlet commit"), ("CPU", "CPU"), ("CORES", "cores"),
                     ("MEMORY", "memory"), ("OS", "OS"), ("KERNEL", "kernel"), ("SWIFT", "Swift"),
                     ("MOSQUITTO", "mosquitto"), ("DURATION", "seconds per traffic run"),
                     ("MEASURE_SECONDS", "measured part took (s)"), ("BUILD_SECONDS", "release builds took (s)")]:
        if k in meta:
            w(f"- {label}: {meta[k]}")
    w("")
    w("The generator and the broker share the machine's cores: on 2 cores every figure is")
    w("bounded by both, for both brokers alike.")
    w("")
    w("## Results")
    w("")
    w("| scenario | swiftlet | mosquitto | unit | ratio | better |")
    w("|---|---:|---:|---|---:|---|")
    for key, title, kind, unit, better in ROWS:
        s = metric(runs.get((key, "swiftlet")), kind)
        mq = metric(runs.get((key, "mosquitto")), kind)
        if s is None and mq is None:
            continue
        ratio = f"{s / mq:.2f}x" if s and mq else "—"
        w(f"| {title} | {fmt(s, unit)} | {fmt(mq, unit)} | {unit} | {ratio} | {better} |")
    w("")
    w("## Details per run")
    w("")
    w("| scenario | broker | sent/s | recv/s | p50 ms | p99 ms | p99.9 ms | lost | broker cores | broker CPU s / M msgs | broker RSS MiB | generator cores |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (scen, broker), r in sorted(runs.items()):
        lat = r.get("latency") or {}
        bp = r.get("brokerProcess") or {}
        bench = r.get("bench") or {}
        gen = f"{bench.get('coresUsed', 0):.2f}" + (" (saturated)" if bench.get("saturated") else "")
        w("| " + " | ".join([
            scen, broker, fmt(r.get("sentPerSecond")), fmt(r.get("receivedPerSecond")),
            fmt(lat.get("p50Micros", 0) / 1000, "ms") if lat else "—",
            fmt(lat.get("p99Micros", 0) / 1000, "ms") if lat else "—",
            fmt(lat.get("p999Micros", 0) / 1000, "ms") if lat else "—",
            str(r.get("lost")) if r.get("lost") is not None else "—",
            f"{bp.get('coresUsed', 0):.2f}" if bp else "—",
            fmt(bp.get("cpuSecondsPerMillionMessages")) if bp else "—",
            f"{bp.get('rssAfterBytes', 0) / 1048576:.1f}" if bp else "—",
            gen]) + " |")
    w("")
    sys_rows = []
    for q in (0, 1):
        vals = {b: syscalls_per_message(res, q, b) for b in BROKERS}
        if any(v[0] is not None for v in vals.values()):
            sys_rows.append((q, vals))
    if sys_rows:
        w("## Syscalls per forwarded message")
        w("")
        w("One-to-one, 64 B, 5 s, counted on the broker process (`perf stat -e raw_syscalls:sys_enter`,")
        w("or `strace -c -f` where perf is not available), divided by the messages the subscriber received.")
        w("")
        w("| QoS | swiftlet | mosquitto | ratio | tool |")
        w("|---|---:|---:|---:|---|")
        for q, vals in sys_rows:
            s, mq = vals["swiftlet"][0], vals["mosquitto"][0]
            ratio = f"{s / mq:.2f}x" if s and mq else "—"
            w(f"| {q} | {fmt(s)} | {fmt(mq)} | {ratio} | {vals['swiftlet'][1] or vals['mosquitto'][1]} |")
        w("")
    alloc = res / "alloc.md"
    if alloc.exists() and alloc.read_text().strip():
        w("## Allocations per forwarded PUBLISH (swiftlet only)")
        w("")
        w("`Benchmarks/` (package-benchmark with its malloc interposer) forwards PUBLISH packets")
        w("through the broker's real handlers on embedded channels; figures are mallocs per")
        w("forwarded message as the benchmark reports them.")
        w("")
        w(alloc.read_text().strip())
        w("")
    w("## Commands")
    w("")
    w("```")
    for k, v in commands.items():
        w(f"{k}: {v}")
    w("```")
    w("")
    for name, lang in (("swiftlet.toml", "toml"), ("mosquitto.conf", "")):
        p = res / name
        if p.exists():
            w(f"`{name}`:")
            w("")
            w(f"```{lang}")
            w(re.sub(r"\b\d{4,5}\b(?=\"?$)", "PORT", p.read_text().strip(), flags=re.M))
            w("```")
            w("")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) >= 3 and argv[1] == "--line":
        for run in load_runs(argv[2]):
            print(human_line(run))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(report(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
