"""RFC 6455 framing rules (docs/protocol.md#websocket-rules, #close-codes,
#pings):
protocol errors close 1002, bad UTF-8 1007, oversized messages 1009, the
close handshake, and server keep-alive pings. Every test runs twice: over
plain TCP and over TLS (docs/operations.md#tls: the same frames inside TLS records; the
tls runs skip while the binary has no --tls-cert)."""
import struct
import time

import pytest

import conftest
from tlsutil import require_tls
from wsutil import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Closed, build_frame,
                    close_payload)

PING = b'{"type":"ping","id":"ok"}'


@pytest.fixture(params=["plain", "tls"])
def kbridge(request, kbridge):
    """conftest's kbridge, started a second time with --tls-cert/--tls-key
    (the test PKI's server pair) for the tls runs; `server` and `small`
    below come from it too."""
    if request.param == "plain":
        return kbridge
    require_tls(conftest.bin_path())
    pki = request.getfixturevalue("pki")

    def start(*args, **kw):
        return kbridge("--tls-cert", pki.server.cert, "--tls-key", pki.server.key, *args,
                       ssl=pki.context(), **kw)
    return start


# ---------------------------------------------------------------- 1002

def test_unmasked_frame_1002(server):
    c = server.ws()
    c.send_frame(OP_TEXT, PING, mask=False)
    c.expect_close(1002)


def test_unmasked_control_frame_1002(server):
    c = server.ws()
    c.send_frame(OP_PING, b"x", mask=False)
    c.expect_close(1002)


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits_1002(server, rsv):
    c = server.ws(offer=False)      # RSV1 (4) is allowed once permessage-deflate is negotiated
    c.send_frame(OP_TEXT, PING, rsv=rsv)
    c.expect_close(1002)


def test_reserved_bits_on_control_frame_1002(server):
    c = server.ws()
    c.send_frame(OP_PING, b"x", rsv=4)
    c.expect_close(1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcode_1002(server, opcode):
    c = server.ws()
    c.send_frame(opcode, b"abc")
    c.expect_close(1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_1002(server, opcode):
    c = server.ws()
    payload = close_payload(1000, "r" * 124) if opcode == OP_CLOSE else b"p" * 126
    assert len(payload) == 126
    c.send_frame(opcode, payload)
    c.expect_close(1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_1002(server, opcode):
    c = server.ws()
    c.send_frame(opcode, close_payload(1000) if opcode == OP_CLOSE else b"x", fin=False)
    c.expect_close(1002)


@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_start_1002(server, fin):
    c = server.ws()
    c.send_frame(0, b"abc", fin=fin)
    c.expect_close(1002)


def test_continuation_after_complete_message_1002(server):
    c = server.ws()
    c.send_frame(OP_TEXT, PING)
    assert c.recv_json()["type"] == "pong"
    c.send_frame(0, PING)
    c.expect_close(1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_data_frame_during_fragmented_message_1002(server, second):
    c = server.ws()
    c.send_frame(OP_TEXT, PING[:5], fin=False)
    c.send_frame(second, PING, fin=True)
    c.expect_close(1002)


def test_64bit_length_with_high_bit_fails(server):
    c = server.ws()
    c.send(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", (1 << 63) | 5) + b"\x00\x00\x00\x00abcde")
    c.expect_close({1002, 1009})


# ---------------------------------------------------------------- 1007

BAD_UTF8 = {
    "lone-ff": b"\xff",
    "overlong-slash": b"\xc0\xaf",
    "overlong-3byte": b"\xe0\x80\xaf",
    "surrogate": b"\xed\xa0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "lone-continuation": b"\x80",
    "truncated-end": b"\xe2\x82",
    "f5-lead": b"\xf5\x80\x80\x80",
}


@pytest.mark.parametrize("bad", list(BAD_UTF8.values()), ids=list(BAD_UTF8))
def test_invalid_utf8_text_1007(server, bad):
    c = server.ws()
    c.send_frame(OP_TEXT, b'{"type":"ping","id":"' + bad + b'"}' if bad != b"\xe2\x82" else b"abc" + bad)
    c.expect_close(1007)


def test_invalid_utf8_split_across_fragments_1007(server):
    c = server.ws()
    # 0xF0 0x9F starts a 4-byte sequence; the next fragment breaks it
    c.send_frame(OP_TEXT, b'{"type":"ping","id":"\xf0\x9f', fin=False)
    c.send_frame(0, b'A"}', fin=True)
    c.expect_close(1007)


def test_incomplete_utf8_at_message_end_1007(server):
    c = server.ws()
    c.send_frame(OP_TEXT, b'"abc\xe2\x82', fin=False)
    c.send_frame(0, b"", fin=True)
    c.expect_close(1007)


def test_invalid_utf8_in_first_fragment_1007(server):
    """Fail fast: the bad byte is in the first fragment; the message never ends."""
    c = server.ws()
    c.send_frame(OP_TEXT, b'{"type":"ping","id":"\xff', fin=False)
    c.expect_close(1007)


def test_valid_multibyte_split_at_every_boundary(server):
    c = server.ws()
    ident = "€😀ü中"
    msg = ('{"type":"ping","id":"' + ident + '"}').encode("utf-8")
    for i in range(1, len(msg)):
        c.send_frame(OP_TEXT, msg[:i], fin=False)
        c.send_frame(0, msg[i:], fin=True)
        assert c.recv_json() == {"type": "pong", "id": ident}, i
    # one byte per fragment
    c.send_frame(OP_TEXT, msg[:1], fin=False)
    for i in range(1, len(msg) - 1):
        c.send_frame(0, msg[i:i + 1], fin=False)
    c.send_frame(0, msg[-1:], fin=True)
    assert c.recv_json() == {"type": "pong", "id": ident}


def test_binary_not_utf8_checked(server):
    c = server.ws()
    c.send_frame(OP_BINARY, b"\xff\xfe\xc0")
    assert c.recv_json()["code"] == "BAD_REQUEST"
    c.ping_ok()


# ---------------------------------------------------------------- close handshake

@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1013, 1014, 3000, 3999, 4000, 4999])
def test_valid_close_code_echoed(server, code):
    c = server.ws()
    c.send_close(code, "bye")
    got, _ = c.expect_close(code, reply=False)
    assert got == code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_code_1002(server, code):
    c = server.ws()
    c.send_close(code)
    c.expect_close(1002, reply=False)


def test_close_empty_payload(server):
    c = server.ws()
    c.send_close()
    got, _ = c.expect_close({1000}, reply=False, allow_empty=True)
    assert got in (None, 1000)


def test_close_one_byte_payload_1002(server):
    c = server.ws()
    c.send_close(payload=b"\x03")
    c.expect_close(1002, reply=False)


def test_close_invalid_utf8_reason_1007(server):
    c = server.ws()
    c.send_close(payload=struct.pack("!H", 1000) + b"bad \xff reason")
    c.expect_close(1007, reply=False)


def test_close_valid_utf8_reason(server):
    c = server.ws()
    c.send_close(1000, "über ✓")
    c.expect_close(1000, reply=False)


def test_server_closes_tcp_after_close_handshake(server):
    c = server.ws()
    c.send_close(1000)
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code()[0] == 1000
    t0 = time.monotonic()
    c.wait_closed(3)      # we keep our side open: the server closes first
    assert time.monotonic() - t0 < 3


def test_nothing_processed_after_close(server):
    """Data after a close frame is ignored (RFC 6455 §5.5.1)."""
    c = server.ws()
    c.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, PING))
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE, f"expected only a close frame, got {f!r}"
    c.wait_closed(3)


def test_close_during_fragmented_message(server):
    c = server.ws()
    c.send_frame(OP_TEXT, PING[:4], fin=False)
    c.send_close(1000)
    c.expect_close(1000, reply=False)


# ---------------------------------------------------------------- 1009

@pytest.fixture
def small(kbridge):
    return kbridge("--max-message", "1024")


def big_ping(n):
    head = b'{"type":"ping","id":"'
    return head + b"a" * (n - len(head) - 2) + b'"}'


def test_max_message_single_frame_1009(small):
    c = small.ws()
    c.send_text(big_ping(1025))
    c.expect_close(1009)


def test_max_message_binary_1009(small):
    c = small.ws()
    c.send_frame(OP_BINARY, b"\x00" * 2000)
    c.expect_close(1009)


def test_max_message_sum_of_fragments_1009(small):
    c = small.ws()
    msg = big_ping(1500)
    c.send_frame(OP_TEXT, msg[:500], fin=False)
    c.send_frame(0, msg[500:1000], fin=False)
    try:
        c.send_frame(0, msg[1000:], fin=True)
    except OSError:
        pass
    c.expect_close(1009)


def test_max_message_announced_length_fails_early(small):
    """A header announcing 10 MB is over the limit before any payload."""
    c = small.ws()
    c.send(build_frame(OP_TEXT, b"", length=10 << 20) + b"abc")
    c.expect_close(1009, timeout=3)


def test_max_message_not_applied_to_interleaved_control(small):
    c = small.ws()
    msg = big_ping(1000)
    c.send_frame(OP_TEXT, msg[:500], fin=False)
    c.send_frame(OP_PING, b"p" * 125)
    c.send_frame(0, msg[500:], fin=True)
    f = c.recv_frame()
    assert f.opcode == OP_PONG
    assert c.recv_json()["type"] == "pong"


# ---------------------------------------------------------------- server pings

def test_server_sends_pings(kbridge):
    srv = kbridge("--ping-interval", "1")
    c = srv.ws()
    t0 = time.monotonic()
    f = c.recv_frame(timeout=3)
    assert f.opcode == OP_PING, f
    assert time.monotonic() - t0 < 2.6
    c.send_frame(OP_PONG, f.payload)
    f2 = c.recv_frame(timeout=3)
    assert f2.opcode == OP_PING, f2
    c.send_frame(OP_PONG, f2.payload)


def test_silent_client_dropped_without_close(kbridge):
    srv = kbridge("--ping-interval", "1")
    c = srv.ws()
    t0 = time.monotonic()
    frames = []
    end = None
    while time.monotonic() - t0 < 6:
        try:
            frames.append(c.recv_frame(timeout=6))
        except Closed:
            end = time.monotonic() - t0
            break
    assert end is not None, "silent client still connected after 6 s (--ping-interval 1)"
    assert 1.5 <= end <= 4.0, f"dropped after {end:.2f}s; expected about 2x --ping-interval 1"
    assert all(f.opcode == OP_PING for f in frames), f"expected only pings, no close frame: {frames}"
    assert srv.health()["clients"] == 0


def test_client_answering_pings_stays(kbridge):
    srv = kbridge("--ping-interval", "1")
    c = srv.ws()
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 4.5:
        try:
            f = c.recv_frame(timeout=0.5)
        except TimeoutError:
            continue
        assert f.opcode == OP_PING, f
        pings += 1
        c.send_frame(OP_PONG, f.payload)
    assert pings >= 3
    c.ping_ok()


def test_client_sending_data_not_answering_pings_stays(kbridge):
    """Any frame counts as a sign of life (docs/protocol.md#pings: dropped
    only when no frame at all arrived)."""
    srv = kbridge("--ping-interval", "1")
    c = srv.ws()
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 4.5:
        c.send_json({"type": "ping", "id": n})
        while True:
            op, payload = c.recv_message(timeout=2, auto_pong=False)
            if b'"pong"' in payload:
                break
        n += 1
        time.sleep(0.4)
    c.ping_ok()


def test_websockets_library_client_survives_pings(kbridge):
    import asyncio
    import json
    import websockets
    srv = kbridge("--ping-interval", "1")

    async def run():
        tls = {"ssl": srv.ssl} if srv.ssl else {}
        async with websockets.connect(srv.url("/ws"), ping_interval=None,
                                      open_timeout=5, close_timeout=5, **tls) as ws:
            await asyncio.sleep(4.5)     # the library answers server pings by itself
            await ws.send(json.dumps({"type": "ping", "id": "still"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply == {"type": "pong", "id": "still"}
    asyncio.run(asyncio.wait_for(run(), 15))
