"""format=msgpack (docs/protocol.md#messagepack): `format=json|msgpack` on
the upgrade; every server message is the same object as MessagePack in a
binary frame, `data` as native maps/arrays/numbers (integers that fit
int64/uint64 stay integers, other numbers become float64); clients may send
MessagePack maps in binary frames, which are control messages like JSON
ones.

Frames are decoded with Debian's python3-msgpack, an independent decoder,
and compared type-strictly (int vs float vs bool, str vs bytes) with the JSON
form of the same records received by a JSON client."""
import json
import time

from conftest import BulkReader, is_data, mp_pack, mp_unpack, wait_channel_seq, ws_subscribe
from wsutil import OP_BINARY, OP_TEXT

INT64_MIN, UINT64_MAX = -(1 << 63), (1 << 64) - 1


def expected_mp(v):
    """The MessagePack form of a parsed JSON value
    (docs/protocol.md#messagepack): integers within int64/uint64 stay
    integers, other numbers float64."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if INT64_MIN <= v <= UINT64_MAX else float(v)
    if isinstance(v, float):
        return v
    if isinstance(v, list):
        return [expected_mp(x) for x in v]
    if isinstance(v, dict):
        return {k: expected_mp(x) for k, x in v.items()}
    raise TypeError(type(v))


def strict_diff(a, b, path="$"):
    """None when a and b are equal with the same types, else where not."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            d = strict_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = strict_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if a != b:
        return f"{path}: {a!r} vs {b!r}"
    return None


def assert_same(mp_obj, json_obj, what):
    d = strict_diff(mp_obj, expected_mp(json_obj))
    assert d is None, f"{what}: MessagePack differs from the JSON form: {d}\n mp: {mp_obj!r}\njson: {json_obj!r}"


def mp_recv(ws, timeout=5.0):
    op, payload = ws.recv_message(timeout)
    assert op == OP_BINARY, f"text frame on a format=msgpack connection: {payload[:200]!r}"
    return mp_unpack(payload)


def mp_request(ws, obj, timeout=5.0):
    ws.send_frame(OP_BINARY, mp_pack(obj))
    return mp_recv(ws, timeout)


# (key, value) records; values exercise every data rule and number kind.
RECORDS = [
    ("obj", b'{"a":1,"b":[true,false,null],"c":"x\\u00e9\\ud83d\\ude00","d":{},"e":[],"f":{"g":{"h":[1,[2,[3]]]}}}'),
    ("ints", b'[0, -1, 127, 128, 255, 256, 65535, 65536, -32, -33, -128, -129, -32768, -32769, '
             b'4294967295, 4294967296, -2147483648, -2147483649, 9223372036854775807, '
             b'-9223372036854775808, 18446744073709551615]'),
    ("bigs", b'[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]'),
    ("floats", b'[1.5, -0.25, 3.141592653589793, 1.5e300, -2.5E-300, 0.1, 6.02214076e+23]'),
    ("num", b"42"),
    ("neg", b"-7"),
    ("float", b"2.5"),
    ("str", b'"just a \\"string\\" \\\\ \\n\\t\\/"'),
    ("true", b"true"),
    ("jnull", b"null"),
    ("ws", b'  {"spaced" : [ 1 , 2 ] }  '),
    ("text", "plain text é 😀".encode()),
    ("bin", b"\x00\x01\xfe\xff"),
    ("empty", b""),
    ("obj", None),                                   # tombstone
    (None, b'{"nokey":1}'),
    (b"\xff\xfe", b'{"binary key":1}'),
    ("long", ('{"s":"%s","arr":[%s]}' % ("y" * 70000, ",".join(str(i) for i in range(20000)))).encode()),
    ("map16", ("{%s}" % ",".join('"k%d":%d' % (i, i) for i in range(40))).encode()),
    ("hdr", b'{"h":1}'),
]


def test_msgpack_data_equals_json_form(mock_kafka, kafka_bridge):
    mk = mock_kafka({"mp": 1})
    srv = kafka_bridge(mk, "-t", "mp=mpc:mpt", "--headers")
    j = srv.ws()
    ws_subscribe(j, {"type": "subscribe", "channel": "mpc"})
    m1 = srv.ws(path="/ws?format=msgpack")
    ack = mp_request(m1, {"type": "subscribe", "channel": "mpc", "id": 1})
    assert ack.get("type") == "ack" and ack.get("id") == 1 and ack.get("channels") == ["mpc"], ack
    m2 = srv.ws(path="/ws?format=msgpack&channel=mpc")
    time.sleep(0.5)
    readers = [BulkReader(w, n, decode=False) for w, n in ((j, "json"), (m1, "msgpack1"), (m2, "msgpack2"))]
    for k, v in RECORDS:
        headers = [("h1", b"v1"), ("bin", b"\xff\x00")] if k == "hdr" else None
        mk.produce("mp", v, key=k, headers=headers)
    n = len(RECORDS)
    for r in readers:
        r.wait_for(lambda objs: len(objs) >= n, 15, f"{n} messages")
    time.sleep(0.3)
    for r in readers:
        r.stop()
    jr, r1, r2 = readers
    assert all(op == OP_TEXT for _, op, _, _ in jr.msgs)
    for r in (r1, r2):
        bad = [raw[:80] for _, op, raw, _ in r.msgs if op != OP_BINARY]
        assert not bad, f"{r.name}: text frames on a msgpack connection: {bad[:3]}"
    assert len(jr.msgs) == len(r1.msgs) == len(r2.msgs) == n, (len(jr.msgs), len(r1.msgs), len(r2.msgs))
    for i in range(n):
        jraw, raw1, raw2 = jr.msgs[i][2], r1.msgs[i][2], r2.msgs[i][2]
        jobj = json.loads(jraw)
        assert raw1 == raw2, f"record {i}: the two MessagePack clients got different bytes"
        mobj = mp_unpack(raw1)
        assert_same(mobj, jobj, f"record {i} ({RECORDS[i][0]!r})")
    # Spot checks of the native forms (not strings of JSON).
    by_key = {}
    for i in range(n):
        by_key.setdefault(RECORDS[i][0], []).append(mp_unpack(r1.msgs[i][2]))
    ints = by_key["ints"][0]["data"]
    assert all(type(x) is int for x in ints) and ints[-1] == UINT64_MAX and ints[-2] == INT64_MIN, ints
    bigs = by_key["bigs"][0]["data"]
    assert all(type(x) is float for x in bigs), bigs
    assert type(by_key["float"][0]["data"]) is float and by_key["float"][0]["data"] == 2.5
    assert by_key["obj"][0]["data"]["c"] == "x\u00e9\U0001F600"
    assert by_key["obj"][1]["data"] is None                   # tombstone
    assert by_key["bin"][0].get("encoding") == "base64"
    assert by_key[None][0].get("key", "absent") == "absent"
    assert by_key[b"\xff\xfe"][0].get("key_encoding") == "base64"
    assert by_key["hdr"][0].get("headers") == [["h1", "v1"], ["bin", {"base64": "/wA="}]], by_key["hdr"][0]
    assert type(by_key["hdr"][0]["seq"]) is int and type(by_key["hdr"][0]["offset"]) is int


def test_msgpack_control_messages_both_ways(mock_kafka, kafka_bridge):
    mk = mock_kafka({"mpc2": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "mpc2=ctl")
    m = srv.ws(path="/ws?format=msgpack")
    # MessagePack request -> MessagePack reply with the id (any id type).
    for ident in (5, "five", -3, 2.5):
        r = mp_request(m, {"type": "ping", "id": ident})
        assert r.get("type") == "pong" and strict_diff(r.get("id"), ident) is None, r
    # JSON text request on a msgpack connection: the reply is MessagePack.
    m.send_json({"type": "ping", "id": "as-text"})
    r = mp_recv(m)
    assert r == {"type": "pong", "id": "as-text"}, r
    # Subscribe / list / unsubscribe.
    r = mp_request(m, {"type": "subscribe", "channel": "ctl", "key": "BTC", "id": 10})
    assert r.get("type") == "ack" and r.get("action") == "subscribe" and r.get("id") == 10, r
    assert r.get("channels") == ["ctl"] and r.get("subscription", {}).get("key") == "BTC", r
    r = mp_request(m, {"type": "list", "id": 11})
    assert r.get("type") == "subscriptions" and r.get("id") == 11 and isinstance(r.get("subscriptions"), list), r
    assert len(r["subscriptions"]) == 1, r
    # The action dialect in MessagePack.
    r = mp_request(m, {"action": "list_subscriptions", "id": 12})
    assert r.get("type") == "subscriptions" and r.get("id") == 12, r
    # Errors are MessagePack too, connection kept.
    r = mp_request(m, {"type": "frobnicate", "id": 13})
    assert r.get("type") == "error" and r.get("code") == "UNKNOWN_TYPE" and r.get("id") == 13, r
    assert isinstance(r.get("message"), str), r
    r = mp_request(m, {"type": "subscribe", "channel": "no-such", "id": 14})
    assert r.get("type") == "error" and r.get("code") == "UNKNOWN_CHANNEL" and r.get("id") == 14, r
    r = mp_request(m, {"type": "subscribe", "id": 15})
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST" and r.get("id") == 15, r
    r = mp_request(m, {"type": "subscribe", "channel": 7, "id": 16})
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST" and r.get("id") == 16, r
    m.send_frame(OP_BINARY, mp_pack([1, 2, 3]))            # not a map
    r = mp_recv(m)
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST", r
    m.send_frame(OP_BINARY, b"\xc1")                        # never-used byte: not MessagePack
    r = mp_recv(m)
    assert r.get("type") == "error" and r.get("code") in ("INVALID_JSON", "BAD_REQUEST"), r
    m.send_frame(OP_BINARY, mp_pack({"type": "ping"}) + b"\x00")   # trailing bytes
    r = mp_recv(m)
    assert r.get("type") == "error" and r.get("code") in ("INVALID_JSON", "BAD_REQUEST"), r
    m.send_frame(OP_BINARY, mp_pack({"type": "ping"})[:-1])        # truncated
    r = mp_recv(m)
    assert r.get("type") == "error" and r.get("code") in ("INVALID_JSON", "BAD_REQUEST"), r
    m.send_text("{not json")
    r = mp_recv(m)
    assert r.get("type") == "error" and r.get("code") == "INVALID_JSON", r
    r = mp_request(m, {"type": "ping", "id": "still"})
    assert r == {"type": "pong", "id": "still"}, r

    # Filtered data arrives as MessagePack, and unsubscribe works.
    mk.produce("mpc2", b'{"p":1}', key="ETH")
    mk.produce("mpc2", b'{"p":2}', key="BTC")
    d = mp_recv(m, 10)
    assert is_data(d) and d["key"] == "BTC" and d["data"] == {"p": 2}, d
    r = mp_request(m, {"type": "unsubscribe", "channel": "ctl", "key": "BTC", "id": 17})
    assert r.get("type") == "ack" and r.get("action") == "unsubscribe" and r.get("id") == 17, r

    # A JSON connection still refuses binary frames (BAD_REQUEST, as JSON).
    jc = srv.ws()
    jc.send_frame(OP_BINARY, mp_pack({"type": "ping"}))
    r = jc.recv_json()
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST", r


def test_msgpack_snapshot_equals_json_snapshot(mock_kafka, kafka_bridge):
    mk = mock_kafka({"mps": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "mps=mpsc")
    recs = [("a", b'{"v":[1,2.5,"x",null,true]}'), ("b", b"18446744073709551616"), ("c", b"text"),
            ("d", b"\x00\xff"), (b"\xfe", b"-5"), ("a", b'{"v":9223372036854775807}')]
    for k, v in recs:
        mk.produce("mps", v, key=k)
    wait_channel_seq(srv.port, "mpsc", len(recs))
    j = srv.ws()
    ws_subscribe(j, {"type": "subscribe", "channel": "mpsc"})
    j.send_json({"type": "refresh", "channel": "mpsc", "id": "r"})
    js = j.recv_json()
    assert js.get("type") == "snapshot", js
    m = srv.ws(path="/ws?format=msgpack&channel=mpsc&snapshot=1")
    ms = mp_recv(m)
    assert ms.get("type") == "snapshot", ms
    js.pop("id")
    assert_same(ms, js, "snapshot")
    assert ms["data"]["a"] == {"v": 9223372036854775807} and type(ms["data"]["b"]) is float, ms
    r = mp_request(m, {"type": "refresh", "channel": "mpsc", "id": "r2"})
    assert r.get("type") == "snapshot" and r.get("id") == "r2", r


def test_invalid_msgpack_over_the_rate_limit_is_rate_limited(kbridge):
    """docs/protocol.md#rate-limit: every message over --client-rate (burst
    2x) gets RATE_LIMITED, an invalid MessagePack one too (it was dropped
    without a reply)."""
    from wsutil import build_frame
    srv = kbridge("--client-rate", "5")
    m = srv.ws(path="/ws?format=msgpack")
    bad = b"\xc1"                       # never used in MessagePack
    m.send(b"".join(build_frame(OP_BINARY, bad) for _ in range(30)))
    replies = [mp_recv(m) for _ in range(30)]
    codes = [r.get("code") for r in replies]
    assert codes[:10] == ["INVALID_JSON"] * 10, codes
    assert set(codes[10:]) <= {"INVALID_JSON", "RATE_LIMITED"} and codes.count("RATE_LIMITED") >= 19, codes
