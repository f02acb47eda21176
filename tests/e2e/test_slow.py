"""Slow-client policy (--slow-client, docs/protocol.md#slow_consumer).

Without Kafka, server->client traffic comes from replies: the client
pipelines thousands of {"type":"ping","id":N} without reading, with a small
receive buffer, so kbridge's queue for it fills up."""
import select
import socket
import struct
import time

import pytest

from wsutil import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, build_frame

def flood_volume():
    """Bytes of pings whose replies overflow what the kernel can hold for
    a connection (the server's send buffer autotunes up to tcp_wmem's max,
    several MiB on loopback), so kbridge itself must hold or drop output."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    return min(2 * wmem_max + (4 << 20), 64 << 20)


ZERO_MASK = b"\x00\x00\x00\x00"   # a valid mask key; keeps building frames cheap


def ping_frames(first, count):
    out = []
    for i in range(first, first + count):
        p = b'{"type":"ping","id":%d}' % i
        out.append(bytes((0x81, 0x80 | len(p))) + ZERO_MASK + p)
    return b"".join(out)


def flood(c, volume=None, until_gone=False, timeout=20.0):
    """Pipelines JSON pings (ids 0, 1, ...) without reading replies, until
    `volume` bytes were sent, the socket took nothing for 2 s, the peer went
    away (until_gone) or `timeout`. Returns (bytes sent, pings sent, gone)."""
    volume = volume or flood_volume()
    sock = c.sock
    sock.setblocking(False)
    sent = pings = 0
    pending = b""
    gone = False
    last_progress = deadline = time.monotonic()
    deadline += timeout
    poller = select.poll()
    poller.register(sock, select.POLLOUT | select.POLLRDHUP | select.POLLERR | select.POLLHUP)
    try:
        while sent < volume and time.monotonic() < deadline:
            if not pending:
                pending = ping_frames(pings, 2000)
                pings += 2000
            ev = poller.poll(100)
            bad = any(e & (select.POLLRDHUP | select.POLLERR | select.POLLHUP) for _, e in ev)
            if bad:
                gone = True
                if until_gone:
                    break
            if ev and any(e & select.POLLOUT for _, e in ev):
                try:
                    k = sock.send(pending)
                except BlockingIOError:
                    k = 0
                except OSError:
                    gone = True
                    break
                pending = pending[k:]
                sent += k
                if k:
                    last_progress = time.monotonic()
            if time.monotonic() - last_progress > 2.0:
                break
    finally:
        sock.setblocking(True)
    return sent, pings, gone


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


def wait_clients(srv, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.health()["clients"] == n:
            return True
        time.sleep(0.1)
    return srv.health()["clients"] == n


def test_slow_client_disconnect(kbridge):
    srv = kbridge("--slow-client", "disconnect", *FLAGS)
    other = srv.ws()
    slow = srv.ws(rcvbuf=4096)
    sent, _, _ = flood(slow, until_gone=True)
    # kbridge lets the client go: it no longer counts it. (The kernel may
    # still hold the bytes queued before the close frame for this socket.)
    assert wait_clients(srv, 1, 10), \
        f"slow client (not reading) still a client after {sent} bytes of pings whose replies " \
        "cannot fit in the kernel's buffers (--slow-client disconnect --client-buffer 4096)"
    # reading now drains what the kernel held: replies, then the close
    # frame 1008 "slow consumer" (unless kbridge had to reset), then EOF.
    data, ended = read_all(slow.sock, 15)
    assert ended, "connection not closed"
    frames, rest = parse_frames(slow.buf + data)
    closes = [p for op, p in frames if op == OP_CLOSE]
    if closes:
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
    sent, pings, gone = flood(slow)
    assert not gone and not wait_peer_gone(slow.sock, 1.0), "drop-oldest client was disconnected"
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
    print(f"drop-oldest: {len(ids)} of {pings} pongs delivered")
    slow.ping_ok()
    other.ping_ok()


@pytest.mark.parametrize("policy", ["drop-oldest", "disconnect"])
@pytest.mark.parametrize("limit", ["queue", "bytes"])
def test_fast_client_pipelining_is_not_slow(kbridge, policy, limit):
    """A client that reads promptly is not a slow consumer: bytes the kernel
    can take do not count toward --client-buffer / --client-queue
    (docs/protocol.md#slow_consumer), so a burst of pipelined requests is
    answered in full, even when the burst's replies exceed the limits within
    one loop turn."""
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
