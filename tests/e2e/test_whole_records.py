"""Every record arrives whole: all of its headers, a value of any size, a
value nested to any depth (docs/protocol.md#headers, #slow_consumer,
#data-messages, #messagepack).

- Headers (`--headers`): all of a record's headers, in order, up to 10,000
  per record; beyond that the first 10,000 and `"headers_truncated":N`.
  The same live, in a resume served from kbridge's history, and in a resume
  served from Kafka (`--history 0`), to JSON and to MessagePack clients.
- Size: a client whose output queue is empty takes the next message
  whatever its size; `--client-buffer` bounds only what waits behind the
  message being written. Records of 1 MB reach a reading client whole; a
  client that stops reading loses records under the slow-client policy
  (with a `SLOW_CONSUMER` notice just where the gap is) while kbridge stays
  healthy and other clients lose nothing.
- Nesting: a value nested up to 1,024 levels deep is JSON, in both formats
  the same nested value; deeper, it is text that is not JSON, and both
  formats carry the original text as a string.

Records go into librdkafka's mock cluster (build/mockkafka) from
kafka-python (a producer of this file's own with a 16 MiB max_request_size)
and, for the records with many headers, from kcat (kafka-python refuses a
header without value). Clients are raw WebSocket clients (wsutil);
MessagePack is decoded with Debian's python3-msgpack and, where that
decoder's fixed stack (1,024 levels in all) is too shallow, with the small
independent decoder below."""
import base64
import json
import os
import socket
import struct
import sys
import threading
import time

import pytest

import wsutil
from conftest import BulkReader, decode_message, is_data, mp_pack, mp_unpack, wait_channel_seq, ws_subscribe
from wsutil import OP_BINARY, OP_TEXT

MAX_HEADERS = 10_000          # headers per record delivered at most
MAX_DEPTH = 1_024             # deepest payload nesting that is still JSON
MAX_REQUEST = 16 << 20        # the test producer's max_request_size


# ---------------------------------------------------------------- helpers

@pytest.fixture
def big_producer():
    """big_producer(mk): a kafka-python producer for records of several MB
    (max_request_size 16 MiB). Requested after mock_kafka, so it is closed
    before the mock stops."""
    made = []

    def make(mk):
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=mk.bootstrap, linger_ms=0, acks=1, retries=5,
                          request_timeout_ms=20000, max_block_ms=20000,
                          max_request_size=MAX_REQUEST, buffer_memory=64 << 20)
        made.append(p)
        return p
    yield make
    for p in made:
        try:
            p.close(2)
        except Exception:
            pass


def send(prod, topic, value, key=None, headers=None, timeout=30):
    """One record, waited for; returns its offset."""
    enc = lambda v: v.encode("utf-8") if isinstance(v, str) else v
    md = prod.send(topic, value=enc(value), key=enc(key), partition=0,
                   headers=headers).get(timeout)
    return md.offset


def b64(b):
    return base64.b64encode(b).decode("ascii")


def make_headers(n):
    """n headers h0..h{n-1}, every value distinct: UTF-8 text (some of it
    non-ASCII), one empty, one not UTF-8 (h7) and one without value (h11)."""
    hs = []
    for i in range(n):
        if i == 7:
            v = b"\xff\xfe not utf-8 %d" % i
        elif i == 11:
            v = None
        elif i == 13:
            v = b""
        else:
            v = ("v%d-\u00e9\u20ac" % i).encode("utf-8")
        hs.append(("h%d" % i, v))
    return hs


def wire_headers(hs):
    """The "headers" array docs/protocol.md#headers gives for hs."""
    out = []
    for name, v in hs:
        if v is None:
            out.append([name, None])
        else:
            try:
                out.append([name, v.decode("utf-8")])
            except UnicodeDecodeError:
                out.append([name, {"base64": b64(v)}])
    return out


def check_headers(obj, hs, where):
    """obj carries the first MAX_HEADERS of hs, in order, and
    headers_truncated exactly when some were left out."""
    want = wire_headers(hs[:MAX_HEADERS])
    got = obj.get("headers")
    assert isinstance(got, list), f"{where}: no headers array; fields {sorted(obj)}"
    if got != want:
        i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        raise AssertionError(f"{where}: {len(got)} headers, want {len(want)}; first difference at "
                             f"#{i}: got {got[i:i + 2]!r}, want {want[i:i + 2]!r}")
    left = len(hs) - MAX_HEADERS
    if left > 0:
        assert obj.get("headers_truncated") == left, \
            f"{where}: headers_truncated {obj.get('headers_truncated', 'absent')!r}, want {left}"
        fields = list(obj)
        assert fields.index("headers_truncated") == fields.index("headers") + 1, \
            f"{where}: headers_truncated should follow headers: {fields}"
    else:
        assert "headers_truncated" not in obj, \
            f"{where}: headers_truncated {obj['headers_truncated']!r} though all {len(hs)} were sent"


def recv_obj(ws, fmt, timeout):
    """The next server message of a "json" or "msgpack" client, decoded;
    asserts the frame type of the format."""
    op, payload = ws.recv_message(timeout)
    assert op == (OP_TEXT if fmt == "json" else OP_BINARY), \
        f"{fmt} client got opcode {op}: {payload[:200]!r}"
    return decode_message(op, payload)


def next_data(ws, fmt, timeout=10.0, where=""):
    """The next data message; acks are skipped, anything else fails."""
    deadline = time.monotonic() + timeout
    while True:
        obj = recv_obj(ws, fmt, max(0.01, deadline - time.monotonic()))
        if is_data(obj):
            return obj
        assert obj.get("type") == "ack", f"{where}: unexpected {obj!r}"


def brief(v):
    """A short description of a value that may nest thousands of levels."""
    if isinstance(v, (list, dict)):
        return f"{type(v).__name__} of {len(v)}"
    return f"{type(v).__name__} {repr(v)[:80]}"


def strict_diff(a, b):
    """None when a and b are equal with the same types (bool, int, float,
    str, bytes kept apart), else where they differ. Iterative: values may
    nest thousands of levels."""
    stack = [(a, b, "$")]
    while stack:
        x, y, path = stack.pop()
        where = path if len(path) < 120 else path[:60] + "..." + path[-40:]
        if type(x) is not type(y):
            return f"{where}: {brief(x)} vs {brief(y)}"
        if isinstance(x, dict):
            if list(x) != list(y):
                return f"{where}: keys {list(x)[:10]} vs {list(y)[:10]}"
            stack += [(x[k], y[k], f"{where}.{k}") for k in x]
        elif isinstance(x, list):
            if len(x) != len(y):
                return f"{where}: length {len(x)} vs {len(y)}"
            stack += [(p, q, f"{where}[{i}]") for i, (p, q) in enumerate(zip(x, y))]
        elif x != y:
            return f"{where}: {brief(x)} vs {brief(y)}"
    return None


def assert_same(got, want, where):
    d = strict_diff(got, want)
    assert d is None, f"{where}: {d}"


def json_loads_deep(raw):
    """json.loads of text nesting a little over a thousand levels (the
    default recursion limit is 1,000)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        return json.loads(raw)
    finally:
        sys.setrecursionlimit(old)


def mp_decode_deep(buf):
    """A MessagePack decoder without a depth limit (python3-msgpack stops
    at 1,024 levels in all), for the types kbridge sends: exactly one value,
    str as str, bin as bytes; ext and reserved bytes fail."""
    pos = 0

    def take(n):
        nonlocal pos
        assert pos + n <= len(buf), f"MessagePack truncated at byte {pos}"
        pos += n
        return buf[pos - n:pos]

    def uint(n):
        return int.from_bytes(take(n), "big")

    root = []
    stack = [[root, 1, None, False]]    # [container, items left, pending key, is map]
    while stack:
        top = stack[-1]
        if top[1] == 0:
            stack.pop()
            continue
        b = take(1)[0]
        new = None
        if b <= 0x7F:
            v = b
        elif b >= 0xE0:
            v = b - 0x100
        elif 0x80 <= b <= 0x8F:
            v, new = {}, (b & 0x0F, True)
        elif 0x90 <= b <= 0x9F:
            v, new = [], (b & 0x0F, False)
        elif 0xA0 <= b <= 0xBF:
            v = take(b & 0x1F).decode("utf-8")
        elif b == 0xC0:
            v = None
        elif b in (0xC2, 0xC3):
            v = b == 0xC3
        elif b in (0xC4, 0xC5, 0xC6):
            v = bytes(take(uint(1 << (b - 0xC4))))
        elif b == 0xCA:
            v = struct.unpack("!f", take(4))[0]
        elif b == 0xCB:
            v = struct.unpack("!d", take(8))[0]
        elif 0xCC <= b <= 0xCF:
            v = uint(1 << (b - 0xCC))
        elif 0xD0 <= b <= 0xD3:
            n = 1 << (b - 0xD0)
            v = int.from_bytes(take(n), "big", signed=True)
        elif 0xD9 <= b <= 0xDB:
            v = take(uint(1 << (b - 0xD9))).decode("utf-8")
        elif b in (0xDC, 0xDD):
            v, new = [], (uint(2 if b == 0xDC else 4), False)
        elif b in (0xDE, 0xDF):
            v, new = {}, (uint(2 if b == 0xDE else 4), True)
        else:
            raise AssertionError(f"MessagePack byte {b:#x} at {pos - 1}: not a type kbridge sends")
        cont = top[0]
        if isinstance(cont, dict):
            if top[2] is None:
                assert new is None and isinstance(v, str), f"map key at {pos - 1} is not a string"
                top[2] = v
                continue            # the value of this pair comes next
            cont[top[2]] = v
            top[2] = None
        else:
            cont.append(v)
        top[1] -= 1
        if new is not None:
            stack.append([v, new[0], None, new[1]])
    assert pos == len(buf), f"{len(buf) - pos} bytes after the MessagePack value"
    return root[0]


def nested_text(shape, depth, leaf=7):
    """JSON text nesting `depth` arrays ([[[7]]]) or objects
    ({"a":{"a":7}})."""
    if shape == "array":
        return "[" * depth + str(leaf) + "]" * depth
    return '{"a":' * depth + str(leaf) + "}" * depth


def nested_value(shape, depth, leaf=7):
    """The Python value of nested_text(shape, depth), built without
    recursion."""
    v = leaf
    for _ in range(depth):
        v = [v] if shape == "array" else {"a": v}
    return v


def mp_request(ws, obj, timeout=5.0):
    ws.send_frame(OP_BINARY, mp_pack(obj))
    return recv_obj(ws, "msgpack", timeout)


def read_until_snapshot(ws, fmt, decode, timeout=10.0):
    """Reads past data messages to the next snapshot; returns it decoded."""
    deadline = time.monotonic() + timeout
    while True:
        op, payload = ws.recv_message(max(0.01, deadline - time.monotonic()))
        assert op == (OP_TEXT if fmt == "json" else OP_BINARY), (op, payload[:200])
        if b"snapshot" not in payload:
            continue
        obj = decode(payload)
        if obj.get("type") == "snapshot":
            return obj
        assert is_data(obj), f"unexpected {sorted(obj)} {obj.get('type')!r}"


# ---------------------------------------------------------------- headers

def kcat_with_headers(mk, topic, key, value, hs):
    """One record with headers hs, produced by kcat (librdkafka): `-H name`
    without `=` is a header without value, which kafka-python's send()
    refuses (it asserts every header value is bytes). Values must not
    contain NUL (kcat takes them from argv)."""
    args = []
    for name, v in hs:
        args += [b"-H", name.encode() if v is None else name.encode() + b"=" + v]
    mk.kcat_produce(topic, key + b"\t" + value + b"\n", partition=0, key_delim="\t",
                    extra=args + ["-X", "message.max.bytes=16000000"])


def headers_everywhere(mk, kafka_bridge, n_headers):
    """A record with n_headers headers (offset 1, after a plain record at
    offset 0), produced once, received by a JSON and a MessagePack client
    of instance A live, of A again by resume (from A's history: the record
    keeps its seq) and of instance B (--history 0: from Kafka, no seq).
    Every received copy is checked with check_headers."""
    a = kafka_bridge(mk, "-t", "wh=whc", "--offset", "earliest", "--headers")
    b = kafka_bridge(mk, "-t", "wh=whc", "--offset", "earliest", "--headers", "--history", "0")
    live_j = a.ws()
    ws_subscribe(live_j, {"type": "subscribe", "channel": "whc"})
    live_m = a.ws(path="/ws?format=msgpack")
    ack = mp_request(live_m, {"type": "subscribe", "channel": "whc", "id": 1})
    assert ack.get("type") == "ack", ack
    hs = make_headers(n_headers)
    kcat_with_headers(mk, "wh", b"k0", b'{"first":true}', [])
    kcat_with_headers(mk, "wh", b"k1", b'{"headers":%d}' % n_headers, hs)
    wait_channel_seq(a.port, "whc", 2)
    wait_channel_seq(b.port, "whc", 2)

    got = []                         # (where, message)
    for ws, fmt in ((live_j, "json"), (live_m, "msgpack")):
        first = next_data(ws, fmt, where=f"live {fmt}")
        assert first["offset"] == 0 and first.get("headers", []) == [], first
        got.append((f"live {fmt}", next_data(ws, fmt, where=f"live {fmt}")))
    for name, srv in (("history", a), ("kafka", b)):
        j = srv.ws()
        j.send_json({"type": "subscribe", "channel": "whc", "resume": {"wh:0": 0}, "id": name})
        got.append((f"{name} resume json", next_data(j, "json", 20, f"{name} resume json")))
        m = srv.ws(path="/ws?format=msgpack&channel=whc&resume=wh:0:0")
        got.append((f"{name} resume msgpack", next_data(m, "msgpack", 20, f"{name} resume msgpack")))

    for where, obj in got:
        assert obj["topic"] == "wh" and obj["partition"] == 0 and obj["offset"] == 1, f"{where}: {obj!r:.300}"
        assert obj["data"] == {"headers": n_headers} and obj["key"] == "k1", f"{where}: {obj!r:.300}"
        if where.startswith("kafka"):
            assert "seq" not in obj, f"{where}: a seq, so not read back from Kafka: {obj['seq']}"
        else:
            assert obj.get("seq") == 2, f"{where}: seq {obj.get('seq')!r}, want 2 (history keeps it)"
        check_headers(obj, hs, where)
    return got


def test_thousand_headers_all_delivered_live_and_resumed(mock_kafka, kafka_bridge):
    """A record with 1,000 headers h0..h999 (distinct values, one not UTF-8,
    one without value, one empty) reaches JSON and MessagePack clients with
    all 1,000 in order and no headers_truncated: live, replayed from the
    history, and read back from Kafka by an instance without history."""
    mk = mock_kafka({"wh": 1})
    got = headers_everywhere(mk, kafka_bridge, 1000)
    assert len(got) == 6
    h = got[0][1]["headers"]
    assert h[7] == ["h7", {"base64": b64(b"\xff\xfe not utf-8 7")}] and h[11] == ["h11", None] \
        and h[13] == ["h13", ""] and h[999] == ["h999", "v999-\u00e9\u20ac"], h[:14]


def test_headers_beyond_ten_thousand_are_counted(mock_kafka, kafka_bridge):
    """A record with 10,050 headers: the first 10,000, in order, and
    "headers_truncated":50, in JSON and MessagePack, live and from both
    kinds of resume."""
    mk = mock_kafka({"wh": 1})
    got = headers_everywhere(mk, kafka_bridge, 10_050)
    for where, obj in got:
        assert len(obj["headers"]) == 10_000 and obj["headers"][-1][0] == "h9999", where


# ---------------------------------------------------------------- large records

def big_json_value(size):
    """A JSON object of about `size` bytes: strings with escapes and
    non-ASCII, integers, booleans, null, nested arrays."""
    items, n, i = [], 2, 0
    while n < size - 200:
        it = '{"i":%d,"s":"%s \\"q\\" \\u00e9 \u20ac","ok":%s,"n":null,"a":[%d,[%d,-%d]]}' % (
            i, "x" * (i % 97), "true" if i % 2 else "false", i * 7, i, i)
        items.append(it)
        n += len(it.encode("utf-8")) + 1
        i += 1
    return ('{"kind":"big","items":[%s]}' % ",".join(items)).encode("utf-8")


def check_big_pair(name, reader, blob, doc):
    """reader got exactly the two big records, whole, and no control
    message (no SLOW_CONSUMER)."""
    assert not reader.controls(), f"{name}: {reader.controls()!r:.500}"
    data = reader.data()
    assert [d["offset"] for d in data] == [0, 1], f"{name}: offsets {[d['offset'] for d in data]}"
    d0, d1 = data
    assert d0.get("encoding") == "base64" and isinstance(d0["data"], str), f"{name}: {str(d0)[:300]}"
    assert base64.b64decode(d0["data"], validate=True) == blob, f"{name}: the 1 MB value differs"
    assert "encoding" not in d1, f"{name}: {str(d1)[:300]}"
    assert_same(d1["data"], json.loads(doc), f"{name}: the 900 KB JSON value")
    if reader.msgs[0][1] == OP_TEXT:
        jraw = [raw for _, op, raw, obj in reader.msgs if is_data(obj)]
        assert len(jraw[0]) > (1 << 20), "the base64 message should be larger than --client-buffer"
        assert b'"data":"' + b64(blob).encode() + b'","encoding":"base64"' in jraw[0], name
        assert b'"data":' + doc in jraw[1], f"{name}: 900 KB JSON value not inserted byte for byte"


def read_pair(clients):
    """BulkReaders on (name, ws) clients until each has 2 data messages and
    then 0.3 s of quiet; returns the stopped readers."""
    readers = [BulkReader(w, name) for name, w in clients]
    for r in readers:
        r.wait_for(lambda objs: sum(map(is_data, objs)) >= 2, 20, "2 data messages")
    time.sleep(0.3)
    for r in readers:
        r.stop()
    return readers


def test_large_records_reach_reading_clients_whole(mock_kafka, kafka_bridge, big_producer):
    """Default flags (--client-buffer 1 MiB): a 1,000,000-byte value that is
    not UTF-8 (1,333,336 bytes of base64, a message larger than the client
    buffer) and a 900 KB JSON value reach a JSON and a MessagePack client
    whole and byte-exact, with no SLOW_CONSUMER: a client whose queue is
    empty always takes the next message, whatever its size. The same when
    they are resumed from the history and from Kafka (--history 0), and a
    snapshot holding both (over 2 MB) comes whole."""
    mk = mock_kafka({"big": 1})
    a = kafka_bridge(mk, "-t", "big=bigc", "--offset", "earliest")
    b = kafka_bridge(mk, "-t", "big=bigc", "--offset", "earliest", "--history", "0")
    j = a.ws()
    ws_subscribe(j, {"type": "subscribe", "channel": "bigc"})
    m = a.ws(path="/ws?format=msgpack&channel=bigc")
    time.sleep(0.2)
    live = [BulkReader(j, "live json"), BulkReader(m, "live msgpack")]
    blob = b"\xff" + os.urandom(999_999)
    doc = big_json_value(900_000)
    assert 890_000 < len(doc) <= 900_000
    prod = big_producer(mk)
    assert send(prod, "big", blob, key="blob") == 0
    assert send(prod, "big", doc, key="doc") == 1
    for r in live:
        r.wait_for(lambda objs: sum(map(is_data, objs)) >= 2, 20, "2 data messages")
    time.sleep(0.3)
    for r in live:
        r.stop()
        check_big_pair(r.name, r, blob, doc)
    wait_channel_seq(a.port, "bigc", 2)
    wait_channel_seq(b.port, "bigc", 2)

    for name, srv in (("history", a), ("kafka", b)):
        rj = srv.ws()
        rj.send_json({"type": "subscribe", "channel": "bigc", "resume": {"big:0": -1}, "id": name})
        rm = srv.ws(path="/ws?format=msgpack&channel=bigc&resume=big:0:-1")
        rj_ack = rj.recv_json()
        assert rj_ack.get("type") == "ack" and rj_ack.get("id") == name, rj_ack
        for r in read_pair(((f"{name} resume json", rj), (f"{name} resume msgpack", rm))):
            check_big_pair(r.name, r, blob, doc)
            assert all(("seq" in d) == (name == "history") for d in r.data()), \
                f"{r.name}: seq only on records replayed from the history"

    want = {"blob": b64(blob), "doc": json.loads(doc)}
    for fmt, path in (("json", "/ws?channel=bigc&snapshot=1"),
                      ("msgpack", "/ws?format=msgpack&channel=bigc&snapshot=1")):
        s = recv_obj(a.ws(path=path), fmt, 10)
        assert s.get("type") == "snapshot" and s.get("base64_values") == ["blob"], sorted(s)
        assert_same(s["data"], want, f"{fmt} snapshot")


def test_smallest_client_buffer_still_takes_any_message(mock_kafka, kafka_bridge, big_producer):
    """--client-buffer 1KiB (the smallest): pairs of 1 MB records produced
    back to back (the second may wait behind the first: a single waiting
    message of any size is accepted), the next pair once both arrived. A
    JSON and a MessagePack client get all of them whole, no SLOW_CONSUMER."""
    mk = mock_kafka({"tiny": 1})
    srv = kafka_bridge(mk, "-t", "tiny=tinyc", "--offset", "earliest", "--client-buffer", "1KiB")
    j = srv.ws()
    ws_subscribe(j, {"type": "subscribe", "channel": "tinyc"})
    m = srv.ws(path="/ws?format=msgpack&channel=tinyc")
    time.sleep(0.2)
    readers = [BulkReader(j, "json"), BulkReader(m, "msgpack")]
    values = [b"\xff%d" % i + os.urandom(999_998) for i in range(6)]
    prod = big_producer(mk)
    for p in range(3):
        futs = [prod.send("tiny", values[i], partition=0) for i in (2 * p, 2 * p + 1)]
        assert [f.get(30).offset for f in futs] == [2 * p, 2 * p + 1]
        for r in readers:
            r.wait_for(lambda objs: sum(map(is_data, objs)) >= 2 * p + 2 or
                       any(not is_data(o) for o in objs), 20, f"{2 * p + 2} data messages")
    time.sleep(0.3)
    for r in readers:
        r.stop()
        assert not r.controls(), f"{r.name}: {r.controls()!r:.500}"
        data = r.data()
        assert [d["offset"] for d in data] == list(range(6)), f"{r.name}: {[d['offset'] for d in data]}"
        for d in data:
            assert d.get("encoding") == "base64" and base64.b64decode(d["data"]) == values[d["offset"]], \
                f"{r.name}: offset {d['offset']} not whole"


def test_stalled_client_loses_records_with_notice_others_lose_nothing(mock_kafka, kafka_bridge,
                                                                      big_producer):
    """Default flags. One client (SO_RCVBUF 4 KiB) subscribes and stops
    reading while 30 records of 1 MB (not UTF-8: 1.33 MB messages) are
    produced. Meanwhile GET /health answers each time (the loop never waits), and
    a JSON and a MessagePack client that keep reading get all 30, whole, in
    order, without SLOW_CONSUMER. When the stalled client reads again, every
    data message it gets is whole and in offset order; the records missing
    are exactly those a SLOW_CONSUMER notice in that place counts (N > 0),
    and the newest record is among those delivered (drop-oldest)."""
    n = 30
    mk = mock_kafka({"slow": 1})
    srv = kafka_bridge(mk, "-t", "slow=slowc", "--offset", "earliest")
    stalled = srv.track(wsutil.WS.connect(srv.port, rcvbuf=4096))
    ws_subscribe(stalled, {"type": "subscribe", "channel": "slowc"})
    fj = srv.ws()
    ws_subscribe(fj, {"type": "subscribe", "channel": "slowc"})
    fm = srv.ws(path="/ws?format=msgpack&channel=slowc")
    time.sleep(0.2)
    fast = [BulkReader(fj, "fast json"), BulkReader(fm, "fast msgpack")]
    values = [b"\xfe%02d" % i + os.urandom(999_997) for i in range(n)]
    prod = big_producer(mk)
    errors = []

    def produce():
        # Each record once the readers that keep up have the one before:
        # they share the default 1 MiB --client-buffer and a loaded machine
        # can hold a Python reader thread up for longer than two 1.33 MB
        # messages take to arrive. The stalled client overflows regardless.
        try:
            for i, v in enumerate(values):
                for f in fast:
                    f.wait_for(lambda objs: sum(map(is_data, objs)) >= i or
                               any(not is_data(o) for o in objs), 20, f"{i} data messages")
                assert send(prod, "slow", v, key="k%d" % i) == i
        except BaseException as e:       # reported below
            errors.append(e)
    t = threading.Thread(target=produce, daemon=True)
    t.start()
    worst = 0.0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        r = wsutil.http_request(srv.port, "GET", "/health", timeout=5.0)
        worst = max(worst, time.monotonic() - t0)
        assert r.status == 200, r
        if not t.is_alive() and all(sum(map(is_data, f.objs())) >= n for f in fast):
            break
        time.sleep(0.05)
    t.join(5)
    assert not errors, f"producer: {errors[0]!r}"
    # A loop blocked by the stalled client would not answer at all (5 s
    # timeout); the margin is for a loaded machine and this test's threads.
    assert worst < 3.0, f"GET /health took {worst:.2f}s while a client was stalled"
    for f in fast:
        f.wait_for(lambda objs: sum(map(is_data, objs)) >= n, 10, f"{n} data messages")
    time.sleep(0.5)
    for f in fast:
        f.stop()
        assert not f.controls(), f"{f.name}: {f.controls()!r:.500}"
        data = f.data()
        assert [d["offset"] for d in data] == list(range(n)), f"{f.name}: {[d['offset'] for d in data]}"
        for d in data:
            assert d.get("encoding") == "base64" and \
                base64.b64decode(d["data"]) == values[d["offset"]], f"{f.name}: offset {d['offset']} not whole"

    # The stalled client reads again.
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    seq = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            op, payload = stalled.recv_message(2.0)
        except TimeoutError:
            break
        assert op == OP_TEXT, op
        seq.append(json.loads(payload))
    else:
        raise AssertionError("the stalled client kept receiving for 30 s")
    summary = [("data", o["offset"]) if is_data(o) else (o.get("code"), o.get("dropped")) for o in seq]
    assert all(is_data(o) or (o.get("type") == "error" and o.get("code") == "SLOW_CONSUMER") for o in seq), summary
    notices = [o for o in seq if not is_data(o)]
    assert notices and all(isinstance(o.get("dropped"), int) and o["dropped"] > 0 for o in notices), summary
    expect, pending = 0, 0
    for o in seq:
        if not is_data(o):
            pending += o["dropped"]
            continue
        off = o["offset"]
        assert off - expect == pending, \
            f"offset {off} after {expect - 1}: {off - expect} missing, notices before it count {pending}: {summary}"
        assert o.get("encoding") == "base64" and base64.b64decode(o["data"]) == values[off], \
            f"offset {off} not whole"
        expect, pending = off + 1, 0
    assert expect == n and pending == 0, \
        f"no data message after the last SLOW_CONSUMER notice: the newest record (offset {n - 1}) " \
        f"was dropped, though one waiting message of any size is taken: {summary}"
    # What kbridge itself held for the stalled client: behind the message
    # being written, one waiting message (over --client-buffer on its own).
    last_notice = max(i for i, o in enumerate(seq) if not is_data(o))
    assert len(seq) - 1 - last_notice <= 2, f"more held than --client-buffer allows: {summary}"
    stalled.ping_ok()
    assert srv.http().status == 200


# ---------------------------------------------------------------- nesting

def nesting_records(depths):
    """(key, text) for arrays and objects nested to each depth."""
    return [("%s-%d" % (shape, d), nested_text(shape, d)) for d in depths for shape in ("array", "object")]


def check_nested(where, data, text, depth, shape):
    if depth <= MAX_DEPTH:
        assert_same(data, nested_value(shape, depth), f"{where}: {shape} {depth} deep")
    else:
        assert isinstance(data, str) and data == text, \
            f"{where}: {shape} {depth} deep should be the text as a string, got {brief(data)}"


def nesting_run(mk, kafka_bridge, big_producer, depths, mp_decode):
    """Produces the nesting records (keyed), receives them live on a JSON and
    a MessagePack client, checks data in both; a client filtering on field
    "a" gets exactly the objects within the limit; then a refresh snapshot
    in both formats. MessagePack frames are decoded with mp_decode."""
    srv = kafka_bridge(mk, "-t", "deep=deepc", "--offset", "earliest")
    j = srv.ws()
    ws_subscribe(j, {"type": "subscribe", "channel": "deepc"})
    m = srv.ws(path="/ws?format=msgpack&channel=deepc")
    f = srv.ws()
    ws_subscribe(f, {"type": "subscribe", "channel": "deepc", "filter": {"a": "*"}})
    time.sleep(0.2)
    recs = nesting_records(depths)
    prod = big_producer(mk)
    for i, (k, text) in enumerate(recs):
        assert send(prod, "deep", text, key=k) == i
    depth_of = {k: int(k.split("-")[1]) for k, _ in recs}
    for fmt, ws in (("json", j), ("msgpack", m)):
        for i, (k, text) in enumerate(recs):
            op, raw = ws.recv_message(10)
            assert op == (OP_TEXT if fmt == "json" else OP_BINARY), (fmt, op)
            where = f"{fmt} live {k}"
            d = depth_of[k]
            if fmt == "json":
                if d <= MAX_DEPTH:
                    assert b'"data":' + text.encode() + b"}" in raw, f"{where}: not inserted as JSON: {raw[:200]!r}"
                else:
                    assert b'"data":' + json.dumps(text).encode()[:60] in raw, f"{where}: not a string: {raw[:200]!r}"
                obj = json_loads_deep(raw)
            else:
                obj = mp_decode(raw)
            assert is_data(obj) and obj["offset"] == i and obj["key"] == k, f"{where}: {raw[:200]!r}"
            assert "encoding" not in obj, f"{where}: encoding {obj['encoding']!r}"
            check_nested(where, obj["data"], text, d, k.split("-")[0])
    # A field filter sees the payload as JSON only up to the limit.
    want = [k for k, _ in recs if k.startswith("object") and depth_of[k] <= MAX_DEPTH]
    got = []
    while True:
        try:
            op, raw = f.recv_message(1.0 if got == want else 10.0)
        except TimeoutError:
            break
        got.append(json_loads_deep(raw)["key"])
    assert got == want, f"filter {{'a':'*'}} matched {got}, want {want}"
    j.send_json({"type": "refresh", "channel": "deepc", "id": "snap"})
    m.send_frame(OP_BINARY, mp_pack({"type": "refresh", "channel": "deepc", "id": "snap"}))
    for fmt, ws, dec in (("json", j, json_loads_deep), ("msgpack", m, mp_decode)):
        s = read_until_snapshot(ws, fmt, dec)
        assert s.get("id") == "snap" and s.get("channel") == "deepc", sorted(s)
        assert list(s["data"]) == [k for k, _ in recs], f"{fmt} snapshot keys {list(s['data'])}"
        assert "base64_values" not in s, f"{fmt} snapshot: {s['base64_values']}"
        for k, text in recs:
            check_nested(f"{fmt} snapshot {k}", s["data"][k], text, depth_of[k], k.split("-")[0])


def test_nesting_100_and_1000_levels_is_json_10000_is_text(mock_kafka, kafka_bridge, big_producer):
    """Arrays and objects nested 100, 1,000 and 10,000 levels deep, produced
    as JSON text. 100 and 1,000 deep: the nested value itself in `data`, for
    the JSON client (inserted byte for byte) and the MessagePack client
    (native arrays and maps, decoded with python3-msgpack) alike; 10,000
    deep: the produced text as a string in both. A refresh snapshot carries
    the same values in both formats."""
    mk = mock_kafka({"deep": 1})
    nesting_run(mk, kafka_bridge, big_producer, (100, 1000, 10_000), mp_unpack)


def test_nesting_limit_is_1024_levels(mock_kafka, kafka_bridge, big_producer):
    """The boundary: 1,024 levels is still JSON (the nested value in both
    formats, live and in a snapshot), 1,025 levels is text (the produced
    text as a string in both). MessagePack frames here nest deeper than
    python3-msgpack decodes, so they are decoded with mp_decode_deep (which
    agrees with python3-msgpack on a 500-deep frame, checked first)."""
    probe = mp_pack({"data": nested_value("array", 500), "m": nested_value("object", 400), "x": [1.5, -3, "s", None, True, b"\x00"]})
    assert_same(mp_decode_deep(probe), mp_unpack(probe), "mp_decode_deep vs python3-msgpack")
    mk = mock_kafka({"deep": 1})
    nesting_run(mk, kafka_bridge, big_producer, (MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1), mp_decode_deep)
