#!/usr/bin/env python3
"""Turns the results folder of scripts/bench into docs/benchmarks.md.

    report.py RESULTS_DIR > docs/benchmarks.md    the whole report
    report.py --line RUN.json                      one human line per run (progress output)
    report.py --quick RESULTS_DIR                  the ratio table of `scripts/bench --quick`
    report.py RESULTS_DIR --preserve OLD.md        keeps OLD.md's <!-- NAME:begin --> ... <!-- NAME:end --> parts

RESULTS_DIR holds <scenario>.<broker>.json (swiftlet-bench --json, one object per line),
commands.txt (scenario<TAB>command), meta.env, syscalls-q*.<broker>.{perf,strace,tool},
syscalls-*.<broker>.threads, syscalls-verify.<broker>.{strace,json}, alloc.md
(package-benchmark's markdown), alloc-stacks.txt (its --allocation-stacks output) and the two
broker configurations.
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
    ("tls-connect-rate", "TLS handshake + CONNECT rate (2,000 connections)", "connrate", "conn/s", "higher"),
    ("tls-one-to-one-q0", "One-to-one over TLS, QoS 0, 64 B", "recv", "msg/s", "higher"),
    ("ws-one-to-one-q0", "One-to-one over WebSocket, QoS 0, 64 B", "recv", "msg/s", "higher"),
    ("idle-10k", "Broker RSS per idle connection (10,000)", "rssconn", "bytes", "lower"),
    ("idle-10k-sub", "Broker RSS per idle connection with one subscription (10,000)", "rssconn", "bytes", "lower"),
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


def perf_counts(path):
    """Sums `perf stat -x, [--per-thread]` output per event over every thread; also returns
    the number of threads that counted anything."""
    counts, threads = {}, set()
    for line in Path(path).read_text().splitlines():
        cols = line.split(",")
        if line.startswith("#") or len(cols) < 3:
            continue
        # -x, --per-thread: comm-tid,count,unit,event,...; without --per-thread: count,unit,event,...
        if cols[0].strip().isdigit() or cols[0].strip().startswith("<"):
            thread, count, event = None, cols[0].strip(), cols[2].strip()
        else:
            thread, count, event = cols[0].strip(), cols[1].strip(), cols[3].strip() if len(cols) > 3 else ""
        if not count.isdigit():
            continue
        counts[event] = counts.get(event, 0) + int(count)
        if thread and event == "raw_syscalls:sys_enter" and int(count) > 0:
            threads.add(thread)
    return counts, len(threads)


def strace_counts(path):
    """{syscall: calls, "total": calls} from `strace -c`: % time, seconds, usecs/call, calls,
    [errors], syscall (the total line likewise)."""
    counts = {}
    for line in Path(path).read_text().splitlines():
        cols = line.split()
        if len(cols) >= 5 and re.fullmatch(r"\d+", cols[3]):
            counts[cols[-1]] = int(cols[3])
    return counts


def syscalls_per_message(res, shape, broker):
    """(syscalls per forwarded message, tool, {syscall: per message}, threads counted, run)."""
    tool = res / f"syscalls-{shape}.{broker}.tool"
    runs = load_runs(res / f"syscalls-{shape}.{broker}.json")
    if not tool.exists() or not runs:
        return None
    run = runs[-1]
    # Each message is read once from the publisher and written once to the subscriber:
    # per message forwarded = syscalls / messages the subscriber received.
    recv = run.get("received") or 0
    if recv == 0:
        return None
    name = tool.read_text().strip()
    total, per, threads = None, {}, None
    if name == "perf" and (res / f"syscalls-{shape}.{broker}.perf").exists():
        counts, threads = perf_counts(res / f"syscalls-{shape}.{broker}.perf")
        total = counts.get("raw_syscalls:sys_enter")
        for ev, n in counts.items():
            if ev.startswith("syscalls:sys_enter_"):
                per[ev[len("syscalls:sys_enter_"):]] = n / recv
    elif (res / f"syscalls-{shape}.{broker}.strace").exists():
        counts = strace_counts(res / f"syscalls-{shape}.{broker}.strace")
        total = counts.pop("total", None)
        per = {k: v / recv for k, v in counts.items()}
    if total is None:
        return None
    return total / recv, name, per, threads, run


SYSCALL_SHAPES = [
    ("q0", "QoS 0, closed loop"),
    ("q1", "QoS 1, closed loop"),
    ("q0-r10k", "QoS 0, 10,000 msg/s"),
    ("q1-r10k", "QoS 1, 10,000 msg/s"),
]
SYSCALL_NAMES = ("read", "readv", "write", "writev", "sendmsg", "recvmsg", "sendto", "recvfrom", "epoll_wait",
                 "epoll_pwait", "epoll_ctl", "futex", "rt_sigprocmask")


def write_syscalls(w, res):
    rows = []
    for shape, title in SYSCALL_SHAPES:
        vals = {b: syscalls_per_message(res, shape, b) for b in BROKERS}
        if any(v is not None for v in vals.values()):
            rows.append((shape, title, vals))
    if not rows:
        return
    w("## Syscalls per forwarded message")
    w("")
    w("One-to-one, 64 B, 5 s, counted on every thread of the broker process (`perf stat --per-thread")
    w("-e raw_syscalls:sys_enter -p PID`, which attaches to each thread the process has and inherits")
    w("into threads started later), divided by the messages the subscriber received. Closed loop")
    w("saturates the broker, so each read and write carries many messages; at a fixed 10,000 msg/s")
    w("there is little to batch. *threads* is how many of the broker's threads made a syscall in")
    w("the run, of how many it had.")
    w("")
    w("| load | swiftlet | mosquitto | ratio | swiftlet by syscall | mosquitto by syscall | threads (swiftlet, mosquitto) | tool |")
    w("|---|---:|---:|---:|---|---|---|---|")

    def breakdown(v):
        if v is None or not v[2]:
            return "—"
        items = sorted(((k, n) for k, n in v[2].items() if n >= 0.005 and k in SYSCALL_NAMES), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {n:.2f}" for k, n in items) or "—"

    def threads(b, shape, v):
        f = res / f"syscalls-{shape}.{b}.threads"
        had = f.read_text().strip() if f.exists() else "?"
        return f"{v[3]}/{had}" if v is not None and v[3] is not None else f"?/{had}"

    for shape, title, vals in rows:
        s, mq = vals["swiftlet"], vals["mosquitto"]
        sv, mv = (s[0] if s else None), (mq[0] if mq else None)
        ratio = (f"{sv / mv:.3f}x" if sv / mv < 0.1 else f"{sv / mv:.2f}x") if sv and mv else "—"
        tool = (s or mq)[1]
        w(f"| {title} | {fmt(sv)} | {fmt(mv)} | {ratio} | {breakdown(s)} | {breakdown(mq)} | "
          f"{threads('swiftlet', shape, s)}, {threads('mosquitto', shape, mq)} | {tool} |")
    w("")
    # The independent check: strace -f -c over a closed-loop QoS 0 run of each broker.
    checks = []
    for b in BROKERS:
        f = res / f"syscalls-verify.{b}.strace"
        runs = load_runs(res / f"syscalls-verify.{b}.json")
        if f.exists() and runs and runs[-1].get("received"):
            c = strace_counts(f)
            if c.get("total"):
                n = runs[-1]["received"]
                checks.append((b, c["total"] / n, (c["total"] - c.get("futex", 0)) / n, runs[-1].get("receivedPerSecond")))
    if checks:
        w("Checked once by a second method, `strace -f -c -p PID` (ptrace, every thread followed), over")
        w("a 3 s closed-loop QoS 0 run of each broker; per message, all syscalls and all but futex:")
        w("")
        w("| broker | strace: all | strace: without futex | msg/s under strace | perf above: all | perf above: without futex |")
        w("|---|---:|---:|---:|---:|---:|")
        for b, allv, nofutex, rate in checks:
            p = syscalls_per_message(res, "q0", b)
            pa = p[0] if p else None
            pn = (p[0] - p[2].get("futex", 0)) if p else None
            w(f"| {b} | {allv:.3f} | {nofutex:.3f} | {fmt(rate)} | {'—' if pa is None else f'{pa:.3f}'} | "
              f"{'—' if pn is None else f'{pn:.3f}'} |")
        w("")
        w("strace stops the broker at every syscall, so its runs are slower and batch differently. The")
        w("reads, writes and epoll waits it counts are of the same size as perf's; futex calls (wake-ups")
        w("between swiftlet's event loops when publisher and subscriber sit on different loops) depend")
        w("on timing and change most under strace.")
        w("")


def parse_box_totals(text):
    """{benchmark title: {metric: p50}} from the boxed tables of `benchmark run` (the
    allocation-stacks run prints them too, so the quick run needs no second run)."""
    out, title = {}, None
    lines = ANSI.sub("", text).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("╒") and i > 0:
            back = i - 1
            while back > 0 and not lines[back].strip():
                back -= 1
            title = lines[back].strip()
            out[title] = {}
        elif title and line.startswith("│") and "Metric" not in line:
            cols = [c.strip() for c in line.strip("│").split("│")]
            if len(cols) >= 4:
                try:
                    out[title][cols[0].rstrip(" *").strip()] = float(cols[3].replace(",", ""))
                except ValueError:
                    pass
    return out


def parse_package_benchmark(text):
    """{benchmark title: {metric: p50}} from package-benchmark's markdown output."""
    out, title = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            title = line[4:].strip()
            out[title] = {}
        elif title and line.startswith("|") and not line.startswith("|:") and not line.startswith("| Metric"):
            cols = [c.strip() for c in line.strip("|").split("|")]
            if len(cols) >= 4:
                name = cols[0].rstrip(" *").strip()
                try:
                    out[title][name] = float(cols[3].replace(",", ""))
                except ValueError:
                    pass
    return out


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def clean_package_benchmark(text):
    """package-benchmark's markdown without its console noise: ANSI colour codes, the
    warnings and notes it prints before the first table (the legacy 'package-benchmark'
    identifier warning, the runtime interposer note)."""
    text = ANSI.sub("", text)
    lines = text.splitlines()
    first = next((i for i, l in enumerate(lines) if l.startswith("#")), len(lines))
    return "\n".join(lines[first:]).strip()


EMBEDDED = re.compile(r"\bEmbedded(EventLoop|Channel)\b")
OURS = re.compile(r"/Sources/(SwiftletCore|MQTTCodec)/|^(specialized )?(static )?(MQTTConnectionHandler|LoopContext|Message|Session|"
                  r"Broker|MQTTString|PublishPacket|Packet|MQTTDecoder|MQTTPacketDecoder|SubscriptionTrie|TopicMatch|"
                  r"OutboundState|Listeners|Delivery|Retained\w*)\b")


def parse_allocation_stacks(text):
    """{benchmark title: (allocations in the section, [(count, "broker"|"test loop"|"other", site)])}
    from `benchmark run --allocation-stacks`. Each stack is attributed to the first frame, from
    the allocation upwards, that is the broker's code (SwiftletCore, MQTTCodec) or NIO's
    embedded test loop and channel; the site named is that frame."""
    text = ANSI.sub("", text)
    out, title, stack = {}, None, None

    def close():
        if title is not None and stack is not None:
            cls, site = "other", stack["frames"][0] if stack["frames"] else "?"
            for f in stack["frames"]:
                if EMBEDDED.search(f):
                    cls, site = "test loop", f
                    break
                if OURS.search(f):
                    cls, site = "broker", f
                    break
            out[title][1].append((stack["count"], cls, site))

    for line in text.splitlines():
        m = re.match(r"Allocations: [^:]+:(.*?) \S (\d+) iterations, ([\d,]+) allocations", line)
        if m:
            close()
            title, stack = m.group(1).strip(), None
            out[title] = (int(m.group(3).replace(",", "")), [])
            continue
        if title is None:
            continue
        m = re.match(r"#\d+\s+([\d,]+) allocations", line)
        if m:
            close()
            stack = {"count": int(m.group(1).replace(",", "")), "frames": []}
            continue
        m = re.match(r"\s+\d+\s+(.*)", line)
        if m and stack is not None:
            f = m.group(1).strip()
            if not f.startswith("0x"):
                stack["frames"].append(f)
    close()
    return out


def short_site(frame):
    f = re.sub(r" (at|in) \S+$", "", frame)
    f = re.sub(r"^(specialized )?(static )?", "", f)
    m = re.match(r"([\w.]+?)(\(|<|$)", f)
    name = m.group(1) if m else f
    loc = re.search(r"/Sources/\w+/(.*?:\d+)", frame)
    return f"`{name}`" + (f" ({loc.group(1)})" if loc else "")


def write_allocations(w, res):
    alloc = res / "alloc.md"
    if not alloc.exists() or not alloc.read_text().strip():
        return None
    text = clean_package_benchmark(alloc.read_text())
    parsed = parse_package_benchmark(text)
    floor_title = next((t for t in parsed if t.lower().startswith("harness")), None)
    floor = parsed.get(floor_title, {}).get("Malloc (total)") if floor_title else None
    w("## Allocations per forwarded PUBLISH (swiftlet only)")
    w("")
    w("`Benchmarks/` (package-benchmark with its malloc interposer) forwards PUBLISH packets")
    w("through the broker's real handlers on embedded channels; figures are mallocs per")
    w("forwarded message (p50 of the runs). The harness floor is what the same write, run and")
    w("read cycle costs through a pass-through handler with no broker. The broker's own count")
    w("leaves out what the embedded test loop allocates (below); without allocation stacks it")
    w("is the total less the harness floor.")
    w("")
    stacks = {}
    if (res / "alloc-stacks.txt").exists():
        stacks = parse_allocation_stacks((res / "alloc-stacks.txt").read_text())
    results = {}
    if parsed:
        w("| benchmark | mallocs per message | harness floor | in the embedded test loop | broker's own | bytes per message |")
        w("|---|---:|---:|---:|---:|---:|")
        sites = []
        for t, m in parsed.items():
            if t == floor_title or "Malloc (total)" not in m:
                continue
            total = m["Malloc (total)"]
            loop = own = None
            if t in stacks and stacks[t][0]:
                n, rows = stacks[t]
                scale = total / n  # stack counts cover every scaled iteration of one run
                loop = sum(c for c, cls, _ in rows if cls != "broker") * scale
                own = sum(c for c, cls, _ in rows if cls == "broker") * scale
                merged = {}
                for c, cls, site in rows:
                    key = (cls, short_site(site))
                    merged[key] = merged.get(key, 0) + c * scale
                sites.append((t, [(c, cls, site) for (cls, site), c in merged.items()]))
            elif floor is not None:
                own = total - floor
            results[t] = own if own is not None else total
            w(f"| {t} | {total:g} | {'—' if floor is None else f'{floor:g}'} | {'—' if loop is None else f'{loop:g}'} | "
              f"{'—' if own is None else f'{own:g}'} | {m.get('Malloc (bytes total)', 0):g} |")
        w("")
        if floor is None:
            w("(no harness benchmark in this run: the floor is unknown)")
            w("")
        if sites:
            w("Where they are, from `benchmark run --allocation-stacks`: each allocation's stack is")
            w("attributed to its first frame, from the allocation upwards, that is the broker's code or")
            w("NIO's embedded test loop. The embedded loop allocates where a real event loop does not")
            w("(`EmbeddedEventLoop.execute` schedules a task with a promise; `advanceTime` appends to")
            w("an array), so its allocations are counted apart; the harness benchmark does not use")
            w("`execute` and cannot subtract them.")
            w("")
            for t, rows in sites:
                w(f"- {t}: " + "; ".join(
                    f"{c:g} × {site}" + ("" if cls == "broker" else f" [{cls}]")
                    for c, cls, site in sorted(rows, key=lambda r: (r[1] != "broker", -r[0]))))
            w("")
        ALLOC_SITES.update({t: [(c, site) for c, cls, site in rows if cls == "broker"] for t, rows in sites})
    w("<details><summary>package-benchmark's own output</summary>")
    w("")
    w(text)
    w("")
    w("</details>")
    w("")
    return results


# Targets from issue 3. For a row that falls short, WHY says what in the broker causes it.
THROUGHPUT_TARGET = 1.5
RSS_TARGET = 4096
# Issue 19's: per idle connection, and per idle connection subscribed to a topic of its own.
RSS_ROW_TARGETS = {"idle-10k": 1536, "idle-10k-sub": 2048}
ALLOC_TARGET = 2
def _bp(run, key, default=0.0):
    return ((run or {}).get("brokerProcess") or {}).get(key, default) or default


def _gen(run):
    return ((run or {}).get("bench") or {}).get("coresUsed", 0.0) or 0.0


def why_connect_rate(runs):
    s, m = runs.get(("connect-rate", "swiftlet")), runs.get(("connect-rate", "mosquitto"))
    rs, rm = metric(s, "connrate") or 0, metric(m, "connrate") or 0
    us = _bp(s, "coresUsed") / rs * 1e6 if rs else 0
    um = _bp(m, "coresUsed") / rm * 1e6 if rm else 0
    busy = _bp(s, "coresUsed") + _gen(s)
    if busy >= 1.7:
        bound = (f"in the swiftlet run broker ({_bp(s, 'coresUsed'):.2f}) and generator ({_gen(s):.2f}) "
                 "fill the 2 shared cores, so swiftlet's CPU per connection sets its rate")
    else:
        bound = (f"neither side fills the 2 cores (swiftlet {_bp(s, 'coresUsed'):.2f} + generator {_gen(s):.2f}), "
                 "so with 200 attempts in flight the rate is 200 ÷ the time one connection takes from "
                 "connect to CONNACK to close, and the broker's share of that time is its CPU per connection "
                 "plus the loop ticks it waits")
    ug = _gen(s) / rs * 1e6 if rs else 0
    ceiling = (f" The generator itself costs {ug:.0f} µs of CPU per connection (its cores ÷ rate), so on 2 "
               f"shared cores even a broker that cost nothing would reach about {2e6 / ug:,.0f}/s, "
               f"{2e6 / ug / rm:.1f}x mosquitto's rate here: a 3x target cannot be measured on this machine "
               "with this generator, whatever the broker does." if ug and rm else "")
    return (
        f"the generator opens and closes 10,000 connections, 200 at a time; {bound}. A connection costs "
        f"swiftlet {us:.0f} µs of CPU and mosquitto {um:.0f} µs (broker cores ÷ rate).{ceiling} Where "
        "swiftlet's time goes (perf record on the broker over three such runs, at 5b17cfc): 58 % is the "
        "kernel (closing the socket 14 %, the CONNACK write 9-14 %, epoll registration 5 %, accept 5 %, "
        "reading the CONNECT 4 %, waking the loops ~12 %: since connections are parked, each socket is "
        "accepted on a loop of its own and crosses to its serving loop, decision 0009); the 42 % in user "
        "space is spread over SwiftNIO's channel set-up and teardown (its SocketChannel, pipeline and "
        "ServerBootstrap's futures, most of the 61 mallocs per connection) and ours (auth chain, session, "
        "CONNACK), no function above 0.5 % of the samples on its own. mosquitto spends ~14 µs per "
        "connection in user space and answers a CONNECT inline in one thread.")


def why_16k(runs):
    s, m = runs.get(("one-to-one-16k-q0", "swiftlet")), runs.get(("one-to-one-16k-q0", "mosquitto"))
    ps, pm = metric(s, "p50"), metric(m, "p50")
    return (
        "closed loop with at most 1 MiB of payload in flight end to end (64 messages of 16 KB), so the "
        "rate is 64 ÷ the time one message spends between publisher and subscriber: p50 "
        f"{fmt(ps, 'ms')} ms through swiftlet against {fmt(pm, 'ms')} ms through mosquitto ("
        + ("neither broker CPU-bound: " if max(_bp(s, 'coresUsed'), _bp(m, 'coresUsed')) < 0.9 else "")
        + f"brokers {_bp(s, 'coresUsed'):.2f} and {_bp(m, 'coresUsed'):.2f} cores, generator "
        f"{_gen(s):.2f} and {_gen(m):.2f}). Since issue 19 the broker forwards a plain QoS 0 PUBLISH as the "
        "bytes it arrived in (docs/decisions/0005-forward-received-bytes.md) and copies only a packet that "
        "straddles two reads (`PacketFramer`), so the re-encode copy and its page faults (16 % and 11 % "
        "of the broker's samples before) are gone; most of what remains is the kernel's loopback copies "
        "(`_copy_from_iter`, `_copy_to_iter`), the same for both brokers. "
        "On this shared 2-core machine the same build measured between 35,000 and 70,000 msg/s in "
        "repeated 5 s runs of this shape, so the ratio is uncertain by about a third.")


WHY = {
    "connect-rate": why_connect_rate,
    "one-to-one-16k-q0": why_16k,
    "alloc-q0": (
        "What they are: `Message.__allocating_init` is the one reference-counted message object per "
        "PUBLISH, shared by every subscriber. The fixture gives each packet a buffer of its own (as a "
        "read of one large packet is), so the message forwards the received bytes as its wire "
        "(docs/decisions/0005-forward-received-bytes.md) and the decoder shares a repeated topic's "
        "`String`. Under load a read carries many small packets: a message is then encoded into a "
        "buffer of its own (two more allocations) rather than pin the whole read buffer."),
}
ALLOC_SITES = {}  # benchmark title -> [(allocations per message, site)] of the broker's own


IDLE_BREAKDOWN = """\
## What an idle connection holds (swiftlet)

Heap per idle MQTT 3.1.1 connection after CONNACK, from heaptrack (peak consumers) with 2,000
connections on a release build at commit 9b728cb: about 3.1 KB per connection; the rest of the
RSS figure is malloc's own overhead and the process's fixed memory spread over the connections.

| what | bytes |
|---|---:|
| NIO's channel: `SocketChannel`, its pending-writes queue (`PendingStreamWritesManager`, 561 B), socket, pipeline, handler context, peer address, selector registration | ~1,810 |
| the MQTT connection handler with its decoder state | ~430 |
| the session, its registry entry and the broker's connection table entry | ~420 |
| the authentication cache entry for the client (`DecisionCache`, bounded by `auth.cache_size`, also made for anonymous clients) | ~270 |
| the receive buffer the channel keeps between reads (128 B to start) | ~200 |

Before this work the same connection held 8.9 KB: NIO's receive buffer started at 2 KB, and keep
alive, the CONNECT idle timeout and the QoS retry were scheduled tasks per connection (~1 KB
with their promises), and each connection stored a `Logger` with its own metadata dictionary.
mosquitto holds about 0.7 KB: one C struct per client and no per-connection event-loop objects.

Since 2026-12-07 a plain-TCP connection idle for `mqtt.park_after` (15 s) is parked: its
socket leaves its channel for the broker's parking lot and only its MQTT state stays
(decisions/0009). The idle row above reads RSS after 22 s without traffic, so it measures
parked connections: 947 B of heap each at b992277 (the handler 440 B, the session 197 B,
the `ParkedSocket` ~64 B, table entries and the client id; `swiftlet-ctl recon allocated` and
`recon memory` over 10,000 connections), against 3,086 B connected. Since 9669bf7 the handler
is 344 B (its fields packed). With one subscription each, the broker runs with glibc's
per-thread malloc cache off so that the subscriptions' trie nodes are not made in the freed
channels' pages (decisions/0010).
"""


# Rows whose issue set another target than THROUGHPUT_TARGET.
ROW_TARGETS = {"tls-connect-rate": 1.0, "tls-one-to-one-q0": 2.0, "ws-one-to-one-q0": 2.0}


def write_targets(w, runs, allocs):
    rows = []
    for key, title, kind, unit, better in ROWS:
        s = metric(runs.get((key, "swiftlet")), kind)
        mq = metric(runs.get((key, "mosquitto")), kind)
        if kind in ("recv", "connrate"):
            if s and mq:
                target = ROW_TARGETS.get(key, THROUGHPUT_TARGET)
                ok = s / mq >= target
                rows.append((key, title, f"{s / mq:.2f}x mosquitto", f">= {target}x", ok))
        elif kind == "p99":
            if s and mq:
                rows.append((key, title, f"{fmt(s, 'ms')} ms vs {fmt(mq, 'ms')} ms", "<= mosquitto", s <= mq))
        elif kind == "rssconn" and s is not None:
            bound = RSS_ROW_TARGETS.get(key, RSS_TARGET)
            rows.append((key, title, f"{fmt(s)} B", f"<= {bound:,} B", s <= bound))
    for t, own in (allocs or {}).items():
        if t.startswith("QoS 0"):
            rows.append(("alloc-q0", f"Allocations: {t}", f"{own:g}", f"<= {ALLOC_TARGET}", own <= ALLOC_TARGET))
    if not rows:
        return
    w("## Against the targets")
    w("")
    w("Issue 3's targets: every throughput row >= 1.5x mosquitto, p99 at the fixed rate <= mosquitto,")
    w("<= 4 KiB of broker RSS per idle connection, <= 2 allocations per QoS 0 PUBLISH forwarded")
    w("to one subscriber (the broker's own, as counted above). Issue 17's listener rows: >= 2x")
    w("mosquitto for throughput over TLS and WebSocket, >= 1x for TLS handshakes. Issue 19's for")
    w("memory: <= 1,536 B of RSS per idle connection, <= 2,048 B with one subscription.")
    w("")
    w("| row | swiftlet | target | |")
    w("|---|---|---|---|")
    for key, title, val, target, ok in rows:
        w(f"| {title} | {val} | {target} | {'meets' if ok else '**short**'} |")
    w("")
    short = [r for r in rows if not r[4]]
    seen = set()
    for key, title, val, target, ok in short:
        why = WHY.get(key)
        if callable(why):
            why = why(runs)
        if key == "alloc-q0":
            t = title[len("Allocations: "):]
            if ALLOC_SITES.get(t):
                why = ("the broker itself allocates " + ", ".join(f"{c:g} × {site}" for c, site in
                                                                 sorted(ALLOC_SITES[t], key=lambda r: -r[0]))
                       + " per message. " + (why or ""))
        if key in seen:
            why = "as above."
        w(f"- **{title}** ({val}, target {target}): " + (why or "short of its target; the cause has not been analysed yet."))
        seen.add(key)
    if short:
        w("")


AUTH_ROWS = [
    ("auth-builtin", "built-in (anonymous, no lookup)", None),
    ("auth-mysql-cold", "MariaDB, sha256, cold (a user of its own per CONNECT)", 0.5),
    ("auth-mysql-cached", "MariaDB, sha256, cached (the same users again)", 0.9),
    ("auth-pgsql-cold", "PostgreSQL, sha256, cold", 0.5),
    ("auth-pgsql-cached", "PostgreSQL, sha256, cached", 0.9),
    ("auth-redis-cold", "Redis, sha256, cold (authcmd, supercmd, subcmd per CONNECT)", 0.6),
    ("auth-redis-cached", "Redis, sha256, cached", 0.9),
    ("auth-mongo-cold", "MongoDB (SecantusDB), sha256, cold (one find per CONNECT)", None),
    ("auth-mongo-cached", "MongoDB (SecantusDB), sha256, cached", None),
    ("auth-ldap-cold", "LDAP (slapd), bind mode, cold (a simple bind per CONNECT)", None),
    ("auth-ldap-cached", "LDAP (slapd), bind mode, cached", None),
]


def write_dashboard(w, res):
    """One-to-one QoS 0 and fan-out with the dashboard open in headless Chromium and closed
    (issue 13): two rounds each, alternating; the difference next to the spread of the runs."""
    rows = []
    for name, title in (("one-to-one-q0", "One-to-one, QoS 0, 64 B"), ("fanout-100-q0", "Fan-out 1 -> 100, QoS 0, 64 B")):
        vals = {}
        for state in ("closed", "open"):
            for rnd in (1, 2):
                for r in load_runs(res / f"dash-{name}-{state}-{rnd}.swiftlet.json"):
                    v = metric(r, "recv")
                    if v:
                        vals.setdefault(state, []).append(v)
        if vals.get("closed") and vals.get("open"):
            rows.append((title, vals["closed"], vals["open"]))
    if not rows:
        return
    w("## The dashboard open in a browser")
    w("")
    w("swiftlet alone, the overview of the dashboard open in headless Chromium (charts from the")
    w("live event stream, counters polled every few seconds) during the run, against the same run")
    w("with no browser; two rounds each, alternating. The spread is the larger difference between")
    w("two runs in the same state: a difference within it is noise.")
    w("")
    w("| scenario | closed msg/s | open msg/s | open / closed | spread of runs |")
    w("|---|---:|---:|---:|---:|")
    for title, closed, opened in rows:
        c = sum(closed) / len(closed)
        o = sum(opened) / len(opened)
        spread = max((max(v) - min(v)) / (sum(v) / len(v)) for v in (closed, opened))
        w(f"| {title} | {fmt(c)} | {fmt(o)} | {o / c:.3f} | {spread * 100:.1f} % |")
    w("")


def write_auth(w, runs):
    """CONNECT with swiftlet-auth-sql (issue 11), swiftlet-auth-redis (issue 12) and
    swiftlet-auth-ldap (issue 16), next to built-in auth on the same machine."""
    if not any((k, "swiftlet") in runs for k, _, _ in AUTH_ROWS):
        return
    base_run = runs.get(("auth-builtin", "swiftlet"))
    base = metric(base_run, "connrate")
    base_rss = (base_run or {}).get("brokerProcess", {}).get("rssAfterBytes")
    w("## CONNECT with database auth (swiftlet-auth-sql, -redis, -mongo, -ldap)")
    w("")
    w("swiftlet alone, 10,000 CONNECTs at 200 in progress, against MariaDB, PostgreSQL, Redis,")
    w("SecantusDB (a MongoDB wire-protocol server in Python, from PyPI: MongoDB is not in Debian) and")
    w("slapd, started by `scripts/bench` on this machine (the seed's tables and queries, its Redis keys")
    w("and commands, its MongoDB collections and queries, `password_hash = \"sha256\"`, or the seed's")
    w("LDAP `user_dn` with `{SSHA}` passwords; `pool_size = 8`). Cold: every CONNECT a user of")
    w("its own, each a database lookup (Redis: authcmd, supercmd and subcmd in one round trip; LDAP:")
    w("one simple bind);")
    w("cached: the same client ids, users, passwords and source addresses again on the same")
    w("broker, answered by its decision cache. Targets: SQL (issue 11) cold at least 50 %, Redis")
    w("(issue 12) cold at least 60 %, cached at least 90 % of built-in, broker RSS unchanged by the")
    w("sidecar (it is a process of its own).")
    w("")
    w("| run | CONNECT/s | of built-in | target | refused or failed | broker RSS after, MiB | of built-in RSS |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for key, title, target in AUTH_ROWS:
        r = runs.get((key, "swiftlet"))
        if r is None:
            continue
        rate = metric(r, "connrate")
        conn = r.get("connections") or {}
        rss = (r.get("brokerProcess") or {}).get("rssAfterBytes")
        share = f"{rate / base * 100:.0f} %" if rate and base else "—"
        met = "" if target is None or not (rate and base) else (" (met)" if rate / base >= target else " (not met)")
        w("| " + " | ".join([
            title, fmt(rate), share, (f">= {target * 100:.0f} %" + met) if target else "—",
            str(conn.get("errors", 0)), f"{rss / 1048576:.1f}" if rss else "—",
            f"{rss / base_rss:.2f}x" if rss and base_rss else "—"]) + " |")
    w("")


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
    write_auth(w, runs)
    write_dashboard(w, res)
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
    write_cpu_split(w, runs)
    write_syscalls(w, res)
    allocs = write_allocations(w, res)
    write_targets(w, runs, allocs)
    if ("idle-10k", "swiftlet") in runs:
        w(IDLE_BREAKDOWN)
    w("## Commands")
    w("")
    w("```")
    for k, v in commands.items():
        w(f"{k}: {v}")
    w("```")
    w("")
    for name, lang in (("swiftlet.toml", "toml"), ("mosquitto.conf", ""), ("auth_mysql.toml", "toml"),
                       ("auth_pgsql.toml", "toml"), ("auth_redis.toml", "toml"),
                       ("auth_mongo.toml", "toml"), ("auth_ldap.toml", "toml")):
        p = res / name
        if p.exists():
            w(f"`{name}`:")
            w("")
            w(f"```{lang}")
            w(re.sub(r"\b\d{4,5}\b(?=\"?$)", "PORT", p.read_text().strip(), flags=re.M))
            w("```")
            w("")
    return "\n".join(out) + "\n"


BROKER_SHARE_TARGET = 0.30


def cpu_per_100k(run):
    """(broker user, broker system, generator) CPU seconds per 100,000 messages received, i.e.
    the cores each would use at 100,000 msg/s; None where the run did not record it."""
    if not run or not run.get("receivedPerSecond") or not run.get("durationSeconds"):
        return None
    msgs = run["receivedPerSecond"] * run["durationSeconds"]
    bp, bench = run.get("brokerProcess") or {}, run.get("bench") or {}

    def per(v):
        return None if v is None else v / msgs * 1e5
    return per(bp.get("userSeconds")), per(bp.get("systemSeconds")), per(bench.get("cpuSeconds"))


def write_cpu_split(w, runs):
    """Issue 19: where each throughput row's time goes, per 100,000 msg/s."""
    rows = []
    for key, title, kind, unit, _ in ROWS:
        if kind != "recv":
            continue
        for broker in BROKERS:
            split = cpu_per_100k(runs.get((key, broker)))
            if split and split[0] is not None:
                rows.append((key, broker, split))
    if not rows:
        return
    w("### CPU per 100,000 msg/s: broker (user, system) and generator")
    w("")
    w("Cores each part would use at 100,000 msg/s received (CPU seconds per 100,000 messages) in the "
      "runs above: the broker's user time (its own code and libraries), its system time (the "
      "kernel working for it: socket reads and writes, loopback TCP, wake-ups) and the load "
      f"generator's user + system time. Issue 19's bound: broker below {BROKER_SHARE_TARGET:.2f} of a "
      "core per 100,000 msg/s.")
    w("")
    w("| scenario | broker | broker user | broker system | broker total | generator | broker below 0.30 |")
    w("|---|---|---:|---:|---:|---:|---|")
    for key, broker, (u, sy, g) in rows:
        total = u + (sy or 0)
        verdict = ("yes" if total < BROKER_SHARE_TARGET else "no") if broker == "swiftlet" else ""
        w(f"| {key} | {broker} | {u:.3f} | {'—' if sy is None else f'{sy:.3f}'} | {total:.3f} | "
          f"{'—' if g is None else f'{g:.3f}'} | {verdict} |")
    w("")


def live_mallocs(res, name, broker):
    """(mallocs per received message, messages) of a `mallocs-NAME.BROKER` run, or None."""
    perf, run = res / f"mallocs-{name}.{broker}.perf", res / f"mallocs-{name}.{broker}.run"
    if not perf.exists() or not run.exists():
        return None
    counts, _ = perf_counts(perf)
    runs = load_runs(run)
    n = counts.get("probe_libc:malloc")
    recv = None
    if runs:  # a conn run counts per connection made, a traffic run per message received
        recv = (runs[-1].get("connections") or {}).get("connected") if name == "connect" else runs[-1].get("received")
    if n is None or not recv:
        return None
    return n / recv, recv


def write_live_mallocs(w, res):
    names = [("one-to-one-q0", "One-to-one, QoS 0, 64 B"), ("one-to-one-q1", "One-to-one, QoS 1, 64 B"),
             ("fanin-100-q1", "Fan-in 100 -> 1, QoS 1, 64 B"), ("fanout-100-q0", "Fan-out 1 -> 100, QoS 0, 64 B"),
             ("connect", "CONNECT and close, per connection (2,000)")]
    rows = [(t, live_mallocs(res, n, "swiftlet"), live_mallocs(res, n, "mosquitto")) for n, t in names]
    if not any(s or m for _, s, m in rows):
        return
    w("Mallocs per received message in a live run (every `malloc` of the broker process, counted by")
    w("a uprobe for the whole run, set-up included, ÷ messages the subscribers received; the CONNECT")
    w("row ÷ connections made, their close included; not timed):")
    w("")
    w("| scenario | swiftlet | mosquitto | messages or connections (swiftlet, mosquitto) |")
    w("|---|---:|---:|---|")
    for t, sv, mv in rows:
        f = lambda v: "—" if v is None else f"{v[0]:.2f}"
        n = lambda v: "—" if v is None else f"{v[1]:,}"
        w(f"| {t} | {f(sv)} | {f(mv)} | {n(sv)}, {n(mv)} |")
    w("")


# Issue 19's targets, as the quick table shows them: scenario -> (kind, bound).
QUICK_TARGETS = {
    "one-to-one-16k-q0": ("ratio", 4.0),
    "connect-rate": ("ratio", 3.0),
    "idle-10k": ("value", RSS_ROW_TARGETS["idle-10k"]),
}
QUICK_THROUGHPUT_TARGET = 5.0
QUICK_ALLOC_TARGET = 1


def quick(res):
    """The regression guard's output: each main row with both brokers and the ratio, then the
    allocations per forwarded PUBLISH (the broker's own), each against issue 19's target."""
    res = Path(res)
    meta = read_meta(res)
    runs = {}
    for f in sorted(res.glob("*.json")):
        m = re.fullmatch(r"(.+)\.(swiftlet|mosquitto)\.json", f.name)
        if m:
            rs = load_runs(f)
            if rs:
                runs[(m.group(1), m.group(2))] = rs[-1]
    out = []
    w = out.append
    w(f"scripts/bench --quick at {meta.get('COMMIT', '?')}, {meta.get('DATE', '?')}, "
      f"{meta.get('DURATION', '?')} s per traffic run, measured in {meta.get('MEASURE_SECONDS', '?')} s")
    w("")
    w("| scenario | swiftlet | mosquitto | unit | ratio | target | |")
    w("|---|---:|---:|---|---:|---|---|")
    for key, title, kind, unit, better in ROWS:
        s, mq = runs.get((key, "swiftlet")), runs.get((key, "mosquitto"))
        if s is None and mq is None:
            continue
        vs, vm = metric(s, kind), metric(mq, kind)
        ratio = vs / vm if vs and vm else None
        target, verdict = "—", ""
        tk, bound = QUICK_TARGETS.get(key, ("ratio", QUICK_THROUGHPUT_TARGET) if unit == "msg/s" else (None, None))
        if tk == "ratio" and ratio is not None:
            target, verdict = f">= {bound:g}x", "meets" if ratio >= bound else "short"
        elif tk == "value" and vs is not None:
            target, verdict = f"<= {bound:,} B", "meets" if vs <= bound else "short"
        elif kind == "p99" and ratio is not None:
            target, verdict = "<= mosquitto", "meets" if ratio <= 1 else "short"
        lost = sum(((r or {}).get("lost") or 0) for r in (s, mq))
        note = f" (lost {lost})" if lost else ""
        w(f"| {title}{note} | {fmt(vs, unit)} | {fmt(vm, unit)} | {unit} | "
          f"{'—' if ratio is None else f'{ratio:.2f}x'} | {target} | {verdict} |")
    w("")
    write_cpu_split(w, runs)
    write_live_mallocs(w, res)
    alloc, stacks_file = res / "alloc.md", res / "alloc-stacks.txt"
    parsed = {}
    if alloc.exists() and alloc.read_text().strip():
        parsed = parse_package_benchmark(clean_package_benchmark(alloc.read_text()))
    elif stacks_file.exists():
        parsed = parse_box_totals(stacks_file.read_text())
    if parsed:
        stacks = parse_allocation_stacks(stacks_file.read_text()) if stacks_file.exists() else {}
        w("| allocations per forwarded PUBLISH | total | broker's own | target | |")
        w("|---|---:|---:|---|---|")
        for t, m in parsed.items():
            if t.lower().startswith("harness") or "Malloc (total)" not in m:
                continue
            total = m["Malloc (total)"]
            own = None
            if t in stacks and stacks[t][0]:
                n, rows = stacks[t]
                own = sum(c for c, cls, _ in rows if cls == "broker") * total / n
            q0 = t.startswith("QoS 0")
            verdict = "" if own is None or not q0 else ("meets" if own <= QUICK_ALLOC_TARGET else "short")
            w(f"| {t} | {total:g} | {'—' if own is None else f'{own:g}'} | "
              f"{f'<= {QUICK_ALLOC_TARGET}' if q0 else '—'} | {verdict} |")
        w("")
    return "\n".join(out) + "\n"


PART = re.compile(r"^<!-- ([\w-]+):begin -->$.*?^<!-- \1:end -->$", re.S | re.M)


def preserved_parts(old_path):
    """The <!-- NAME:begin --> ... <!-- NAME:end --> parts of a report, written by other tools
    (scripts/bench-gateways, the curves) or by hand, which a new report keeps."""
    try:
        text = Path(old_path).read_text()
    except OSError:
        return []
    return [m.group(0) for m in PART.finditer(text)]


def main(argv):
    if len(argv) >= 3 and argv[1] == "--line":
        for run in load_runs(argv[2]):
            print(human_line(run))
        return 0
    if len(argv) == 3 and argv[1] == "--quick":
        sys.stdout.write(quick(argv[2]))
        return 0
    if len(argv) == 4 and argv[2] == "--preserve":
        sys.stdout.write(report(argv[1]))
        for part in preserved_parts(argv[3]):
            sys.stdout.write("\n" + part + "\n")
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(report(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
