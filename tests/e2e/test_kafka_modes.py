"""Consumer modes and start positions: --group and --offset
(docs/operations.md#fan-out-and-group-mode and #start-position): fan-out vs
group mode; in group mode committed offsets win over --offset, and offsets
are committed periodically and at shutdown; #retention for a fan-out
instance that fell behind."""
import signal
import time

import pytest

from conftest import read_messages, wait_status, ws_subscribe

# The mock cluster answers a JoinGroup of an already stable group only after
# session.timeout.ms - 1 s (librdkafka's default: 45 s); every rebalance
# after the first join waits that long there, while a real broker completes
# it once all members rejoined. Group-mode tests set it to the broker
# minimum (6 s) so rebalances take ~5 s on the mock.
# The mock holds each rejoin of a stable group for session.timeout.ms - 1 s
# and a cooperative hand-over takes several rounds: short sessions keep the
# group tests quick, and the waits below leave room for a loaded machine
# (the suite also runs under ASan).
MOCK_REJOIN = ["-X", "session.timeout.ms=3000", "-X", "heartbeat.interval.ms=500"]


def produce_round(mk, topic, parts, n_per_part, tag):
    futs = []
    for p in range(parts):
        for i in range(n_per_part):
            futs.append(mk.produce(topic, '{"tag":"%s","p":%d,"i":%d}' % (tag, p, i),
                                   key="k%d" % i, partition=p, wait=False))
    return [f.get(20) for f in futs]


def positions(msgs):
    return [(m["topic"], m["partition"], m["offset"]) for m in msgs]


def test_fan_out_two_instances_each_get_everything(mock_kafka, kafka_bridge):
    mk = mock_kafka({"fan": 3})
    a = kafka_bridge(mk, "-t", "fan")
    b = kafka_bridge(mk, "-t", "fan")
    ca, cb = a.ws(), b.ws()
    ws_subscribe(ca, {"type": "subscribe", "channel": "fan"})
    ws_subscribe(cb, {"type": "subscribe", "channel": "fan"})
    mds = produce_round(mk, "fan", 3, 200, "f")
    want = sorted(("fan", md.partition, md.offset) for md in mds)
    for name, c in (("A", ca), ("B", cb)):
        got = read_messages(c, len(want), timeout=15)
        got += read_messages(c, None, timeout=1, quiet=0.3)
        assert sorted(positions(got)) == want, f"instance {name}: {len(got)} of {len(want)}"
        for p in range(3):
            offs = [m["offset"] for m in got if m["partition"] == p]
            assert offs == sorted(offs), f"instance {name} partition {p} out of order"


def collect_union(clients, want, timeout, quiet=0.7):
    """Reads the clients (name -> WS) until together they got every position
    in `want` (bounded), then until quiet; returns name -> messages."""
    got = {name: [] for name in clients}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, c in clients.items():
            got[name] += read_messages(c, None, timeout=0.3, quiet=0.1)
        if set(want) <= {p for ms in got.values() for p in positions(ms)}:
            break
    for name, c in clients.items():
        got[name] += read_messages(c, None, timeout=2, quiet=quiet)
    return got


def wait_log(srv, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.log():
            return True
        time.sleep(0.1)
    return False


def test_group_split_failover_and_rejoin(mock_kafka, kafka_bridge):
    """Group mode end to end. Phase 0: A alone reads every partition.
    Phase 1: B joins; A and B split the partitions, each new record is
    delivered once in total and B does not re-deliver what A delivered and
    committed. Phase 2: B stops (SIGTERM commits); A takes B's partitions back
    from the committed offsets: nothing lost, nothing B delivered re-delivered.
    Phase 3: C joins and shares again, starting at the committed offsets.
    Every check is collected so one run reports each broken step."""
    mk = mock_kafka({"grp": 4})
    group = ["--group", "g-split", *MOCK_REJOIN]
    problems = []

    def check_phase(name, got, want, tag):
        """got: instance -> messages; want: positions of this phase."""
        for who, ms in got.items():
            old = [m for m in ms if m["data"]["tag"] != tag]
            if old:
                problems.append(
                    f"{name}: {who} re-delivered {len(old)} records of earlier phases that were "
                    f"already delivered and committed (committed offsets must win, docs/operations.md#fan-out-and-group-mode); "
                    f"partitions {sorted({m['partition'] for m in old})}, first {[m.pos() for m in old[:3]]}")
        cur = [p for ms in got.values() for p in positions(ms) if p in set(want)]
        if sorted(cur) != sorted(want):
            problems.append(f"{name}: {len(cur)} deliveries of this phase's {len(want)} records "
                            f"({len(set(want) - set(cur))} missing, {len(cur) - len(set(cur))} duplicates)")
        parts = {who: {m["partition"] for m in ms if m["data"]["tag"] == tag} for who, ms in got.items()}
        return parts

    a = kafka_bridge(mk, "-t", "grp", *group)
    ca = a.ws()
    ws_subscribe(ca, {"type": "subscribe", "channel": "grp"})
    mds = produce_round(mk, "grp", 4, 10, "zero")
    g0 = read_messages(ca, 40, timeout=10)
    assert sorted(positions(g0)) == sorted(("grp", md.partition, md.offset) for md in mds)

    b = kafka_bridge(mk, "-t", "grp", *group, ready_timeout=60)
    cb = b.ws()
    ws_subscribe(cb, {"type": "subscribe", "channel": "grp"})
    # B is ready once its first (cooperative: possibly empty) assignment
    # arrived; partitions A gives up wait in Kafka until B gets them.
    mds = produce_round(mk, "grp", 4, 50, "one")
    want = [("grp", md.partition, md.offset) for md in mds]
    parts = check_phase("phase 1 (B joined)", collect_union({"A": ca, "B": cb}, want, timeout=60),
                        want, "one")
    if not (parts["A"] and parts["B"]) or parts["A"] & parts["B"]:
        problems.append(f"phase 1: partitions not split: A {sorted(parts['A'])}, B {sorted(parts['B'])}")

    cb.close()
    b.signal(signal.SIGTERM)
    assert b.wait_exit(15) == 0, f"B exit status {b.proc.returncode}\n{b.log_tail()}"
    mds = produce_round(mk, "grp", 4, 25, "two")
    want = [("grp", md.partition, md.offset) for md in mds]
    check_phase("phase 2 (B left)", collect_union({"A": ca}, want, timeout=60), want, "two")

    c = kafka_bridge(mk, "-t", "grp", *group, ready_timeout=60)
    cc = c.ws()
    ws_subscribe(cc, {"type": "subscribe", "channel": "grp"})
    mds = produce_round(mk, "grp", 4, 25, "three")
    want = [("grp", md.partition, md.offset) for md in mds]
    parts = check_phase("phase 3 (C joined)", collect_union({"A": ca, "C": cc}, want, timeout=60),
                        want, "three")
    if not parts["C"] or parts["A"] & parts["C"]:
        problems.append(f"phase 3: partitions not split: A {sorted(parts['A'])}, C {sorted(parts['C'])}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where", ["latest", "-3"])
def test_group_restart_resumes_after_commit(mock_kafka, kafka_bridge, where):
    """One instance in a group reads, stops (SIGTERM commits), records are
    produced while none runs, a new instance with the same group and
    --offset latest (or -3) starts: it delivers exactly those (committed
    offsets win over --offset) and none of the earlier ones."""
    mk = mock_kafka({"rs": 2})
    args = ["-t", "rs", "--group", "g-restart", "--offset", where, *MOCK_REJOIN]
    a = kafka_bridge(mk, *args)
    ca = a.ws()
    ws_subscribe(ca, {"type": "subscribe", "channel": "rs"})
    produce_round(mk, "rs", 2, 30, "before")
    got = read_messages(ca, 60, timeout=10)
    assert len(got) == 60
    ca.close()
    a.signal(signal.SIGTERM)
    assert a.wait_exit(15) == 0, a.log_tail()
    mds = produce_round(mk, "rs", 2, 20, "down")
    want = sorted(("rs", md.partition, md.offset) for md in mds)
    # The new instance delivers as soon as it is assigned: keep the broker
    # down until its client has subscribed.
    mk.down(1)
    b = kafka_bridge(mk, *args, ready=False)
    cb = b.ws()
    ws_subscribe(cb, {"type": "subscribe", "channel": "rs"})
    mk.up(1)
    assert wait_status(b.port, "/ready", 200, 20) is not None, b.log_tail()
    g = read_messages(cb, len(want), timeout=15)
    g += read_messages(cb, None, timeout=2, quiet=0.7)
    early = [m.obj for m in g if m["data"]["tag"] == "before"]
    assert not early, f"records before the commit point re-delivered: {early[:3]}"
    assert sorted(positions(g)) == want, f"{len(g)} of {len(want)} records produced while down"
    # then live
    produce_round(mk, "rs", 2, 1, "live")
    live = read_messages(cb, 2, timeout=10)
    assert {m["data"]["tag"] for m in live} == {"live"}


def test_group_offset_forms_without_commits(mock_kafka, kafka_bridge):
    """Group mode, a group without committed offsets: --offset -3 starts at
    the last 3 records of each partition and latest at the end, resolved
    before /ready (the broker fails the first offset lookup after 1 s: a
    record produced once /ready says 200 still arrives)."""
    mk = mock_kafka({"gof": 2})
    old = {0: 10, 1: 2}
    for p, n in old.items():
        for i in range(n):
            mk.produce("gof", '{"old":%d}' % i, partition=p)
    mk.down(1)
    srvs, clients = {}, {}
    for name, where in (("tail3", "-3"), ("latest", "latest")):
        srvs[name] = kafka_bridge(mk, "-t", "gof", "--group", f"g-{name}", "--offset", where,
                                  *MOCK_REJOIN, ready=False)
        clients[name] = srvs[name].ws()
        ws_subscribe(clients[name], {"type": "subscribe", "channel": "gof"})
    mk.request_errors(2, 6, 1000, count=1)      # ListOffsets: NOT_LEADER_FOR_PARTITION
    mk.up(1)
    for name, s in srvs.items():
        assert wait_status(s.port, "/ready", 200, 30) is not None, f"{name} not ready\n{s.log_tail()}"
    for p in range(2):
        mk.produce("gof", '{"new":1}', partition=p)
    new = {("gof", p, old[p]) for p in range(2)}
    expect = {
        "tail3": {("gof", p, o) for p in range(2) for o in range(max(0, old[p] - 3), old[p])} | new,
        "latest": new,
    }
    for name, c in clients.items():
        got = read_messages(c, len(expect[name]), timeout=15)
        got += read_messages(c, None, timeout=2, quiet=0.7)
        pos = positions(got)
        assert len(pos) == len(set(pos)) and set(pos) == expect[name], \
            f"--group --offset {name}: got {sorted(pos)}, expected {sorted(expect[name])}\n{srvs[name].log_tail()}"


def test_offset_forms(mock_kafka, kafka_bridge):
    """--offset earliest / latest / -N / @MS, each instance started after
    records exist: earliest delivers all, latest none of them, -3 exactly the
    last 3 per partition (all 2 where a partition has 2), @MS starts and
    delivers new records.
    Not verifiable here: that @MS starts at the first record at or after MS.
    The mock answers every offsets-by-timestamp lookup with -1 (= the end,
    docs/operations.md#start-position), so on it @MS behaves like latest."""
    mk = mock_kafka({"off": 3})
    old = {0: 10, 1: 10, 2: 2}
    for p, n in old.items():
        for i in range(n):
            mk.produce("off", '{"old":%d}' % i, partition=p, timestamp_ms=1600000000000 + i * 1000)
    ms = 1600000000000 + 5000
    forms = {"earliest": "earliest", "latest": "latest", "tail3": "-3", "ts": f"@{ms}"}
    # Records are delivered as soon as partitions are assigned, which on the
    # mock is a few ms after start-up: keep the broker down until every
    # client has subscribed.
    mk.down(1)
    srvs, clients = {}, {}
    for name, where in forms.items():
        srvs[name] = kafka_bridge(mk, "-t", "off", "--offset", where, ready=False)
        clients[name] = srvs[name].ws()
        ws_subscribe(clients[name], {"type": "subscribe", "channel": "off"})
    mk.up(1)
    for name, s in srvs.items():
        assert wait_status(s.port, "/ready", 200, 20) is not None, f"{name} not ready\n{s.log_tail()}"
    time.sleep(0.5)
    for p in range(3):
        mk.produce("off", '{"new":1}', partition=p)
    want_new = {("off", p, old[p]) for p in range(3)}
    expect = {
        "earliest": {("off", p, o) for p in range(3) for o in range(old[p])} | want_new,
        "latest": want_new,
        "tail3": {("off", p, o) for p in range(3) for o in range(max(0, old[p] - 3), old[p])} | want_new,
        "ts": want_new,
    }
    errors = []
    for name, c in clients.items():
        got = read_messages(c, len(expect[name]), timeout=10, quiet=None) \
            if name != "ts" else read_messages(c, None, timeout=10, quiet=1.5)
        got += read_messages(c, None, timeout=1, quiet=0.3)
        pos = positions(got)
        if len(pos) != len(set(pos)) or set(pos) != expect[name]:
            errors.append(f"--offset {forms[name]}: got {sorted(pos)}, expected {sorted(expect[name])}")
        for p in range(3):
            offs = [o for (_, pp, o) in pos if pp == p]
            if offs != sorted(offs):
                errors.append(f"--offset {forms[name]}: partition {p} out of order {offs}")
    assert not errors, "\n".join(errors)


@pytest.mark.one_process("stops the consuming process with SIGSTOP: with workers the master, which consumes nothing")
def test_fan_out_behind_retention_continues_from_oldest_record(mock_kafka, kafka_bridge):
    """A fan-out instance whose position was deleted by retention (the mock
    keeps ~5 MB per partition) goes on from the oldest record still there,
    not from the end, and says in its log that records were skipped. kbridge
    is stopped (SIGSTOP) while 7 MB are produced, so its next fetch asks for
    an offset the broker no longer has."""
    from conftest import BulkReader, note, wait_channel_seq
    mk = mock_kafka({"ret": 1})
    srv = kafka_bridge(mk, "-t", "ret", "--client-buffer", "64M", "--client-queue", "100000")
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "ret"})
    reader = BulkReader(c, "ret")
    time.sleep(0.5)
    for i in range(10):
        mk.produce("ret", '{"i":%d}' % i)
    wait_channel_seq(srv.port, "ret", 10)
    srv.signal(signal.SIGSTOP)
    try:
        mk.kcat_produce("ret", b"".join(b'{"i":%d,"pad":"%s"}\n' % (i, b"z" * 10000) for i in range(10, 710)))
    finally:
        srv.signal(signal.SIGCONT)
    mk.produce("ret", '{"i":710}')
    reader.wait_for(lambda objs: any(o.get("offset") == 710 for o in objs if "offset" in o), 30,
                    "record at offset 710")
    reader.stop()
    offs = [o["offset"] for o in reader.data()]
    assert offs[:10] == list(range(10)), offs[:20]
    assert offs == sorted(set(offs)), "duplicates or reordering"
    # Where the skip happened, the rest is contiguous up to the end: the
    # oldest retained record onwards (5 MB is about 500 records of 10 KB).
    jump = max(k for k in range(1, len(offs)) if offs[k] != offs[k - 1] + 1)
    assert offs[jump:] == list(range(offs[jump], 711)), offs[jump:jump + 5]
    assert 711 - offs[jump] >= 400, f"only {711 - offs[jump]} records after the skip: {offs[jump - 2:jump + 3]}"
    log = srv.log()
    resets = [l for l in log.splitlines() if "kafka offset reset: records were skipped" in l]
    assert resets and "ret [0]" in resets[0] and "offset 10" in resets[0], srv.log_tail()
    note(f"retention: {resets[0]}")


@pytest.mark.one_process("counts the one log line a process writes")
def test_latest_is_resolved_before_ready(mock_kafka, kafka_bridge):
    """--offset latest is resolved to a concrete offset before /ready turns
    200, so a record produced once /ready says 200 is delivered. The broker
    answers the first two offset lookups (ListOffsets, API key 2) with
    NOT_LEADER after 1 s: kbridge stays not ready, logs one line and asks
    again. (Had the end been left to librdkafka after the assignment, the
    record produced meanwhile would be skipped.)"""
    mk = mock_kafka({"rdy": 2})
    mk.produce("rdy", '{"old":1}', partition=0)
    mk.produce("rdy", '{"old":1}', partition=1)
    mk.request_errors(2, 6, 1000, count=2)      # NOT_LEADER_FOR_PARTITION
    srv = kafka_bridge(mk, "-t", "rdy", ready=False)
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "rdy"})
    assert wait_status(srv.port, "/ready", 200, 30) is not None, srv.log_tail()
    for p in (0, 1):
        mk.produce("rdy", '{"new":1}', partition=p)
    got = read_messages(c, 2, timeout=10)
    got += read_messages(c, None, timeout=2, quiet=1)
    assert sorted((m["partition"], m["offset"], m["data"]) for m in got) == \
        [(0, 1, {"new": 1}), (1, 1, {"new": 1})], got
    log = srv.log()
    fails = [l for l in log.splitlines() if "offset lookup failed" in l]
    assert len(fails) == 1 and "not ready until it succeeds" in fails[0], srv.log_tail()
