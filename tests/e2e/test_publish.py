"""Publishing into Kafka over WebSocket (docs/protocol.md#publishing):
`{"type":"publish","channel":C,"data":...}` (or `data_base64`, the action
dialect, a MessagePack map on a format=msgpack connection) and
`--command TYPE=TOPIC` commands produce one Kafka record each, answered
with an ack carrying the record's topic/partition/offset once Kafka
acknowledged it, or with an error (BAD_REQUEST, UNKNOWN_CHANNEL,
UNKNOWN_TYPE, UNAUTHORIZED, RATE_LIMITED, PUBLISH_FAILED) echoing the id.

Real peers: the Python `websockets` library and a Node `ws` client
(publish_command.js) publish; kafka-python's KafkaConsumer reads every
record back from the mock Kafka cluster at the acknowledged position.
"""
import asyncio
import base64
import json
import os
import signal
import subprocess
import time

import msgpack
import pytest

import authutil as au
import pubutil as pu
from authutil import keyring  # noqa: F401  (session fixture)
from conftest import run_kbridge, wait_status
from wsutil import get_json

HERE = os.path.dirname(os.path.abspath(__file__))
FAST = ["--client-rate", "1000000"]          # publishes count toward --client-rate


@pytest.fixture
def bridge(mock_kafka, kafka_bridge):
    """bridge({"topic": partitions, ...}, *flags) -> (mock, kbridge): a
    mock cluster with these topics (and "feed", which kbridge consumes so
    it is ready), kbridge on it with the flags."""
    def start(topics, *flags, ready=True, **kw):
        t = dict(topics)
        t.setdefault("feed", 1)
        mk = mock_kafka(t)
        srv = kafka_bridge(mk, "-t", "feed", *flags, ready=ready, **kw)
        return mk, srv
    return start


def publish_msg(channel, data=None, ident=None, **kw):
    m = {"type": "publish", "channel": channel}
    if data is not None:
        m["data"] = data
    if ident is not None:
        m["id"] = ident
    m.update(kw)
    return m


# ---------------------------------------------------------------- the record itself

def test_publish_data_exact_text_key_headers(bridge):
    """The record value is `data`'s exact JSON text (spacing, escapes and
    number spelling as sent, nothing around it), the key and the headers
    are the message's; the ack names the record's position, where
    kafka-python finds it."""
    mk, srv = bridge({"pt": 3}, "--publish", "pc=pt", *FAST)
    data1 = '{"a": 1,  "b":[1,[2, 3] , {"c" : "\u00e9\u2603\U0001d11e"}],"e":"\\u00e9\\"q\\n", "n":-0.50e+3 }'
    msg1 = ('{ "type":"publish" , "channel":"pc","key":"k-\u00e9","headers":{"h1":"v1","h2":"\u2603"},'
            '"data" :  ' + data1 + '  ,"id":"p1"}')
    data2 = '[ 1,2 ,\t"x" ]'
    msg2 = '{"type":"publish","channel":"pc","data":' + data2 + ',"id":7}'
    data3 = '"just a string \\u263a"'
    msg3 = '{"data":' + data3 + ',"channel":"pc","type":"publish"}'           # no id, no key
    data4 = '12.50'
    msg4 = '{"type":"publish","channel":"pc","data":12.50,"key":"","id":"p4"}'

    async def scenario():
        async with pu.connect(srv) as ws:
            r1 = await pu.request(ws, msg1, ident="p1")
            r2 = await pu.request(ws, msg2, ident=7)
            await ws.send(msg3)
            r3 = await pu.recv_obj(ws)
            r4 = await pu.request(ws, msg4, ident="p4")
            return r1, r2, r3, r4
    r1, r2, r3, r4 = pu.run(scenario())
    p1, o1 = pu.check_ack(r1, "p1", "pt", channel="pc")
    p2, o2 = pu.check_ack(r2, 7, "pt", channel="pc")
    p3, o3 = pu.check_ack(r3, None, "pt", channel="pc")
    p4, o4 = pu.check_ack(r4, "p4", "pt", channel="pc")

    rec = pu.read_at(mk, "pt", p1, o1)[0]
    assert rec.value == data1.encode("utf-8"), \
        f"value is not data's exact text:\n sent {data1.encode()!r}\n read {rec.value!r}"
    assert rec.key == "k-\u00e9".encode("utf-8"), f"key {rec.key!r}"
    assert sorted(rec.headers) == [("h1", b"v1"), ("h2", "\u2603".encode("utf-8"))], f"headers {rec.headers!r}"
    for (p, o), text in (((p2, o2), data2), ((p3, o3), data3), ((p4, o4), data4)):
        rec = pu.read_at(mk, "pt", p, o)[0]
        assert rec.value == text.encode("utf-8"), f"value {rec.value!r}, sent data {text!r}"
    rec3 = pu.read_at(mk, "pt", p3, o3)[0]
    assert rec3.key is None, f"publish without key wrote key {rec3.key!r}"
    assert not rec3.headers, f"publish without headers wrote {rec3.headers!r}"
    rec4 = pu.read_at(mk, "pt", p4, o4)[0]
    assert rec4.key == b"", f'"key":"" wrote key {rec4.key!r}'
    # exactly four records in the topic: nothing written twice
    total = sum(len(v) for v in pu.read_all(mk, "pt", 3).values())
    assert total == 4, f"{total} records in pt after 4 publishes"


def test_publish_data_base64_bytes(bridge):
    """`data_base64` carries arbitrary bytes: the record value is the
    decoded bytes, NUL and 0xff included."""
    mk, srv = bridge({"bt": 1}, "--publish", "bin=bt")
    blobs = [bytes(range(256)) + b"\x00\xff\x00", b"\x00", b"\xff\xfe{not json", os.urandom(3000)]

    async def scenario():
        async with pu.connect(srv) as ws:
            out = []
            for i, b in enumerate(blobs):
                out.append(await pu.request(ws, {"type": "publish", "channel": "bin", "id": f"b{i}",
                                                 "data_base64": base64.b64encode(b).decode("ascii"),
                                                 "key": f"k{i}"}))
            return out
    replies = pu.run(scenario())
    for i, (r, b) in enumerate(zip(replies, blobs)):
        p, o = pu.check_ack(r, f"b{i}", "bt", channel="bin")
        rec = pu.read_at(mk, "bt", p, o)[0]
        assert rec.value == b, f"blob {i}: read {rec.value[:40]!r}... ({len(rec.value)} bytes), sent {len(b)} bytes"
        assert rec.key == f"k{i}".encode()


BAD = [
    # (what, message, code)
    ("both data and data_base64", {"channel": "pc", "data": {"a": 1}, "data_base64": "QUJD"}, "BAD_REQUEST"),
    ("neither data nor data_base64", {"channel": "pc", "key": "k"}, "BAD_REQUEST"),
    ("bad base64", {"channel": "pc", "data_base64": "@@@@"}, "BAD_REQUEST"),
    ("base64 not a string", {"channel": "pc", "data_base64": 12}, "BAD_REQUEST"),
    ("key a number", {"channel": "pc", "data": 1, "key": 5}, "BAD_REQUEST"),
    ("key an object", {"channel": "pc", "data": 1, "key": {"k": "v"}}, "BAD_REQUEST"),
    ("header value a number", {"channel": "pc", "data": 1, "headers": {"h": 1}}, "BAD_REQUEST"),
    ("header value null", {"channel": "pc", "data": 1, "headers": {"h": "v", "g": None}}, "BAD_REQUEST"),
    ("headers an array", {"channel": "pc", "data": 1, "headers": ["h", "v"]}, "BAD_REQUEST"),
    ("headers a string", {"channel": "pc", "data": 1, "headers": "h=v"}, "BAD_REQUEST"),
    ("channel missing", {"data": 1}, "BAD_REQUEST"),
    ("channel a number", {"channel": 3, "data": 1}, "BAD_REQUEST"),
    ("unknown channel", {"channel": "nope", "data": 1}, "UNKNOWN_CHANNEL"),
    ("a consumed (not --publish) channel", {"channel": "feed", "data": 1}, "UNKNOWN_CHANNEL"),
    ("the topic's name, not the channel's", {"channel": "pt", "data": 1}, "UNKNOWN_CHANNEL"),
]


def test_publish_errors_echo_id_and_write_nothing(bridge):
    """Each malformed publish gets its error code with the request's id,
    writes nothing, and leaves the connection working."""
    mk, srv = bridge({"pt": 1}, "--publish", "pc=pt", *FAST)

    async def scenario():
        got = []
        async with pu.connect(srv) as ws:
            for i, (what, body, code) in enumerate(BAD):
                ident = f"e{i}" if i % 2 else i            # string and number ids
                msg = dict(body, type="publish", id=ident)
                got.append((what, code, ident, await pu.request(ws, msg, ident=ident)))
            # the action dialect's errors too
            r = await pu.request(ws, {"action": "publish", "channel": "nope", "data": 1, "id": "act"})
            got.append(("action dialect, unknown channel", "UNKNOWN_CHANNEL", "act", r))
            await asyncio.sleep(0.5)
            ok = await pu.request(ws, publish_msg("pc", {"after": "errors"}, "good"))
        return got, ok
    got, ok = pu.run(scenario())
    for what, code, ident, reply in got:
        pu.check_error(reply, code, ident, what)
    p, o = pu.check_ack(ok, "good", "pt", channel="pc")
    assert o == 0, f"the first good publish after {len(got)} refused ones is at offset {o}: something was written"
    assert sum(len(v) for v in pu.read_all(mk, "pt").values()) == 1


def test_value_over_max_message_bad_request(bridge):
    """A value over --max-message bytes: BAD_REQUEST. On a JSON connection
    the message is always longer than its value (and over the limit closes
    with 1009), so this is a MessagePack map whose `data` becomes a longer
    JSON text: 900 U+0001 characters are 900 bytes of MessagePack and
    5,400 bytes of JSON (\\u0001 each). 600 of them (3,600 bytes) fit."""
    mk, srv = bridge({"mt": 1}, "--publish", "mc=mt", "--max-message", "4096")

    async def scenario():
        async with pu.connect(srv, "format=msgpack") as ws:
            big = {"type": "publish", "channel": "mc", "id": "big", "data": {"s": "\x01" * 900}}
            small = {"type": "publish", "channel": "mc", "id": "small", "data": {"s": "\x01" * 600}}
            assert len(msgpack.packb(big)) < 1000
            await ws.send(msgpack.packb(big, use_bin_type=True))
            r_big = await pu.reply_to(ws, "big")
            await ws.send(msgpack.packb(small, use_bin_type=True))
            r_small = await pu.reply_to(ws, "small")
        async with pu.connect(srv) as ws:     # JSON: a 4,000-byte value in a 4,060-byte message fits
            text = '"' + "x" * 3998 + '"'
            r_json = await pu.request(ws, '{"type":"publish","channel":"mc","id":"j","data":' + text + '}', ident="j")
        return r_big, r_small, r_json, text
    r_big, r_small, r_json, text = pu.run(scenario())
    pu.check_error(r_big, "BAD_REQUEST", "big", "5,400-byte value, --max-message 4096")
    p, o = pu.check_ack(r_small, "small", "mt", channel="mc")
    assert json.loads(pu.read_at(mk, "mt", p, o)[0].value) == {"s": "\x01" * 600}
    p, o = pu.check_ack(r_json, "j", "mt", channel="mc")
    assert pu.read_at(mk, "mt", p, o)[0].value == text.encode()
    assert sum(len(v) for v in pu.read_all(mk, "mt").values()) == 2, "the refused value was written"


def test_action_dialect_publish(bridge):
    mk, srv = bridge({"at": 2}, "--publish", "ac=at")

    async def scenario():
        async with pu.connect(srv) as ws:
            r1 = await pu.request(ws, '{"action":"publish","channel":"ac","data":{"x":[1, 2]},"key":"K","id":"a1"}',
                                  ident="a1")
            r2 = await pu.request(ws, {"action": "publish", "channel": "ac", "id": "a2",
                                       "data_base64": base64.b64encode(b"\x00raw").decode()})
            return r1, r2
    r1, r2 = pu.run(scenario())
    p, o = pu.check_ack(r1, "a1", "at", channel="ac")
    rec = pu.read_at(mk, "at", p, o)[0]
    assert rec.value == b'{"x":[1, 2]}' and rec.key == b"K", rec
    p, o = pu.check_ack(r2, "a2", "at", channel="ac")
    assert pu.read_at(mk, "at", p, o)[0].value == b"\x00raw"


def test_msgpack_connection_publish(bridge):
    """format=msgpack: a MessagePack map in a binary frame publishes; the
    value is the JSON text of `data` (same types: int, float, bool, null,
    unicode); the ack comes as MessagePack. JSON text on the same
    connection works too (the plan's clients send JSON)."""
    mk, srv = bridge({"mpt": 1}, "--publish", "mp=mpt")
    data = {"a": 1, "b": [1, 2.5, "\u00e9\u2603", True, None, -7], "c": {"d": {"e": []}}, "big": 2 ** 40}

    async def scenario():
        async with pu.connect(srv, "format=msgpack") as ws:
            await ws.send(msgpack.packb({"type": "publish", "channel": "mp", "data": data, "key": "mk",
                                         "headers": {"h": "v"}, "id": "m1"}, use_bin_type=True))
            raw = await asyncio.wait_for(ws.recv(), 5)
            await ws.send(json.dumps({"type": "publish", "channel": "mp", "data": {"t": 1}, "id": "m2"}))
            raw2 = await asyncio.wait_for(ws.recv(), 5)
            return raw, raw2
    raw, raw2 = pu.run(scenario())
    assert isinstance(raw, bytes), f"ack on a format=msgpack connection in a text frame: {raw!r}"
    assert isinstance(raw2, bytes), f"ack on a format=msgpack connection in a text frame: {raw2!r}"
    p, o = pu.check_ack(pu.decode(raw), "m1", "mpt", channel="mp")
    rec = pu.read_at(mk, "mpt", p, o)[0]
    got = json.loads(rec.value)
    assert got == data and type(got["b"][1]) is float and got["b"][3] is True and type(got["a"]) is int, \
        f"value {rec.value!r} is not the JSON of {data!r}"
    assert rec.key == b"mk" and rec.headers == [("h", b"v")], rec
    p2, o2 = pu.check_ack(pu.decode(raw2), "m2", "mpt", channel="mp")
    assert pu.read_at(mk, "mpt", p2, o2)[0].value == b'{"t": 1}'


# ---------------------------------------------------------------- order and volume

def test_order_per_key_10000_pipelined(bridge):
    """10,000 publishes with one key, pipelined in a window of
    --max-inflight 1000: all acked, one partition, offsets strictly
    increasing in send order; kafka-python reads them back in that order,
    none twice, nothing else in the topic."""
    n, window = 10000, 1000
    mk, srv = bridge({"ordt": 3}, "--publish", "ord=ordt", "--max-inflight", str(window), *FAST)

    async def scenario():
        acks = {}
        errors = []
        async with pu.connect(srv, compression=None) as ws:
            room = asyncio.Semaphore(window)

            async def reader():
                while len(acks) + len(errors) < n:
                    obj = await pu.recv_obj(ws, 20)
                    if obj.get("type") == "ack":
                        acks[obj["id"]] = obj
                    else:
                        errors.append(obj)
                    room.release()
            rt = asyncio.ensure_future(reader())
            t0 = time.monotonic()
            for i in range(n):
                await room.acquire()
                await ws.send('{"type":"publish","channel":"ord","key":"same","id":%d,"data":{"i":%d}}' % (i, i))
            await asyncio.wait_for(rt, 60)
            return acks, errors, time.monotonic() - t0
    acks, errors, took = pu.run(scenario(), timeout=90)
    assert not errors, f"{len(errors)} errors, first {errors[:3]!r}"
    assert sorted(acks) == list(range(n))
    parts = {a["partition"] for a in acks.values()}
    assert len(parts) == 1, f"one key went to partitions {parts}"
    offs = [acks[i]["offset"] for i in range(n)]
    bad = [i for i in range(1, n) if offs[i] <= offs[i - 1]]
    assert not bad, f"offsets not increasing in send order at ids {bad[:5]}: {[offs[i - 1:i + 1] for i in bad[:3]]}"
    part = parts.pop()
    recs = pu.read_at(mk, "ordt", part, offs[0], n, timeout=30)
    vals = [json.loads(r.value)["i"] for r in recs]
    assert vals == list(range(n)), f"read back out of order or with duplicates: first difference at " \
        f"{next(i for i, v in enumerate(vals) if v != i)}"
    assert [r.offset for r in recs] == offs, "acked offsets differ from where the records are"
    assert all(r.key == b"same" for r in recs)
    total = sum(len(v) for v in pu.read_all(mk, "ordt", 3, timeout=30).values())
    assert total == n, f"{total} records in the topic after {n} acked publishes"


def test_read_your_writes(bridge):
    """The published topic is also routed to a channel: the client that
    publishes sees its record on the stream at the ack's position."""
    mk, srv = bridge({"rwt": 2}, "--publish", "rw=rwt", "-t", "rwt=rwfeed")

    async def scenario():
        async with pu.connect(srv) as ws:
            sub = await pu.request(ws, {"type": "subscribe", "channel": "rwfeed", "id": "s"})
            assert sub.get("type") == "ack", sub
            seen = []
            acks = []
            for i in range(3):
                acks.append(await pu.request(ws, publish_msg("rw", {"mine": i, "s": "\u00e9"}, f"w{i}", key=f"k{i}"),
                                             skip=seen))
            deadline = time.monotonic() + 10
            while len([m for m in seen if m.get("channel") == "rwfeed"]) < 3 and time.monotonic() < deadline:
                try:
                    seen.append(await pu.recv_obj(ws, 0.5))
                except asyncio.TimeoutError:
                    pass
            return acks, seen
    acks, seen = pu.run(scenario())
    data = [m for m in seen if m.get("channel") == "rwfeed"]
    assert len(data) == 3, f"{len(data)} of 3 own records on the stream: {seen!r}"
    for i, a in enumerate(acks):
        p, o = pu.check_ack(a, f"w{i}", "rwt", channel="rw")
        match = [m for m in data if (m.get("topic"), m.get("partition"), m.get("offset")) == ("rwt", p, o)]
        assert len(match) == 1, f"ack {a!r} has no data message at its position: {data!r}"
        assert match[0]["data"] == {"mine": i, "s": "\u00e9"} and match[0].get("key") == f"k{i}", match[0]


# ---------------------------------------------------------------- commands

def need_node():
    import shutil
    if not shutil.which("node"):
        pytest.skip("node is not installed (tests/setup.sh installs it)")
    missing = [m for m in ("ws", "@msgpack/msgpack") if not os.path.isdir(os.path.join(HERE, "node_modules", m))]
    if missing:
        pytest.skip(f"npm packages {missing} missing in tests/e2e (tests/setup.sh installs them)")


def test_command_place_order_dashboard_client(bridge):
    """--command place_order=orders: the plan's web client (Node, ws,
    @msgpack/msgpack; ?type=web&format=msgpack, JSON text frames) places
    an order and gets {"type":"ack","action":"place_order","id":"o1",
    "topic":"orders",...} as MessagePack; the record's value is the
    payload's JSON text. A command without payload: BAD_REQUEST; a type
    no --command names: UNKNOWN_TYPE; a publish from this connection
    works too (state-dialect connections may publish)."""
    need_node()
    mk, srv = bridge({"orders": 1, "pubt": 1}, "-t", "orders", "--command", "place_order=orders",
                     "--publish", "pub=pubt")
    order = {"symbol": "BTC", "side": "buy", "quantity": 1}
    cmds = [{"type": "place_order", "payload": order, "id": "o1"},
            {"type": "place_order", "id": "o2"},
            {"type": "cancel_order", "payload": {"id": "o1"}, "id": "o3"},
            {"type": "publish", "channel": "pub", "data": {"from": "web"}, "id": "p1"},
            {"type": "place_order", "payload": {"symbol": "ETH", "side": "sell", "quantity": 2.5},
             "key": "ETH", "headers": {"src": "ui"}, "id": "o4"}]
    p = subprocess.run(["node", os.path.join(HERE, "publish_command.js"), f"ws://127.0.0.1:{srv.port}/ws",
                        "orders"] + [json.dumps(c) for c in cmds],
                       capture_output=True, text=True, timeout=30, cwd=HERE)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines and lines[-1].get("event") == "done", f"node client: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    msgs = [l["msg"] for l in lines if l.get("event") == "message"]
    assert not any("text_frame" in m for m in msgs), f"text frames on a format=msgpack connection: {msgs!r}"
    replies = {m.get("id"): m for m in msgs if m.get("type") in ("ack", "error") and m.get("id")}
    assert lines[-1]["answered"] == len(cmds), f"answers: {replies!r}\nall: {msgs!r}"

    pp, o = pu.check_ack(replies["o1"], "o1", "orders", action="place_order")
    assert "channel" not in replies["o1"], f"a command's ack names a channel: {replies['o1']!r}"
    rec = pu.read_at(mk, "orders", pp, o)[0]
    assert rec.value == json.dumps(order, separators=(",", ":")).encode(), \
        f"value {rec.value!r}: not the payload's JSON text as the client sent it"
    pu.check_error(replies["o2"], "BAD_REQUEST", "o2", "place_order without payload")
    pu.check_error(replies["o3"], "UNKNOWN_TYPE", "o3", "a command type not configured")
    pp, o = pu.check_ack(replies["p1"], "p1", "pubt", channel="pub")
    assert pu.read_at(mk, "pubt", pp, o)[0].value == b'{"from":"web"}'
    pp, o = pu.check_ack(replies["o4"], "o4", "orders", action="place_order")
    rec = pu.read_at(mk, "orders", pp, o)[0]
    assert rec.value == b'{"symbol":"ETH","side":"sell","quantity":2.5}' and rec.key == b"ETH" \
        and rec.headers == [("src", b"ui")], rec
    assert sum(len(v) for v in pu.read_all(mk, "orders").values()) == 2


def test_command_action_dialect_and_json(bridge):
    """A command on an ordinary JSON connection, in both dialects; the
    payload's exact text is the value; errors echo the id."""
    mk, srv = bridge({"cmdt": 1}, "--command", "place_order=cmdt", "--command", "ping_me=cmdt")

    async def scenario():
        async with pu.connect(srv) as ws:
            r1 = await pu.request(ws, '{"type":"place_order","payload": {"q" : 1 },"id":"c1"}', ident="c1")
            r2 = await pu.request(ws, '{"action":"place_order","payload":[1,"x"],"key":"k","id":"c2"}', ident="c2")
            r3 = await pu.request(ws, {"type": "ping_me", "payload": None, "id": "c3"})
            r4 = await pu.request(ws, {"action": "place_order", "id": "c4"})
            r5 = await pu.request(ws, {"type": "place_order", "payload": 1, "key": 1, "id": "c5"})
            r6 = await pu.request(ws, {"type": "place_orders", "payload": 1, "id": "c6"})
            return r1, r2, r3, r4, r5, r6
    r1, r2, r3, r4, r5, r6 = pu.run(scenario())
    p, o = pu.check_ack(r1, "c1", "cmdt", action="place_order")
    assert pu.read_at(mk, "cmdt", p, o)[0].value == b'{"q" : 1 }'
    p, o = pu.check_ack(r2, "c2", "cmdt", action="place_order")
    rec = pu.read_at(mk, "cmdt", p, o)[0]
    assert rec.value == b'[1,"x"]' and rec.key == b"k"
    p, o = pu.check_ack(r3, "c3", "cmdt", action="ping_me")
    assert pu.read_at(mk, "cmdt", p, o)[0].value == b"null"
    pu.check_error(r4, "BAD_REQUEST", "c4", "action-dialect command without payload")
    pu.check_error(r5, "BAD_REQUEST", "c5", "command with a numeric key")
    pu.check_error(r6, "UNKNOWN_TYPE", "c6", "unconfigured command type")


def test_config_errors_and_env(bridge):
    """A channel named twice, a built-in type as --command, out-of-range
    --publish-timeout / --max-inflight: exit 2. KBRIDGE_PUBLISH and
    KBRIDGE_COMMAND (comma lists) configure the same as the flags."""
    base = ["--brokers", "127.0.0.1:1", "-t", "x", "--listen", "127.0.0.1:1"]
    for what, args in [
        ("channel twice", ["--publish", "a=t1", "--publish", "a=t2"]),
        ("--command subscribe", ["--command", "subscribe=t"]),
        ("--command publish", ["--command", "publish=t"]),
        ("--command auth", ["--command", "auth=t"]),
        ("--command ping", ["--command", "ping=t"]),
        ("--command unsubscribe", ["--command", "unsubscribe=t"]),
        ("--command list", ["--command", "list=t"]),
        ("--command list_subscriptions", ["--command", "list_subscriptions=t"]),
        ("--command refresh", ["--command", "refresh=t"]),
        ("--publish-timeout 0.05", ["--publish", "a=t", "--publish-timeout", "0.05"]),
        ("--publish-timeout 3601", ["--publish", "a=t", "--publish-timeout", "3601"]),
        ("--max-inflight 0", ["--publish", "a=t", "--max-inflight", "0"]),
        ("--max-inflight 65536", ["--publish", "a=t", "--max-inflight", "65536"]),
    ]:
        r = run_kbridge(base + args)
        assert r.returncode == 2, f"{what}: exit {r.returncode}, expected 2\n{r.stderr.decode(errors='replace')[-500:]}"
    mk, srv = bridge({"et1": 1, "et2": 1}, env={"KBRIDGE_PUBLISH": "e1=et1,e2=et2", "KBRIDGE_COMMAND": "buy=et2"})

    async def scenario():
        async with pu.connect(srv) as ws:
            return [await pu.request(ws, publish_msg("e1", 1, "x1")),
                    await pu.request(ws, publish_msg("e2", 2, "x2")),
                    await pu.request(ws, {"type": "buy", "payload": 3, "id": "x3"})]
    r = pu.run(scenario())
    pu.check_ack(r[0], "x1", "et1", channel="e1")
    pu.check_ack(r[1], "x2", "et2", channel="e2")
    pu.check_ack(r[2], "x3", "et2", action="buy")


# ---------------------------------------------------------------- Kafka failures and limits

def warm(srv, channel, topic):
    """One publish acked: the producer is connected (and has its
    idempotent producer id) before a test takes the broker down."""
    async def one():
        async with pu.connect(srv) as ws:
            return await pu.request(ws, publish_msg(channel, {"warm": 1}, "warm"), timeout=15)
    pu.check_ack(pu.run(one()), "warm", topic, channel=channel)


@pytest.mark.one_process("counts /metrics of the one process serving the client")
def test_max_inflight_rate_limited_while_broker_down(bridge):
    """--max-inflight 2, the broker down: the third publish gets
    RATE_LIMITED at once (nothing written), the first two wait and fail
    with PUBLISH_FAILED at --publish-timeout; the counters say so."""
    mk, srv = bridge({"it": 1}, "--publish", "ic=it", "--max-inflight", "2", "--publish-timeout", "2")
    warm(srv, "ic", "it")
    mk.down(1)

    async def scenario():
        async with pu.connect(srv) as ws:
            t0 = time.monotonic()
            for i in range(3):
                await ws.send(json.dumps(publish_msg("ic", {"i": i}, f"i{i}")))
            first = await pu.recv_obj(ws, 5)
            t_first = time.monotonic() - t0
            mid = pu.metrics(srv)
            later = [await pu.recv_obj(ws, 6), await pu.recv_obj(ws, 6)]
            t_later = time.monotonic() - t0
            return first, t_first, later, t_later, mid
    first, t_first, later, t_later, mid = pu.run(scenario())
    pu.check_error(first, "RATE_LIMITED", "i2", "third publish with --max-inflight 2")
    assert t_first < 1.0, f"RATE_LIMITED after {t_first:.2f}s: not immediate"
    assert mid.get(("kbridge_publish_inflight", ()), None) == 2, \
        f"kbridge_publish_inflight {mid.get(('kbridge_publish_inflight', ()))} with two publishes waiting"
    assert sorted(r.get("id") for r in later) == ["i0", "i1"], later
    for r in later:
        pu.check_error(r, "PUBLISH_FAILED", r.get("id"), "publish while the broker is down")
    assert 1.8 <= t_later <= 4.0, f"PUBLISH_FAILED after {t_later:.2f}s with --publish-timeout 2"
    assert pu.published(srv, "it", "ok") == 1
    assert pu.published(srv, "it", "failed") == 2
    assert pu.published(srv, "it", "rate_limited") == 1
    st = get_json(srv.port, "/stats").get("published")
    assert st == {"ok": 1, "failed": 2, "rate_limited": 1, "inflight": 0}, f"/stats published {st!r}"
    mk.up(1)
    total = sum(len(v) for v in pu.read_all(mk, "it").values())
    assert total == 1, f"{total} records in the topic: only the warm-up publish was acknowledged"


def test_broker_down_publish_failed_then_back(bridge):
    """The broker down: a publish waits, then PUBLISH_FAILED (Kafka's or
    the timeout's reason) within --publish-timeout 2 (after ~2 s, not
    before); the connection stays usable. The broker back: new publishes
    are acked. Read back: every acked record once at its offset, the
    failed one absent, no duplicates."""
    mk, srv = bridge({"dt": 1}, "--publish", "dc=dt", "--publish-timeout", "2",
                     "-X", "reconnect.backoff.max.ms=500")
    warm(srv, "dc", "dt")
    mk.down(1)

    async def scenario():
        async with pu.connect(srv) as ws:
            t0 = time.monotonic()
            await ws.send(json.dumps(publish_msg("dc", {"lost": 1}, "lost")))
            await pu.expect_nothing(ws, 1.5)
            failed = await pu.reply_to(ws, "lost", 5)
            took = time.monotonic() - t0
            pong = await pu.request(ws, {"type": "ping", "id": "alive"})
            mk.up(1)
            acked, retried = [], []
            deadline = time.monotonic() + 25
            i = 0
            while len(acked) < 5 and time.monotonic() < deadline:
                r = await pu.request(ws, publish_msg("dc", {"after": i}, f"a{i}"), timeout=10)
                (acked if r.get("type") == "ack" else retried).append((i, r))
                i += 1
            return failed, took, pong, acked, retried
    failed, took, pong, acked, retried = pu.run(scenario(), timeout=90)
    pu.check_error(failed, "PUBLISH_FAILED", "lost", "publish while the broker is down")
    assert 1.9 <= took <= 3.5, f"PUBLISH_FAILED after {took:.2f}s with --publish-timeout 2"
    assert pong.get("type") == "pong"
    assert len(acked) == 5, f"broker back: only {len(acked)} acks in 25 s; failures {retried[-3:]!r}"
    for i, r in retried:
        pu.check_error(r, "PUBLISH_FAILED", f"a{i}", "publish while the producer reconnects")
    recs = pu.read_all(mk, "dt")[0]
    vals = [r.value for r in recs]
    assert len(vals) == len(set(vals)), f"duplicates in the topic: {vals!r}"
    assert b'{"lost": 1}' not in vals, "the publish answered PUBLISH_FAILED (broker down all along) was written"
    by_offset = {r.offset: r.value for r in recs}
    for i, r in acked:
        p, o = pu.check_ack(r, f"a{i}", "dt", channel="dc")
        assert by_offset.get(o) == json.dumps({"after": i}).encode(), f"ack a{i} at offset {o}: {by_offset.get(o)!r}"


def test_publish_before_broker_ever_answers_times_out(kbridge):
    """No broker at all (kbridge never reached Kafka): a publish still gets
    PUBLISH_FAILED within --publish-timeout, not silence."""
    srv = kbridge("-t", "x", "--publish", "nc=nt", "--publish-timeout", "1")

    async def scenario():
        async with pu.connect(srv) as ws:
            t0 = time.monotonic()
            r = await pu.request(ws, publish_msg("nc", 1, "n1"), timeout=5)
            return r, time.monotonic() - t0
    r, took = pu.run(scenario())
    pu.check_error(r, "PUBLISH_FAILED", "n1", "publish without a reachable broker")
    assert 0.9 <= took <= 2.6, f"PUBLISH_FAILED after {took:.2f}s with --publish-timeout 1"


# ---------------------------------------------------------------- authorization

def pub_token(keyring, publish=None, channels=("*",), exp_in=300):
    c = au.claims(channels=channels, exp_in=exp_in)
    if publish is not None:
        c["kbridge"]["publish"] = list(publish)
    return au.mint("HS256", keyring.good["hmac"], c)


def test_publish_claim(bridge, keyring):
    """Auth on: the token's `publish` globs decide which channels a client
    may publish to and which command types it may send (UNAUTHORIZED
    otherwise, with the id; nothing written); a token without `publish`
    may publish nowhere; before authenticating: UNAUTHORIZED."""
    mk, srv = bridge({"ot": 1, "st": 1}, "--jwt-secret", keyring.secret,
                     "--publish", "orders-eu=ot", "--publish", "secret=st",
                     "--command", "orders_cancel=ot", "--command", "place_order=ot")
    allowed = pub_token(keyring, publish=["orders*"])
    none = pub_token(keyring, publish=None)
    empty = pub_token(keyring, publish=[])

    async def scenario():
        out = {}
        async with pu.connect(srv) as ws:
            out["pre"] = await pu.request(ws, publish_msg("orders-eu", 1, "pre"))
            out["pre_cmd"] = await pu.request(ws, {"type": "orders_cancel", "payload": 1, "id": "pre_cmd"})
            ack = await pu.request(ws, {"type": "auth", "token": allowed, "id": "auth"})
            assert ack.get("type") == "ack", ack
            out["ok"] = await pu.request(ws, publish_msg("orders-eu", {"o": 1}, "ok"))
            out["secret"] = await pu.request(ws, publish_msg("secret", {"s": 1}, "secret"))
            out["cmd_ok"] = await pu.request(ws, {"type": "orders_cancel", "payload": {"c": 1}, "id": "cmd_ok"})
            out["cmd_no"] = await pu.request(ws, {"type": "place_order", "payload": {"c": 2}, "id": "cmd_no"})
            out["act_no"] = await pu.request(ws, {"action": "publish", "channel": "secret", "data": 1, "id": "act_no"})
        async with pu.connect(srv, "access_token=" + allowed) as ws:
            out["query"] = await pu.request(ws, publish_msg("orders-eu", {"o": 2}, "query"))
        async with pu.connect(srv, extra_headers={"Authorization": "Bearer " + allowed}) as ws:
            out["header"] = await pu.request(ws, publish_msg("orders-eu", {"o": 3}, "header"))
        for name, tok in (("none", none), ("empty", empty)):
            async with pu.connect(srv, "access_token=" + tok) as ws:
                out[name] = await pu.request(ws, publish_msg("orders-eu", 1, name))
                out[name + "_cmd"] = await pu.request(ws, {"type": "orders_cancel", "payload": 1, "id": name + "_cmd"})
        return out
    out = pu.run(scenario())
    for k in ("pre", "pre_cmd", "secret", "cmd_no", "act_no", "none", "none_cmd", "empty", "empty_cmd"):
        pu.check_error(out[k], "UNAUTHORIZED", k, k)
    for k in ("ok", "query", "header"):
        pu.check_ack(out[k], k, "ot", channel="orders-eu")
    pu.check_ack(out["cmd_ok"], "cmd_ok", "ot", action="orders_cancel")
    assert sum(len(v) for v in pu.read_all(mk, "st").values()) == 0, "an unauthorized publish reached `secret`'s topic"
    assert sum(len(v) for v in pu.read_all(mk, "ot").values()) == 4


# ---------------------------------------------------------------- shutdown

def test_sigterm_answers_publish_in_flight_before_1001(bridge):
    """SIGTERM with a publish in flight (broker down, --publish-timeout 10,
    --drain-timeout 3): the client gets PUBLISH_FAILED (or an ack) before
    the 1001 close, by the drain timeout; a publish sent during the drain
    gets PUBLISH_FAILED at once ("shutting down"); kbridge exits 0 soon
    after the drain time, well before the publish timeout."""
    mk, srv = bridge({"sht": 1}, "--publish", "shc=sht", "--publish-timeout", "10", "--drain-timeout", "3")
    warm(srv, "shc", "sht")
    mk.down(1)

    async def scenario():
        events = []
        async with pu.connect(srv) as ws:
            await ws.send(json.dumps(publish_msg("shc", {"inflight": 1}, "f1")))
            await pu.expect_nothing(ws, 0.5)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            try:
                await ws.send(json.dumps(publish_msg("shc", {"late": 1}, "f2")))
            except Exception as e:              # already closed: reported below
                events.append(("send-failed", repr(e), time.monotonic() - t0))
            try:
                while True:
                    obj = await pu.recv_obj(ws, 8)
                    events.append(("msg", obj, time.monotonic() - t0))
            except asyncio.TimeoutError:
                events.append(("timeout", None, time.monotonic() - t0))
            except Exception as e:
                code = getattr(getattr(e, "rcvd", None), "code", None)
                events.append(("close", code, time.monotonic() - t0))
        return events, t0
    events, t0 = pu.run(scenario())
    rc = srv.wait_exit(8)
    t_exit = time.monotonic() - t0
    msgs = [e for e in events if e[0] == "msg"]
    close = [e for e in events if e[0] == "close"]
    assert close and close[-1][1] == 1001, f"no 1001 close: {events!r}"
    f1 = [m for m in msgs if m[1].get("id") == "f1"]
    assert f1, f"the publish in flight got no answer before the close: {events!r}"
    if f1[0][1].get("type") != "ack":
        pu.check_error(f1[0][1], "PUBLISH_FAILED", "f1", "publish in flight at SIGTERM")
    assert f1[0][2] <= 4.5, f"the publish in flight was answered {f1[0][2]:.2f}s after SIGTERM, --drain-timeout 3"
    f2 = [m for m in msgs if m[1].get("id") == "f2"]
    assert f2, f"the publish sent during the drain got no answer: {events!r}"
    pu.check_error(f2[0][1], "PUBLISH_FAILED", "f2", "publish during the drain")
    assert "shut" in f2[0][1]["message"].lower(), f"message does not say shutting down: {f2[0][1]!r}"
    assert f2[0][2] <= 2.0, f"the publish during the drain was answered only after {f2[0][2]:.2f}s"
    assert rc == 0, f"kbridge exit status {rc} after SIGTERM\n{srv.log_tail()}"
    # the drain, then the producer's destruction with the broker down (and
    # under ASan the leak check): well short of the 10 s publish timeout
    assert t_exit <= 6.5, f"kbridge exited {t_exit:.1f}s after SIGTERM with --drain-timeout 3"


# ---------------------------------------------------------------- observability

@pytest.mark.one_process("counts /metrics of the one process serving the client")
def test_metrics_and_stats_count_acks(bridge):
    mk, srv = bridge({"mt1": 2, "mt2": 1}, "--publish", "m1=mt1", "--publish", "m2=mt2",
                     "--command", "cmd=mt2", *FAST)

    async def scenario():
        async with pu.connect(srv) as ws:
            out = []
            for i in range(7):
                out.append(await pu.request(ws, publish_msg("m1", {"i": i}, f"a{i}", key=str(i))))
            for i in range(3):
                out.append(await pu.request(ws, publish_msg("m2", {"i": i}, f"b{i}")))
            out.append(await pu.request(ws, {"type": "cmd", "payload": 1, "id": "c"}))
            out.append(await pu.request(ws, publish_msg("nope", 1, "bad")))
            return out
    out = pu.run(scenario())
    assert [r.get("type") for r in out] == ["ack"] * 11 + ["error"], out
    assert pu.published(srv, "mt1", "ok") == 7
    assert pu.published(srv, "mt2", "ok") == 4
    assert pu.published(srv, "mt1", "failed") == 0 and pu.published(srv, "mt1", "rate_limited") == 0
    m = pu.metrics(srv)
    assert m.get(("kbridge_publish_inflight", ())) == 0, f"kbridge_publish_inflight {m.get(('kbridge_publish_inflight', ()))}"
    st = get_json(srv.port, "/stats").get("published")
    assert st == {"ok": 11, "failed": 0, "rate_limited": 0, "inflight": 0}, f"/stats published {st!r}"
    assert wait_status(srv.port, "/ready", 200, 2) is not None


def test_publishes_outside_client_rate(bridge):
    """--client-rate does not count publishes and
    commands (--max-inflight paces them). With --client-rate 5 (burst 10),
    150 pipelined publishes and commands are all acked; the control
    messages' bucket is untouched by them (10 pings right after: 10 pongs)
    and still applies to control messages (the next 15 pings: some
    RATE_LIMITED)."""
    mk, srv = bridge({"crt": 1}, "--publish", "cr=crt", "--command", "crc=crt", "--client-rate", "5",
                     "--max-inflight", "200")

    async def scenario():
        async with pu.connect(srv) as ws:
            for i in range(150):
                if i % 3:
                    await ws.send(json.dumps(publish_msg("cr", {"i": i}, f"r{i}")))
                else:
                    await ws.send(json.dumps({"type": "crc", "payload": {"i": i}, "id": f"r{i}"}))
            replies = [await pu.recv_obj(ws, 10) for _ in range(150)]
            pings = []
            for j in range(25):
                await ws.send(json.dumps({"type": "ping", "id": f"p{j}"}))
            for j in range(25):
                pings.append(await pu.recv_obj(ws, 5))
            return replies, pings
    replies, pings = pu.run(scenario())
    bad = [r for r in replies if r.get("type") != "ack"]
    assert not bad, f"{len(bad)} of 150 publishes/commands refused with --client-rate 5: {bad[:3]!r}"
    assert [p.get("type") for p in pings[:10]] == ["pong"] * 10, \
        f"the first 10 pings after 150 publishes: {pings[:10]!r} (publishes used the control bucket?)"
    assert any(p.get("code") == "RATE_LIMITED" for p in pings[10:]), \
        "25 pings at once with --client-rate 5 all answered: the control limit no longer applies"
    assert topic_total(mk, "crt") == 150


def test_refused_publishes_cost_like_control_messages(bridge):
    """Only a publish that goes to Kafka is outside --client-rate: one
    refused at once (here UNKNOWN_CHANNEL, each answered) takes from the
    control bucket, so a ping right after 40 of them with --client-rate 5
    (burst 10) is RATE_LIMITED."""
    mk, srv = bridge({"rft": 1}, "--publish", "rf=rft", "--client-rate", "5")

    async def scenario():
        async with pu.connect(srv) as ws:
            for i in range(40):
                await ws.send(json.dumps(publish_msg("nope", {"i": i}, f"n{i}")))
            replies = [await pu.recv_obj(ws, 10) for _ in range(40)]
            await ws.send(json.dumps({"type": "ping", "id": "after"}))
            return replies, await pu.recv_obj(ws, 5)
    replies, ping = pu.run(scenario())
    assert all(r.get("code") == "UNKNOWN_CHANNEL" for r in replies), replies[:3]
    assert ping.get("code") == "RATE_LIMITED" and ping.get("id") == "after", \
        f"40 refused publishes left the control bucket full: {ping!r}"


def test_publish_data_beyond_control_limits(bridge):
    """A publish's data may exceed the control
    message limits (512 JSON elements, 16 levels): 3,000 elements and 200
    levels are published with their exact text, within --max-message."""
    mk, srv = bridge({"dpt": 1}, "--publish", "dp=dpt", "--command", "dcmd=dpt")
    wide = "[" + ",".join(str(i) for i in range(3000)) + "]"
    deep = "[" * 200 + '{"x" : 1}' + "]" * 200
    mixed = '{"rows":[' + ",".join('{"i":%d,"v":[%d,"s"]}' % (i, i) for i in range(400)) + "]}"

    async def scenario():
        async with pu.connect(srv) as ws:
            out = []
            for ident, data in (("wide", wide), ("deep", deep), ("mixed", mixed)):
                out.append(await pu.request(ws, '{"type":"publish","channel":"dp","id":"%s","data":%s}' % (ident, data),
                                            ident=ident))
            out.append(await pu.request(ws, '{"type":"dcmd","id":"cmd","payload":%s}' % deep, ident="cmd"))
        async with pu.connect(srv, "format=msgpack") as ws:
            await ws.send(msgpack.packb({"type": "publish", "channel": "dp", "id": "mp", "data": json.loads(mixed)}))
            out.append(await pu.reply_to(ws, "mp"))
        return out
    out = pu.run(scenario())
    for r, (ident, text) in zip(out, (("wide", wide), ("deep", deep), ("mixed", mixed), ("cmd", deep),
                                      ("mp", None))):
        p, o = pu.check_ack(r, ident, "dpt", action="dcmd" if ident == "cmd" else "publish")
        rec = pu.read_at(mk, "dpt", p, o)[0]
        if text is not None:
            assert rec.value == text.encode(), f"{ident}: value differs ({len(rec.value)} bytes, sent {len(text)})"
        else:
            assert json.loads(rec.value) == json.loads(mixed), f"{ident}: {rec.value[:100]!r}"



def test_msgpack_publish_50_levels(bridge):
    """A MessagePack publish whose data is nested 50 levels (within the 63
    docs/protocol.md names for MessagePack) is published; the value is
    its JSON form."""
    mk, srv = bridge({"dpt": 1}, "--publish", "dp=dpt")
    deep = json.loads("[" * 50 + '{"k":[1,"x"]}' + "]" * 50)

    async def scenario():
        async with pu.connect(srv, "format=msgpack") as ws:
            await ws.send(msgpack.packb({"type": "publish", "channel": "dp", "id": "mp50", "data": deep}))
            return await pu.reply_to(ws, "mp50", 5)
    p, o = pu.check_ack(pu.run(scenario()), "mp50", "dpt", channel="dp")
    assert json.loads(pu.read_at(mk, "dpt", p, o)[0].value) == deep


def test_msgpack_deep_publish_answered_with_id(bridge):
    """A MessagePack publish whose data is nested 100 levels (valid
    MessagePack; the same data as JSON text is accepted on a JSON
    connection): too deep for kbridge's JSON writer (63 levels), so it is
    refused, INVALID_JSON, and the refusal still carries the request's id
    (every reply carries the request's id when it had one and it can be
    read)."""
    mk, srv = bridge({"dpt": 1}, "--publish", "dp=dpt")
    deep = json.loads("[" * 100 + "1" + "]" * 100)

    async def scenario():
        async with pu.connect(srv, "format=msgpack") as ws:
            await ws.send(msgpack.packb({"type": "publish", "channel": "dp", "id": "mpdeep", "data": deep}))
            seen = []
            try:
                return await pu.reply_to(ws, "mpdeep", 3, skip=seen), seen
            except AssertionError:
                return None, seen
    r, seen = pu.run(scenario())
    assert r is not None, f"no answer with the id to a publish whose MessagePack data is 100 levels deep: {seen!r}"
    if r.get("type") == "ack":
        p, o = pu.check_ack(r, "mpdeep", "dpt", channel="dp")
        assert json.loads(pu.read_at(mk, "dpt", p, o)[0].value) == deep
    else:
        pu.check_error(r, "INVALID_JSON", "mpdeep", "MessagePack data 100 levels deep")
        assert "63 levels" in r["message"], r


def topic_total(mk, topic, partitions=1):
    return sum(len(v) for v in pu.read_all(mk, topic, partitions).values())


def test_demo_has_no_publish_channel(kbridge):
    """--demo's market-data channels are not publish channels (its one
    publish channel is `chat`, for the console's publish box): publishing
    to them is UNKNOWN_CHANNEL."""
    srv = kbridge("--demo", brokers=False)

    async def scenario():
        async with pu.connect(srv) as ws:
            return [await pu.request(ws, publish_msg(ch, 1, ch)) for ch in ("demo", "trade-info", "dashboard")]
    for r, ch in zip(pu.run(scenario()), ("demo", "trade-info", "dashboard")):
        pu.check_error(r, "UNKNOWN_CHANNEL", ch, f"--demo, publish to {ch}")


@pytest.mark.one_process("counts /metrics of the one process serving the clients")
def test_client_gone_with_publishes_in_flight(bridge):
    """Clients that leave with publishes in flight (one abruptly with 300
    pipelined, one while the broker is down): kbridge survives, every
    publish ends counted (ok or failed), nothing waits forever, and a new
    client publishes as before."""
    mk, srv = bridge({"gt": 1}, "--publish", "gc=gt", "--publish-timeout", "1.5", "--max-inflight", "1000", *FAST)

    async def burst_and_leave():
        ws = await pu.connect(srv, compression=None)
        for i in range(300):
            await ws.send('{"type":"publish","channel":"gc","id":%d,"data":{"i":%d}}' % (i, i))
        await ws.send('{"type":"ping","id":"last"}')
        await pu.reply_to(ws, "last", 10, skip=[])  # kbridge has read all 300 (some acks came)
        ws.transport.abort()                       # no close handshake, the other replies unread
    pu.run(burst_and_leave())
    pu.wait_until(lambda: pu.published(srv, "gt", "ok") + pu.published(srv, "gt", "failed") == 300,
                  10, "300 publishes of the client that left counted")
    mk.down(1)

    async def leave_while_down():
        async with pu.connect(srv) as ws:
            for i in range(5):
                await ws.send(json.dumps(publish_msg("gc", {"down": i}, f"d{i}")))
            await asyncio.sleep(0.2)
    pu.run(leave_while_down())
    pu.wait_until(lambda: pu.published(srv, "gt", "ok") + pu.published(srv, "gt", "failed") == 305,
                  6, "the 5 publishes of the client gone while the broker was down counted")
    m = pu.metrics(srv)
    assert m.get(("kbridge_publish_inflight", ())) == 0, f"kbridge_publish_inflight {m.get(('kbridge_publish_inflight', ()))}"
    mk.up(1)
    assert srv.alive(), f"kbridge died\n{srv.log_tail()}"

    async def again():
        async with pu.connect(srv) as ws:
            return await pu.request(ws, publish_msg("gc", {"again": 1}, "again"), timeout=20)
    r = pu.run(again())
    pu.check_ack(r, "again", "gt", channel="gc")
    vals = [rec.value for rec in pu.read_all(mk, "gt")[0]]
    assert len(vals) == len(set(vals)), "duplicates in the topic"
    assert len(vals) == pu.published(srv, "gt", "ok"), \
        f"{len(vals)} records in the topic, kbridge_published_total ok {pu.published(srv, 'gt', 'ok')}"


def test_workers_stats_sum_published(bridge):
    """--workers 2: /stats "published" sums every process's publishes."""
    mk, srv = bridge({"wt": 2}, "--publish", "wc=wt", "--workers", "2")

    async def many():
        out = []
        for i in range(12):
            async with pu.connect(srv) as ws:
                out.append(await pu.request(ws, publish_msg("wc", {"i": i}, f"w{i}")))
        return out
    out = pu.run(many())
    assert all(r.get("type") == "ack" for r in out), out
    st = pu.wait_until(lambda: (get_json(srv.port, "/stats").get("published") or {}).get("ok") == 12 and
                       get_json(srv.port, "/stats")["published"], 5, "/stats published ok 12")
    assert st == {"ok": 12, "failed": 0, "rate_limited": 0, "inflight": 0}, st
    assert topic_total(mk, "wt", 2) == 12


def test_workers_inflight_forgets_a_killed_worker(bridge):
    """--workers 2, broker down: publishes wait on both workers
    ("inflight" counts them); the workers are killed (SIGKILL) and
    replaced: what they had in flight is gone with them, and "inflight"
    comes back to 0 instead of counting it for ever."""
    mk, srv = bridge({"kt": 1}, "--publish", "kc=kt", "--workers", "2", "--publish-timeout", "60")
    pu.wait_until(lambda: len(get_json(srv.port, "/stats").get("workers") or []) == 2 and
                  all(w.get("pid") for w in get_json(srv.port, "/stats")["workers"]), 20, "2 workers")
    mk.down(1)

    async def hold():
        conns = []
        for i in range(6):
            ws = await pu.connect(srv)
            await ws.send(json.dumps(publish_msg("kc", {"i": i}, f"k{i}")))
            conns.append(ws)
        return conns
    loop = asyncio.new_event_loop()
    conns = []
    try:
        conns = loop.run_until_complete(hold())
        pu.wait_until(lambda: (get_json(srv.port, "/stats").get("published") or {}).get("inflight") == 6, 10,
                      "6 publishes in flight")
        pids = [w["pid"] for w in get_json(srv.port, "/stats")["workers"]]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        pu.wait_until(lambda: (lambda ws: len(ws) == 2 and all(w.get("pid") and w["pid"] not in pids for w in ws))(
            get_json(srv.port, "/stats").get("workers") or []), 20, "2 new workers")
        # a replacement clears its slot when it starts publishing, which
        # may be a moment after /stats first names it
        pu.wait_until(lambda: (get_json(srv.port, "/stats").get("published") or {}).get("inflight") == 0, 10,
                      "nothing in flight after the workers holding the publishes were killed")
    finally:
        mk.up(1)

        async def close_all():
            for ws in conns:
                ws.transport.abort()
            await asyncio.gather(*(ws.wait_closed() for ws in conns), return_exceptions=True)
        loop.run_until_complete(asyncio.wait_for(close_all(), 5))
        loop.close()


def test_auth_refresh_replaces_publish_permission(bridge, keyring):
    """A new `auth` replaces the permissions: after refreshing with a token
    without `publish`, publishing is UNAUTHORIZED; with one allowing it
    again, it works."""
    mk, srv = bridge({"rt": 1}, "--jwt-secret", keyring.secret, "--publish", "rc=rt")

    async def scenario():
        async with pu.connect(srv, "access_token=" + pub_token(keyring, publish=["*"])) as ws:
            a = await pu.request(ws, publish_msg("rc", 1, "a"))
            ack = await pu.request(ws, {"type": "auth", "token": pub_token(keyring), "id": "re1"})
            b = await pu.request(ws, publish_msg("rc", 2, "b"))
            ack2 = await pu.request(ws, {"type": "auth", "token": pub_token(keyring, publish=["r*"]), "id": "re2"})
            c = await pu.request(ws, publish_msg("rc", 3, "c"))
            return a, ack, b, ack2, c
    a, ack, b, ack2, c = pu.run(scenario())
    pu.check_ack(a, "a", "rt", channel="rc")
    assert ack.get("type") == "ack" and ack2.get("type") == "ack", (ack, ack2)
    pu.check_error(b, "UNAUTHORIZED", "b", "publish after a refresh without `publish`")
    pu.check_ack(c, "c", "rt", channel="rc")
    assert [r.value for r in pu.read_all(mk, "rt")[0]] == [b"1", b"3"]


@pytest.mark.one_process("counts /metrics of the one process serving the client; its producer's queue")
def test_producer_queue_full_rate_limited(bridge):
    """librdkafka's queue full (-X queue.buffering.max.messages=3, the
    broker down): further publishes get RATE_LIMITED at once, nothing
    written, counted as rate_limited; the queued ones fail at
    --publish-timeout."""
    mk, srv = bridge({"qt": 1}, "--publish", "qc=qt", "-X", "queue.buffering.max.messages=3",
                     "--publish-timeout", "1.5")
    warm(srv, "qc", "qt")
    mk.down(1)

    async def scenario():
        async with pu.connect(srv) as ws:
            for i in range(6):
                await ws.send(json.dumps(publish_msg("qc", {"q": i}, i)))
            t0 = time.monotonic()
            out = []
            for _ in range(6):
                out.append((await pu.recv_obj(ws, 5), time.monotonic() - t0))
            return out
    out = pu.run(scenario())
    limited = [(r, t) for r, t in out if r.get("code") == "RATE_LIMITED"]
    failed = [(r, t) for r, t in out if r.get("code") == "PUBLISH_FAILED"]
    assert sorted(r["id"] for r, _ in limited) == [3, 4, 5], out
    assert all(t < 1.0 for _, t in limited), f"RATE_LIMITED not immediate: {limited!r}"
    assert sorted(r["id"] for r, _ in failed) == [0, 1, 2], out
    assert pu.published(srv, "qt", "rate_limited") == 3
    assert pu.published(srv, "qt", "failed") == 3
    mk.up(1)
    assert topic_total(mk, "qt") == 1, "a refused or failed publish was written"


def test_escaped_key_and_headers_decoded_whole(bridge):
    """`key` and header names/values are JSON strings: the record gets
    their decoded bytes (escapes resolved), all of them: a \\u0000 inside
    is a byte like any other, never the end of the string. (Refusing such
    a key with BAD_REQUEST, as POST /publish does for ?key=a%00b, would
    also be honest; a shortened key never is.)"""
    mk, srv = bridge({"nt": 1}, "--publish", "nc=nt")
    cases = [
        ("k1", '"a\\"b\\u00e9"', None, b'a"b\xc3\xa9', None),
        ("k2", '"a\\u0000z"', None, b"a\x00z", None),
        ("h1", '"k"', '{"h\\u00e9":"v\\n\\t"}', b"k", [("h\u00e9", b"v\n\t")]),
        ("h2", '"k"', '{"h":"v\\u0000w"}', b"k", [("h", b"v\x00w")]),
    ]

    async def scenario():
        out = []
        async with pu.connect(srv) as ws:
            for ident, key, headers, _, _ in cases:
                raw = '{"type":"publish","channel":"nc","id":"%s","data":1,"key":%s%s}' % (
                    ident, key, ',"headers":' + headers if headers else "")
                out.append(await pu.request(ws, raw, ident=ident))
        return out
    async def channels():
        async with pu.connect(srv) as ws:
            return [await pu.request(ws, '{"type":"publish","channel":"nc\\u0000x","id":"c1","data":1}', ident="c1"),
                    await pu.request(ws, '{"type":"publish","channel":"n\\u0063","id":"c2","data":2}', ident="c2")]
    c1, c2 = pu.run(channels())
    assert c1.get("type") == "error" and c1.get("code") in ("UNKNOWN_CHANNEL", "BAD_REQUEST") and c1.get("id") == "c1", \
        f'channel "nc\\u0000x" taken as "nc": {c1!r}'
    pu.check_ack(c2, "c2", "nt", channel="nc")
    for (ident, key, headers, want_key, want_headers), r in zip(cases, pu.run(scenario())):
        if r.get("type") == "error":
            assert "\\u0000" in key + (headers or ""), f"{ident}: {r!r}"
            pu.check_error(r, "BAD_REQUEST", ident, f"{ident}: key {key} headers {headers}")
            continue
        p, o = pu.check_ack(r, ident, "nt", channel="nc")
        rec = pu.read_at(mk, "nt", p, o)[0]
        assert rec.key == want_key, f"{ident}: key {key} written as {rec.key!r}, expected {want_key!r}"
        if want_headers is not None:
            assert rec.headers == want_headers, f"{ident}: headers {headers} written as {rec.headers!r}"


def test_kafka_errors_reason_and_retry(bridge):
    """Kafka refuses a produce request: a permanent error (MESSAGE_TOO_LARGE,
    INVALID_RECORD) is PUBLISH_FAILED with Kafka's reason as the message,
    at once; a retriable one (REQUEST_TIMED_OUT) is retried by the
    producer and acked, written once. Publishes after each work."""
    mk, srv = bridge({"kt": 1}, "--publish", "kc=kt", "--publish-timeout", "5")
    warm(srv, "kc", "kt")

    async def scenario():
        out = []
        async with pu.connect(srv) as ws:
            for err in (10, 7, 87):                     # ApiKey 0 = Produce
                mk.request_errors(0, err, 0, 1)
                t0 = time.monotonic()
                r = await pu.request(ws, publish_msg("kc", {"e": err}, f"e{err}"), timeout=8)
                out.append((err, r, time.monotonic() - t0,
                            await pu.request(ws, publish_msg("kc", {"after": err}, f"n{err}"), timeout=8)))
        return out
    out = pu.run(scenario())
    for err, r, took, nxt in out:
        if err == 7:
            pu.check_ack(r, f"e{err}", "kt", channel="kc")
        else:
            pu.check_error(r, "PUBLISH_FAILED", f"e{err}", f"Kafka error {err}")
            want = {10: "too large", 87: "validate"}[err]
            assert want in r["message"].lower(), f"message {r['message']!r} is not Kafka's reason ({want!r})"
            assert took < 2.0, f"Kafka's error {err} answered after {took:.1f}s"
        pu.check_ack(nxt, f"n{err}", "kt", channel="kc")
    vals = [r.value for r in pu.read_all(mk, "kt")[0]]
    assert vals == [b'{"warm": 1}', b'{"after": 10}', b'{"e": 7}', b'{"after": 7}', b'{"after": 87}'], vals


@pytest.mark.one_process("counts the failures of the one producer: with workers each has its own")
def test_fatal_producer_error_then_a_new_producer(mock_kafka, kafka_bridge):
    """The cluster refuses the producer's idempotence (its InitProducerId
    answered CLUSTER_AUTHORIZATION_FAILED after 1.5 s: a fatal error in
    librdkafka), twice. The publish waiting for it is answered
    PUBLISH_FAILED with that reason at once, not at --publish-timeout; an
    error line says so and when a new producer starts (1 s, then 2 s);
    publishes meanwhile are refused with the same reason. Then the third
    producer writes, acked at its offset, and the refused publishes are
    not in the topic; the failed producers were destroyed."""
    mk = mock_kafka({"feed": 1, "ft": 1})
    mk.request_errors(22, 31, 1500, 2)              # ApiKey 22 = InitProducerId
    srv = kafka_bridge(mk, "-t", "feed", "--publish", "fc=ft", "--publish-timeout", "20", "--log-level", "debug",
                       *FAST)

    async def scenario():
        async with pu.connect(srv) as ws:
            t0 = time.monotonic()
            first = await pu.request(ws, publish_msg("fc", {"n": 1}, "f1"), timeout=10)
            took = time.monotonic() - t0
            meanwhile = await pu.request(ws, publish_msg("fc", {"n": 2}, "f2"), timeout=5)
            refused, acked, i = [], None, 3
            deadline = time.monotonic() + 15
            while acked is None and time.monotonic() < deadline:
                r = await pu.request(ws, publish_msg("fc", {"n": i}, f"f{i}"), timeout=10)
                if r.get("type") == "ack":
                    acked = (i, r)
                else:
                    refused.append(r)
                    await asyncio.sleep(0.2)
                i += 1
            return first, took, meanwhile, refused, acked
    first, took, meanwhile, refused, acked = pu.run(scenario(), timeout=60)
    for r, ident in [(first, "f1"), (meanwhile, "f2")] + [(r, r.get("id")) for r in refused]:
        pu.check_error(r, "PUBLISH_FAILED", ident, "a publish while the producer failed")
        assert "authorization" in r["message"].lower() and "new one starts" in r["message"], r["message"]
    assert took < 5, f"the publish waiting for the failed producer was answered after {took:.1f}s"
    assert acked is not None, f"no new producer within 15 s: {refused[-2:]!r}\n{srv.log()[-2000:]}"
    i, r = acked
    p, o = pu.check_ack(r, f"f{i}", "ft", channel="fc")
    assert [rec.value for rec in pu.read_all(mk, "ft")[0]] == [json.dumps({"n": i}).encode()]
    log = srv.log().splitlines()
    failed = [ln for ln in log if "kafka producer failed" in ln]
    assert len(failed) == 2 and all(" error " in ln for ln in failed), failed
    assert "retry_in_s=1" in failed[0] and "retry_in_s=2" in failed[1], failed
    assert sum("kafka producer started again" in ln for ln in log) == 2, log[-20:]
    retired = [ln for ln in log if "kafka producer retired" in ln]
    assert len(retired) == 2, retired
    print("destroying a failed producer: " + ", ".join(ln.split("destroy_ms=")[1] + " ms" for ln in retired))
    # Every PUBLISH_FAILED counts as failed: the purged one and the refused.
    got = {res: pu.published(srv, "ft", res) for res in ("ok", "failed")}
    assert got == {"ok": 1, "failed": 2 + len(refused)}, got
    assert srv.health()["status"] == "ok"


@pytest.mark.one_process("signals the one process whose producer failed")
def test_sigterm_while_no_producer_runs(mock_kafka, kafka_bridge):
    """SIGTERM in the backoff after a fatal producer error, with a client
    that never answers the close frame, so the drain lasts its 3 s, past
    the moment a new producer was due: none starts, the loop does not spin
    meanwhile (under 0.5 s of CPU in 2.5 s), and kbridge exits 0."""
    mk = mock_kafka({"feed": 1, "st": 1})
    mk.request_errors(22, 31, 0, 1)
    srv = kafka_bridge(mk, "-t", "feed", "--publish", "sc=st", "--drain-timeout", "3")
    pu.wait_until(lambda: "kafka producer failed" in srv.log(), 10, "the fatal error")
    mute = srv.ws()                                  # read by nobody from here on
    assert mute is not None

    def cpu():
        rest = open(f"/proc/{srv.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu()
    srv.signal(signal.SIGTERM)
    time.sleep(2.5)
    used = cpu() - c0
    rc = srv.wait_exit(8)
    assert rc == 0, f"exit status {rc}\n{srv.log_tail()}"
    assert used < 0.5, f"{used:.2f} s of CPU in 2.5 s of drain with no producer: the loop spins"
    assert "kafka producer started again" not in srv.log()
