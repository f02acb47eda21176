"""Last-value cache and snapshots (docs/protocol.md#snapshots): `refresh` ->
`snapshot`, and `snapshot=1` on the upgrade (`type=tui|web` select the
state dialect, whose snapshots are tested in test_state_dialect.py):

- `seq` of a snapshot is the channel's last routed `seq` when it was taken;
  `data` maps each key to its newest `data` (the rules of
  docs/protocol.md#data-messages); null keys are not cached; a tombstone
  removes the key; non-UTF-8 keys appear base64-encoded and are listed in
  `base64_keys`; binary values are base64 strings whose keys are listed in
  `base64_values`.
- `refresh` without a channel: one snapshot per subscribed channel. A snapshot
  comes unasked only with `"snapshot":true` or `snapshot=1`.
- Consistency with the stream: after a snapshot with seq S, a client gets
  exactly the records with seq > S (nothing at or before S repeated, nothing
  after it missing), so snapshot + later updates = the newest value per key.
- `--snapshot-keys N` bounds the keys per channel; beyond it the least
  recently updated key is evicted.
Every reply carries the request's `id`."""
import base64
import itertools
import json
import random
import re
import threading
import time

import pytest

from conftest import BulkReader, is_data, wait_channel_seq, ws_subscribe
from wsutil import recv_until


def b64(b):
    return base64.b64encode(b).decode("ascii")


def snapshot_of(ws, channel, ident, timeout=5.0):
    ws.send_json({"type": "refresh", "channel": channel, "id": ident})
    snap, seen = recv_until(ws, lambda o: o.get("type") in ("snapshot", "error") and not is_data(o),
                            timeout, f"snapshot of {channel}")
    assert snap.get("type") == "snapshot", f"refresh {channel!r} -> {snap!r}"
    check_snapshot_shape(snap, channel)
    assert snap.get("id") == ident, f"snapshot without the request's id {ident!r}: {snap!r}"
    return snap


def check_snapshot_shape(snap, channel):
    assert snap.get("type") == "snapshot" and snap.get("channel") == channel, snap
    assert isinstance(snap.get("seq"), int) and not isinstance(snap.get("seq"), bool), snap
    assert isinstance(snap.get("data"), dict), snap
    for f in ("base64_keys", "base64_values"):
        if f in snap:
            assert isinstance(snap[f], list), snap


def listed(snap, field):
    return sorted(snap.get(field) or [])


def test_refresh_last_value_per_key_with_data_rules(mock_kafka, kafka_bridge):
    mk = mock_kafka({"snap": 1, "snap2": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "snap=snapc:snapt", "-t", "snap2=snapc2")
    records = [
        ("a", b'{"v":1}'),
        ("b", b'{"x":[1,2,{"y":null}],"s":"\\u00e9 \\"q\\""}'),
        ("a", b'{"v":2}'),                      # newest value of a
        ("num", b"42"),
        ("text", b"hello world"),               # UTF-8, not JSON: a JSON string
        ("bin", b"\x00\x01\xfe\xff"),            # binary: base64 string, listed
        ("empty", b""),                          # empty value: ""
        ("jnull", b"null"),                      # JSON null is a value, not a tombstone
        (None, b'{"nokey":true}'),               # null key: not cached
        ("gone", b'{"g":1}'),
        ("gone", None),                          # tombstone: removes the key
        (b"\xff\xfekey", b'{"bk":1}'),           # non-UTF-8 key: base64, listed
        ("é€ ключ", b'"unicode key"'),
        ("bin2", b"\x80"),
        ("bin2", b'{"now":"json"}'),             # no longer binary: not listed
    ]
    for k, v in records:
        mk.produce("snap", v, key=k)
    mk.produce("snap2", b'{"other":1}', key="a")
    wait_channel_seq(srv.port, "snapc", len(records))
    wait_channel_seq(srv.port, "snapc2", 1)

    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channels": ["snapc", "snapc2"]}, ident="sub")
    snap = snapshot_of(c, "snapc", "r1")
    assert snap["seq"] == len(records), f"snapshot seq {snap['seq']}, channel routed {len(records)}"
    want = {
        "a": {"v": 2},
        "b": {"x": [1, 2, {"y": None}], "s": "é \"q\""},
        "num": 42,
        "text": "hello world",
        "bin": b64(b"\x00\x01\xfe\xff"),
        "empty": "",
        "jnull": None,
        b64(b"\xff\xfekey"): {"bk": 1},
        "é€ ключ": "unicode key",
        "bin2": {"now": "json"},
    }
    assert snap["data"] == want, f"snapshot data\n got {snap['data']!r}\nwant {want!r}"
    assert listed(snap, "base64_keys") == [b64(b"\xff\xfekey")], snap
    assert listed(snap, "base64_values") == ["bin"], snap

    # The other channel has its own cache and its own seq.
    snap2 = snapshot_of(c, "snapc2", "r2")
    assert snap2["seq"] == 1 and snap2["data"] == {"a": {"other": 1}}, snap2
    assert not snap2.get("base64_keys") and not snap2.get("base64_values"), snap2

    # refresh without a channel: one snapshot per subscribed channel, each
    # with the request's id.
    c.send_json({"type": "refresh", "id": 77})
    got = {}
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        m = c.recv_json(max(0.01, deadline - time.monotonic()))
        assert m.get("type") == "snapshot", f"refresh without channel -> {m!r}"
        assert m.get("id") == 77, m
        assert m["channel"] not in got, f"two snapshots of {m['channel']}"
        got[m["channel"]] = m
    assert set(got) == {"snapc", "snapc2"}, got
    assert got["snapc"]["data"] == want and got["snapc"]["seq"] == len(records)
    assert got["snapc2"]["data"] == {"a": {"other": 1}} and got["snapc2"]["seq"] == 1
    # Nothing else came (no third snapshot, no data).
    try:
        extra = c.recv_json(0.5)
        raise AssertionError(f"unexpected message after the snapshots: {extra!r}")
    except TimeoutError:
        pass

    # New records change the cache: tombstone a, update b, bring back gone.
    mk.produce("snap", None, key="a")
    mk.produce("snap", b'{"v":3}', key="b")
    mk.produce("snap", b"[]", key="gone")
    live, _ = recv_until(c, lambda o: is_data(o) and o.get("key") == "gone", 10, "live record")
    snap = snapshot_of(c, "snapc", "r3")
    assert snap["seq"] == len(records) + 3, snap
    want.pop("a")
    want["b"] = {"v": 3}
    want["gone"] = []
    assert snap["data"] == want, f"snapshot data\n got {snap['data']!r}\nwant {want!r}"

    # The raw text of a snapshot of JSON values holds them verbatim (valid
    # JSON is inserted byte for byte, docs/protocol.md#data-messages), like
    # data messages.
    mk.produce("snap", b'{"z" : 1.50e+3 , "w":[ ]}', key="raw")
    recv_until(c, lambda o: is_data(o) and o.get("key") == "raw", 10, "live record")
    c.send_json({"type": "refresh", "channel": "snapc", "id": "raw"})
    deadline = time.monotonic() + 5
    while True:
        op, payload = c.recv_message(max(0.01, deadline - time.monotonic()))
        obj = json.loads(payload)
        if obj.get("type") == "snapshot":
            break
    assert re.search(rb'"raw"\s*:\s*\{"z" : 1\.50e\+3 , "w":\[ \]\}', payload), payload[:2000]
    c.ping_ok()


def test_unasked_snapshot_only_when_requested(mock_kafka, kafka_bridge):
    mk = mock_kafka({"una": 1, "una2": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "una=unac", "-t", "una2=unac2")
    for t in ("una", "una2"):
        mk.produce(t, b'{"p":1}', key="BTC")
        mk.produce(t, b'{"p":2}', key="ETH")
    wait_channel_seq(srv.port, "unac", 2)
    wait_channel_seq(srv.port, "unac2", 2)
    want = {"BTC": {"p": 1}, "ETH": {"p": 2}}

    def no_more(ws, secs=0.6):
        try:
            m = ws.recv_json(secs)
            raise AssertionError(f"unexpected message {m!r}")
        except TimeoutError:
            pass

    # Plain subscribe: ack only.
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "unac"}, ident=1)
    no_more(c)
    # "snapshot": false: ack only.
    c2 = srv.ws()
    ws_subscribe(c2, {"type": "subscribe", "channel": "unac", "snapshot": False}, ident=1)
    no_more(c2)

    # "snapshot": true on subscribe: the ack and one snapshot per channel,
    # both with the request's id.
    c3 = srv.ws()
    c3.send_json({"type": "subscribe", "channels": ["unac", "unac2"], "snapshot": True, "id": "s"})
    msgs = [c3.recv_json(5) for _ in range(3)]
    acks = [m for m in msgs if m.get("type") == "ack"]
    snaps = {m.get("channel"): m for m in msgs if m.get("type") == "snapshot"}
    assert len(acks) == 1 and acks[0].get("id") == "s", msgs
    assert set(snaps) == {"unac", "unac2"}, msgs
    for ch, s in snaps.items():
        check_snapshot_shape(s, ch)
        assert s.get("id") == "s" and s["seq"] == 2 and s["data"] == want, s
    no_more(c3)

    # On the upgrade: snapshot=1 (with channels=, also beside interval=);
    # plain channel= does not send one.
    for path, chans in (("/ws?channels=unac,unac2&snapshot=1", {"unac", "unac2"}),
                        ("/ws?channel=unac&interval=250&snapshot=1", {"unac"}),
                        ("/ws?channel=unac2&snapshot=true", {"unac2"})):
        w = srv.ws(path=path)
        got = {}
        for _ in chans:
            m = w.recv_json(5)
            assert m.get("type") == "snapshot", f"{path}: {m!r}"
            check_snapshot_shape(m, m.get("channel"))
            assert m["seq"] == 2 and m["data"] == want, f"{path}: {m!r}"
            got[m["channel"]] = m
        assert set(got) == chans, f"{path}: {got!r}"
        no_more(w, 0.4)
    w = srv.ws(path="/ws?channel=unac")
    no_more(w)
    w = srv.ws(path="/ws?channel=unac&snapshot=0")
    no_more(w)

    # snapshot=1 on the upgrade, then subscribe by message: the ack, then a
    # snapshot per channel; "snapshot":false on that subscribe still wins.
    for path in ("/ws?snapshot=1", "/ws?snapshot=1&format=json", "/ws?interval=100&snapshot=1"):
        w = srv.ws(path=path)
        w.send_json({"type": "subscribe", "channels": ["unac", "unac2"], "id": "d"})
        msgs = [w.recv_json(5) for _ in range(3)]
        assert msgs[0].get("type") == "ack", f"{path}: {msgs!r}"
        snaps = {m.get("channel"): m for m in msgs[1:] if m.get("type") == "snapshot"}
        assert set(snaps) == {"unac", "unac2"}, f"{path}: {msgs!r}"
        assert all(m["data"] == want and m.get("id") == "d" for m in snaps.values()), msgs
        no_more(w, 0.4)
        w.send_json({"type": "subscribe", "channel": "unac", "snapshot": False, "id": "e"})
        assert w.recv_json(5).get("type") == "ack"
        no_more(w, 0.4)

    # A channel nothing was routed to yet: empty data, seq 0 (none routed).
    mk.create_topic("una-empty", 1)
    srv2 = kafka_bridge(mk, "-t", "una-empty=emptyc")
    e = srv2.ws(path="/ws?channel=emptyc&snapshot=1")
    m = e.recv_json(5)
    assert m.get("type") == "snapshot" and m.get("channel") == "emptyc", m
    assert m.get("seq") == 0 and m.get("data") == {}, m
    assert not m.get("base64_keys") and not m.get("base64_values"), m

    # refresh of an unknown channel: UNKNOWN_CHANNEL with the id, connection kept.
    c.send_json({"type": "refresh", "channel": "no-such-channel", "id": 9})
    m = c.recv_json(5)
    assert m.get("type") == "error" and m.get("code") == "UNKNOWN_CHANNEL" and m.get("id") == 9, m
    c.ping_ok()


def test_snapshot_keys_evicts_least_recently_updated(mock_kafka, kafka_bridge):
    mk = mock_kafka({"ev": 1, "ev2": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "ev=evc", "-t", "ev2=evc2", "--snapshot-keys", "3")
    n = 0
    for k in ("a", "b", "c", "d"):
        mk.produce("ev", '{"k":"%s","v":1}' % k, key=k)
        n += 1
    for k in ("x", "y", "z"):                # the limit is per channel
        mk.produce("ev2", '{"v":1}', key=k)
    wait_channel_seq(srv.port, "evc", n)
    wait_channel_seq(srv.port, "evc2", 3)
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channels": ["evc", "evc2"]})
    s = snapshot_of(c, "evc", 1)
    assert s["seq"] == 4, s
    assert s["data"] == {k: {"k": k, "v": 1} for k in ("b", "c", "d")}, \
        f"--snapshot-keys 3 after a,b,c,d: expected a (least recently updated) evicted: {s!r}"
    s2 = snapshot_of(c, "evc2", 2)
    assert set(s2["data"]) == {"x", "y", "z"}, s2

    # Updating b makes c the least recently updated: e evicts c.
    mk.produce("ev", '{"k":"b","v":2}', key="b")
    mk.produce("ev", '{"k":"e","v":1}', key="e")
    wait_channel_seq(srv.port, "evc", 6)
    s = snapshot_of(c, "evc", 3)
    assert s["seq"] == 6, s
    assert s["data"] == {"d": {"k": "d", "v": 1}, "b": {"k": "b", "v": 2}, "e": {"k": "e", "v": 1}}, s

    # A tombstone frees a slot: f then fits without evicting anything.
    mk.produce("ev", None, key="d")
    mk.produce("ev", '{"k":"f","v":1}', key="f")
    wait_channel_seq(srv.port, "evc", 8)
    s = snapshot_of(c, "evc", 4)
    assert s["data"] == {"b": {"k": "b", "v": 2}, "e": {"k": "e", "v": 1}, "f": {"k": "f", "v": 1}}, s
    # A flood of new keys leaves exactly the 3 newest.
    for i in range(50):
        mk.produce("ev", '{"i":%d}' % i, key="n%d" % i, wait=False)
    mk.flush()
    wait_channel_seq(srv.port, "evc", 58)
    s = snapshot_of(c, "evc", 5)
    assert s["seq"] == 58 and s["data"] == {"n47": {"i": 47}, "n48": {"i": 48}, "n49": {"i": 49}}, s
    c.ping_ok()


def apply_records(state, msgs):
    """Per key, the newest data: each keyed record sets its key, a tombstone
    removes it. Returns state, updated in place."""
    for m in msgs:
        if "key" not in m:
            continue
        if m["data"] is None:
            state.pop(m["key"], None)
        else:
            state[m["key"]] = m["data"]
    return state


def truth_at(observed, seq):
    """Per key, the newest data among the observer's records with seq <= seq."""
    return apply_records({}, itertools.takewhile(lambda m: m["seq"] <= seq, observed))


def check_stream_around_snapshots(name, objs, observed, last_seq):
    """objs: everything one client got in order. For every snapshot S in
    it: data before it has seq <= S, data after it seq > S, and the snapshot
    equals the observer's state at S. After the first snapshot the data is
    exactly seq S1+1 .. last_seq, and snapshot + updates = final state."""
    snaps = [i for i, o in enumerate(objs) if o.get("type") == "snapshot" and not is_data(o)]
    assert snaps, f"{name}: no snapshot at all; controls={[o for o in objs if not is_data(o)]!r}"
    errors = [o for o in objs if o.get("type") == "error"]
    assert not errors, f"{name}: errors {errors!r}"
    for i in snaps:
        s = objs[i]
        S = s["seq"]
        before = [o["seq"] for o in objs[:i] if is_data(o)]
        after = [o["seq"] for o in objs[i + 1:] if is_data(o)]
        bad_before = [q for q in before if q > S]
        bad_after = [q for q in after if q <= S]
        assert not bad_before, f"{name}: data with seq {bad_before[:5]} arrived BEFORE the snapshot with seq {S}"
        assert not bad_after, f"{name}: data with seq {bad_after[:5]} (at or before the snapshot's seq {S}) " \
                              f"arrived AFTER it"
        want = truth_at(observed, S)
        if s["data"] != want:
            diff = {k: (s["data"].get(k, "<absent>"), want.get(k, "<absent>"))
                    for k in set(s["data"]) | set(want) if s["data"].get(k, "<absent>") != want.get(k, "<absent>")}
            raise AssertionError(f"{name}: snapshot seq {S} differs from the stream's state at seq {S} "
                                 f"(key: (snapshot, stream)): {dict(list(diff.items())[:8])!r}")
    first = objs[snaps[0]]["seq"]
    after = [o for o in objs[snaps[0] + 1:] if is_data(o)]
    seqs = [o["seq"] for o in after]
    want_seqs = list(range(first + 1, last_seq + 1))
    if seqs != want_seqs:
        missing = sorted(set(want_seqs) - set(seqs))
        dups = len(seqs) - len(set(seqs))
        raise AssertionError(f"{name}: after the snapshot (seq {first}) got {len(seqs)} records, expected "
                             f"seq {first + 1}..{last_seq}: missing {missing[:10]} ({len(missing)}), "
                             f"{dups} duplicates, in order: {seqs == sorted(seqs)}; snapshots at seq "
                             f"{[objs[i]['seq'] for i in snaps]}, ids {[objs[i].get('id') for i in snaps]}")
    return apply_records(dict(objs[snaps[0]]["data"]), after)


@pytest.mark.one_process("compares seq across connections: seq is per process")
def test_snapshot_consistent_with_stream_under_production(mock_kafka, kafka_bridge):
    """Records are produced continuously (kafka-python, 3 partitions, 40 keys
    with the odd tombstone); an observer subscribed from the start sees
    every record with its seq; clients subscribe with "snapshot":true at
    random moments mid-stream and one sends refresh mid-stream. Each
    snapshot must equal the observer's state at the snapshot's seq, and the
    stream around it must neither repeat nor miss a record."""
    mk = mock_kafka({"cons": 3})
    srv = kafka_bridge(mk, "-t", "cons=consc", "--client-queue", "1000000", "--client-buffer", "256MiB")
    obs_ws = srv.ws()
    ws_subscribe(obs_ws, {"type": "subscribe", "channel": "consc"})
    time.sleep(0.5)                   # --offset latest: let the assignment settle
    obs = BulkReader(obs_ws, "observer")

    keys = ["k%02d" % i for i in range(40)]
    last = {}
    stop = threading.Event()
    counter = [0]
    prod_err = []

    def produce():
        try:
            rate, t0, i = 2500, time.monotonic(), 0
            rnd = random.Random(7)
            while not stop.is_set():
                if i >= (time.monotonic() - t0) * rate:
                    time.sleep(0.002)
                    continue
                k = keys[rnd.randrange(len(keys))]
                if rnd.random() < 0.02:
                    v = None
                else:
                    v = '{"k":"%s","i":%d}' % (k, i)
                mk.produce("cons", v, key=k, wait=False)
                last[k] = None if v is None else json.loads(v)
                i += 1
                counter[0] = i
        except Exception as e:           # noqa: BLE001 - reported below
            prod_err.append(e)

    mk.producer()                        # connected before the clock starts
    t = threading.Thread(target=produce, daemon=True)
    t.start()
    clients = []
    rnd = random.Random(11)
    try:
        wait_channel_seq(srv.port, "consc", 1)   # the first snapshot is mid-stream
        for n in range(3):
            time.sleep(0.4 + rnd.random() * 0.5)
            w = srv.ws()
            w.send_json({"type": "subscribe", "channel": "consc", "snapshot": True, "id": "snap%d" % n})
            clients.append(BulkReader(w, "client%d" % n))
        time.sleep(0.3 + rnd.random() * 0.4)
        clients[0].ws.send_json({"type": "refresh", "channel": "consc", "id": "again"})
        time.sleep(0.5 + rnd.random() * 0.4)
    finally:
        stop.set()
        t.join(10)
    assert not prod_err, prod_err
    mk.flush()
    total = counter[0]
    assert total > 2000, f"producer only managed {total} records"
    wait_channel_seq(srv.port, "consc", total, timeout=30)
    obs.wait_for(lambda objs: sum(1 for o in objs if is_data(o)) >= total, 30, f"{total} records")
    for c in clients:
        c.wait_for(lambda objs: any(is_data(o) and o["seq"] == total for o in objs), 30, f"seq {total}")
    time.sleep(0.3)
    obs.stop()
    for c in clients:
        c.stop()

    observed = obs.data()
    assert [m["seq"] for m in observed] == list(range(1, total + 1)), "observer: seq not 1..N"
    final = truth_at(observed, total)
    assert final == {k: v for k, v in last.items() if v is not None}, \
        "observer's final state differs from the last value produced per key"
    for i, c in enumerate(clients):
        objs = c.objs()
        ack = [o for o in objs if o.get("type") == "ack"]
        assert len(ack) == 1 and ack[0].get("id") == "snap%d" % i, ack
        snaps = [o for o in objs if o.get("type") == "snapshot"]
        assert snaps[0].get("id") == "snap%d" % i, snaps[0]
        if i == 0:
            assert len(snaps) == 2 and snaps[1].get("id") == "again", [s.get("id") for s in snaps]
            assert snaps[1]["seq"] >= snaps[0]["seq"], (snaps[0]["seq"], snaps[1]["seq"])
        else:
            assert len(snaps) == 1, [s.get("id") for s in snaps]
        assert 0 < snaps[0]["seq"] < total, f"client{i}: snapshot seq {snaps[0]['seq']} not mid-stream"
        state = check_stream_around_snapshots("client%d" % i, objs, observed, total)
        assert state == final, f"client{i}: snapshot + updates != newest value per key"


def test_refresh_keeps_records_already_queued(mock_kafka, kafka_bridge):
    """docs/protocol.md#ordering-and-loss: records are missing only where
    the slow-client policy dropped them (with SLOW_CONSUMER) or the client
    asked for conflation. A refresh is neither: records queued for the
    client before the snapshot still arrive (before it, since their seq is
    <= the snapshot's). The client reads nothing while ~9 MB arrive, so most
    of it waits in kbridge's queue (generous limits: no slow-client policy
    applies) when the refresh comes. Three partitions keep each under the
    mock's 5 MB retention, which a kbridge slowed by a loaded machine could
    otherwise fall behind."""
    mk = mock_kafka({"rq": 3})
    srv = kafka_bridge(mk, "-t", "rq=rqc", "--client-queue", "1000000", "--client-buffer", "1GiB")
    from wsutil import WS
    c = srv.track(WS.connect(srv.port, "/ws", rcvbuf=4096))
    ws_subscribe(c, {"type": "subscribe", "channel": "rqc"})
    time.sleep(0.5)
    N = 30000
    mk.kcat_produce("rq", b"".join(b'k%d\t{"i":%d,"pad":"%s"}\n' % (i % 100, i, b"q" * 250) for i in range(N)),
                    key_delim="\t")
    wait_channel_seq(srv.port, "rqc", N, timeout=30)
    c.send_json({"type": "refresh", "channel": "rqc", "id": "mid"})
    r = BulkReader(c, "refresher")
    r.wait_for(lambda objs: any(o.get("type") == "snapshot" for o in objs), 20, "snapshot")
    time.sleep(0.5)
    r.stop()
    objs = r.objs()
    i = next(j for j, o in enumerate(objs) if o.get("type") == "snapshot")
    snap = objs[i]
    assert snap["seq"] == N and snap.get("id") == "mid", {k: snap[k] for k in snap if k != "data"}
    errs = [o for o in objs if o.get("type") == "error"]
    assert not errs, errs[:3]
    seqs = [o["seq"] for o in objs if is_data(o)]
    assert seqs == list(range(1, N + 1)), \
        f"{len(seqs)} of {N} records arrived (last seq before the snapshot: {seqs[-1] if seqs else None}); " \
        f"the refresh must not discard records already queued for the client"
    assert all(is_data(o) for o in objs[:i]) and len(objs) == i + 1
