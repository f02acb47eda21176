"""sseutil.py - a byte-level Server-Sent Events client for test_sse.py
(GET /sse, docs: /work/sse-contract.md, later docs/protocol.md#sse).

Raw sockets only, like wsutil.py: the test sees every byte kbridge writes,
so it can check the framing the WHATWG "event stream" syntax asks for and
kbridge's own promises (exactly one `data:` line, an `id:` on each data
message, `retry: 1000` first). Every wait is bounded by a timeout.

- `SSE.open(port, path, headers)` sends the request and reads the answer's
  head; on a 200 it also reads the stream's start (`retry: 1000`, then an
  id-only block) and keeps that token in `.start_id`.
- `SSE.block()` returns the next block (lines up to a blank line) as an
  `Event`; `.data_events(n)` / `.collect(quiet)` gather data messages;
  `.last_id` is the newest `id:` the stream carried (as EventSource's
  lastEventId would be).
- `sse_request()` is one request whose answer is expected to be an error
  (or a HEAD): it returns the wsutil.Response with its body, and never
  waits for a stream to end.
- `curl_stream()` runs `curl -N -s -i` in the background and keeps what it
  printed.
"""
import base64
import json
import re
import socket
import subprocess
import threading
import time

from wsutil import Closed, Conn, build_request

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# Lines a kbridge event stream may contain: a comment, a field kbridge
# writes (with its one space after the colon), or the blank line.
LINE_RE = re.compile(rb"^(|:.*|retry: [0-9]+|id: [A-Za-z0-9_-]*|event: [^\r\n]+|data: [^\r\n]*)$")


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u_enc(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


class Event:
    """One block of the stream: the lines up to (not with) the blank line
    that ends it. .fields: (name, value) in order; .comments: lines that
    start with ':'; .raw: the block's bytes with the blank line."""

    def __init__(self, raw):
        self.raw = raw
        self.lines = raw.decode("utf-8").split("\n")[:-2]
        self.comments = [ln for ln in self.lines if ln.startswith(":")]
        self.fields = []
        for ln in self.lines:
            if ln.startswith(":"):
                continue
            name, _, value = ln.partition(":")
            if value.startswith(" "):
                value = value[1:]
            self.fields.append((name, value))

    def values(self, name):
        return [v for k, v in self.fields if k == name]

    @property
    def id(self):
        v = self.values("id")
        return v[-1] if v else None

    @property
    def event(self):
        v = self.values("event")
        return v[-1] if v else None

    @property
    def data_lines(self):
        return self.values("data")

    def is_data(self):
        return bool(self.data_lines)

    def obj(self):
        """The one data line as JSON (asserts there is exactly one)."""
        d = self.data_lines
        assert len(d) == 1, f"{len(d)} data lines in one event: {self.raw[:300]!r}"
        return json.loads(d[0])

    def pos(self):
        o = self.obj()
        return (o.get("topic"), o.get("partition"), o.get("offset"))

    def __repr__(self):
        return f"<Event {self.raw[:300]!r}>"


class SSE(Conn):
    """A raw SSE client. After open(): .resp (the head), .start_id, then
    blocks; .events keeps every block read, .last_id the newest id."""
    resp = None
    start_id = None
    retry = None
    last_id = None
    limit = 1 << 20

    @classmethod
    def open(cls, port, path, headers=None, timeout=5.0, rcvbuf=None, src=None, method="GET",
             early=b"", expect=200, start=True):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        try:
            if src is not None:
                s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            s.close()
            raise
        c = cls(s)
        c.events = []
        try:
            c.send(build_request(method, path, headers) + early)
            c.resp = c.read_response(head=True, timeout=timeout)
            if expect is not None:
                assert c.resp.status == expect, \
                    f"{method} {path}: expected {expect}, got {c.resp!r} {c.buf[:300]!r}"
            if c.resp.status == 200 and method == "GET" and start:
                c.read_start(timeout)
        except BaseException:
            c.close()
            raise
        return c

    def read_start(self, timeout=5.0):
        """The stream's start: the first line is `retry: 1000`; the blocks
        before any event carry only retry and one id (no data, no event)."""
        deadline = time.monotonic() + timeout
        first = self.read_until(b"\n", timeout=timeout)
        assert first == b"retry: 1000\n", f"stream does not start with 'retry: 1000': {first!r}"
        self.buf = first + self.buf
        while self.start_id is None:
            b = self.block(max(0.01, deadline - time.monotonic()))
            assert not b.is_data() and b.event is None, f"event before the start id: {b!r}"
            assert set(k for k, _ in b.fields) <= {"retry", "id"}, f"start block {b!r}"
            if b.values("retry"):
                self.retry = b.values("retry")[0]
            if b.id is not None:
                self.start_id = b.id
        assert TOKEN_RE.match(self.start_id), f"start id {self.start_id!r} is not base64url"
        return self.start_id

    def block(self, timeout=5.0):
        """The next block (comment-only blocks included), at most .limit
        bytes."""
        raw = self.read_until(b"\n\n", timeout=timeout, limit=self.limit)
        for line in raw.split(b"\n")[:-1]:
            assert LINE_RE.match(line), f"line kbridge should not write: {line[:200]!r} in {raw[:300]!r}"
        e = Event(raw)
        if e.id is not None:
            self.last_id = e.id
        self.events.append(e)
        return e

    def next_event(self, timeout=5.0):
        """The next block that dispatches something (has data)."""
        deadline = time.monotonic() + timeout
        while True:
            e = self.block(max(0.001, deadline - time.monotonic()))
            if e.is_data():
                return e

    def data_events(self, n, timeout=10.0, errors=None):
        """n data messages (events other than error/snapshot). Error events
        go to `errors` when it is a list, else fail."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} data events within {timeout}s; last {out[-3:]!r}")
            try:
                e = self.next_event(left)
            except TimeoutError:
                continue
            if e.event == "error":
                assert errors is not None, f"unexpected error event {e!r}"
                errors.append(e)
                continue
            if e.event == "snapshot":
                continue
            out.append(e)
        return out

    def collect(self, quiet=0.5, timeout=10.0, until=None):
        """Every dispatching block until nothing came for `quiet` s (or the
        connection ended, or until(events) is true), within `timeout`."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is not None and until(out):
                break
            try:
                e = self.next_event(min(quiet, max(0.001, deadline - time.monotonic())))
            except TimeoutError:
                if until is None:
                    break
                continue
            except Closed:
                break
            out.append(e)
        return out

    def rst(self):
        """Abrupt close: SO_LINGER 0 makes close() send a reset."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def sse_request(port, path, headers=None, method="GET", timeout=5.0, src=None, body=b""):
    """One request expected to end (an error answer, a HEAD): the Response,
    with the body read by Content-Length, else until EOF. A 200 GET (a
    stream) comes back with only what arrived within 0.3 s as body."""
    c = SSE.open(port, path, headers, timeout=timeout, src=src, method=method, early=body,
                 expect=None, start=False)
    try:
        r = c.resp
        if method == "HEAD" or r.status in (204, 304):
            return r
        cl = r.header("Content-Length")
        if r.status == 200 and method == "GET" and cl is None:
            c.is_open(0.3)
            r.body = c.buf
            return r
        if cl is not None:
            r.body = c.read_exact(int(cl), timeout)
        else:
            body = c.buf
            c.buf = b""
            deadline = time.monotonic() + timeout
            while True:
                try:
                    c._fill(deadline)
                except (Closed, TimeoutError):
                    break
                body += c.buf
                c.buf = b""
            r.body = body
        return r
    finally:
        c.close()


def error_body(r):
    """The JSON body of an error answer, asserting its shape."""
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {r!r}")
    assert isinstance(body.get("error"), str), f"no error text: {body!r}"
    return body


class CurlStream:
    """`curl -N -s -i URL` in the background: .out grows with what curl
    printed (head, then the body as it arrives)."""

    def __init__(self, url, headers=(), max_time=20, extra=()):
        cmd = ["curl", "-N", "-s", "-i", "--max-time", str(max_time)] + list(extra)
        for k, v in headers:
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(url)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        self.out = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            with self.lock:
                self.out += chunk

    def text(self):
        with self.lock:
            return self.out

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.text()):
                return self.text()
            time.sleep(0.05)
        raise AssertionError(f"curl: no {what} within {timeout}s: {self.text()[-600:]!r}")

    def split(self):
        """(status, headers list, body bytes) of what curl printed."""
        out = self.text()
        head, sep, body = out.partition(b"\r\n\r\n")
        assert sep, f"curl printed no complete head: {out[:300]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k.strip(), v.strip()))
        return status, headers, body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.thread.join(5)


def parse_blocks(body):
    """A whole stream body -> list of Event (the incomplete tail dropped)."""
    out = []
    while b"\n\n" in body:
        i = body.index(b"\n\n") + 2
        out.append(Event(body[:i]))
        body = body[i:]
    return out


# ---------------------------------------------------------------- tokens
#
# The token is opaque to clients; the tests read it only to forge the
# malformed ones (another version byte, cut short) and to say what a
# failing token held. The layout (sse.c): base64url of one version byte (1),
# then per topic: varint name length, the name, varint partition count, and
# per partition: varint partition (the first as is, the next as the step
# from the previous minus one), varint last offset + 1. Varints are LEB128.

def _varint(b, i):
    v = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("token ends inside a varint")
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def _put_varint(v):
    out = bytearray()
    while True:
        x = v & 0x7F
        v >>= 7
        if v:
            out.append(x | 0x80)
        else:
            out.append(x)
            return bytes(out)


def decode_token(tok):
    """{(topic, partition): last offset} of a token (ValueError if bad)."""
    b = b64u_dec(tok)
    if not b or b[0] != 1:
        raise ValueError(f"version {b[:1]!r}")
    i, out = 1, {}
    while i < len(b):
        n, i = _varint(b, i)
        topic = b[i:i + n].decode("ascii")
        i += n
        np, i = _varint(b, i)
        prev = None
        for _ in range(np):
            p, i = _varint(b, i)
            p = p if prev is None else prev + p + 1
            prev = p
            last, i = _varint(b, i)
            out[(topic, p)] = last - 1
    return out


def encode_token(pos, version=1):
    """The token of {(topic, partition): last offset}."""
    b = bytearray([version])
    topics = sorted(set(t for t, _ in pos))
    for t in topics:
        parts = sorted(p for tt, p in pos if tt == t)
        b += _put_varint(len(t)) + t.encode("ascii") + _put_varint(len(parts))
        prev = None
        for p in parts:
            b += _put_varint(p if prev is None else p - prev - 1)
            b += _put_varint(pos[(t, p)] + 1)
            prev = p
    return b64u_enc(bytes(b))


class BlockReader:
    """Reads an SSE in a thread (so the client keeps up however much
    comes) and keeps every block; .closed is "eof"/"reset" once the
    stream ended."""

    def __init__(self, sse, name="reader"):
        self.sse = sse
        self.name = name
        self.closed = None
        self.error = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    self.sse.block(0.2)
                except TimeoutError:
                    continue
                except Closed as e:
                    self.closed = "reset" if "reset" in str(e) else "eof"
                    return
        except Exception as e:      # reported by check()
            self.error = e

    def events(self):
        return list(self.sse.events)

    def data(self):
        return [e for e in self.events() if e.is_data() and e.event not in ("error", "snapshot")]

    def errors(self):
        return [e for e in self.events() if e.event == "error"]

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return
            if self.error is not None or self.closed:
                break
            time.sleep(0.02)
        if pred(self):
            return
        raise AssertionError(f"{self.name}: no {what} within {timeout}s: {len(self.data())} data events, "
                             f"closed={self.closed}, error={self.error!r}, last={self.events()[-2:]!r}")

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        self.check()

    def check(self):
        if self.error is not None:
            raise AssertionError(f"{self.name}: reader failed: {self.error!r}")
