"""Data messages, one per Kafka record: every envelope field and the payload
rules of docs/protocol.md#data-messages (and #headers), checked on the raw
frame text as well as parsed. Records come from kafka-python (keys, headers,
explicit CreateTime) and kcat (compression codecs)."""
import base64
import datetime
import re
import time

import pytest

from conftest import read_messages, ws_subscribe

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def iso_ms(ms):
    dt = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def b64(b):
    return base64.b64encode(b).decode("ascii")


# (name, key, value, headers, timestamp_ms, expectation)
#   expectation: ("json", raw bytes inserted verbatim) | ("string", str) |
#                ("base64", bytes) | ("empty",) | ("null",)
TEXT = 'quote " backslash \\ nl \n tab \t cr \r ctrl \x01\x1f del \x7f é € 😀 \u2028'
CASES = [
    ("object", "BTC/USDT", b'{"a": 1, "b" : [true,false,null] , "c":"x\\u00e9", "d":{}}',
     [], 1700000000123, ("json",)),
    ("array-null-key", None, b'[1, 2 ,3]', [], None, ("json",)),
    ("number", "n", b"42", [], None, ("json",)),
    ("float-verbatim", "f", b"-1.50e+10", [], None, ("json",)),
    ("bignum-verbatim", "g", b"123456789012345678901234567890", [], None, ("json",)),
    ("string-json", "s", b'"a string \\" \\u00e9 \\ud83d\\ude00"', [], None, ("json",)),
    ("true", "t", b"true", [], None, ("json",)),
    ("json-null", "jn", b"null", [], None, ("json",)),
    ("surrounding-whitespace", "ws", b' \t\r\n {"ws" :\t"x" ,\n "y": [ ] }\r\n \t', [], None, ("json",)),
    ("scalar-whitespace", "ws2", b"  7  ", [], None, ("json",)),
    ("deep-ish", "deep", b"[" * 50 + b"1" + b"]" * 50, [], None, ("json",)),
    ("plain-text", "pt", b"hello world", [], None, ("string", "hello world")),
    ("broken-json", "bj", b'{"a":1', [], None, ("string", '{"a":1')),
    ("leading-zero", "lz", b"01", [], None, ("string", "01")),
    ("nan", "nan", b"NaN", [], None, ("string", "NaN")),
    ("trailing-comma", "tc", b"[1,]", [], None, ("string", "[1,]")),
    ("two-values", "tv", b"1 2", [], None, ("string", "1 2")),
    ("whitespace-only", "wo", b"   ", [], None, ("string", "   ")),
    ("escapes-needed", "esc", TEXT.encode("utf-8"), [], None, ("string", TEXT)),
    ("json-bad-escape", "be", b'"\\x"', [], None, ("string", '"\\x"')),
    ("json-raw-control", "rc", b'"a\x01b"', [], None, ("string", '"a\x01b"')),
    ("binary", "bin", b"\x00\x01\xfe\xff", [], None, ("base64", b"\x00\x01\xfe\xff")),
    ("json-with-invalid-utf8", "iu", b'{"a":"\xff"}', [], None, ("base64", b'{"a":"\xff"}')),
    ("utf8-surrogate", "sur", b"\xed\xa0\x80", [], None, ("base64", b"\xed\xa0\x80")),
    ("utf8-overlong", "ovl", b"\xc0\xaf", [], None, ("base64", b"\xc0\xaf")),
    ("utf8-truncated", "trc", b"abc\xe2\x82", [], None, ("base64", b"abc\xe2\x82")),
    ("nul-byte-text", "nul", b"a\x00b", [], None, None),  # valid UTF-8: string "a\u0000b"
    ("empty", "e", b"", [], None, ("empty",)),
    ("tombstone", "BTC/USDT", None, [], None, ("null",)),
    ("key-utf8", "é€ key", b"{}", [], None, ("json",)),
    ("key-binary", b"\xff\x00", b"{}", [], None, ("json",)),
    ("key-empty", b"", b"{}", [], None, ("json",)),
    ("headers", "h", b'{"h":1}', [("h1", b"v1"), ("h2", b"\xff\xfe"), ("h1", b"again"),
                                  ("empty", b""), ("utf8 é", "ünï".encode())], None, ("json",)),
    ("ts-small-ms", "ts", b"{}", [], 1000000000005, ("json",)),
    ("ts-zero-ms", "ts0", b"{}", [], 1600000000000, ("json",)),
]
CASES = [c if c[5] is not None else c[:5] + (("string", "a\x00b"),) for c in CASES]

REQUIRED = {"type", "channel", "seq", "topic", "partition", "offset", "timestamp", "data"}


@pytest.fixture
def produced(mock_kafka, kafka_bridge):
    """One mock; kbridge H with --headers and N without, both subscribed
    before the records are produced; returns (records, msgs_H, msgs_N)."""
    mk = mock_kafka({"env": 1})
    h = kafka_bridge(mk, "-t", "env=envc:envtype", "--headers")
    n = kafka_bridge(mk, "-t", "env=envc:envtype")
    ch, cn = h.ws(), n.ws()
    ws_subscribe(ch, {"type": "subscribe", "channel": "envc"})
    ws_subscribe(cn, {"type": "subscribe", "channel": "envc"})
    recs = []
    for name, key, value, headers, ts, exp in CASES:
        if ts is None:
            ts = int(time.time() * 1000)
        md = mk.produce("env", value, key=key, partition=0, timestamp_ms=ts, headers=headers)
        recs.append((name, key, value, headers, (md.offset, ts), exp))
    mh = read_messages(ch, len(CASES), timeout=15)
    mn = read_messages(cn, len(CASES), timeout=15)
    return recs, mh, mn


def check_envelope(m, rec, with_headers):
    name, key, value, headers, (offset, ts), exp = rec
    o, raw = m.obj, m.raw
    where = f"case {name}: {raw[:400]!r}"
    assert o["type"] == "envtype" and o["channel"] == "envc", where
    assert o["topic"] == "env" and o["partition"] == 0 and o["offset"] == offset, where
    assert isinstance(o["seq"], int) and o["seq"] == offset + 1, \
        f"{where}: seq should be offset+1 (single-partition channel, kbridge started first)"
    # timestamp: the record's CreateTime, UTC ISO 8601 with milliseconds
    assert ISO_MS.match(o["timestamp"]), where
    assert o["timestamp"] == iso_ms(ts), f"{where}: want {iso_ms(ts)}"
    allowed = set(REQUIRED)
    # key
    kb = key.encode("utf-8") if isinstance(key, str) else key
    if kb is None:
        assert "key" not in o and "key_encoding" not in o, f"{where}: null key must be omitted"
    else:
        allowed.add("key")
        try:
            ks = kb.decode("utf-8")
            assert o.get("key") == ks and "key_encoding" not in o, where
        except UnicodeDecodeError:
            allowed.add("key_encoding")
            assert o.get("key") == b64(kb) and o.get("key_encoding") == "base64", where
    # data
    kind = exp[0]
    if kind == "json":
        assert b'"data":' + value in raw, f"{where}: data not inserted byte for byte"
        assert "encoding" not in o, where
        import json
        assert o["data"] == json.loads(value), where
    elif kind == "string":
        assert o["data"] == exp[1] and isinstance(o["data"], str), where
        assert "encoding" not in o, where
    elif kind == "base64":
        allowed.add("encoding")
        assert o["data"] == b64(exp[1]) and o.get("encoding") == "base64", where
    elif kind == "empty":
        assert o["data"] == "" and "encoding" not in o, where
    elif kind == "null":
        assert o["data"] is None and b'"data":null' in raw and "encoding" not in o, where
    # headers
    if with_headers and headers:
        allowed.add("headers")
        want = []
        for hk, hv in headers:
            try:
                want.append([hk, hv.decode("utf-8")])
            except UnicodeDecodeError:
                want.append([hk, {"base64": b64(hv)}])
        assert o.get("headers") == want, f"{where}: headers want {want}"
    elif with_headers:
        allowed.add("headers")          # a record without headers: absent or []
        assert o.get("headers", []) == [], where
    else:
        assert "headers" not in o, f"{where}: headers without --headers"
    assert set(o) <= allowed and REQUIRED <= set(o), \
        f"{where}: fields {sorted(o)}, expected {sorted(allowed)}"


def test_envelope_every_field(produced):
    recs, mh, mn = produced
    errors = []
    for msgs, with_headers in ((mh, True), (mn, False)):
        assert [m["offset"] for m in msgs] == [r[4][0] for r in recs], \
            "records not delivered once each in offset order"
        for m, rec in zip(msgs, recs):
            try:
                check_envelope(m, rec, with_headers)
            except AssertionError as e:
                errors.append(("--headers: " if with_headers else "") + str(e).split("\nassert")[0])
    assert not errors, f"{len(errors)} envelope errors:\n" + "\n".join(errors)


def test_envelope_is_valid_utf8_json_text(produced):
    recs, mh, mn = produced
    for m in mh + mn:
        m.raw.decode("utf-8")                   # strict: text frames must be UTF-8
        assert m.raw.startswith(b"{") and m.raw.endswith(b"}"), m


CODECS = ["gzip", "snappy", "lz4", "zstd"]


def test_compressed_records_delivered(mock_kafka, kafka_bridge):
    """Batches produced with every codec (kcat, librdkafka) are decompressed
    and delivered (gzip, snappy, lz4, zstd: the codecs the build must have,
    docs/operations.md#one-binary)."""
    mk = mock_kafka({"comp": 2})
    srv = kafka_bridge(mk, "-t", "comp")
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "comp"})
    want = {}
    for codec in CODECS:
        lines = []
        for i in range(200):
            k = f"{codec}-{i}"
            v = '{"codec":"%s","i":%d,"pad":"%s"}' % (codec, i, "x" * 100)
            lines.append(f"{k}:{v}")
            want[k] = v
        mk.kcat_produce("comp", ("\n".join(lines) + "\n").encode(), key_delim=":",
                        extra=["-X", f"compression.codec={codec}", "-X", "linger.ms=50"])
    msgs = read_messages(c, len(want), timeout=20)
    got = {}
    for m in msgs:
        assert m["key"] not in got, f"duplicate {m}"
        got[m["key"]] = m
    missing = {k.split("-")[0] for k in want if k not in got}
    assert not missing, f"records of codecs {sorted(missing)} missing"
    for k, m in got.items():
        assert m.raw.find(b'"data":' + want[k].encode()) >= 0, m
    for p in (0, 1):
        offs = [m["offset"] for m in msgs if m["partition"] == p]
        assert offs == list(range(len(offs))), f"partition {p}: offsets not contiguous"


def test_python_websockets_client_large_records(mock_kafka, kafka_bridge):
    """A real client library (websockets, asyncio) receives records small and
    large (payload lengths needing the 16- and 64-bit frame length forms),
    subscribed with the action dialect on /ws/crypto."""
    import asyncio
    import json
    import websockets

    mk = mock_kafka({"big": 1})
    srv = kafka_bridge(mk, "-t", "big=bigc:blob")
    sizes = [10, 125, 126, 65535, 65536, 200_000, 700_000]
    bodies = ['{"n":%d,"s":"%s"}' % (n, "x" * n) for n in sizes]

    async def run():
        uri = f"ws://127.0.0.1:{srv.port}/ws/crypto"
        async with websockets.connect(uri, ping_interval=None, open_timeout=5, close_timeout=5,
                                      max_size=4 << 20) as ws:
            await ws.send(json.dumps({"action": "subscribe", "type": "blob", "n": "*", "id": 1}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack.get("type") == "ack" and ack.get("id") == 1, ack
            loop = asyncio.get_running_loop()
            for b in bodies:
                await loop.run_in_executor(None, lambda b=b: mk.produce("big", b, key="k"))
            for i, b in enumerate(bodies):
                raw = await asyncio.wait_for(ws.recv(), 10)
                assert isinstance(raw, str)
                m = json.loads(raw)
                assert m["offset"] == i and m["type"] == "blob" and m["channel"] == "bigc", raw[:200]
                assert ('"data":' + b) in raw, f"record {i} ({sizes[i]} bytes) not verbatim"
            await ws.close(code=1000)
    asyncio.run(asyncio.wait_for(run(), 30))
