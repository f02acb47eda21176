"""pubutil.py - helpers for the publishing tests (test_publish.py,
test_publish_http.py; docs/protocol.md#publishing).

Real peers only: records are read back from the mock Kafka cluster with
kafka-python's KafkaConsumer (assigned partitions, no group), WebSocket
clients are the Python `websockets` library (asyncio), MessagePack is
Debian's python3-msgpack.
"""
import asyncio
import json
import time

import msgpack
import websockets



# ---------------------------------------------------------------- Kafka

def consumer(mk):
    from kafka import KafkaConsumer
    return KafkaConsumer(bootstrap_servers=mk.bootstrap, enable_auto_commit=False, group_id=None,
                         request_timeout_ms=10000, fetch_max_wait_ms=50, max_poll_records=5000)


def read_at(mk, topic, partition, offset, count=1, timeout=15.0):
    """`count` records of topic/partition from `offset` on (kafka-python
    ConsumerRecords: .offset .key .value .headers), in offset order."""
    from kafka import TopicPartition
    c = consumer(mk)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, offset)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(out)} of {count} records of {topic}:{partition} "
                                     f"from offset {offset} within {timeout}s")
            for recs in c.poll(timeout_ms=200).values():
                out += recs
        return out[:count]
    finally:
        c.close()


def read_all(mk, topic, partitions=1, timeout=15.0):
    """Every record of the topic (up to its current end offsets):
    {partition: [ConsumerRecord, ...]}."""
    from kafka import TopicPartition
    c = consumer(mk)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        end = c.end_offsets(tps)
        begin = c.beginning_offsets(tps)
        for tp in tps:
            c.seek(tp, begin[tp])
        out = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while any((out[tp.partition][-1].offset + 1 if out[tp.partition] else begin[tp]) < end[tp]
                  for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: could not read up to the end offsets {end} within {timeout}s")
            for tp, recs in c.poll(timeout_ms=200).items():
                out[tp.partition] += [r for r in recs if r.offset < end[tp]]
        return out
    finally:
        c.close()


def end_offsets(mk, topic, partitions=1):
    from kafka import TopicPartition
    c = consumer(mk)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: v for tp, v in c.end_offsets(tps).items()}
    finally:
        c.close()


# ---------------------------------------------------------------- WebSocket

def url(srv, query=""):
    return f"ws://127.0.0.1:{srv.port}/ws" + (f"?{query}" if query else "")


def connect(srv, query="", **kw):
    """A `websockets` client connection (an async context manager)."""
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("ping_interval", None)
    return websockets.connect(url(srv, query), **kw)


def decode(msg):
    """A server message: JSON from text, MessagePack from binary."""
    if isinstance(msg, (bytes, bytearray)):
        return msgpack.unpackb(msg, raw=False, strict_map_key=False)
    return json.loads(msg)


async def recv_obj(ws, timeout=5.0):
    return decode(await asyncio.wait_for(ws.recv(), timeout))


async def reply_to(ws, ident, timeout=5.0, skip=None):
    """Reads until the ack or error carrying `ident`; other messages (data,
    snapshots, updates) go to `skip` (a list) when given."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no reply with id {ident!r} within {timeout}s; other messages: "
                                 f"{(skip or [])[-5:]!r}")
        try:
            obj = await recv_obj(ws, left)
        except asyncio.TimeoutError:
            continue
        if isinstance(obj, dict) and obj.get("type") in ("ack", "error", "pong") and obj.get("id") == ident:
            return obj
        if skip is not None:
            skip.append(obj)


async def request(ws, msg, ident=None, timeout=5.0, skip=None):
    """Sends msg (an object as JSON text, or str/bytes as they are) and
    returns the reply that carries `ident` (default: msg["id"])."""
    if isinstance(msg, dict):
        ident = msg.get("id") if ident is None else ident
        msg = json.dumps(msg)
    await ws.send(msg)
    return await reply_to(ws, ident, timeout, skip)


async def expect_nothing(ws, seconds):
    """Asserts no message arrives for `seconds`."""
    try:
        obj = await recv_obj(ws, seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message within {seconds}s: {obj!r}")


def check_ack(reply, ident, topic, action="publish", channel=None):
    """A publish (or command) ack: type ack, the action, the id, the topic,
    a partition and an offset (ints). Returns (partition, offset)."""
    assert reply.get("type") == "ack" and reply.get("action") == action, \
        f"expected an ack of {action} (id {ident!r}), got {reply!r}"
    if ident is not None:
        assert reply.get("id") == ident, f"ack without the id {ident!r}: {reply!r}"
    else:
        assert "id" not in reply, f"ack carries an id the request did not have: {reply!r}"
    assert reply.get("topic") == topic, f"ack topic {reply.get('topic')!r}, expected {topic!r}: {reply!r}"
    if channel is not None:
        assert reply.get("channel") == channel, f"ack channel {reply.get('channel')!r}, expected {channel!r}"
    p, o = reply.get("partition"), reply.get("offset")
    assert isinstance(p, int) and not isinstance(p, bool) and p >= 0, f"ack partition {p!r}: {reply!r}"
    assert isinstance(o, int) and not isinstance(o, bool) and o >= 0, f"ack offset {o!r}: {reply!r}"
    return p, o


def check_error(reply, code, ident, what=""):
    assert reply.get("type") == "error" and reply.get("code") == code, \
        f"{what}: expected error {code}, got {reply!r}"
    assert reply.get("id") == ident, f"{what}: error without the id {ident!r}: {reply!r}"
    assert isinstance(reply.get("message"), str) and reply["message"], f"{what}: error without a message: {reply!r}"
    return reply


def run(coro, timeout=60):
    """Runs one test scenario (a coroutine) with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------- metrics

def metrics(srv):
    """/metrics as {(name, labels): value} (authutil's reader)."""
    import authutil
    return authutil.metrics(srv)


def published(srv, topic, result):
    return metrics(srv).get(("kbridge_published_total", (("result", result), ("topic", topic))), 0.0)


def wait_until(pred, timeout, what, step=0.05):
    """pred()'s first true value within timeout (authutil's poll)."""
    import authutil
    return authutil.wait_for(pred, timeout, what, step)
