"""test_workers.py - `--workers N|auto` (issue 16): a master and N worker
processes (its children, each a whole kbridge with its own fan-out consumer)
sharing --listen through SO_REUSEPORT. End to end against the mock cluster:
refused combinations; every client on either worker getting every record
once, in order; totals from whichever process answers; a worker killed
(SIGKILL) and restarted while its clients resume (docs/protocol.md#resume)
with no gap, no duplicate and no counter going down; quick deaths backing
off; SIGTERM, a second signal, a killed master and a signal to every
process; /ready, --admin-listen on the master, SIGHUP, --max-clients, logs.
Workers are found as the master's children in /proc; an autouse fixture
kills (by PID and start time) any that outlive a test, and fails it."""
import json
import os
import re
import shutil
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import conftest
import wsutil
from conftest import BulkReader, PacedProducer, free_port, read_messages, run_kbridge, ws_subscribe
from wsutil import get_json, http_request

PROBE_ERRORS = (OSError, wsutil.Closed, TimeoutError, AssertionError, ValueError)


# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """(state, ppid, start time) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def child_pids(pid):
    """Living (not zombie) children of pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(d))
    return sorted(out)


_seen = []          # (pid, start time) of every worker a test saw


def remember(pids):
    for pid in pids:
        st = proc_stat(pid)
        if st and (pid, st[2]) not in _seen:
            _seen.append((pid, st[2]))


def cpu_s(pid):
    """User + system CPU seconds a process used."""
    rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def still_running(pid, start):
    st = proc_stat(pid)
    return st is not None and st[2] == start and st[0] != "Z"


def identities(ws):
    """(pid, start time) of each worker of a /stats workers list."""
    return [(w["pid"], proc_stat(w["pid"])[2]) for w in ws]


def assert_gone(ids):
    left = [pid for pid, start in ids if still_running(pid, start)]
    assert not left, f"workers {left} still run after the master exited"


def poll(cond, timeout, msg):
    """Calls cond() until it returns something true, which is returned;
    fails with msg (called when callable) after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, msg() if callable(msg) else msg
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test():
    """Set up before kbridge's fixture, so torn down after the master was
    stopped: a worker still running then is killed (by PID, checked against
    its start time) and fails the test."""
    _seen.clear()
    yield
    left = [pid for pid, start in _seen if still_running(pid, start)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    if left:
        pytest.fail(f"worker processes {left} still ran after the master exited; killed", pytrace=False)


# ---------------------------------------------------------------- /stats and /metrics

def stats(port, headers=None):
    r = http_request(port, "GET", "/stats", headers=headers, timeout=3)
    assert r.status == 200, r
    return r.json()


def workers_of(st):
    ws = st.get("workers")
    assert isinstance(ws, list), f"/stats has no workers list: {sorted(st)}"
    return sorted(ws, key=lambda w: w.get("index", -1))


def wait_workers(srv, n=2, ready=False, timeout=20.0, pred=None, what="workers", port=None, headers=None):
    """Polls /stats until it lists n workers, indexes 0..n-1, whose pids are
    exactly the master's living children (and all ready, and pred(workers)).
    Returns (stats, workers sorted by index)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            st = stats(port or srv.port, headers)
            ws = workers_of(st)
            kids = child_pids(srv.pid)
            remember(kids)
            last = (ws, kids)
            pids = [w.get("pid") for w in ws]
            if [w.get("index") for w in ws] == list(range(n)) \
                    and all(isinstance(p, int) for p in pids) and sorted(pids) == kids \
                    and (not ready or all(w.get("ready") is True for w in ws)) \
                    and (pred is None or pred(ws)):
                return st, ws
        except PROBE_ERRORS as e:
            last = repr(e)
        assert srv.alive(), f"the master exited with {srv.proc.returncode}\n{srv.log_tail()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s: last (/stats workers, master's children) = "
                                 f"{last!r}\n{srv.log_tail()}")
        time.sleep(0.1)


def parse_metrics(text):
    """{(sample name, sorted labels): value}"""
    return {(sm.name, tuple(sorted(sm.labels.items()))): sm.value
            for fam in text_string_to_metric_families(text) for sm in fam.samples}


def metric_values(port, headers=None):
    r = http_request(port, "GET", "/metrics", headers=headers, timeout=3)
    assert r.status == 200, r
    return parse_metrics(r.body.decode())


def msum(vals, name, **labels):
    """Sum of the samples called name whose labels include labels."""
    hits = [v for (n, ls), v in vals.items()
            if n == name and all(dict(ls).get(k) == v2 for k, v2 in labels.items())]
    assert hits, f"no {name}{labels or ''} in /metrics: " \
                 f"{sorted({n for n, _ in vals if n.startswith('kbridge_')})}"
    return sum(hits)


def wait_metric(port, name, want, timeout=10.0, headers=None, **labels):
    """Polls /metrics until the sample equals want; returns the last values."""
    last = [None]

    def check():
        last[0] = metric_values(port, headers)
        return last[0] if msum(last[0], name, **labels) == want else None
    return poll(check, timeout, lambda: f"{name}{labels or ''} = {msum(last[0], name, **labels)} after {timeout}s, "
                                        f"expected {want}")


COUNTERS = [("kbridge_messages_sent_total", {}), ("kbridge_bytes_sent_total", {}),
            ("kbridge_records_consumed_total", {}),
            ("kbridge_connections_total", {"result": "accepted"})]


def counters(port):
    """The COUNTERS and /stats uptime_s: none may ever go down."""
    vals = metric_values(port)
    return {"uptime_s": stats(port)["uptime_s"], **{name: msum(vals, name, **labels) for name, labels in COUNTERS}}


def peer_of(ws):
    return "127.0.0.1:%d" % ws.sock.getsockname()[1]


def client_workers(port, peers, timeout=5.0, headers=None):
    """{peer: worker index} from /stats client_list, polled until every one
    of peers is listed."""
    deadline = time.monotonic() + timeout
    while True:
        st = stats(port, headers)
        got = {e.get("peer"): e.get("worker") for e in st.get("client_list", []) if e.get("peer") in peers}
        if len(got) == len(peers) and all(isinstance(w, int) for w in got.values()):
            return got, st
        assert time.monotonic() < deadline, \
            f"client_list does not name the worker of all {len(peers)} clients: {st.get('client_list')!r}"
        time.sleep(0.05)


def spread(srv, n, port=None, headers=None):
    """Opens n WebSocket clients, more while the kernel gave them all to one
    worker (it picks either by a hash: all 8 on one is 1 in 128), and checks
    client_list against workers[].clients. Returns (clients, {peer: worker})."""
    clients, where = [], {}
    while len(set(where.values())) < 2:
        assert len(clients) < n + 32, f"the kernel gave all {len(clients)} clients to one worker: {where}"
        new = [srv.ws() for _ in range(1 if clients else n)]
        for c in new:
            c.ping_ok()
        clients += new
        where, _ = client_workers(port or srv.port, {peer_of(c) for c in clients}, headers=headers)
    per = [list(where.values()).count(i) for i in (0, 1)]
    poll(lambda: [w.get("clients") for w in workers_of(stats(port or srv.port, headers))] == per, 5,
         lambda: f"/stats workers[].clients {workers_of(stats(port or srv.port, headers))}, client_list says {per}")
    return clients, where


def order_problems(name, msgs, parts, per_part=None):
    """What keeps msgs from being every record of partitions 0..parts-1 once,
    in offset order from 0 (per_part of each when given)."""
    out = []
    for p in range(parts):
        offs = [m["offset"] for m in msgs if m["partition"] == p]
        want = list(range(len(offs) if per_part is None else per_part))
        if offs != want:
            bad = next((j for j, o in enumerate(offs) if j >= len(want) or o != want[j]), len(offs))
            out.append(f"{name} partition {p}: {len(offs)} records, {len(offs) - len(set(offs))} duplicates, "
                       f"first wrong at #{bad}: {offs[max(0, bad - 3):bad + 3]}")
    return out


# ---------------------------------------------------------------- 1. refused

@pytest.mark.parametrize("args, env", [
    (["--brokers", "127.0.0.1:1", "--workers", "2", "--group", "g"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "2"], {"KBRIDGE_GROUP": "g"}),
    (["--workers", "2", "--demo"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "0"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "-1"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "abc"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "2x"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "65"], None),
    (["--brokers", "127.0.0.1:1"], {"KBRIDGE_WORKERS": "abc"}),
    (["--brokers", "127.0.0.1:1", "--workers", "3", "--max-clients", "2"], None),
    (["--brokers", "127.0.0.1:1", "--workers", "2"], {"MAX_CLIENTS": "1"}),
], ids=["group", "group-env", "demo", "zero", "negative", "abc", "2x", "65", "env-abc",
        "above-max-clients", "above-max-clients-env"])
def test_refused_combinations_and_values_exit_2(args, env):
    r = run_kbridge(args, env=env, timeout=5)
    lines = r.stderr.decode(errors="replace").splitlines()
    assert r.returncode == 2, f"exit status {r.returncode}, stderr {lines!r}"
    assert len(lines) == 1, f"expected one stderr line: {lines!r}"
    assert "--workers" in lines[0] or "KBRIDGE_WORKERS" in lines[0], lines[0]
    assert "unknown option" not in lines[0], lines[0]


# ---------------------------------------------------------------- 2. fan-out on every worker

def test_every_client_on_either_worker_gets_every_record_once_in_order(mock_kafka, kafka_bridge):
    mk = mock_kafka({"wk": 4})
    srv = kafka_bridge(mk, "-t", "wk", "--workers", "2", "--offset", "earliest")
    wait_workers(srv, 2, ready=True)
    clients, where = spread(srv, 16)
    n = len(clients)
    for i, c in enumerate(clients):
        ws_subscribe(c, {"type": "subscribe", "channel": "wk"}, ident=i)
    per_part = 50
    mds = [f.get(20) for f in [mk.produce("wk", '{"i":%d}' % i, key="k%d" % i, partition=p, wait=False)
                               for p in range(4) for i in range(per_part)]]
    assert sorted((md.partition, md.offset) for md in mds) == [(p, o) for p in range(4) for o in range(per_part)]
    total = 0
    problems = []
    for i, c in enumerate(clients):
        got = read_messages(c, 4 * per_part, timeout=20)
        got += read_messages(c, None, timeout=1.5, quiet=0.3)      # duplicates would show now
        total += len(got)
        problems += order_problems(f"client {i} (worker {where[peer_of(c)]})", got, 4, per_part)
    assert not problems, "\n".join(problems)
    assert total == n * 4 * per_part
    # Totals: the sum over both workers, whichever process answers.
    vals = wait_metric(srv.port, "kbridge_messages_sent_total", total)
    assert msum(vals, "kbridge_clients") == n
    assert msum(vals, "kbridge_workers") == 2
    assert msum(vals, "kbridge_subscriptions", channel="wk") == n
    for _ in range(8):          # fresh connections: the kernel picks the worker
        vals = metric_values(srv.port)
        assert (msum(vals, "kbridge_messages_sent_total"), msum(vals, "kbridge_clients")) == (total, n)
        h = get_json(srv.port, "/health")
        assert h["clients"] == n, h
    st = stats(srv.port)
    assert st["clients"] == n and st["channels"]["wk"]["subscribers"] == n, st["channels"]
    assert sum(w["clients"] for w in workers_of(st)) == n
    assert len(st["client_list"]) == n and all(e.get("worker") in (0, 1) for e in st["client_list"])


def test_workers_auto_is_the_cpus_kbridge_may_run_on(kbridge):
    cpus = min(len(os.sched_getaffinity(0)), 64)
    if cpus < 2:
        pytest.skip("one CPU: --workers auto means one process")
    srv = kbridge("--workers", "auto")
    _, ws = wait_workers(srv, cpus)
    assert msum(metric_values(srv.port), "kbridge_workers") == cpus
    assert all(w.get("restarts") == 0 for w in ws), ws


def test_workers_auto_is_capped_to_max_clients(kbridge):
    # auto never starts a worker with no share of --max-clients.
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: --workers auto means one process")
    srv = kbridge("--workers", "auto", "--max-clients", "1")
    assert msum(metric_values(srv.port), "kbridge_workers") == 1
    srv.ws()
    assert wsutil.http_request(srv.port, "GET", "/ws", headers=wsutil.upgrade_headers()).status == 503


def test_max_clients_bounds_the_box(kbridge):
    # Each worker takes its share of --max-clients: 5 = 3 + 2.
    srv = kbridge("--workers", "2", "--max-clients", "5")
    wait_workers(srv, 2)
    statuses, peers = [], set()
    for _ in range(20):
        c = srv.conn()
        c.send(wsutil.build_request("GET", "/ws", wsutil.upgrade_headers()))
        statuses.append(c.read_response(head=True).status)
        if statuses[-1] == 101:
            peers.add(peer_of(c))
        else:
            c.close()
    assert sorted(set(statuses)) == [101, 503] and statuses.count(101) == 5, statuses
    where, _ = client_workers(srv.port, peers)
    assert sorted(list(where.values()).count(i) for i in (0, 1)) == [2, 3], where
    wait_metric(srv.port, "kbridge_connections_total", 15, result="rejected_full")


# ---------------------------------------------------------------- 3. SIGKILL

class Logical:
    """One logical client across reconnects: the positions it saw (starting
    from the subscribe ack's) and the data of each of its connections."""

    def __init__(self, srv, name, channel):
        self.srv, self.name, self.channel = srv, name, channel
        self.last, self.segments, self.reader, self.conns = {}, [], None, 0
        self.connect()

    def connect(self, on=None):
        """Subscribes (resuming after the first time) on a new connection;
        on: a worker index, other connections are closed unused."""
        for _ in range(40):
            ws = self.srv.ws()
            self.peer = peer_of(ws)
            if on is None or client_workers(self.srv.port, {self.peer})[0][self.peer] == on:
                break
            ws.close()
        else:
            raise AssertionError(f"{self.name}: 40 connections, none on worker {on}")
        self.conns += 1
        msg = {"type": "subscribe", "channel": self.channel, "id": f"{self.name}-{self.conns}"}
        if self.conns > 1:
            msg["resume"] = dict(self.last)
        ack = ws.request(msg, timeout=10)
        assert ack.get("type") == "ack", f"{self.name}: {msg!r} -> {ack!r}"
        for k, v in (ack.get("positions") or {}).items():
            self.last.setdefault(k, v)
        self.reader = BulkReader(ws, f"{self.name}#{self.conns}")

    def end(self):
        """The connection is over (closed by the server or by us)."""
        self.reader.stop()
        errs = [o for o in self.reader.controls() if o.get("type") == "error"]
        assert not errs, f"{self.name}: errors {errs!r}"
        data = self.reader.data()
        self.segments.append(data)
        for m in data:
            self.last[f"{m['topic']}:{m['partition']}"] = m["offset"]

    def count(self):
        return sum(len(s) for s in self.segments) + len(self.reader.data())


def test_sigkill_worker_is_restarted_and_its_clients_resume(mock_kafka, kafka_bridge):
    mk = mock_kafka({"kw": 3})
    big = ["--client-queue", "100000", "--client-buffer", "64MiB"]
    srv = kafka_bridge(mk, "-t", "kw", "--workers", "2", "--offset", "earliest", *big)
    _, before = wait_workers(srv, 2, ready=True)
    logical = [Logical(srv, f"c{i}", "kw") for i in range(12)]
    where, _ = client_workers(srv.port, {lc.peer for lc in logical})
    while len(set(where.values())) < 2 and len(logical) < 40:       # 1 in 2048
        logical.append(Logical(srv, f"c{len(logical)}", "kw"))
        where, _ = client_workers(srv.port, {lc.peer for lc in logical})
    on = {i: [lc for lc in logical if where[lc.peer] == i] for i in (0, 1)}
    assert on[0] and on[1], f"all clients on one worker: {where}"
    prod = PacedProducer(mk, "kw", 300, 6.0, fmt_key=lambda i: "k%d" % (i % 30))
    for lc in logical:          # a partition never seen has no position to resume from
        lc.reader.wait_for(lambda objs: len({o["partition"] for o in objs if "offset" in o}) == 3, 15,
                           "records of all 3 partitions")
    samples = [counters(srv.port)]
    victim, vpid = 0, before[0]["pid"]
    log_mark = len(srv.log())
    os.kill(vpid, signal.SIGKILL)

    # Its clients lose the connection (no close frame: the process is gone);
    # half reconnect at once (to whichever worker the kernel picks).
    for lc in on[victim]:
        lc.reader.thread.join(10)
        assert lc.reader.closed in ("reset", "eof"), \
            f"{lc.name} on the killed worker: closed={lc.reader.closed!r}"
    for lc in on[1 - victim]:
        assert lc.reader.closed is None, f"{lc.name} on the surviving worker lost its connection: {lc.reader.closed}"
    early, late = on[victim][::2], on[victim][1::2]
    for lc in early:
        lc.end()
        lc.connect()

    # The master restarts the worker: a new pid, restarts 1, ready again.
    def restarted(ws):
        samples.append(counters(srv.port))
        return ws[victim].get("pid") != vpid and ws[victim].get("restarts") == 1
    _, after = wait_workers(srv, 2, ready=True, timeout=15, pred=restarted, what="restarted worker")
    assert proc_stat(vpid) is None or proc_stat(vpid)[1] != srv.pid, "the killed worker was not reaped"
    assert after[1 - victim]["pid"] == before[1 - victim]["pid"] and after[1 - victim].get("restarts") == 0, after
    # The dead worker's clients are no longer counted (nor listed).
    alive = len(on[1 - victim]) + len(early)
    vals = wait_metric(srv.port, "kbridge_clients", alive)
    assert msum(vals, "kbridge_subscriptions", channel="kw") == alive
    assert len(stats(srv.port)["client_list"]) == alive
    for lc in late:                     # on the replacement: its history is empty
        lc.end()
        lc.connect(on=victim)

    def died():
        return [l for l in srv.log()[log_mark:].splitlines()
                if (str(vpid) in l or re.search(r'worker\W{1,3}%d\b' % victim, l))
                and re.search(r"SIGKILL|\bKILL\b|signal\W{1,3}9\b|killed", l, re.I)]
    poll(died, 5, lambda: "no master log line on the death:\n" + srv.log()[log_mark:][-3000:])
    assert len(died()) == 1, f"expected one master log line naming worker {victim} (pid {vpid}) and SIGKILL:\n" \
                           + srv.log()[log_mark:][-3000:]

    total = prod.wait(30)
    for lc in logical:
        lc.reader.wait_for(lambda objs, lc=lc: lc.count() >= total, 30, f"all {total} records")
    time.sleep(0.5)                 # duplicates after the end would show now
    problems = []
    for lc in logical:
        lc.end()
        data = [m for seg in lc.segments for m in seg]
        problems += order_problems(f"{lc.name} ({lc.conns} connections)", data, 3)
        if sorted(m["data"]["i"] for m in data) != list(range(total)):
            problems.append(f"{lc.name}: {len(data)} records for {total} produced")
    assert not problems, "\n".join(problems)

    samples.append(counters(srv.port))
    for name in samples[0]:
        series = [s[name] for s in samples]
        assert series == sorted(series), f"{name} went down across the restart: {series}"
    vals = wait_metric(srv.port, "kbridge_clients", len(logical))
    assert msum(vals, "kbridge_worker_restarts_total") == 1
    assert msum(vals, "kbridge_workers") == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "master-KILLed"])
def test_sigterm_closes_every_client_with_1001_and_leaves_no_process(kbridge, sig):
    # SIGKILL: the master cannot forward anything; the kernel sends each
    # worker SIGTERM (PR_SET_PDEATHSIG) and they drain the same way.
    srv = kbridge("--workers", "2", "--drain-timeout", "3")
    _, ws = wait_workers(srv, 2)
    ids = identities(ws)
    clients, _ = spread(srv, 12)
    srv.signal(sig)
    for c in clients:
        c.expect_close(1001, timeout=6)
    rc = srv.wait_exit(10)
    assert rc == (0 if sig == signal.SIGTERM else -signal.SIGKILL), f"master exit status {rc}\n{srv.log_tail()}"
    poll(lambda: not [p for p, t in ids if still_running(p, t)], 6, "workers still run 6 s after the master exited")
    with pytest.raises(ConnectionRefusedError):
        wsutil.tcp_connect(srv.port, timeout=2).close()


def test_ready_only_when_every_worker_is_ready(mock_kafka, kbridge):
    mk = mock_kafka({"rd": 2})
    mk.down(1)
    srv = kbridge("--brokers", mk.bootstrap, "-X", "fetch.wait.max.ms=10", "-t", "rd", brokers=False,
                  env={"KBRIDGE_WORKERS": "2"})
    _, ws = wait_workers(srv, 2)
    for _ in range(8):
        r = http_request(srv.port, "GET", "/ready", timeout=3)
        assert r.status == 503, f"/ready {r.status} while the broker is down"
        time.sleep(0.1)
    st = stats(srv.port)
    assert st.get("ready") is False and not any(w.get("ready") for w in workers_of(st)), workers_of(st)
    mk.up(1)
    poll(lambda: http_request(srv.port, "GET", "/ready", timeout=3).status == 200, 30,
         lambda: f"/ready not 200 within 30 s of the broker's return\n{srv.log_tail()}")
    # The first 200 means every worker is ready: no lag to wait out here.
    st = stats(srv.port)
    assert st.get("ready") is True and st.get("kafka") == "up", st
    assert [(w.get("ready"), w.get("kafka")) for w in workers_of(st)] == [(True, "up")] * 2, workers_of(st)
    for _ in range(8):
        assert http_request(srv.port, "GET", "/ready", timeout=3).status == 200


# ---------------------------------------------------------------- 6. admin listener

def tcp_inode(local, remote=None):
    """Inode of the loopback TCP socket on local port `local`: the listening
    one, or the one connected to port `remote`."""
    for line in open("/proc/net/tcp").readlines()[1:]:
        cols = line.split()
        if cols[1].endswith(":%04X" % local) and (
                cols[3] == "0A" if remote is None else cols[2].endswith(":%04X" % remote)):
            return cols[9]
    return None


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def test_admin_listener_on_the_master_reports_the_totals(kbridge, tmp_path):
    """The master serves --admin-listen with every worker's totals, and
    SIGHUP reloads its own --admin-token file too."""
    tok = tmp_path / "admin-token"
    tok.write_bytes(b"first\n")
    admin = free_port()
    srv = kbridge("--workers", "2", "--admin-listen", f"127.0.0.1:{admin}", "--admin-token", str(tok))
    first, second = [("Authorization", "Bearer first")], [("Authorization", "Bearer second")]
    wait_workers(srv, 2, port=admin, headers=first)
    inode = tcp_inode(admin)
    assert inode is not None, f"nothing listens on 127.0.0.1:{admin}"
    assert inode in socket_inodes(srv.pid), f"the master (pid {srv.pid}) does not hold the admin listener"
    clients, where = spread(srv, 10, port=admin, headers=first)
    n = len(clients)
    vals = wait_metric(admin, "kbridge_clients", n, headers=first)
    assert msum(vals, "kbridge_workers") == 2
    assert msum(vals, "kbridge_connections_total", result="accepted") == n
    assert http_request(srv.port, "GET", "/metrics", headers=first).status == 404
    for c in clients[:4]:
        c.close()
    wait_metric(admin, "kbridge_clients", n - 4, headers=first)
    st = stats(admin, first)
    assert st["clients"] == n - 4 and sum(w["clients"] for w in workers_of(st)) == n - 4, workers_of(st)
    assert get_json(admin, "/health")["clients"] == n - 4
    tok.write_bytes(b"second")
    os.kill(srv.pid, signal.SIGHUP)      # not srv.signal: teardown still wants exit 0
    poll(lambda: http_request(admin, "GET", "/metrics", headers=second).status == 200, 5,
         lambda: f"the master's admin port still refuses the new token\n{srv.log_tail()}")
    assert http_request(admin, "GET", "/metrics", headers=first).status == 401


def test_sighup_reaches_every_worker(kbridge, tmp_path):
    tok = tmp_path / "admin-token"
    tok.write_bytes(b"first\n")
    srv = kbridge("--workers", "2", "--admin-token", str(tok))
    first, second = [("Authorization", "Bearer first")], [("Authorization", "Bearer second")]
    wait_workers(srv, 2, headers=first)
    clients, _ = spread(srv, 8, headers=first)
    for _ in range(8):
        assert http_request(srv.port, "GET", "/metrics", headers=first).status == 200
        assert http_request(srv.port, "GET", "/metrics", headers=second).status == 401
    tok.write_bytes(b"second")
    os.kill(srv.pid, signal.SIGHUP)      # not srv.signal: teardown still wants exit 0
    def reloaded():
        return [l for l in srv.log().splitlines() if "admin token reloaded" in l]
    poll(lambda: all(any(re.search(r"\bworker=%d\b" % i, l) for l in reloaded()) for i in (0, 1)), 10,
         lambda: f"not every worker logged 'admin token reloaded': {reloaded()!r}")
    for _ in range(10):             # fresh connections, whichever worker answers
        assert http_request(srv.port, "GET", "/metrics", headers=second).status == 200
        assert http_request(srv.port, "GET", "/metrics", headers=first).status == 401
    assert srv.alive() and len(child_pids(srv.pid)) == 2
    for c in clients:
        c.ping_ok()


def test_worker_log_lines_carry_the_worker_index(kbridge):
    srv = kbridge("--workers", "2", "--log-format", "json")
    wait_workers(srv, 2)
    clients, where = spread(srv, 8)
    def opened():
        events = [json.loads(l) for l in srv.log().splitlines() if l.startswith("{")]
        return {e.get("peer"): e.get("worker") for e in events if e.get("msg") == "websocket open"}
    poll(lambda: all(p in opened() for p in where), 5, lambda: f"no 'websocket open' line for some of {where}")
    opened = opened()
    got = {p: (None if opened.get(p) is None else int(opened[p])) for p in where}
    assert got == where, f"worker field of 'websocket open' lines {got} vs /stats client_list {where}"


# ---------------------------------------------------------------- restarts, backoff, the kept listener

def new_child(master, old, timeout=10.0):
    """Waits for a child of master not in old; (pid, seconds waited)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        fresh = [p for p in child_pids(master) if p not in old]
        if fresh:
            remember(fresh)
            return fresh[0], time.monotonic() - t0
        time.sleep(0.002)
    raise AssertionError(f"no new worker within {timeout}s; children {child_pids(master)}")


def get(conn, path):
    """GET on an open keep-alive connection."""
    conn.send(wsutil.build_request("GET", path))
    return conn.read_response(timeout=3)


def keepalive_on(srv, pid, tries=40):
    """An HTTP/1.1 keep-alive connection that the worker pid holds."""
    for _ in range(tries):
        c = srv.conn()
        assert get(c, "/health").status == 200
        if tcp_inode(srv.port, c.sock.getsockname()[1]) in socket_inodes(pid):
            return c
        c.close()
    raise AssertionError(f"no connection of {tries} landed on worker pid {pid}")


def test_quick_deaths_back_off_ready_is_503_and_the_others_serve(mock_kafka, kafka_bridge):
    """Worker 0 killed five times right after each start: the master waits
    100 ms, then longer (doubling), before each restart. In the last wait
    (1.6 s, room for a loaded machine to look around in it)
    /ready is 503 while worker 1 is ready, and the dead worker's listener
    has left the port (it keeps dying): every new connection is served by
    worker 1 at once instead of waiting for worker 0's replacement."""
    mk = mock_kafka({"bo": 2})
    srv = kafka_bridge(mk, "-t", "bo", "--workers", "2")
    _, ws = wait_workers(srv, 2, ready=True)
    keep = ws[1]["pid"]
    pid, gaps = ws[0]["pid"], []
    for _ in range(4):                  # waits of 100, 200, 400, 800 ms
        os.kill(pid, signal.SIGKILL)
        pid, gap = new_child(srv.pid, {keep, pid})
        gaps.append(gap)
    # Probes go over a keep-alive connection worker 1 holds: a new one
    # could wait in worker 0's listener.
    probe = keepalive_on(srv, keep)
    os.kill(pid, signal.SIGKILL)        # the fifth wait: about 1.6 s
    t_kill = time.monotonic()
    time.sleep(0.35)                    # state is published at the end of a turn
    alone = child_pids(srv.pid) == [keep]
    ready = get(probe, "/ready").status
    w = workers_of(get(probe, "/stats").json())
    running = msum(parse_metrics(get(probe, "/metrics").body.decode()), "kbridge_workers")
    socks = [srv.conn() for _ in range(16)]
    for c in socks:
        c.send(wsutil.build_request("GET", "/ws", wsutil.upgrade_headers()))
    still_alone = child_pids(srv.pid) == [keep]
    pid, _ = new_child(srv.pid, {keep, pid})
    gaps.append(time.monotonic() - t_kill)
    assert gaps[0] < 1.5, f"first restart after {gaps[0]:.2f}s (documented: 100 ms)"
    assert gaps[3] >= 0.6 and gaps[4] >= 1.2, f"restart waits {[round(g, 3) for g in gaps]}: no doubling for quick deaths"
    assert alone, "the replacement started before the fifth wait was over"
    assert ready == 503, f"/ready {ready} while worker 0 was down: {w}"
    assert w[1].get("ready") is True and w[0].get("ready") is not True, w
    assert running == 1, f"kbridge_workers {running} while worker 0 was down"
    assert still_alone, "connections opened too late to test the closed listener (the machine is too slow)"
    for c in socks:
        r = c.read_response(head=True, timeout=10)
        assert r.status == 101, r
    where, _ = client_workers(srv.port, {"127.0.0.1:%d" % c.sock.getsockname()[1] for c in socks})
    assert set(where.values()) == {1}, f"a connection went to the dead worker's listener: {where}"
    _, ws = wait_workers(srv, 2, ready=True)
    assert ws[0]["pid"] == pid and ws[0]["restarts"] == 5 and ws[1]["restarts"] == 0, ws
    assert msum(metric_values(srv.port), "kbridge_worker_restarts_total") == 5
    assert len(re.findall(r"worker died", srv.log())) == 5, srv.log_tail()


def test_a_replacement_exiting_2_is_retried_while_the_other_worker_serves(kbridge, tmp_path):
    """Exit status 2 is fatal only at the first start: a replacement that
    meets a configuration error (a file missing for a moment during a
    rotation) is started again with the backoff."""
    tok = tmp_path / "admin-token"
    tok.write_bytes(b"first\n")
    auth = [("Authorization", "Bearer first")]
    srv = kbridge("--workers", "2", "--admin-token", str(tok))
    _, ws = wait_workers(srv, 2, headers=auth)
    probe = keepalive_on(srv, ws[1]["pid"])
    tok.write_bytes(b"")
    os.kill(ws[0]["pid"], signal.SIGKILL)
    poll(lambda: srv.log().count("exited with status 2") >= 2, 10,
         lambda: f"no replacement exited 2 twice\n{srv.log_tail()}")
    assert srv.alive() and get(probe, "/health").status == 200
    tok.write_bytes(b"first\n")
    _, after = wait_workers(srv, 2, timeout=15, headers=auth, what="a replacement that stays",
                            pred=lambda w: w[0]["pid"] != ws[0]["pid"] and w[0].get("restarts", 0) >= 3)
    assert after[1]["pid"] == ws[1]["pid"], after


def test_a_stuck_worker_is_killed_and_restarted(kbridge):
    """A worker whose loop stops turning (SIGSTOP stands in for a call that
    never returns) is killed by the master about 20 s after its last turn,
    with one error line naming it and how long it was stuck, and started
    again (restarts 1); the other worker serves throughout. /stats is read
    from the master's admin listener: the port may hand a connection to the
    stopped worker."""
    admin = free_port()
    srv = kbridge("--workers", "2", "--admin-listen", f"127.0.0.1:{admin}")
    _, ws = wait_workers(srv, 2, port=admin)
    probe = keepalive_on(srv, ws[1]["pid"])
    vpid, vstart = ws[0]["pid"], proc_stat(ws[0]["pid"])[2]
    t0 = time.monotonic()
    served = []

    def killed():
        if time.monotonic() - t0 > 2 * len(served):       # the other worker answers, every 2 s
            served.append(get(probe, "/health").status)
        return [ln for ln in srv.log().splitlines() if "stopped turning its loop" in ln]
    os.kill(vpid, signal.SIGSTOP)
    try:
        stuck = poll(killed, 35, lambda: f"the stopped worker was not killed in 35 s\n{srv.log_tail()}")
        took = time.monotonic() - t0
    finally:
        if still_running(vpid, vstart):
            os.kill(vpid, signal.SIGCONT)
    assert len(stuck) == 1 and " error " in stuck[0], stuck
    assert "worker=0" in stuck[0] and f"pid={vpid}" in stuck[0], stuck
    ms = int(re.search(r"stuck_ms=(\d+)", stuck[0]).group(1))
    assert 20000 <= ms <= 21000, stuck[0]
    # later if the master itself was held up for over a second meanwhile
    # (it then counts again, so as not to take a frozen group for stuck)
    assert 19 <= took <= 33, f"killed {took:.1f} s after the SIGSTOP"
    assert len(served) >= 9 and set(served) == {200}, f"the other worker's answers meanwhile: {served}"
    _, after = wait_workers(srv, 2, timeout=15, port=admin, what="the stuck worker's replacement",
                            pred=lambda w: w[0]["pid"] != vpid and w[0].get("restarts") == 1)
    assert after[1]["pid"] == ws[1]["pid"] and after[1].get("restarts") == 0, after
    assert any("worker died; restarting it" in ln and "signal 9" in ln for ln in srv.log().splitlines())


def test_a_frozen_group_is_not_taken_for_stuck_workers(kbridge):
    """The whole group stopped for longer than the watchdog's 20 s (as
    `docker pause` or Ctrl-Z do), then continued, the master first (a
    turn before its workers had one): nothing is killed, as the master's
    own silence shows the workers' was not theirs."""
    admin = free_port()
    srv = kbridge("--workers", "2", "--admin-listen", f"127.0.0.1:{admin}")
    _, ws = wait_workers(srv, 2, port=admin)
    workers = [w["pid"] for w in ws]
    for pid in [srv.pid] + workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(21)
    finally:
        os.kill(srv.pid, signal.SIGCONT)
        time.sleep(0.5)                   # the master turns while its workers still sleep
        for pid in workers:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:        # killed as stuck: the assertion below says so
                pass
    time.sleep(1)
    assert "stopped turning its loop" not in srv.log(), srv.log_tail()
    _, after = wait_workers(srv, 2, port=admin)
    assert [w["pid"] for w in after] == workers and all(w.get("restarts") == 0 for w in after), after


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_port_is_the_masters_alone(kbridge, workers):
    srv = kbridge("--workers", "2")
    wait_workers(srv, 2)
    r = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", f"127.0.0.1:{srv.port}", "--workers", workers],
                    timeout=5)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1 and "in use" in err, (r.returncode, err)


# ---------------------------------------------------------------- signals

def test_second_signal_ends_every_worker_at_once_with_1(kbridge):
    from test_shutdown import FLOOD_FLAGS, stuck_client
    srv = kbridge("--workers", "2", "--drain-timeout", "30", *FLOOD_FLAGS)
    _, ws = wait_workers(srv, 2)
    ids = identities(ws)
    stuck_client(srv)
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert srv.alive(), "the master exited at once although a client's output was not flushed (--drain-timeout 30)"
    cpu = cpu_s(srv.pid)
    time.sleep(1.0)
    assert cpu_s(srv.pid) - cpu < 0.3, f"the master spent {cpu_s(srv.pid) - cpu:.2f} CPU s in 1 s of drain"
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(5)
    assert rc == 1, f"master exit status {rc} after the second signal (None: still running 5 s later)"
    assert time.monotonic() - t0 < 3
    # "At once": the master kills the workers and does not wait for them to
    # end, so one may still be dying (an ASan build's teardown takes a while).
    poll(lambda: not [p for p, t in ids if still_running(p, t)], 2, "workers still run 2 s after the master exited")


@pytest.mark.parametrize("master_first", [False, True], ids=["workers-first", "master-first"])
def test_sigterm_to_every_process_at_once_counts_once(kbridge, master_first):
    """Ctrl-C or systemd signal the master and every worker: a worker takes
    its own copy and the master's forwarded one for the same signal, not a
    second, so the drain goes on (--drain-timeout 2 for a client that
    cannot be flushed) and all exit 0."""
    from test_shutdown import FLOOD_FLAGS, stuck_client
    srv = kbridge("--workers", "2", "--drain-timeout", "2", *FLOOD_FLAGS)
    _, ws = wait_workers(srv, 2)
    ids = identities(ws)
    idle = srv.ws()
    stuck_client(srv)
    t0 = time.monotonic()
    pids = [srv.pid] + [w["pid"] for w in ws]
    for pid in (pids if master_first else pids[::-1]):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass   # the master's forwarded copy came first, and a worker without the stuck client drained already
    srv.signalled = True
    idle.expect_close(1001, timeout=5)
    rc = srv.wait_exit(15)
    took = time.monotonic() - t0
    assert rc == 0, f"exit status {rc} after {took:.1f}s\n{srv.log_tail()}"
    assert took >= 1.5, f"exited {took:.2f}s after SIGTERM, before the 2 s drain of the stuck client was over"
    assert_gone(ids)


def test_a_replacement_starts_with_sigchld_ignored_and_the_binary_gone(kbridge, tmp_path, monkeypatch):
    """The master runs the binary it runs (not the file, deleted here), and
    resets SIGCHLD, which a parent that ignores it passes on through exec."""
    copy = tmp_path / "kbridge-copy"
    shutil.copy2(conftest.bin_path(), copy)
    monkeypatch.setattr(conftest, "BIN", str(copy))
    monkeypatch.setattr(conftest, "_set_nofile", lambda n: lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
    srv = kbridge("--workers", "2", nofile=1)       # nofile: only to get the preexec hook
    _, ws = wait_workers(srv, 2)
    os.unlink(copy)
    os.kill(ws[0]["pid"], signal.SIGKILL)
    wait_workers(srv, 2, timeout=10, what="replacement of worker 0",
                 pred=lambda w: w[0].get("restarts") == 1 and w[0]["pid"] != ws[0]["pid"])
    for _ in range(6):
        srv.ws().ping_ok()
