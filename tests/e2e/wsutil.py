"""wsutil.py - byte-level helpers for kbridge's end-to-end tests.

Raw sockets only (loopback), so tests can send what a library never would:
malformed HTTP, unmasked or reserved-bit frames, bad close codes. Every wait
is bounded by a timeout. Server frames are checked on every read:
RFC 6455 §5.1 says they are never masked, and no extension is negotiated,
so their RSV bits must be 0. Every helper takes an optional `ssl` context:
with one the socket speaks TLS (docs/operations.md#tls) and the same bytes go inside it.
"""
import base64
import hashlib
import json
import os
import socket
import ssl as _ssl
import struct
import time
import zlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="          # RFC 6455 §1.3 example
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

DEFAULT_TIMEOUT = 5.0


def accept_key(key):
    """Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2 step 5.4)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


class Closed(Exception):
    """The peer closed or reset the TCP connection."""


class CloseFrame(Exception):
    """A WebSocket close frame arrived while a data message was expected."""

    def __init__(self, code, reason):
        super().__init__(f"close frame code={code} reason={reason!r}")
        self.code = code
        self.reason = reason


def tcp_connect(port, timeout=DEFAULT_TIMEOUT, rcvbuf=None, host="127.0.0.1", ssl=None):
    """A connected socket; with `ssl` (an SSLContext) wrapped in TLS, the
    handshake done and the certificate verified for `host`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # must be set before connect to bound the window
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl is not None:
            s = ssl.wrap_socket(s, server_hostname=host)
    except BaseException:
        s.close()
        raise
    return s


# ---------------------------------------------------------------- HTTP

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value), order kept
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return self.header(name) is not None

    def tokens(self, name):
        """Comma-separated header tokens, lower-cased (e.g. Connection)."""
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class Conn:
    """A TCP connection with a read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def open(cls, port, timeout=DEFAULT_TIMEOUT, rcvbuf=None, ssl=None):
        return cls(tcp_connect(port, timeout, rcvbuf, ssl=ssl))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data") from None
        except (ConnectionResetError, BrokenPipeError, _ssl.SSLError) as e:
            raise Closed(f"connection reset ({e})") from None
        if not chunk:
            raise Closed("connection closed by peer (EOF)")
        self.buf += chunk

    def read_exact(self, n, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker, timeout=DEFAULT_TIMEOUT, limit=1 << 20):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError(f"no {marker!r} within {limit} bytes")
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_response(self, head=False, timeout=DEFAULT_TIMEOUT):
        """Reads one HTTP response. Body framing: none for HEAD, 1xx, 204
        and 304; else Content-Length, chunked, or until EOF."""
        deadline = time.monotonic() + timeout
        raw = self.read_until(b"\r\n\r\n", timeout=timeout)
        lines = raw[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/"), \
            f"bad status line {status_line!r}"
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, f"bad response header line {line!r}"
            assert name == name.strip() and name, f"bad header name {line!r}"
            headers.append((name, value.strip()))
        resp = Response(version, status, reason, headers, b"", raw)
        if head or status < 200 or status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if te is not None and "chunked" in te.lower():
            body = b""
            while True:
                size_line = self.read_until(b"\r\n", timeout=max(0.01, deadline - time.monotonic()))
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until empty line
                    while self.read_until(b"\r\n", timeout=max(0.01, deadline - time.monotonic())) != b"\r\n":
                        pass
                    break
                body += self.read_exact(size, timeout=max(0.01, deadline - time.monotonic()))
                self.read_exact(2, timeout=max(0.01, deadline - time.monotonic()))
            resp.body = body
        elif cl is not None:
            resp.body = self.read_exact(int(cl), timeout=max(0.01, deadline - time.monotonic()))
        else:
            body = self.buf
            self.buf = b""
            while True:
                try:
                    self._fill(deadline)
                except Closed:
                    break
                body += self.buf
                self.buf = b""
            resp.body = body
        return resp

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """Waits for EOF or reset. Returns "eof" or "reset"; raises
        AssertionError on timeout or if unexpected bytes arrive."""
        assert not self.buf, f"unexpected bytes before close: {self.buf[:200]!r}"
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"connection still open after {timeout}s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, _ssl.SSLError):
                return "reset"
            if not chunk:
                return "eof"
            raise AssertionError(f"unexpected bytes instead of close: {chunk[:200]!r}")

    def is_open(self, wait=0.2):
        """False once the peer closed or reset the connection; waits up to
        `wait` seconds for that. Bytes that arrive are kept in self.buf."""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return True
            except (ConnectionResetError, BrokenPipeError, _ssl.SSLError):
                return False
            if not chunk:
                return False
            self.buf += chunk


def build_request(method, path, headers=None, version="HTTP/1.1", body=b"", host=True):
    lines = [f"{method} {path} {version}"]
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if host and not any(k.lower() == "host" for k, _ in hdrs):
        hdrs.insert(0, ("Host", "127.0.0.1"))
    lines += [f"{k}: {v}" for k, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_request(port, method="GET", path="/health", headers=None, version="HTTP/1.1",
                 body=b"", timeout=DEFAULT_TIMEOUT, ssl=None):
    """One request on a fresh connection; returns the Response."""
    c = Conn.open(port, timeout, ssl=ssl)
    try:
        c.send(build_request(method, path, headers, version, body))
        return c.read_response(head=(method == "HEAD"), timeout=timeout)
    finally:
        c.close()


def get_json(port, path="/health", timeout=DEFAULT_TIMEOUT, ssl=None):
    r = http_request(port, "GET", path, timeout=timeout, ssl=ssl)
    assert r.status == 200, r
    return r.json()


# KBRIDGE_TEST_DEFLATE=1 (the e2e-deflate suite): every upgrade that names
# no extension offers permessage-deflate, and WS inflates what comes back.
OFFER_DEFLATE = os.environ.get("KBRIDGE_TEST_DEFLATE") == "1"
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


def offers_extension(headers):
    return any(k.lower() == "sec-websocket-extensions" for k, _ in headers)


def upgrade_headers(key=None, version="13", origin=None, extra=None, offer=None):
    """offer: False never offers permessage-deflate; None offers it in the
    e2e-deflate suite when extra names no extension."""
    h = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
         ("Sec-WebSocket-Key", key if key is not None else new_key()),
         ("Sec-WebSocket-Version", version)]
    if origin is not None:
        h.append(("Origin", origin))
    h += list(extra or [])
    if OFFER_DEFLATE and offer is None and not offers_extension(h):
        h.append(("Sec-WebSocket-Extensions", DEFLATE_OFFER))
    return h


# ---------------------------------------------------------------- frames

def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                length=None):
    """A client frame. `rsv` is the 3 RSV bits (0-7); `length` overrides the
    announced payload length (the payload given is still appended)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def close_code(self):
        """(code, reason) of a close frame; code None when empty."""
        if len(self.payload) == 0:
            return None, ""
        assert len(self.payload) >= 2, f"server close frame with 1-byte payload {self.payload!r}"
        code = struct.unpack("!H", self.payload[:2])[0]
        return code, self.payload[2:].decode("utf-8")   # reason must be UTF-8

    def __repr__(self):
        return f"<Frame op={self.opcode:#x} fin={self.fin} len={len(self.payload)} {self.payload[:80]!r}>"


class WS(Conn):
    """A raw WebSocket client. `deflate`: the 101 accepted
    permessage-deflate; a message whose first frame has RSV1 then comes
    back inflated with the server's window (`bits`), and .last_compressed /
    .last_wire_len tell how the last message came. With .frames a list,
    every server frame's (opcode, fin, rsv, wire payload length) goes in."""
    deflate = False
    bits = 15
    frames = None
    last_compressed = None
    last_wire_len = None

    @classmethod
    def connect(cls, port, path="/ws", key=None, headers=None, timeout=DEFAULT_TIMEOUT,
                rcvbuf=None, early=b"", ssl=None, offer=None):
        """Opens a connection and completes the handshake, asserting a 101
        with a correct accept key. `early` bytes are sent in the same write
        as the request (frames sent before the 101 arrives)."""
        c = cls(tcp_connect(port, timeout, rcvbuf, ssl=ssl))
        try:
            key = key or new_key()
            hs = upgrade_headers(key=key, extra=headers, offer=offer)
            c.send(build_request("GET", path, hs) + early)
            r = c.read_response(head=True, timeout=timeout)
            assert r.status == 101, f"upgrade failed: {r!r}"
            check_101(r, key, offered=offers_extension(hs))
            c.handshake = r
            answer = pmd_params(r.header("Sec-WebSocket-Extensions"))
            c.deflate = answer is not None
            c.bits = int(answer.get("server_max_window_bits", 15)) if answer else 15
        except BaseException:
            c.close()
            raise
        return c

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_close(self, code=None, reason=b"", payload=None):
        self.send_frame(OP_CLOSE, close_payload(code, reason) if payload is None else payload)

    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        left = lambda: max(0.001, deadline - time.monotonic())
        h = self.read_exact(2, left())
        fin, rsv, op = h[0] >> 7, (h[0] >> 4) & 7, h[0] & 0xF
        masked, n = h[1] >> 7, h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2, left()))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8, left()))[0]
        assert not masked, "server frame is masked (RFC 6455 §5.1 forbids it)"
        assert rsv & 3 == 0, f"server frame has RSV2/RSV3 set: {rsv:#x}"
        if rsv & 4:   # RFC 7692 §6.1: only with permessage-deflate, on a message's first frame
            assert self.deflate, "server frame has RSV1 though deflate was not negotiated"
            assert op in (OP_TEXT, OP_BINARY), f"RSV1 on a server frame of opcode {op:#x}"
        assert n < (64 << 20), f"absurd server frame length {n}"
        f = Frame(bool(fin), rsv, op, self.read_exact(n, left()))
        if self.frames is not None:
            self.frames.append((op, bool(fin), rsv, n))
        return f

    def recv_message(self, timeout=DEFAULT_TIMEOUT, auto_pong=True, on_control=None):
        """Next complete data message as (opcode, payload). Pings are answered
        (auto_pong) and passed to on_control; a close frame raises CloseFrame."""
        deadline = time.monotonic() + timeout
        op, parts, compressed = None, [], False
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode >= 0x8:
                if on_control:
                    on_control(f)
                if f.opcode == OP_PING and auto_pong:
                    self.send_frame(OP_PONG, f.payload)
                elif f.opcode == OP_CLOSE:
                    code, reason = f.close_code()
                    raise CloseFrame(code, reason)
                continue
            if op is None:
                assert f.opcode in (OP_TEXT, OP_BINARY), f"server sent bad first frame {f!r}"
                op, compressed = f.opcode, bool(f.rsv & 4)
            else:
                assert f.opcode == OP_CONT, f"server interleaved data frames {f!r}"
            parts.append(f.payload)
            if f.fin:
                payload = b"".join(parts)
                self.last_compressed, self.last_wire_len = compressed, len(payload)
                return op, pmd_inflate(payload, self.bits) if compressed else payload

    def recv_json(self, timeout=DEFAULT_TIMEOUT, **kw):
        op, payload = self.recv_message(timeout, **kw)
        assert op == OP_TEXT, f"expected a text message, got opcode {op} {payload[:100]!r}"
        return json.loads(payload.decode("utf-8"))

    def request(self, obj, timeout=DEFAULT_TIMEOUT):
        """Sends a JSON message (object or raw text) and returns the reply."""
        if isinstance(obj, (str, bytes)):
            self.send_text(obj)
        else:
            self.send_json(obj)
        return self.recv_json(timeout)

    def ping_ok(self, ident="alive", timeout=DEFAULT_TIMEOUT):
        """Asserts the connection still works: a JSON ping gets its pong."""
        reply = self.request({"type": "ping", "id": ident}, timeout)
        assert reply.get("type") == "pong" and reply.get("id") == ident, reply
        return True

    def expect_close(self, code, timeout=DEFAULT_TIMEOUT, reason=None, reply=True,
                     allow_empty=False):
        """Reads until a close frame and asserts its code (a single code or a
        collection of accepted codes). Data frames before it are ignored.
        Then replies with a close frame (as a client should) and asserts the
        server closes TCP. Returns (code, reason)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except Closed as e:
                raise AssertionError(f"TCP closed without a close frame (expected close {code}): {e}")
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout}s (expected close {code})")
            if f.opcode == OP_CLOSE:
                break
        got, why = f.close_code()
        codes = code if isinstance(code, (set, tuple, list, frozenset)) else {code}
        if not (allow_empty and got is None):
            assert got in codes, f"close code {got} (reason {why!r}), expected {sorted(codes)}"
        if reason is not None:
            assert why == reason, f"close reason {why!r}, expected {reason!r}"
        if reply:
            try:
                self.send_close(got if got is not None and got not in (1005, 1006, 1015) else None)
            except OSError:
                pass
        self.wait_closed(max(3.0, deadline - time.monotonic()))
        self.close()        # as a client does once the server closed TCP
        return got, why

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        # WS variant: frames after the close frame are a protocol violation.
        assert not self.buf, f"bytes after close frame: {self.buf[:100]!r}"
        return Conn.wait_closed(self, timeout)


def check_101(r, key, offered=OFFER_DEFLATE):
    """RFC 6455 §4.2.2 checks of a 101 response; an extension only when
    one was offered (RFC 6455 §9.1)."""
    assert r.status == 101, r
    assert "websocket" in [t for t in r.tokens("Upgrade")], f"Upgrade header: {r!r}"
    assert "upgrade" in r.tokens("Connection"), f"Connection header: {r!r}"
    assert r.header("Sec-WebSocket-Accept") == accept_key(key), \
        f"accept {r.header('Sec-WebSocket-Accept')!r}, expected {accept_key(key)!r}"
    assert r.header("Sec-WebSocket-Protocol") is None, "subprotocol selected though none offered/supported"
    ext = r.header("Sec-WebSocket-Extensions")
    assert ext is None or offered, "extension in 101 though none offered"
    assert ext is None or ext.startswith("permessage-deflate;"), f"unexpected extension {ext!r}"


def recv_until(ws, pred, timeout=5.0, what="message"):
    """Reads JSON messages until pred(obj); returns (obj, everything read)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout}s; got {seen[-5:]!r}")
        try:
            obj = ws.recv_json(left)
        except TimeoutError:
            continue
        seen.append(obj)
        if pred(obj):
            return obj, seen


# ---------------------------------------------------------------- permessage-deflate
#
# Added for tests/e2e/test_deflate.py (RFC 7692, docs/protocol.md#compression).
# The helpers above assume no extension; PmdWS is a raw client that may offer
# permessage-deflate and reads RSV1 frames; FrameRelay sits between any
# client (a library, a browser) and kbridge and records the server's frame
# headers, so a test sees what went over the wire.

import threading as _threading
import zlib as _zlib

PMD_TAIL = b"\x00\x00\xff\xff"      # RFC 7692 §7.2.1: removed by the sender, appended by the reader
PMD_NAME = "permessage-deflate"
PMD_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def pmd_compress(data, bits=15, final=False, level=9):
    """One message compressed as RFC 7692 §7.2.1 says: raw DEFLATE with a
    window of `bits`, sync-flushed, the 00 00 ff ff tail removed. final:
    ended with Z_FINISH instead (a final block, as zlib writes it: RFC 7692 §7.2.1
    allows it)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    co = _zlib.compressobj(level, _zlib.DEFLATED, -bits)
    if final:
        return co.compress(data) + co.flush(_zlib.Z_FINISH)
    out = co.compress(data) + co.flush(_zlib.Z_SYNC_FLUSH)
    assert out.endswith(PMD_TAIL), out[-8:]
    return out[:-4]


def pmd_inflate(payload, bits=15, limit=256 << 20):
    """Inflates one compressed message (RFC 7692 §7.2.2) with a window of
    `bits`: zlib fails ("invalid distance too far back") when the sender
    used a larger window than it said. Below 15 bits it inflates 64 bytes
    a call: zlib checks a distance against its window only for what an
    earlier call wrote, so one big call would let a too-far one pass."""
    d = _zlib.decompressobj(-bits)
    data = payload + PMD_TAIL
    if bits == 15:
        out = d.decompress(data, limit)
        assert not d.unconsumed_tail, f"message inflates past {limit} bytes"
        return out
    out = bytearray()
    while True:
        chunk = d.decompress(data, 64)
        data = d.unconsumed_tail
        if not chunk and not data:
            break
        out += chunk
        assert len(out) <= limit, f"message inflates past {limit} bytes"
    return bytes(out)


def pmd_params(value):
    """A Sec-WebSocket-Extensions answer as {param: value or True}, with
    "" -> the extension name; None when value is None."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(";")]
    out = {"": parts[0]}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        out[k.strip()] = v.strip().strip('"') if eq else True
    return out


class PmdWS(WS):
    """A raw WebSocket client that offers exactly what it is told to (WS
    reads what comes back), keeping every server frame in .frames."""

    @classmethod
    def open_pmd(cls, port, path="/ws", offers=(PMD_NAME,), headers=None, timeout=DEFAULT_TIMEOUT,
                 ssl=None, early=b""):
        """Upgrades offering each string of `offers` as its own
        Sec-WebSocket-Extensions line (none: no offer). Asserts a correct
        101; .pmd is the answer's parameters (pmd_params) or None, .bits the
        window the server compresses with."""
        c = cls(tcp_connect(port, timeout, None, ssl=ssl))
        try:
            key = new_key()
            # not upgrade_headers(): under KBRIDGE_TEST_DEFLATE=1 it adds an
            # offer, and here no offer must mean none
            hs = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                  ("Sec-WebSocket-Version", "13")]
            hs += [("Sec-WebSocket-Extensions", o) for o in offers] + list(headers or [])
            c.send(build_request("GET", path, hs) + early)
            r = c.read_response(head=True, timeout=timeout)
            assert r.status == 101, f"upgrade failed: {r!r}"
            assert r.header("Sec-WebSocket-Accept") == accept_key(key), r
            assert len(r.header_all("Sec-WebSocket-Extensions")) <= 1, r
            c.handshake = r
            c.answer = r.header("Sec-WebSocket-Extensions")
            c.pmd = pmd_params(c.answer)
            if c.pmd is not None:
                assert c.pmd[""] == PMD_NAME, r
            c.deflate = c.pmd is not None
            c.bits = int(c.pmd.get("server_max_window_bits", 15)) if c.pmd else None
            c.frames = []
        except BaseException:
            c.close()
            raise
        return c

    def send_deflated(self, opcode, data, fragments=1, between=None, final=False, bits=15,
                      rsv_more=0):
        """Sends data as one compressed message (RSV1 on its first frame)
        in `fragments` frames; `between` (bytes) is sent after the first
        fragment (e.g. a ping frame). rsv_more adds RSV bits to the first
        frame."""
        body = pmd_compress(data, bits=bits, final=final)
        self.send_compressed(opcode, body, fragments, between, rsv_more)
        return body

    def send_compressed(self, opcode, body, fragments=1, between=None, rsv_more=0):
        """Sends already compressed bytes as one message (RSV1 on the first
        frame) split into `fragments` frames."""
        cut = [len(body) * i // fragments for i in range(fragments + 1)]
        out = b""
        for i in range(fragments):
            out += build_frame(opcode if i == 0 else OP_CONT, body[cut[i]:cut[i + 1]],
                               fin=(i == fragments - 1), rsv=(4 | rsv_more) if i == 0 else 0)
            if i == 0 and between is not None:
                out += between
        self.send(out)


class FrameRelay:
    """A TCP relay on 127.0.0.1 (port .port) to kbridge's `target_port`:
    forwards bytes both ways for every connection it accepts, and parses
    what follows the upgrade into frame headers. .frames lists (opcode,
    fin, rsv, payload length) of every server frame seen, in order, across
    connections, .client_frames the same of the clients' frames; .answers
    the 101s' Sec-WebSocket-Extensions (None: none). A frame is recorded
    before it is passed on. Threads are daemons; close() stops it."""

    def __init__(self, target_port):
        self.target = target_port
        self.frames = []
        self.client_frames = []
        self.answers = []
        self.lock = _threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.stopped = False
        _threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.socks += [client, server]
            _threading.Thread(target=self._pipe, args=(client, server, self._parser(False)),
                              daemon=True).start()
            _threading.Thread(target=self._pipe, args=(server, client, self._parser(True)),
                              daemon=True).start()

    def _parser(self, from_server):
        """A generator fed one direction's bytes: the HTTP head (request or
        response), then frames."""
        out = self.frames if from_server else self.client_frames
        buf = bytearray()
        head_done = False
        while True:
            chunk = yield
            buf += chunk
            if not head_done:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    continue
                head = bytes(buf[:i]).decode("latin-1")
                del buf[:i + 4]
                if from_server and not head.startswith("HTTP/1.1 101"):
                    # not an upgrade: nothing of it is frames
                    while True:
                        yield
                ans = None
                for line in head.split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "sec-websocket-extensions":
                        ans = v.strip()
                if from_server:
                    with self.lock:
                        self.answers.append(ans)
                head_done = True
            while len(buf) >= 2:
                n, hl = buf[1] & 0x7F, 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, hl = struct.unpack_from("!H", buf, 2)[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, hl = struct.unpack_from("!Q", buf, 2)[0], 10
                hl += 4 if buf[1] & 0x80 else 0        # the mask key
                if len(buf) < hl + n:
                    break
                with self.lock:
                    out.append((buf[0] & 0xF, bool(buf[0] & 0x80), (buf[0] >> 4) & 7, n))
                del buf[:hl + n]

    def _pipe(self, src, dst, parser):
        if parser is not None:
            next(parser)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if parser is not None:
                    parser.send(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def data_frames(self):
        with self.lock:
            return [f for f in self.frames if f[0] in (OP_TEXT, OP_BINARY, OP_CONT)]

    def control_frames(self):
        with self.lock:
            return [f for f in self.frames if f[0] >= 0x8]

    def close(self):
        self.stopped = True
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass
