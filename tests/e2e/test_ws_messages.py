"""WebSocket handshake and the JSON control messages that need no Kafka
(docs/protocol.md#client-messages, #errors), with raw frames and with real
clients."""
import asyncio
import json
import os
import shutil
import subprocess

import pytest

from wsutil import (WS, OP_BINARY, OP_PING, OP_PONG, OP_TEXT, RFC_ACCEPT, RFC_KEY,
                    accept_key, build_frame, build_request, check_101, upgrade_headers)

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- handshake

def test_accept_key_rfc_example(server):
    assert accept_key(RFC_KEY) == RFC_ACCEPT        # the helper itself
    c = server.ws(key=RFC_KEY)
    assert c.handshake.header("Sec-WebSocket-Accept") == RFC_ACCEPT
    c.ping_ok()


def test_accept_key_random_keys(server):
    for _ in range(20):
        c = server.ws()          # WS.connect checks the accept key
        c.close()


def test_no_subprotocol_or_unknown_extension_negotiated(server):
    c = server.conn()
    key = "AAECAwQFBgcICQoLDA0ODw=="
    c.send(build_request("GET", "/ws", upgrade_headers(key=key, extra=[
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Extensions", "x-kbridge-test; foo=1")])))
    r = c.read_response(head=True)
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == accept_key(key)
    assert r.header("Sec-WebSocket-Protocol") is None, r
    assert "x-kbridge-test" not in (r.header("Sec-WebSocket-Extensions") or ""), r


def test_frame_in_same_segment_as_handshake(server):
    """Bytes that follow the request in the same write are the first frame."""
    early = build_frame(OP_TEXT, b'{"type":"ping","id":"early"}')
    c = server.ws(early=early)
    assert c.recv_json() == {"type": "pong", "id": "early"}


# ---------------------------------------------------------------- ping / pong

def test_json_ping_pong_no_id(server):
    c = server.ws()
    reply = c.request('{"type":"ping"}')
    assert reply == {"type": "pong"}


@pytest.mark.parametrize("ident", ["abc", "", "ünï €", 0, 42, -7, 12345678901, 1.5, True,
                                   {"a": [1, 2]}, [1, "x"]])
def test_json_ping_id_echoed(server, ident):
    c = server.ws()
    reply = c.request({"type": "ping", "id": ident})
    assert reply.get("type") == "pong", reply
    assert "id" in reply and reply["id"] == ident and type(reply["id"]) is type(ident), reply


def test_action_dialect_ping(server):
    c = server.ws()
    reply = c.request({"action": "ping", "id": "p1"})
    assert reply.get("type") == "pong" and reply.get("id") == "p1", reply


def test_many_frames_in_one_write(server):
    c = server.ws()
    c.send(b"".join(build_frame(OP_TEXT, json.dumps({"type": "ping", "id": i})) for i in range(50)))
    for i in range(50):
        assert c.recv_json() == {"type": "pong", "id": i}


def test_frame_byte_by_byte(server):
    c = server.ws()
    frame = build_frame(OP_TEXT, b'{"type":"ping","id":"slow"}')
    import time
    for b in frame:
        c.send(bytes([b]))
        time.sleep(0.003)
    assert c.recv_json() == {"type": "pong", "id": "slow"}


def test_extended_length_frames(server):
    """126 (16-bit) and 127 (64-bit) length encodings are accepted."""
    c = server.ws()
    body = json.dumps({"type": "ping", "id": "x" * 300})
    c.send_text(body)
    assert c.recv_json()["id"] == "x" * 300
    # 64-bit length form for a small payload (non-minimal but legal for us to accept)
    msg = json.dumps({"type": "ping", "id": "long"}).encode()
    import struct
    key = b"\x01\x02\x03\x04"
    frame = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(msg)) + key + \
        bytes(b ^ key[i & 3] for i, b in enumerate(msg))
    c.send(frame)
    reply = c.recv_json()
    assert reply == {"type": "pong", "id": "long"}


# ---------------------------------------------------------------- errors

def assert_error(reply, code, ident=None):
    assert reply.get("type") == "error", reply
    assert reply.get("code") == code, reply
    assert isinstance(reply.get("message"), str) and reply["message"], reply
    if ident is not None:
        assert reply.get("id") == ident, reply


@pytest.mark.parametrize("text", [
    "hello", "{", '{"type":"ping"', "{'type':'ping'}", '{"type":"ping"} x', "",
    '{"type":"ping",}', '{"type":"ping" "id":1}', "[1,2", "nul", '{"type":"pi\x01ng"}',
    '{"type":"ping"}{"type":"ping"}',
], ids=["word", "brace", "unterminated", "single-quotes", "trailing-garbage", "empty",
        "trailing-comma", "missing-comma", "open-array", "bad-literal", "control-char",
        "two-values"])
def test_invalid_json(server, text):
    c = server.ws()
    assert_error(c.request(text), "INVALID_JSON")
    c.ping_ok()


@pytest.mark.parametrize("text", ["[1,2]", '[{"type":"ping"}]', '"ping"', "42", "null", "true"])
def test_json_not_object_bad_request(server, text):
    c = server.ws()
    assert_error(c.request(text), "BAD_REQUEST")
    c.ping_ok()


@pytest.mark.parametrize("msg", [
    {"type": 5}, {"type": ["ping"]}, {"type": None}, {"type": {"a": 1}},
    {"action": 7},
    {"type": "subscribe", "channel": 5},
    {"type": "subscribe", "channels": "a"},
    {"type": "subscribe", "channels": [1, 2]},
    {"type": "subscribe"},
], ids=["type-number", "type-array", "type-null", "type-object", "action-number",
        "channel-number", "channels-string", "channels-numbers", "subscribe-no-channel"])
def test_wrong_field_type_bad_request(server, msg):
    c = server.ws()
    msg = dict(msg, id="r1")
    assert_error(c.request(msg), "BAD_REQUEST", "r1")
    c.ping_ok()


@pytest.mark.parametrize("msg", [{"type": "frobnicate"}, {"type": "PING"}, {"action": "frobnicate"}])
def test_unknown_type(server, msg):
    c = server.ws()
    assert_error(c.request(dict(msg, id=9)), "UNKNOWN_TYPE", 9)
    c.ping_ok()


def test_missing_type_is_an_error(server):
    c = server.ws()
    reply = c.request({"id": 3})
    assert reply.get("type") == "error" and reply.get("code") in ("BAD_REQUEST", "UNKNOWN_TYPE"), reply
    assert reply.get("id") == 3
    c.ping_ok()


def test_binary_frame_on_json_connection(server):
    c = server.ws()
    c.send_frame(OP_BINARY, b'{"type":"ping"}')
    assert_error(c.recv_json(), "BAD_REQUEST")
    c.send_frame(OP_BINARY, bytes(range(256)))
    assert_error(c.recv_json(), "BAD_REQUEST")
    c.ping_ok()


def test_errors_do_not_close(server):
    c = server.ws()
    for text in ["x", "[]", '{"type":"nope"}', "{"] * 5:
        assert c.request(text)["type"] == "error"
    c.ping_ok()


# ---------------------------------------------------------------- control frames

@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125)), b"\xff\xfe\x00"],
                         ids=["empty", "text", "125-bytes", "binary"])
def test_ws_ping_gets_pong_same_payload(server, payload):
    c = server.ws()
    c.send_frame(OP_PING, payload)
    f = c.recv_frame()
    assert f.opcode == OP_PONG and f.fin, f
    assert f.payload == payload
    c.ping_ok()


def test_unsolicited_pong_ignored(server):
    c = server.ws()
    c.send_frame(OP_PONG, b"unsolicited")
    c.ping_ok()


def test_fragmented_text_with_interleaved_ping(server):
    c = server.ws()
    msg = b'{"type":"ping","id":"frag"}'
    c.send_frame(OP_TEXT, msg[:5], fin=False)
    c.send_frame(OP_PING, b"between")
    c.send_frame(0, msg[5:12], fin=False)
    c.send_frame(OP_PING, b"again")
    c.send_frame(0, msg[12:], fin=True)
    f1 = c.recv_frame()
    assert (f1.opcode, f1.payload) == (OP_PONG, b"between"), f1
    f2 = c.recv_frame()
    assert (f2.opcode, f2.payload) == (OP_PONG, b"again"), f2
    assert c.recv_json() == {"type": "pong", "id": "frag"}


def test_fragmented_with_empty_fragments(server):
    c = server.ws()
    c.send_frame(OP_TEXT, b"", fin=False)
    c.send_frame(0, b'{"type":"ping",', fin=False)
    c.send_frame(0, b"", fin=False)
    c.send_frame(0, b'"id":"e"}', fin=True)
    assert c.recv_json() == {"type": "pong", "id": "e"}


def test_fragmented_binary_is_one_message(server):
    c = server.ws()
    c.send_frame(OP_BINARY, b"ab", fin=False)
    c.send_frame(0, b"cd", fin=True)
    assert c.recv_json()["code"] == "BAD_REQUEST"
    c.ping_ok()


def test_max_message_exact_limit_accepted(kbridge):
    srv = kbridge("--max-message", "1024")
    c = srv.ws()
    head = b'{"type":"ping","id":"'
    msg = head + b"a" * (1024 - len(head) - 2) + b'"}'
    assert len(msg) == 1024
    c.send_text(msg)
    assert c.recv_json()["type"] == "pong"
    # the same size in three fragments
    c.send_frame(OP_TEXT, msg[:300], fin=False)
    c.send_frame(0, msg[300:700], fin=False)
    c.send_frame(0, msg[700:], fin=True)
    assert c.recv_json()["type"] == "pong"


# ---------------------------------------------------------------- real clients

def test_python_websockets_client(server):
    import websockets

    async def run():
        uri = f"ws://127.0.0.1:{server.port}/ws"
        async with websockets.connect(uri, ping_interval=None, open_timeout=5, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "ping", "id": "lib"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply == {"type": "pong", "id": "lib"}
            await ws.send("not json")
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["code"] == "INVALID_JSON"
            waiter = await ws.ping(b"lib-ping")
            await asyncio.wait_for(waiter, 5)
            # a large fragmented message through the library
            await ws.send(iter([b'{"type":"ping",'.decode(), ' "id":', ' "frag"}']))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply == {"type": "pong", "id": "frag"}
            await ws.close(code=1000, reason="bye")
            assert ws.close_code == 1000
    asyncio.run(asyncio.wait_for(run(), 20))


NODE_SCRIPT = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[process.argv.length - 1]);
const out = [];
const timer = setTimeout(() => { console.log('TIMEOUT ' + JSON.stringify(out)); process.exit(3); }, 10000);
ws.on('open', () => {
  ws.ping(Buffer.from('node-ping'));
  ws.send(JSON.stringify({type: 'ping', id: 'node'}));
});
ws.on('pong', (data) => { out.push('pong:' + data.toString()); });
ws.on('message', (data, isBinary) => {
  const m = JSON.parse(data.toString());
  out.push(m.type + ':' + m.id);
  if (m.type === 'pong') ws.close(4000, 'done');
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  out.push('close:' + code + ':' + reason.toString());
  console.log(JSON.stringify(out));
  process.exit(0);
});
ws.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(2); });
"""


def node_ws_available():
    if not shutil.which("node") or not shutil.which("npm"):
        return False
    if os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        return True
    try:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return os.path.isdir(os.path.join(HERE, "node_modules", "ws"))


def test_node_ws_client(server):
    if not node_ws_available():
        pytest.skip("node or the npm package ws is not available")
    p = subprocess.run(["node", "-e", NODE_SCRIPT, f"ws://127.0.0.1:{server.port}/ws/node"], cwd=HERE,
                       capture_output=True, timeout=20, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.stdout, p.stderr)
    events = json.loads(p.stdout.strip().splitlines()[-1])
    assert "pong:node-ping" in events
    assert "pong:node" in events
    assert events[-1].startswith("close:4000:"), events     # the code is echoed (the reason need not be)


def rate_limit_burst(kbridge):
    srv = kbridge("--client-rate", "5")
    c = srv.ws()
    c.send(b"".join(build_frame(OP_TEXT, json.dumps({"type": "ping", "id": i})) for i in range(30)))
    return c, [c.recv_json() for _ in range(30)]


def test_client_rate_limit(kbridge):
    """docs/protocol.md#rate-limit: over --client-rate (burst 2x) a message
    gets RATE_LIMITED and is ignored; the connection stays open and
    recovers."""
    import time
    c, replies = rate_limit_burst(kbridge)
    pongs = [r for r in replies if r.get("type") == "pong"]
    limited = [r for r in replies if r.get("type") == "error"]
    assert len(pongs) + len(limited) == 30, replies
    assert all(r.get("code") == "RATE_LIMITED" for r in limited), limited
    assert 10 <= len(pongs) <= 11, f"{len(pongs)} pongs for a burst of 30 with --client-rate 5 (burst 10)"
    assert replies[:10] == [{"type": "pong", "id": i} for i in range(10)]
    time.sleep(1.2)
    c.ping_ok()


def test_rate_limited_reply_carries_id(kbridge):
    """Every reply carries the request's id when the request had one
    (docs/protocol.md#request-ids)."""
    c, replies = rate_limit_burst(kbridge)
    missing = [(i, r) for i, r in enumerate(replies) if r.get("id") != i]
    assert not missing, f"replies without their request's id: {missing[:3]}"


def test_rate_limit_flood_closes_after_ten_seconds(kbridge):
    """docs/protocol.md#rate-limit: ten seconds of RATE_LIMITED in a row
    closes with 1008. A steady flood at three times --client-rate lets a
    message through whenever a token refills; it is still one run of
    RATE_LIMITED and ends in 1008."""
    import threading
    import time
    from wsutil import CloseFrame
    srv = kbridge("--client-rate", "5")
    c = srv.ws()
    t0 = time.monotonic()
    stop = threading.Event()

    sent = []

    def flood():
        # on a fixed schedule, catching up after a stall: a run of
        # RATE_LIMITED ends only where this thread was held up for a
        # second or more, and `sent` shows where that was
        i = 0
        while not stop.is_set() and time.monotonic() - t0 < 20:
            try:
                c.send_json({"type": "ping", "id": i})
            except OSError:
                return
            sent.append(time.monotonic())
            i += 1
            time.sleep(max(0.0, t0 + i / 15 - time.monotonic()))
    th = threading.Thread(target=flood, daemon=True)
    th.start()
    codes = {}
    try:
        while True:
            m = c.recv_json(timeout=max(0.1, 25 - (time.monotonic() - t0)))
            codes[m.get("code", m.get("type"))] = codes.get(m.get("code", m.get("type")), 0) + 1
    except CloseFrame as e:
        closed = (e.code, e.reason, time.monotonic() - t0)
    finally:
        stop.set()
        th.join(5)
    assert closed[0] == 1008 and "rate" in closed[1], closed
    # The run that was closed began at the start or after a stall of about
    # a second or more (the server's quiet time is 1 s; which side of it a
    # stall of 0.9-1.1 s fell is not known here).
    gaps = [(b - a, b - t0) for a, b in zip(sent, sent[1:])]
    surely = max([0.0] + [at for gap, at in gaps if gap >= 1.1])
    starts = [st for st in [0.0] + [at for gap, at in gaps if gap >= 0.9] if st >= surely]
    assert any(9.5 <= closed[2] - st <= 14 for st in starts), \
        f"closed after {closed[2]:.1f}s, runs could have begun at {starts} ({codes})"
    assert codes.get("RATE_LIMITED", 0) > 50 and codes.get("pong", 0) > 10, codes


def test_id_echoed_when_message_exceeds_parser_limits(server):
    """Every reply carries the request's id when the request had one
    (docs/protocol.md#request-ids), also the BAD_REQUEST for a message too
    big or too deep to handle."""
    c = server.ws()
    big = {"type": "subscribe", "channel": "x", "keys": ["k%d" % i for i in range(2000)], "id": "many"}
    r = c.request(big)
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST" and r.get("id") == "many", r
    deep = '{"id":{"n":7},"type":"ping","x":' + "[" * 40 + "]" * 40 + "}"
    r = c.request(deep)
    assert r.get("code") == "BAD_REQUEST" and r.get("id") == {"n": 7}, r
    c.ping_ok()
