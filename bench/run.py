#!/usr/bin/python3
"""bench/run.py - runs kbridge's benchmark scenarios (bench/README.md).

For each scenario: a fresh mock Kafka cluster (build/mockkafka) and a fresh
bridge (./kbridge, or the BENCH_BRIDGE command) pinned to one core, the load
tools (build/bench/wsload, build/bench/produce) and the mock pinned to the
other. Measures what clients received (wsload), what the bridge cost
(utime+stime and VmRSS from /proc/PID), prints one table and writes
build/bench/results.json and results.md. Standard library only, but for
the auth scenario's tokens: Debian's PyJWT (python3-jwt), so they are made
by a library independent of kbridge's own JWT code.

  bench/run.py                       every scenario (what `make bench` runs)
  bench/run.py --only fanout-1kx1k,idle-10k
  bench/run.py --scenario fanout:5x200 --duration 3 --out build/bench-test
  bench/run.py --scenario fanout:100x1000:msgpack --scenario fanout:100x1000:interval=250:keys=100
  bench/run.py --scenario state:100x1000 --scenario fanout:100x1000:channels=4:keys=100:layout=state
  bench/run.py --only fanout-1kx1k,fanout-1kx1k-auth
  bench/run.py --only fanout-1kx1k,fanout-1kx1k-deflate
  bench/run.py --only fanout-1kx1k,fanout-1kx1k-sse
  bench/run.py --only floor-fanout-1kx1k,fanout-1kx1k --duration 5
  bench/run.py --scenario floor:keyed:1000x1000 --scenario keyed:1000x1000 --scenario ready:3
  bench/run.py --only fanout-1kx1k,publish-100x100,publish-100x100+fanout-1k

The floor rows (floor-*) run build/bench/floor, a reference sender with no
Kafka and no per-record work, in the bridge's place for the same clients
and record schedule; every kbridge row of the same clients and rate gets
its CPU per delivery as a ratio to its floor's and the p99 difference
(column "vs floor", results.json), and the same for its loop thread alone
(bench/bridgecpu.py: "loop s/M", "loop vs floor", librdkafka's share "rdk %").
Rows named -w2 run kbridge --workers 2 (a master and two worker processes,
their CPU summed, on every core beside the tools; judged by deliveries per
CPU-second against the -w1 row: one process placed the same way). The deflate row
(fanout-1kx1k-deflate) has every client negotiate permessage-deflate (wsload
--deflate) and is judged against fanout-1kx1k of the same run: CPU per
delivery and wire bytes per message, with a per-client compressor's cost
estimated beside it. The SSE row (fanout-1kx1k-sse) has the same clients
take the records as Server-Sent Events (GET /sse, wsload --sse) and is
judged against fanout-1kx1k of the same run: CPU per delivery. The start-to-ready row times kbridge
from exec to the first 200 from GET /ready, 5 starts on fresh mock clusters.
The publish rows (issue 19) have 100 WebSocket clients publish 100 records/s
each (wsload --publish: acknowledged/s, ack latency, bridge CPU per 1,000
publishes), the second with fanout-1kx1k's readers and records beside them,
compared with that row of the same run.
"""
import argparse
import datetime
import json
import math
import os
import platform
import queue
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import bridgecpu

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOPIC = CHANNEL = "bench"
PUB_CHANNEL = "pub"         # the publish rows: channel and topic (--publish pub=pub, -t pub)
PUB_SIZE = 100              # the publish rows: bytes of a record's value (the message's data)
PUB_READ_RATE = 1000        # the publish rows' fan-out readers: records/s produced to "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
README = os.path.join(ROOT, "bench", "README.md")
TABLE_BEGIN, TABLE_END = "<!-- bench-table-begin -->", "<!-- bench-table-end -->"

KBRIDGE_CMD = ("{bin} --brokers {brokers} --listen 127.0.0.1:{port} {routes} "
               "-X fetch.wait.max.ms=10 --max-clients 20000 --log-level warn")


# ---------------------------------------------------------------- scenarios

def variant(fmt, interval, keys, default_keys):
    """Name suffix of a format=msgpack and/or conflated (interval=MS) scenario."""
    return (("-msgpack" if fmt == "msgpack" else "") + (f"-i{interval}" if interval else "")
            + (f"-k{keys}" if keys != default_keys else ""))


def topics(channels):
    """The topics (each routed to the channel of its name) of a scenario
    with that many channels: "bench", or "bench1".."benchN"."""
    return [TOPIC] if channels == 1 else [f"{TOPIC}{i + 1}" for i in range(channels)]


def fanout(clients, rate, name=None, fmt="json", interval=0, keys=1, channels=1, layout="stream",
           auth=False, tls=False, workers=1, shared=False, deflate=False, sse=False):
    """C clients on the channel. fmt="msgpack": format=msgpack clients;
    interval: conflating clients (at most one message per key per interval);
    keys: the producer cycles over that many keys (per channel); channels:
    that many topics, each its own channel, every client subscribed to all
    (records spread over them in turn); layout: produce.c's --layout;
    auth: the bridge runs with --jwt-secret and every client brings a token
    allowing the channels, every other one narrowed by its token to the
    keys the producer uses (so it still gets every record: see mint_tokens);
    tls: wss, the bridge with --tls-cert/--tls-key (an ECDSA P-256 pair made
    for the run: see make_cert) and wsload --tls; workers: kbridge
    --workers N (N > 1: a master and N worker processes); shared: one
    process placed as the workers rows are, on every core beside the tools
    (-w1: what a -wN row is judged against); deflate: every client offers
    permessage-deflate and inflates what comes compressed (wsload
    --deflate), the bridge with its defaults (--deflate on, min size 256);
    sse: every client reads the channel as Server-Sent Events, GET
    /sse?channel=... (wsload --sse), instead of over a WebSocket."""
    base = f"fanout-{k(clients)}x{k(rate)}"
    suffix = ((f"-c{channels}" if channels != 1 else "") + variant(fmt, interval, keys, 1)
              + ("-" + layout if layout != "stream" else "") + ("-auth" if auth else "")
              + ("-wss" if tls else "") + ("-deflate" if deflate else "") + ("-sse" if sse else "")
              + (f"-w{workers}" if workers > 1 or shared else ""))
    return dict(name=name or base + suffix, base=base, kind="fanout",
                clients=clients, rate=rate, keys=keys, format=fmt, interval=interval,
                topics=topics(channels), layout=layout, auth=bool(auth), tls=bool(tls), workers=workers,
                shared=bool(shared or workers > 1), deflate=bool(deflate), sse=bool(sse))


def state(clients, rate, name=None, fmt="json", channels=4, keys=100, base=None, stype="web"):
    """C clients of the state dialect (type=web: one snapshot, then at most
    one update per 250 ms) subscribed to `channels` channels with `keys`
    keys each; values in produce.c's state layout. base: the record-stream
    scenario the row is compared with (default: fanout-CxR)."""
    return dict(name=name or f"state-{k(clients)}x{k(rate)}" + ("-msgpack" if fmt == "msgpack" else ""),
                base=base or f"fanout-{k(clients)}x{k(rate)}", kind="state", state=stype, clients=clients, rate=rate, keys=keys,
                format=fmt, interval=0, topics=topics(channels), layout="state")


def keyed(clients, rate, name=None, fmt="json", interval=0, workers=1, shared=False):
    base = f"keyed-{k(clients)}"
    return dict(name=name or base + variant(fmt, interval, clients, clients)
                + (f"-w{workers}" if workers > 1 or shared else ""), base=base, kind="keyed",
                clients=clients, rate=rate, keys=clients, format=fmt, interval=interval, workers=workers,
                shared=bool(shared or workers > 1))


def idle(clients, name=None, tls=False):
    base = f"idle-{k(clients)}"
    return dict(name=name or base + ("-wss" if tls else ""), base=base, kind="idle", clients=clients,
                tls=bool(tls))


def connect(clients, name=None, tls=False):
    base = f"connect-{k(clients)}"
    return dict(name=name or base + ("-wss" if tls else ""), base=base, kind="connect", clients=clients,
                tls=bool(tls))


def floor(of):
    """The floor row of a fanout or keyed scenario: build/bench/floor in
    the bridge's place (no Kafka, no mock cluster, no per-record work),
    the same clients subscribing the same way, its own records on
    produce.c's schedule at the same rate, keys and size. Every kbridge row
    with the same base (clients x rate) is compared with it."""
    return dict(name="floor-" + of["base"], base=of["base"], kind=of["kind"], floor=True,
                clients=of["clients"], rate=of["rate"], keys=of["keys"], format="json", interval=0,
                topics=[TOPIC], layout="stream")


def start_to_ready(starts=5, partitions=3):
    """kbridge's time from exec to the first 200 from GET /ready: `starts`
    starts, each against a fresh mock cluster with one topic of
    `partitions` partitions (bench-ready), routed literally (-t bench-ready)."""
    return dict(name="start-to-ready", base="start-to-ready", kind="ready", clients=0, starts=starts,
                partitions=partitions, topic="bench-ready")


def publish(clients, rate, readers=0, echo=1, name=None):
    """Publishing (issue 19): `clients` WebSocket clients each publishing
    `rate` records/s of PUB_SIZE B on channel PUB_CHANNEL (kbridge
    --publish pub=pub, and -t pub routing the topic back to the channel);
    `echo` readers of that channel check each publisher's records come back
    in order (wsload --per-key); one by default: each costs the bridge a
    fan-out of 10,000 deliveries/s, which would count as publishing's. readers: that many fan-out clients of
    "bench" fed at 1,000 records/s by produce meanwhile (the load of the
    fanout-<readers>x1k row, compared with it and with the publish row
    without readers)."""
    base = f"publish-{k(clients)}x{k(rate)}"
    fan = f"fanout-{k(readers)}x1k" if readers else None
    return dict(name=name or base + (f"+fanout-{k(readers)}" if readers else ""), base=base, kind="publish",
                clients=clients, rate=rate, readers=readers, echo=echo, fanout_row=fan,
                topics=([TOPIC] if readers else []) + [PUB_CHANNEL], keys=1, format="json", interval=0,
                layout="stream")


def k(n):
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def default_scenarios():
    # The authenticated, state-dialect, msgpack, conflated, deflate and SSE
    # variants of fanout-1kx1k sit right after it, so their cost reads
    # beside plain JSON's (over WebSocket). The state row's records are spread over 4 channels x 100 keys;
    # a record stream of those very records (fanout:1000x1000:channels=4:
    # keys=100:layout=state) costs the bridge what fanout-1kx1k does per
    # delivery, within a few percent (bench/README.md), so it is not run too.
    # Each wss row follows the plain row it is judged against. Each size
    # of fan-out, and keyed-10k, has its floor row right before it (every
    # kbridge row of that size is compared with it). The --workers 2 rows
    # (-w2) follow the single-process row they are judged against (-w1:
    # one process on the same cores, beside the tools, as the workers are).
    # The publish rows follow the fanout-1kx1k family: the second has
    # fanout-1kx1k's load beside the publishers and is compared with both.
    return [floor(fanout(100, 1000)), fanout(100, 1000),
            floor(fanout(1000, 1000)), fanout(1000, 1000), fanout(1000, 1000, tls=True),
            fanout(1000, 1000, auth=True), state(1000, 1000),
            fanout(1000, 1000, "fanout-1kx1k-msgpack", fmt="msgpack"),
            fanout(1000, 1000, "fanout-1kx1k-conflated", interval=250, keys=100),
            fanout(1000, 1000, deflate=True), fanout(1000, 1000, sse=True),
            publish(100, 100), publish(100, 100, readers=1000),
            floor(fanout(5000, 1000)), fanout(5000, 1000), fanout(5000, 1000, shared=True),
            fanout(5000, 1000, workers=2),
            floor(fanout(100, 10000)), fanout(100, 10000),
            floor(fanout(1000, 10000)), fanout(1000, 10000), floor(keyed(10000, 10000)), keyed(10000, 10000),
            keyed(10000, 10000, shared=True), keyed(10000, 10000, workers=2),
            idle(1000), idle(10000), idle(10000, tls=True),
            connect(10000), connect(10000, tls=True), start_to_ready()]


# The performance targets (bench/README.md, "Scenarios and targets"), on the
# 2-core machine with the bridge pinned to one core.
AUTH_CPU_RATIO_MAX = 1.10     # fanout-1kx1k-auth: CPU per delivery vs fanout-1kx1k's
TLS_CPU_RATIO_MAX = 2.0       # fanout-1kx1k-wss: CPU per delivery vs fanout-1kx1k's
TLS_IDLE_MAX = 16384          # idle-10k-wss: RSS per connection, bytes
DEFLATE_CPU_RATIO_MAX = 1.2   # fanout-1kx1k-deflate: CPU per delivery vs fanout-1kx1k's
DEFLATE_BYTES_RATIO_MAX = 0.5  # fanout-1kx1k-deflate: wire bytes per message vs fanout-1kx1k's
SSE_CPU_RATIO_MAX = 1.2       # fanout-1kx1k-sse: CPU per delivery vs fanout-1kx1k's
READY_MEDIAN_MAX_S = 0.25     # start-to-ready: exec to /ready, median of the starts


def check_targets(r):
    """Returns (target text, list of misses) for scenarios that have a target.
    fanout-1kx1k-auth is judged against fanout-1kx1k of the same run (the
    ratio compare() put in r["cpu_ratio"]); without that row, no target."""
    n, misses = r["name"], []

    def need(ok, text):
        if not ok:
            misses.append(text)
    if r.get("workers", 1) > 1:
        return bridgecpu.target(r)
    if n == "fanout-1kx1k-auth":
        if r.get("cpu_ratio") is None:
            return "", misses
        need(r.get("pct", 0) >= 100.0, f"delivered {r.get('pct', 0):.2f}% < 100%")
        need(r.get("gap_clients", 1) == 0, f"{r.get('gap_clients')} clients with gaps")
        need(r["cpu_ratio"] <= AUTH_CPU_RATIO_MAX,
             f"{r['cpu_ratio']:.2f}x {r['base']}'s CPU s/M > {AUTH_CPU_RATIO_MAX:.2f}x")
        return f"100%, no gaps, <={AUTH_CPU_RATIO_MAX:.2f}x {r['base']}'s CPU s/M", misses
    if n == "fanout-1kx1k-wss":
        need(r.get("pct", 0) >= 100.0, f"delivered {r.get('pct', 0):.2f}% < 100%")
        need(r.get("gap_clients", 1) == 0, f"{r.get('gap_clients')} clients with gaps")
        if r.get("cpu_ratio") is None:
            return "100%, no gaps", misses
        need(r["cpu_ratio"] <= TLS_CPU_RATIO_MAX,
             f"{r['cpu_ratio']:.2f}x {r['base']}'s CPU s/M > {TLS_CPU_RATIO_MAX:.1f}x")
        return f"100%, no gaps, <={TLS_CPU_RATIO_MAX:.0f}x {r['base']}'s CPU s/M", misses
    if n == "fanout-1kx1k-deflate":
        need(r.get("pct", 0) >= 100.0, f"delivered {r.get('pct', 0):.2f}% < 100%")
        need(r.get("gap_clients", 1) == 0, f"{r.get('gap_clients')} clients with gaps")
        res = r.get("wsload") or {}
        need(res.get("ext_declined", 1) == 0 and res.get("failed", 1) == 0,
             f"{res.get('ext_declined')} upgrades without permessage-deflate, {res.get('failed')} failed")
        need(res.get("deflated", 0) >= r.get("delivered", 0) > 0,
             f"{r.get('delivered', 0) - res.get('deflated', 0)} data messages not compressed")
        if r.get("cpu_ratio") is None or r.get("bytes_ratio") is None:
            return "100%, no gaps, all compressed", misses
        need(r["cpu_ratio"] <= DEFLATE_CPU_RATIO_MAX,
             f"{r['cpu_ratio']:.2f}x {r['base']}'s CPU s/M > {DEFLATE_CPU_RATIO_MAX:.1f}x")
        need(r["bytes_ratio"] <= DEFLATE_BYTES_RATIO_MAX,
             f"{r['bytes_ratio']:.2f}x {r['base']}'s B/msg > {DEFLATE_BYTES_RATIO_MAX:.1f}x")
        return (f"100%, no gaps, all compressed, <={DEFLATE_CPU_RATIO_MAX:.1f}x {r['base']}'s CPU s/M, "
                f"<={DEFLATE_BYTES_RATIO_MAX:.1f}x its B/msg"), misses
    if n == "fanout-1kx1k-sse":
        need(r.get("pct", 0) >= 100.0, f"delivered {r.get('pct', 0):.2f}% < 100%")
        need(r.get("gap_clients", 1) == 0, f"{r.get('gap_clients')} clients with gaps")
        res = r.get("wsload") or {}
        need(res.get("failed", 1) == 0 and res.get("sse_bad", 1) == 0,
             f"{res.get('failed')} failed, {res.get('sse_bad')} data events off the contract ({res.get('first_error')})")
        if r.get("cpu_ratio") is None:
            return "100%, no gaps", misses
        need(r["cpu_ratio"] <= SSE_CPU_RATIO_MAX,
             f"{r['cpu_ratio']:.2f}x {r['base']}'s CPU s/M > {SSE_CPU_RATIO_MAX:.1f}x")
        return f"100%, no gaps, <={SSE_CPU_RATIO_MAX:.1f}x {r['base']}'s CPU s/M", misses
    if n == "start-to-ready":
        need(r.get("ready_median_s") is not None and r["ready_median_s"] <= READY_MEDIAN_MAX_S,
             f"median {r.get('ready_median_s') or 0:.3f} s > {READY_MEDIAN_MAX_S:.2f} s")
        return f"median <= {READY_MEDIAN_MAX_S * 1000:.0f} ms", misses
    if n == "idle-10k-wss":
        need(r.get("rss_per_conn", 1e9) < TLS_IDLE_MAX,
             f"{r.get('rss_per_conn', 0):.0f} B/conn >= {TLS_IDLE_MAX // 1024} KiB")
        return f"< {TLS_IDLE_MAX // 1024} KiB RSS/conn", misses
    if n == "fanout-1kx1k" or n == "keyed-10k":
        cpu_max = 0.5 if n == "fanout-1kx1k" else 8.0
        need(r.get("pct", 0) >= 100.0, f"delivered {r.get('pct', 0):.2f}% < 100%")
        need(r.get("gap_clients", 1) == 0, f"{r.get('gap_clients')} clients with gaps")
        need(r.get("p99_ms", 1e9) < 20.0, f"p99 {r.get('p99_ms', 0):.1f} ms >= 20 ms")
        need(r.get("cpu_per_m", 1e9) <= cpu_max,
             f"{r.get('cpu_per_m', 0):.2f} CPU s/M > {cpu_max}")
        loop = bridgecpu.loop_target(r, need) if n == "keyed-10k" else ""
        return f"100%, no gaps, p99<20ms, <={cpu_max} CPU s/M{loop}", misses
    if n == "fanout-5kx1k":
        need(r.get("per_s", 0) >= 2e6, f"{r.get('per_s', 0) / 1e6:.2f} M/s < 2 M/s")
        return ">= 2,000,000 deliveries/s", misses
    if n == "idle-10k":
        need(r.get("rss_per_conn", 1e9) <= 1024, f"{r.get('rss_per_conn', 0):.0f} B/conn > 1 KiB")
        return "<= 1 KiB RSS/conn", misses
    if n == "connect-10k":
        need(r.get("connect_s", 1e9) < 0.5, f"{r.get('connect_s', 0):.3f} s >= 0.5 s")
        return "10k connections < 0.5 s", misses
    return "", misses


# ---------------------------------------------------------------- processes

class Proc:
    """A child whose stdout lines arrive on a queue (so waits are bounded)."""

    def __init__(self, name, argv, log_path, stdin=False, cpu=None):
        self.name = name
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv      # taskset execs: same PID
        self.argv = argv
        self.log = open(log_path, "ab")
        self.log.write(("# " + " ".join(shlex.quote(a) for a in argv) + "\n").encode())
        self.log.flush()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  text=True, bufsize=1)
        self.pid = self.p.pid
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.p.stdout:
            try:
                self.log.write(line.encode())
            except ValueError:      # log closed by stop()
                pass
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout, want=None):
        """Next stdout line (starting with `want` when given) within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no {want or 'output'} within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.p.wait()}) before {want or 'output'}")
            if want is None or line.startswith(want):
                return line

    def event(self, name, timeout):
        """Next JSON line with "event": name."""
        while True:
            line = self.line(timeout, "{")
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("event") == name:
                return obj

    def send(self, text):
        try:
            self.p.stdin.write(text + "\n")
            self.p.stdin.flush()
        except (OSError, ValueError):
            pass

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()
        return self.p.returncode


def proc_cpu(pid, tid=None):
    """utime + stime in seconds, from /proc/PID/stat (all threads) or one task."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK      # fields 14 and 15


def cpu_times():
    """{"cpu": [...], "cpu0": [...], ...} from /proc/stat, in seconds."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *vals = line.split()
            out[name] = [int(v) / CLK_TCK for v in vals]
    return out


def steal_s():
    """Time the hypervisor gave to other guests (all cores), /proc/stat."""
    v = cpu_times()["cpu"]
    return v[7] if len(v) > 7 else 0.0


def all_procs_cpu():
    """{pid: (comm, cpu seconds)} for every process: its own time plus that
    of its children it reaped (so short-lived jobs, a compiler run by make,
    still show up, in their parent)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        v = raw.rsplit(")", 1)[1].split()
        out[int(d)] = (comm, sum(int(x) for x in v[11:15]) / CLK_TCK)
    return out


def other_cpu(before, after, ours, wall, n=3):
    """CPU seconds used meanwhile by processes other than ours, and the n
    biggest users. A child reaped meanwhile brings its whole life into its
    parent's figure: no process counts for more than every core all along."""
    used = []
    cap = wall * (os.cpu_count() or 1)
    for pid, (comm, cpu) in after.items():
        if pid in ours:
            continue
        d = min(cap, cpu - before.get(pid, (comm, 0.0))[1])
        if d > 0:
            used.append((d, f"{comm}[{pid}]"))
    used.sort(reverse=True)
    return sum(d for d, _ in used), [f"{name} {d:.1f}s" for d, name in used[:n] if d >= 0.05]


def proc_cpus(pid):
    """The CPUs a process may run on (what taskset set), e.g. "0"."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def proc_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path, timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64).decode("latin-1")
            return int(head.split()[1]) if head.startswith("HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None


def http_json(port, path, timeout=5.0):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        resp = c.getresponse()
        body = resp.read()
        c.close()
        return json.loads(body) if resp.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None


def http_metrics(port, timeout=5.0):
    """kbridge's /metrics as {name: value} (unlabelled samples only)."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/metrics")
        resp = c.getresponse()
        body = resp.read().decode("utf-8", "replace")
        c.close()
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for line in body.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- one scenario

class Bench:
    def __init__(self, args):
        self.a = args
        self.out = os.path.join(ROOT, args.out)
        self.logs = os.path.join(self.out, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.kbridge = os.environ.get("KBRIDGE_BIN", os.path.join(ROOT, "kbridge"))
        self.mock_bin = os.environ.get("MOCKKAFKA_BIN", os.path.join(ROOT, "build", "mockkafka"))
        self.tools = os.environ.get("BENCH_TOOLS_DIR", os.path.join(ROOT, "build", "bench"))
        self.floor_bin = os.path.join(self.tools, "floor")
        self.template = os.environ.get("BENCH_BRIDGE") or KBRIDGE_CMD
        self.custom = bool(os.environ.get("BENCH_BRIDGE"))
        self.ready = os.environ.get("BENCH_READY", "tcp" if self.custom else "/ready")
        self.settle = float(os.environ.get("BENCH_SETTLE", "2" if self.custom else "0.5"))
        self.ws_path = os.environ.get("BENCH_WS_PATH", "/ws")
        self.sub = os.environ.get("BENCH_SUBSCRIBE")
        self.keyed_sub = os.environ.get("BENCH_KEYED_SUBSCRIBE")
        self.no_ack = os.environ.get("BENCH_NO_ACK", "") not in ("", "0")
        self.bridge_cpu, self.tools_cpu = args.bridge_cpu, args.tools_cpu

    def log_path(self, scen, what):
        return os.path.join(self.logs, f"{scen['name']}.{what}.log")

    def start_mock(self, scen):
        argv = [self.mock_bin, "--lifetime", "900"]
        for t in scen.get("topics", [TOPIC]):
            argv += ["--topic", f"{t}:1"]
        m = Proc("mockkafka", argv, self.log_path(scen, "mockkafka"), stdin=True, cpu=self.tools_cpu)
        line = m.line(15, "bootstrap=")
        return m, line.split("=", 1)[1]

    def mint_tokens(self, scen):
        """The auth scenario's HMAC secret (random, written with a trailing
        newline, which kbridge strips) and one HS256 token per client, made
        with PyJWT: exp an hour ahead, claim "kbridge" allowing every channel
        of the scenario; every odd client's also narrowed by "keys" to the
        keys the producer writes (k0..k<K-1>; one key, k0, in the default
        rows), so it receives every record as the others do, but its
        subscription sits in the channel's key index, not its flat list.
        Files in the output dir; the paths go into scen."""
        try:
            import jwt
        except ImportError:
            raise RuntimeError("the auth scenario mints its tokens with PyJWT: apt-get install python3-jwt")
        secret = os.urandom(32).hex()
        base = os.path.join(self.out, scen["name"])
        with open(base + ".secret", "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(secret + "\n")
        exp = int(time.time()) + 3600
        keys = [f"k{i}" for i in range(scen["keys"])]
        chans = scen.get("topics", [CHANNEL])
        with open(base + ".tokens", "w") as f:
            for i in range(scen["clients"]):
                perm = {"channels": chans}
                if i % 2:
                    perm["keys"] = keys
                tok = jwt.encode({"sub": f"bench-{i}", "exp": exp, "kbridge": perm}, secret, algorithm="HS256")
                f.write((tok.decode() if isinstance(tok, bytes) else tok) + "\n")
        scen.update(jwt_secret=base + ".secret", tokens=base + ".tokens", narrowed_keys=keys,
                    narrowed_clients=scen["clients"] // 2)

    def make_cert(self):
        """wss rows: a self-signed ECDSA P-256 certificate for 127.0.0.1 (SAN
        IP:127.0.0.1) and its key, made once per run by the openssl command
        line into the output dir. Returns (cert, key)."""
        cert, key = os.path.join(self.out, "tls-p256.crt"), os.path.join(self.out, "tls-p256.key")
        if not getattr(self, "_cert_made", False):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            self._cert_made = True
        return cert, key

    def bridge_argv(self, tops, brokers, port):
        """The bridge's command line (the template filled in)."""
        cmd = self.template
        for key, val in (("{bin}", self.kbridge), ("{brokers}", brokers), ("{port}", str(port)),
                         ("{listen}", f"127.0.0.1:{port}"), ("{topic}", tops[0]),
                         ("{routes}", " ".join(f"-t {t}" for t in tops)),
                         ("{channel}", tops[0])):
            cmd = cmd.replace(key, val)
        return shlex.split(cmd)

    def start_bridge(self, scen, brokers):
        """Returns the bridge, its port and the port of its plain HTTP
        endpoints (/ready, /stats, /metrics): a wss row's bridge serves TLS
        only on --listen, so it gets --admin-listen on loopback for them."""
        port = free_port()
        argv = self.bridge_argv(scen.get("topics", [TOPIC]), brokers, port)
        if scen.get("auth"):
            argv += ["--jwt-secret", scen["jwt_secret"]]
        if scen["kind"] == "publish":
            # publishing on PUB_CHANNEL into the topic of that name (the -t
            # route above reads it back); publishes are paced by their acks,
            # not by --client-rate
            argv += ["--publish", f"{PUB_CHANNEL}={PUB_CHANNEL}"]
        ctl = port
        if scen.get("tls"):
            cert, key = self.make_cert()
            ctl = free_port()
            argv += ["--tls-cert", cert, "--tls-key", key, "--admin-listen", f"127.0.0.1:{ctl}"]
        workers = scen.get("workers", 1)
        cpu = self.bridge_cpu
        if workers > 1 or scen.get("shared"):
            argv += ["--workers", str(workers)]
            if cpu is not None and self.tools_cpu not in (None, cpu):
                cpu = f"{cpu},{self.tools_cpu}"     # the workers get every core, shared with the tools
        b = Proc("bridge", argv, self.log_path(scen, "bridge"), cpu=cpu)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if b.p.poll() is not None:
                raise RuntimeError(f"bridge exited {b.p.returncode} at start-up "
                                   f"(see {self.log_path(scen, 'bridge')})")
            ok = tcp_open(port) if self.ready == "tcp" else http_status(ctl, self.ready) == 200
            if ok:
                if workers > 1:
                    scen["worker_pids"], scen["listeners"] = bridgecpu.wait_workers(b.pid, workers, port)
                time.sleep(self.settle)     # offsets resolved before the first record
                return b, port, ctl
            time.sleep(0.05)
        raise RuntimeError(f"bridge not ready ({self.ready}) within 30 s")

    def start_floor(self, scen):
        """A floor row's sender on the bridge's core: build/bench/floor
        listening on a port of its choice, records started by "go" on its
        stdin (run_traffic). Returns it and its port."""
        argv = [self.floor_bin, "--mode", scen["kind"], "--rate", str(scen["rate"]),
                "--keys", str(scen["keys"]), "--size", str(self.a.size), "--duration", str(self.a.duration),
                "--channel", CHANNEL, "--max-clients", "20000", "--tick-us", str(self.a.floor_tick_us),
                "--control"]
        f = Proc("floor", argv, self.log_path(scen, "bridge"), stdin=True, cpu=self.bridge_cpu)
        return f, f.event("listening", 15)["port"]

    def start_perf(self, scen, pid):
        """--perf: sample the bridge's stacks over the scenario (perf record;
        pid: a PID or several, comma-separated: a master and its workers)."""
        if not self.a.perf:
            return None
        data = self.log_path(scen, "perf").replace(".log", ".data")
        p = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return p, data

    def stop_perf(self, scen, perf):
        p, data = perf
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        report = self.log_path(scen, "perf").replace(".log", ".txt")
        with open(report, "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "sym",
                            "--stdio", "-g", "none", "--percent-limit", "0.5"],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=120)
        return os.path.relpath(report, ROOT)

    def start_wsload(self, scen, port, extra=(), what="wsload"):
        """wsload for the scenario; a floor row's clients speak kbridge's
        subscribe (floor reads "key" from it), whatever BENCH_* says.
        what: the log's name (a publish row runs several)."""
        fl = bool(scen.get("floor"))
        argv = [os.path.join(self.tools, "wsload"), "--port", str(port),
                "--path", "/ws" if fl else "/sse" if scen.get("sse") else self.ws_path,
                "--clients", str(scen["clients"]), "--inflight", str(self.a.inflight),
                "--channel", ",".join(scen.get("topics", [CHANNEL])), "--control", "--timeout", "300"]
        if scen["kind"] == "state":
            argv += ["--state", scen["state"]]
        elif scen["kind"] == "keyed":
            argv += ["--keys", str(scen["keys"])]
            if self.keyed_sub and not fl:
                argv += ["--subscribe", self.keyed_sub]
        elif self.sub and not fl:
            argv += ["--subscribe", self.sub]
        if self.no_ack and not fl:
            argv += ["--no-ack"]
        if scen.get("format", "json") != "json":
            argv += ["--format", scen["format"]]
        if scen.get("interval"):
            argv += ["--interval", str(scen["interval"])]
        if scen.get("tokens"):
            argv += ["--tokens", scen["tokens"]]
        if scen.get("tls"):
            argv += ["--tls"]       # no certificate check: the e2e tests verify (--ca)
        if scen.get("deflate"):
            argv += ["--deflate"]
        if scen.get("sse"):
            argv += ["--sse"]       # GET /sse?channel=...: no subscribe message, no ack
        argv += list(extra)
        return Proc(what, argv, self.log_path(scen, what), stdin=True, cpu=self.tools_cpu)

    def run(self, scen):
        if scen["kind"] == "ready":
            return self.run_ready(scen)
        if scen["kind"] == "publish":
            return self.run_publish(scen)
        r = dict(scen)
        procs = []
        perf = None
        fl = bool(scen.get("floor"))        # build/bench/floor in the bridge's place, no Kafka
        try:
            if scen.get("auth"):
                self.mint_tokens(r)
                scen = r
            if fl:
                mock, brokers = None, None
                bridge, port = self.start_floor(scen)
                ctl = None
            else:
                mock, brokers = self.start_mock(scen)
                procs.append(mock)
                bridge, port, ctl = self.start_bridge(r, brokers)
            procs.append(bridge)
            pid = bridge.pid
            # the bridge's processes (a master and its workers) and threads
            tasks = bridgecpu.Tasks(pid, scen.get("workers", 1))
            rss_base = tasks.rss()
            # CPU bookkeeping over the scenario, to tell how much of the
            # machine something else used meanwhile (the "noise" figure).
            steal0, t0, procs0 = steal_s(), time.monotonic(), all_procs_cpu()
            perf = self.start_perf(scen, ",".join(map(str, tasks.live())))
            cpu_c0 = tasks.read()
            wl = self.start_wsload(scen, port)
            procs.append(wl)
            ready = wl.event("ready", 120)
            # bridge CPU for the upgrades and subscribes (token checks included)
            r["connect_cpu_s"] = tasks.window(cpu_c0, tasks.read())["cpu"]
            r["cpus"] = dict(bridge=proc_cpus(pid), wsload=proc_cpus(wl.pid),
                             mock=proc_cpus(mock.pid) if mock else None)
            if scen.get("workers", 1) > 1:
                # how SO_REUSEPORT spread the clients: /stats workers[].clients
                # when kbridge gives it, and the sockets each worker holds
                r["worker_sockets"] = list(tasks.sockets().values())
                ws = (http_json(ctl, "/stats", timeout=15) or {}).get("workers")
                if isinstance(ws, list):
                    r["worker_clients"] = [w.get("clients") for w in sorted(ws, key=lambda w: w.get("index", 0))]
            r.update(connected=ready["connected"], connect_s=ready["connect_s"],
                     subscribe_s=ready["subscribe_s"])
            if scen.get("sse") and not self.custom:
                # the clients are SSE streams as kbridge sees them (/stats sse_clients)
                r["sse_clients"] = (http_json(ctl, "/stats", timeout=15) or {}).get("sse_clients")
                if r["sse_clients"] != ready["subscribed"]:
                    r.setdefault("notes", []).append(
                        f"/stats said sse_clients {r['sse_clients']} with {ready['subscribed']} streams open")
            if scen["kind"] in ("idle", "connect"):
                self.run_idle(r, wl, pid, rss_base)
            else:
                m0 = http_metrics(ctl) if (scen.get("tls") or scen.get("deflate")) and not self.custom else {}
                self.run_traffic(r, wl, tasks, brokers, mock.pid if mock else None, sender=bridge if fl else None)
                if m0:
                    # kbridge's counters over the window (the subscribes' acks
                    # before it are left out)
                    m1 = http_metrics(ctl)

                    def delta(name):
                        return m1[name] - m0.get(name, 0) if name in m1 else None
                    if scen.get("tls"):
                        # TLS records and flushes: how well a flush gathers frames
                        recs = delta("kbridge_tls_records_total") or 0
                        flushes = delta("kbridge_tls_flushes_total") or 0
                        r.update(tls_records=int(recs), tls_flushes=int(flushes),
                                 tls_records_per_flush=recs / flushes if flushes else None,
                                 tls_msgs_per_record=r["delivered"] / recs if recs else None)
                    if scen.get("deflate"):
                        # what kbridge wrote, and what it would have written uncompressed
                        sent, unc = delta("kbridge_bytes_sent_total"), delta("kbridge_bytes_uncompressed_total")
                        r.update(kb_bytes_sent=sent, kb_bytes_uncompressed=unc,
                                 kb_compression_ratio=unc / sent if sent and unc is not None else None)
                if not self.custom and not fl:
                    # kbridge's own counters tell where missing records went:
                    # never consumed (the mock keeps only 5 MB per partition,
                    # so a lagging consumer skips ahead) or dropped per client.
                    st = http_json(ctl, "/stats") or {}
                    r["bridge_stats"] = {k: st.get(k) for k in ("records_in", "messages_out",
                                                                "dropped", "slow_disconnects", "state")}
                    nw = r.get("workers", 1)        # workers: /stats sums them, each consumes every record
                    if st.get("records_in") is not None and st["records_in"] < r["produced"] * nw:
                        r.setdefault("notes", []).append(
                            f"kbridge consumed {st['records_in']} of {r['produced'] * nw} records"
                            + (f" ({nw} workers, each every record)" if nw > 1 else "")
                            + " (lag beyond the mock's 5 MB retention)")
                    if st.get("dropped"):
                        r.setdefault("notes", []).append(f"kbridge dropped {st['dropped']} "
                                                         "messages to slow clients")
                res = r["wsload"]
                if res.get("ext_declined"):
                    r.setdefault("notes", []).append(
                        f"{res['ext_declined']} upgrades answered without permessage-deflate ({res['first_error']})")
                if res.get("wrong_format"):
                    r.setdefault("notes", []).append(
                        f"{res['wrong_format']} messages not in the format asked for ({res['format']})")
                if scen["kind"] == "state":
                    if res.get("seq_errors"):
                        r.setdefault("notes", []).append(f"{res['seq_errors']} snapshots or updates out of seq")
                    if res.get("snapshots", 0) > res.get("subscribed", 0):
                        r.setdefault("notes", []).append(
                            f"{res['snapshots'] - res['subscribed']} snapshots beyond each client's first "
                            "(clients resynced after a full queue)")
                    if res.get("superseded"):
                        r.setdefault("notes", []).append(
                            f"{res['superseded']} records x clients never carried (a newer value of the key "
                            "came within the same period)")
                if (r.get("interval") or scen["kind"] == "state") and \
                        (res.get("clients_disorder") or res.get("clients_stale")):
                    r.setdefault("notes", []).append(
                        f"{'state' if scen['kind'] == 'state' else 'conflation'}: {res['clients_disorder']} "
                        f"clients saw a key's {'kn go' if scen['kind'] == 'state' else 'n repeat or go'} "
                        f"back ({res['dups']} times), {res['clients_stale']} clients missed the newest "
                        f"value of {res['stale']} keys in all")
            self.meanwhile(r, t0, steal0, procs0, {os.getpid(), mock.pid if mock else None, wl.pid,
                                                   r.get("produce_pid")} | tasks.pids())
            if perf:
                r["perf"] = self.stop_perf(scen, perf)
                perf = None
            workers = bridgecpu.identify(tasks.live()[1:])
            r["bridge_exit"] = bridge.stop()
            if r["bridge_exit"] not in (0, None):
                r.setdefault("notes", []).append(f"bridge exited {r['bridge_exit']}")
            left = bridgecpu.leftover(workers)
            if left:
                r.setdefault("notes", []).append(f"worker(s) {', '.join(map(str, left))} still ran after the "
                                                 "master exited; killed")
        except Exception as e:      # one broken scenario must not lose the others
            r["error"] = str(e)
        finally:
            if perf and perf[0].poll() is None:
                perf[0].kill()
                perf[0].wait()
            for p in reversed(procs):
                if p.name == "mockkafka":
                    p.send("quit")
                if p.name == "wsload":
                    p.send("stop")
                p.stop()
        return r

    @staticmethod
    def meanwhile(r, t0, steal0, procs0, ours):
        """What else the machine did since t0 (the scenario's start): the
        hypervisor's steal and other processes' CPU, as shares of a core
        (r["steal"], r["noise"], r["noise_top"]) and notes when over 5%."""
        wall = time.monotonic() - t0
        other, r["noise_top"] = other_cpu(procs0, all_procs_cpu(), ours, wall)
        r["noise"] = other / wall
        r["steal"] = (steal_s() - steal0) / wall
        if r["steal"] > 0.05:
            r.setdefault("notes", []).append(
                f"the hypervisor stole {r['steal'] * 100:.0f}% of a core meanwhile")
        if r["noise"] > 0.05:
            r.setdefault("notes", []).append(
                f"other processes used {r['noise'] * 100:.0f}% of a core meanwhile"
                + (f" ({', '.join(r['noise_top'])})" if r["noise_top"] else ""))

    def run_ready(self, scen):
        """start-to-ready: `starts` times, a fresh mock cluster (topic
        bench-ready of 3 partitions, with Kafka's initial rebalance delay of
        3 s, --rebalance-delay 3000), then the bridge, timed with time.monotonic() from just
        before Popen (fork + exec included) to the first 200 from GET /ready,
        polled every 5 ms; SIGTERM, the mock quits, next. Median and max."""
        r = dict(scen)
        times, exits = [], []
        delay = 3000
        r["rebalance_delay_ms"] = delay
        cpu = self.bridge_cpu
        try:
            for i in range(scen["starts"]):
                margv = [self.mock_bin, "--lifetime", "300", "--topic", f"{scen['topic']}:{scen['partitions']}",
                         "--rebalance-delay", str(delay)]
                mock = Proc("mockkafka", margv, self.log_path(scen, "mockkafka"), stdin=True, cpu=self.tools_cpu)
                bridge = None
                log = open(self.log_path(scen, "bridge"), "ab")
                try:
                    brokers = mock.line(15, "bootstrap=").split("=", 1)[1]
                    port = free_port()
                    argv = self.bridge_argv([scen["topic"]], brokers, port)
                    log.write(("# start %d: %s\n" % (i + 1, " ".join(shlex.quote(a) for a in argv))).encode())
                    log.flush()
                    pin = (lambda: os.sched_setaffinity(0, {int(cpu)})) if cpu is not None else None
                    t0 = time.monotonic()
                    bridge = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT,
                                              preexec_fn=pin)
                    while True:
                        ok = tcp_open(port) if self.ready == "tcp" else http_status(port, self.ready) == 200
                        t = time.monotonic() - t0
                        if ok:
                            times.append(t)
                            break
                        if bridge.poll() is not None:
                            raise RuntimeError(f"bridge exited {bridge.returncode} before ready "
                                               f"(see {self.log_path(scen, 'bridge')})")
                        if t > 60:
                            raise RuntimeError("bridge not ready within 60 s")
                        time.sleep(0.005)
                finally:
                    if bridge is not None:
                        if bridge.poll() is None:
                            bridge.send_signal(signal.SIGTERM)
                            try:
                                bridge.wait(10)
                            except subprocess.TimeoutExpired:
                                bridge.kill()
                                bridge.wait(5)
                        exits.append(bridge.returncode)
                    log.close()
                    mock.send("quit")
                    mock.stop()
        except Exception as e:      # one broken scenario must not lose the others
            r["error"] = str(e)
        ts = sorted(times)
        r.update(ready_s=times, bridge_exits=exits, bridge_exit=next((x for x in exits if x != 0), 0) if exits else None)
        if ts:
            r.update(ready_median_s=ts[len(ts) // 2] if len(ts) % 2 else (ts[len(ts) // 2 - 1] + ts[len(ts) // 2]) / 2,
                     ready_max_s=ts[-1], ready_min_s=ts[0])
        r.setdefault("notes", []).append(
            f"{len(times)} starts of a fan-out bridge (-t {scen['topic']}, {scen['partitions']} partitions), "
            f"each on a fresh mock cluster with Kafka's initial rebalance delay, {delay} ms "
            f"(a group join would wait it; fan-out with literal routes joins none)" +
            ("; seconds to ready: " + ", ".join(f"{t:.3f}" for t in times) if times else ""))
        return r

    def run_idle(self, r, wl, pid, rss_base):
        time.sleep(1.0)             # let per-connection buffers shrink back
        rss = proc_rss(pid)
        wl.send("stop")
        res = wl.event("result", 30)
        r["wsload"] = res
        n = max(1, res["subscribed"])
        r.update(rss=rss, rss_base=rss_base, rss_per_conn=(rss - rss_base) / n,
                 failed=res["failed"], closed=res["closed"],
                 connect_p99_ms=res["connect_ms"]["p99"])

    def run_traffic(self, r, wl, tasks, brokers, mock_pid, sender=None):
        """The traffic window: produce (or, floor: the floor's own records,
        started by "go"; its start and result lines have produce's fields)
        for the duration, then wsload drains. tasks: the bridge's processes
        and threads (bridgecpu.Tasks), read at both ends of the window and
        on every RSS sample between."""
        time.sleep(0.3)
        wl_cpu0 = proc_cpu(wl.pid)
        cpu0 = tasks.read()
        mock0 = proc_cpu(mock_pid) if mock_pid else 0.0
        syscw0 = tasks.syscw()
        t0 = time.monotonic()
        if sender:
            prod = sender
            sender.send("go")
        else:
            prod = Proc("produce", [os.path.join(self.tools, "produce"), "--brokers", brokers,
                                    "--topic", ",".join(r.get("topics", [TOPIC])), "--partition", "0",
                                    "--rate", str(r["rate"]), "--layout", r.get("layout", "stream"),
                                    "--size", str(self.a.size), "--keys", str(r["keys"]),
                                    "--duration", str(self.a.duration)],
                        self.log_path(r, "produce"), cpu=self.tools_cpu)
            r["produce_pid"] = prod.pid
        try:
            start = prod.event("start", 30)
            rss_max = tasks.rss()
            # Sample RSS while the producer runs (its result line ends the loop).
            deadline = time.monotonic() + self.a.duration + 60
            pres = None
            while pres is None and time.monotonic() < deadline:
                rss_max = max(rss_max, tasks.rss())
                tasks.read()        # workers seen, and their last CPU, should one exit
                try:
                    line = prod.lines.get(timeout=0.25)
                except queue.Empty:
                    continue
                if line is None:
                    break
                if line.startswith("{") and json.loads(line).get("event") == "result":
                    pres = json.loads(line)
            if pres is None:
                raise RuntimeError("producer gave no result")
        finally:
            if not sender:
                prod.stop()
        acked = pres["acked"]
        expected = self.expected(r, acked)
        plain = self.expected(dict(r, interval=0), acked)     # records x their subscribers
        # Drain: wait until every expected message arrived, or 2 s of silence,
        # or 20 s; then the window closes. Conflation: the expected figure is
        # only a bound, and every key's newest value must arrive: silence ends it.
        # State dialect: wsload counts the values carried (each record's "kn"
        # per client), and every one is due unless a newer one of its key came
        # within the same period.
        wl.send(f"drain {0 if r.get('interval') else expected} 2000 20000")
        res = wl.event("result", 60)
        wall = time.monotonic() - t0
        split = tasks.window(cpu0, tasks.read())
        cpu = split["cpu"]
        syscw1 = tasks.syscw()
        writes = syscw1 - syscw0 if syscw0 is not None and syscw1 is not None else None
        try:
            wl_cpu = proc_cpu(wl.pid) - wl_cpu0
        except OSError:         # already exited
            wl_cpu = res["cpu_s"]
        # --deflate: its zlib timings at the end are not load
        wl_cpu -= sum((res.get(t) or {}).get("cpu_s", 0.0) for t in ("deflate_cost", "inflate_cost"))
        tools_cpu = wl_cpu + (proc_cpu(mock_pid) - mock0 if mock_pid else 0.0) + pres.get("cpu_s", 0.0)
        rss_max = max(rss_max, tasks.rss())
        msgs = res["msgs"]
        span = max(pres["duration_s"], (res["last_us"] - start["t_us"]) / 1e6) if msgs else 0
        lat = res["latency_ms"]
        conflated = bool(r.get("interval"))
        r.update(wsload=res, produce=pres, produced=acked, expected=expected, delivered=msgs,
                 records_x_clients=plain,
                 pct=100.0 * msgs / expected if expected else 0.0,
                 per_s=msgs / span if span else 0.0, expected_per_s=expected / pres["duration_s"],
                 p50_ms=lat["p50"], p99_ms=lat["p99"], p999_ms=lat["p999"], max_ms=lat["max"],
                 # Conflation skips records by design: a "gap client" there is one
                 # that saw a key's "n" repeat or go back, or missed a key's newest value.
                 gap_clients=res["clients_bad"] if conflated else res["clients_with_gaps"],
                 missing=res["missing"], dups=res["dups"], server_errors=res["server_errors"],
                 bytes_per_msg=res["bytes"] / msgs if msgs else None,
                 cpu_s=cpu,
                 # CPU s per million deliveries; conflated: per million records x
                 # clients (what the same clients would get without conflation),
                 # comparable with plain JSON, and per delivery beside it.
                 cpu_per_m=(cpu / plain * 1e6 if plain else None) if conflated else
                 (cpu / msgs * 1e6 if msgs else None),
                 cpu_per_m_deliveries=cpu / msgs * 1e6 if msgs else None,
                 bridge_util=cpu / wall, tools_util=tools_cpu / wall, wsload_util=wl_cpu / wall, window_s=wall, rss=rss_max,
                 wsload_cpu_s=wl_cpu,
                 closed=res["closed"], failed=res["failed"],
                 # the bridge's write/writev calls over the window (kbridge: a
                 # flush of a client's queue; librdkafka's sockets use sendmsg,
                 # not counted), and data messages per call
                 writes=writes, msgs_per_write=msgs / writes if writes else None)
        if sender:
            # what the floor did for those deliveries (its result line)
            dw = pres.get("data_writes") or 0
            r.update(floor_result=pres, data_writes=dw, partial_writes=pres.get("partial_writes"),
                     slow_closed=pres.get("slow_closed"),
                     deliveries_per_write=pres["deliveries"] / dw if dw else None)
        if r["kind"] == "state":
            # A delivery is a client-update; "% exp" is the share of records x
            # clients whose value reached the client (in some update); the
            # latency is each value's age when its update arrived (production
            # to receipt: up to a period of waiting for the tick, plus the
            # pipeline); CPU per million client-updates (= us per update), and
            # per million records x clients to compare with a record stream.
            values, upd = res["values"], res["updates"]
            r.update(delivered=upd, values=values, pct=100.0 * values / expected if expected else 0.0,
                     expected_per_s=None, gap_clients=res["clients_bad"], missing=res["superseded"],
                     bytes_per_msg=res["update_bytes"] / upd if upd else None,
                     bytes_per_value=res["update_bytes"] / values if values else None,
                     snapshots=res["snapshots"], snapshot_bytes=res["snapshot_bytes"],
                     update_bytes=res["update_bytes"],
                     cpu_per_m=cpu / upd * 1e6 if upd else None, cpu_per_m_deliveries=cpu / upd * 1e6 if upd else None,
                     cpu_per_m_records=cpu / plain * 1e6 if plain else None,
                     update_gap_ms=res["update_gap_ms"], newest_age_ms=res["newest_age_ms"],
                     update_delay_ms=res["update_delay_ms"])
        # the loop thread(s) and librdkafka's share, per the unit of CPU s/M
        bridgecpu.window_figures(r, split, r["delivered"] if r["kind"] == "state" else plain if conflated else msgs)

    def run_publish(self, scen):
        """A publish row: a fresh mock cluster (topic "pub", and "bench"
        with readers), kbridge with --publish pub=pub and -t pub (plus -t
        bench); the readers connect first (the fan-out clients of "bench",
        then the echo readers of "pub"), then the publishers (wsload
        --publish). The window: "publish D" to the publishers and, with
        readers, produce at 1,000 records/s to "bench" for D s; the
        publishers finish once every publish is answered, then the readers
        drain as in run_traffic. Bridge CPU over the window per publish
        acknowledged; what the readers got, as a fan-out row's figures."""
        r = dict(scen)
        procs = []
        try:
            mock, brokers = self.start_mock(r)
            procs.append(mock)
            bridge, port, ctl = self.start_bridge(r, brokers)
            procs.append(bridge)
            tasks = bridgecpu.Tasks(bridge.pid)
            rss_base = tasks.rss()
            steal0, t0, procs0 = steal_s(), time.monotonic(), all_procs_cpu()
            cpu_c0 = tasks.read()
            fan = None
            if r["readers"]:
                fan = self.start_wsload(dict(r, kind="fanout", clients=r["readers"], topics=[TOPIC]), port,
                                        what="readers")
                procs.append(fan)
                fan.event("ready", 120)
            echo = self.start_wsload(dict(r, kind="fanout", clients=r["echo"], topics=[PUB_CHANNEL]), port,
                                     ["--per-key"], what="echo")
            procs.append(echo)
            echo.event("ready", 60)
            pubs = self.start_wsload(dict(r, kind="publish", topics=[PUB_CHANNEL]), port,
                                     ["--publish", str(r["rate"]), "--size", str(PUB_SIZE)], what="publishers")
            procs.append(pubs)
            ready = pubs.event("ready", 60)
            r.update(connected=ready["connected"], connect_s=ready["connect_s"],
                     connect_cpu_s=tasks.window(cpu_c0, tasks.read())["cpu"])
            loads = [p for p in (fan, echo, pubs) if p]

            time.sleep(0.3)
            load0 = sum(proc_cpu(p.pid) for p in loads)
            mock0 = proc_cpu(mock.pid)
            cpu0 = tasks.read()
            tw = time.monotonic()
            prod = pres = None
            if fan:
                prod = Proc("produce", [os.path.join(self.tools, "produce"), "--brokers", brokers,
                                        "--topic", TOPIC, "--partition", "0", "--rate", str(PUB_READ_RATE),
                                        "--size", str(self.a.size), "--keys", "1",
                                        "--duration", str(self.a.duration)],
                            self.log_path(r, "produce"), cpu=self.tools_cpu)
                procs.append(prod)
                r["produce_pid"] = prod.pid
            pubs.send(f"publish {self.a.duration}")
            if prod:
                pstart = prod.event("start", 30)
            # RSS sampled until the publishers' result (every publish answered)
            rss_max, res = tasks.rss(), None
            deadline = time.monotonic() + self.a.duration + 60
            while res is None and time.monotonic() < deadline:
                rss_max = max(rss_max, tasks.rss())
                try:
                    line = pubs.lines.get(timeout=0.25)
                except queue.Empty:
                    continue
                if line is None:
                    raise RuntimeError(f"publishers exited ({pubs.p.wait()}) before their result")
                if line.startswith("{") and json.loads(line).get("event") == "result":
                    res = json.loads(line)
            if res is None:
                raise RuntimeError("publishers gave no result")
            if prod:
                pres = prod.event("result", 60)
            pub = res["publish"]
            acked = pub["acked"]
            echo.send(f"drain {acked * r['echo']} 2000 20000")
            eres = echo.event("result", 60)
            fres = None
            if fan:
                fan.send(f"drain {pres['acked'] * r['readers']} 2000 20000")
                fres = fan.event("result", 60)
            wall = time.monotonic() - tw
            split = tasks.window(cpu0, tasks.read())
            cpu = split["cpu"]
            rss_max = max(rss_max, tasks.rss())
            tools_cpu = (sum(proc_cpu(p.pid) for p in loads if p.p.poll() is None) - load0
                         + proc_cpu(mock.pid) - mock0 + (pres or {}).get("cpu_s", 0.0))
            st = http_json(ctl, "/stats") or {}

            lat = pub["ack_ms"]
            errors = pub["rate_limited"] + pub["failed"] + pub["errors"]
            r.update(wsload=res, publish=pub, published=pub["published"], acked=acked, delivered=acked,
                     expected=r["clients"] * r["rate"] * self.a.duration,
                     pct=100.0 * acked / pub["published"] if pub["published"] else 0.0,
                     per_s=pub["acked_per_s"], p50_ms=lat["p50"], p99_ms=lat["p99"], p999_ms=lat["p999"],
                     max_ms=lat["max"], pub_errors=errors, unmatched=pub["unmatched"],
                     unanswered=pub["unanswered"], send_lag_p99_ms=pub["send_lag_ms"]["p99"],
                     cpu_s=cpu, cpu_per_m=cpu / acked * 1e6 if acked else None,
                     cpu_per_k_publishes=cpu / acked * 1e3 if acked else None,
                     bridge_util=cpu / wall, tools_util=tools_cpu / wall, window_s=wall, rss=rss_max,
                     rss_base=rss_base, bridge_published=st.get("published"))
            r["echo_result"] = eres
            r["echo"] = dict(readers=r["echo"], delivered=eres["msgs"], expected=acked * r["echo"],
                             pct=100.0 * eres["msgs"] / (acked * r["echo"]) if acked else 0.0,
                             p50_ms=eres["latency_ms"]["p50"], p99_ms=eres["latency_ms"]["p99"],
                             gap_clients=eres["clients_with_gaps"], missing=eres["missing"], dups=eres["dups"])
            gaps = eres["clients_with_gaps"]
            if fres:
                msgs = fres["msgs"]
                span = max(pres["duration_s"], (fres["last_us"] - pstart["t_us"]) / 1e6) if msgs else 0
                exp = pres["acked"] * r["readers"]
                r["fanout"] = dict(clients=r["readers"], rate=PUB_READ_RATE, produced=pres["acked"], delivered=msgs,
                                   expected=exp, pct=100.0 * msgs / exp if exp else 0.0,
                                   per_s=msgs / span if span else 0.0, p50_ms=fres["latency_ms"]["p50"],
                                   p99_ms=fres["latency_ms"]["p99"], p999_ms=fres["latency_ms"]["p999"],
                                   max_ms=fres["latency_ms"]["max"], gap_clients=fres["clients_with_gaps"],
                                   missing=fres["missing"])
                r["readers_result"] = fres
                gaps += fres["clients_with_gaps"]
            r["gap_clients"] = gaps
            bridgecpu.window_figures(r, split, acked)
            if errors or pub["unanswered"] or pub["unmatched"]:
                r.setdefault("notes", []).append(
                    f"{pub['rate_limited']} publishes RATE_LIMITED, {pub['failed']} PUBLISH_FAILED, "
                    f"{pub['errors']} other errors, {pub['unanswered']} unanswered, {pub['unmatched']} "
                    f"answers matching no publish ({res['first_error']})")
            self.meanwhile(r, t0, steal0, procs0, {os.getpid(), mock.pid, r.get("produce_pid")}
                           | {p.pid for p in loads} | tasks.pids())
            r["bridge_exit"] = bridge.stop()
            if r["bridge_exit"] not in (0, None):
                r.setdefault("notes", []).append(f"bridge exited {r['bridge_exit']}")
        except Exception as e:      # one broken scenario must not lose the others
            r["error"] = str(e)
        finally:
            for p in reversed(procs):
                if p.name == "mockkafka":
                    p.send("quit")
                elif p.name != "bridge" and p.name != "produce":
                    p.send("stop")
                p.stop()
        return r

    @staticmethod
    def expected(r, acked):
        """Deliveries due: every record to every client, or (keyed) each record
        to the clients subscribed to its key (client i has key i % keys).
        Conflated (interval I): at most, per client and key, the first record
        at once and then one per I while records come: the records of a key
        span (records - 1) x keys / rate seconds, so ceil(span / I) + 1."""
        keys, clients, iv = r["keys"], r["clients"], r.get("interval", 0)
        if r["kind"] != "keyed" and not iv:
            return acked * clients
        if r["kind"] != "keyed":
            keys *= len(r.get("topics", [TOPIC]))        # keys are per channel
        total = 0
        for key in range(min(keys, clients) if r["kind"] == "keyed" else keys):
            records = acked // keys + (1 if key < acked % keys else 0)
            if r["kind"] == "keyed":
                subs = clients // keys + (1 if key < clients % keys else 0)
            else:
                subs = clients
            if iv and records:
                span_ms = (records - 1) * keys / r["rate"] * 1000
                records = min(records, math.ceil(span_ms / iv - 1e-9) + 1)
            total += records * subs
        return total


# ---------------------------------------------------------------- report

def fmt_n(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def table(results):
    head = ["scenario", "clients", "rec/s", "delivered/s", "% exp", "p50 ms", "p99 ms",
            "p99.9 ms", "max ms", "gap cl.", "CPU s/M", "loop s/M", "rdk %", "vs floor", "loop vs floor",
            "RSS MiB", "other", "target"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["name"], str(r["clients"])] + ["-"] * 14 + [f"ERROR: {r['error']}", ""])
            continue
        tgt, misses = check_targets(r)
        verdict = "" if not tgt else ("ok" if not misses else "MISS: " + "; ".join(misses))
        if r["kind"] == "ready":
            # the median start in the p50 column, the slowest in max
            rows.append([r["name"], "-", "-", "-", "-", f"{r['ready_median_s'] * 1000:.0f}", "-", "-",
                         f"{r['ready_max_s'] * 1000:.0f}", "-", "-", "-", "-", "-", "-", "-",
                         f"exec to /ready 200: median {r['ready_median_s']:.3f} s, max {r['ready_max_s']:.3f} s "
                         f"over {len(r['ready_s'])} starts; mock rebalance delay "
                         f"{r['rebalance_delay_ms'] or 0} ms", verdict])
            continue
        if r["kind"] == "state":
            # delivered/s: client-updates; % exp: values carried of records x
            # clients; latency: each value's age at its update's receipt;
            # CPU s/M: per million client-updates (= us per client-update)
            other = (f"cpu: bridge {r['bridge_util'] * 100:.0f}%, tools {r['tools_util'] * 100:.0f}%"
                     + (f", noise {r['noise'] * 100:.0f}%" if r.get("noise", 0) > 0.05 else ""))
            if r.get("bytes_per_msg"):
                other += f"; {r['bytes_per_msg'] / 1024:.1f} KiB/update"
            if r.get("cpu_per_m_records") is not None:
                other += f"; {r['cpu_per_m_records']:.2f} CPU s/M records x clients"
            rows.append([r["name"], str(r["clients"]), fmt_n(r["rate"]), fmt_n(r["per_s"]),
                         f"{r['pct']:.2f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                         f"{r['p999_ms']:.1f}", f"{r['max_ms']:.1f}", str(r["gap_clients"]),
                         f"{r['cpu_per_m']:.2f}" if r["cpu_per_m"] is not None else "-",
                         *bridgecpu.cells(r)[:2], "-", "-",
                         f"{r['rss'] / 1048576:.1f}", other, "none"])
        elif r["kind"] == "publish":
            # delivered/s: publishes acknowledged a second; % exp: acked of
            # published; latency: send -> ack; CPU s/M: per million acks
            rows.append([r["name"], f"{r['clients']}" + (f"+{r['readers']}" if r.get("readers") else ""),
                         fmt_n(r["clients"] * r["rate"]), fmt_n(r["per_s"]), f"{r['pct']:.2f}",
                         f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['p999_ms']:.1f}", f"{r['max_ms']:.1f}",
                         str(r["gap_clients"]), f"{r['cpu_per_m']:.2f}" if r.get("cpu_per_m") is not None else "-",
                         *bridgecpu.cells(r)[:2], "-", "-", f"{r['rss'] / 1048576:.1f}", publish_cell(r), verdict])
        elif r["kind"] in ("fanout", "keyed"):
            other = (f"cpu: bridge {r['bridge_util'] * 100:.0f}%, tools {r['tools_util'] * 100:.0f}%"
                     + (f", noise {r['noise'] * 100:.0f}%" if r.get("noise", 0) > 0.05 else ""))
            if r.get("interval") and r.get("cpu_per_m_deliveries") is not None:
                other += f"; {r['cpu_per_m_deliveries']:.2f} CPU s/M deliveries"
            if r.get("tls_records_per_flush") is not None:
                other += (f"; {r['tls_records_per_flush']:.2f} TLS records/flush, "
                          f"{r['tls_msgs_per_record']:.1f} msgs/record")
            if r.get("floor") is True:
                other = other.replace("cpu: bridge", "cpu: floor")
            if (r.get("deflate") or r.get("sse")) and r.get("bytes_per_msg"):
                other += f"; {r['bytes_per_msg']:.0f} B/msg"
            if r.get("msgs_per_write"):
                other += f"; {r['msgs_per_write']:.2f} msgs/write"
            other += bridgecpu.other_cell(r)
            loop, rdk, loop_floor = bridgecpu.cells(r)
            rows.append([r["name"], str(r["clients"]), fmt_n(r["rate"]), fmt_n(r["per_s"]),
                         f"{r['pct']:.2f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                         f"{r['p999_ms']:.1f}", f"{r['max_ms']:.1f}", str(r["gap_clients"]),
                         f"{r['cpu_per_m']:.2f}" if r["cpu_per_m"] is not None else "-", loop, rdk,
                         vs_floor(r), loop_floor, f"{r['rss'] / 1048576:.1f}", other, verdict])
        else:
            if r["kind"] == "idle":
                other = f"{r['rss_per_conn']:.0f} B/conn"
            else:
                other = f"{r['connect_s']:.3f} s to connect, {r['subscribe_s']:.3f} s subscribed"
                if r.get("tls") and r.get("connect_s"):
                    other += f", {r['connected'] / r['connect_s']:,.0f} handshakes/s"
            if r.get("failed"):
                other += f", {r['failed']} failed"
            if r.get("noise", 0) > 0.05:
                other += f", noise {r['noise'] * 100:.0f}%"
            rows.append([r["name"], str(r["clients"])] + ["-"] * 13 + [f"{r['rss'] / 1048576:.1f}", other,
                                                                         verdict])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def publish_cell(r):
    """The "other" cell of a publish row: CPU shares, CPU per 1,000
    publishes, errors, and what the echo readers and the fan-out readers got."""
    text = (f"cpu: bridge {r['bridge_util'] * 100:.0f}%, tools {r['tools_util'] * 100:.0f}%"
            + (f", noise {r['noise'] * 100:.0f}%" if r.get("noise", 0) > 0.05 else ""))
    if r.get("cpu_per_k_publishes") is not None:
        text += f"; {r['cpu_per_k_publishes']:.3f} CPU s/1k publishes"
    if r.get("pub_errors") or r.get("unanswered"):
        text += f"; {r['pub_errors']} errors, {r['unanswered']} unanswered"
    e = r.get("echo")
    if e:
        text += (f"; echo: {e['readers']} reader{'s' if e['readers'] != 1 else ''} {e['pct']:.2f}%, "
                 f"p50 {e['p50_ms']:.1f} p99 {e['p99_ms']:.1f} ms")
    f = r.get("fanout")
    if f:
        text += (f"; readers: {fmt_n(f['per_s'])}/s {f['pct']:.2f}%, "
                 f"p50 {f['p50_ms']:.1f} p99 {f['p99_ms']:.1f} ms")
    return text


def vs_floor(r):
    """The "vs floor" cell: bridge CPU per delivery as a multiple of its
    floor row's, and the p99 difference (compare_floor)."""
    if r.get("floor") is True:
        return "(floor)"
    if r.get("floor_p99_diff_ms") is None:
        return "-"
    cpu = f"{r['floor_cpu_ratio']:.2f}x" if r.get("floor_cpu_ratio") is not None else "-"
    return f"{cpu}, {r['floor_p99_diff_ms']:+.1f} ms"


def compare_floor(results):
    """Every kbridge fanout or keyed row against the floor row of its base
    (the same clients x rate) in the same run: bridge CPU per delivery
    (conflated rows: per record x client, the unit of their CPU s/M
    column) over the floor's, and p99 minus the floor's p99. Sets
    floor_row, floor_cpu_ratio, floor_p99_diff_ms on the row."""
    floors = {r["base"]: r for r in results if r.get("floor") is True and "error" not in r and r.get("delivered")}
    for r in results:
        f = floors.get(r.get("base"))
        if f is None or r.get("floor") or "error" in r or r["kind"] not in ("fanout", "keyed") \
                or "p99_ms" not in r:
            continue
        r["floor_row"] = f["name"]
        r["floor_cpu_ratio"] = (r["cpu_per_m"] / f["cpu_per_m"]
                                if r.get("cpu_per_m") is not None and f.get("cpu_per_m") else None)
        r["floor_p99_diff_ms"] = r["p99_ms"] - f["p99_ms"]
        bridgecpu.compare_floor(r, f)       # floor_loop_ratio: the loop thread alone


def floor_notes(results):
    """The note of each floor row: what it is, what it did, and the rows
    compared with it."""
    for f in results:
        if f.get("floor") is not True or "error" in f or not f.get("delivered"):
            continue
        fr = f.get("floor_result") or {}
        tick = f"{fr.get('tick_us', 1000) / 1000:g} ms"
        text = (f"reference sender (bench/floor.c: no Kafka, no per-record work, "
                f"{'one write per client per ' + tick + ' tick' if f['kind'] == 'fanout' else 'one write per delivery, records made every ' + tick}): "
                f"{f['delivered']} deliveries in {f.get('data_writes', 0)} writes")
        if f.get("deliveries_per_write"):
            text += f" ({f['deliveries_per_write']:.2f} a write)"
        if fr.get("partial_writes"):
            text += f", {fr['partial_writes']} writes not taken whole"
        if fr.get("slow_closed"):
            text += f", {fr['slow_closed']} clients closed for a backlog over 16 MiB"
        if f.get("bytes_per_msg"):
            text += f"; {f['bytes_per_msg']:.0f} B per message"
        for r in results:
            if r.get("floor_row") != f["name"]:
                continue
            cpu = (f"{r['cpu_per_m']:.3f} vs {f['cpu_per_m']:.3f} CPU s/M ({r['floor_cpu_ratio']:.2f}x)"
                   if r.get("floor_cpu_ratio") is not None else "CPU -")
            text += (f"; {r['name']}: {cpu}{bridgecpu.floor_note(r)}, p99 {r['p99_ms']:.1f} vs "
                     f"{f['p99_ms']:.1f} ms ({r['floor_p99_diff_ms']:+.1f})")
        f["compare"] = text


def compare(results):
    """Each msgpack or conflated scenario against the plain JSON one it
    varies (same clients and rate), when both ran: bridge CPU per million
    records x clients, and bytes on the wire per message."""
    by = {r["name"]: r for r in results if "error" not in r and "cpu_s" in r}
    every = {r["name"]: r for r in results if "error" not in r}
    out = []
    for r in results:
        if r["kind"] == "publish":
            if "error" not in r:
                text = compare_publish(r, by)
                out.append(text)
                r.setdefault("compare", text)
            continue
        if r.get("tls") and "error" not in r and every.get(r.get("base")) not in (None, r):
            text = compare_tls(r, every[r["base"]])
            out.append(text)
            r.setdefault("compare", text)
            continue
        base = by.get(r.get("base"))
        if r.get("deflate"):
            base = by.get(r["name"].replace("-deflate", ""))    # the same records, no deflate
        if r.get("sse"):
            base = by.get(r["name"].replace("-sse", ""))        # the same clients over WebSocket
        if r.get("workers", 1) > 1:
            # against one process placed as the workers are, when it ran
            base = by.get(r["name"].rsplit("-w", 1)[0] + "-w1") or base
        if r["name"] not in by or base is None or base is r:
            continue
        if r.get("shared") and r.get("workers", 1) == 1:
            continue        # -w1: the row the -wN rows are judged against
        if r.get("workers", 1) > 1:
            if base.get("workers", 1) <= 1 and not base.get("floor"):
                text = bridgecpu.compare_workers(r, base) + noise_beside(r, base)
                out.append(text)
                r.setdefault("compare", text)
            continue
        if r["kind"] == "state":
            text = compare_state(r, base)
            out.append(text)
            r.setdefault("compare", text)
            continue
        if r.get("sse"):
            text = compare_sse(r, base)
            out.append(text)
            r.setdefault("compare", text)
            continue
        if r.get("auth") or r.get("deflate"):
            text = (compare_auth if r.get("auth") else compare_deflate)(r, base)
            out.append(text)
            r.setdefault("compare", text)
            continue
        if r.get("layout", "stream") != "stream" or len(r.get("topics", [TOPIC])) > 1:
            what = ([f"{len(r['topics'])} channels x {r['keys']} keys"] if len(r["topics"]) > 1 else []) \
                + [f"{r['layout']} layout"]
            cpu_r, cpu_b = r.get("cpu_per_m_deliveries"), base.get("cpu_per_m_deliveries")
            text = f"{', '.join(what)} vs {base['name']}"
            if cpu_r and cpu_b:
                text += f": bridge CPU {cpu_r:.2f} vs {cpu_b:.2f} s per million deliveries ({cpu_r / cpu_b:.2f}x)"
            if r.get("bytes_per_msg") and base.get("bytes_per_msg"):
                text += f"; {r['bytes_per_msg']:.0f} B per message on the wire vs {base['bytes_per_msg']:.0f} B"
            out.append(text)
            r.setdefault("compare", text)
            continue
        if not r.get("interval") and r.get("format", "json") == "json":
            continue
        what = []
        if r.get("format", "json") != "json":
            what.append("format=" + r["format"])
        if r.get("interval"):
            what.append(f"interval={r['interval']} ms over {r['keys']} keys")
        cpu_r = r["cpu_s"] / r["records_x_clients"] * 1e6 if r.get("records_x_clients") else None
        cpu_b = base["cpu_s"] / base["records_x_clients"] * 1e6 if base.get("records_x_clients") else None
        text = f"{', '.join(what)} vs {base['name']} (JSON"
        text += ", no conflation)" if r.get("interval") else ")"
        if cpu_r is not None and cpu_b:
            text += (f": bridge CPU {cpu_r:.2f} vs {cpu_b:.2f} s per million records x clients "
                     f"({cpu_r / cpu_b:.2f}x)")
        if r.get("interval") and r.get("records_x_clients"):
            text += (f", {r['delivered'] / r['records_x_clients'] * 100:.1f}% of the records "
                     f"delivered")
        if r.get("bytes_per_msg") and base.get("bytes_per_msg"):
            text += f"; {r['bytes_per_msg']:.0f} B per message on the wire vs {base['bytes_per_msg']:.0f} B"
        out.append(text)
        r.setdefault("compare", text)
    return out


def compare_publish(r, by):
    """A publish row's note: what was asked and acknowledged, the ack
    latency, the bridge's CPU per 1,000 publishes (and librdkafka's share:
    the producer's thread and the consumer reading the records back), the
    echo readers; with readers, their figures beside the fan-out row of the
    same run (same clients and records, no publishing), and the bridge's CPU
    beside the sum of that row's and the publish row's without readers."""
    pub, e = r["publish"], r["echo"]
    text = (f"{r['clients']} clients x {r['rate']} publishes/s ({PUB_SIZE} B of data each, --max-inflight 64): "
            f"{pub['acked']} of {pub['published']} acknowledged, {r['per_s']:,.0f}/s; ack latency p50 "
            f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f}, max {r['max_ms']:.1f}; the publishers sent on schedule "
            f"within {r['send_lag_p99_ms']:.2f} ms at p99")
    if r.get("cpu_per_k_publishes") is not None:
        text += (f"; bridge CPU {r['cpu_s']:.2f} s in the {r['window_s']:.1f} s window, "
                 f"{r['cpu_per_k_publishes']:.3f} s per 1,000 publishes")
        if r.get("rdkafka_share") is not None:
            text += f" ({r['rdkafka_share'] * 100:.0f}% in librdkafka's threads)"
    text += (f"; {e['readers']} echo reader{'s' if e['readers'] != 1 else ''} of {PUB_CHANNEL!r} got "
             f"{e['pct']:.2f}% of the acknowledged records "
             f"({e['gap_clients']} with gaps), publish to receipt p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f}")
    f = r.get("fanout")
    base = by.get(r.get("fanout_row"))
    if f:
        text += (f"; {f['clients']} readers of {CHANNEL!r} ({f['rate']} records/s): {f['delivered']} of "
                 f"{f['expected']} delivered ({f['pct']:.2f}%, {f['gap_clients']} with gaps), "
                 f"{fmt_n(f['per_s'])}/s, p50 {f['p50_ms']:.1f} p99 {f['p99_ms']:.1f} ms")
        if base:
            text += (f" vs {base['name']}'s {fmt_n(base['per_s'])}/s, p50 {base['p50_ms']:.1f} p99 "
                     f"{base['p99_ms']:.1f} ms ({base['pct']:.2f}%)")
            alone = by.get(r["base"])
            if alone is not None and alone is not r and alone.get("cpu_s") is not None:
                both = base["cpu_s"] + alone["cpu_s"]
                r["cpu_sum_ratio"] = r["cpu_s"] / both if both else None
                fan_cpu = (r["cpu_s"] - alone["cpu_s"]) / f["delivered"] * 1e6 if f["delivered"] else None
                text += (f"; bridge CPU {r['cpu_s']:.2f} s vs {base['cpu_s']:.2f} ({base['name']}) + "
                         f"{alone['cpu_s']:.2f} ({alone['name']}) = {both:.2f} s")
                if r["cpu_sum_ratio"] is not None:
                    text += f" ({r['cpu_sum_ratio']:.2f}x the sum)"
                if fan_cpu is not None and base.get("cpu_per_m"):
                    r["fanout_cpu_ratio"] = fan_cpu / base["cpu_per_m"]
                    text += (f"; less {alone['name']}'s, {fan_cpu:.3f} CPU s per million deliveries vs "
                             f"{base['cpu_per_m']:.3f} ({r['fanout_cpu_ratio']:.2f}x)")
            return text + noise_beside(r, base)
    if r.get("steal") is not None:
        text += (f"; meanwhile the hypervisor stole {r['steal'] * 100:.1f}% of a core, other processes "
                 f"used {r.get('noise', 0) * 100:.0f}%")
    return text


def compare_auth(r, base):
    """The authenticated row against the same clients without tokens: bridge
    CPU per delivery (the ratio check_targets judges), what arrived, and the
    bridge's CPU for the upgrades and subscribes, where the tokens are checked."""
    keys = r.get("narrowed_keys") or []
    what = ", ".join(keys) if len(keys) <= 3 else f"{len(keys)} keys"
    text = (f"{r['clients']} clients with HS256 tokens ({r.get('narrowed_clients', 0)} narrowed to "
            f"{'key' if len(keys) == 1 else 'keys'} {what}, which every record carries) vs "
            f"{base['name']} (no auth)")
    text += cpu_beside(r, base)
    if r.get("connect_cpu_s") is not None and base.get("connect_cpu_s") is not None:
        text += (f"; upgrades + subscribes cost the bridge {r['connect_cpu_s']:.2f} vs "
                 f"{base['connect_cpu_s']:.2f} CPU s")
    return text + noise_beside(r, base)


def compare_deflate(r, base):
    """The deflate row against the same clients without it: bridge CPU per
    delivery and wire bytes per message (wsload's count, frame heads
    included), the two ratios check_targets judges (r["cpu_ratio"],
    r["bytes_ratio"]); how many messages came compressed and kbridge's own
    count of the bytes; wsload's CPU per delivery (it inflates each
    payload it has not inflated before: the load side's cost, not the
    bridge's) and what inflating costs a client per message. Adds the per-client
    estimate as a note: wsload timed compressing one of the run's messages
    (deflate_cost), which a compressor per client pays per delivery and
    compress-once per record."""
    res = r.get("wsload") or {}
    text = f"{r['clients']} clients negotiating permessage-deflate vs {base['name']} (none)" + cpu_beside(r, base)
    if r.get("bytes_per_msg") and base.get("bytes_per_msg"):
        r["bytes_ratio"] = r["bytes_per_msg"] / base["bytes_per_msg"]
        text += (f"; {r['bytes_per_msg']:.0f} vs {base['bytes_per_msg']:.0f} B per message on the wire "
                 f"({r['bytes_ratio']:.2f}x)")
    if res.get("deflated"):
        text += (f"; {res['deflated']} messages came compressed, {res['deflated_bytes'] / res['deflated']:.0f} B "
                 f"of payload inflating to {res['inflated_bytes'] / res['deflated']:.0f} B")
    if r.get("kb_bytes_sent") and r.get("kb_bytes_uncompressed") is not None:
        text += (f"; kbridge_bytes_sent_total +{r['kb_bytes_sent']:,.0f} against "
                 f"kbridge_bytes_uncompressed_total +{r['kb_bytes_uncompressed']:,.0f} "
                 f"({r['kb_compression_ratio']:.2f}:1)")
    elif "kb_bytes_uncompressed" in r:
        text += "; /metrics had no kbridge_bytes_uncompressed_total (or no bytes sent)"
    wl_r, wl_b = r.get("wsload_cpu_s"), base.get("wsload_cpu_s")
    if wl_r is not None and wl_b is not None and r.get("delivered") and base.get("delivered"):
        text += (f"; wsload {wl_r / r['delivered'] * 1e6:.2f} vs {wl_b / base['delivered'] * 1e6:.2f} "
                 f"us per delivery, inflating {res.get('inflates', 0)} payloads (the other "
                 f"{res.get('inflate_cache_hits', 0)} were bytes it had inflated before)")
    if res.get("inflate_cost"):
        text += f"; a client inflating a message pays {res['inflate_cost']['cpu_us']:.2f} CPU us"

    cost, cpu_b = res.get("deflate_cost"), base.get("cpu_per_m_deliveries")
    if cost and r.get("delivered") and r.get("produced") and cpu_b:
        t = cost["cpu_us"]          # us per message = CPU s per million messages
        r.update(per_client_cpu_per_m=t, compress_once_cpu_per_m=t * r["produced"] / r["delivered"],
                 per_client_ratio=(cpu_b + t) / cpu_b)
        extra = (f", measured {r['cpu_per_m_deliveries'] - cpu_b:+.3f}"
                 if r.get("cpu_per_m_deliveries") is not None else "")
        r.setdefault("notes", []).append(
            f"per-client estimate: compressing one of the run's messages ({cost['in']} -> {cost['out']} B, "
            f"zlib level {cost['level']}, window 15, a stream reset per message) takes {t:.2f} CPU us "
            f"(wsload's timing); a compressor per client pays that per delivery, {t:.2f} CPU s per million "
            f"deliveries (on top of {base['name']}'s {cpu_b:.3f}: {r['per_client_ratio']:.1f}x it), "
            f"compress-once per record, "
            f"{r['compress_once_cpu_per_m']:.4f} s per million deliveries here ({r['clients']} clients a "
            f"record{extra} over {base['name']})")
    return text + noise_beside(r, base)


def compare_sse(r, base):
    """The SSE row against the same clients over WebSocket: bridge CPU per
    delivery (the ratio check_targets judges), wire bytes per message
    (an SSE event's id, event and data lines against a frame head), the
    bridge's messages per write, and wsload's CPU per delivery (parsing
    lines instead of frames: the load side's cost, not the bridge's)."""
    res = r.get("wsload") or {}
    text = f"{r['clients']} clients reading GET /sse vs {base['name']} (WebSocket)" + cpu_beside(r, base)
    if r.get("bytes_per_msg") and base.get("bytes_per_msg"):
        text += (f"; {r['bytes_per_msg']:.0f} vs {base['bytes_per_msg']:.0f} B per message on the wire "
                 f"({r['bytes_per_msg'] / base['bytes_per_msg']:.2f}x)")
    if r.get("msgs_per_write") and base.get("msgs_per_write"):
        text += f"; {r['msgs_per_write']:.1f} vs {base['msgs_per_write']:.1f} messages per write"
    if r.get("p99_ms") is not None and base.get("p99_ms") is not None:
        text += f"; p99 {r['p99_ms']:.1f} vs {base['p99_ms']:.1f} ms"
    wl_r, wl_b = r.get("wsload_cpu_s"), base.get("wsload_cpu_s")
    if wl_r is not None and wl_b is not None and r.get("delivered") and base.get("delivered"):
        text += f"; wsload {wl_r / r['delivered'] * 1e6:.2f} vs {wl_b / base['delivered'] * 1e6:.2f} us per delivery"
    if res.get("sse"):
        text += (f"; besides the data events: {res.get('sse_id_only', 0)} id-only blocks, "
                 f"{res.get('sse_comments', 0)} comments, {res.get('sse_bad', 0)} events off the contract")
    return text + noise_beside(r, base)


def cpu_beside(r, base):
    """Bridge CPU per delivery of row r beside base's (sets r["cpu_ratio"],
    which check_targets judges) and what each delivered."""
    text = ""
    cpu_r, cpu_b = r.get("cpu_per_m_deliveries"), base.get("cpu_per_m_deliveries")
    if cpu_r is not None and cpu_b:
        r["cpu_ratio"] = cpu_r / cpu_b
        text += (f": bridge CPU {cpu_r:.3f} vs {cpu_b:.3f} s per million deliveries "
                 f"({r['cpu_ratio']:.2f}x)")
    return text + f"; {r['delivered']} vs {base['delivered']} delivered"


def noise_beside(r, base):
    """The steal and other processes' CPU during both rows."""
    if r.get("steal") is None or base.get("steal") is None:
        return ""
    return (f"; meanwhile the hypervisor stole {r['steal'] * 100:.1f}% vs {base['steal'] * 100:.1f}% "
            f"of a core, other processes used {r.get('noise', 0) * 100:.0f}% vs "
            f"{base.get('noise', 0) * 100:.0f}%")


def compare_tls(r, base):
    """A wss row against the plain row of the same run: fan-out, bridge CPU
    per delivery (the ratio check_targets judges) and how many frames a TLS
    record carried; idle, RSS per connection; connect storm, handshakes/s
    and the bridge's CPU per connection."""
    text = f"wss (TLS, ECDSA P-256) vs {base['name']} (plain)"
    if r["kind"] == "fanout":
        text += cpu_beside(r, base)
        if r.get("tls_records"):
            text += (f"; {r['tls_records']} TLS records in {r['tls_flushes']} flushes "
                     f"({r['tls_records_per_flush']:.2f} records per flush, "
                     f"{r['tls_msgs_per_record']:.1f} messages per record)")
        elif r.get("tls_records") == 0:
            text += "; kbridge counted no TLS records (kbridge_tls_records_total)"
    elif r["kind"] == "idle":
        text += (f": {r['rss_per_conn']:.0f} vs {base['rss_per_conn']:.0f} B RSS per connection "
                 f"({r['rss'] / 1048576:.1f} vs {base['rss'] / 1048576:.1f} MiB)")
    else:
        hs = r["connected"] / r["connect_s"] if r.get("connect_s") else 0
        text += (f": {r['connected']} connections in {r['connect_s']:.3f} vs {base['connect_s']:.3f} s "
                 f"({hs:,.0f} TLS handshakes + upgrades/s)")
        if r.get("connect_cpu_s") is not None and base.get("connect_cpu_s") is not None:
            text += (f"; the bridge's CPU over them {r['connect_cpu_s']:.2f} vs {base['connect_cpu_s']:.2f} s "
                     f"({r['connect_cpu_s'] / max(1, r['connected']) * 1e6:.0f} vs "
                     f"{base['connect_cpu_s'] / max(1, base['connected']) * 1e6:.0f} us per connection)")
        ws = (r.get("wsload") or {}).get("cpu_s")
        if ws is not None:
            text += f", wsload's {ws:.2f} s"
    return text + noise_beside(r, base)


def compare_state(r, base):
    """The state row against the record stream it stands beside: what the
    same clients cost per record x client, what they receive and how often."""
    fmt = "MessagePack" if r.get("format") == "msgpack" else "JSON"
    chans = len(r.get("topics", [TOPIC]))
    text = (f"type={r['state']} {fmt}, {chans} channels x {r['keys']} keys vs {base['name']} "
            f"(every record to every client)")
    cpu_b = base["cpu_s"] / base["records_x_clients"] * 1e6 if base.get("records_x_clients") else None
    cpu_r = r.get("cpu_per_m_records")
    if cpu_r is not None and cpu_b:
        text += (f": bridge CPU {cpu_r:.2f} vs {cpu_b:.2f} s per million records x clients "
                 f"({cpu_r / cpu_b:.2f}x; {r['cpu_per_m']:.1f} us per client-update)")
    if r.get("bytes_per_msg") and base.get("bytes_per_msg"):
        text += (f"; {fmt_n(r['per_s'])} client-updates/s of {r['bytes_per_msg'] / 1024:.1f} KiB "
                 f"({r.get('bytes_per_value') or 0:.0f} B per value carried) vs {fmt_n(base['per_s'])} messages/s "
                 f"of {base['bytes_per_msg']:.0f} B: {r['per_s'] * r['bytes_per_msg'] / 1e6:.0f} vs "
                 f"{base['per_s'] * base['bytes_per_msg'] / 1e6:.0f} MB/s on the wire")
    gap, age, dly = r.get("update_gap_ms"), r.get("newest_age_ms"), r.get("update_delay_ms")
    if gap and gap.get("count"):
        text += (f"; a client's updates {gap['p50']:.0f} ms apart at p50, {gap['min']:.0f}-{gap['max']:.0f} ms "
                 f"(p99 {gap['p99']:.0f})")
    if age and age.get("count"):
        text += f"; an update's newest value {age['p50']:.1f} ms old at p50, {age['p99']:.1f} at p99"
        if dly and dly.get("count"):
            text += (f", of which {dly['p50']:.1f} / {dly['p99']:.1f} ms from the update's timestamp to "
                     f"its receipt (written to one client after another, read by wsload in turn)")
    return text


def notes(results):
    out = []
    for r in results:
        for n in r.get("notes", []):
            out.append(f"- {r['name']}: {n}")
        if r.get("compare"):
            out.append(f"- {r['name']}: {r['compare']}")
    return "\n".join(out)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return dict(cpu=model, cores=os.cpu_count(), kernel=platform.release(), mem_mib=mem)


def header(meta):
    m = meta["machine"]
    return (f"{meta['date']} | {m['cpu']}, {m['cores']} cores, {m['mem_mib']} MiB, Linux {m['kernel']} | "
            f"bridge pinned to CPU {meta['pinning']['bridge']}, mock Kafka + wsload + produce to CPU "
            f"{meta['pinning']['tools']} (taskset) | bridge: {meta['bridge']} "
            f"({meta['version'] or 'BENCH_BRIDGE'}, tree {meta['commit']}) | "
            f"{meta['duration_s']:g} s per traffic scenario, {meta['size']} B records, "
            f"fetch.wait.max.ms=10, linger.ms=0" +
            (f" | floor rows: build/bench/floor, {meta['floor_tick_us'] / 1000:g} ms tick"
             if meta.get("floor_tick_us") else ""))


def update_readme(md):
    with open(README) as f:
        text = f.read()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        print(f"run.py: {README} has no table markers; not updated", file=sys.stderr)
        return
    pre, rest = text.split(TABLE_BEGIN, 1)
    post = rest.split(TABLE_END, 1)[1]
    with open(README, "w") as f:
        f.write(pre + TABLE_BEGIN + "\n" + md + "\n" + TABLE_END + post)


# ---------------------------------------------------------------- main

def parse_spec(spec):
    """kind:CLIENTSxRATE[:msgpack][:interval=MS][:keys=K][:channels=N][:layout=L][:auth][:tls][:deflate][:sse][:workers=N]
    (fanout, keyed; keys, channels, layout, auth, tls, deflate, sse: fanout only; workers:
    kbridge --workers N on every core beside the tools, compared with
    workers=1, else with the same scenario without it),
    state:CLIENTSxRATE[:msgpack][:keys=K][:channels=N] (4 channels, 100 keys
    by default; compared with fanout:CLIENTSxRATE when that ran too) or
    kind:CLIENTS[:tls] (idle, connect). tls: wss, compared with the same
    scenario without it when that ran too; so are deflate (permessage-deflate
    clients) and sse (Server-Sent Events clients: not with msgpack or deflate). floor:fanout:CxR, floor:keyed:CxR:
    the floor row of that scenario; ready[:STARTS]: start-to-ready;
    publish:CLIENTSxRATE[:readers=N][:echo=N]: publishers (and N fan-out
    readers of "bench" at 1,000 records/s meanwhile; echo readers of the
    publish channel, 1 by default)."""
    kind, _, arg = spec.partition(":")
    if kind == "floor":
        of = parse_spec(arg)
        if of["kind"] not in ("fanout", "keyed") or of["name"] != of["base"]:
            raise SystemExit(f"run.py: bad --scenario {spec!r} (floor:fanout:CxR or floor:keyed:CxR)")
        return floor(of)
    if kind == "ready" and (arg == "" or arg.isdigit()):
        return start_to_ready(int(arg) if arg else 5)
    if kind == "publish":
        arg, *opts = arg.split(":")
        c, _, rate = arg.partition("x")
        try:
            kw = {}
            for o in opts:
                name, _, val = o.partition("=")
                if name not in ("readers", "echo") or not val.isdigit():
                    raise ValueError(o)
                kw[name] = int(val)
            return publish(int(c), int(rate), **kw)
        except ValueError:
            pass
    # The options each CLIENTSxRATE kind takes.
    takes = {"state": ("msgpack", "keys", "channels"),
             "fanout": ("msgpack", "interval", "keys", "channels", "layout", "auth", "tls", "deflate", "sse",
                        "workers"),
             "keyed": ("msgpack", "interval", "workers")}
    if kind in takes:
        arg, *opts = arg.split(":")
        c, _, rate = arg.partition("x")
        kw = {}
        try:
            for o in opts:
                name, _, val = o.partition("=")
                flag = name in ("msgpack", "auth", "tls", "deflate", "sse")
                if name not in takes[kind] or flag != (val == "" and "=" not in o):
                    raise ValueError(o)
                if name == "msgpack":
                    kw["fmt"] = "msgpack"
                elif name in ("auth", "tls", "deflate", "sse"):
                    kw[name] = True
                elif name == "layout":
                    if val not in ("stream", "state", "market"):
                        raise ValueError(o)
                    kw["layout"] = val
                else:
                    kw[name] = int(val)
                    if name == "workers":
                        kw["shared"] = True     # workers=1: one process placed as workers are
            if kw.get("sse") and (kw.get("fmt") or kw.get("deflate")):
                raise ValueError("sse")     # an event stream is JSON text, uncompressed
            make = {"state": state, "fanout": fanout, "keyed": keyed}[kind]
            return make(int(c), int(rate), **kw)
        except ValueError:
            pass
    if kind in ("idle", "connect") and arg.partition(":")[2] in ("", "tls"):
        try:
            n, _, t = arg.partition(":")
            return (idle if kind == "idle" else connect)(int(n), tls=t == "tls")
        except ValueError:
            pass
    raise SystemExit(f"run.py: bad --scenario {spec!r} (fanout:CxR[:msgpack][:interval=MS][:keys=K]"
                     "[:channels=N][:layout=stream|state|market][:auth][:tls][:deflate][:sse][:workers=N], "
                     "keyed:CxR[:msgpack][:interval=MS][:workers=N], "
                     "state:CxR[:msgpack][:keys=K][:channels=N], idle:C[:tls], connect:C[:tls], "
                     "floor:fanout:CxR, floor:keyed:CxR, ready[:STARTS], publish:CxR[:readers=N][:echo=N])")


def main():
    ncpu = os.cpu_count() or 1
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--scenario", action="append", help="custom scenario (replaces the list)")
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 10)))
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--out", default=os.path.join("build", "bench"))
    ap.add_argument("--bridge-cpu", default=os.environ.get("BENCH_BRIDGE_CPU", "0"))
    ap.add_argument("--tools-cpu", default=os.environ.get("BENCH_TOOLS_CPU", "1" if ncpu > 1 else "0"))
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset")
    ap.add_argument("--floor-tick-us", type=int, default=int(os.environ.get("BENCH_FLOOR_TICK_US", 1000)),
                    help="the floor rows' tick: records due are made, and each fan-out client written, "
                         "once per tick (default 1000)")
    ap.add_argument("--perf", action="store_true",
                    help="perf record the bridge per scenario (build/bench/logs/NAME.perf.txt)")
    ap.add_argument("--update-readme", action="store_true", help="write the table into bench/README.md")
    a = ap.parse_args()
    if a.no_pin:
        a.bridge_cpu = a.tools_cpu = None

    scens = [parse_spec(s) for s in a.scenario] if a.scenario else default_scenarios()
    if a.only:
        want = set(a.only.split(","))
        unknown = want - {s["name"] for s in scens}
        if unknown:
            raise SystemExit(f"run.py: unknown scenario(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(s['name'] for s in scens)}")
        scens = [s for s in scens if s["name"] in want]

    # Sockets: 10,000 clients need 10,000 descriptors in wsload (and the bridge).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = max(s["clients"] + s.get("readers", 0) + s.get("echo", 0) for s in scens) + 100
    if hard < need:
        print(f"run.py: RLIMIT_NOFILE hard limit {hard} < {need}: some clients will fail",
              file=sys.stderr)
    if a.tools_cpu is not None:
        os.sched_setaffinity(0, {int(a.tools_cpu)})      # this driver stays off the bridge's core

    b = Bench(a)
    for tool in (os.path.join(b.tools, "wsload"), os.path.join(b.tools, "produce"), b.mock_bin) + \
            (() if b.custom else (b.kbridge,)) + ((b.floor_bin,) if any(s.get("floor") for s in scens) else ()):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"run.py: {tool} missing: run make bench (or make all tools bench-tools)")
    if b.custom and any(s["kind"] == "keyed" for s in scens) and not b.keyed_sub:
        print("run.py: BENCH_BRIDGE without BENCH_KEYED_SUBSCRIBE: skipping keyed scenarios",
              file=sys.stderr)
        scens = [s for s in scens if s["kind"] != "keyed"]

    def kbridge_only(s):
        return (s.get("format", "json") != "json" or s.get("interval") or s["kind"] in ("state", "publish")
                or len(s.get("topics", [TOPIC])) > 1 or s.get("auth") or s.get("sse"))
    if b.custom and any(kbridge_only(s) for s in scens):
        print("run.py: BENCH_BRIDGE: skipping the format=msgpack, conflation, state-dialect, "
              "several-channel, auth, SSE and publish scenarios (kbridge's query parameters, routes, "
              "--jwt-secret, /sse and --publish)", file=sys.stderr)
        scens = [s for s in scens if not kbridge_only(s)]

    helps = None

    def has_flag(flag):
        """Whether kbridge --help names flag (a tree without it skips its rows)."""
        nonlocal helps
        if helps is None:
            try:
                p = subprocess.run([b.kbridge, "--help"], capture_output=True, text=True, timeout=10)
                helps = p.stdout + p.stderr
            except (OSError, subprocess.SubprocessError):
                helps = ""
        return flag in helps

    if any(s["kind"] == "publish" for s in scens) and not has_flag("--publish"):
        print(f"run.py: {b.kbridge} has no --publish: skipping the publish rows", file=sys.stderr)
        scens = [s for s in scens if s["kind"] != "publish"]

    if any(s.get("workers", 1) > 1 for s in scens):
        has = not b.custom and has_flag("--workers")
        if b.custom or not has:
            print(f"run.py: {'BENCH_BRIDGE' if b.custom else b.kbridge + ' has no --workers'}: "
                  "skipping the --workers rows (-wN)", file=sys.stderr)
            scens = [s for s in scens if s.get("workers", 1) <= 1]

    def first_line(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                                  cwd=ROOT).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    meta = dict(commit=first_line(["git", "describe", "--always", "--dirty"]),
                version=None if b.custom else first_line([b.kbridge, "--version"]),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                machine=machine(), pinning=dict(bridge=a.bridge_cpu, tools=a.tools_cpu),
                bridge=b.template if b.custom else "kbridge",
                duration_s=a.duration, size=a.size, inflight=a.inflight,
                floor_tick_us=a.floor_tick_us if any(s.get("floor") for s in scens) else None)
    print("# " + header(meta), flush=True)
    results = []
    t_all = time.monotonic()
    for s in scens:
        t = time.monotonic()
        r = b.run(s)
        results.append(r)
        status = r.get("error") or (f"{r['acked']} of {r['published']} publishes acknowledged, "
                                    f"ack p99 {r['p99_ms']:.1f} ms" if r["kind"] == "publish" else
                                    f"{r['delivered']} delivered ({r['pct']:.2f}%), p99 {r['p99_ms']:.1f} ms"
                                    if "delivered" in r else
                                    f"ready in {r['ready_median_s']:.3f} s (median), {r['ready_max_s']:.3f} s (max)"
                                    if r["kind"] == "ready" else f"rss/conn {r.get('rss_per_conn', 0):.0f} B, "
                                    f"connect {r.get('connect_s', 0):.3f} s")
        print(f"# {s['name']}: {status} ({time.monotonic() - t:.0f} s)", flush=True)
    meta["total_s"] = round(time.monotonic() - t_all, 1)
    compare_floor(results)
    floor_notes(results)
    compare(results)

    md = f"{header(meta)}\n\n{table(results)}\n"
    if notes(results):
        md += f"\n{notes(results)}\n"
    print()
    print(table(results))
    if notes(results):
        print(notes(results))
    with open(os.path.join(b.out, "results.json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    with open(os.path.join(b.out, "results.md"), "w") as f:
        f.write(md)
    print(f"\nresults: {os.path.relpath(os.path.join(b.out, 'results.json'), ROOT)}, "
          f"{os.path.relpath(os.path.join(b.out, 'results.md'), ROOT)} ({meta['total_s']} s)")
    if a.update_readme:
        update_readme(md)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
