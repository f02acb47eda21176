"""test_bench_tools.py - the benchmark tools themselves work (bench/README.md):
wsload's own checks (histogram, payload parser), a short fan-out run with a
handful of clients over two source addresses that must deliver everything
with no gap, keyed clients that get only their key, gap detection that does
fire on a stream joined midway, format=msgpack clients (--format msgpack) and
conflating ones (--interval), state-dialect clients (--state web), clients
of several channels (--channel A,B,...) and clients bringing a token each
(--tokens), wss clients (--tls, --ca) against kbridge with TLS, clients
negotiating permessage-deflate (--deflate), Server-Sent Events clients
(--sse) against kbridge's GET /sse (bench records: every one, in order,
keyed ones only their key; --demo records: counted), publishers (--publish)
whose every publish is acknowledged and comes back in order to readers of
the channel (--per-key), or answered with an error that is counted, the
reference sender (bench/floor.c) feeding fan-out and keyed wsload clients
everything in order, and bench/run.py producing its table and JSON (with a
floor row and the start-to-ready row; the publish rows beside a fan-out
row).
These are tests, not benchmarks: small rates, every wait bounded."""
import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

import conftest
import wsutil
from conftest import ROOT, settled

BENCH_DIR = os.path.join(ROOT, "build", "bench")
WSLOAD = os.path.join(BENCH_DIR, "wsload")
PRODUCE = os.path.join(BENCH_DIR, "produce")
FLOOR = os.path.join(BENCH_DIR, "floor")


@pytest.fixture(scope="module")
def tools():
    """Builds the tools (a no-op when they are fresh). Works whether or not
    the top Makefile includes bench/bench.mk yet (the file guards itself)."""
    r = subprocess.run(["make", "-s", "-f", "Makefile", "-f", "bench/bench.mk", "bench-tools"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"building the bench tools failed:\n{r.stdout}\n{r.stderr}"
    for t in (WSLOAD, PRODUCE, FLOOR):
        assert os.access(t, os.X_OK), f"{t} not built"


class Tool:
    """A bench tool driven over stdin, printing one JSON object per stdout
    line (the way bench/run.py drives wsload and floor)."""
    name = "tool"

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1, cwd=ROOT)
        self.lines = queue.Queue()

        def reader():
            for line in self.p.stdout:
                self.lines.put(line)
            self.lines.put(None)
        threading.Thread(target=reader, daemon=True).start()

    def event(self, name, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            obj = json.loads(line)          # every stdout line is one JSON object
            if obj.get("event") == name:
                return obj
        self.kill()
        raise AssertionError(f"{self.name} gave no {name!r} line within {timeout}s; "
                             f"stderr: {self.p.stderr.read()[-2000:]}")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


class Load(Tool):
    """A running wsload."""
    name = "wsload"

    def __init__(self, port, *args):
        super().__init__([WSLOAD, "--port", str(port), "--control", "--timeout", "60"]
                         + [str(a) for a in args])

    def finish(self, expect, quiet_ms=2000, max_ms=20000):
        self.p.stdin.write(f"drain {expect} {quiet_ms} {max_ms}\n")
        self.p.stdin.flush()
        res = self.event("result", timeout=max_ms / 1000 + 10)
        assert self.p.wait(10) == 0
        return res


def produce(bootstrap, rate, duration, keys=1, size=200, topic="bench", layout="stream"):
    r = subprocess.run([PRODUCE, "--brokers", bootstrap, "--topic", topic, "--partition", "0",
                        "--rate", str(rate), "--duration", str(duration), "--keys", str(keys),
                        "--size", str(size), "--layout", layout],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, f"produce failed ({r.returncode}): {r.stdout}\n{r.stderr}"
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["event"] for x in lines] == ["start", "result"], r.stdout
    res = lines[1]
    assert res["produced"] == res["acked"] == round(rate * duration) and res["failed"] == 0, res
    return res


def check_result_shape(res):
    """The result line is well-formed and self-consistent."""
    for key in ("clients", "connected", "subscribed", "failed", "msgs", "gaps", "clients_with_gaps",
                "missing", "dups", "latency_ms", "connect_ms", "first_us", "last_us", "cpu_s"):
        assert key in res, f"no {key!r} in {res}"
    lat = res["latency_ms"]
    assert lat["count"] == res["msgs"]
    if res["msgs"]:
        assert 0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
        # same clock on one machine: seconds of latency would mean a parsing error
        assert lat["max"] < 10000, lat
        assert res["first_us"] <= res["last_us"]


def check_bridge_logs(out, results):
    """Bridges run.py started exited 0 after SIGTERM, without a sanitizer
    report (the kbridge fixture's checks, for processes it did not start)."""
    for x in results:
        assert x.get("bridge_exit") == 0, f"{x['name']}: bridge exited {x.get('bridge_exit')}"
        path = os.path.join(ROOT, out, "logs", f"{x['name']}.bridge.log")
        with open(path, errors="replace") as f:
            log = f.read()
        for mark in conftest.SANITIZER_MARKS:
            assert mark not in log, f"sanitizer report in {path}:\n{log[max(0, log.index(mark) - 200):][:3000]}"


@pytest.fixture
def bench_bridge(tools, mock_kafka, kafka_bridge):
    mock = mock_kafka({"bench": 1})
    srv = kafka_bridge(mock, "-t", "bench")
    time.sleep(0.5)     # /ready comes with the assignment; let the start offset resolve
    return mock, srv


def test_wsload_self_test(tools):
    r = subprocess.run([WSLOAD, "--self-test"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout + r.stderr


def test_fanout_delivers_everything_without_gaps(bench_bridge):
    mock, srv = bench_bridge
    load = Load(srv.port, "--clients", 5, "--src-addrs", 2)
    try:
        ready = load.event("ready")
        assert ready["connected"] == ready["subscribed"] == 5 and ready["failed"] == 0, ready
        assert srv.health()["clients"] == 5
        pres = produce(mock.bootstrap, rate=200, duration=3)
        res = load.finish(expect=5 * pres["acked"])
    finally:
        load.kill()
    check_result_shape(res)
    assert res["msgs"] == 5 * 600, res
    assert res["msgs_min"] == res["msgs_max"] == 600, res
    assert res["gaps"] == res["clients_with_gaps"] == res["missing"] == res["dups"] == 0, res
    assert res["acks"] == 5 and res["sub_errors"] == 0 and res["unparsed"] == 0, res
    assert res["src_addrs"] == 2, res       # clients spread over 127.0.0.1 and 127.0.0.2
    assert res["bytes"] > res["msgs"] * 200


def test_keyed_clients_get_only_their_key(bench_bridge):
    mock, srv = bench_bridge
    load = Load(srv.port, "--clients", 4, "--keys", 4)
    try:
        load.event("ready")
        produce(mock.bootstrap, rate=200, duration=2, keys=4)
        res = load.finish(expect=400)
    finally:
        load.kill()
    check_result_shape(res)
    assert res["msgs"] == 400 and res["msgs_min"] == res["msgs_max"] == 100, res
    assert res["misrouted"] == 0 and res["clients_with_gaps"] == 0 and res["dups"] == 0, res


def test_wsload_msgpack(bench_bridge):
    """--format msgpack: the upgrade asks for format=msgpack, every server
    message (acks included) arrives as MessagePack in a binary frame and is
    walked as such: all 3,000 messages, no gap, nothing in the wrong format."""
    mock, srv = bench_bridge
    load = Load(srv.port, "--clients", 5, "--format", "msgpack")
    try:
        ready = load.event("ready")
        assert ready["subscribed"] == 5 and ready["failed"] == 0, ready
        pres = produce(mock.bootstrap, rate=200, duration=3)
        res = load.finish(expect=5 * pres["acked"])
    finally:
        load.kill()
    check_result_shape(res)
    assert res["format"] == "msgpack" and res["wrong_format"] == 0, res
    assert res["msgs"] == 5 * 600 and res["msgs_min"] == res["msgs_max"] == 600, res
    assert res["gaps"] == res["clients_with_gaps"] == res["dups"] == 0, res
    assert res["acks"] == 5 and res["sub_errors"] == 0 and res["unparsed"] == 0, res
    # the same payload as JSON takes ~350 B a message; MessagePack less
    assert 200 < res["bytes"] / res["msgs"] < 330, res["bytes"] / res["msgs"]


def test_wsload_interval(bench_bridge):
    """--interval 250 over 10 keys: deliveries are conflated (per client and
    key at most the first record and then one per 250 ms: 13 for 60 records
    spanning 2.95 s), skipped numbers are not gaps, each key's n strictly
    increases and every client ends with each key's newest value. Once with
    "interval" on subscribe (JSON), once on the upgrade (a --subscribe
    template without {interval}) with format=msgpack."""
    mock, srv = bench_bridge
    on_sub = Load(srv.port, "--clients", 3, "--interval", 250)
    on_url = Load(srv.port, "--clients", 3, "--interval", 250, "--format", "msgpack",
                  "--subscribe", '{"type":"subscribe","channel":"{channel}"}')
    try:
        on_sub.event("ready")
        on_url.event("ready")
        assert srv.health()["clients"] == 6
        produce(mock.bootstrap, rate=200, duration=3, keys=10)
        r1 = on_sub.finish(expect=0, quiet_ms=1500)
        r2 = on_url.finish(expect=0, quiet_ms=1500)
    finally:
        on_sub.kill()
        on_url.kill()
    for res in (r1, r2):
        check_result_shape(res)
        assert res["interval_ms"] == 250 and res["keys_seen"] == 10, res
        assert res["acks"] == 3 and res["sub_errors"] == 0 and res["wrong_format"] == 0, res
        # conflated: far fewer than 600 each, but every key several times
        assert 10 * 8 <= res["msgs_min"] <= res["msgs_max"] <= 10 * 14, res
        assert res["gaps"] == res["missing"] == res["clients_with_gaps"] == 0, res
        assert res["dups"] == res["clients_disorder"] == 0, res
        assert res["stale"] == res["clients_stale"] == res["clients_bad"] == 0, res
        assert res["unparsed"] == res["misrouted"] == 0, res
        # what goes out at the end of an interval is the newest record, at most
        # one key period (50 ms) old plus the pipeline (a loose bound: the
        # suite also runs the sanitizer build)
        assert res["latency_ms"]["max"] < 1000, res["latency_ms"]
    assert r2["format"] == "msgpack" and r1["format"] == "json"


STATE_CHANNELS = ["bench1", "bench2", "bench3", "bench4"]


def test_wsload_state_and_several_channels(tools, mock_kafka, kafka_bridge):
    """--state web: 600 records (state layout) over 4 channels x 10 keys, so
    a key changes every 200 ms, sometimes twice in one 250 ms period. JSON
    and MessagePack clients each get one snapshot and then about one update
    per 250 ms; every record either reached a client in an update or was
    superseded within its period (values + superseded = 600 per client, no
    key going back, every key's newest value at the end); each value's age
    is counted. Plain clients of the same 4 channels (--channel A,B,C,D)
    get every record, each key's kn in order, though the topics interleave."""
    mock = mock_kafka({t: 1 for t in STATE_CHANNELS})
    srv = kafka_bridge(mock, *[a for t in STATE_CHANNELS for a in ("-t", t)])
    time.sleep(0.5)
    chans = ",".join(STATE_CHANNELS)
    js = Load(srv.port, "--clients", 3, "--state", "web", "--channel", chans)
    mp = Load(srv.port, "--clients", 2, "--state", "web", "--channel", chans, "--format", "msgpack")
    plain = Load(srv.port, "--clients", 2, "--channel", chans)
    loads = (js, mp, plain)
    try:
        for x, n in zip(loads, (3, 2, 2)):
            ready = x.event("ready")
            assert ready["subscribed"] == n and ready["failed"] == 0, ready
        pres = produce(mock.bootstrap, rate=200, duration=3, keys=10, topic=chans, layout="state")
        assert pres["topics"] == 4 and pres["acked"] == 600, pres
        r_plain = plain.finish(expect=2 * 600)
        r_js = js.finish(expect=3 * 600, quiet_ms=1500)
        r_mp = mp.finish(expect=2 * 600, quiet_ms=1500)
    finally:
        for x in loads:
            x.kill()
    check_result_shape(r_plain)
    assert r_plain["channels"] == 4 and r_plain["msgs"] == 2 * 600, r_plain
    assert r_plain["gaps"] == r_plain["clients_with_gaps"] == r_plain["dups"] == 0, r_plain
    assert r_plain["unparsed"] == 0 and r_plain["acks"] == 2, r_plain
    for res, n, fmt in ((r_js, 3, "json"), (r_mp, 2, "msgpack")):
        assert res["state"] == "web" and res["period_ms"] == 250 and res["format"] == fmt, res
        assert res["acks"] == n and res["sub_errors"] == res["server_errors"] == 0, res
        assert res["wrong_format"] == res["unparsed"] == res["seq_errors"] == 0, res
        assert res["snapshots"] == n and res["snapshot_bytes"] > 0, res
        # 3 s of records: 12 periods with changes, give or take one at each end
        assert res["updates"] == res["msgs"] and 10 <= res["msgs_min"] <= res["msgs_max"] <= 15, res
        assert res["keys_seen"] == 40 and res["values"] + res["superseded"] == n * 600, res
        assert res["values"] >= n * 600 // 2, res
        assert res["dups"] == res["clients_disorder"] == res["stale"] == res["clients_bad"] == 0, res
        lat, gap, newest = res["latency_ms"], res["update_gap_ms"], res["newest_age_ms"]
        # every value's age; each update's newest one but a client's last
        # (after the records end), and its delay from its own timestamp
        assert lat["count"] == res["values"] and newest["count"] == res["updates"] - n, res
        assert res["update_delay_ms"]["count"] == res["updates"], res
        assert res["update_delay_ms"]["p50"] <= newest["p50"] + 1, res   # ms-resolution timestamps
        # a value waits for the period's tick: its age spans the period (loose
        # bounds: the suite also runs the sanitizer build)
        assert lat["min"] < 125 < lat["max"] < 1500, lat
        assert newest["p50"] <= lat["p50"], (newest, lat)
        assert gap["count"] == res["updates"] - n and 150 <= gap["p50"] <= 350, gap
        assert res["bytes"] >= res["snapshot_bytes"] + res["update_bytes"] > res["update_bytes"] > 0, res


def test_wsload_tokens(tools, mock_kafka, kafka_bridge, tmp_path):
    """--tokens FILE: client i sends line i % lines as Authorization: Bearer
    on its upgrade. Against kbridge with --jwt-secret, 4 clients with valid
    HS256 tokens (PyJWT), two of them narrowed to key k0, which every record
    carries (the fanout-1kx1k-auth row's setup), all get 101 and all 600
    records with no gap, while one narrowed to k1 gets none (the tokens do
    reach the permissions); a client with a token signed with another
    secret gets 401 and is counted as a refused, failed upgrade."""
    jwt = pytest.importorskip("jwt")
    secret = tmp_path / "secret"
    secret.write_text("s3cret-for-the-bench-tools-test\n")          # kbridge strips one newline
    exp = int(time.time()) + 600
    perms = [{"channels": ["bench"]}, {"channels": ["bench"], "keys": ["k0"]}]
    good, bad, k1 = tmp_path / "good", tmp_path / "bad", tmp_path / "k1"
    good.write_text("".join(jwt.encode({"sub": f"c{i}", "exp": exp, "kbridge": perms[i % 2]},
                                       "s3cret-for-the-bench-tools-test", algorithm="HS256") + "\r\n"
                            for i in range(2)) + "\n")              # CRLF, a blank line: skipped
    bad.write_text(jwt.encode({"sub": "x", "exp": exp, "kbridge": perms[0]}, "another-secret",
                              algorithm="HS256") + "\n")
    k1.write_text(jwt.encode({"sub": "y", "exp": exp, "kbridge": {"channels": ["bench"], "keys": ["k1"]}},
                             "s3cret-for-the-bench-tools-test", algorithm="HS256"))
    mock = mock_kafka({"bench": 1})
    srv = kafka_bridge(mock, "-t", "bench", "--jwt-secret", str(secret))
    time.sleep(0.5)
    ok = Load(srv.port, "--clients", 4, "--tokens", good)
    refused = Load(srv.port, "--clients", 1, "--tokens", bad)
    other_key = Load(srv.port, "--clients", 1, "--tokens", k1)
    try:
        ready = ok.event("ready")
        assert ready["connected"] == ready["subscribed"] == 4 and ready["failed"] == 0, ready
        assert other_key.event("ready")["subscribed"] == 1
        r_bad = refused.finish(expect=1, quiet_ms=200)
        pres = produce(mock.bootstrap, rate=200, duration=3)
        res = ok.finish(expect=4 * pres["acked"])
        r_k1 = other_key.finish(expect=1, quiet_ms=500)
    finally:
        for x in (ok, refused, other_key):
            x.kill()
    check_result_shape(res)
    assert res["tokens"] == 2 and res["refused"] == 0 and res["acks"] == 4, res
    assert res["msgs"] == 4 * 600 and res["msgs_min"] == res["msgs_max"] == 600, res
    assert res["gaps"] == res["clients_with_gaps"] == res["dups"] == res["sub_errors"] == 0, res
    assert r_bad["tokens"] == 1 and r_bad["refused"] == r_bad["failed"] == 1, r_bad
    assert r_bad["connected"] == r_bad["subscribed"] == 0, r_bad
    assert "upgrade refused: HTTP/1.1 401" in r_bad["first_error"], r_bad
    assert r_k1["acks"] == 1 and r_k1["msgs"] == 0 and r_k1["failed"] == 0, r_k1


def test_wsload_tls(tools, mock_kafka, kbridge, tls_certs):
    """--tls: TLS handshakes inside wsload's epoll loop, then the same
    upgrade, subscribe and frames over SSL_read/SSL_write. Against kbridge
    with --tls-cert/--tls-key (the test CA's ECDSA P-256 pair), 4 clients
    verifying it with --ca get all 600 records with no gap; one verifying
    against another CA fails its handshake; a plain client gets no upgrade."""
    mock = mock_kafka({"bench": 1})        # before kbridge: it outlives it at teardown
    ctx = tls_certs.context()
    srv = kbridge("--brokers", mock.bootstrap, "-X", "fetch.wait.max.ms=10", "-t", "bench",
                  "--tls-cert", tls_certs.cert, "--tls-key", tls_certs.key, brokers=False,
                  ready=lambda s: conftest.https_get(s.port, "/ready", ctx=ctx, timeout=1.0)[0])
    time.sleep(0.5)
    ok = Load(srv.port, "--clients", 4, "--src-addrs", 2, "--ca", tls_certs.ca)
    wrong_ca = Load(srv.port, "--clients", 1, "--ca", os.path.join(tls_certs.dir, "otherca.pem"))
    plain = Load(srv.port, "--clients", 1)
    try:
        ready = ok.event("ready")
        assert ready["connected"] == ready["subscribed"] == 4 and ready["failed"] == 0, ready
        r_ca = wrong_ca.finish(expect=1, quiet_ms=200)
        r_plain = plain.finish(expect=1, quiet_ms=200)
        pres = produce(mock.bootstrap, rate=200, duration=3)
        res = ok.finish(expect=4 * pres["acked"])
    finally:
        for x in (ok, wrong_ca, plain):
            x.kill()
    check_result_shape(res)
    assert res["tls"] == 1 and res["tls_handshakes"] == 4, res
    assert res["msgs"] == 4 * 600 and res["msgs_min"] == res["msgs_max"] == 600, res
    assert res["gaps"] == res["clients_with_gaps"] == res["dups"] == res["sub_errors"] == 0, res
    assert res["acks"] == 4 and res["unparsed"] == 0 and res["src_addrs"] == 2, res
    assert r_ca["failed"] == 1 and r_ca["tls_handshakes"] == 0, r_ca
    assert "certificate verify failed" in r_ca["first_error"], r_ca
    assert r_plain["failed"] == 1 and r_plain["connected"] == 0 and r_plain["tls"] == 0, r_plain


def test_wsload_deflate(bench_bridge, kafka_bridge):
    """--deflate: every upgrade offers permessage-deflate and needs a 101
    that accepts it; each compressed message (RSV1) is inflated before the
    usual checks (once per distinct payload: kbridge sends every client the
    same bytes for a record). 5 clients get all 600 records of ~350 B compressed (the
    subscribe acks, under --deflate-min-size, come plain), no gap, fewer
    wire bytes than plain JSON (~350 B a message), and wsload times one
    message's compression at the end (deflate_cost: the same bytes the
    bridge sent). A bridge with --deflate off answers without the
    extension: wsload refuses that 101 (ext_declined)."""
    mock, srv = bench_bridge
    off = kafka_bridge(mock, "-t", "bench", "--deflate", "off")
    load = Load(srv.port, "--clients", 5, "--deflate")
    declined = Load(off.port, "--clients", 1, "--deflate")
    try:
        ready = load.event("ready")
        assert ready["connected"] == ready["subscribed"] == 5 and ready["failed"] == 0, ready
        r_off = declined.finish(expect=1, quiet_ms=200)
        pres = produce(mock.bootstrap, rate=200, duration=3)
        res = load.finish(expect=5 * pres["acked"])
    finally:
        load.kill()
        declined.kill()
    check_result_shape(res)
    assert res["deflate"] == 1 and res["ext_declined"] == 0, res
    assert res["msgs"] == 5 * 600 and res["msgs_min"] == res["msgs_max"] == 600, res
    assert res["gaps"] == res["clients_with_gaps"] == res["dups"] == res["unparsed"] == 0, res
    assert res["acks"] == 5 and res["sub_errors"] == 0, res
    assert res["deflated"] == 5 * 600, res
    # every client got the same bytes for a record: inflated once, then found
    assert res["inflates"] == 600 and res["inflate_cache_hits"] == 4 * 600, res
    assert res["deflated_bytes"] < res["inflated_bytes"] and 330 < res["inflated_bytes"] / 3000 < 370, res
    assert res["bytes"] / res["msgs"] < 0.6 * 350, res["bytes"] / res["msgs"]
    cost = res["deflate_cost"]
    assert cost["level"] == 6 and 330 < cost["in"] < 370 and 0 < cost["out"] < cost["in"], cost
    assert 0 < cost["cpu_us"] < 1000, cost
    assert res["inflate_cost"]["in"] == cost["out"] and 0 < res["inflate_cost"]["cpu_us"] < 1000, res
    assert r_off["ext_declined"] == r_off["failed"] == 1 and r_off["connected"] == 0, r_off
    assert "did not accept permessage-deflate" in r_off["first_error"], r_off


def test_wsload_sse(bench_bridge):
    """--sse: GET /sse?channel=bench (keyed: &key=k<i%4>) instead of an
    upgrade; the 200 text/event-stream is the subscription (no subscribe
    message, no ack); each data event is one delivery, its data line (the
    WebSocket message's JSON) checked as a message is. 5 channel clients
    over two source addresses get all 600 records in order, 4 keyed ones the
    150 of their key; the start block (retry and an id-only block) is
    counted apart, every data event has an id, and an event costs about the
    WebSocket message plus its id and event lines on the wire."""
    mock, srv = bench_bridge
    load = Load(srv.port, "--sse", "--clients", 5, "--src-addrs", 2)
    keyed = Load(srv.port, "--sse", "--clients", 4, "--keys", 4)
    try:
        for x, n in ((load, 5), (keyed, 4)):
            ready = x.event("ready")
            assert ready["connected"] == ready["subscribed"] == n and ready["failed"] == 0, ready
        assert settled(lambda: srv.health()["clients"], 9) == 9
        assert settled(lambda: srv.http(path="/stats").json()["sse_clients"], 9) == 9
        pres = produce(mock.bootstrap, rate=200, duration=3, keys=4)
        res = load.finish(expect=5 * pres["acked"])
        rk = keyed.finish(expect=4 * 150)
    finally:
        load.kill()
        keyed.kill()
    for x, n, per in ((res, 5, 600), (rk, 4, 150)):
        check_result_shape(x)
        assert x["sse"] == 1 and x["failed"] == x["closed"] == x["refused"] == 0, x
        assert x["msgs"] == n * per and x["msgs_min"] == x["msgs_max"] == per, x
        assert x["gaps"] == x["clients_with_gaps"] == x["missing"] == x["dups"] == x["unparsed"] == 0, x
        assert x["misrouted"] == x["server_errors"] == x["sse_bad"] == x["sse_no_ts"] == x["sse_snapshots"] == 0, x
        assert x["acks"] == 0 and x["sse_retry"] == n and x["sse_id_only"] >= n, x
        assert x["sse_ids"] == x["msgs"] + x["sse_id_only"], x
        # kbridge's envelope around a 200 B payload (~348 B) plus "id: ...", "event: ..." and "data: "
        assert 350 < x["bytes"] / x["msgs"] < 550, x["bytes"] / x["msgs"]
    assert res["src_addrs"] == 2, res


def test_wsload_sse_demo(tools, kbridge):
    """--sse against kbridge --demo (its market data on channel dashboard,
    records without produce.c's ts_us): every data event still counts as a
    delivery (sse_no_ts: no latency, no sequence to check), each stream
    began with its start block; an unknown channel is refused (404)."""
    srv = kbridge("--demo", "--demo-rate", "200", brokers=False)
    load = Load(srv.port, "--sse", "--clients", 4, "--channel", "dashboard")
    unknown = Load(srv.port, "--sse", "--clients", 1, "--channel", "nosuch")
    try:
        ready = load.event("ready")
        assert ready["connected"] == ready["subscribed"] == 4 and ready["failed"] == 0, ready
        r_unknown = unknown.finish(expect=1, quiet_ms=200)
        assert srv.http(path="/stats").json()["sse_clients"] == 4
        res = load.finish(expect=4 * 150, quiet_ms=5000, max_ms=20000)
    finally:
        load.kill()
        unknown.kill()
    assert res["sse"] == 1 and res["failed"] == res["closed"] == 0, res
    assert res["msgs"] >= 4 * 150 and res["msgs_min"] > 0, res
    assert res["sse_no_ts"] == res["msgs"] and res["latency_ms"]["count"] == 0, res
    assert res["sse_bad"] == res["server_errors"] == res["unparsed"] == 0, res
    assert res["sse_retry"] == 4 and res["sse_id_only"] >= 4 and res["sse_ids"] >= res["msgs"] + 4, res
    assert res["bytes"] > res["msgs"] * 100, res
    assert r_unknown["refused"] == r_unknown["failed"] == 1 and r_unknown["connected"] == 0, r_unknown
    assert "SSE request refused: HTTP/1.1 404" in r_unknown["first_error"], r_unknown


class Floor(Tool):
    """A running build/bench/floor."""
    name = "floor"

    def __init__(self, *args):
        super().__init__([FLOOR, "--control"] + [str(a) for a in args])
        self.port = self.event("listening", timeout=10)["port"]


def has_publish():
    """Whether the kbridge under test takes --publish (issue 19)."""
    r = subprocess.run([conftest.bin_path(), "--help"], capture_output=True, text=True, timeout=10)
    return "--publish" in r.stdout + r.stderr


class Publishers(Tool):
    """wsload --publish: started on "publish SECONDS"; its result line
    comes once every publish is answered."""
    name = "wsload --publish"

    def __init__(self, port, *args):
        super().__init__([WSLOAD, "--port", str(port), "--control", "--timeout", "60"]
                         + [str(a) for a in args])

    def run(self, seconds):
        self.p.stdin.write(f"publish {seconds}\n")
        self.p.stdin.flush()
        res = self.event("result", timeout=seconds + 30)
        assert self.p.wait(10) == 0
        return res


def test_wsload_publish(tools, mock_kafka, kafka_bridge):
    """--publish 50 from 4 clients for 2 s (kbridge --publish pub=pub, the
    topic routed back to the channel by -t pub): 400 publishes, each
    acknowledged with an offset and matched by its id, the ack latency of
    each counted; 2 readers of the channel (--per-key) get all 400 records
    back, each publisher's in order. Publishing on a channel that is not a
    --publish channel: every publish answered with an error, counted as
    such and matched, none acknowledged."""
    if not has_publish():
        pytest.skip("kbridge has no --publish (issue 19)")
    mock = mock_kafka({"pub": 1})
    srv = kafka_bridge(mock, "-t", "pub", "--publish", "pub=pub", "--client-rate", "1000")
    time.sleep(0.5)
    readers = Load(srv.port, "--clients", 2, "--channel", "pub", "--per-key")
    pubs = Publishers(srv.port, "--clients", 4, "--channel", "pub", "--publish", 50, "--size", 120)
    wrong = Publishers(srv.port, "--clients", 2, "--channel", "nope", "--publish", 20)
    try:
        readers.event("ready")
        ready = pubs.event("ready")
        assert ready["connected"] == ready["subscribed"] == 4 and ready["failed"] == 0, ready
        wrong.event("ready")
        res = pubs.run(2)
        bad = wrong.run(1)
        rres = readers.finish(expect=2 * 400)
    finally:
        for t in (readers, pubs, wrong):
            t.kill()
    pub = res["publish"]
    assert pub["rate"] == 50 and pub["size"] == 120 and pub["seconds"] == 2.0, pub
    assert pub["published"] == pub["answered"] == pub["acked"] == 400, (pub, res["first_error"])
    assert pub["rate_limited"] == pub["failed"] == pub["errors"] == pub["unmatched"] == 0, pub
    assert pub["unanswered"] == pub["no_offset"] == pub["overrun"] == 0, pub
    assert res["acks"] == 400 and res["server_errors"] == 0 and res["msgs"] == 0, res
    ack = pub["ack_ms"]
    assert ack["count"] == 400 and 0 <= ack["min"] <= ack["p50"] <= ack["p99"] <= ack["max"] < 5000, ack
    assert pub["send_lag_ms"]["count"] == 400, pub
    assert 150 <= pub["acked_per_s"] <= 210, pub            # 200/s asked
    # the records came back through the route: 4 keys, each 1..100 in order
    check_result_shape(rres)
    assert rres["msgs"] == 800 and rres["msgs_min"] == rres["msgs_max"] == 400, rres
    assert rres["gaps"] == rres["missing"] == rres["dups"] == rres["unparsed"] == 0, rres
    # an unknown channel: every publish answered with an error, matched by id
    bp = bad["publish"]
    assert bp["published"] == bp["answered"] == bp["errors"] == 2 * 20 and bp["acked"] == 0, bp
    assert bp["unmatched"] == 0 and bad["server_errors"] == 40, bad
    assert "UNKNOWN_CHANNEL" in bad["first_error"], bad["first_error"]
    # kbridge's own count agrees with wsload's
    st = wsutil.get_json(srv.port, "/stats")
    assert st["published"]["ok"] == 400, st.get("published")


def test_floor_feeds_wsload_in_order(tools):
    """bench/floor.c, the reference sender of the floor rows: a fan-out one
    (every record to every client, one write per client per tick) and a
    keyed one (record j to the clients of key j % 4, one write per
    delivery), each with a handful of wsload clients for 1 s at 300
    records/s: the upgrade is accepted (wsload checks Sec-WebSocket-Accept),
    every subscribe acked, every record delivered in order with no gap, no
    misrouting, latencies parsed from the payload; floor exits 0 on SIGTERM
    and quits on "quit"."""
    fan = Floor("--mode", "fanout", "--rate", 300, "--duration", 1)
    keyed = Floor("--mode", "keyed", "--rate", 300, "--duration", 1, "--keys", 4)
    loads = []
    try:
        lf = Load(fan.port, "--clients", 5, "--src-addrs", 2, "--timeout", 20)
        loads.append(lf)
        lk = Load(keyed.port, "--clients", 8, "--keys", 4, "--timeout", 20)
        loads.append(lk)
        for x, n in ((lf, 5), (lk, 8)):
            ready = x.event("ready", timeout=10)
            assert ready["connected"] == ready["subscribed"] == n and ready["failed"] == 0, ready
        for f in (fan, keyed):
            f.p.stdin.write("go\n")
            f.p.stdin.flush()
        starts = [f.event("start") for f in (fan, keyed)]
        assert starts[0]["records"] == 300 and starts[0]["subscribed"] == 5, starts
        assert starts[1]["subscribed"] == 8, starts
        r_fan, r_keyed = fan.event("result", timeout=10), keyed.event("result", timeout=10)
        res_f = lf.finish(expect=5 * 300, quiet_ms=1000, max_ms=5000)
        res_k = lk.finish(expect=2 * 300, quiet_ms=1000, max_ms=5000)
        fan.p.send_signal(signal.SIGTERM)
        assert fan.p.wait(5) == 0
        keyed.p.stdin.write("quit\n")
        keyed.p.stdin.flush()
        assert keyed.p.wait(5) == 0
    finally:
        for x in loads:
            x.kill()
        fan.kill()
        keyed.kill()
    assert r_fan["produced"] == r_fan["acked"] == 300 and r_fan["deliveries"] == 5 * 300, r_fan
    assert r_fan["subscribed"] == 5 and r_fan["slow_closed"] == 0 and 0.8 < r_fan["duration_s"] < 1.5, r_fan
    # one write per client per tick: never more writes than deliveries
    assert 0 < r_fan["data_writes"] <= r_fan["deliveries"], r_fan
    assert r_keyed["deliveries"] == r_keyed["data_writes"] == 2 * 300, r_keyed     # one write per delivery
    for res, n, per in ((res_f, 5, 300), (res_k, 8, 75)):
        check_result_shape(res)
        assert res["msgs"] == n * per and res["msgs_min"] == res["msgs_max"] == per, res
        assert res["gaps"] == res["clients_with_gaps"] == res["missing"] == res["dups"] == 0, res
        assert res["acks"] == n and res["sub_errors"] == 0 and res["unparsed"] == 0, res
        assert res["misrouted"] == 0 and res["failed"] == 0, res
        # kbridge's envelope around a 200 B payload: about 350 B a message
        assert 330 < res["bytes"] / res["msgs"] < 400, res["bytes"] / res["msgs"]
        assert res["latency_ms"]["max"] < 5000, res["latency_ms"]


def test_gap_detection_fires(bench_bridge):
    """Clients that join a stream midway miss its first records: strict
    clients must report that as a gap, --seq-any clients must not."""
    mock, srv = bench_bridge
    prod = subprocess.Popen([PRODUCE, "--brokers", mock.bootstrap, "--topic", "bench", "--partition", "0",
                             "--rate", "200", "--duration", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    strict = lenient = None
    try:
        time.sleep(1.0)
        strict = Load(srv.port, "--clients", 3)
        lenient = Load(srv.port, "--clients", 3, "--seq-any")
        strict.event("ready")
        lenient.event("ready")
        out, err = prod.communicate(timeout=30)
        assert prod.returncode == 0, err
        r1 = strict.finish(expect=10 ** 9, quiet_ms=1000)
        r2 = lenient.finish(expect=10 ** 9, quiet_ms=1000)
    finally:
        for x in (strict, lenient):
            if x:
                x.kill()
        if prod.poll() is None:
            prod.kill()
            prod.wait(5)
    check_result_shape(r1)
    assert 0 < r1["msgs"] < 3 * 600, r1
    assert r1["clients_with_gaps"] == 3 and r1["missing"] >= 3 * 100, r1
    assert r2["clients_with_gaps"] == 0 and r2["missing"] == 0 and r2["msgs"] > 0, r2


def test_run_py_prints_table_and_json(tools):
    """The driver end to end on a tiny scenario set: fresh mock + kbridge."""
    if not os.path.exists(conftest.MOCK_BIN):
        pytest.fail(f"{conftest.MOCK_BIN} not found (build it with make tools)")
    out = os.path.join("build", "bench-test")
    env = conftest.clean_env({"KBRIDGE_BIN": conftest.bin_path(), "MOCKKAFKA_BIN": conftest.MOCK_BIN})
    env.pop("BENCH_BRIDGE", None)
    pin = [] if (os.cpu_count() or 1) >= 2 else ["--no-pin"]
    r = subprocess.run(["/usr/bin/python3", "bench/run.py", "--scenario", "fanout:3x100",
                        "--scenario", "fanout:3x100:msgpack:interval=250:keys=5", "--scenario", "fanout:3x100:auth",
                        "--scenario", "fanout:3x100:deflate", "--scenario", "fanout:3x100:sse",
                        "--scenario", "state:3x100:channels=2:keys=10",
                        "--scenario", "keyed:3x60", "--scenario", "idle:20", "--scenario", "floor:fanout:3x100",
                        "--scenario", "ready:1", "--duration", "2",
                        "--out", out] + pin,
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"run.py failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert "| fanout-3x100 " in r.stdout and "| idle-20 " in r.stdout, r.stdout
    with open(os.path.join(ROOT, out, "results.json")) as f:
        data = json.load(f)
    assert data["meta"]["machine"]["cores"] >= 1
    by = {x["name"]: x for x in data["results"]}
    assert set(by) == {"fanout-3x100", "fanout-3x100-msgpack-i250-k5", "fanout-3x100-auth", "fanout-3x100-deflate",
                       "fanout-3x100-sse", "state-3x100", "keyed-3", "idle-20", "floor-fanout-3x100",
                       "start-to-ready"}, by.keys()
    for name in ("fanout-3x100", "keyed-3", "fanout-3x100-auth", "fanout-3x100-deflate", "fanout-3x100-sse",
                 "floor-fanout-3x100"):
        x = by[name]
        assert "error" not in x, x
        assert x["delivered"] == x["expected"] > 0 and x["pct"] == 100.0, x
        assert x["gap_clients"] == 0 and x["cpu_s"] >= 0 and x["rss"] > 0, x
    assert by["fanout-3x100"]["expected"] == 3 * 200
    check_bridge_logs(out, data["results"])
    assert by["keyed-3"]["expected"] == 120
    # tokens minted per client, one of the three narrowed to k0: all delivered
    x = by["fanout-3x100-auth"]
    assert x["auth"] and x["wsload"]["tokens"] == 3 and x["narrowed_clients"] == 1, x
    if by["fanout-3x100"]["cpu_per_m_deliveries"]:      # CPU is counted in ticks: a tiny run may show none
        assert x["cpu_ratio"] == pytest.approx(x["cpu_per_m_deliveries"]
                                               / by["fanout-3x100"]["cpu_per_m_deliveries"]), x
    assert "fanout-3x100-auth: 3 clients with HS256 tokens (1 narrowed to key k0" in r.stdout, r.stdout
    # permessage-deflate clients: every record came compressed; the ratios to
    # the plain row (wire bytes per message, CPU per delivery), kbridge's byte
    # counters over the window and the per-client estimate are in the notes
    x = by["fanout-3x100-deflate"]
    assert x["deflate"] and x["wsload"]["deflated"] == x["delivered"] == 600, x["wsload"]
    assert x["bytes_ratio"] == pytest.approx(x["bytes_per_msg"] / by["fanout-3x100"]["bytes_per_msg"]), x
    assert x["bytes_ratio"] < 0.6, x
    assert 0 < x["kb_bytes_sent"] < x["kb_bytes_uncompressed"], x
    assert x["per_client_cpu_per_m"] == x["wsload"]["deflate_cost"]["cpu_us"] > 0, x
    assert x["compress_once_cpu_per_m"] == pytest.approx(x["per_client_cpu_per_m"] / 3), x
    assert "fanout-3x100-deflate: 3 clients negotiating permessage-deflate vs fanout-3x100" in r.stdout, r.stdout
    assert "fanout-3x100-deflate: per-client estimate: compressing one of the run's messages" in r.stdout, r.stdout
    # Server-Sent Events clients (GET /sse): every record, kbridge counted
    # them as SSE streams, and the CPU ratio to the WebSocket row is in the note
    x = by["fanout-3x100-sse"]
    assert x["sse"] and x["wsload"]["sse"] == 1 and x["sse_clients"] == 3, x
    assert x["wsload"]["sse_bad"] == 0 and x["wsload"]["acks"] == 0, x["wsload"]
    if by["fanout-3x100"]["cpu_per_m_deliveries"]:
        assert x["cpu_ratio"] == pytest.approx(x["cpu_per_m_deliveries"]
                                               / by["fanout-3x100"]["cpu_per_m_deliveries"]), x
    assert "fanout-3x100-sse: 3 clients reading GET /sse vs fanout-3x100 (WebSocket)" in r.stdout, r.stdout
    # msgpack + conflation: 200 records over 5 keys, 40 a key spanning 1.95 s:
    # at most ceil(1950 / 250) + 1 = 9 a key and client
    x = by["fanout-3x100-msgpack-i250-k5"]
    assert "error" not in x, x
    assert x["records_x_clients"] == 600 and x["expected"] == 3 * 5 * 9, x
    assert 0.6 * x["expected"] <= x["delivered"] <= x["expected"] + 3 * 5, x
    assert x["gap_clients"] == 0 and x["wsload"]["wrong_format"] == 0, x["wsload"]
    assert x["cpu_per_m"] == pytest.approx(x["cpu_s"] / 600 * 1e6), x
    assert "| fanout-3x100-msgpack-i250-k5 " in r.stdout and "CPU s/M deliveries" in r.stdout, r.stdout
    assert "vs fanout-3x100 (JSON, no conflation)" in r.stdout, r.stdout
    assert "error" not in by["idle-20"] and by["idle-20"]["connected"] == 20, by["idle-20"]
    # the state dialect over 2 channels x 10 keys: 200 records, each key every
    # 200 ms; deliveries are client-updates (about 8 a client in 2 s), and
    # every record x client was carried or superseded within its period
    x = by["state-3x100"]
    assert "error" not in x, x
    assert x["topics"] == ["bench1", "bench2"] and x["expected"] == 600, x
    assert 3 * 5 <= x["delivered"] <= 3 * 11 and x["values"] + x["missing"] == 600, x
    assert x["gap_clients"] == 0 and x["wsload"]["snapshots"] == 3, x["wsload"]
    assert x["cpu_per_m"] == pytest.approx(x["cpu_s"] / x["delivered"] * 1e6), x
    assert x["cpu_per_m_records"] == pytest.approx(x["cpu_s"] / 600 * 1e6), x
    assert x["bytes_per_msg"] == pytest.approx(x["wsload"]["update_bytes"] / x["delivered"]), x
    row = [line for line in r.stdout.splitlines() if line.startswith("| state-3x100 ")]
    assert row and row[0].rstrip(" |").endswith("none") and "KiB/update" in row[0], r.stdout
    assert "state-3x100: type=web JSON, 2 channels x 10 keys vs fanout-3x100" in r.stdout, r.stdout
    # the floor row (bench/floor.c in the bridge's place, same clients and
    # records) and the ratio of every fanout-3x100 row to it
    f = by["floor-fanout-3x100"]
    assert f["floor"] is True and f["expected"] == 3 * 200 and f["data_writes"] > 0, f
    assert f["floor_result"]["deliveries"] == 600 and f["floor_result"]["slow_closed"] == 0, f
    for name in ("fanout-3x100", "fanout-3x100-auth", "fanout-3x100-msgpack-i250-k5"):
        x = by[name]
        assert x["floor_row"] == "floor-fanout-3x100", x
        assert x["floor_p99_diff_ms"] == pytest.approx(x["p99_ms"] - f["p99_ms"]), x
        if f["cpu_per_m"] and x["cpu_per_m"] is not None:      # CPU ticks: a tiny run may count none
            assert x["floor_cpu_ratio"] == pytest.approx(x["cpu_per_m"] / f["cpu_per_m"]), x
    assert "floor_row" not in by["state-3x100"] and "floor_row" not in by["keyed-3"]
    assert "vs floor" in r.stdout and "| floor-fanout-3x100 " in r.stdout, r.stdout
    assert "floor-fanout-3x100: reference sender (bench/floor.c" in r.stdout, r.stdout
    # start-to-ready: one start on a fresh mock, exec to the first /ready 200
    x = by["start-to-ready"]
    assert "error" not in x and len(x["ready_s"]) == 1 and x["bridge_exits"] == [0], x
    assert 0 < x["ready_median_s"] == x["ready_max_s"] < 30, x
    assert "| start-to-ready " in r.stdout and "exec to /ready 200: median" in r.stdout, r.stdout


def test_run_py_publish_rows(tools):
    """The publish rows end to end, small: 4 publishers x 50/s with 2 echo
    readers, then the same beside 3 fan-out readers of "bench" at 1,000
    records/s, compared with the fan-out row of the same run."""
    if not has_publish():
        pytest.skip("kbridge has no --publish (issue 19)")
    out = os.path.join("build", "bench-test-publish")
    env = conftest.clean_env({"KBRIDGE_BIN": conftest.bin_path(), "MOCKKAFKA_BIN": conftest.MOCK_BIN})
    env.pop("BENCH_BRIDGE", None)
    pin = [] if (os.cpu_count() or 1) >= 2 else ["--no-pin"]
    r = subprocess.run(["/usr/bin/python3", "bench/run.py", "--scenario", "fanout:3x1000",
                        "--scenario", "publish:4x50:echo=2", "--scenario", "publish:4x50:readers=3:echo=2",
                        "--duration", "2", "--out", out] + pin,
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"run.py failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    with open(os.path.join(ROOT, out, "results.json")) as f:
        data = json.load(f)
    by = {x["name"]: x for x in data["results"]}
    assert set(by) == {"fanout-3x1k", "publish-4x50", "publish-4x50+fanout-3"}, by.keys()
    for name in ("publish-4x50", "publish-4x50+fanout-3"):
        x = by[name]
        assert "error" not in x, x
        assert x["published"] == x["acked"] == 4 * 50 * 2 and x["pct"] == 100.0, x
        assert x["pub_errors"] == x["unanswered"] == x["unmatched"] == 0 and x["gap_clients"] == 0, x
        assert x["echo"]["delivered"] == x["echo"]["expected"] == 2 * 400, x["echo"]
        assert x["p50_ms"] <= x["p99_ms"] <= x["max_ms"] and x["rss"] > 0, x
        if x["cpu_s"]:      # CPU is counted in ticks: a tiny run may show none
            assert x["cpu_per_k_publishes"] == pytest.approx(x["cpu_s"] / 400 * 1000), x
        assert f"| {name} " in r.stdout and "CPU s/1k publishes" in r.stdout, r.stdout
        assert f"{name}: 4 clients x 50 publishes/s" in r.stdout, r.stdout
    f = by["publish-4x50+fanout-3"]["fanout"]
    assert f["delivered"] == f["expected"] == 3 * 2000 and f["gap_clients"] == 0, f
    assert "vs fanout-3x1k's" in r.stdout, r.stdout
    check_bridge_logs(out, data["results"])


def test_bench_bridge_hook_drives_another_command(tools):
    """BENCH_BRIDGE: the same scenario against a command template (here
    kbridge again, started through the template, with its own subscribe
    template): the hook substitutes, starts, waits and measures it."""
    out = os.path.join("build", "bench-test-hook")
    env = conftest.clean_env({
        "KBRIDGE_BIN": conftest.bin_path(), "MOCKKAFKA_BIN": conftest.MOCK_BIN,
        "BENCH_BRIDGE": "{bin} --brokers {brokers} --listen {listen} -t {topic} "
                        "-X fetch.wait.max.ms=10 --log-level warn",
        "BENCH_READY": "/ready", "BENCH_SETTLE": "0.5",
        "BENCH_SUBSCRIBE": '{"type":"subscribe","channels":["{channel}"],"id":"c{id}"}',
    })
    pin = [] if (os.cpu_count() or 1) >= 2 else ["--no-pin"]
    r = subprocess.run(["/usr/bin/python3", "bench/run.py", "--scenario", "fanout:2x100",
                        "--scenario", "keyed:2x100", "--duration", "1", "--out", out] + pin,
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"run.py failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert "skipping keyed" in r.stderr        # no BENCH_KEYED_SUBSCRIBE given
    with open(os.path.join(ROOT, out, "results.json")) as f:
        data = json.load(f)
    assert data["meta"]["bridge"].startswith("{bin} --brokers {brokers}")
    [res] = data["results"]
    assert "error" not in res, res
    assert res["delivered"] == res["expected"] == 200 and res["gap_clients"] == 0, res
    assert res["wsload"]["acks"] == 2 and res["wsload"]["sub_errors"] == 0, res["wsload"]
    check_bridge_logs(out, data["results"])


def test_more_source_addresses_when_ports_run_out(tools):
    """In a network namespace of its own with 101 ephemeral ports, 350
    connections need four source addresses: wsload must move on to
    127.0.0.2, .3, .4 when connect() says EADDRNOTAVAIL."""
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n not permitted here")
    script = f"""
        set -e
        ip link set lo up
        echo "40000 40100" > /proc/sys/net/ipv4/ip_local_port_range
        {conftest.bin_path()} --brokers 127.0.0.1:1 --listen 127.0.0.1:18095 -t bench --log-level error &
        kb=$!
        for i in $(seq 100); do
            (exec 3<>/dev/tcp/127.0.0.1/18095) 2>/dev/null && break
            sleep 0.05
        done
        {WSLOAD} --port 18095 --clients 350 --no-subscribe --duration 0.2 --timeout 30
        kill $kb
        wait $kb
    """
    r = subprocess.run(["unshare", "-n", "bash", "-c", script], capture_output=True, text=True,
                       timeout=60, env=conftest.clean_env(), cwd=ROOT)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["connected"] == 350 and res["failed"] == 0, res
    assert res["src_addrs"] >= 4 and res["addr_exhausted"] >= 3, res
