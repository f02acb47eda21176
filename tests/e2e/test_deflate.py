"""test_deflate.py - permessage-deflate (RFC 7692) end to end: negotiation,
compressed messages both ways, limits, and the counters
(docs/protocol.md#compression, docs/operations.md#metrics, #stats).

Real peers: Python `websockets` and Node `ws` (tests/e2e/deflate_node.js)
negotiate the extension with their defaults, and wsutil.FrameRelay sits
between them and kbridge to see the RSV1 bit of every frame on the wire.
Raw clients (wsutil.PmdWS) send what a library never would: odd offers,
corrupt or oversized compressed data, RSV bits where they do not belong.
Records come from the mock Kafka cluster (conftest.mock_kafka).

A message (envelope included) shorter than --deflate-min-size (default 256)
goes uncompressed; a longer one that deflate shrinks is compressed. Every
wait is bounded; the file runs in well under a minute.
"""
import asyncio
import base64
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import zlib

import pytest

from conftest import is_sanitized_build, mp_pack, mp_unpack, run_kbridge
from wsutil import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, PMD_ANSWER,
                    FrameRelay, PmdWS, build_frame, get_json, http_request, pmd_compress, pmd_inflate,
                    upgrade_headers)

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_SIZE = 256          # --deflate-min-size's default
RSV1 = 4


def pmd(srv, path="/ws", offers=("permessage-deflate",), **kw):
    """A raw client of srv offering `offers` (one header line each)."""
    kw.setdefault("ssl", srv.ssl)
    return srv.track(PmdWS.open_pmd(srv.port, path, offers=offers, **kw))


def small_record(i):
    return '{"i":%d}' % i               # its data message is ~150 bytes: under 256


def big_record(i):
    # ~3 KB that deflate shrinks a lot
    return json.dumps({"i": i, "text": " ".join(["deflate record %d" % i] * 150)})


def window_record(i):
    """~3 KB whose only redundancy is a 1,500-byte random run repeated: a
    15-bit window finds the repeat 1,501 bytes back, a 10-bit one cannot,
    so inflating with a 10-bit window fails if the server used more."""
    run = base64.b64encode(os.urandom(1125)).decode()
    return json.dumps({"i": i, "a": run, "b": run})


def pmd_bridge(mock_kafka, kafka_bridge, *args):
    mk = mock_kafka({"pmd": 1})
    srv = kafka_bridge(mk, "-t", "pmd", *args)
    return mk, srv


def check_sizes(ws, payload, what, min_size=MIN_SIZE):
    """The rule for the message ws just read (payload: inflated)."""
    if len(payload) < min_size:
        assert not ws.last_compressed, f"{what}: {len(payload)} bytes < {min_size} but compressed"
    else:
        assert ws.last_compressed, f"{what}: {len(payload)} bytes >= {min_size} but RSV1 clear"
        assert ws.last_wire_len < len(payload), (what, ws.last_wire_len, len(payload))


def check_wire(frames, messages, min_size=MIN_SIZE):
    """frames (a FrameRelay's data frames) carried messages (as the client
    parsed them), in order: RSV1 exactly on those of min_size bytes or more
    (all of them compress well), each frame whole."""
    assert len(frames) == len(messages), (frames, messages)
    for (op, fin, rsv, n), m in zip(frames, messages):
        size = len(json.dumps(m, separators=(",", ":")).encode())
        assert op == OP_TEXT and fin, frames
        if size < min_size:
            assert rsv == 0, f"a {size}-byte message was compressed: {str(m)[:100]}"
        else:
            assert rsv == RSV1, f"a {size}-byte message went uncompressed: {str(m)[:100]}"
            assert n < size, (n, size)


def read_data(ws, n, timeout=10.0):
    """n data messages from a raw client as (opcode, inflated payload,
    compressed?, wire length, decoded object)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(out)} of {n} data messages: {[o[4] for o in out][-3:]}"
        op, payload = ws.recv_message(left)
        obj = json.loads(payload) if op == OP_TEXT else mp_unpack(payload)
        if "offset" in obj:
            out.append((op, payload, ws.last_compressed, ws.last_wire_len, obj))
    return out


def byte_counters(port):
    """(kbridge_bytes_sent_total, kbridge_bytes_uncompressed_total) from
    one GET /metrics (two requests would differ by the first answer)."""
    text = http_request(port, "GET", "/metrics").body.decode()
    out = []
    for name in ("kbridge_bytes_sent_total", "kbridge_bytes_uncompressed_total"):
        m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
        assert m, f"{name} not in /metrics"
        out.append(float(m.group(1)))
    return tuple(out)


def run_peer(cmd, produce, relay, open_timeout, result_timeout, **kw):
    """Runs a peer script (Node, or Node driving Chromium) in its own
    process group: it prints {"open":true} once connected, then, after
    produce() ran, one result line. Returns (that line or None, stderr's
    tail); the group is killed and the relay closed whatever happens."""
    p = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, start_new_session=True, **kw)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in p.stdout] + [lines.put(None)],
                     daemon=True).start()
    try:
        first = lines.get(timeout=open_timeout)
        assert first and json.loads(first).get("open"), \
            f"{cmd[1]}: {first!r} {p.stderr.read()[-3000:] if first is None else ''}"
        produce()
        last = lines.get(timeout=result_timeout)
        p.wait(10)
    finally:
        if p.poll() is None:           # node and any browser it started
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        relay.close()
    return last, p.stderr.read()[-3000:]


# ---------------------------------------------------------------- real peers

def test_python_websockets_negotiates_and_reads_records(mock_kafka, kafka_bridge):
    """websockets offers permessage-deflate by default: it must be accepted,
    records arrive intact, big ones compressed on the wire, small ones not,
    and what websockets compresses itself is read."""
    import websockets
    mk, srv = pmd_bridge(mock_kafka, kafka_bridge)
    relay = FrameRelay(srv.port)
    values = [small_record(0), big_record(1), small_record(2), big_record(3), window_record(4)]
    ping_id = "py-" + "p" * 1000

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{relay.port}/ws?channel=pmd", max_size=None,
                                      ping_interval=None, open_timeout=5) as ws:
            answer = ws.response_headers.get("Sec-WebSocket-Extensions")
            ext = [(e.name, e.remote_no_context_takeover, e.local_no_context_takeover,
                    e.remote_max_window_bits) for e in ws.extensions]
            for v in values:
                mk.produce("pmd", v, key="k")
            got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in values]
            await ws.send(json.dumps({"type": "ping", "id": ping_id}))
            pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return answer, ext, got, pong
    try:
        answer, ext, got, pong = asyncio.run(asyncio.wait_for(run(), 30))
    finally:
        relay.close()
    assert answer == PMD_ANSWER, answer
    # the server keeps no context; websockets must not either (client_no_context_takeover)
    assert ext == [("permessage-deflate", True, True, 15)], ext
    assert [m["data"] for m in got] == [json.loads(v) for v in values], got
    assert pong == {"type": "pong", "id": ping_id}, pong
    # the wire: 5 records then the pong, RSV1 exactly on the big ones
    check_wire(relay.data_frames(), got + [pong])
    # what websockets sent was compressed, so kbridge inflated it to answer
    client_data = [f for f in relay.client_frames if f[0] == OP_TEXT]
    assert client_data and client_data[-1][2] == RSV1, relay.client_frames


def node_ws_available():
    return shutil.which("node") and os.path.isdir(os.path.join(HERE, "node_modules", "ws"))


def test_node_ws_negotiates_and_reads_records(mock_kafka, kafka_bridge):
    """Node's ws with perMessageDeflate: the same, from another implementation."""
    if not node_ws_available():
        pytest.skip("node or the npm package ws is not available (npm install in tests/e2e)")
    mk, srv = pmd_bridge(mock_kafka, kafka_bridge)
    relay = FrameRelay(srv.port)
    values = [big_record(0), small_record(1), big_record(2)]
    last, err = run_peer(["node", os.path.join(HERE, "deflate_node.js"),
                          f"ws://127.0.0.1:{relay.port}/ws?channel=pmd", str(len(values))],
                         lambda: [mk.produce("pmd", v, key="n") for v in values], relay, 10, 20)
    assert last, f"node printed no result; stderr: {err}"
    res = json.loads(last)
    assert res["ok"], res
    assert res["answer"] == PMD_ANSWER, res["answer"]
    assert res["extensions"] == "permessage-deflate", res
    assert res["params"].get("server_no_context_takeover") is True, res["params"]
    data = [m for m in res["messages"] if "offset" in m]
    assert [m["data"] for m in data] == [json.loads(v) for v in values], data
    # the pong may come before the records: frames are in the order of messages
    check_wire(relay.data_frames(), res["messages"])
    # ws compressed its 2 KB ping (over its 1 KB threshold): kbridge read it
    assert [f[2] for f in relay.client_frames if f[0] == OP_TEXT] == [RSV1], relay.client_frames
    assert res["code"] == 1000, res


# ---------------------------------------------------------------- negotiation

A = PMD_ANSWER
NEGOTIATION = [
    # (why, header lines offered, expected answer or None)
    ("no offer", [], None),
    ("plain offer", ["permessage-deflate"], A),
    ("unknown parameter: declined", ["permessage-deflate; x-unknown=1"], None),
    ("server_max_window_bits=8: declined (zlib cannot)", ["permessage-deflate; server_max_window_bits=8"], None),
    ("server_max_window_bits=9 accepted", ["permessage-deflate; server_max_window_bits=9"], A + "; server_max_window_bits=9"),
    ("server_max_window_bits=10 accepted", ["permessage-deflate; server_max_window_bits=10"], A + "; server_max_window_bits=10"),
    ("server_max_window_bits=15 accepted", ["permessage-deflate; server_max_window_bits=15"], A + "; server_max_window_bits=15"),
    ("server_max_window_bits=16: declined", ["permessage-deflate; server_max_window_bits=16"], None),
    ("server_max_window_bits without a value: declined", ["permessage-deflate; server_max_window_bits"], None),
    ("two offers, first unacceptable", ["permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=12"],
     A + "; server_max_window_bits=12"),
    ("two offers, first taken", ["permessage-deflate; server_max_window_bits=11, permessage-deflate"], A + "; server_max_window_bits=11"),
    ("another extension first", ["x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"], A),
    ("two header lines", ["permessage-deflate; bogus", "permessage-deflate; server_max_window_bits=13"],
     A + "; server_max_window_bits=13"),
    ("two header lines, other extension first", ["x-foo; a=1", "permessage-deflate"], A),
    ("quoted client_max_window_bits", ['permessage-deflate; client_max_window_bits="10"'], A),
    ("quoted server_max_window_bits", ['permessage-deflate; server_max_window_bits="10"'], A + "; server_max_window_bits=10"),
    ("client_max_window_bits without value", ["permessage-deflate; client_max_window_bits"], A),
    ("client_max_window_bits=8 accepted", ["permessage-deflate; client_max_window_bits=8"], A),
    ("client_max_window_bits=7: declined", ["permessage-deflate; client_max_window_bits=7"], None),
    ("client_max_window_bits=16: declined", ["permessage-deflate; client_max_window_bits=16"], None),
    ("both no_context_takeover", ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"], A),
    ("no_context_takeover with a value: declined", ["permessage-deflate; server_no_context_takeover=1"], None),
    ("client_no_context_takeover with a value: declined", ["permessage-deflate; client_no_context_takeover=true"], None),
    ("parameter twice: declined", ["permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"], None),
    ("flag twice: declined", ["permessage-deflate; client_no_context_takeover; client_no_context_takeover"], None),
    ("Chromium's offer", ["permessage-deflate; client_max_window_bits"], A),
    ("Firefox's offer", ["permessage-deflate"], A),
    ("malformed: garbage", ["@@@ ;;; ="], None),
    ("malformed: unterminated quote", ['permessage-deflate; server_max_window_bits="10'], None),
    ("malformed: parameter without name", ["permessage-deflate; =10"], None),
    ("malformed before the offer", ["@@@, permessage-deflate"], None),
    ("malformed after an acceptable offer", ["permessage-deflate; server_max_window_bits=10, @@@"],
     A + "; server_max_window_bits=10"),
    ("other extension only", ["x-webkit-deflate-frame"], None),
]


def test_negotiation_answers(server):
    """Each offer of NEGOTIATION gets exactly the expected answer; the
    upgrade always succeeds. Where deflate was accepted, a 2 KB reply comes
    compressed within the answered window; where not, nothing is compressed
    (PmdWS fails on RSV1 then)."""
    failures = []
    for i, (why, offers, want) in enumerate(NEGOTIATION):
        try:
            c = pmd(server, offers=offers)
            assert c.answer == want, f"answer {c.answer!r}, expected {want!r}"
            ident = json.loads(window_record(i))       # checks the answered window too
            reply = c.request({"type": "ping", "id": ident})
            assert reply == {"type": "pong", "id": ident}, reply
            assert c.last_compressed == (want is not None), \
                f"reply compressed={c.last_compressed} with answer {c.answer!r}"
            c.close()
        except AssertionError as e:
            failures.append(f"{why}: offers {offers!r}: {e}")
    assert not failures, "\n".join(failures)


def test_window_bits_10_is_kept(server):
    """server_max_window_bits=10: the reply inflates with a 1 KiB window
    (PmdWS inflates with c.bits, 64 bytes a call, so a 15-bit distance fails)."""
    c = pmd(server, offers=["permessage-deflate; server_max_window_bits=10"])
    assert c.bits == 10 and c.pmd["server_max_window_bits"] == "10", c.answer
    ident = json.loads(window_record(0))
    c.send_json({"type": "ping", "id": ident})
    op, payload = c.recv_message()
    assert json.loads(payload) == {"type": "pong", "id": ident}
    assert c.last_compressed and c.last_wire_len < len(payload), (c.last_wire_len, len(payload))


def test_plain_request_gets_no_extension_header(server):
    for path in ("/health", "/ws/stats"):
        r = server.http("GET", path, headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
        assert r.status == 200, r
        assert r.header("Sec-WebSocket-Extensions") is None, r
    # an upgrade that fails (bad version) answers without it too
    r = server.http("GET", "/ws", headers=upgrade_headers(version="12", extra=[
        ("Sec-WebSocket-Extensions", "permessage-deflate")]))
    assert r.status >= 400 and r.header("Sec-WebSocket-Extensions") is None, r


def test_deflate_off_ignores_offers_and_refuses_rsv1(kbridge):
    srv = kbridge("--deflate", "off")
    c = pmd(srv, offers=["permessage-deflate; client_max_window_bits"])
    assert c.answer is None
    c.ping_ok("x" * 2000)          # a big reply: PmdWS fails if it had RSV1
    c.send_compressed(OP_TEXT, pmd_compress('{"type":"ping","id":1}'))
    c.expect_close(1002)
    # the environment variable says the same
    srv2 = kbridge(env={"KBRIDGE_DEFLATE": "off"})
    assert pmd(srv2).answer is None


@pytest.mark.parametrize("args,env", [(["--deflate", "maybe"], None), (["--deflate-min-size", "-1"], None),
                                      (["--deflate-min-size", "lots"], None), ([], {"KBRIDGE_DEFLATE": "1"})],
                         ids=["deflate maybe", "min-size -1", "min-size lots", "KBRIDGE_DEFLATE=1"])
def test_bad_settings_are_refused(args, env):
    p = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0"] + args, env=env)
    assert p.returncode == 2, (p.returncode, p.stderr[-500:])


def test_min_size_from_the_environment(kbridge):
    srv = kbridge(env={"KBRIDGE_DEFLATE_MIN_SIZE": "0"})
    c = pmd(srv)
    ident = "e" * 60                    # a ~90-byte pong that deflate shrinks
    assert c.request({"type": "ping", "id": ident})["id"] == ident and c.last_compressed


# ---------------------------------------------------------------- inbound

@pytest.mark.parametrize("how", ["sync-flush", "bfinal", "rfc-bfinal", "window-9", "stored", "two-blocks",
                                 "empty-first-fragment"])
def test_compressed_text_message_is_read(server, how):
    """One compressed message: sync-flushed as RFC 7692 §7.2.1 says; ended by
    a final block as zlib's Z_FINISH writes it; the same followed by the 0x00
    that the steps of RFC 7692 §7.2.1 leave after a final block (RFC 7692
    §7.2.3.4 shows one); from a 9-bit window; as stored blocks (level 0);
    flushed twice, so an inner 00 00 ff ff stays (RFC 7692 §7.2.3.5); and
    with an empty first fragment (RFC 7692 §7.2.3.6)."""
    c = pmd(server)
    ident = "in-" + how + "-" + "q" * 300
    msg = json.dumps({"type": "ping", "id": ident}).encode()
    body = pmd_compress(msg, final=how in ("bfinal", "rfc-bfinal"), bits=(9 if how == "window-9" else 15),
                        level=(0 if how == "stored" else 9))
    if how == "rfc-bfinal":
        body += b"\x00"
    elif how == "two-blocks":
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = co.compress(msg[:40]) + co.flush(zlib.Z_SYNC_FLUSH) + co.compress(msg[40:]) + co.flush(zlib.Z_SYNC_FLUSH)
        assert body.count(b"\x00\x00\xff\xff") == 2
        body = body[:-4]
    frames = build_frame(OP_TEXT, body, rsv=RSV1)
    if how == "empty-first-fragment":
        frames = build_frame(OP_TEXT, b"", fin=False, rsv=RSV1) + build_frame(OP_CONT, body)
    c.send(frames)
    assert c.recv_json() == {"type": "pong", "id": ident}
    # and again: no context is kept from one message to the next
    c.send(frames)
    assert c.recv_json() == {"type": "pong", "id": ident}
    c.ping_ok()                    # an uncompressed message between compressed ones


# RFC 7692 §7.2.3.1, §7.2.3.3, §7.2.3.4: "Hello" compressed three ways, byte
# for byte as the RFC prints them. Not JSON, so each gets INVALID_JSON: a
# reply, not a close, proves it inflated.
RFC_HELLO = {
    "7.2.3.1": bytes.fromhex("f248cdc9c90700"),
    "7.2.3.3": bytes.fromhex("000500faff48656c6c6f00"),
    "7.2.3.4": bytes.fromhex("f348cdc9c9070000"),
}


@pytest.mark.parametrize("section", sorted(RFC_HELLO))
def test_rfc7692_examples_inflate(server, section):
    assert pmd_inflate(RFC_HELLO[section]) == b"Hello"      # what the test itself reads
    c = pmd(server)
    c.send_compressed(OP_TEXT, RFC_HELLO[section])
    reply = c.recv_json()
    assert reply.get("type") == "error" and reply.get("code") == "INVALID_JSON", reply
    c.ping_ok()


def test_compressed_message_in_fragments_with_ping_between(server):
    c = pmd(server)
    ident = "frag-" + "f" * 500
    c.send_deflated(OP_TEXT, json.dumps({"type": "ping", "id": ident}), fragments=3,
                    between=build_frame(OP_PING, b"mid"))
    pongs = []
    reply = c.recv_json(on_control=lambda f: pongs.append(f))
    assert reply == {"type": "pong", "id": ident}, reply
    assert [(f.opcode, f.payload, f.rsv) for f in pongs] == [(OP_PONG, b"mid", 0)], pongs


def test_compressed_binary_message_msgpack(server):
    c = pmd(server, "/ws?format=msgpack")
    ident = "mp-" + "m" * 400
    c.send_deflated(OP_BINARY, mp_pack({"type": "ping", "id": ident}), fragments=2)
    op, payload = c.recv_message()
    assert op == OP_BINARY and mp_unpack(payload) == {"type": "pong", "id": ident}
    assert c.last_compressed, "a 400-byte msgpack reply went uncompressed"


def test_zip_bomb_closes_1009_and_memory_stays_bounded(server):
    bomb = pmd_compress(b"\0" * (10 << 20))
    assert len(bomb) < 12000
    c = pmd(server)
    c.ping_ok()
    rss0, peak0 = server.rss(), server.status_total("VmHWM")
    for _ in range(3):
        c = pmd(server)
        c.send_compressed(OP_TEXT, bomb)
        c.expect_close(1009)
    # the same as a binary message, split in fragments
    c = pmd(server)
    c.send_compressed(OP_BINARY, bomb, fragments=4)
    c.expect_close(1009)
    grew, peak_grew = server.rss() - rss0, server.status_total("VmHWM") - peak0
    if not is_sanitized_build():
        # inflating 10 MB anywhere would raise the peak by ~10 MB
        assert peak_grew < (6 << 20), f"peak RSS grew {peak_grew >> 10} KiB inflating a zip bomb"
        assert grew < (6 << 20), f"RSS grew {grew >> 10} KiB"
    assert server.health()
    pmd(server).ping_ok()


@pytest.mark.parametrize("size,ok", [(65535, True), (65536, True), (65537, False)])
def test_max_message_limits_the_inflated_size(server, size, ok):
    """--max-message (65,536) counts inflated bytes: a message of exactly it
    passes, one byte more is 1009, however small its compressed form."""
    head, tail = '{"type":"ping","id":"', '"}'
    ident = "L" * (size - len(head) - len(tail))
    msg = head + ident + tail
    assert len(msg) == size
    c = pmd(server)
    c.send_deflated(OP_TEXT, msg)
    if ok:
        assert c.recv_json(timeout=10) == {"type": "pong", "id": ident}
    else:
        c.expect_close(1009)


@pytest.mark.parametrize("fragments", [1, 3])
def test_incompressible_message_may_exceed_max_message_compressed(server, fragments):
    """Stored blocks make the compressed form a little longer than the
    message: up to max-message + max-message/8 + 64 compressed bytes are
    read before judging the inflated size, in one frame or several."""
    overhead = len(json.dumps({"type": "ping", "id": ""}))
    run = base64.b64encode(os.urandom(50000)).decode()[:65536 - overhead]
    msg = json.dumps({"type": "ping", "id": run})
    assert len(msg) == 65536
    body = pmd_compress(msg, level=0)
    assert len(body) > 65536 >= len(msg), len(body)
    c = pmd(server)
    c.send_compressed(OP_TEXT, body, fragments=fragments)
    assert c.recv_json(timeout=10) == {"type": "pong", "id": run}


def padded_compressed(total):
    """A JSON ping compressed into exactly `total` bytes: stored, then empty
    stored blocks (00 00 00 ff ff, inflating to nothing), tail removed."""
    for n in range(1000, 1005):
        co = zlib.compressobj(0, zlib.DEFLATED, -15)
        ident = "p" * n
        msg = json.dumps({"type": "ping", "id": ident}).encode()
        head = co.compress(msg) + co.flush(zlib.Z_SYNC_FLUSH)
        if (total + 4 - len(head)) % 5 == 0:
            body = (head + b"\x00\x00\x00\xff\xff" * ((total + 4 - len(head)) // 5))[:-4]
            assert len(body) == total and pmd_inflate(body) == msg
            return ident, body


@pytest.mark.parametrize("fragments", [1, 4])
def test_compressed_size_bound(server, fragments):
    """One message's compressed bytes may take max-message + max-message/8
    + 64 (73,792 by default) however little they inflate to; one byte more
    is 1009."""
    bound = 65536 + 65536 // 8 + 64
    ident, body = padded_compressed(bound)
    c = pmd(server)
    c.send_compressed(OP_TEXT, body, fragments=fragments)
    assert c.recv_json(timeout=10) == {"type": "pong", "id": ident}
    ident, body = padded_compressed(bound + 1)
    c.send_compressed(OP_TEXT, body, fragments=fragments)
    c.expect_close(1009)


BAD = [
    # (why, frames sent, close code)
    ("corrupt deflate data", lambda: build_frame(OP_TEXT, b"\xff\xfe\xfd\xfc\xfb", rsv=RSV1), 1007),
    ("inflates to invalid UTF-8", lambda: build_frame(OP_TEXT, pmd_compress(b'{"type":"ping","id":"\xff\xfe"}'),
                                                         rsv=RSV1), 1007),
    ("RSV1 on a ping", lambda: build_frame(OP_PING, pmd_compress(b"hi"), rsv=RSV1), 1002),
    ("RSV1 on a pong", lambda: build_frame(OP_PONG, b"", rsv=RSV1), 1002),
    ("RSV1 on a close", lambda: build_frame(OP_CLOSE, b"\x03\xe8", rsv=RSV1), 1002),
    ("RSV1 on a continuation", lambda: (lambda b: build_frame(OP_TEXT, b[:4], fin=False, rsv=RSV1)
                                        + build_frame(OP_CONT, b[4:], rsv=RSV1))(
        pmd_compress('{"type":"ping","id":"' + "c" * 200 + '"}')), 1002),
    ("RSV2 on a text frame", lambda: build_frame(OP_TEXT, b'{"type":"ping"}', rsv=2), 1002),
    ("RSV3 on a text frame", lambda: build_frame(OP_TEXT, b'{"type":"ping"}', rsv=1), 1002),
    ("RSV1+RSV2", lambda: build_frame(OP_TEXT, pmd_compress('{"type":"ping"}'), rsv=RSV1 | 2), 1002),
]


@pytest.mark.parametrize("why,frames,code", BAD, ids=[b[0] for b in BAD])
def test_bad_inbound_closes(server, why, frames, code):
    c = pmd(server)
    assert c.pmd is not None
    c.send(frames())
    c.expect_close(code)
    pmd(server).ping_ok()          # the server goes on


def test_rsv1_without_negotiation_is_1002(server):
    c = pmd(server, offers=[])
    assert c.answer is None
    c.send_compressed(OP_TEXT, pmd_compress('{"type":"ping","id":"x"}'))
    c.expect_close(1002)


def test_deflate_over_tls(tls_kbridge):
    """The same bytes inside TLS: negotiated, read and written compressed."""
    srv = tls_kbridge()
    c = pmd(srv)
    assert c.answer == PMD_ANSWER
    ident = "tls-" + "t" * 1000
    c.send_deflated(OP_TEXT, json.dumps({"type": "ping", "id": ident}), fragments=2)
    assert c.recv_json() == {"type": "pong", "id": ident} and c.last_compressed


# ---------------------------------------------------------------- outbound

def test_replies_compressed_by_size(server):
    c = pmd(server)
    small = c.request({"type": "ping", "id": 1})
    assert small == {"type": "pong", "id": 1} and not c.last_compressed
    big_id = {"k%d" % i: "value %d" % i for i in range(60)}
    big = c.request({"type": "ping", "id": big_id})
    assert big == {"type": "pong", "id": big_id} and c.last_compressed
    # an error reply (unknown type) with a big id: compressed, valid JSON
    err = c.request({"type": "nonsense", "id": big_id})
    assert err["type"] == "error" and err["id"] == big_id and c.last_compressed, err
    # just under and at the threshold: a pong's length is its id's plus a constant
    c.send_json({"type": "ping", "id": ""})
    head = len(c.recv_message()[1])
    for size in (MIN_SIZE - 1, MIN_SIZE):
        ident = "a" * (size - head)
        c.send_json({"type": "ping", "id": ident})
        op, payload = c.recv_message()
        assert len(payload) == size and json.loads(payload)["id"] == ident, payload
        check_sizes(c, payload, f"pong of {size} bytes")


def test_control_frames_never_compressed(server):
    c = pmd(server)
    payload = b"z" * 125                # compresses well, still must not be
    c.send_frame(OP_PING, payload)
    f = c.recv_frame()
    assert (f.opcode, f.rsv, f.payload) == (OP_PONG, 0, payload), f
    c.send_close(1000, "r" * 100)
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE and f.rsv == 0 and f.close_code()[0] == 1000, f


OFFER10 = ["permessage-deflate; server_max_window_bits=10"]


def kinds(srv, mix, query):
    """Raw clients of every kind on srv, each with `query`: JSON and
    MessagePack, a plain one, and with mix "10-bit too" the two formats
    again with a 10-bit window."""
    clients = {"json": pmd(srv, "/ws?" + query), "msgpack": pmd(srv, "/ws?format=msgpack&" + query),
               "plain": pmd(srv, "/ws?" + query, offers=[])}
    if mix == "10-bit too":
        clients["json10"] = pmd(srv, "/ws?" + query, offers=OFFER10)
        clients["msgpack10"] = pmd(srv, "/ws?format=msgpack&" + query, offers=OFFER10)
        assert clients["json10"].bits == 10, f"server_max_window_bits=10 not accepted: {clients['json10'].answer!r}"
    assert clients["plain"].pmd is None and clients["json"].bits == 15
    return clients


@pytest.mark.parametrize("mix", ["15-bit", "10-bit too"])
def test_records_json_msgpack_windows_and_plain(mock_kafka, kafka_bridge, mix):
    """One record is sent to clients of every kind: JSON and MessagePack,
    15- and (mix "10-bit too") 10-bit windows, and one without deflate.
    Each gets it intact, and compressed exactly when it is big (the frame
    shared by clients of a kind must suit each one's window and format). A
    snapshot is compressed too."""
    mk, srv = pmd_bridge(mock_kafka, kafka_bridge)
    clients = kinds(srv, mix, "channel=pmd")
    values = [small_record(0), big_record(1), window_record(2), small_record(3), window_record(4)]
    for i, v in enumerate(values):
        mk.produce("pmd", v, key="key%d" % i)
    for name, c in clients.items():
        got = read_data(c, len(values))
        assert [o["data"] for *_, o in got] == [json.loads(v) for v in values], name
        for (op, payload, compressed, wire, obj), v in zip(got, values):
            assert op == (OP_BINARY if name.startswith("msgpack") else OP_TEXT), name
            if name == "plain":
                assert not compressed
                continue
            big = len(v) > 1000
            assert compressed == big, f"{name}: record {obj['offset']} ({len(payload)} bytes) compressed={compressed}"
            if big:
                assert wire < len(payload), (name, wire, len(payload))
    # a snapshot of ~10 KB is compressed and inflates to valid JSON
    c = clients["json10" if "json10" in clients else "json"]
    snap = c.request({"type": "refresh", "channel": "pmd", "id": "s"})
    assert snap["type"] == "snapshot" and c.last_compressed, snap
    assert sorted(snap["data"]) == ["key%d" % i for i in range(len(values))], snap["data"].keys()
    assert snap["data"]["key4"] == json.loads(values[4])


def test_min_size_zero_compresses_small_messages_when_smaller(mock_kafka, kafka_bridge):
    mk, srv = pmd_bridge(mock_kafka, kafka_bridge, "--deflate-min-size", "0")
    c = pmd(srv, "/ws?channel=pmd")
    m = pmd(srv, "/ws?channel=pmd&format=msgpack")
    value = '{"pad":"%s"}' % ("ab" * 40)          # a ~220-byte message that deflate shrinks
    mk.produce("pmd", value, key="s")
    (op, payload, compressed, wire, obj), = read_data(c, 1)
    assert len(payload) < MIN_SIZE and compressed and wire < len(payload), (len(payload), wire)
    assert obj["data"] == json.loads(value)
    (op, payload, compressed, wire, obj), = read_data(m, 1)
    assert op == OP_BINARY and compressed and obj["data"] == json.loads(value)
    # a pong with a random id does not shrink: it goes uncompressed
    ident = base64.b64encode(os.urandom(12)).decode()
    assert c.request({"type": "ping", "id": ident})["id"] == ident
    assert not c.last_compressed, "a message deflate did not shrink was sent compressed"


def next_of(c, kind, timeout=10.0):
    """The next message of type `kind` on raw client c (JSON or
    MessagePack), skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind} within {timeout}s"
        op, payload = c.recv_message(left)
        obj = json.loads(payload) if op == OP_TEXT else mp_unpack(payload)
        if obj.get("type") == kind:
            return obj, payload


@pytest.mark.parametrize("mix", ["15-bit", "10-bit too"])
def test_state_dialect_shared_updates_keep_each_clients_seq(mock_kafka, kafka_bridge, mix):
    """State-dialect updates are made once per group of clients and shared,
    only each client's seq its own (docs/protocol.md#snapshot-and-update).
    Compressed, every client must still read its own seq and the same
    changes: clients whose seq differ, a 10-bit window, MessagePack, and
    one without deflate."""
    mk, srv = pmd_bridge(mock_kafka, kafka_bridge, "--state-shape", "pmd=map")
    clients = dict({"ahead": pmd(srv, "/ws?type=tui")}, **kinds(srv, mix, "type=tui"))
    seq = {}
    for name, c in clients.items():
        c.send_json({"type": "subscribe", "channel": "pmd"})
        snap, raw = next_of(c, "snapshot")
        assert snap["seq"] == 1 and snap["data"] == {"pmd": {}}, (name, snap)
        assert not c.last_compressed, f"{name}: a {len(raw)}-byte snapshot was compressed"
        seq[name] = 1
    for _ in range(2):             # "ahead" runs two snapshots ahead of the others
        clients["ahead"].send_json({"type": "refresh"})
        seq["ahead"] = next_of(clients["ahead"], "snapshot")[0]["seq"]
    assert seq["ahead"] == 3
    for i, value in enumerate([big_record(0), window_record(1)]):
        mk.produce("pmd", value, key="big%d" % i)
        for name, c in clients.items():
            up, raw = next_of(c, "update")
            assert up["seq"] == seq[name] + 1, (name, up["seq"], seq[name])
            seq[name] = up["seq"]
            assert up["changes"] == {"pmd.big%d" % i: json.loads(value)}, (name, str(up)[:300])
            assert c.last_compressed == (name != "plain"), (name, len(raw))
    # a snapshot now holds both: compressed, and read whole
    for name, c in clients.items():
        c.send_json({"type": "refresh", "id": name})
        snap, raw = next_of(c, "snapshot")
        assert snap["seq"] == seq[name] + 1 and snap["id"] == name, (name, snap["seq"])
        assert sorted(snap["data"]["pmd"]) == ["big0", "big1"], name
        assert c.last_compressed == (name != "plain"), name


# ---------------------------------------------------------------- observability

def stats_client(st, sock):
    port = sock.getsockname()[1]
    hits = [e for e in st["client_list"] if e["peer"].endswith(":%d" % port)]
    assert len(hits) == 1, (port, st["client_list"])
    return hits[0]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.05)


def test_metrics_and_stats_count_compression(mock_kafka, kafka_bridge):
    mk, srv = pmd_bridge(mock_kafka, kafka_bridge)
    d1 = pmd(srv, "/ws?channel=pmd")
    d2 = pmd(srv, "/ws?channel=pmd&format=msgpack")
    plain = pmd(srv, "/ws?channel=pmd", offers=[])
    wait_for(lambda: (lambda st: st["deflate_clients"] == 2 and len(st["client_list"]) == 3)(
        get_json(srv.port, "/stats")), 5, "deflate_clients 2 of 3 clients")
    st = get_json(srv.port, "/stats")
    assert stats_client(st, d1.sock)["deflate"] is True
    assert stats_client(st, d2.sock)["deflate"] is True
    assert stats_client(st, plain.sock)["deflate"] is False
    for i in range(5):
        mk.produce("pmd", big_record(i), key="k%d" % i)
    for c in (d1, d2, plain):
        read_data(c, 5)

    def counted():
        sent, unc = byte_counters(srv.port)
        return unc > sent + 5 * 2000           # two clients saved >2 KB a record
    wait_for(counted, 5, "kbridge_bytes_uncompressed_total above kbridge_bytes_sent_total")
    st = get_json(srv.port, "/stats")
    assert isinstance(st["bytes_uncompressed"], int) and st["bytes_uncompressed"] > st["bytes_out"], st
    assert st["compression_ratio"] > 1, st["compression_ratio"]
    assert abs(st["compression_ratio"] - st["bytes_uncompressed"] / st["bytes_out"]) < 0.05, st
    # the log's websocket open lines: deflate=on for the two that negotiated,
    # deflate=off for the other (docs/protocol.md#compression)
    lines = [ln for ln in srv.log().splitlines() if "websocket open" in ln]
    assert len(lines) == 3, lines
    said = sorted(re.search(r'deflate[=":\s]+(on|off)\b', ln).group(1) for ln in lines)
    assert said == ["off", "on", "on"], lines
    d1.close()
    wait_for(lambda: get_json(srv.port, "/stats")["deflate_clients"] == 1, 5, "deflate_clients 1")


def test_counters_equal_without_deflate_clients(kbridge):
    srv = kbridge()
    st = get_json(srv.port, "/stats")
    assert st["compression_ratio"] == 1 and st["deflate_clients"] == 0, st
    c = pmd(srv, offers=[])
    for i in range(5):
        c.ping_ok("x" * 3000 + str(i))
    off = kbridge("--deflate", "off")
    d = pmd(off)
    for i in range(5):
        d.ping_ok("x" * 3000 + str(i))
    for s, conn in ((srv, c), (off, d)):
        sent, unc = byte_counters(s.port)
        assert unc == sent > 5 * 3000, (sent, unc)
        st = get_json(s.port, "/stats")
        assert st["bytes_uncompressed"] == st["bytes_out"] > 5 * 3000, st
        assert st["compression_ratio"] == 1 and st["deflate_clients"] == 0, st
        assert stats_client(st, conn.sock)["deflate"] is False
