"""Server-Sent Events: `GET /sse` (issue 18; the contract in
docs/protocol.md#sse). Real peers only: curl -N, raw sockets (sseutil.py),
kafka-python and kcat through librdkafka's mock cluster.

- The answer's head (200, text/event-stream; charset=utf-8, no-store,
  X-Accel-Buffering: no, close-delimited) and framing (`retry: 1000`, an
  id-only start block, then per record `id:`, `event: <type>` and exactly
  one `data:` line holding the WebSocket data message), for pretty-printed
  JSON with line breaks (also a 3 MB one), text, binary values and keys,
  null keys and tombstones, read by curl and by a raw socket, over TLS too;
  on a kept-alive connection after another request and over HTTP/1.0; the
  heartbeat comment and the position it carries past filtered records.
- The query: channel/channels, key/keys, filter.FIELD=VALUE (JSON or
  string), snapshot=1, interval= conflation; format=msgpack, type=, no or
  unknown channel refused; HEAD; OPTIONS preflight and CORS on the 200;
  a disallowed Origin gets 403.
- Resume by `Last-Event-ID` and by `resume=` (the token, or the WebSocket
  form), the header winning; from the start id; across two instances on
  one cluster (replay from Kafka, live records meanwhile); tokens taken
  while another partition's records were filtered out; malformed tokens and tokens of a topic the channels do not read are
  400; a token older than retention gets `event: error` RESUME_GAP and the
  stream goes on live.
- Authentication (--jwt-secret; access_token= and Authorization): 401 for
  no or a bad token, 403 UNAUTHORIZED for a channel the token excludes,
  --public-channels, the token's keys narrowing the stream, TOKEN_EXPIRED
  ending the response.
- Limits and observability: SSE clients count in --max-clients (503),
  --max-clients-per-ip and --upgrade-rate (429), /sse is not on
  --admin-listen, /health clients, /stats sse_clients and
  client_list[].transport, /metrics kbridge_sse_clients, the log lines.
- Slow readers under --slow-client drop-oldest, conflate and disconnect
  (then EventSource-style reconnects); 2,000 concurrent SSE clients and
  their memory; SIGTERM ending streams (one stalled); bodies, garbage,
  bytes after the head, resets and 300 streams churning leave the server
  up.
"""
import json
import signal
import time
import urllib.parse

import pytest

import authutil as au
import conftest
import wsutil
from authutil import keyring  # noqa: F401  (session fixture)
from test_whole_records import big_producer  # noqa: F401  (fixture)
from conftest import read_messages, settled, wait_channel_seq
from sseutil import (LINE_RE, SSE, TOKEN_RE, BlockReader, CurlStream, b64u_dec, b64u_enc, decode_token,
                     encode_token, error_body, parse_blocks, sse_request)
from wsutil import Closed

SSE_TYPE = "text/event-stream; charset=utf-8"


def open_sse(srv, path, headers=None, **kw):
    """An SSE stream (200 and its start read), closed at teardown."""
    return srv.track(SSE.open(srv.port, path, headers, **kw))


def check_error(r, status, code=None, what=""):
    """A plain HTTP error answer with a JSON body {"error", "code"}."""
    assert r.status == status, f"{what}: expected {status}, got {r!r}"
    ct = r.header("Content-Type") or ""
    assert ct.startswith("application/json"), f"{what}: Content-Type {ct!r}: {r!r}"
    body = error_body(r)
    if code is not None:
        assert body.get("code") == code, f"{what}: code {body.get('code')!r}, expected {code!r}: {body!r}"
    return body


def check_stream_head(r, what=""):
    assert r.version == "HTTP/1.1" and r.status == 200, f"{what}: {r!r}"
    assert r.header("Content-Type") == SSE_TYPE, f"{what}: Content-Type {r.header('Content-Type')!r}"
    assert r.header("Cache-Control") == "no-store", f"{what}: Cache-Control {r.header('Cache-Control')!r}"
    assert r.header("X-Accel-Buffering") == "no", f"{what}: X-Accel-Buffering {r.header('X-Accel-Buffering')!r}"
    assert "close" in r.tokens("Connection"), f"{what}: Connection {r.header('Connection')!r}"
    assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None, \
        f"{what}: the body must be close-delimited: {r!r}"


def check_data_event(e, what=""):
    """id, event, one data line, in that order and nothing else; the event
    is the message's type. Returns the data object."""
    obj = e.obj()
    assert e.id is not None and TOKEN_RE.match(e.id), f"{what}: data event without a base64url id: {e!r}"
    assert len(e.lines) == 3 and e.lines[:2] == [f"id: {e.id}", f"event: {obj['type']}"], \
        f"{what}: event lines {e.lines!r}, expected id, event: <type>, data"
    return obj


def pos_of(e):
    o = e.obj()
    return (o["topic"], o["partition"], o["offset"])


def check_order(events, what="", per_key=False):
    """No duplicates, offsets increasing per partition (per key when
    per_key: conflation keeps order only per key)."""
    last = {}
    seen = set()
    for e in events:
        t, p, o = pos_of(e)
        assert (t, p, o) not in seen, f"{what}: duplicate {t}:{p}:{o}"
        seen.add((t, p, o))
        k = (t, p, e.obj().get("key")) if per_key else (t, p)
        assert o > last.get(k, -1), f"{what}: {k} offset {o} after {last[k]}"
        last[k] = o


def produce_many(mk, topic, items):
    """items: (key, value, partition); returns [(topic, partition, offset)]."""
    futs = [mk.produce(topic, v, key=k, partition=p, wait=False) for k, v, p in items]
    mk.flush()
    return [(topic, f.get(10).partition, f.get(10).offset) for f in futs]


# ---------------------------------------------------------------- head and framing

def test_head_and_framing_curl_and_raw_socket(mock_kafka, kafka_bridge):
    """curl -N -s -i and a raw socket read one stream each while a WebSocket
    client reads the same channel. The head is 200 with Content-Type
    text/event-stream; charset=utf-8, Cache-Control: no-store,
    X-Accel-Buffering: no, Connection: close and no length; the body starts
    with `retry: 1000` and an id-only block. Records with a pretty-printed
    JSON value (LF, CRLF and CR line breaks), text with a newline, binary
    bytes, a binary key, a null key, an empty value and a tombstone each
    come as `id:`, `event: <type>` and exactly one `data:` line whose JSON
    equals the WebSocket data message (also for a raw CR inside a JSON
    string, U+2028, and line breaks around a value); no other line shape
    appears anywhere, and each id carries the record's offset."""
    mk = mock_kafka({"fr": 1})
    srv = kafka_bridge(mk, "-t", "fr=frc:frame_data")
    ws = srv.ws("/ws?channel=frc")
    raw = open_sse(srv, "/sse?channel=frc")
    check_stream_head(raw.resp, "raw socket")
    assert raw.retry == "1000"
    curl = CurlStream(srv.url("/sse?channel=frc"), max_time=20)
    try:
        curl.wait_for(lambda out: b"\r\n\r\n" in out and b"\nid: " in b"\n" + out.split(b"\r\n\r\n", 1)[1]
                      and out.endswith(b"\n\n"), 5, "stream start")
        pretty = '{\n  "price": 97000.5,\n  "tags": [\n    "a",\n    "b"\n  ],\n  "n": {"x": null}\n}\n'
        records = [
            ("pretty", pretty),
            ("crlf", '{"a":\r\n1,\r"b":\t[\r\n2\r\n]}'),
            ("text", "hello\nworld: not json"),
            ("bin", b"\xff\xfe\x00\x01\n\ndata: x\n\n"),
            (b"\xc3\x28", '"binary key"'),
            (None, "[1,\n2]"),
            ("empty", b""),
            ("tomb", None),
            ("cr-in-string", b'{"a":"x\ry"}'),
            ("u2028", '{"a":"x\u2028y"}'),
            ("around", b'\n{"a":1}\r'),
        ]
        for k, v in records:
            mk.produce("fr", v, key=k)
        n = len(records)
        wsmsgs = read_messages(ws, n, timeout=10)
        evs = raw.data_events(n, timeout=10)
        curl.wait_for(lambda out: len([b for b in parse_blocks(out.split(b"\r\n\r\n", 1)[1])
                                       if b.data_lines]) >= n, 10, f"{n} events")
    finally:
        curl.stop()
    status, headers, body = curl.split()
    assert status == 200
    hd = {k.lower(): v for k, v in headers}
    assert hd.get("content-type") == SSE_TYPE and hd.get("cache-control") == "no-store" \
        and hd.get("x-accel-buffering") == "no", f"curl saw headers {headers!r}"
    assert body.startswith(b"retry: 1000\n"), f"curl body starts {body[:100]!r}"
    for line in body.split(b"\n")[:-1]:
        assert LINE_RE.match(line), f"curl: a line kbridge should not write: {line[:200]!r}"
    curl_evs = [b for b in parse_blocks(body) if b.data_lines]
    assert len(curl_evs) == n, f"curl: {len(curl_evs)} events, expected {n}: {body[-500:]!r}"
    for i, (w, e, c) in enumerate(zip(wsmsgs, evs, curl_evs)):
        for who, ev in (("raw", e), ("curl", c)):
            obj = check_data_event(ev, f"{who} record {i}")
            assert obj == w.obj, f"{who} record {i} ({records[i][0]!r}): SSE data {obj!r} != WebSocket {w.obj!r}"
            for f in ("type", "channel", "topic", "partition", "offset", "data"):
                assert f in obj, f"{who} record {i}: no {f}: {obj!r}"
            assert obj["type"] == "frame_data" and obj["channel"] == "frc"
        assert e.obj()["offset"] == i
        assert decode_token(e.id) == {("fr", 0): i}, f"id of offset {i} holds {decode_token(e.id)!r}"
    assert evs[0].obj()["data"] == json.loads(pretty)
    assert evs[2].obj()["data"] == "hello\nworld: not json"
    assert evs[3].obj().get("encoding") == "base64"
    assert evs[6].obj()["data"] == "" and evs[7].obj()["data"] is None
    assert evs[8].obj()["data"] == '{"a":"x\ry"}', "a raw CR inside a JSON string is not JSON: text"
    assert evs[9].obj()["data"] == {"a": "x\u2028y"} and evs[10].obj()["data"] == {"a": 1}


def test_large_pretty_record_is_one_data_line(mock_kafka, kafka_bridge, big_producer):
    """A 3 MB pretty-printed JSON record (about 150,000 line breaks, LF and
    CRLF) comes as one event with one data line: the WebSocket data
    message with every line break turned into a space."""
    from test_whole_records import send
    mk = mock_kafka({"lg": 1})
    srv = kafka_bridge(mk, "-t", "lg=lgc", "-X", "fetch.max.bytes=16000000",
                       "-X", "max.partition.fetch.bytes=16000000")
    ws = srv.ws("/ws?channel=lgc")
    s = open_sse(srv, "/sse?channel=lgc")
    s.limit = 16 << 20
    rows = [{"i": i, "s": "x" * 40, "n": None} for i in range(25000)]
    value = json.dumps({"rows": rows}, indent=2).replace("\n  {", "\r\n  {")
    assert value.count("\n") > 100000 and len(value) > 2_500_000
    send(big_producer(mk), "lg", value, key="big")
    w = read_messages(ws, 1, timeout=20)[0]
    e = s.next_event(20)
    obj = check_data_event(e, "3 MB record")
    assert b"\r" not in e.raw and e.raw.count(b"\n") == 4, "line breaks of the payload reached the stream"
    assert obj == w.obj, "SSE data differs from the WebSocket data message"
    assert obj["data"]["rows"][-1] == rows[-1]


def test_heartbeat_comment_and_position(mock_kafka, kafka_bridge):
    """Two idle streams with key=A while three B records pass them by: each
    gets a comment line `: keep-alive` within 16 s (every 15 s) and
    nothing that dispatches an event. The plain one's heartbeat carries an
    id line past the B records: resuming from it replays nothing, while
    resuming from its start id replays the three B records. The stream
    with interval= gets the same (its position stops short only of what
    conflation still holds for it, here nothing). Both stay open."""
    mk = mock_kafka({"hb": 1})
    srv = kafka_bridge(mk, "-t", "hb=hbc")
    # a record first, so the start id already holds the partition (the
    # start id of an empty partition is test_resume_from_the_start_id's)
    produce_many(mk, "hb", [("old", '{"old":1}', 0)])
    wait_channel_seq(srv.port, "hbc", 1)
    plain = open_sse(srv, "/sse?channel=hbc&key=A")
    conf = open_sse(srv, "/sse?channel=hbc&key=A&interval=100")
    start = plain.start_id
    bpos = produce_many(mk, "hb", [("B", '{"b":%d}' % i, 0) for i in range(3)])
    readers = [BlockReader(plain, "key=A"), BlockReader(conf, "key=A&interval=100")]
    try:
        for r in readers:
            r.wait_for(lambda r: any(e.comments for e in r.events()), 16.5, "comment line")
    finally:
        for r in readers:
            r.stop()
    beats = {}
    for r in readers:
        evs = r.events()
        assert not [e for e in evs if e.is_data() or e.event], f"{r.name}: idle stream dispatched {evs!r}"
        b = next(e for e in evs if e.comments)
        assert b.lines[0] == ": keep-alive", f"{r.name}: heartbeat block {b.lines!r}"
        beats[r.name] = b
        assert r.sse.is_open(0.1), f"{r.name}: stream ended after the heartbeat"
    for name, b in beats.items():
        assert len(b.lines) == 2 and b.id is not None and TOKEN_RE.match(b.id), \
            f"{name}: heartbeat block {b.lines!r}: expected ': keep-alive' then 'id: TOKEN'"
    assert beats["key=A&interval=100"].id == beats["key=A"].id
    b = beats["key=A"]
    r = open_sse(srv, "/sse?channel=hbc", [("Last-Event-ID", b.id)])
    got = r.collect(quiet=0.5, timeout=3)
    assert got == [], f"resuming from the heartbeat's id replayed {[pos_of(e) for e in got]}: " \
                      "the records the filter passed over"
    r = open_sse(srv, "/sse?channel=hbc", [("Last-Event-ID", start)])
    got = r.collect(quiet=0.5, timeout=3)
    assert [pos_of(e) for e in got] == bpos, f"resuming from the start id: {[pos_of(e) for e in got]}"


# ---------------------------------------------------------------- query

def test_query_channels_keys_and_filters(mock_kafka, kafka_bridge):
    """One record set read through channels=a,b, key=, keys=, filter.n=5
    (a JSON number: 5.0 matches, "5" does not), filter.s=%225%22 and
    filter.s=abc (strings), filter.n=* (present with any value),
    percent-encoded keys (BTC%2FUSDT, a%20b%26c) and a raw slash, and a
    stream with an unknown extra parameter (ignored): each gets exactly its
    records, in order."""
    mk = mock_kafka({"qa": 1, "qb": 1})
    srv = kafka_bridge(mk, "-t", "qa", "-t", "qb")
    q = {
        "ab": "/sse?channels=qa,qb",
        "ab2": "/sse?channel=qa&channels=qb&foo=bar",
        "key": "/sse?channel=qa&key=K1",
        "keys": "/sse?channel=qa&keys=K1,K2",
        "any": "/sse?channel=qa&key=*",
        "fnum": "/sse?channel=qa&filter.n=5",
        "fstr5": "/sse?channel=qa&filter.s=%225%22",
        "fabc": "/sse?channel=qa&filter.s=abc",
        "fall": "/sse?channel=qa&filter.n=*",
        "both": "/sse?channel=qa&key=K1&filter.s=abc",
        "slash": "/sse?channel=qb&key=BTC%2FUSDT",
        "slashraw": "/sse?channel=qb&key=BTC/USDT",
        "amp": "/sse?channel=qb&keys=a%20b%26c,K1",
    }
    streams = {name: open_sse(srv, path) for name, path in q.items()}
    recs = [("K1", '{"n":5,"s":"5"}'), ("K2", '{"n":"5","s":5}'), ("K3", '{"n":5.0,"s":"abc"}'),
            ("K1", '{"s":"abc"}'), (None, "plain text")]
    for k, v in recs:
        mk.produce("qa", v, key=k)
    mk.produce("qb", '{"n":5}', key="K1")
    mk.produce("qb", '{"n":6}', key="BTC/USDT")
    mk.produce("qb", '{"n":7}', key="a b&c")
    wait_channel_seq(srv.port, "qa", 5)
    wait_channel_seq(srv.port, "qb", 3)
    want = {
        "ab": [("qa", i) for i in range(5)] + [("qb", i) for i in range(3)],
        "ab2": [("qa", i) for i in range(5)] + [("qb", i) for i in range(3)],
        "key": [("qa", 0), ("qa", 3)],
        "keys": [("qa", 0), ("qa", 1), ("qa", 3)],
        "any": [("qa", i) for i in range(5)],
        "fnum": [("qa", 0), ("qa", 2)],
        "fstr5": [("qa", 0)],
        "fabc": [("qa", 2), ("qa", 3)],
        "fall": [("qa", 0), ("qa", 1), ("qa", 2)],
        "both": [("qa", 3)],
        "slash": [("qb", 1)],
        "slashraw": [("qb", 1)],
        "amp": [("qb", 0), ("qb", 2)],
    }
    bad = []
    for name, s in streams.items():
        evs = s.collect(quiet=0.4, timeout=5)
        got = [(e.obj()["topic"], e.obj()["offset"]) for e in evs]
        for e in evs:
            check_data_event(e, name)
        if sorted(got) != sorted(want[name]):
            bad.append(f"{q[name]}: got {got}, expected {want[name]}")
    assert not bad, "\n".join(bad)


def test_query_snapshot_and_interval(mock_kafka, kafka_bridge):
    """snapshot=1: the first event after the start is `event: snapshot`
    (no id line) with the channel's newest value per key, then live
    records; channels=a,b gets one snapshot of each. With a Last-Event-ID (a resume) snapshot=1 sends none.
    interval=400: ten records of one key within a few ms come as the
    first at once and the newest at the end of the interval, not ten."""
    mk = mock_kafka({"sn": 1, "sn2": 1})
    srv = kafka_bridge(mk, "-t", "sn=snc", "-t", "sn2=snc2")
    produce_many(mk, "sn", [("K1", '{"v":1}', 0), ("K2", '{"v":2}', 0), ("K1", '{"v":3}', 0)])
    produce_many(mk, "sn2", [("Z", '{"z":1}', 0)])
    wait_channel_seq(srv.port, "snc", 3)
    wait_channel_seq(srv.port, "snc2", 1)
    two = open_sse(srv, "/sse?channels=snc,snc2&snapshot=1")
    snaps = [two.next_event(5) for _ in range(2)]
    assert [e.event for e in snaps] == ["snapshot", "snapshot"], snaps
    assert sorted((e.obj()["channel"], json.dumps(e.obj()["data"], sort_keys=True)) for e in snaps) == \
        [("snc", '{"K1": {"v": 3}, "K2": {"v": 2}}'), ("snc2", '{"Z": {"z": 1}}')], snaps
    s = open_sse(srv, "/sse?channel=snc&snapshot=1")
    first = s.next_event(5)
    assert first.event == "snapshot", f"first event {first!r}, expected a snapshot"
    assert first.id is None and first.lines[0] == "event: snapshot" and len(first.lines) == 2, first.lines
    snap = first.obj()
    assert snap.get("type") == "snapshot" and snap.get("channel") == "snc", snap
    assert snap.get("data") == {"K1": {"v": 3}, "K2": {"v": 2}}, snap
    mk.produce("sn", '{"v":4}', key="K3")
    e = s.data_events(1)[0]
    assert e.obj()["offset"] == 3 and e.obj()["data"] == {"v": 4}
    tok = s.last_id
    # a resume gets no snapshot
    mk.produce("sn", '{"v":5}', key="K1")
    r = open_sse(srv, "/sse?channel=snc&snapshot=1", [("Last-Event-ID", tok)])
    e = r.next_event(5)
    assert e.event != "snapshot", f"snapshot sent to a resuming stream: {e!r}"
    assert e.obj()["offset"] == 4, e

    c = open_sse(srv, "/sse?channel=snc&interval=400")
    produce_many(mk, "sn", [("C", '{"i":%d}' % i, 0) for i in range(10)])
    evs = c.collect(quiet=1.2, timeout=5)
    vals = [e.obj()["data"]["i"] for e in evs]
    assert vals and vals[0] == 0 and vals[-1] == 9, f"interval=400 delivered {vals}"
    assert len(vals) <= 3 and vals == sorted(vals), f"interval=400 delivered {vals}: not conflated"


def test_query_errors_head_options_and_cors(kbridge):
    """Errors before the stream are plain JSON answers: no channel 400,
    format=msgpack 400 (format=json is fine), type=tui/web 400, a bad
    interval: 400 BAD_REQUEST; more channels than --max-subscriptions 2:
    400; an unknown channel 404 UNKNOWN_CHANNEL (also
    in a list). HEAD /sse answers the stream's head and no body. With
    --allow-origin https://ok.example: a preflight from it gets 204 with
    its CORS headers, the GET gets them on the 200 (and on a 404 or 400);
    another origin gets 403 on both."""
    srv = kbridge("-t", "qa", "-t", "qb", "-t", "qc", "--allow-origin", "https://ok.example",
                  "--max-subscriptions", "2")
    # docs/protocol.md#query lists it under 400 BAD_REQUEST; the code of
    # the WebSocket error is TOO_MANY_SUBSCRIPTIONS: either names it
    r = sse_request(srv.port, "/sse?channels=qa,qb,qc")
    assert r.status == 400 and error_body(r).get("code") in ("BAD_REQUEST", "TOO_MANY_SUBSCRIPTIONS"), r
    for path, status, code in [
        ("/sse", 400, "BAD_REQUEST"),
        ("/sse?channel=", 400, "BAD_REQUEST"),
        ("/sse?key=K1", 400, "BAD_REQUEST"),
        ("/sse?channel=qa&format=msgpack", 400, "BAD_REQUEST"),
        ("/sse?channel=qa&type=tui", 400, "BAD_REQUEST"),
        ("/sse?channel=qa&type=web", 400, "BAD_REQUEST"),
        ("/sse?channel=qa&interval=-1", 400, "BAD_REQUEST"),
        ("/sse?channel=qa&interval=3600001", 400, "BAD_REQUEST"),
        ("/sse?channel=nope", 404, "UNKNOWN_CHANNEL"),
        ("/sse?channels=qa,nope", 404, "UNKNOWN_CHANNEL"),
    ]:
        check_error(sse_request(srv.port, path), status, code, path)
    check_stream_head(open_sse(srv, "/sse?channel=qa&format=json").resp, "format=json")

    h = SSE.open(srv.port, "/sse?channel=qa", method="HEAD", expect=None, start=False)
    try:
        check_stream_head(h.resp, "HEAD")
        h.is_open(0.3)
        assert h.buf == b"", f"HEAD /sse answered a body: {h.buf[:200]!r}"
    finally:
        h.close()

    ok, evil = "https://ok.example", "https://evil.example"
    pre = sse_request(srv.port, "/sse?channel=qa", method="OPTIONS",
                      headers=[("Origin", ok), ("Access-Control-Request-Method", "GET")])
    assert pre.status == 204, f"preflight from an allowed origin: {pre!r}"
    assert pre.header("Access-Control-Allow-Origin") == ok, pre
    assert "GET" in (pre.header("Access-Control-Allow-Methods") or ""), pre
    pre = sse_request(srv.port, "/sse?channel=qa", method="OPTIONS",
                      headers=[("Origin", evil), ("Access-Control-Request-Method", "GET")])
    assert pre.status == 403, f"preflight from a refused origin: {pre!r}"

    # refusals carry CORS too for an allowed Origin, so a page can read them
    for path, status in (("/sse?channel=nope", 404), ("/sse?channel=qa&format=msgpack", 400)):
        r = sse_request(srv.port, path, headers=[("Origin", ok)])
        assert r.status == status and r.header("Access-Control-Allow-Origin") == ok, \
            f"{path} from an allowed Origin: {r!r}"
    s = open_sse(srv, "/sse?channel=qa", [("Origin", ok)])
    check_stream_head(s.resp, "allowed Origin")
    assert s.resp.header("Access-Control-Allow-Origin") == ok, s.resp
    assert "origin" in s.resp.tokens("Vary"), s.resp
    check_error(sse_request(srv.port, "/sse?channel=qa", headers=[("Origin", evil)]), 403, "UNAUTHORIZED",
                "GET from a refused Origin")
    assert srv.health()["status"] == "ok"


# ---------------------------------------------------------------- resume

def test_resume_last_event_id_resume_param_and_precedence(mock_kafka, kafka_bridge):
    """A 2-partition topic. A stream reads 6 of 10 records and goes; 10
    more are produced. Reconnecting with `Last-Event-ID` (the last id
    read) brings exactly the 14 missed records, in offset order per
    partition, no duplicate, then live ones; the resumed stream's start id
    is that position. The same with `resume=TOKEN`, with the WebSocket form
    `resume=rs:0:N,rs:1:M`, and with `resume=` of the very first position
    beside a `Last-Event-ID` (the header wins)."""
    mk = mock_kafka({"rs": 2})
    srv = kafka_bridge(mk, "-t", "rs=rsc")
    s = open_sse(srv, "/sse?channel=rsc")
    start = s.start_id
    allpos = produce_many(mk, "rs", [(f"k{i}", '{"i":%d}' % i, i % 2) for i in range(10)])
    seen = s.data_events(6)
    tok = s.last_id
    assert tok == seen[-1].id
    s.close()
    allpos += produce_many(mk, "rs", [(f"k{i}", '{"i":%d}' % i, i % 2) for i in range(10, 20)])
    wait_channel_seq(srv.port, "rsc", 20)
    missed = sorted(set(allpos) - set(pos_of(e) for e in seen))
    assert len(missed) == 14
    last = {}
    for e in seen:
        t, p, o = pos_of(e)
        last[p] = o
    ws_form = ",".join(f"rs:{p}:{last.get(p, -1)}" for p in (0, 1))

    def resumed(path, headers, what):
        r = open_sse(srv, path, headers)
        evs = r.collect(quiet=0.6, timeout=10, until=lambda ev: len(ev) >= 14)
        evs += r.collect(quiet=0.4, timeout=2)
        check_order(evs, what)
        got = sorted(pos_of(e) for e in evs)
        assert got == missed, f"{what}: got {got}, expected the missed {missed}"
        for e in evs:
            check_data_event(e, what)
        return r

    for path, headers, what in [
        ("/sse?channel=rsc", [("Last-Event-ID", tok)], "Last-Event-ID"),
        (f"/sse?channel=rsc&resume={tok}", None, "resume=TOKEN"),
        (f"/sse?channel=rsc&resume={ws_form}", None, f"resume={ws_form}"),
        (f"/sse?channel=rsc&resume={start}", [("Last-Event-ID", tok)], "Last-Event-ID beside resume=start"),
    ]:
        r = resumed(path, headers, what)
        if True:
            assert decode_token(r.start_id) == decode_token(tok), \
                f"{what}: the resumed stream starts at {decode_token(r.start_id)}, not at the token's " \
                f"{decode_token(tok)}: a reconnect before the replay ends would lose records"
    # live records follow the replay, once
    (t, p, o), = produce_many(mk, "rs", [("live", '{"i":20}', 1)])
    e = r.data_events(1, timeout=5)[0]
    assert pos_of(e) == (t, p, o), e
    assert not r.collect(quiet=0.3, timeout=1), "more than the live record"


def test_resume_from_the_start_id(mock_kafka, kafka_bridge):
    """A stream that breaks before its first record resumes from where it
    began: its start id (the id-only block) sent back as Last-Event-ID
    brings the records produced meanwhile, on both partitions, also on a
    topic that had no record yet when the stream began."""
    mk = mock_kafka({"st": 2, "sf": 1})
    srv = kafka_bridge(mk, "-t", "st=stc", "-t", "sf=stc")
    produce_many(mk, "sf", [("old", '{"old":1}', 0)])
    wait_channel_seq(srv.port, "stc", 1)
    s = open_sse(srv, "/sse?channel=stc")
    start = s.start_id
    s.close()
    missed = produce_many(mk, "st", [(f"k{i}", '{"i":%d}' % i, i % 2) for i in range(4)])
    missed += produce_many(mk, "sf", [("new", '{"new":1}', 0)])
    wait_channel_seq(srv.port, "stc", 6)
    r = open_sse(srv, "/sse?channel=stc", [("Last-Event-ID", start)])
    evs = r.collect(quiet=0.5, timeout=10, until=lambda ev: len(ev) >= len(missed))
    evs += r.collect(quiet=0.4, timeout=2)
    check_order(evs, "from the start id")
    got = sorted(pos_of(e) for e in evs)
    assert got == sorted(missed), \
        f"resuming from the start id {start!r} (holds {decode_token(start)}): got {got}, expected {sorted(missed)}"


def test_resume_token_on_another_instance(mock_kafka, kafka_bridge):
    """Instance A streams; the client reads 4 of 8 records and goes; 8 more
    are produced; instance B (same routes, same cluster) starts only then,
    so it never routed any of them. Resuming on B with A's token brings the
    12 missed records from Kafka and the 8 produced during that replay, no
    gap, no duplicate, in order per partition, then B's live records."""
    mk = mock_kafka({"ri": 2})
    a = kafka_bridge(mk, "-t", "ri=ric")
    s = open_sse(a, "/sse?channel=ric")
    allpos = produce_many(mk, "ri", [(f"k{i}", '{"i":%d}' % i, i % 2) for i in range(8)])
    seen = s.data_events(4)
    tok = s.last_id
    s.rst()
    allpos += produce_many(mk, "ri", [(f"k{i}", '{"i":%d}' % i, i % 2) for i in range(8, 16)])
    wait_channel_seq(a.port, "ric", 16)
    missed = sorted(set(allpos) - set(pos_of(e) for e in seen))
    b = kafka_bridge(mk, "-t", "ri=ric")
    r = open_sse(b, "/sse?channel=ric", [("Last-Event-ID", tok)])
    # live records while B reads the missed ones back from Kafka
    live = produce_many(mk, "ri", [(f"k{i}", '{"i":%d}' % i, i % 2) for i in range(16, 24)])
    want = sorted(missed + live)
    evs = r.collect(quiet=1.0, timeout=15, until=lambda ev: len(ev) >= len(want))
    evs += r.collect(quiet=0.4, timeout=2)
    check_order(evs, "instance B")
    got = sorted(pos_of(e) for e in evs)
    assert got == want, f"instance B delivered {got}, expected the missed {missed} and the live {live}"
    assert all("seq" not in e.obj() for e in evs if pos_of(e) in missed), "records B never routed carry seq"
    assert decode_token(evs[-1].id) == {("ri", p): max(o for t, pp, o in allpos + live if pp == p) for p in (0, 1)}
    (pos,) = produce_many(mk, "ri", [("live", '{"i":24}', 0)])
    e = r.data_events(1, timeout=5)[0]
    assert pos_of(e) == pos


def test_resume_token_with_a_filtered_partition(mock_kafka, kafka_bridge):
    """A stream with key=A over 2 partitions: A records on partition 0 are
    delivered while B records on partition 1 are filtered out. Tokens taken
    before and after those B records were passed over both resume to
    exactly the A records produced later (on both partitions), never a B
    record, never an A record twice."""
    mk = mock_kafka({"rf": 2})
    srv = kafka_bridge(mk, "-t", "rf=rfc")
    s = open_sse(srv, "/sse?channel=rfc&key=A")
    a0, = produce_many(mk, "rf", [("A", '{"n":0}', 0)])
    e0 = s.data_events(1)[0]
    tok_before = e0.id
    produce_many(mk, "rf", [("B", '{"n":%d}' % i, 1) for i in range(5)])
    wait_channel_seq(srv.port, "rfc", 6)
    a1, = produce_many(mk, "rf", [("A", '{"n":1}', 0)])
    e1 = s.data_events(1)[0]
    tok_after = s.last_id
    assert pos_of(e1) == a1
    s.close()
    later = produce_many(mk, "rf", [("B", '{"n":6}', 1), ("B", '{"n":7}', 1), ("A", '{"n":8}', 1),
                                    ("A", '{"n":9}', 0)])
    wait_channel_seq(srv.port, "rfc", 11)
    a_later = [later[2], later[3]]
    for tok, want, what in [(tok_after, sorted(a_later), "token after"),
                            (tok_before, sorted([a1] + a_later), "token before")]:
        r = open_sse(srv, "/sse?channel=rfc&key=A", [("Last-Event-ID", tok)])
        evs = r.collect(quiet=0.5, timeout=10, until=lambda ev: len(ev) >= len(want))
        evs += r.collect(quiet=0.4, timeout=2)
        check_order(evs, what)
        got = sorted(pos_of(e) for e in evs)
        assert got == want, f"{what} the filtered records: got {got}, expected {want}"
        assert all(e.obj()["key"] == "A" for e in evs)


def test_resume_bad_tokens_are_400(mock_kafka, kafka_bridge):
    """Malformed tokens get 400 BAD_REQUEST, by Last-Event-ID and by
    resume=: characters outside base64url, a lone character, a token cut
    short (in its text and in its bytes), bytes left over, version 0 and 2,
    5,000 characters, 300 partitions. So does a well-formed token of a
    topic the stream's channels do not read: one taken from a stream on
    channel cx (topic bx) used on cy (topic by), and one naming a topic no
    route consumes."""
    mk = mock_kafka({"bx": 1, "by": 1})
    srv = kafka_bridge(mk, "-t", "bx=cx", "-t", "by=cy")
    s = open_sse(srv, "/sse?channel=cx")
    mk.produce("bx", '{"x":1}', key="k")
    s.data_events(1)
    good = s.last_id
    raw = b64u_dec(good)
    bad = {
        "garbage": "!!not*a token!!",
        "one char": "A",
        "cut text": good[:-3],
        "cut bytes": b64u_enc(raw[:-1]),
        "trailing bytes": b64u_enc(raw + b"\x00"),
        "version 0": b64u_enc(b"\x00" + raw[1:]),
        "version 2": b64u_enc(b"\x02" + raw[1:]),
        "huge": "A" * 5000,
        "300 partitions": encode_token({("bx", p): 0 for p in range(300)}),
        "padding": good + "==",
    }
    foreign = {"token of channel cx on cy": good,
               "token of an unrouted topic": encode_token({("nope", 0): 3})}
    fails = []
    for name, tok in list(bad.items()) + list(foreign.items()):
        chan = "cy" if name in foreign else "cx"
        for how, path, headers in [
            ("Last-Event-ID", f"/sse?channel={chan}", [("Last-Event-ID", tok)]),
            ("resume=", f"/sse?channel={chan}&resume={urllib.parse.quote(tok, safe='')}", None),
        ]:
            r = sse_request(srv.port, path, headers)
            try:
                check_error(r, 400, "BAD_REQUEST", f"{name} by {how}")
            except AssertionError as e:
                fails.append(str(e)[:300])
    assert not fails, "\n".join(fails)
    # the good token still works
    r = open_sse(srv, "/sse?channel=cx", [("Last-Event-ID", good)])
    assert r.collect(quiet=0.3, timeout=2) == []
    assert srv.health()["status"] == "ok"


def test_resume_gap_then_live(mock_kafka, kafka_bridge):
    """The mock broker keeps about 5 MB per partition: after 700 records of
    10 KB the first ones are gone. Resuming with a token at offset 0 gets
    `event: error` with {"type":"error","code":"RESUME_GAP"} naming the
    first offset Kafka still has, the stream stays open, and the next live
    record comes (and nothing from before it)."""
    from test_state_resume import kafka_offsets
    mk = mock_kafka({"gp": 1})
    srv = kafka_bridge(mk, "-t", "gp=gpc", "--history", "64K",
                       "--client-queue", "100000", "--client-buffer", "64MiB")
    s = open_sse(srv, "/sse?channel=gpc")
    mk.produce("gp", '{"first":1}')
    s.data_events(1)
    tok = s.last_id
    s.close()

    def fill(lo, hi):
        mk.kcat_produce("gp", b"".join(b'{"g":%d,"pad":"%s"}\n' % (i, b"z" * 10000) for i in range(lo, hi)))
    fill(1, 400)
    wait_channel_seq(srv.port, "gpc", 400, timeout=30)
    fill(400, 700)
    wait_channel_seq(srv.port, "gpc", 700, timeout=30)
    begin, end = kafka_offsets(mk, "gp", 1)
    assert begin[0] > 2 and end[0] == 700, (begin, end)

    r = open_sse(srv, "/sse?channel=gpc", [("Last-Event-ID", tok)])
    e = r.next_event(10)
    assert e.event == "error", f"first event after resuming from before the log start: {e!r}"
    err = e.obj()
    assert err.get("type") == "error" and err.get("code") == "RESUME_GAP", err
    assert err.get("earliest") == {"gp:0": begin[0]}, f"RESUME_GAP earliest {err.get('earliest')!r}, Kafka has {begin[0]}"
    assert r.is_open(0.3), "stream ended after RESUME_GAP"
    (pos,) = produce_many(mk, "gp", [("live", '{"live":1}', 0)])
    evs = r.data_events(1, timeout=10)
    assert pos_of(evs[0]) == pos, f"after RESUME_GAP: {evs[0]!r}, expected the live record {pos}"


# ---------------------------------------------------------------- authentication

def test_auth_status_codes(kbridge, keyring):
    """--jwt-secret: no token on a non-public channel 401 (with
    WWW-Authenticate Bearer); a bad signature 401 (reason signature); a
    token whose kbridge.channels excludes the channel, or whose keys miss
    all those asked, 403 UNAUTHORIZED;
    good tokens stream by access_token= and by Authorization: Bearer;
    --public-channels news streams without a token, but not together with a
    channel that needs one."""
    srv = kbridge("-t", "orders", "-t", "news", "--public-channels", "news", "--jwt-secret", keyring.secret)
    key = keyring.good["hmac"]
    good = au.mint("HS256", key, au.claims(channels=["orders", "news"]))
    newsonly = au.mint("HS256", key, au.claims(channels=["news"]))

    r = sse_request(srv.port, "/sse?channel=orders")
    assert r.status == 401, f"no token: {r!r}"
    assert (r.header("WWW-Authenticate") or "").lower().startswith("bearer"), r
    error_body(r)
    au.check_401(sse_request(srv.port, f"/sse?channel=orders&access_token={au.tamper_signature(good)}"),
                 "signature", "bad signature by access_token=")
    au.check_401(sse_request(srv.port, "/sse?channel=orders",
                             [("Authorization", f"Bearer {au.tamper_signature(good)}")]),
                 "signature", "bad signature by Authorization")
    check_error(sse_request(srv.port, "/sse?channel=orders", [("Authorization", f"Bearer {newsonly}")]),
                403, "UNAUTHORIZED", "token without the channel")
    check_error(sse_request(srv.port, f"/sse?channel=orders&access_token={newsonly}"),
                403, "UNAUTHORIZED", "token without the channel (access_token=)")
    k1 = au.mint("HS256", key, au.claims(channels=["orders"], keys=["K1"]))
    check_error(sse_request(srv.port, "/sse?channel=orders&key=K2", [("Authorization", f"Bearer {k1}")]),
                403, "UNAUTHORIZED", "token keys [K1], key=K2 asked")
    check_stream_head(open_sse(srv, f"/sse?channel=orders&access_token={good}").resp, "access_token=")
    check_stream_head(open_sse(srv, "/sse?channel=orders", [("Authorization", f"Bearer {good}")]).resp,
                      "Authorization")
    check_stream_head(open_sse(srv, "/sse?channel=news").resp, "public channel without a token")
    r = sse_request(srv.port, "/sse?channels=news,orders")
    assert r.status == 401, f"a public and a protected channel without a token: {r!r}"
    assert f"access_token={good}" not in srv.log(), "token in the log"


def test_auth_token_keys_and_expiry(mock_kafka, kafka_bridge, keyring):
    """A token with kbridge.keys ["K1"] streams only K1 records (a public
    channel stays whole for it), also in a resume's replay. With --jwt-leeway 0 a token expiring in
    2 s gets `event: error` TOKEN_EXPIRED, not before its exp, and then the
    response ends (EOF)."""
    mk = mock_kafka({"orders": 1, "news": 1})
    srv = kafka_bridge(mk, "-t", "orders", "-t", "news", "--public-channels", "news",
                       "--jwt-secret", keyring.secret, "--jwt-leeway", "0")
    key = keyring.good["hmac"]
    k1 = au.mint("HS256", key, au.claims(channels=["orders"], keys=["K1"]))
    s = open_sse(srv, "/sse?channels=orders,news", [("Authorization", f"Bearer {k1}")])
    c = au.claims(channels=["orders"], exp_in=2)
    short = open_sse(srv, f"/sse?channel=orders&access_token={au.mint('HS256', key, c)}")
    produce_many(mk, "orders", [("K1", '{"i":0}', 0), ("K2", '{"i":1}', 0), ("K1", '{"i":2}', 0)])
    produce_many(mk, "news", [("K2", '{"n":1}', 0)])
    wait_channel_seq(srv.port, "orders", 3)
    evs = s.collect(timeout=10, until=lambda e: len(e) >= 3)
    evs += s.collect(quiet=0.5, timeout=3)         # anything that should not have come
    got = sorted((e.obj()["topic"], e.obj()["offset"]) for e in evs)
    assert got == [("news", 0), ("orders", 0), ("orders", 2)], f"token keys [K1]: got {got}"
    # a resume replay obeys the token too: from orders:0, K2 at orders:1 is
    # not replayed, K1 at orders:2 is
    tok = next(e.id for e in evs if e.obj()["topic"] == "orders" and e.obj()["offset"] == 0)
    r = open_sse(srv, "/sse?channels=orders,news", [("Authorization", f"Bearer {k1}"), ("Last-Event-ID", tok)])
    again = [(e.obj()["topic"], e.obj()["offset"]) for e in r.collect(quiet=0.5, timeout=5)]
    assert [x for x in again if x[0] == "orders"] == [("orders", 2)], f"replay with token keys [K1]: {again}"

    deadline = time.monotonic() + 8
    err = None
    while err is None:
        e = short.next_event(max(0.01, deadline - time.monotonic()))
        if e.event == "error":
            err = e
    now = time.time()
    assert err.obj().get("code") == "TOKEN_EXPIRED", err
    assert now >= c["exp"] - 0.3, f"TOKEN_EXPIRED {c['exp'] - now:.2f}s before exp"
    end = time.monotonic() + 3
    while True:
        try:
            b = short.block(max(0.01, end - time.monotonic()))
            assert not b.is_data(), f"event after TOKEN_EXPIRED: {b!r}"
        except Closed:
            break
        except TimeoutError:
            raise AssertionError("the response did not end within 3 s of TOKEN_EXPIRED")


# ---------------------------------------------------------------- limits and observability

@pytest.mark.one_process("--max-clients is counted by each worker")
def test_max_clients_counts_sse_with_websocket(kbridge):
    """--max-clients 2: one SSE and one WebSocket client fill it; a third
    SSE and a WebSocket upgrade get 503 with Retry-After: 1. When the SSE
    client goes, a new SSE client gets in."""
    srv = kbridge("-t", "lim", "--max-clients", "2")
    s1 = open_sse(srv, "/sse?channel=lim")
    srv.ws("/ws?channel=lim")
    r = sse_request(srv.port, "/sse?channel=lim")
    check_error(r, 503, None, "third client (SSE)")
    assert r.header("Retry-After") == "1", r
    r = srv.http("GET", "/ws", headers=wsutil.upgrade_headers())
    assert r.status == 503, f"WebSocket upgrade with one SSE and one WebSocket client at --max-clients 2: {r!r}"
    s1.close()
    deadline = time.monotonic() + 5
    while srv.health()["clients"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.health()["clients"] == 1
    open_sse(srv, "/sse?channel=lim")
    r = sse_request(srv.port, "/sse?channel=lim")
    assert r.status == 503, r


@pytest.mark.one_process("limits per address are kept by each worker for its own connections")
def test_max_clients_per_ip_counts_sse(kbridge):
    """--max-clients-per-ip 1: a second SSE stream from 127.0.0.5 gets 429,
    so does a WebSocket upgrade from it; 127.0.0.6 still gets a stream."""
    srv = kbridge("-t", "lim", "--max-clients-per-ip", "1")
    a = srv.track(SSE.open(srv.port, "/sse?channel=lim", src="127.0.0.5"))
    check_error(sse_request(srv.port, "/sse?channel=lim", src="127.0.0.5"), 429, None, "second SSE from one address")
    from test_admin_limits import upgrade
    r, _ = upgrade(srv.port, "127.0.0.5", tracker=srv)
    assert r.status == 429, f"WebSocket upgrade beside an SSE stream from the same address: {r!r}"
    srv.track(SSE.open(srv.port, "/sse?channel=lim", src="127.0.0.6"))
    a.close()


def test_observability_counts_sse_clients(kbridge):
    """One SSE and one WebSocket client: /health clients 2, /stats
    sse_clients 1 and client_list transports "sse" and "websocket",
    /metrics kbridge_sse_clients 1 and kbridge_clients 2, the log line
    `sse open`; when the SSE client goes, 0, 1 and `sse closed`."""
    srv = kbridge("-t", "ob")
    s = open_sse(srv, "/sse?channel=ob")
    srv.ws("/ws?channel=ob")

    def state():
        st = srv.http("GET", "/stats").json()
        m = au.metrics(srv)
        return (srv.health()["clients"], st.get("sse_clients"),
                sorted(c.get("transport") for c in st.get("client_list", [])),
                m.get(("kbridge_sse_clients", ())), m.get(("kbridge_clients", ())))
    want = (2, 1, ["sse", "websocket"], 1.0, 2.0)
    got = settled(state, want)
    assert got == want, \
        f"(health clients, sse_clients, transports, kbridge_sse_clients, kbridge_clients) = {got}"
    assert "sse open" in srv.log(), srv.log_tail()
    s.close()
    au.wait_for(lambda: state()[0] == 1, 5, "the SSE client gone from /health")
    assert state() == (1, 0, ["websocket"], 0.0, 1.0), state()
    au.wait_for(lambda: "sse closed" in srv.log(), 3, "log line 'sse closed'")


# ---------------------------------------------------------------- slow readers

# Room for bursts a prompt reader takes (kbridge fetches at most 64 KiB per
# partition at a time here) and for the fast reader, a Python thread, falling
# a moment behind on a loaded machine (256 KiB, 32 records, was not always
# enough there): far less than the 12.8 MB a stalled reader is sent; under
# conflate the queue holds a record of every one of the 20 keys, so a new
# record always finds its key's older one to replace.
# The slow stream holds at most its 4 KiB receive buffer, the server's send
# buffer for it (about 3 MB here) and --client-buffer: well under the 12.8
# MB flood, so it is always found slow. The fast stream's allowance is the
# same 4 MiB plus its own, larger, kernel buffers: a reader thread that
# stalls for a moment on a loaded machine must not be taken for slow.
SLOW_FLAGS = ["--client-buffer", "4MiB", "--client-queue", "1024", "-X", "max.partition.fetch.bytes=65536"]
PARTS, PER_PART, PAD = 4, 400, 8000      # 12.8 MB: more than the kernel holds for one socket


def flood_records(mk, topic, keys, rounds=1, pause=0.0):
    """PARTS x PER_PART records of ~8 KB, value {"p","i","pad"}, key
    p<P>-k<i % keys> (each key lives in one partition). rounds > 1 sends
    them in that many slices (every partition's next slice, then `pause`
    seconds), so that they arrive over a second or two rather than at once."""
    step = PER_PART // rounds
    for r in range(rounds):
        if r and pause:
            time.sleep(pause)
        for p in range(PARTS):
            mk.kcat_produce(topic, b"".join(b'p%d-k%d\t{"p":%d,"i":%d,"pad":"%s"}\n'
                                            % (p, i % keys, p, i, b"x" * PAD)
                                            for i in range(r * step, PER_PART if r == rounds - 1 else (r + 1) * step)),
                            partition=p, key_delim="\t")


def drain(s, timeout=30):
    """Reads a stalled stream to its end or until quiet: (data, errors, ended)."""
    data, errors, ended = [], [], False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            b = s.block(1.0)
        except TimeoutError:
            break
        except Closed:
            ended = True
            break
        if b.event == "error":
            errors.append(b.obj())
        elif b.is_data():
            data.append(b)
    return data, errors, ended


@pytest.mark.parametrize("policy", ["drop-oldest", "conflate", "disconnect"])
def test_slow_sse_reader(mock_kafka, kafka_bridge, policy):
    """A stream with a 4 KiB receive buffer that stops reading while 12.8
    MB of records arrive (in four slices over about a second), beside a
    fast stream read in a thread.
    drop-oldest: the slow stream then reads, in offset order per
    partition, records plus `event: error` SLOW_CONSUMER notices whose
    `dropped` counts add up with the records to all of them, and goes on
    live. conflate: the newest value of every key arrives, each key's
    values in order. disconnect: the response ends, and reconnecting with
    the last id read (as EventSource does, after each end) brings every
    other record exactly once. In every case the fast
    stream gets every record and /health answers."""
    mk = mock_kafka({"fl": PARTS})
    srv = kafka_bridge(mk, "-t", "fl=flc", "--slow-client", policy, *SLOW_FLAGS)
    fast = BlockReader(open_sse(srv, "/sse?channel=flc"), "fast")
    slow = open_sse(srv, "/sse?channel=flc", rcvbuf=4096)
    total = PARTS * PER_PART
    flood_records(mk, "fl", 5, rounds=4, pause=0.2)
    wait_channel_seq(srv.port, "flc", total, timeout=30)
    fast.wait_for(lambda r: len(r.data()) >= total, 30, f"{total} records")
    assert srv.health()["status"] == "ok"
    fast.check()
    assert not fast.errors(), f"fast stream got {[e.obj() for e in fast.errors()][:3]}"
    check_order(fast.data(), "fast")

    if policy == "disconnect":
        au.wait_for(lambda: srv.health()["clients"] == 1, 15, "the slow stream disconnected")
        data, errors, ended = drain(slow)
        assert ended, "--slow-client disconnect: the slow stream's response did not end"
        check_order(data, "slow, disconnected")
        # What EventSource does next: reconnect with the last id it had
        # (again after each end), reading promptly: the rest comes, none
        # twice. A replay from the history is queued at once and judged by
        # --client-queue/--client-buffer, so it may take more than one
        # reconnect; each must go on from where the previous one ended.
        both, last, rounds = list(data), slow.last_id, []
        for _ in range(20):
            if len(both) >= total:
                break
            r = BlockReader(open_sse(srv, "/sse?channel=flc", [("Last-Event-ID", last)]), "resumed")
            r.wait_for(lambda x: x.closed or len(both) + len(x.data()) >= total, 30, "the records left or an end")
            time.sleep(0.3)
            r.stop()
            assert not r.errors(), r.errors()[:2]
            both += r.data()
            rounds.append((len(r.data()), r.closed))
            last = r.sse.last_id or last
        check_order(both, "disconnected, then resumed")
        assert sorted(pos_of(e) for e in both) == [("fl", p, o) for p in range(PARTS) for o in range(PER_PART)], \
            f"{len(data)} read before the disconnect, then per reconnect (records, end): {rounds}"
        note = (f"e2e: SSE --slow-client disconnect: {len(data)} records before the disconnect, "
                f"then {len(rounds)} reconnect(s) to read the other {total - len(data)}: {rounds}")
        conftest.note(note)
        print(note)
    else:
        time.sleep(0.5)
        assert srv.health()["clients"] == 2, f"{policy}: slow stream disconnected"
        data, errors, ended = drain(slow)
        assert not ended, f"{policy}: the slow stream's response ended"
        assert all(e.get("code") == "SLOW_CONSUMER" and isinstance(e.get("dropped"), int) and e["dropped"] > 0
                   for e in errors), errors[:3]
        check_order(data, f"slow {policy}", per_key=(policy == "conflate"))
        print(f"{policy}: the slow stream read {len(data)} of {total} records, "
              f"{len(errors)} SLOW_CONSUMER notices, {sum(e['dropped'] for e in errors)} dropped")
        if policy == "drop-oldest":
            assert errors, f"no SLOW_CONSUMER for a stream that read {len(data)} of {total} records"
            dropped = sum(e["dropped"] for e in errors)
            assert len(data) + dropped == total, \
                f"{len(data)} records + {dropped} dropped (notices {len(errors)}) != {total} produced"
        else:
            last = {}
            for e in data:
                o = e.obj()
                last[o["key"]] = o["data"]["i"]
            want = {f"p{p}-k{k}": max(i for i in range(PER_PART) if i % 5 == k) for p in range(PARTS) for k in range(5)}
            assert last == want, f"conflate: newest values {last}, expected {want}"
        (pos,) = produce_many(mk, "fl", [("live", '{"live":1}', 0)])
        e = slow.data_events(1, timeout=10)[0]
        assert pos_of(e) == pos
    fast.stop()
    assert srv.health()["status"] == "ok"


@pytest.mark.parametrize("source", ["history", "kafka"])
def test_resume_larger_than_the_client_buffer(mock_kafka, kafka_bridge, source):
    """Default limits (--client-buffer 1 MiB, --client-queue 1024,
    drop-oldest). A stream breaks at its start; 12.8 MB of records (1,600
    of 8 KB) come meanwhile; the reader reconnects with its start id and
    reads continuously (a thread, default socket buffers, as a browser
    has). From the same instance (replay from its
    history) and from a second instance started after the records (replay
    from Kafka), every record arrives, once, in order per partition, with
    no SLOW_CONSUMER: a resume has no gap, whatever the outage's size."""
    mk = mock_kafka({"fl": PARTS})
    a = kafka_bridge(mk, "-t", "fl=flc")
    s = open_sse(a, "/sse?channel=flc")
    start = s.start_id
    s.close()
    flood_records(mk, "fl", 5)
    total = PARTS * PER_PART
    wait_channel_seq(a.port, "flc", total, timeout=30)
    srv = a if source == "history" else kafka_bridge(mk, "-t", "fl=flc")
    r = BlockReader(open_sse(srv, "/sse?channel=flc", [("Last-Event-ID", start)]), f"resume from {source}")
    try:
        r.wait_for(lambda x: len(x.data()) + sum(e.obj().get("dropped", 0) for e in x.errors()) >= total,
                   30, f"{total} records")
        time.sleep(0.3)
    finally:
        r.stop()
    assert not r.errors(), f"resume from {source}: {len(r.data())} records and {[e.obj() for e in r.errors()]}"
    check_order(r.data(), f"resume from {source}")
    assert sorted(pos_of(e) for e in r.data()) == [("fl", p, o) for p in range(PARTS) for o in range(PER_PART)]


# ---------------------------------------------------------------- many clients

N_MANY = 2000


def test_2000_sse_clients_one_record(mock_kafka, kafka_bridge):
    """2,000 concurrent SSE streams on one channel (one process, raw
    sockets) each get the one record produced, with the same id; /health
    and /stats count them; user-space memory stays at most 4 KiB per idle
    client once the record went out (release build; noted for all)."""
    from test_load import raise_nofile
    raise_nofile(N_MANY + 300)
    mk = mock_kafka({"many": 1})
    srv = kafka_bridge(mk, "-t", "many=manyc", nofile=N_MANY + 1000)
    for _ in range(3):
        srv.health()
    time.sleep(0.3)
    rss_before = srv.rss()
    t0 = time.monotonic()
    clients = [srv.track(SSE.open(srv.port, "/sse?channel=manyc", timeout=10)) for _ in range(N_MANY)]
    t_connect = time.monotonic() - t0
    assert settled(lambda: srv.health()["clients"], N_MANY) == N_MANY
    assert settled(lambda: srv.http("GET", "/stats").json().get("sse_clients"), N_MANY) == N_MANY
    (pos,) = produce_many(mk, "many", [("k", '{"one":1}', 0)])
    ids = set()
    for i, c in enumerate(clients):
        e = c.next_event(10)
        assert pos_of(e) == pos, f"client {i}: {e!r}"
        ids.add(e.id)
    assert len(ids) == 1, f"{len(ids)} different ids for one record"
    time.sleep(0.5)
    rss_after = srv.rss()
    per_client = (rss_after - rss_before) / N_MANY
    line = (f"e2e: idle SSE client RSS: {per_client:.0f} bytes/client ({N_MANY} streams, VmRSS "
            f"{rss_before // 1024} -> {rss_after // 1024} KiB, connect {t_connect:.1f}s)")
    conftest.note(line)
    print(line)
    for c in clients:
        c.close()
    au.wait_for(lambda: srv.health()["clients"] == 0, 10, "clients back to 0")
    if not conftest.is_sanitized_build():
        assert per_client <= 4096, line


# ---------------------------------------------------------------- shutdown and bad input

def test_stream_after_requests_on_a_kept_alive_connection(kbridge):
    """A proxy or browser reuses a kept-alive connection: GET /health, then
    GET /sse on the same connection (sent after the answer, and pipelined
    behind it) gets the stream; so does an HTTP/1.0 request."""
    srv = kbridge("-t", "ka")
    for pipelined in (False, True):
        c = srv.track(wsutil.Conn.open(srv.port))
        if pipelined:
            c.send(wsutil.build_request("GET", "/health") + wsutil.build_request("GET", "/sse?channel=ka"))
        else:
            c.send(wsutil.build_request("GET", "/health"))
        r = c.read_response()
        assert r.status == 200 and "keep-alive" in r.tokens("Connection"), r
        if not pipelined:
            c.send(wsutil.build_request("GET", "/sse?channel=ka"))
        r = c.read_response(head=True)
        check_stream_head(r, f"/sse after /health on one connection (pipelined={pipelined})")
        assert c.read_until(b"\n\n").startswith(b"retry: 1000\n"), c.buf
    c = srv.track(wsutil.Conn.open(srv.port))
    c.send(wsutil.build_request("GET", "/sse?channel=ka", version="HTTP/1.0"))
    r = c.read_response(head=True)
    assert r.status == 200 and r.header("Content-Type") == SSE_TYPE, f"HTTP/1.0 GET /sse: {r!r}"
    assert c.read_until(b"\n\n").startswith(b"retry: 1000\n"), c.buf
    au.wait_for(lambda: srv.health()["clients"] == 3, 5, "three streams")


def test_sigterm_ends_sse_responses(mock_kafka, kafka_bridge):
    """Two idle streams (another channel) and one stalled stream (4 KiB
    receive buffer, not reading, 8 MB of records behind it); SIGTERM: each idle response ends
    with a FIN (EOF, not a reset) within --drain-timeout 2, new streams are
    refused, kbridge exits 0 within the drain timeout (plus 3 s)."""
    mk = mock_kafka({"sd": 2, "idle": 1})
    srv = kafka_bridge(mk, "-t", "sd", "-t", "idle", "--drain-timeout", "2", "--client-buffer", "4MiB",
                       "--client-queue", "100000")
    streams = [open_sse(srv, "/sse?channel=idle") for _ in range(2)]
    stalled = open_sse(srv, "/sse?channel=sd", rcvbuf=4096)
    for p in range(2):
        mk.kcat_produce("sd", b"".join(b'{"i":%d,"pad":"%s"}\n' % (i, b"y" * 8000) for i in range(500)),
                        partition=p)
    wait_channel_seq(srv.port, "sd", 1000, timeout=30)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    for i, s in enumerate(streams):
        how = None
        while how is None:
            left = 2.5 - (time.monotonic() - t0)
            assert left > 0, f"stream {i} still open {2.5}s after SIGTERM (--drain-timeout 2)"
            try:
                b = s.block(left)
                assert not b.is_data(), b
            except TimeoutError:
                continue
            except Closed as e:
                how = "reset" if "reset" in str(e) else "eof"
        assert how == "eof", f"stream {i} ended by a reset, not a FIN"
    try:
        r = sse_request(srv.port, "/sse?channel=sd", timeout=2)
        assert r.status == 503, f"a new stream while shutting down: {r!r}"
    except (ConnectionRefusedError, ConnectionResetError, Closed):
        pass
    rc = srv.wait_exit(5 - (time.monotonic() - t0))
    assert rc == 0, f"exit status {rc} (None: still running 5 s after SIGTERM with --drain-timeout 2)"
    assert stalled.sock is not None


def test_bad_input_leaves_the_server_up(mock_kafka, kafka_bridge):
    """Beside a well-behaved stream: a /sse request announcing a body whose
    bytes are a request, one with garbage pipelined after its head, a
    stream whose client sends 256 KiB after the head, and a stream reset
    (RST) mid-stream. No bytes sent are answered as another request, the
    well-behaved stream and the one that sent bytes (ignored) get every
    record, also while 300 streams open and close (FIN or RST) at once, /health answers 200 and the
    client count comes back to what is open."""
    mk = mock_kafka({"bi": 1})
    srv = kafka_bridge(mk, "-t", "bi=bic")
    watcher = open_sse(srv, "/sse?channel=bic")
    for what, headers, early in [
        ("body", [("Content-Length", "22")], b"GET /nope HTTP/1.1\r\n\r\n"),
        ("pipelined garbage", None, b"\x00\xffGARBAGE\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]:
        c = SSE.open(srv.port, "/sse?channel=bic", headers, early=early, expect=None, start=False)
        try:
            assert c.resp.status in (200, 400), f"{what}: {c.resp!r}"
            c.is_open(0.5)
            assert b"HTTP/1." not in c.buf, f"{what}: bytes after the head answered as a request: {c.buf[:300]!r}"
            if c.resp.status == 200:
                assert c.buf.startswith(b"retry: 1000\n"), f"{what}: {c.buf[:200]!r}"
        finally:
            c.close()
    chatty = open_sse(srv, "/sse?channel=bic")
    chatty.sock.setblocking(False)
    sent = 0
    junk = b"x" * 65536
    deadline = time.monotonic() + 3
    while sent < 256 * 1024 and time.monotonic() < deadline:
        try:
            sent += chatty.sock.send(junk)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
    chatty.sock.setblocking(True)
    victim = open_sse(srv, "/sse?channel=bic")
    produce_many(mk, "bi", [("k", '{"i":0}', 0)])
    victim.data_events(1)
    victim.rst()
    produce_many(mk, "bi", [("k", '{"i":%d}' % i, 0) for i in range(1, 50)])
    evs = watcher.data_events(50, timeout=10)
    assert [e.obj()["offset"] for e in evs] == list(range(50))
    assert srv.health()["status"] == "ok"
    evs = chatty.data_events(50, timeout=10)
    assert [e.obj()["offset"] for e in evs] == list(range(50)), \
        "the stream whose client sent bytes after the request (ignored, says the protocol)"
    au.wait_for(lambda: srv.health()["clients"] == 2, 5, "client count back to the two open streams")
    fresh = open_sse(srv, "/sse?channel=bic")
    produce_many(mk, "bi", [("k", '{"i":50}', 0)])
    assert fresh.data_events(1)[0].obj()["offset"] == 50
    # churn: 300 streams opened while records flow, each closed (FIN or
    # RST) at once or after reading its start
    futs = []
    for i in range(300):
        if i % 10 == 0:
            futs.append(mk.produce("bi", '{"c":%d}' % i, key="c", wait=False))
        if i % 3 == 0:
            c = SSE.open(srv.port, "/sse?channel=bic", start=False, expect=None)
        else:
            c = SSE.open(srv.port, "/sse?channel=bic")
        c.rst() if i % 2 else c.close()
    for f in futs:
        f.get(10)
    wait_channel_seq(srv.port, "bic", 81)
    assert [e.obj()["offset"] for e in watcher.data_events(31, timeout=10)] == list(range(50, 81))
    au.wait_for(lambda: srv.health()["clients"] == 3, 5, "client count back to the three open streams")


def test_sse_over_tls_and_not_on_the_admin_listener(kbridge_tls, tls_certs):
    """With --tls-cert, curl reads the stream over https (verifying the test
    CA); the --admin-listen port does not serve /sse (404)."""
    admin = conftest.free_port()
    srv = kbridge_tls("-t", "tl", "--admin-listen", f"127.0.0.1:{admin}")
    curl = CurlStream(f"https://127.0.0.1:{srv.port}/sse?channel=tl", extra=["--cacert", tls_certs.ca])
    try:
        out = curl.wait_for(lambda o: b"\r\n\r\n" in o and b"\nid: " in o.split(b"\r\n\r\n", 1)[1]
                            and o.endswith(b"\n\n"), 5, "stream start over TLS")
    finally:
        curl.stop()
    status, headers, body = curl.split()
    assert status == 200 and dict((k.lower(), v) for k, v in headers).get("content-type") == SSE_TYPE, out[:300]
    assert body.startswith(b"retry: 1000\n"), body[:100]
    r = sse_request(admin, "/sse?channel=tl")
    assert r.status == 404, f"/sse on the admin listener: {r!r}"


@pytest.mark.one_process("--upgrade-rate is kept by each worker for its own connections")
def test_upgrade_rate_counts_sse(kbridge):
    """--upgrade-rate 1 (burst 2): two SSE streams from 127.0.0.9 open at
    once, a third gets 429 with Retry-After; another address is not
    affected."""
    srv = kbridge("-t", "ur", "--upgrade-rate", "1")
    for _ in range(2):
        srv.track(SSE.open(srv.port, "/sse?channel=ur", src="127.0.0.9"))
    r = sse_request(srv.port, "/sse?channel=ur", src="127.0.0.9")
    check_error(r, 429, None, "third SSE stream within a second from one address at --upgrade-rate 1")
    assert r.header("Retry-After") is not None, r
    srv.track(SSE.open(srv.port, "/sse?channel=ur", src="127.0.0.10"))
