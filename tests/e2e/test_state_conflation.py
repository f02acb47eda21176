"""Conflation (docs/protocol.md#conflation): `interval=MS` on the upgrade
(#query-parameters) or on a subscribe (100 ms and 250 ms, the periods the
Dashboard Server's clients once meant by `type=tui|web`, which now select
the state dialect, test_state_dialect.py); only the newest
value of each key per interval, without notice; per client, per channel and
key; a conflated message carries the `seq` of the record it delivers. And
the slow-client policy `--slow-client conflate` (#slow_consumer: keep only
the newest queued record per key; SLOW_CONSUMER with `dropped` precedes the
next message)."""
import time

import pytest

from conftest import BulkReader, PacedProducer, is_data, wait_channel_seq, ws_subscribe

HOT = 5


def key_of(i):
    return "slow" if i % 1200 == 0 else "h%d" % (i % HOT)


def value_of(i):
    return '{"k":"%s","i":%d}' % (key_of(i), i)


def check_conflated(name, reader, interval_s, produced_last, slow_values, live_by_seq, t_start, t_end,
                    channel="cfc"):
    objs = reader.objs()
    errs = [o for o in objs if o.get("type") == "error"]
    assert not errs, f"{name}: conflation is without notice, got errors {errs[:3]!r}"
    msgs = [(t, o) for (t, op, raw, o) in reader.msgs if is_data(o) and o["channel"] == channel]
    by_key = {}
    for t, o in msgs:
        by_key.setdefault(o["key"], []).append((t, o))
    problems = []
    duration = t_end - t_start
    for k in ["h%d" % j for j in range(HOT)] + ["slow"]:
        got = by_key.get(k, [])
        if not got:
            problems.append(f"key {k}: never delivered")
            continue
        ivals = [o["data"]["i"] for _, o in got]
        if ivals != sorted(set(ivals)):
            problems.append(f"key {k}: values not strictly newer each time: {ivals[:20]}")
        if ivals[-1] != produced_last[k]:
            problems.append(f"key {k}: last delivered value i={ivals[-1]}, newest produced i={produced_last[k]}")
        # seq = the seq of the record delivered (the observer saw it live).
        for _, o in got:
            ref = live_by_seq.get(o.get("seq"))
            if ref is None or ref["data"] != o["data"] or ref["offset"] != o["offset"]:
                problems.append(f"key {k}: message {o!r} does not carry the seq of the record it delivers "
                                f"(seq {o.get('seq')} is {ref!r})")
                break
        times = [t for t, _ in got]
        # Rate: at most one message per key per interval. The times are
        # this reader thread's, and a thread held up for a moment reads a
        # few at once: in any window of two seconds, <= 2/interval + 3.
        win = 2.0
        most = max(sum(1 for u in times if s <= u < s + win) for s in times)
        if most > win / interval_s + 3:
            problems.append(f"key {k}: {most} messages within {win}s (interval {interval_s * 1000:.0f} ms)")
        if len(times) > duration / interval_s + 3:
            problems.append(f"key {k}: {len(times)} messages in {duration:.1f}s (interval {interval_s * 1000:.0f} ms)")
        if k == "slow":
            # One update per 600 ms, slower than the interval: each one arrives.
            if ivals != slow_values:
                problems.append(f"key slow: delivered {ivals}, produced {slow_values}")
        else:
            # No starvation: a key that changes all the time shows up every
            # interval (allow timer jitter and a loaded machine, where this
            # reader thread can be held up for most of a second).
            inside = [u for u in times if u <= t_end]
            gaps = [b - a for a, b in zip(inside, inside[1:])]
            if gaps and max(gaps) > 2 * interval_s + 1.0:
                problems.append(f"key {k}: {max(gaps) * 1000:.0f} ms without a message while it kept changing")
            if len(inside) < duration / interval_s * 0.5:
                problems.append(f"key {k}: only {len(inside)} messages in {duration:.1f}s "
                                f"(interval {interval_s * 1000:.0f} ms)")
    assert not problems, f"{name}:\n" + "\n".join(problems[:20])
    print(f"{name}: {len(msgs)} messages in {duration:.1f}s, per key {dict((k, len(v)) for k, v in by_key.items())}")
    return by_key


@pytest.mark.one_process("compares seq across connections: seq is per process")
def test_conflation_intervals_newest_wins_no_starvation(mock_kafka, kafka_bridge):
    mk = mock_kafka({"cf": 1, "cf2": 1})
    srv = kafka_bridge(mk, "-t", "cf=cfc", "-t", "cf2=cf2c", "--client-queue", "1000000",
                       "--client-buffer", "256MiB")
    obs_ws = srv.ws()
    ws_subscribe(obs_ws, {"type": "subscribe", "channels": ["cfc", "cf2c"]})
    obs = BulkReader(obs_ws, "observer")
    up250 = BulkReader(srv.ws(path="/ws?channel=cfc&interval=250"), "interval=250")
    sub = srv.ws()
    ws_subscribe(sub, {"type": "subscribe", "channels": ["cfc", "cf2c"], "interval": 250}, ident="sub")
    sub250 = BulkReader(sub, "subscribe interval 250")
    web = BulkReader(srv.ws(path="/ws?channel=cfc&interval=250&snapshot=1"), "interval=250&snapshot=1")
    tui = BulkReader(srv.ws(path="/ws?channel=cfc&interval=100&snapshot=1"), "interval=100&snapshot=1")
    time.sleep(0.5)                     # --offset latest
    rate, seconds = 2000, 4.0
    t_start = time.monotonic()
    p1 = PacedProducer(mk, "cf", rate, seconds, fmt_key=key_of, fmt_value=value_of)
    # Another channel with the same key name: conflation is per channel too.
    p2 = PacedProducer(mk, "cf2", 200, seconds, fmt_key=lambda i: "h0", fmt_value=lambda i: '{"i":%d}' % i)
    n1 = p1.wait()
    n2 = p2.wait()
    t_end = time.monotonic()
    produced_last = {}
    for i in range(n1):
        produced_last[key_of(i)] = i
    slow_values = [i for i in range(n1) if key_of(i) == "slow"]
    assert len(slow_values) >= 5
    wait_channel_seq(srv.port, "cfc", n1)
    wait_channel_seq(srv.port, "cf2c", n2)
    obs.wait_for(lambda objs: sum(1 for o in objs if is_data(o)) >= n1 + n2, 20, "every record")
    time.sleep(1.0)                     # the last interval flushes
    for r in (obs, up250, sub250, web, tui):
        r.stop()
    live = [o for o in obs.data()]
    assert len(live) == n1 + n2
    live_by_seq = {o["seq"]: o for o in live if o["channel"] == "cfc"}
    live2_by_seq = {o["seq"]: o for o in live if o["channel"] == "cf2c"}

    # Unasked snapshots: only with snapshot=1 (docs/protocol.md#snapshots).
    for r, want in ((up250, 0), (sub250, 0), (web, 1), (tui, 1)):
        snaps = [o for o in r.controls() if o.get("type") == "snapshot"]
        assert len(snaps) == want, f"{r.name}: {len(snaps)} snapshots, expected {want}"
    for r, ival in ((up250, 0.25), (sub250, 0.25), (web, 0.25), (tui, 0.1)):
        check_conflated(r.name, r, ival, produced_last, slow_values, live_by_seq, t_start, t_end)
        total = len(r.data())
        assert total < n1 / 4, f"{r.name}: {total} messages for {n1} records: hardly conflated"
    # Per channel: cf2c's key h0 is conflated on its own.
    got2 = [(t, o) for (t, op, raw, o) in sub250.msgs if is_data(o) and o["channel"] == "cf2c"]
    vals = [o["data"]["i"] for _, o in got2]
    assert vals and vals[-1] == n2 - 1 and vals == sorted(set(vals)), vals[-10:]
    assert len(vals) <= seconds / 0.25 + 3 and len(vals) >= seconds / 0.25 * 0.5, len(vals)
    for _, o in got2:
        assert live2_by_seq[o["seq"]]["data"] == o["data"], o


def test_interval_bad_values(mock_kafka, kafka_bridge):
    mk = mock_kafka({"ib": 1})
    srv = kafka_bridge(mk, "-t", "ib=ibc")
    c = srv.ws()
    for i, v in enumerate(("250", -1, [250], {"ms": 1})):
        c.send_json({"type": "subscribe", "channel": "ibc", "interval": v, "id": i})
        m = c.recv_json(5)
        assert m.get("type") == "error" and m.get("code") == "BAD_REQUEST" and m.get("id") == i, (v, m)
    c.ping_ok()
    r = srv.http("GET", "/ws?channel=ibc&interval=soon", headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
    assert r.status == 400, r


def test_slow_client_conflate_keeps_newest_per_key(mock_kafka, kafka_bridge):
    """A client that does not read while 20,000 records of 5 keys arrive,
    with --client-queue 32 and --slow-client conflate: when it reads again,
    every key's newest value is there, values only move forward, and
    SLOW_CONSUMER notices (preceding the next message) count exactly the
    records it did not get."""
    mk = mock_kafka({"sc": 1})
    srv = kafka_bridge(mk, "-t", "sc=scc", "--slow-client", "conflate", "--client-queue", "32")
    from wsutil import WS
    # Uncompressed: the padded records would compress into the buffers it stalls.
    c = srv.track(WS.connect(srv.port, "/ws", rcvbuf=4096, offer=False))
    ws_subscribe(c, {"type": "subscribe", "channel": "scc"})
    time.sleep(0.5)
    N = 20000
    keys = ["k%d" % j for j in range(5)]
    lines = b"".join(b'%s\t{"k":"%s","i":%d,"pad":"%s"}\n' % (keys[i % 5].encode(), keys[i % 5].encode(), i,
                                                            b"x" * 100) for i in range(N))
    mk.kcat_produce("sc", lines, key_delim="\t")
    wait_channel_seq(srv.port, "scc", N, timeout=30)
    time.sleep(0.5)
    r = BulkReader(c, "slow")
    time.sleep(0.5)
    r.wait_for(lambda objs: {o["data"]["i"] for o in objs if is_data(o)} >= set(range(N - 5, N)), 15,
               "the newest value of every key")
    time.sleep(0.5)
    r.stop()
    assert r.closed is None, f"conflate policy closed the connection: {r.closed}"
    objs = r.objs()
    data = [o for o in objs if is_data(o)]
    notices = [o for o in objs if o.get("type") == "error"]
    assert all(o.get("code") == "SLOW_CONSUMER" for o in notices), notices[:3]
    assert notices, "records were conflated away without a SLOW_CONSUMER notice"
    assert len(data) < N
    assert sum(o.get("dropped", 0) for o in notices) == N - len(data), \
        f"SLOW_CONSUMER dropped counts sum to {sum(o.get('dropped', 0) for o in notices)}, " \
        f"but {N - len(data)} of {N} records did not arrive"
    # Every notice is followed by a data message (it precedes the next one).
    for j, o in enumerate(objs):
        if o.get("type") == "error":
            assert j + 1 < len(objs) and is_data(objs[j + 1]), "SLOW_CONSUMER notice not followed by a message"
    for k in keys:
        vals = [o["data"]["i"] for o in data if o["key"] == k]
        assert vals == sorted(set(vals)), f"key {k}: values out of order or repeated"
        last = max(i for i in range(N) if keys[i % 5] == k)
        assert vals and vals[-1] == last, f"key {k}: last delivered {vals[-1:]}, newest produced {last}"
    offs = [o["offset"] for o in data]
    assert offs == sorted(set(offs)), "offsets out of order"


def test_long_keys_that_share_a_prefix_are_distinct(mock_kafka, kafka_bridge):
    """Conflation is per key, whole key: two 2 KB keys that differ only in
    their last byte are two keys (each one's first record goes at once), and
    a key's newer record within the interval replaces only its own."""
    mk = mock_kafka({"lk": 1})
    srv = kafka_bridge(mk, "-t", "lk=lkc")
    r = BulkReader(srv.ws(path="/ws?channel=lkc&interval=2000"), "long-keys")
    time.sleep(0.5)
    a, b = "k" * 2047 + "a", "k" * 2047 + "b"
    for key, i in ((a, 1), (b, 1), (a, 2)):
        mk.produce("lk", '{"i":%d}' % i, key=key)
    r.wait_for(lambda objs: len([o for o in objs if is_data(o)]) >= 3, 10, "3 records")
    r.stop()
    got = [(o["key"][-1], o["data"]["i"]) for o in r.data()]
    assert got == [("a", 1), ("b", 1), ("a", 2)], got
