"""Resume from Kafka positions: docs/protocol.md#resume (also `resume=` on
the upgrade, #query-parameters) and #resume_gap.

A client that reconnects names the last position it saw of each partition
(`"resume":{"topic:partition":offset}` on subscribe, or
`resume=TOPIC:PARTITION:OFFSET,...` with `channel=` on the upgrade). kbridge
delivers every record after those offsets, from its in-memory history
(`--history BYTES`) or from Kafka itself, then continues live with no gap and
no duplicate; against any instance, also after a restart. When Kafka no longer
has the data: `{"type":"error","code":"RESUME_GAP",...}` naming the first
offsets available. Replayed records carry the `seq` this instance gave them
when it routed them; a record this instance never routed has no `seq`."""
import json
import random
import re
import signal
import time

import pytest

from conftest import BulkReader, PacedProducer, is_data, read_messages, wait_channel_seq, ws_subscribe


def offsets_by_partition(msgs, topic):
    out = {}
    for m in msgs:
        assert m["topic"] == topic, m
        out.setdefault(m["partition"], []).append(m["offset"])
    return out


def resume_path(channel, last):
    spec = ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(last.items()))
    return f"/ws?channel={channel}&resume={spec}"


def resume_obj(last):
    return {f"{t}:{p}": o for (t, p), o in sorted(last.items())}


def kafka_offsets(mk, topic, partitions):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=mk.bootstrap, request_timeout_ms=10000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        begin = c.beginning_offsets(tps)
        end = c.end_offsets(tps)
        return {tp.partition: begin[tp] for tp in tps}, {tp.partition: end[tp] for tp in tps}
    finally:
        c.close()


def ping_through(ws, ident="alive", timeout=10.0):
    """The connection still answers: a ping's pong arrives (data skipped)."""
    ws.send_json({"type": "ping", "id": ident})
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        if m.get("type") == "pong" and m.get("id") == ident:
            return


@pytest.mark.one_process("compares seq with the instance's: seq is per process")
def test_resume_after_random_disconnects_same_other_and_restarted_instance(mock_kafka, kafka_bridge):
    """~10,000 records/s into 3 partitions for 5 s. One logical client
    disconnects abruptly (TCP reset, no close frame) at random points and
    reconnects with the last offsets it saw, alternately to instance A, to
    a second instance B, and to A restarted; half the reconnects use the
    subscribe message, half the upgrade's resume=. Across all its
    connections it must get every record exactly once, in offset order per
    partition."""
    mk = mock_kafka({"rs": 3})
    big = ["--client-queue", "1000000", "--client-buffer", "512MiB"]
    a = kafka_bridge(mk, "-t", "rs=rsc", *big)
    b = kafka_bridge(mk, "-t", "rs=rsc", *big)
    obs = {}
    for name, srv in (("A", a), ("B", b)):
        w = srv.ws()
        ws_subscribe(w, {"type": "subscribe", "channel": "rsc"})
        obs[name] = BulkReader(w, f"observer-{name}")
    time.sleep(0.5)                  # --offset latest: let the assignment settle
    rnd = random.Random(1234)
    servers = {"A": a, "B": b}
    last = {}                        # (topic, partition) -> last offset seen
    segments = []                    # (instance name, [data messages])

    first = a.ws()
    ws_subscribe(first, {"type": "subscribe", "channel": "rsc", "id": "first"}, ident="first")
    reader = BulkReader(first, "client-A-0")
    rate, seconds = 10000, 5.0
    prod = PacedProducer(mk, "rs", rate, seconds, fmt_key=lambda i: "k%d" % (i % 50),
                         fmt_value=lambda i: '{"i":%d,"pad":"%s"}' % (i, "x" * (i % 40)))
    t0 = time.monotonic()
    # The first connection stays until it saw every partition (a partition
    # never seen has no position to resume from).
    reader.wait_for(lambda objs: len({o["partition"] for o in objs if is_data(o)}) == 3, 10,
                    "records of all 3 partitions")
    time.sleep(rnd.uniform(0.05, 0.3))

    def end_segment(name, reader):
        objs = reader.abort()
        errs = [o for o in objs if not is_data(o) and o.get("type") == "error"]
        assert not errs, f"{name}: errors {errs!r}"
        data = [o for o in objs if is_data(o)]
        segments.append((name, data))
        for m in data:
            last[(m["topic"], m["partition"])] = m["offset"]

    end_segment("A", reader)
    plan = ["A", "B", "A", "B", "restart", "A", "B", "A", "B", "A"]
    restart_info = {}
    k = 0
    while True:
        step = plan[k % len(plan)] if k < len(plan) else rnd.choice(["A", "B"])
        k += 1
        if step == "restart":
            obs["A"].abort()
            a.signal(signal.SIGTERM)
            assert a.wait_exit(15) == 0, "kbridge A did not exit 0 on SIGTERM"
            restart_info["count_at_launch"] = prod.count
            a = kafka_bridge(mk, "-t", "rs=rsc", *big)
            servers["A"] = a
            w = a.ws()
            ws_subscribe(w, {"type": "subscribe", "channel": "rsc"})
            obs["A2"] = BulkReader(w, "observer-A2")
            restart_info["restarted"] = True
            continue
        name = step if not (step == "A" and restart_info.get("restarted")) else "A2"
        srv = servers[step]
        use_upgrade = rnd.random() < 0.5
        if use_upgrade:
            w = srv.ws(path=resume_path("rsc", last))
        else:
            w = srv.ws()
            w.send_json({"type": "subscribe", "channel": "rsc", "resume": resume_obj(last), "id": k})
        reader = BulkReader(w, f"client-{name}-{k}")
        done = prod.done.is_set()
        if done:
            # Production over: this connection reads until it has all.
            total = prod.wait()
            got = sum(len(d) for _, d in segments)
            reader.wait_for(lambda objs: got + sum(1 for o in objs if is_data(o)) >= total, 60,
                            f"the remaining {total - got} records")
            time.sleep(0.5)              # duplicates after the end would show now
            end_segment(name, reader)
            break
        # Sometimes a very short connection (maybe before the ack or the
        # first replayed record), mostly some hundred milliseconds.
        time.sleep(rnd.choice([0.0, 0.02, rnd.uniform(0.1, 0.7), rnd.uniform(0.1, 0.7)]))
        end_segment(name, reader)
        if not use_upgrade:
            acks = [o for o in reader.controls() if o.get("type") == "ack"]
            assert all(o.get("id") == k for o in acks), acks
        assert time.monotonic() - t0 < 90, "resume test ran out of time"

    total = prod.count
    assert restart_info.get("restarted"), "production ended before the restart step"
    # Every record exactly once, in offset order per partition.
    per_part = {}
    seen_i = []
    for name, data in segments:
        for m in data:
            per_part.setdefault(m["partition"], []).append(m["offset"])
            seen_i.append(m["data"]["i"])
    problems = []
    for p in range(3):
        offs = per_part.get(p, [])
        if offs != list(range(len(offs))):
            dups = len(offs) - len(set(offs))
            first_bad = next((j for j, o in enumerate(offs) if o != j), None)
            problems.append(f"partition {p}: {len(offs)} records, {dups} duplicates, first break at #{first_bad}: "
                            f"{offs[max(0, (first_bad or 0) - 3):(first_bad or 0) + 3]}")
    if sorted(seen_i) != list(range(total)):
        missing = sorted(set(range(total)) - set(seen_i))
        problems.append(f"{len(seen_i)} records for {total} produced; missing {len(missing)}: {missing[:10]}")
    seg_info = [(n, len(d)) for n, d in segments]
    assert not problems, "\n".join(problems) + f"\nsegments: {seg_info}"

    # Reconnection boundaries: each connection starts right after the last
    # offset of the previous one (checked above globally; here per
    # connection for a clearer message) and is itself in order.
    prev = {}
    for name, data in segments:
        firsts = {}
        for m in data:
            firsts.setdefault(m["partition"], m["offset"])
        for p, o in firsts.items():
            assert o == prev.get(p, -1) + 1, f"connection to {name}: partition {p} started at {o}, " \
                                              f"last seen before was {prev.get(p)}"
        for m in data:
            prev[m["partition"]] = m["offset"]

    # seq: consistent with what each instance's observer saw live; a record
    # instance A2 never routed (produced before it started) has no seq.
    for o in obs.values():
        o.stop()
    live_seq = {n: {(m["partition"], m["offset"]): m["seq"] for m in r.data()} for n, r in obs.items()}
    limit = restart_info["count_at_launch"] - 3000      # surely in Kafka before A2 started
    for name, data in segments:
        for m in data:
            pos = (m["partition"], m["offset"])
            if "seq" in m and pos in live_seq.get(name, {}):
                assert m["seq"] == live_seq[name][pos], \
                    f"{name}: record {pos} has seq {m['seq']}, the instance routed it as {live_seq[name][pos]}"
            if name == "A2" and m["data"]["i"] < limit:
                assert "seq" not in m, f"A2 never routed {pos} (produced before it started) but it has " \
                                       f"seq {m['seq']}"
    assert any(n == "A2" for n, _ in segments) and any(n == "B" for n, _ in segments)
    print(f"{total} records over {len(segments)} connections: "
          + ", ".join(f"{n}:{len(d)}({sum(1 for m in d if 'seq' not in m)} without seq)" for n, d in segments))


def test_resume_from_history_and_beyond_it_from_kafka(mock_kafka, kafka_bridge):
    """--history 64K holds only the newest ~100 of 3000 records: resuming
    far back is served from Kafka, resuming near the end from the history
    (with the seq the instance gave the records); both then continue live
    with no gap and no duplicate. A fresh instance serves the same resume
    from Kafka without seq, and numbers its own first routed record 1."""
    mk = mock_kafka({"deep": 1})
    srv = kafka_bridge(mk, "-t", "deep=deepc", "--history", "64K")
    o = srv.ws()
    ws_subscribe(o, {"type": "subscribe", "channel": "deepc"})
    observer = BulkReader(o, "observer")
    time.sleep(0.5)
    N = 3000
    mk.kcat_produce("deep", b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"p" * 200) for i in range(N)),
                    key_delim=None)
    observer.wait_for(lambda objs: sum(1 for x in objs if is_data(x)) >= N, 30, f"{N} records")
    live = {m["offset"]: m for m in observer.data()}
    assert sorted(live) == list(range(N)) and all(live[i]["data"]["n"] == i for i in range(N))
    wait_channel_seq(srv.port, "deepc", N)   # with workers: every worker's history has them

    far = srv.ws()
    far.send_json({"type": "subscribe", "channel": "deepc", "resume": {"deep:0": 9}, "id": "far"})
    far_r = BulkReader(far, "far")
    near = srv.ws()
    near.send_json({"type": "subscribe", "channel": "deepc", "resume": {"deep:0": N - 41}, "id": "near"})
    near_r = BulkReader(near, "near")
    up = srv.ws(path=f"/ws?channel=deepc&resume=deep:0:{N - 21}")
    up_r = BulkReader(up, "upgrade")
    at_end = srv.ws()
    at_end.send_json({"type": "subscribe", "channel": "deepc", "resume": {"deep:0": N - 1}, "id": "end"})
    end_r = BulkReader(at_end, "at-end")

    far_r.wait_for(lambda objs: any(is_data(x) and x["offset"] == N - 1 for x in objs), 30, "offset N-1")
    near_r.wait_for(lambda objs: any(is_data(x) and x["offset"] == N - 1 for x in objs), 15, "offset N-1")
    up_r.wait_for(lambda objs: any(is_data(x) and x["offset"] == N - 1 for x in objs), 15, "offset N-1")
    end_r.wait_for(lambda objs: any(x.get("type") == "ack" for x in objs), 5, "ack")
    time.sleep(0.3)
    # Then live records.
    mk.kcat_produce("deep", b"".join(b'{"n":%d}\n' % i for i in range(N, N + 100)))
    for r in (far_r, near_r, up_r, end_r, observer):
        r.wait_for(lambda objs: any(is_data(x) and x["offset"] == N + 99 for x in objs), 15, "offset N+99")
    time.sleep(0.3)
    for r in (far_r, near_r, up_r, end_r, observer):
        r.stop()
    live = {m["offset"]: m for m in observer.data()}

    for r, after in ((far_r, 9), (near_r, N - 41), (up_r, N - 21), (end_r, N - 1)):
        objs = r.objs()
        errs = [x for x in objs if x.get("type") == "error"]
        assert not errs, f"{r.name}: {errs!r}"
        acks = [x for x in objs if x.get("type") == "ack"]
        if r is not up_r:
            assert len(acks) == 1 and acks[0].get("id") == r.name.replace("at-", ""), acks
        data = [x for x in objs if is_data(x)]
        offs = [x["offset"] for x in data]
        want = list(range(after + 1, N + 100))
        if offs != want:
            raise AssertionError(f"{r.name} (resume after {after}): got {len(offs)} records "
                                 f"{offs[:3]}..{offs[-3:]}, expected {after + 1}..{N + 99}; "
                                 f"duplicates {len(offs) - len(set(offs))}, "
                                 f"missing {sorted(set(want) - set(offs))[:10]}")
        for x in data:
            assert x["data"] == live[x["offset"]]["data"], x
            assert x["channel"] == "deepc" and x["topic"] == "deep" and x["partition"] == 0, x
            if "seq" in x:
                assert x["seq"] == live[x["offset"]]["seq"], \
                    f"{r.name}: offset {x['offset']} replayed with seq {x['seq']}, routed as {live[x['offset']]['seq']}"
    # The newest records are in the history: replayed with their seq.
    for r in (near_r, up_r):
        noseq = [x["offset"] for x in r.data() if "seq" not in x and x["offset"] >= N - 20]
        assert not noseq, f"{r.name}: records from the history without their seq: {noseq[:10]}"
    # Live records always carry seq.
    for r in (far_r, near_r, up_r, end_r):
        noseq = [x["offset"] for x in r.data() if "seq" not in x and x["offset"] >= N]
        assert not noseq, f"{r.name}: live records without seq: {noseq[:10]}"

    # A fresh instance never routed any of these: replay from Kafka, no seq;
    # then its first live record is its seq 1.
    fresh = kafka_bridge(mk, "-t", "deep=deepc", "--history", "64K")
    time.sleep(0.5)
    f = fresh.ws(path="/ws?channel=deepc&resume=deep:0:2499")
    fr = BulkReader(f, "fresh")
    fr.wait_for(lambda objs: any(is_data(x) and x["offset"] == N + 99 for x in objs), 20, "offset N+99")
    mk.produce("deep", '{"n":"fresh"}')
    fr.wait_for(lambda objs: any(is_data(x) and x["offset"] == N + 100 for x in objs), 10, "offset N+100")
    time.sleep(0.3)
    fr.stop()
    data = fr.data()
    assert [x["offset"] for x in data] == list(range(2500, N + 101)), \
        f"fresh instance: {len(data)} records {[x['offset'] for x in data][:3]}..{[x['offset'] for x in data][-3:]}"
    withseq = [(x["offset"], x["seq"]) for x in data[:-1] if "seq" in x]
    assert not withseq, f"records the fresh instance never routed carry seq: {withseq[:5]}"
    assert data[-1].get("seq") == 1, f"first record routed by the fresh instance: {data[-1]!r}"


def test_resume_gap_names_first_available_offsets(mock_kafka, kafka_bridge):
    """The mock broker keeps about 5 MB per partition: 700 records of 10 KB
    push the first ones out. Resuming from before the log start gets
    RESUME_GAP naming the first offset available; resuming from just
    before it replays everything from Kafka."""
    mk = mock_kafka({"gap": 2})
    srv = kafka_bridge(mk, "-t", "gap=gapc", "--history", "64K",
                       "--client-queue", "100000", "--client-buffer", "64MiB")
    time.sleep(0.5)

    def fill(lo, hi):
        mk.kcat_produce("gap", b"".join(b'{"g":%d,"pad":"%s"}\n' % (i, b"z" * 10000) for i in range(lo, hi)),
                        partition=0)
    # In two steps, so the mock deletes only records kbridge has routed (a
    # kbridge slowed by a loaded machine could fall behind retention).
    fill(0, 400)
    wait_channel_seq(srv.port, "gapc", 400, timeout=30)
    fill(400, 700)
    for i in range(5):
        mk.produce("gap", '{"small":%d}' % i, partition=1)
    wait_channel_seq(srv.port, "gapc", 705, timeout=30)
    begin, end = kafka_offsets(mk, "gap", 2)
    assert begin[0] > 10 and end[0] == 700 and begin[1] == 0 and end[1] == 5, (begin, end)
    first = begin[0]

    def check_gap(err, ident):
        assert err.get("type") == "error" and err.get("code") == "RESUME_GAP", err
        if ident is not None:
            assert err.get("id") == ident, err
        text = json.dumps(err)
        assert "gap:0" in text and re.search(r"\b%d\b" % first, text), \
            f"RESUME_GAP does not name gap:0's first available offset {first}: {err!r}"

    c = srv.ws()
    c.send_json({"type": "subscribe", "channel": "gapc", "resume": {"gap:0": 0, "gap:1": 4}, "id": "g1"})
    msgs = []
    deadline = time.monotonic() + 10
    while not any(m.get("code") == "RESUME_GAP" for m in msgs) and time.monotonic() < deadline:
        try:
            msgs.append(c.recv_json(max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
    gaps = [m for m in msgs if m.get("code") == "RESUME_GAP"]
    assert gaps, f"no RESUME_GAP for a resume before the log start ({first}): {msgs[:5]!r}"
    check_gap(gaps[0], "g1")
    ping_through(c)

    # The same on the upgrade (no id to carry).
    u = srv.ws(path=f"/ws?channel=gapc&resume=gap:0:{first - 5}")
    msgs = []
    deadline = time.monotonic() + 10
    while not any(m.get("code") == "RESUME_GAP" for m in msgs) and time.monotonic() < deadline:
        msgs.append(u.recv_json(max(0.01, deadline - time.monotonic())))
    check_gap([m for m in msgs if m.get("code") == "RESUME_GAP"][0], None)

    # Resuming right before the first available offset is no gap: every
    # retained record comes back (from Kafka: far beyond --history 64K).
    r = srv.ws()
    r.send_json({"type": "subscribe", "channel": "gapc", "resume": {"gap:0": first - 1}, "id": "ok"})
    rr = BulkReader(r, "from-log-start")
    rr.wait_for(lambda objs: any(is_data(x) and x["offset"] == 699 for x in objs), 30, "offset 699")
    time.sleep(0.3)
    rr.stop()
    errs = [x for x in rr.controls() if x.get("type") == "error"]
    assert not errs, errs
    offs = [x["offset"] for x in rr.data() if x["partition"] == 0]
    assert offs == list(range(first, 700)), f"got {len(offs)} records {offs[:3]}..{offs[-3:]}"
    assert all(x["data"]["g"] == x["offset"] for x in rr.data() if x["partition"] == 0)


def test_resume_bad_values_are_bad_request(mock_kafka, kafka_bridge):
    mk = mock_kafka({"bad": 1})
    srv = kafka_bridge(mk, "-t", "bad=badc")
    c = srv.ws()
    for i, resume in enumerate((5, "bad:0:1", [1], {"bad:0": "x"}, {"bad:0": 1.5})):
        c.send_json({"type": "subscribe", "channel": "badc", "resume": resume, "id": i})
        m = c.recv_json(5)
        assert m.get("type") == "error" and m.get("code") == "BAD_REQUEST" and m.get("id") == i, \
            f"resume {resume!r} -> {m!r}"
    c.ping_ok()
    # A well-formed resume is acknowledged.
    mk.produce("bad", '{"x":1}')
    ws_subscribe(c, {"type": "subscribe", "channel": "badc", "resume": {"bad:0": 0}}, ident="okay")


def test_resume_delivers_only_what_matches_the_subscription(mock_kafka, kafka_bridge):
    """docs/protocol.md#resume: of the records after the offsets, kbridge
    replays those the subscription matches: a key filter applies to replayed
    records, from the history and from Kafka (a fresh instance) alike."""
    mk = mock_kafka({"rf": 1})
    srv = kafka_bridge(mk, "-t", "rf=rfc")
    time.sleep(0.5)
    mk.kcat_produce("rf", b"".join(b'k%d\t{"i":%d}\n' % (i % 4, i) for i in range(200)), key_delim="\t")
    wait_channel_seq(srv.port, "rfc", 200)
    fresh = kafka_bridge(mk, "-t", "rf=rfc")
    for name, s in (("history", srv), ("kafka", fresh)):
        c = s.ws()
        c.send_json({"type": "subscribe", "channel": "rfc", "key": "k1", "resume": {"rf:0": 49}, "id": name})
        r = BulkReader(c, name)
        r.wait_for(lambda objs: any(is_data(o) and o["offset"] == 197 for o in objs), 15, "offset 197")
        time.sleep(0.3)
        r.stop()
        offs = [o["offset"] for o in r.data()]
        assert offs == [o for o in range(50, 200) if o % 4 == 1], f"{name}: {offs}"
        assert all(o["key"] == "k1" for o in r.data())


def test_replayed_records_carry_their_headers(mock_kafka, kafka_bridge):
    """With --headers, a replayed record is the same envelope as the live
    one, headers included, whether it comes from the history (the newest
    records) or from Kafka (older than --history 16K holds)."""
    mk = mock_kafka({"hd": 1})
    srv = kafka_bridge(mk, "-t", "hd=hdc", "--headers", "--history", "16K")
    o = srv.ws()
    ws_subscribe(o, {"type": "subscribe", "channel": "hdc"})
    observer = BulkReader(o, "observer")
    time.sleep(0.5)
    N = 300
    futs = [mk.produce("hd", '{"n":%d,"pad":"%s"}' % (i, "p" * 100), key="k%d" % (i % 3), wait=False,
                       headers=[("n", str(i)), ("bin", b"\xff\x00"), ("empty", b""), ("n", "again")])
            for i in range(N)]
    for f in futs:
        f.get(20)
    observer.wait_for(lambda objs: sum(1 for x in objs if is_data(x)) >= N, 30, f"{N} records")
    live = {m["offset"]: m for m in observer.data()}
    wait_channel_seq(srv.port, "hdc", N)     # with workers: every worker's history has them
    assert live[7]["headers"] == [["n", "7"], ["bin", {"base64": "/wA="}], ["empty", ""], ["n", "again"]], live[7]

    readers = []
    for name, after in (("kafka", 9), ("history", N - 21)):
        c = srv.ws()
        c.send_json({"type": "subscribe", "channel": "hdc", "resume": {"hd:0": after}, "id": name})
        readers.append((BulkReader(c, name), after))
    for r, after in readers:
        r.wait_for(lambda objs: any(is_data(x) and x["offset"] == N - 1 for x in objs), 20, "offset N-1")
        r.stop()
        data = r.data()
        assert [x["offset"] for x in data] == list(range(after + 1, N)), r.name
        for x in data:
            want = dict(live[x["offset"]])
            if "seq" not in x:              # replayed from Kafka: no seq (module docstring)
                want.pop("seq")
            assert x == want, f"{r.name}: replayed {x!r}\nlive {live[x['offset']]!r}"
    history = [x for x in readers[1][0].data() if "seq" in x]
    assert history, "nothing came from the history"


def test_subscribe_ack_positions_cover_silent_partitions(mock_kafka, kafka_bridge):
    """The subscribe ack names, per partition feeding the channel, the last
    offset routed before the subscription ("positions"; start offset - 1
    where nothing was routed yet), except partitions the request resumes.
    A client that keeps them resumes also a partition that sent it nothing
    before it went away."""
    mk = mock_kafka({"pp": 2, "other": 1})
    for i in range(3):
        mk.produce("pp", '{"old":%d}' % i, partition=0)
    srv = kafka_bridge(mk, "-t", "pp=ppc", "-t", "other=otherc")      # --offset latest
    c = srv.ws()
    ack = ws_subscribe(c, {"type": "subscribe", "channel": "ppc", "id": "a"})
    assert ack.get("positions") == {"pp:0": 2, "pp:1": -1}, ack
    saved = dict(ack["positions"])          # what a client keeps: the ack's, then each record's
    mk.produce("pp", '{"live":0}', partition=0)
    for m in read_messages(c, 1):
        saved[f"{m['topic']}:{m['partition']}"] = m["offset"]
    assert saved == {"pp:0": 3, "pp:1": -1}
    # With --workers the next client may be on a worker that has not routed
    # the record yet: /stats shows the slowest worker's seq.
    wait_channel_seq(srv.port, "ppc", 1)
    ack = ws_subscribe(srv.ws(), {"type": "subscribe", "channel": "ppc", "id": "b"})
    assert ack.get("positions") == {"pp:0": 3, "pp:1": -1}, ack
    # Partitions named in "resume" keep the client's own position.
    r = srv.ws()
    r.send_json({"type": "subscribe", "channel": "ppc", "resume": {"pp:0": 2}, "id": "c"})
    got = BulkReader(r, "resumer")
    got.wait_for(lambda objs: any(o.get("type") == "ack" for o in objs), 5, "ack")
    assert next(o for o in got.objs() if o.get("type") == "ack").get("positions") == {"pp:1": -1}
    got.stop()

    # The first client goes away having seen nothing of partition 1; what
    # arrives there meanwhile comes back on resume with the ack's positions.
    c.close()
    mk.produce("pp", '{"away":1}', partition=1)
    mk.produce("pp", '{"away":0}', partition=0)
    wait_channel_seq(srv.port, "ppc", 3)
    back = srv.ws()
    back.send_json({"type": "subscribe", "channel": "ppc", "resume": saved, "id": "back"})
    br = BulkReader(back, "back")
    br.wait_for(lambda objs: len([o for o in objs if is_data(o)]) >= 2, 10, "2 records")
    time.sleep(0.3)
    br.stop()
    assert sorted((o["partition"], o["offset"]) for o in br.data()) == [(0, 4), (1, 0)], br.objs()
