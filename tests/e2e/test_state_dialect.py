"""The Dashboard Server state dialect (`type=tui|web`): a client holds a
state {channel: ...}, receives it whole in a `snapshot`, then only what
changed in `update` messages, at most once per period (tui 100 ms, web
250 ms, interval=MS), and applies them the plan's way: split the path on
'.', create missing objects where the value is falsy, set the leaf.

- test_plan_clients_*: our own Node client (tests/e2e/state/dashclient.mjs,
  @msgpack/msgpack) and Go client (tests/e2e/state/goclient, the plan's Go
  types) against records for the plan's four channels.
- The other tests use raw WebSocket clients (wsutil) in JSON and MessagePack
  and apply every message in Python exactly as the plan's setNestedValue
  does (JavaScript truthiness included), then compare with the state
  computed from the produced records (`Model`). Deleted map keys may remain
  as null in a client's state; nothing else may differ.
- test_random_records_*: seeded random record sequences (nested objects,
  removed fields, type changes, tombstones, names with dots).
"""
import base64
import copy
import datetime
import json
import os
import queue
import random
import shutil
import subprocess
import threading
import time

import msgpack
import pytest

from conftest import ARTIFACTS, ROOT, BulkReader, wait_channel_seq
from wsutil import OP_BINARY, OP_TEXT

HERE = os.path.dirname(os.path.abspath(__file__))
STATE_DIR = os.path.join(HERE, "state")
NODE_CLIENT = os.path.join(STATE_DIR, "dashclient.mjs")
GO_SRC = os.path.join(STATE_DIR, "goclient", "main.go")
GO_BIN = os.path.join(ROOT, "build", "dashclient-go")
TOMB = object()         # a Kafka tombstone (null value)
DIALECT = ("snapshot", "update")


# ---------------------------------------------------------------- the plan's way of applying

class ApplyError(Exception):
    pass


def js_falsy(v):
    """`!v` in JavaScript: undefined, null, false, 0, NaN and "" (objects and
    arrays, even empty ones, are truthy)."""
    if v is None or v is False:
        return True
    if v is True:
        return False
    if isinstance(v, (int, float)):
        return v == 0 or v != v
    if isinstance(v, str):
        return v == ""
    return False


def _index(arr, key, path):
    if not key.isdigit() or str(int(key)) != key or int(key) >= len(arr):
        raise ApplyError(f"path {path!r}: {key!r} is not an index of an array of {len(arr)}")
    return int(key)


def set_nested(obj, path, value):
    """The plan's setNestedValue. A step through a number, string or
    boolean is the TypeError strict-mode JavaScript throws; a step into an
    array uses a numeric key as JavaScript would."""
    keys = path.split(".")
    cur = obj
    for key in keys[:-1]:
        if isinstance(cur, dict):
            if js_falsy(cur.get(key)):
                cur[key] = {}
            cur = cur[key]
        elif isinstance(cur, list):
            i = _index(cur, key, path)
            if js_falsy(cur[i]):
                cur[i] = {}
            cur = cur[i]
        else:
            raise ApplyError(f"path {path!r}: cannot create property {key!r} on {cur!r}")
    last = keys[-1]
    if isinstance(cur, dict):
        cur[last] = value
    elif isinstance(cur, list):
        cur[_index(cur, last, path)] = value
    else:
        raise ApplyError(f"path {path!r}: cannot create property {last!r} on {cur!r}")


def replay(objs):
    """A client's state after these messages: (state, problems)."""
    state, problems = {}, []
    for o in objs:
        t = o.get("type") if isinstance(o, dict) else None
        if t == "snapshot" and o.get("data") is not None:
            state = copy.deepcopy(o["data"])
        elif t == "update" and o.get("changes") is not None:
            for path, value in o["changes"].items():
                try:
                    set_nested(state, path, copy.deepcopy(value))
                except ApplyError as e:
                    problems.append(f"seq {o.get('seq')}: {e}")
    return state, problems


# ---------------------------------------------------------------- the expected state

class Model:
    """The state the records give: per channel map {key: newest}, value
    (the newest record's value), or list (newest per key, in first-appearance
    order, a re-created key last). Without a given shape the first record
    decides (null key: value, else map)."""

    def __init__(self, shapes=None, limit=None):
        self.shape = dict(shapes or {})
        self.data = {}
        self.count = {}         # records per channel
        self.limit = limit      # --snapshot-keys: the least recently updated key goes
        self.recent = {}        # ch -> {key: None}, least recently updated first

    def add(self, ch, key, value, keys=None):
        self.count[ch] = self.count.get(ch, 0) + 1
        if keys is not None and key not in keys:
            return
        shape = self.shape.get(ch)
        if shape is None:
            shape = self.shape[ch] = "value" if key is None else "map"
        if shape == "value":
            self.data[ch] = None if value is TOMB else value
            return
        if key is None:
            return              # null keys are not cached
        d = self.data.setdefault(ch, {})
        recent = self.recent.setdefault(ch, {})
        recent.pop(key, None)
        if value is TOMB:
            d.pop(key, None)
            return
        d[key] = value          # a key that exists keeps its place
        recent[key] = None
        while self.limit is not None and len(d) > self.limit:
            oldest = next(iter(recent))
            del recent[oldest]
            del d[oldest]

    def state(self, ch):
        shape = self.shape.get(ch)
        if shape == "value":
            return self.data.get(ch)
        d = self.data.get(ch, {})
        return list(d.values()) if shape == "list" else dict(d)

    def full(self, channels):
        return {ch: self.state(ch) for ch in channels}


def norm(state, shapes):
    """Deleted map keys may be left as null: drop them."""
    if not isinstance(state, dict):
        return state
    out = {}
    for ch, v in state.items():
        if shapes.get(ch) == "map" and isinstance(v, dict):
            v = {k: x for k, x in v.items() if x is not None}
        out[ch] = v
    return out


def first_diff(a, b, path="$"):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}: {a.get(k, '<absent>')!r:.200} vs {b.get(k, '<absent>')!r:.200}"
            d = first_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}: {a!r:.300} vs {b!r:.300}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if a != b or type(a) is bool and type(b) is not bool or type(b) is bool and type(a) is not bool:
        return f"{path}: {a!r:.200} vs {b!r:.200}"
    return None


# ---------------------------------------------------------------- Kafka

def produce(mk, model, topic, ch, key, value, wait=False, ensure_ascii=False, keys=None):
    """One record: value a JSON-able object or TOMB; `model` learns it."""
    raw = None if value is TOMB else json.dumps(value, ensure_ascii=ensure_ascii)
    model.add(ch, key, value, keys)
    return mk.produce(topic, raw, key=key, wait=wait)


# ---------------------------------------------------------------- raw clients

class StateClient:
    """A raw WebSocket client (wsutil) that reads everything in a thread
    (BulkReader) and applies snapshot/update messages the plan's way."""

    def __init__(self, srv, query, name=None, rcvbuf=None, read=True, offer=None):
        self.srv = srv
        self.query = query
        self.fmt = "msgpack" if "format=msgpack" in query else "json"
        self.name = name or query
        self.ws = srv.ws(path="/ws?" + query, rcvbuf=rcvbuf, offer=offer)
        self.reader = BulkReader(self.ws, self.name) if read else None

    def start_reading(self):
        assert self.reader is None
        self.reader = BulkReader(self.ws, self.name)

    def send(self, obj):
        """Client messages are JSON text frames, as the plan sends them."""
        self.ws.send_json(obj)

    def subscribe(self, channels, **extra):
        self.send(dict({"type": "subscribe", "channels": list(channels)}, **extra))

    def objs(self):
        return self.reader.objs()

    def msgs(self):
        """(time, opcode, raw, obj) of every message so far."""
        with self.reader._lock:
            return list(self.reader.msgs)

    def dialect(self):
        return [o for o in self.objs() if isinstance(o, dict) and o.get("type") in DIALECT]

    def of_type(self, t):
        return [o for o in self.objs() if isinstance(o, dict) and o.get("type") == t]

    def state(self):
        state, problems = replay(self.objs())
        assert not problems, f"{self.name}: changes the plan's setNestedValue cannot apply: {problems[:5]}"
        return state

    def wait(self, pred, timeout=10.0, what="condition"):
        return self.reader.wait_for(pred, timeout, what)

    def wait_count(self, t, n, timeout=10.0):
        self.wait(lambda objs: sum(1 for o in objs if isinstance(o, dict) and o.get("type") == t) >= n,
                  timeout, f"{n} {t} messages")

    def wait_state(self, expected, shapes, timeout=10.0):
        """Waits until the applied state equals `expected` (deleted map keys
        may be null); fails with the first difference."""
        want = norm(expected, shapes)
        deadline = time.monotonic() + timeout
        while True:
            got = norm(self.state(), shapes)
            if got == want and first_diff(got, want) is None:
                return got
            self.reader.check()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: state differs after {timeout}s: {first_diff(got, want)}\n"
                                     f" got: {json.dumps(got, default=str)[:1500]}\nwant: "
                                     f"{json.dumps(want, default=str)[:1500]}\n{self.summary()}")
            time.sleep(0.05)

    def summary(self):
        objs = self.objs()
        kinds = {}
        for o in objs:
            t = o.get("type") if isinstance(o, dict) else type(o).__name__
            kinds[t] = kinds.get(t, 0) + 1
        return f"{self.name}: {len(objs)} messages {kinds}; last: {[o for o in objs[-3:]]!r:.1500}"

    def check(self):
        """What every state-dialect connection must show: frames of its
        format, seq 1, 2, 3... over snapshots and updates, a timestamp of
        its format on each, no SLOW_CONSUMER, no unasked error."""
        self.reader.check()
        want_op = OP_BINARY if self.fmt == "msgpack" else OP_TEXT
        bad = [raw[:80] for _, op, raw, _ in self.msgs() if op != want_op]
        assert not bad, f"{self.name}: frames of the wrong kind for format={self.fmt}: {bad[:3]}"
        d = self.dialect()
        seqs = [o.get("seq") for o in d]
        assert seqs == list(range(1, len(d) + 1)), f"{self.name}: seqs {seqs}"
        for o in d:
            check_timestamp(o.get("timestamp"), self.fmt, f"{self.name} seq {o.get('seq')}")
        slow = [o for o in self.of_type("error") if o.get("code") == "SLOW_CONSUMER"]
        assert not slow, f"{self.name}: SLOW_CONSUMER in the state dialect: {slow[:2]}"
        return d

    def stop(self):
        if self.reader is not None:
            self.reader.stop()


def check_timestamp(ts, fmt, what, slack=120.0):
    """msgpack: a Timestamp extension (type -1); json: an ISO-8601 string;
    either within `slack` seconds of now."""
    now = time.time()
    if fmt == "msgpack":
        assert isinstance(ts, msgpack.Timestamp), \
            f"{what}: timestamp is {type(ts).__name__} {ts!r}, not a MessagePack Timestamp (ext -1)"
        t = ts.to_unix()
    else:
        assert isinstance(ts, str), f"{what}: timestamp {ts!r} is not a string"
        dt = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
        assert dt.tzinfo is not None, f"{what}: timestamp {ts!r} has no time zone"
        t = dt.timestamp()
    assert abs(t - now) < slack, f"{what}: timestamp {ts!r} is {t - now:+.1f} s from now"


def updates_between(client, n0):
    """The update messages after the first n0."""
    return client.of_type("update")[n0:]


# ---------------------------------------------------------------- subprocess clients

def need_node():
    if not shutil.which("node"):
        pytest.skip("node is not installed (tests/setup.sh installs it)")
    missing = [m for m in ("ws", "@msgpack/msgpack") if not os.path.isdir(os.path.join(HERE, "node_modules", m))]
    if missing and shutil.which("npm"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
        missing = [m for m in missing if not os.path.isdir(os.path.join(HERE, "node_modules", m))]
    if missing:
        pytest.skip(f"npm packages {missing} missing in tests/e2e (tests/setup.sh installs them)")


_go = {}


def need_go():
    """Builds build/dashclient-go offline from Debian's Go packages (GOPATH
    mode, no module download); skips without the toolchain."""
    if "bin" in _go:
        return _go["bin"]
    if "skip" in _go:
        pytest.skip(_go["skip"])
    go = shutil.which("go") or ("/usr/lib/go/bin/go" if os.path.exists("/usr/lib/go/bin/go") else None)
    if not go:
        _go["skip"] = "go is not installed (tests/setup.sh installs golang-go)"
        pytest.skip(_go["skip"])
    fresh = os.path.exists(GO_BIN) and os.path.getmtime(GO_BIN) >= os.path.getmtime(GO_SRC)
    if not fresh:
        env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOFLAGS="",
                   GOCACHE=os.path.join(ROOT, "build", "gocache"), CGO_ENABLED="0")
        os.makedirs(os.path.dirname(GO_BIN), exist_ok=True)
        r = subprocess.run([go, "build", "-o", GO_BIN, "./tests/e2e/state/goclient"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            if "cannot find package" in r.stderr:
                _go["skip"] = f"Go packages missing (tests/setup.sh installs them): {r.stderr.strip()[:500]}"
                pytest.skip(_go["skip"])
            pytest.fail(f"go build of tests/e2e/state/goclient failed:\n{r.stderr}")
    _go["bin"] = GO_BIN
    return GO_BIN


class ProcClient:
    """dashclient.mjs or goclient as a process: `send`, `report` (the JSON
    report line), `stop`."""

    def __init__(self, cmd, name):
        self.name = name
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.errlog = open(os.path.join(ARTIFACTS, f"state-{name}.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog,
                                     text=True, bufsize=1, cwd=HERE)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next(10)
        assert first.get("event") == "open", f"{name}: {first!r}"

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    self.lines.put({"event": "garbage", "line": line[:500]})
        self.lines.put(None)

    def _next(self, timeout):
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no output within {timeout}s")
        if msg is None:
            with open(self.errlog.name) as f:
                err = f.read()[-3000:]
            raise AssertionError(f"{self.name}: exited {self.proc.poll()}:\n{err}")
        return msg

    def send(self, obj):
        self.proc.stdin.write("send " + json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def report(self, timeout=10):
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        return self._next(timeout)

    def stop(self, timeout=10):
        if self.proc.poll() is not None:
            with open(self.errlog.name) as f:
                raise AssertionError(f"{self.name} exited {self.proc.returncode} before stop:\n{f.read()[-3000:]}")
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            rep = self._next(timeout)
            self.proc.wait(timeout)
            return rep
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self.errlog.close()


def node_client(port, name, query="type=web&format=msgpack", channels=None):
    cmd = ["node", NODE_CLIENT, f"ws://127.0.0.1:{port}/ws?{query}"]
    if channels is not None:
        cmd += ["--channels", ",".join(channels)]
    return ProcClient(cmd, name)


def go_client(port, name, query="type=tui&format=msgpack", channels=None):
    cmd = [need_go()]
    if channels is not None:
        cmd += ["-channels", ",".join(channels)]
    if "format=json" in query:
        cmd += ["-json"]
    return ProcClient(cmd + [f"ws://127.0.0.1:{port}/ws?{query}"], name)


# ---------------------------------------------------------------- (a) the plan's clients

PLAN_ROUTES = ["-t", "md=market_data", "-t", "ord=orders", "-t", "pos=positions", "-t", "acct=account",
               "--state-shape", "orders=list"]
PLAN_CHANNELS = ["market_data", "orders", "positions", "account"]
SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "EURUSD", "XAU", "TSLA"]


class PlanFeed:
    """Records of the plan's shapes, every field of its types present."""

    def __init__(self, mk, model, seed):
        self.mk, self.model, self.r = mk, model, random.Random(seed)
        self.orders = {}        # id -> order, live ones
        self.next_id = 1
        self.deleted = []
        self.tombstones = self.recreated = 0
        self.balance = 100000.0

    def one(self):
        r = self.r
        kind = r.choices(["md", "ord", "pos", "acct"], [5, 3, 2, 1])[0]
        if kind == "md":
            s = r.choice(SYMBOLS)
            p = round(r.uniform(10, 50000), 2)
            v = {"symbol": s, "last_price": p, "bid_price": round(p - 0.5, 2), "ask_price": round(p + 0.5, 2)}
            produce(self.mk, self.model, "md", "market_data", s, v)
        elif kind == "pos":
            s = r.choice(SYMBOLS)
            v = {"symbol": s, "unrealized_pnl": round(r.uniform(-5000, 5000), 2)}
            produce(self.mk, self.model, "pos", "positions", s, v)
        elif kind == "acct":
            self.balance = round(self.balance + r.uniform(-1000, 1000), 2)
            produce(self.mk, self.model, "acct", "account", None, {"total_balance": self.balance})
        else:
            x = r.random()
            if x < 0.35 or not self.orders:
                if self.deleted and r.random() < 0.3:
                    oid = self.deleted.pop(0)       # produced again: goes last
                    self.recreated += 1
                else:
                    oid = f"ord-{self.next_id}"
                    self.next_id += 1
                o = {"id": oid, "symbol": r.choice(SYMBOLS), "side": r.choice(["buy", "sell"]),
                     "quantity": r.randint(1, 500), "status": "new"}
                self.orders[oid] = o
            elif x < 0.85:
                oid = r.choice(sorted(self.orders))
                o = dict(self.orders[oid], status=r.choice(["partially_filled", "filled", "new"]),
                         quantity=r.randint(1, 500))
                self.orders[oid] = o
            else:
                oid = r.choice(sorted(self.orders))
                del self.orders[oid]
                self.deleted.append(oid)
                self.tombstones += 1
                produce(self.mk, self.model, "ord", "orders", oid, TOMB)
                return
            produce(self.mk, self.model, "ord", "orders", oid, o)

    def run(self, n, pause=(0, 0, 0.003, 0.02)):
        for _ in range(n):
            self.one()
            time.sleep(self.r.choice(pause))
        self.mk.flush()


def wait_proc_state(client, key, expected, shapes, timeout=15.0):
    """Polls a process client's report until report[key] equals expected."""
    want = norm(expected, shapes)
    deadline = time.monotonic() + timeout
    while True:
        rep = client.report()
        got = norm({ch: (rep.get(key) or {}).get(ch) for ch in want}, shapes)
        if got == want and first_diff(got, want) is None:
            return rep
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.name}: {key} differs after {timeout}s: {first_diff(got, want)}\n"
                                 f"problems: {rep.get('problems')}, decode errors {rep.get('decode_errors')}, "
                                 f"apply errors {rep.get('apply_errors')}, types {rep.get('types')}")
        time.sleep(0.2)


def check_proc_report(rep, name):
    assert rep["decode_errors"] == 0, f"{name}: {rep['decode_errors']} decode errors: {rep['problems']}"
    assert rep["apply_errors"] == 0, f"{name}: {rep['apply_errors']} apply errors: {rep['problems']}"
    seqs = rep["seqs"]
    assert seqs == list(range(1, len(seqs) + 1)), f"{name}: seqs {seqs}"
    assert rep["snapshots"] >= 1 and rep["updates"] >= 1, f"{name}: {rep['types']}"
    assert not [e for e in rep["errors"] if (e or {}).get("code") == "SLOW_CONSUMER"], rep["errors"]


def test_plan_clients_end_in_kafka_state(mock_kafka, kafka_bridge):
    """The plan's web client (Node, type=web) and TUI client (Go, type=tui,
    the plan's types), two of each connected before the records and two
    while they flow, end with the newest Kafka values: every key of
    market_data and positions, account as one object, orders as a list in
    first-appearance order; no decode error; seq 1, 2, 3..."""
    need_node()
    need_go()
    mk = mock_kafka({"md": 1, "ord": 1, "pos": 1, "acct": 1})
    srv = kafka_bridge(mk, *PLAN_ROUTES)
    model = Model({"orders": "list"})
    feed = PlanFeed(mk, model, seed=20261203)
    clients = [node_client(srv.port, "node-early"), go_client(srv.port, "go-early")]
    time.sleep(0.5)
    feed.run(150)
    clients += [node_client(srv.port, "node-late"), go_client(srv.port, "go-late")]
    feed.run(150)
    for ch, topic in (("market_data", "md"), ("orders", "ord"), ("positions", "pos"), ("account", "acct")):
        wait_channel_seq(srv.port, ch, model.count.get(ch, 0))
    expected = model.full(PLAN_CHANNELS)
    assert model.shape["account"] == "value" and isinstance(expected["account"], dict)
    assert feed.tombstones and feed.recreated, "the feed deleted no order or re-created none"
    for c in clients:
        wait_proc_state(c, "state", expected, model.shape)
        if c.name.startswith("go"):
            wait_proc_state(c, "generic", expected, model.shape)
    time.sleep(0.4)
    for c in clients:
        rep = c.stop()
        check_proc_report(rep, c.name)
        got = norm({ch: rep["state"].get(ch) for ch in PLAN_CHANNELS}, model.shape)
        assert got == norm(expected, model.shape), f"{c.name}: {first_diff(got, norm(expected, model.shape))}"
        if c.name.startswith("node"):
            assert set(rep["timestamps"]) == {"date"}, f"{c.name}: timestamps decoded as {rep['timestamps']}"
        else:
            assert rep["zero_timestamps"] == 0, f"{c.name}: {rep['zero_timestamps']} zero timestamps"
            for ts in rep["timestamps"]:
                check_timestamp(ts, "json", f"{c.name} timestamp")


def test_plan_clients_refresh_and_unsubscribe(mock_kafka, kafka_bridge):
    """Through the Node and Go clients: unsubscribe gives a snapshot without
    the channel, refresh a snapshot, and later updates keep the state exact."""
    need_node()
    need_go()
    mk = mock_kafka({"md": 1, "ord": 1, "pos": 1, "acct": 1})
    srv = kafka_bridge(mk, *PLAN_ROUTES)
    model = Model({"orders": "list"})
    feed = PlanFeed(mk, model, seed=7)
    clients = [node_client(srv.port, "node-unsub"), go_client(srv.port, "go-unsub")]
    feed.run(60)
    for c in clients:
        c.send({"type": "unsubscribe", "channel": "positions"})
        c.send({"type": "refresh"})
    feed.run(60)
    for ch in PLAN_CHANNELS:
        wait_channel_seq(srv.port, ch, model.count.get(ch, 0))
    expected = model.full(["market_data", "orders", "account"])
    for c in clients:
        rep = wait_proc_state(c, "state", expected, model.shape)
        check_proc_report(rep, c.name)
        assert rep["snapshots"] >= 3, f"{c.name}: {rep['snapshots']} snapshots (subscribe, unsubscribe, refresh)"
        if c.name.startswith("node"):
            assert "positions" not in rep["state"], f"{c.name}: positions still in the state after unsubscribe"
        else:
            assert rep["state"]["positions"] is None, f"{c.name}: positions {rep['state']['positions']!r}"
    for c in clients:
        c.stop()


@pytest.mark.parametrize("account_shape", ["first-record", "value"])
def test_plan_page_code_runs_from_the_first_snapshot(mock_kafka, kafka_bridge, account_shape):
    """What the plan's page does with the state on every snapshot and
    update (state.account.total_balance.toFixed(2) when state.account is
    truthy; the sum of Object.values(state.positions)' unrealized_pnl when
    state.positions is truthy) throws nothing, from the snapshot taken
    before any record on: the plan's routes with account's shape left to
    its first (null-key) record, or given as value."""
    need_node()
    mk = mock_kafka({"md": 1, "ord": 1, "pos": 1, "acct": 1})
    extra = ["--state-shape", "account=value"] if account_shape == "value" else []
    srv = kafka_bridge(mk, *PLAN_ROUTES, *extra)
    c = node_client(srv.port, f"node-page-{account_shape}")
    deadline = time.monotonic() + 10
    while c.report()["snapshots"] < 1:
        assert time.monotonic() < deadline, "no snapshot"
        time.sleep(0.05)
    model = Model({"orders": "list"})
    feed = PlanFeed(mk, model, seed=99)
    feed.run(80)
    for ch in PLAN_CHANNELS:
        wait_channel_seq(srv.port, ch, model.count.get(ch, 0))
    rep = wait_proc_state(c, "state", model.full(PLAN_CHANNELS), model.shape)
    c.stop()
    check_proc_report(rep, c.name)
    assert rep["ui_errors"] == 0, f"the plan's page code threw {rep['ui_errors']} times: {rep['problems'][:3]}"
    assert rep["ui"].get("balance") == "$%.2f" % model.state("account")["total_balance"], rep["ui"]
    assert "pnl" in rep["ui"], rep["ui"]


# ---------------------------------------------------------------- (b) raw clients, scripted

SCRIPT_ROUTES = ["-t", "tm=m", "-t", "tv=v", "-t", "tl=l",
                 "--state-shape", "m=map", "--state-shape", "v=value", "--state-shape", "l=list"]
SCRIPT_SHAPES = {"m": "map", "v": "value", "l": "list"}
TOPIC = {"m": "tm", "v": "tv", "l": "tl"}
ANY = object()          # changes not checked (a new key: whole or field by field)
NONE = "no update"      # the record changes nothing: no update at all


def _whole_m(model):
    return {"m": model.state("m")}


# (channel, key, value, expected changes): exactly one update per step.
SCRIPT = [
    ("m", "k1", {"a": {"b": 1, "c": [1, 2]}, "s": "x"}, ANY),
    ("m", "k1", {"a": {"b": 2, "c": [1, 2]}, "s": "x"}, {"m.k1.a.b": 2}),
    ("m", "k1", {"a": {"b": 2, "c": [1, 2, 3]}, "s": "x"}, {"m.k1.a.c": [1, 2, 3]}),
    ("m", "k1", {"a": {"b": 2, "c": []}, "s": "y", "n": None}, {"m.k1.a.c": [], "m.k1.s": "y", "m.k1.n": None}),
    ("m", "k1", {"a": {"b": 2}, "s": "y", "n": None}, {"m.k1.a": {"b": 2}}),                 # field removed
    ("m", "k1", {"a": 5, "s": "y", "n": None}, {"m.k1.a": 5}),                                # object -> scalar
    ("m", "k1", {"a": {"z": {"q": 1}}, "s": "y", "n": None}, {"m.k1.a": {"z": {"q": 1}}}),    # and back
    ("m", "k1", 7, {"m.k1": 7}),
    ("m", "k1", {"back": True}, {"m.k1": {"back": True}}),
    ("m", "k2", {"arr": [{"x": 1}, [2]], "d": {"e": {"f": "g"}}}, ANY),
    ("m", "k2", {"arr": [{"x": 2}, [2]], "d": {"e": {"f": "g"}}}, {"m.k2.arr": [{"x": 2}, [2]]}),  # arrays are leaves
    ("m", "k2", {"arr": [{"x": 2}, [2]], "d": {"e": {"f": "h"}}}, {"m.k2.d.e.f": "h"}),
    ("m", "k2", {"arr": [{"x": 2}, [2]], "d": {"e": {}}}, {"m.k2.d.e": {}}),                   # emptied object
    ("m", "k2", {"arr": [{"x": 2}, [2]], "d": {"e": {"new": 1}}}, {"m.k2.d.e.new": 1}),
    # a member name given twice counts as its last occurrence (as JSON.parse reads it)
    ("m", "k5", '{"a":{"x":1},"b":1}', ANY),
    ("m", "k5", '{"a":{"x":1},"b":1,"a":{"x":2}}', {"m.k5.a.x": 2}),
    ("m", "k5", '{"a":{"x":3},"b":1,"a":{"x":2}}', NONE),
    ("m", "k.dot", {"x": 1}, lambda model: _whole_m(model)),       # a key with '.': the channel whole
    ("m", "k.dot", {"x": 2}, lambda model: _whole_m(model)),
    ("m", "k1", {"back": True, "f.g": 1}, {"m.k1": {"back": True, "f.g": 1}}),   # a field with '.'
    ("m", "k1", {"back": True, "f.g": 2}, {"m.k1": {"back": True, "f.g": 2}}),
    ("m", "k1", {"back": True, "f": {"g.h": 1, "i": 1}}, {"m.k1": {"back": True, "f": {"g.h": 1, "i": 1}}}),
    ("m", "k1", {"back": True, "f": {"g.h": 2, "i": 1}}, {"m.k1.f": {"g.h": 2, "i": 1}}),
    ("m", "k.dot", TOMB, lambda model: _whole_m(model)),
    ("m", "k1", TOMB, {"m.k1": None}),                                 # tombstone: null at the key
    ("m", "k1", {"re": 1}, ANY),                                       # created again
    ("m", "k3", {"z": 0, "e": "", "f": False}, ANY),                   # falsy leaves
    ("m", "k3", {"z": {"in": 1}, "e": "", "f": False}, {"m.k3.z": {"in": 1}}),
    ("m", "k3", {"z": {"in": 1}, "e": {"in": 2}, "f": {"in": 3}}, {"m.k3.e": {"in": 2}, "m.k3.f": {"in": 3}}),
    ("m", "k4", 0, ANY),
    ("m", "k4", {"o": 1}, {"m.k4": {"o": 1}}),
    ("m", "k4", "", {"m.k4": ""}),
    ("m", "k4", [1, {"o": 2}], {"m.k4": [1, {"o": 2}]}),
    ("m", "k4", "é \"q\" 😀", {"m.k4": "é \"q\" 😀"}),
    ("v", None, {"bal": 1, "ccy": "USD", "lim": {"d": 5}}, ANY),
    ("v", "any-key", {"bal": 2, "ccy": "USD", "lim": {"d": 5}}, {"v.bal": 2}),   # whatever its key
    ("v", None, {"bal": 2, "ccy": "USD", "lim": {"d": 6}}, {"v.lim.d": 6}),
    ("v", None, {"bal": 2, "lim": {"d": 6}}, {"v": {"bal": 2, "lim": {"d": 6}}}),  # field removed: v whole
    ("v", "k", TOMB, {"v": None}),
    ("v", None, {"bal": 3}, {"v": {"bal": 3}}),
    ("v", None, 42, {"v": 42}),
    ("v", None, {"bal": 4}, {"v": {"bal": 4}}),
    ("l", "o1", {"st": "new", "q": 1}, {"l": [{"st": "new", "q": 1}]}),          # lists go whole
    ("l", "o2", {"st": "new", "q": 2}, {"l": [{"st": "new", "q": 1}, {"st": "new", "q": 2}]}),
    ("l", "o1", {"st": "done", "q": 1}, {"l": [{"st": "done", "q": 1}, {"st": "new", "q": 2}]}),
    ("l", "o3", {"st": "new"}, {"l": [{"st": "done", "q": 1}, {"st": "new", "q": 2}, {"st": "new"}]}),
    ("l", "o1", TOMB, {"l": [{"st": "new", "q": 2}, {"st": "new"}]}),
    ("l", "o1", {"st": "again"}, {"l": [{"st": "new", "q": 2}, {"st": "new"}, {"st": "again"}]}),
    ("l", "o2", {"st": "new", "q": 3}, {"l": [{"st": "new", "q": 3}, {"st": "new"}, {"st": "again"}]}),
]


def _produce_step(mk, model, ch, key, value):
    if isinstance(value, str) and value.startswith(("{", "[")):
        raw = value                             # a value written otherwise
        model.add(ch, key, json.loads(raw))
        mk.produce(TOPIC[ch], raw, key=key)
    else:
        produce(mk, model, TOPIC[ch], ch, key, value, wait=True)


def test_scripted_changes_json_and_msgpack(mock_kafka, kafka_bridge):
    """One record at a time, each giving exactly one update whose changes
    are the ones the contract names: one path per changed leaf (arrays are
    leaves), an object with a removed field whole, a node that changed
    between object and non-object whole, "channel.key": null for a
    tombstone, the nearest ancestor without a dotted name whole, a value
    channel's fields at "channel.field", a list channel whole at "channel";
    a record that changes nothing gives no update. JSON and MessagePack
    clients get the same changes and end in the same, exact state."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    period = 0.1
    clients = [StateClient(srv, "type=web&interval=100&format=json", "json"),
               StateClient(srv, "type=tui&format=msgpack", "msgpack")]
    for c in clients:
        c.subscribe(["m", "v", "l"])
    for c in clients:
        c.wait_count("snapshot", 1)
        snap = c.of_type("snapshot")[0]
        assert snap["data"] == {"m": {}, "v": None, "l": []}, f"{c.name}: empty state {snap['data']!r}"
        assert c.of_type("update") == []
    model = Model(SCRIPT_SHAPES)
    failures = []
    for i, (ch, key, value, want) in enumerate(SCRIPT):
        n0 = [len(c.of_type("update")) for c in clients]
        _produce_step(mk, model, ch, key, value)
        wait_channel_seq(srv.port, ch, model.count[ch])
        if want is NONE:
            time.sleep(5 * period + 0.3)
        else:
            for c, n in zip(clients, n0):
                c.wait_count("update", n + 1, timeout=5)
            time.sleep(3 * period)
        expected = model.full(["m", "v", "l"])
        got_changes = []
        for c, n in zip(clients, n0):
            ups = updates_between(c, n)
            if want is NONE:
                if ups:
                    failures.append(f"step {i} ({ch} {key!r}): {c.name}: the record changed nothing, "
                                    f"yet updates came: {[u['changes'] for u in ups]}")
                continue
            if len(ups) != 1:
                failures.append(f"step {i} ({ch} {key!r}): {c.name}: {len(ups)} updates for one record: "
                                f"{[u['changes'] for u in ups]}")
                continue
            got_changes.append(ups[0]["changes"])
            w = want(model) if callable(want) else want
            if w is not ANY and ups[0]["changes"] != w:
                failures.append(f"step {i} ({ch} {key!r} = {value!r:.80}): {c.name}: changes "
                                f"{ups[0]['changes']!r:.400}, expected {w!r:.400}")
            c.wait_state(expected, SCRIPT_SHAPES, timeout=2)
        if len(got_changes) == 2 and got_changes[0] != got_changes[1]:
            failures.append(f"step {i}: JSON and MessagePack changes differ: {got_changes[0]!r:.300} vs "
                            f"{got_changes[1]!r:.300}")
    for c in clients:
        c.wait_state(model.full(["m", "v", "l"]), SCRIPT_SHAPES)
        c.check()
    s_json, s_mp = norm(clients[0].state(), SCRIPT_SHAPES), norm(clients[1].state(), SCRIPT_SHAPES)
    assert first_diff(s_json, s_mp) is None, f"JSON vs MessagePack state: {first_diff(s_json, s_mp)}"
    assert not failures, "\n".join(failures)


def test_same_value_written_otherwise_is_no_change(mock_kafka, kafka_bridge):
    """"Only when something changed": a record whose value is the one the
    client holds, written with other spaces, member order or escapes, gives
    no update. Each way of writing it is tried on a key of its own."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    c = StateClient(srv, "type=tui&format=json", "json")
    c.subscribe(["m", "v", "l"])
    c.wait_count("snapshot", 1)
    model = Model(SCRIPT_SHAPES)
    first = r'{"arr": [{"x": 2}, [2, "s"]], "d": {"e": {"new": 1}}, "t": "\u00e9"}'
    others = {
        "spaces in an array": r'{"arr": [ {"x":2} , [2,"s"] ], "d": {"e": {"new": 1}}, "t": "\u00e9"}',
        "spaces in objects": r'{ "arr":[{"x": 2}, [2, "s"]],"d":{ "e" : {"new":1} } , "t":"\u00e9"}',
        "member order": r'{"t": "\u00e9", "d": {"e": {"new": 1}}, "arr": [{"x": 2}, [2, "s"]]}',
        "escapes in a name": r'{"arr": [{"x": 2}, [2, "s"]], "d": {"\u0065": {"new": 1}}, "t": "\u00e9"}',
        "escapes in a string": '{"arr": [{"x": 2}, [2, "s"]], "d": {"e": {"new": 1}}, "t": "é"}',
        "escapes in an array": r'{"arr": [{"x": 2}, [2, "\u0073"]], "d": {"e": {"new": 1}}, "t": "\u00e9"}',
    }
    failures = []
    for i, (what, raw) in enumerate(others.items()):
        key = f"k{i}"
        model.add("m", key, json.loads(first))
        mk.produce("tm", first, key=key)
        n0 = len(c.of_type("update"))
        c.wait_count("update", n0 + 1)
        c.wait_state(model.full(["m", "v", "l"]), SCRIPT_SHAPES)
        assert json.loads(raw) == json.loads(first), what
        n1 = len(c.of_type("update"))
        model.add("m", key, json.loads(raw))
        mk.produce("tm", raw, key=key)
        wait_channel_seq(srv.port, "m", model.count["m"])
        time.sleep(0.6)
        ups = c.of_type("update")[n1:]
        if ups:
            failures.append(f"{what}: {raw} after {first}: updates {[u['changes'] for u in ups]}")
        c.wait_state(model.full(["m", "v", "l"]), SCRIPT_SHAPES)
    c.check()
    assert not failures, "the same value gave updates:\n" + "\n".join(failures)


def test_empty_shapes_and_first_record_decides(mock_kafka, kafka_bridge):
    """Before any record: map {}, value null, list []. Without
    --state-shape the first record decides: a null key makes a value, a key
    a map (whose later null-key records are not cached)."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1, "ta": 1, "tb": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES, "-t", "ta=autov", "-t", "tb=autom")
    c = StateClient(srv, "type=web&format=msgpack", "msgpack")
    c.subscribe(["m", "v", "l"])
    c.wait_count("snapshot", 1)
    assert c.of_type("snapshot")[0]["data"] == {"m": {}, "v": None, "l": []}
    model = Model(SCRIPT_SHAPES)
    produce(mk, model, "ta", "autov", None, {"bal": 1}, wait=True)
    produce(mk, model, "tb", "autom", "k", {"p": 1}, wait=True)
    produce(mk, model, "tb", "autom", None, {"p": 2}, wait=True)
    produce(mk, model, "ta", "autov", "key", {"bal": 2, "x": [1]}, wait=True)
    wait_channel_seq(srv.port, "autov", 2)
    wait_channel_seq(srv.port, "autom", 2)
    assert model.shape["autov"] == "value" and model.shape["autom"] == "map"
    c.subscribe(["autov", "autom"])
    c.wait_count("snapshot", 2)
    data = c.of_type("snapshot")[1]["data"]
    assert data == {"m": {}, "v": None, "l": [], "autov": {"bal": 2, "x": [1]}, "autom": {"k": {"p": 1}}}, data
    produce(mk, model, "tb", "autom", "k2", {"p": 3}, wait=True)
    produce(mk, model, "ta", "autov", None, {"bal": 3, "x": [1]}, wait=True)
    c.wait_state(model.full(["m", "v", "l", "autov", "autom"]), model.shape)
    c.check()


def test_channel_name_with_a_dot(mock_kafka, kafka_bridge):
    """A channel whose name holds '.' cannot be named by a path: its
    changes come as fresh snapshots, at most one per period, and the state
    stays exact; a channel without a dot beside it still gets updates."""
    mk = mock_kafka({"td": 1, "tm": 1})
    srv = kafka_bridge(mk, "-t", "td=prices.eu", "-t", "tm=m")
    shapes = {"prices.eu": "map", "m": "map"}
    c = StateClient(srv, "type=tui&format=msgpack", "msgpack")
    c.subscribe(["prices.eu", "m"])
    c.wait_count("snapshot", 1)
    model = Model(shapes)
    for i in range(30):
        produce(mk, model, "td", "prices.eu", f"k{i % 4}", {"p": i, "n": {"q": i % 3}})
        produce(mk, model, "tm", "m", f"k{i % 3}", {"p": i})
        time.sleep(0.02)
    mk.flush()
    c.wait_state(model.full(["prices.eu", "m"]), shapes)
    d = c.check()
    times = [t for t, _, _, o in c.msgs() if o.get("type") in DIALECT]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.05, "more than one message per period"
    for o in d:
        if o["type"] == "update":
            bad = [p for p in o["changes"] if p.startswith("prices")]
            assert not bad, f"paths for a channel with a dot: {bad}"


def test_snapshot_keys_and_data_rules(mock_kafka, kafka_bridge):
    """--snapshot-keys bounds map and list states (the least recently
    updated key goes, as a deletion); values follow the data rules (other
    UTF-8 text a string, other bytes base64, a non-UTF-8 key named by its
    base64 text)."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES, "--snapshot-keys", "4")
    clients = [StateClient(srv, "type=tui&format=json", "json"), StateClient(srv, "type=web&format=msgpack", "msgpack")]
    for c in clients:
        c.subscribe(["m", "l"])
        c.wait_count("snapshot", 1)
    model = Model(SCRIPT_SHAPES, limit=4)
    r = random.Random(3)
    for i in range(200):
        ch = r.choice(["m", "l"])
        key = "k%d" % r.randint(0, 7)
        produce(mk, model, TOPIC[ch], ch, key, TOMB if r.random() < 0.1 else {"i": i, "o": {"p": i % 5}})
        time.sleep(r.choice([0, 0, 0.01, 0.05]))
    for key, raw, want in ((b"t", "plain text \u00e9".encode(), "plain text \u00e9"),
                           (b"bin", bytes([0xff, 0x00, 0x01]), None),
                           (bytes([0xff, 0xfe]), b'{"x":{"y":1}}', {"x": {"y": 1}})):
        mk.produce("tm", raw, key=key)
        try:
            k = key.decode("utf-8")
        except UnicodeDecodeError:
            k = base64.b64encode(key).decode()
        model.add("m", k, want if want is not None else base64.b64encode(raw).decode())
    mk.flush()
    wait_channel_seq(srv.port, "m", model.count["m"])
    wait_channel_seq(srv.port, "l", model.count["l"])
    assert len(model.state("m")) == 4 and "//4=" in model.state("m"), model.state("m")
    for c in clients:
        c.wait_state(model.full(["m", "l"]), SCRIPT_SHAPES)
        c.check()


def test_subscribe_between_ticks(mock_kafka, kafka_bridge):
    """A client that subscribes between two ticks ends in the exact state,
    also when what its snapshot holds is undone before the tick (the
    group's changes since the last tick are then empty for that key):
    it may get changes it already has, never fewer."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    q = "type=web&interval=1500&format=json"
    a = StateClient(srv, q, "a")
    a.subscribe(["m", "v", "l"])
    a.wait_count("snapshot", 1)
    model = Model(SCRIPT_SHAPES)
    for attempt in range(3):
        # Settle: a record, and its update marks a tick.
        n0 = len(a.of_type("update"))
        produce(mk, model, "tm", "m", "k", {"a": 1, "keep": attempt}, wait=True)
        produce(mk, model, "tv", "v", None, {"x": 1, "y": attempt}, wait=True)
        produce(mk, model, "tl", "l", "o1", {"s": 1, "t": attempt}, wait=True)
        a.wait_count("update", n0 + 1, timeout=5)
        t_tick = time.monotonic()
        n1 = len(a.of_type("update"))
        # Changed, seen by b's snapshot, changed back: all before the next tick.
        produce(mk, model, "tm", "m", "k", {"a": 1, "b": 2, "keep": attempt}, wait=True)
        produce(mk, model, "tm", "m", "gone", {"g": 1}, wait=True)
        produce(mk, model, "tv", "v", None, {"x": 2, "y": attempt}, wait=True)
        produce(mk, model, "tl", "l", "o2", {"s": 2}, wait=True)
        wait_channel_seq(srv.port, "m", model.count["m"])
        wait_channel_seq(srv.port, "v", model.count["v"])
        wait_channel_seq(srv.port, "l", model.count["l"])
        b = StateClient(srv, q, f"b{attempt}")
        b.subscribe(["m", "v", "l"])
        c = StateClient(srv, q.replace("json", "msgpack"), f"c{attempt}")
        c.subscribe(["m", "v", "l"])
        d = StateClient(srv, q, f"d{attempt}")            # another subscription set
        d.subscribe(["m", "l"])
        for x in (b, c, d):
            x.wait_count("snapshot", 1)
        assert b.of_type("snapshot")[0]["data"]["m"]["k"] == {"a": 1, "b": 2, "keep": attempt}
        produce(mk, model, "tm", "m", "k", {"a": 1, "keep": attempt}, wait=True)
        produce(mk, model, "tm", "m", "gone", TOMB, wait=True)
        produce(mk, model, "tv", "v", None, {"x": 1, "y": attempt}, wait=True)
        produce(mk, model, "tl", "l", "o2", TOMB, wait=True)
        wait_channel_seq(srv.port, "m", model.count["m"])
        wait_channel_seq(srv.port, "v", model.count["v"])
        wait_channel_seq(srv.port, "l", model.count["l"])
        before_tick = len(a.of_type("update")) == n1 and time.monotonic() - t_tick < 1.3
        errors = []
        for x, chans in ((a, ["m", "v", "l"]), (b, ["m", "v", "l"]), (c, ["m", "v", "l"]), (d, ["m", "l"])):
            try:
                x.wait_state(model.full(chans), SCRIPT_SHAPES, timeout=4)
                x.check()
            except AssertionError as e:
                errors.append(str(e).split("\n")[0])
        assert not errors, "\n".join(errors)
        if before_tick:
            return
    pytest.fail("could not subscribe between two ticks in 3 attempts (machine too slow?)")


def test_unsubscribe_refresh_resubscribe(mock_kafka, kafka_bridge):
    """Unsubscribe that changes the set -> a snapshot without that channel;
    refresh -> a snapshot of every subscribed channel; subscribe again -> a
    snapshot with it; the state stays exact throughout; ping -> pong and an
    unknown channel -> UNKNOWN_CHANNEL as usual."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    model = Model(SCRIPT_SHAPES)
    for fmt in ("json", "msgpack"):
        c = StateClient(srv, f"type=tui&format={fmt}", fmt)
        c.subscribe(["m", "v", "l"])
        c.wait_count("snapshot", 1)
        produce(mk, model, "tm", "m", f"{fmt}1", {"a": 1}, wait=True)
        produce(mk, model, "tv", "v", None, {"b": fmt}, wait=True)
        produce(mk, model, "tl", "l", f"{fmt}2", {"c": 3}, wait=True)
        c.wait_state(model.full(["m", "v", "l"]), SCRIPT_SHAPES)
        c.send({"type": "unsubscribe", "channel": "v", "id": 5})
        c.wait_count("snapshot", 2)
        snap = c.of_type("snapshot")[1]
        assert set(snap["data"]) == {"m", "l"}, f"{fmt}: snapshot after unsubscribe: {snap['data']!r}"
        assert snap["data"] == model.full(["m", "l"])
        acks = c.of_type("ack")
        assert acks and acks[-1].get("id") == 5 and acks[-1].get("removed") == 1, acks
        n_up = len(c.of_type("update"))
        produce(mk, model, "tv", "v", None, {"b": "unseen"}, wait=True)
        produce(mk, model, "tm", "m", f"{fmt}1", {"a": 2}, wait=True)
        wait_channel_seq(srv.port, "m", model.count["m"])
        c.wait_count("update", n_up + 1)
        time.sleep(0.3)
        for u in c.of_type("update")[n_up:]:
            assert not [p for p in u["changes"] if p == "v" or p.startswith("v.")], \
                f"{fmt}: update for the unsubscribed channel: {u['changes']}"
        c.send({"type": "refresh"})
        c.wait_count("snapshot", 3)
        assert c.of_type("snapshot")[2]["data"] == model.full(["m", "l"])
        c.send({"type": "ping", "id": "p"})
        c.wait(lambda objs: any(o.get("type") == "pong" and o.get("id") == "p" for o in objs), 5, "pong")
        c.send({"type": "subscribe", "channel": "nope", "id": 9})
        c.wait(lambda objs: any(o.get("code") == "UNKNOWN_CHANNEL" and o.get("id") == 9 for o in objs), 5,
               "UNKNOWN_CHANNEL")
        c.subscribe(["v"])
        c.wait_count("snapshot", 4)
        assert c.of_type("snapshot")[3]["data"] == model.full(["m", "v", "l"])
        produce(mk, model, "tl", "l", f"{fmt}2", TOMB, wait=True)
        c.wait_state(model.full(["m", "v", "l"]), SCRIPT_SHAPES)
        c.check()
        assert len(c.of_type("snapshot")) == 4, [o["data"] for o in c.of_type("snapshot")]


@pytest.mark.one_process("two clients in one group: groups are per process")
def test_seq_per_connection_when_frames_are_shared(mock_kafka, kafka_bridge):
    """Two clients of one (period, subscription set, format) group share
    each update's frame, yet seq counts each connection's own messages:
    one of them asked for two refreshes, so it is two ahead."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    model = Model(SCRIPT_SHAPES)
    for fmt in ("json", "msgpack"):
        a = StateClient(srv, f"type=tui&format={fmt}", f"a-{fmt}")
        b = StateClient(srv, f"type=tui&format={fmt}", f"b-{fmt}")
        for c in (a, b):
            c.subscribe(["m", "l"])
            c.wait_count("snapshot", 1)
        b.send({"type": "refresh"})
        b.send({"type": "refresh"})
        b.wait_count("snapshot", 3)
        for i in range(40):
            produce(mk, model, "tm", "m", f"k{i % 7}", {"i": i, "fmt": fmt})
            if i % 5 == 0:
                produce(mk, model, "tl", "l", f"o{i % 3}", {"i": i})
            time.sleep(0.01)
        mk.flush()
        for c in (a, b):
            c.wait_state(model.full(["m", "l"]), SCRIPT_SHAPES)
        time.sleep(0.3)
        for c in (a, b):
            d = c.check()
            assert len([o for o in d if o["type"] == "update"]) >= 2, c.summary()
        ua, ub = a.of_type("update"), b.of_type("update")
        assert [u["changes"] for u in ua] == [u["changes"] for u in ub], "one group, different changes"
        assert [u["seq"] + 2 for u in ua] == [u["seq"] for u in ub], (
            f"{fmt}: seqs {[u['seq'] for u in ua]} and {[u['seq'] for u in ub]}")


def test_keys_filter_restricts_state(mock_kafka, kafka_bridge):
    """`keys` on the subscribe restricts the state to those keys, for a map
    and for a list (which keeps its first-appearance order); a field
    `filter` to the keys whose value matches (a key whose value stops
    matching disappears as if deleted); a client without filters sees
    everything."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    keys = ["A", "C.c", "E"]
    f = StateClient(srv, "type=tui&format=msgpack", "filtered")
    f.subscribe(["m", "l"], keys=keys)
    u = StateClient(srv, "type=tui&format=json", "unfiltered")
    u.subscribe(["m", "l"])
    ff = StateClient(srv, "type=web&format=json", "field-filtered")
    ff.subscribe(["m"], filter={"st": "open"})
    for c in (f, u, ff):
        c.wait_count("snapshot", 1)
    mf, mu = Model(SCRIPT_SHAPES), Model(SCRIPT_SHAPES)
    r = random.Random(5)
    for i in range(150):
        ch = r.choice(["m", "l"])
        key = r.choice(["A", "B", "C.c", "D", "E"])
        value = TOMB if r.random() < 0.1 else {"i": i, "st": r.choice(["open", "closed", 1]),
                                                "n": {"x": r.randint(0, 3)}}
        produce(mk, mf, TOPIC[ch], ch, key, value, keys=keys)
        mu.add(ch, key, value)
        time.sleep(r.choice([0, 0.01]))
    mk.flush()
    f.wait_state(mf.full(["m", "l"]), SCRIPT_SHAPES)
    u.wait_state(mu.full(["m", "l"]), SCRIPT_SHAPES)
    ff.wait_state({"m": {k: v for k, v in mu.state("m").items() if v.get("st") == "open"}}, SCRIPT_SHAPES)
    for c in (f, u, ff):
        c.check()
    f.send({"type": "refresh"})
    f.wait_count("snapshot", 2)
    data = f.of_type("snapshot")[1]["data"]
    assert norm(data, SCRIPT_SHAPES) == norm(mf.full(["m", "l"]), SCRIPT_SHAPES), data


# ---------------------------------------------------------------- timestamps, periods, slow clients

def test_timestamps_msgpack_ext_and_json_iso(mock_kafka, kafka_bridge):
    """format=msgpack: timestamp is a MessagePack Timestamp extension (type
    -1); format=json: an ISO-8601 string. Both near now."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    j = StateClient(srv, "type=web&format=json", "json")
    m = StateClient(srv, "type=web&format=msgpack", "msgpack")
    for c in (j, m):
        c.subscribe(["m"])
        c.wait_count("snapshot", 1)
    model = Model(SCRIPT_SHAPES)
    produce(mk, model, "tm", "m", "k", {"p": 1}, wait=True)
    for c in (j, m):
        c.wait_count("update", 1)
        c.check()
    for _, op, raw, obj in m.msgs():
        if obj.get("type") not in DIALECT:
            continue
        exts = []
        as_dt = msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=3)["timestamp"]
        assert isinstance(as_dt, datetime.datetime) and as_dt.tzinfo is not None, as_dt
        assert abs(as_dt.timestamp() - time.time()) < 120
        # The extension's type byte, read from the frame itself.
        i = raw.find(b"\xa9timestamp")
        assert i >= 0, raw[:100]
        head = raw[i + 10:i + 13]
        if head[0] in (0xd6, 0xd7):
            exts.append(head[1])
        elif head[0] == 0xc7:
            exts.append(head[2])
        assert exts == [0xff], f"timestamp is not ext type -1: {raw[i:i + 20].hex()}"
    for obj in j.dialect():
        ts = obj["timestamp"]
        assert isinstance(ts, str) and "T" in ts, ts
        datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def server_seconds(ts):
    """An update's timestamp in seconds: ISO 8601 text (JSON) or a
    MessagePack Timestamp."""
    if isinstance(ts, str):
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return ts.to_unix()


@pytest.mark.parametrize("query,period", [
    ("type=tui&format=json", 0.1),
    ("type=web&format=msgpack", 0.25),
    ("type=web&interval=400&format=json", 0.4),
    ("type=tui&interval=40&format=msgpack", 0.04),
])
def test_update_period(mock_kafka, kafka_bridge, query, period):
    """While records flow every ~10 ms, updates come at most once per
    period (and do come); once nothing changes, none; a record that
    repeats the current value changes nothing either."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES)
    c = StateClient(srv, query, "client")
    c.subscribe(["m", "v"])
    c.wait_count("snapshot", 1)
    seconds, n = 2.5, 250
    t0 = time.monotonic()
    for i in range(n):          # kafka-python, one record every 10 ms (kcat sends in bursts)
        mk.produce("tm", '{"i":%d,"o":{"x":%d}}' % (i, i % 3), key="k%d" % (i % 5), wait=False)
        time.sleep(max(0.0, t0 + (i + 1) * seconds / n - time.monotonic()))
    mk.flush()
    wait_channel_seq(srv.port, "m", n)
    time.sleep(period + 0.3)
    model = Model(SCRIPT_SHAPES)
    for i in range(n):
        model.add("m", "k%d" % (i % 5), {"i": i, "o": {"x": i % 3}})
    c.wait_state(model.full(["m", "v"]), SCRIPT_SHAPES)
    # The server's own clock (each update's timestamp), not the time this
    # reader thread got round to it: a reader held up on one update and not
    # the next would see them closer than they were sent.
    times = [server_seconds(o["timestamp"]) for o in c.of_type("update")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    span = times[-1] - times[0] if times else 0
    assert len(times) >= 0.4 * seconds / period, f"only {len(times)} updates in {seconds}s at {period}s"
    assert len(times) <= span / period + 2, f"{len(times)} updates in {span:.2f}s at a period of {period}s"
    assert min(gaps) >= period - 0.002, f"updates {min(gaps) * 1000:.0f} ms apart (period {period * 1000:.0f} ms): " \
                                      f"{[round(g * 1000) for g in gaps]}"
    n_up = len(times)
    time.sleep(max(1.0, 4 * period))
    assert len(c.of_type("update")) == n_up, f"updates without a change: {c.of_type('update')[n_up:]}"
    # The current value again, byte for byte: nothing changed.
    last = n - 1
    mk.produce("tm", '{"i":%d,"o":{"x":%d}}' % (last, last % 3), key="k%d" % (last % 5))
    wait_channel_seq(srv.port, "m", n + 1)
    time.sleep(max(1.0, 4 * period))
    assert len(c.of_type("update")) == n_up, f"an update for an unchanged value: {c.of_type('update')[n_up:]}"
    c.check()


def test_slow_client_gets_fresh_snapshot(mock_kafka, kafka_bridge):
    """A client that stops reading (small receive buffer, tiny
    --client-buffer/--client-queue) while many large changes flow is sent a
    fresh snapshot in place of the updates it could not take, never
    SLOW_CONSUMER, and once it reads again ends in the exact state, seq
    still 1, 2, 3..."""
    mk = mock_kafka({"tm": 1, "tv": 1, "tl": 1})
    srv = kafka_bridge(mk, *SCRIPT_ROUTES, "--client-buffer", "4096", "--client-queue", "4",
                       "--client-rate", "1000000")
    for fmt in ("json", "msgpack"):
        fast = StateClient(srv, f"type=tui&format={fmt}", f"fast-{fmt}")
        # Uncompressed: compressed, the changes would fit the buffers it stalls.
        slow = StateClient(srv, f"type=tui&format={fmt}", f"slow-{fmt}", rcvbuf=4096, read=False, offer=False)
        fast.subscribe(["m", "l"])
        slow.subscribe(["m", "l"])
        # Read the ack and the first snapshot, then stop reading.
        got = []
        while not any(o.get("type") == "snapshot" for o in got):
            op, payload = slow.ws.recv_message(5)
            got.append(json.loads(payload) if op == OP_TEXT else msgpack.unpackb(payload, raw=False))
        model = Model(SCRIPT_SHAPES)
        r = random.Random(11)
        # About 12 MB of changes: more than the kernel's socket buffers take.
        blob = "".join(r.choice("abcdefghij") for _ in range(50000))
        for i in range(500):
            key = "k%d" % (i % 40)
            ch = "m" if i % 10 else "l"
            off = r.randrange(0, 25000)
            produce(mk, model, TOPIC[ch], ch, key, {"i": i, "blob": blob[off:off + 24000], "n": {"x": i}})
            if i % 20 == 0:
                mk.flush()
                time.sleep(0.03)
        mk.flush()
        wait_channel_seq(srv.port, "m", model.count["m"])
        wait_channel_seq(srv.port, "l", model.count["l"])
        expected = model.full(["m", "l"])
        fast.wait_state(expected, SCRIPT_SHAPES)
        time.sleep(0.5)
        # Read again: the messages read by hand first, the rest in the thread.
        slow.start_reading()
        with slow.reader._lock:
            slow.reader.msgs[:0] = [(0, OP_TEXT if fmt == "json" else OP_BINARY, b"", o) for o in got]
        slow.wait_state(expected, SCRIPT_SHAPES, timeout=20)
        time.sleep(0.5)
        fast.check()
        d = slow.check()
        slow_errors = [o for o in slow.objs() if o.get("type") == "error"]
        assert not slow_errors, f"slow-{fmt}: errors {slow_errors[:3]}"
        snaps = [o for o in d if o["type"] == "snapshot"]
        assert len(snaps) >= 2, (f"slow-{fmt}: {len(d)} messages, only {len(snaps)} snapshot(s): the stall "
                                 f"dropped nothing? (fast got {len(fast.dialect())})")
        fast.stop()
        slow.stop()


# ---------------------------------------------------------------- (c) random record sequences

PROP_ROUTES = ["-t", "pm=pmap", "-t", "pl=plist", "-t", "pv=pval", "-t", "pa=pauto",
               "--state-shape", "plist=list", "--state-shape", "pval=value"]
PROP_CHANNELS = ["pmap", "plist", "pval", "pauto"]
PROP_TOPIC = {"pmap": "pm", "plist": "pl", "pval": "pv", "pauto": "pa"}
R_KEYS = ["k1", "k2", "k.3", "k4", "a.b.c", "K5", "z", "ключ", "", "0"]
R_FIELDS = ["a", "b", "c.d", "e", "x.y.z", "n", "ключ", "0", "f", "g"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def scalar(self):
        r = self.r
        return r.choice([
            lambda: r.randint(-5, 5), lambda: r.randint(-10 ** 12, 10 ** 12), lambda: round(r.uniform(-100, 100), 3),
            lambda: "", lambda: "s%d" % r.randint(0, 9), lambda: "é.ü 😀", lambda: True, lambda: False,
            lambda: None, lambda: 0, lambda: 0.5])()

    def value(self, depth=0):
        r = self.r
        x = r.random()
        if depth >= 3 or x < 0.3:
            return self.scalar()
        if x < 0.4:
            return [self.value(depth + 2) for _ in range(r.randint(0, 3))]
        return {f: self.value(depth + 1) for f in r.sample(R_FIELDS, r.randint(0, 4))}

    def mutate(self, v, depth=0):
        """A changed value: fields removed, added or changed, or a new type."""
        r = self.r
        if not isinstance(v, dict) or r.random() < 0.15:
            return self.value(depth)
        v = dict(v)
        for _ in range(r.randint(1, 3)):
            op = r.random()
            if op < 0.25 and v:
                del v[r.choice(sorted(v))]
            elif op < 0.45:
                v[r.choice(R_FIELDS)] = self.value(depth + 1)
            elif v:
                f = r.choice(sorted(v))
                v[f] = self.mutate(v[f], depth + 1)
        return v


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_records_reproduce_state(mock_kafka, kafka_bridge, seed):
    """Seeded random record sequences on a map, a list, a value and an
    auto-shaped channel (nested objects, removed fields, type changes,
    tombstones, keys and fields with dots, JSON written with or without
    escapes); clients of both formats and several periods, some joining
    midway: at checkpoints and at the end, the snapshot and every update
    applied the plan's way give exactly the state computed from the
    records. Updates of a list channel set the whole list."""
    mk = mock_kafka({"pm": 1, "pl": 1, "pv": 1, "pa": 1})
    srv = kafka_bridge(mk, *PROP_ROUTES)
    model = Model({"plist": "list", "pval": "value"})
    g = Gen(seed)
    r = g.r
    clients = [StateClient(srv, "type=web&format=json", f"s{seed}-web-json"),
               StateClient(srv, "type=tui&format=msgpack", f"s{seed}-tui-msgpack"),
               StateClient(srv, "type=tui&interval=30&format=json", f"s{seed}-30ms-json")]
    for c in clients:
        c.subscribe(PROP_CHANNELS)
    current = {}
    # pauto gets a null key first when the seed is odd (value), else a key (map).
    auto_first = None if seed % 2 else "k1"
    produce(mk, model, "pa", "pauto", auto_first, g.value(), wait=True)
    checkpoints = {150, 300, 450}
    n = 800
    for i in range(n):
        ch = r.choice(PROP_CHANNELS)
        key = r.choice(R_KEYS + [None]) if ch in ("pval", "pauto") else r.choice(R_KEYS)
        if ch == "pauto" and model.shape.get("pauto") == "map" and key is None:
            key = "k1"
        prev = current.get((ch, key))
        if prev is not None and r.random() < 0.12:
            value = TOMB
            current.pop((ch, key), None)
            if key is None:
                key = "tomb"        # Kafka has no record without key and value
        else:
            value = g.mutate(prev) if prev is not None and prev is not TOMB else g.value()
            if value is None and ch != "pval":
                value = {"was": None}       # a JSON null record on a map or list: avoided
            current[(ch, key)] = value
        produce(mk, model, PROP_TOPIC[ch], ch, key, value, ensure_ascii=r.random() < 0.5)
        time.sleep(r.choice([0, 0, 0, 0.002, 0.01, 0.05]))
        if i == n // 2:
            late = StateClient(srv, "type=web&format=msgpack", f"s{seed}-late-msgpack")
            late.subscribe(PROP_CHANNELS)
            late2 = StateClient(srv, "type=tui&format=json", f"s{seed}-late-json")
            late2.subscribe(["pmap", "plist"])
            clients += [late, late2]
        if i in checkpoints or i == n - 1:
            mk.flush()
            for ch2 in PROP_CHANNELS:
                wait_channel_seq(srv.port, ch2, model.count.get(ch2, 0))
            for c in clients:
                chans = ["pmap", "plist"] if c.name.endswith("late-json") else PROP_CHANNELS
                c.wait_state(model.full(chans), model.shape, timeout=10)
    for c in clients:
        d = c.check()
        for u in d:
            if u["type"] == "update":
                bad = [p for p in u["changes"] if p.startswith("plist.")]
                assert not bad, f"{c.name}: list channel changed below the list: {bad[:5]}"
        c.stop()
    snaps = {c.name: len([o for o in c.dialect() if o["type"] == "snapshot"]) for c in clients}
    assert all(v == 1 for v in snaps.values()), f"unasked snapshots: {snaps}"
