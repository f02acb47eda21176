"""Slow-client policy (DESIGN §2 --slow-client, §10 "Connections").

Without Kafka, server->client traffic comes from replies: the client
pipelines thousands of {"type":"ping","id":N} without reading, with a small
receive buffer, so kbridge's queue for it fills up."""
import select
import socket
import struct
import time

import pytest

from wsutil import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, build_frame

N_PINGS = 20000


def flood(c, n=N_PINGS):
    """Sends n pings without reading; stops early when the socket takes
    nothing for 1 s or the peer is gone. Returns the number of bytes sent."""
    data = b"".join(build_frame(OP_TEXT, b'{"type":"ping","id":%d}' % i) for i in range(n))
    sent = 0
    c.sock.settimeout(1.0)
    try:
        while sent < len(data):
            sent += c.sock.send(data[sent:sent + 65536])
    except socket.timeout:
        pass
    except OSError:       # reset / broken pipe: the server dropped us
        pass
    return sent


def wait_peer_gone(sock, timeout):
    """Waits, without reading, until the peer closed or reset the socket."""
    p = select.poll()
    p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = p.poll(100)
        if ev:
            return True
    return False


def parse_frames(buf):
    """Complete server frames in buf -> list of (opcode, payload)."""
    out, i = [], 0
    while len(buf) - i >= 2:
        b0, b1 = buf[i], buf[i + 1]
        assert not b1 & 0x80, "masked server frame"
        n, j = b1 & 0x7F, i + 2
        if n == 126:
            if len(buf) - j < 2:
                break
            n, j = struct.unpack("!H", buf[j:j + 2])[0], j + 2
        elif n == 127:
            if len(buf) - j < 8:
                break
            n, j = struct.unpack("!Q", buf[j:j + 8])[0], j + 8
        if len(buf) - j < n:
            break
        assert b0 & 0x80 and not b0 & 0x70, f"unexpected frame flags {b0:#x}"
        out.append((b0 & 0xF, buf[j:j + n]))
        i = j + n
    return out, buf[i:]


def read_all(sock, timeout):
    """Reads until EOF/reset or timeout. Returns (bytes, ended)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            break
        except ConnectionResetError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


FLAGS = ["--client-buffer", "4096", "--client-queue", "4", "--client-rate", "1000000"]


def test_slow_client_disconnect(kbridge):
    srv = kbridge("--slow-client", "disconnect", *FLAGS)
    other = srv.ws()
    slow = srv.ws(rcvbuf=4096)
    flood(slow)
    assert wait_peer_gone(slow.sock, 8), \
        "slow client (not reading) still connected 8 s after its queue overflowed (--slow-client disconnect)"
    data, ended = read_all(slow.sock, 10)
    assert ended, "connection not closed"
    frames, rest = parse_frames(slow.buf + data)
    closes = [p for op, p in frames if op == OP_CLOSE]
    if closes:      # the close frame may be lost when kbridge has to reset
        payload = closes[0]
        assert struct.unpack("!H", payload[:2])[0] == 1008, payload
        assert payload[2:] == b"slow consumer", payload
        assert frames[-1][0] == OP_CLOSE, "frames after the close frame"
    for op, p in frames:
        assert op in (OP_TEXT, OP_CLOSE, OP_PING), (op, p[:80])
    # the server keeps serving others
    other.ping_ok()
    assert srv.health()["clients"] == 1
    fresh = srv.ws()
    fresh.ping_ok()


def test_slow_client_drop_oldest_stays(kbridge):
    srv = kbridge("--slow-client", "drop-oldest", *FLAGS)
    other = srv.ws()
    slow = srv.ws(rcvbuf=4096)
    sent = flood(slow)
    assert not wait_peer_gone(slow.sock, 1.0), "drop-oldest client was disconnected"
    # other clients are served meanwhile
    other.ping_ok()
    assert srv.health()["clients"] == 2
    # now read everything while sending one last ping; it must be answered
    final = build_frame(OP_TEXT, b'{"type":"ping","id":"final"}')
    sock = slow.sock
    sock.setblocking(False)
    buf, got_final, ids = slow.buf, False, []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not got_final:
        r, w, _ = select.select([sock], [sock] if final else [], [], 0.2)
        if r:
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                chunk = None
            assert chunk != b"", "drop-oldest client closed by the server"
            if chunk:
                buf += chunk
        if w and final:
            try:
                k = sock.send(final)
                final = final[k:]
            except BlockingIOError:
                pass
        frames, buf = parse_frames(buf)
        for op, p in frames:
            assert op != OP_CLOSE, f"close frame {p!r} on a drop-oldest client"
            if op == OP_PING:
                continue
            assert op == OP_TEXT, (op, p[:80])
            import json
            m = json.loads(p)
            if m.get("type") == "error":
                assert m.get("code") == "SLOW_CONSUMER", m
                continue
            assert m.get("type") == "pong", m
            if m.get("id") == "final":
                got_final = True
            else:
                ids.append(m["id"])
    sock.setblocking(True)
    assert got_final, f"no pong for the final ping within 15 s ({len(ids)} pongs read, {sent} bytes sent)"
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "pongs out of order or duplicated"
    slow.ping_ok()
    other.ping_ok()


@pytest.mark.parametrize("policy", ["drop-oldest", "disconnect"])
@pytest.mark.parametrize("limit", ["queue", "bytes"])
def test_fast_client_pipelining_is_not_slow(kbridge, policy, limit):
    """A client that reads promptly is not a slow consumer: bytes the kernel
    can take do not count toward --client-buffer / --client-queue (§10), so
    a burst of pipelined requests is answered in full, even when the burst's
    replies exceed the limits within one loop turn."""
    if limit == "queue":        # 64 replies > 4 messages
        flags, n = ["--client-queue", "4", "--client-buffer", "1MiB"], 64
    else:                       # 400 replies of ~28 bytes > 4 KiB
        flags, n = ["--client-queue", "100000", "--client-buffer", "4096"], 400
    srv = kbridge("--slow-client", policy, "--client-rate", "1000000", *flags)
    c = srv.ws()
    c.send(b"".join(build_frame(OP_TEXT, b'{"type":"ping","id":%d}' % i) for i in range(n)))
    for i in range(n):
        m = c.recv_json(timeout=5)
        assert m == {"type": "pong", "id": i}, f"reply {i} of {n}: {m}"
