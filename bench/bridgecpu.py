"""bench/bridgecpu.py - the bridge's CPU split by thread and process, for bench/run.py (bench/README.md).

kbridge runs its whole loop (sockets, routing, queues, writes) on its main
thread, the task whose TID is the PID; every other thread is librdkafka's.
With --workers N (N > 1) the PID run.py starts is a master that forks and
execs N workers, each a full single-threaded loop with its own consumer,
listed in /proc/PID/task/*/children. Tasks reads, over the window run.py
already measures, from /proc:

  cpu      the whole bridge: the master and every worker, all their threads
           (utime + stime of /proc/PID/stat, which includes threads that
           exited), workers that exited meanwhile through the master's
           cutime + cstime (what it reaped)
  loop     the loop threads: /proc/P/task/P/stat of the PID, or with
           workers the sum over each worker's main thread
  rdkafka  cpu - loop (- the master's own CPU with workers): librdkafka's
           threads, including any that exited

and the rows' figures made of them: the loop's CPU s per million
deliveries and its ratio to the floor row's ("loop vs floor"), the
librdkafka share, deliveries per CPU-second, and a workers row against
the single-process row of the same clients x rate.
"""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKERS_DPS_MIN = 1.0       # a workers row: deliveries per CPU-second vs 1 worker's
KEYED_LOOP_FLOOR_MAX = 1.10  # keyed-10k: the loop thread's CPU per delivery vs the floor's


def _stat(pid, tid=None):
    """The fields of /proc/PID/stat (or of one task) after the comm."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def children(pid):
    """PIDs of a process's children: /proc/PID/task/*/children (any thread
    may have forked them). Empty when the process is gone."""
    out = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.update(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


class Tasks:
    """The bridge's processes and threads. read() takes a reading (re-reading
    the children each time, as workers appear a moment after start);
    window(a, b) gives the CPU between two readings. workers > 1: the loop
    figure is the workers' main threads, not the master's."""

    def __init__(self, pid, workers=1):
        self.pid, self.workers = pid, workers
        self.seq = 0
        self.last = {}          # pid -> (seq last seen, total s, main thread s)

    def read(self):
        self.seq += 1
        pids = {}
        reaped = 0.0
        for p in [self.pid] + sorted(children(self.pid)):
            try:
                v = _stat(p)
                main = _stat(p, p)
            except OSError:     # exited between the listing and the read
                continue
            pids[p] = ((int(v[11]) + int(v[12])) / CLK_TCK, (int(main[11]) + int(main[12])) / CLK_TCK)
            if p == self.pid:
                reaped = (int(v[13]) + int(v[14])) / CLK_TCK     # cutime + cstime
            self.last[p] = (self.seq,) + pids[p]
        return dict(seq=self.seq, pids=pids, reaped=reaped)

    def pids(self):
        """Every PID of the bridge seen so far (for run.py's noise figure)."""
        return set(self.last) | {self.pid}

    def live(self):
        """The bridge's processes now: the PID and its children."""
        return [self.pid] + sorted(children(self.pid))

    def window(self, a, b):
        """CPU seconds between readings a and b: cpu, loop, rdkafka, master
        (the master's own with workers, else None), procs (processes at
        the end), gone (children seen in the window and gone by b: their
        CPU is counted from the master's reaped-children time, their loop
        thread up to the last reading that saw them)."""
        root = self.pid
        z = (0.0, 0.0)
        master = b["pids"][root][0] - a["pids"][root][0]
        cpu, loop = master, 0.0
        kids = [p for p in b["pids"] if p != root]
        for p in kids:
            t, m = b["pids"][p]
            t0, m0 = a["pids"].get(p, z)
            cpu += t - t0
            loop += m - m0
        gone = [p for p, (seen, _, _) in self.last.items()
                if p != root and p not in b["pids"] and a["seq"] <= seen < b["seq"]]
        if gone:
            # reaped meanwhile: their whole lives are in the master's
            # cutime + cstime; take off what they had used before a
            seen_t = sum(self.last[p][1] - a["pids"].get(p, z)[0] for p in gone)
            reaped = b["reaped"] - a["reaped"] - sum(a["pids"].get(p, z)[0] for p in gone)
            cpu += max(reaped, seen_t)
            loop += sum(self.last[p][2] - a["pids"].get(p, z)[1] for p in gone)
        if self.workers <= 1:
            loop = b["pids"][root][1] - a["pids"][root][1]
            rdk = cpu - loop
            master = None
        else:
            rdk = cpu - loop - master
        return dict(cpu=cpu, loop=loop, rdkafka=rdk, master=master, procs=len(b["pids"]), gone=gone)

    def rss(self):
        """VmRSS summed over the bridge's processes (shared pages of the
        workers, the binary's text, count once per process)."""
        total = 0
        for p in self.live():
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                pass
        return total

    def syscw(self):
        """Write-family system calls of every process of the bridge so far
        (syscw of /proc/PID/io), None when the PID's is unreadable."""
        total = None
        for p in self.live():
            try:
                with open(f"/proc/{p}/io") as f:
                    for line in f:
                        if line.startswith("syscw:"):
                            total = (total or 0) + int(line.split()[1])
            except (OSError, ValueError):
                if p == self.pid:
                    return None
        return total

    def sockets(self):
        """Sockets each worker holds ({pid: n}; its clients plus a few of
        its own: listener, Kafka), to see how SO_REUSEPORT spread them."""
        out = {}
        for p in children(self.pid):
            try:
                out[p] = sum(1 for fd in os.listdir(f"/proc/{p}/fd")
                             if os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:"))
            except OSError:
                pass
        return out


def listeners(port):
    """TCP sockets listening on 127.0.0.1:port (/proc/net/tcp): one per
    worker when each binds its own with SO_REUSEPORT."""
    want = f"0100007F:{port:04X}"
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                v = line.split()
                if v[1] == want and v[3] == "0A":
                    n += 1
    except (OSError, StopIteration, IndexError):
        pass
    return n


def window_figures(r, w, units):
    """Puts a window's split into the row r: cpu_loop_s, cpu_rdkafka_s,
    cpu_master_s (workers), rdkafka_share; loop_per_m in the unit of the
    row's CPU s/M column (units: what that column divides by),
    deliveries_per_cpu_s; bridge_procs and workers_gone with workers."""
    cpu = w["cpu"]
    r.update(cpu_s=cpu, cpu_main_s=w["loop"], cpu_loop_s=w["loop"], cpu_rdkafka_s=w["rdkafka"],
             rdkafka_share=w["rdkafka"] / cpu if cpu > 0 else None,
             loop_per_m=w["loop"] / units * 1e6 if units else None,
             deliveries_per_cpu_s=r["delivered"] / cpu if cpu > 0 else None)
    if w["master"] is not None:
        r.update(cpu_master_s=w["master"], bridge_procs=w["procs"], workers_gone=w["gone"])
        if w["gone"]:
            r.setdefault("notes", []).append(
                f"{len(w['gone'])} worker(s) exited during the window (PIDs {', '.join(map(str, w['gone']))}): "
                "their CPU is counted from the master's reaped-children time, their loop thread up to "
                "the last sample that saw them")


def compare_floor(r, f):
    """The loop thread's CPU per delivery over the floor row's CPU s/M (the
    floor is one thread, so its whole CPU is its loop): floor_loop_ratio."""
    if r.get("loop_per_m") is not None and f.get("cpu_per_m"):
        r["floor_loop_ratio"] = r["loop_per_m"] / f["cpu_per_m"]


def cells(r):
    """The "loop s/M", "rdk %" and "loop vs floor" cells of a row."""
    if r.get("floor") is True:
        return [f"{r['loop_per_m']:.2f}" if r.get("loop_per_m") is not None else "-", "-", "(floor)"]
    if r.get("loop_per_m") is None:
        return ["-", "-", "-"]
    share = f"{r['rdkafka_share'] * 100:.0f}" if r.get("rdkafka_share") is not None else "-"
    ratio = f"{r['floor_loop_ratio']:.2f}x" if r.get("floor_loop_ratio") is not None else "-"
    return [f"{r['loop_per_m']:.2f}", share, ratio]


def fmt_dps(v):
    return "-" if v is None else f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def other_cell(r):
    """What a workers row adds to its "other" cell: deliveries per
    CPU-second beside the single-process row's, and the workers' sockets."""
    if r.get("workers", 1) <= 1:
        return ""
    text = f"; {fmt_dps(r.get('deliveries_per_cpu_s'))} deliveries/CPU-s"
    if r.get("workers_dps_ratio") is not None:
        text += f" vs {fmt_dps(r['single_dps'])} with 1 ({r['workers_dps_ratio']:.2f}x)"
    return text + spread(r, "/", "clients per worker", "sockets per worker", both=False)


def spread(r, sep, clients, sockets, both):
    """How SO_REUSEPORT spread a workers row: its clients per worker
    (/stats), and (both, or when /stats did not say) its sockets per worker."""
    text = ""
    if r.get("worker_clients"):
        text += f"; {clients} {sep.join(map(str, r['worker_clients']))}"
    if r.get("worker_sockets") and (both or not text):
        text += f"; {sockets} {sep.join(map(str, r['worker_sockets']))}"
    return text


def compare_workers(r, base):
    """A workers row against the single-process row of the same clients x
    rate in the run: deliveries per CPU-second (sets workers_dps_ratio,
    which target() judges), the split of the CPU, the loop per delivery."""
    n = r["workers"]
    text = f"{n} workers vs {base['name']} (one process)"
    d_r, d_b = r.get("deliveries_per_cpu_s"), base.get("deliveries_per_cpu_s")
    if d_r and d_b:
        r.update(single_row=base["name"], single_dps=d_b, workers_dps_ratio=d_r / d_b)
        text += (f": {d_r:,.0f} vs {d_b:,.0f} deliveries per CPU-second ({d_r / d_b:.2f}x; "
                 f"bridge CPU {r['cpu_s']:.2f} vs {base['cpu_s']:.2f} s for {r['delivered']} vs "
                 f"{base['delivered']} deliveries)")
    if r.get("cpu_master_s") is not None:
        text += (f"; of the {n} workers' CPU the loop threads {r['cpu_loop_s']:.2f} s, librdkafka's threads "
                 f"{r['cpu_rdkafka_s']:.2f} s, the master {r['cpu_master_s']:.2f} s "
                 f"({r.get('bridge_procs', 0) - 1} workers seen at the end)")
    if r.get("loop_per_m") is not None and base.get("loop_per_m") is not None:
        text += f"; loop CPU {r['loop_per_m']:.3f} vs {base['loop_per_m']:.3f} s per million deliveries"
    return text + spread(r, ", ", "clients per worker (/stats)", "sockets per worker after the subscribes", both=True)


def target(r):
    """(target text, misses) of a workers row: deliveries per CPU-second at
    least the single-process row's of the same run (none without it)."""
    if r.get("workers_dps_ratio") is None:
        return "", []
    misses = []
    if r.get("pct", 0) < 100.0:
        misses.append(f"delivered {r.get('pct', 0):.2f}% < 100%")
    if r.get("gap_clients", 1):
        misses.append(f"{r.get('gap_clients')} clients with gaps")
    if r["workers_dps_ratio"] < WORKERS_DPS_MIN:
        misses.append(f"{r['workers_dps_ratio']:.2f}x {r['single_row']}'s deliveries/CPU-s")
    return f"100%, no gaps, deliveries/CPU-s >= {r['single_row']}'s", misses


def loop_target(r, need):
    """keyed-10k: the loop thread's CPU per delivery at most 1.1x the
    floor's (judged when the run has floor-keyed-10k). Returns the text."""
    if r.get("floor_loop_ratio") is None:
        return ""
    need(r["floor_loop_ratio"] <= KEYED_LOOP_FLOOR_MAX,
         f"loop {r['floor_loop_ratio']:.2f}x floor > {KEYED_LOOP_FLOOR_MAX:.1f}x")
    return f", loop <= {KEYED_LOOP_FLOOR_MAX:.1f}x floor"


def floor_note(r):
    """The loop figure of row r in its floor row's note."""
    if r.get("floor_loop_ratio") is None:
        return ""
    return f", loop thread {r['loop_per_m']:.3f} CPU s/M ({r['floor_loop_ratio']:.2f}x)"


def wait_workers(pid, n, port, timeout=15.0):
    """After the bridge's first /ready 200 (which any one worker may give):
    wait until the master has n children and, for at most 5 s of that,
    until n sockets listen on the port (each worker's, SO_REUSEPORT), so
    every worker takes its share of the clients. Returns (children,
    listeners) as last seen; raises when the children never come."""
    import time
    deadline = time.monotonic() + timeout
    while len(children(pid)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"--workers {n}: {len(children(pid))} worker processes after {timeout:.0f} s")
        time.sleep(0.05)
    deadline = min(deadline, time.monotonic() + 5.0)
    while listeners(port) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(children(pid)), listeners(port)


def identify(pids):
    """{pid: start time} of processes, to know them again (a PID may be
    reused once its process is gone)."""
    out = {}
    for p in pids:
        try:
            out[p] = _stat(p)[19]       # field 22, starttime
        except OSError:
            pass
    return out


def leftover(procs, timeout=5.0):
    """Workers still running once their master has exited (after its
    SIGTERM): procs is identify()'s {pid: start time}. Waits up to timeout,
    then SIGKILLs those left, each by its PID, checked to be the very
    process (this run started it). Returns their PIDs."""
    import signal
    import time
    deadline = time.monotonic() + timeout

    def alive(p):
        try:
            v = _stat(p)
        except OSError:
            return False
        return v[0] not in ("Z", "X") and v[19] == procs[p]
    left = [p for p in procs if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    for p in left:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    return left
