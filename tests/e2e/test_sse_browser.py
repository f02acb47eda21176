"""test_sse_browser.py - the Server-Sent Events example (web/examples/sse.js;
the endpoint is GET /sse, docs/protocol.md) run as is in headless Chromium
through tests/e2e/browser/sse.mjs (playwright-core driving /usr/bin/chromium;
both installed on demand as in test_console.py, skipped without them).

A tiny page served from a temporary directory by an in-process HTTP server
loads sse.js and calls kbridgeSse() with the URL of a TCP proxy in this file
(a thread relaying between the browser and kbridge that can drop every
connection on command and notes what each request and response started with):

- test_example_reconnects_by_itself_without_gap_or_duplicate: records go
  continuously into a 2-partition topic while the proxy drops the stream
  several times and kbridge is restarted once on the same port (a fresh
  instance without history: the replay comes from Kafka). The example never
  reconnects itself: EventSource does, with Last-Event-ID. Every produced
  record must reach the page exactly once, in offset order per partition.
  Before any record, a drop checks that the id-only block that starts the
  stream set the EventSource's last event ID (the interface does not expose
  it: the reconnect's Last-Event-ID header is what it holds).
- test_example_resumes_from_the_start_id: the stream is dropped before its
  first record and kept down while records go into both partitions (one
  with a record kbridge routed before, one without any): the id-only start
  block must be enough to get exactly those when EventSource is back.
- test_example_reports_a_refused_stream: an unknown channel is a 404 before
  the stream; EventSource gives up (readyState CLOSED, no retry) and the
  example tells that apart from kbridge's own error events. The page is on
  another origin, so the 404 needs CORS headers too.

Results go to tests/artifacts/browser-sse*.json and .png (and the proxy's
notes to browser-sse-proxy.json).
"""
import functools
import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import ARTIFACTS, ROOT, wait_channel_seq
from test_browser_resume import Page as _ResumePage, Producer, _QuietHandler, assert_exactly_once
from test_console import CHROMIUM, HERE, need_browser

SCRIPT = os.path.join(HERE, "browser", "sse.mjs")
EXAMPLE = os.path.join(ROOT, "web", "examples", "sse.js")

# The test's page: kbridgeSse() on ?base=&channel=&type=, each record and
# error reported to sse.mjs (kbRecord, kbError).
PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>kbridge SSE example</title><link rel="icon" href="data:,">
<style>body{font:14px monospace;margin:1em;background:#111;color:#ddd}</style>
<h1>kbridge SSE example</h1>
<pre id="status">connecting</pre>
<script src="sse.js"></script>
<script>
const q = new URLSearchParams(location.search);
let n = 0, errs = 0;
const last = {};
kbridgeSse(q.get('base'), [q.get('channel')], [q.get('type')], m => {
  n++;
  last[m.topic + ':' + m.partition] = m.offset;
  kbRecord(m.topic, m.partition, m.offset, m.data && m.data.i, m.seq === undefined ? null : m.seq);
}, e => { errs++; kbError(e); });
setInterval(() => {
  document.getElementById('status').textContent = 'channel ' + q.get('channel') + ' (type ' + q.get('type') + ')'
    + '\\nrecords: ' + n + '\\nerrors: ' + errs + '\\nlast offsets: ' + JSON.stringify(last);
}, 100);
</script>
</html>
"""


class Page(_ResumePage):
    """test_browser_resume's Page (an HTTP server for the page, sse.mjs
    behind it, one command at a time) with this file's page and script."""

    def __init__(self, base, channel, type_, name):
        self.dir = tempfile.mkdtemp(prefix="kbridge-sse-")
        shutil.copyfile(EXAMPLE, os.path.join(self.dir, "sse.js"))
        with open(os.path.join(self.dir, "index.html"), "w") as f:
            f.write(PAGE)
        handler = functools.partial(_QuietHandler, directory=self.dir)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        url = (f"http://127.0.0.1:{self.httpd.server_address[1]}/index.html"
               f"?base={base}&channel={channel}&type={type_}")
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.name = name
        self._start([SCRIPT, url, ARTIFACTS, name])

    def _start(self, argv):
        self.proc = subprocess.Popen(["node", *argv], cwd=HERE, env=dict(os.environ, CHROMIUM=CHROMIUM), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=1)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()
        self.result = None


class Proxy:
    """127.0.0.1:port relays each connection to kbridge's port. cut() closes
    every relayed connection at once (both sides); a connection kbridge
    refuses, or any while .refusing is set, is closed at once. conns lists,
    per connection, the first bytes of the request and of the response (up
    to 16 KiB each)."""

    KEEP = 16384

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.live = []          # [client, upstream] pairs
        self.conns = []         # {"request": bytes, "response": bytes, "refused": bool}
        self.closed = False
        self.refusing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            note = {"request": b"", "response": b"", "refused": False}
            with self.lock:
                self.conns.append(note)
            try:
                if self.refusing:
                    raise OSError("refusing")
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                u.settimeout(None)
            except OSError:
                note["refused"] = True
                c.close()
                continue
            pair = [c, u]
            with self.lock:
                self.live.append(pair)
            threading.Thread(target=self._pump, args=(c, u, note, "request", pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, note, "response", pair), daemon=True).start()

    def _pump(self, src, dst, note, what, pair):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if len(note[what]) < self.KEEP:
                    note[what] += data[:self.KEEP - len(note[what])]
                dst.sendall(data)
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair):
        with self.lock:
            if pair not in self.live:
                return
            self.live.remove(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self):
        """Drops every relayed connection; returns how many there were."""
        with self.lock:
            pairs = list(self.live)
        for p in pairs:
            self._drop(p)
        return len(pairs)

    def streams(self):
        """The relayed GET /sse requests, in order: [{"last_event_id", "start_id",
        "status", "headers"}] (start_id: the id of the block before the first event)."""
        out = []
        with self.lock:
            conns = list(self.conns)
        for n in conns:
            req = n["request"].decode("latin-1")
            if not req.startswith("GET /sse"):
                continue
            m = re.search(r"(?im)^last-event-id:\s*(.*?)\r?$", req)
            resp = n["response"].decode("latin-1")
            head, _, body = resp.partition("\r\n\r\n")
            status = head.split(" ")[1] if head.startswith("HTTP/") else None
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (ln.partition(":") for ln in head.split("\r\n")[1:])}
            first_block = body.split("\n\n")[0] if "\n\n" in body else None
            sid = re.search(r"(?m)^id: ?(.*)$", first_block) if first_block is not None else None
            out.append({"last_event_id": m.group(1) if m else None, "status": status, "headers": headers,
                        "start_block": first_block, "start_id": sid.group(1) if sid else None,
                        "refused": n["refused"]})
        return out

    def close(self):
        self.closed = True
        self.lsock.close()
        self.cut()

    def save(self, name):
        with open(os.path.join(ARTIFACTS, name + "-proxy.json"), "w") as f:
            json.dump(self.streams(), f, indent=1)


@pytest.fixture
def make():
    """make("page", ...) or make("proxy", ...); closed at teardown."""
    made = []

    def start(kind, *a, **kw):
        obj = (Page if kind == "page" else Proxy)(*a, **kw)
        made.append(obj)
        return obj
    yield start
    for obj in reversed(made):
        obj.close()


TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_example_reconnects_by_itself_without_gap_or_duplicate(mock_kafka, kafka_bridge, make):
    need_browser()
    mk = mock_kafka({"ticks": 2})
    a = kafka_bridge(mk, "-t", "ticks")
    time.sleep(0.5)                 # --offset latest: let the assignment settle
    proxy = make("proxy", a.port)
    p = make("page", f"http://127.0.0.1:{proxy.port}", "ticks", "ticks", "browser-sse")
    p.cmd("open")

    # The answer, and the stream's first block: an id alone.
    deadline = time.monotonic() + 5
    while not (proxy.streams() and proxy.streams()[0]["start_id"]):
        assert time.monotonic() < deadline, f"no id-only block at the stream's start: {proxy.streams()}"
        time.sleep(0.05)
    first = proxy.streams()[0]
    assert first["status"] == "200" and first["headers"].get("content-type", "").startswith("text/event-stream"), first
    assert first["headers"].get("cache-control") == "no-store", first
    assert first["last_event_id"] is None, first
    assert TOKEN_RE.match(first["start_id"]), first
    assert "event:" not in first["start_block"] and "data:" not in first["start_block"], first
    # Before any record: the id-only block set the EventSource's last event
    # ID (no attribute shows it): a drop makes it reconnect with it.
    time.sleep(0.3)
    assert proxy.cut() == 1
    assert p.cmd("waitopen 2 8000")["opens"] == 2, f"EventSource did not reconnect by itself: {proxy.streams()}"
    second = proxy.streams()[-1]
    assert second["last_event_id"] == first["start_id"], \
        f"the reconnect did not carry the start block's id as Last-Event-ID: {first} {second}"

    prod = Producer(mk, "ticks", 2, 250)
    t0 = time.monotonic()
    steps = []

    def at(t):                      # the timeline, in seconds after the first record
        time.sleep(max(0.0, t0 + t - time.monotonic()))

    def cut(opened):
        # only a stream the page has open: a cut while the browser still
        # waits out its retry (or as a reconnect's 200 passes the proxy)
        # would test nothing, and a loaded machine is slow to reconnect
        p.cmd(f"waitopen {opened} 8000", timeout=12)
        steps.append(("cut", proxy.cut()))

    deadline = time.monotonic() + 10
    while len(p.cmd("state")["last"]) < 2:
        assert time.monotonic() < deadline, "the page saw no records of both partitions within 10 s"
        time.sleep(0.1)
    for k, t in enumerate((1.5, 3.0, 4.5)):
        at(t)
        cut(2 + k)
    at(6.0)
    a.signal(signal.SIGTERM)
    assert a.wait_exit(15) == 0, "kbridge did not exit 0 on SIGTERM"
    time.sleep(2.5)                 # down for a while: the browser's reconnects are refused
    kafka_bridge(mk, "-t", "ticks", port=a.port)     # the same port behind the proxy
    steps.append(("restart", p.cmd("state")))
    for k, t in enumerate((10.0, 11.5)):
        at(max(t, time.monotonic() - t0 + 1.5))
        cut(6 + k)
    at(max(13.0, time.monotonic() - t0 + 1.5))
    produced = prod.stop()
    p.cmd(f"wait {len(produced)} 15000", timeout=20)
    res = p.finish()
    proxy.save("browser-sse")

    recs = res["records"]
    streams = proxy.streams()
    ok = [s for s in streams if s["status"] == "200"]
    summary = {"produced": len(produced), "received": len(recs), "sources": res["sources"], "opens": res["opens"],
               "requests": len(streams), "answered": len(ok), "not_relayed": sum(c["refused"] for c in proxy.conns),
               "browser_net_errors": res["refused"], "steps": steps}
    print("browser sse:", json.dumps(summary))
    assert res["sources"] == 1, f"the example opened more than one EventSource: {summary}"
    assert not res["errors"], f"errors handed to the example: {res['errors']}"
    assert res["opens"] >= 7 and len(ok) == res["opens"], f"expected at least 7 streams, each opened once: {summary}"
    assert summary["not_relayed"] >= 1, f"no reconnect while kbridge was down: {summary}"
    assert all(s["last_event_id"] and TOKEN_RE.match(s["last_event_id"]) for s in streams[1:]), \
        f"every reconnect sends Last-Event-ID: {streams}"
    assert all(s["start_id"] and TOKEN_RE.match(s["start_id"]) for s in ok), f"every stream starts with an id: {ok}"
    assert any(r[4] is None for r in recs), \
        f"no record without seq: the restarted instance replayed nothing from Kafka {summary}"
    assert_exactly_once(recs, produced, summary)


@pytest.mark.parametrize("routed", [True, False], ids=["after-a-record", "before-any-record"])
def test_example_resumes_from_the_start_id(mock_kafka, kafka_bridge, make, routed):
    """A break before the stream's first record: the id-only block that
    starts the stream is all the EventSource has, and the records produced
    while the stream is down must arrive when it is back, once. With
    routed, partition 0 had a record kbridge routed before the page opened
    (it must not come again) and partition 1 none; without, kbridge has
    routed nothing of the topic yet (a new or idle topic)."""
    need_browser()
    mk = mock_kafka({"quiet": 2})
    srv = kafka_bridge(mk, "-t", "quiet")
    time.sleep(0.5)                 # --offset latest: let the assignment settle
    if routed:
        mk.produce("quiet", '{"i":-1}', key="k", partition=0)
        wait_channel_seq(srv.port, "quiet", 1)
    proxy = make("proxy", srv.port)
    name = "browser-sse-start" + ("" if routed else "-unrouted")
    p = make("page", f"http://127.0.0.1:{proxy.port}", "quiet", "quiet", name)
    p.cmd("open")
    deadline = time.monotonic() + 5
    while not (proxy.streams() and proxy.streams()[0]["start_id"]):
        assert time.monotonic() < deadline, f"no id-only block at the stream's start: {proxy.streams()}"
        time.sleep(0.05)
    start = proxy.streams()[0]["start_id"]
    time.sleep(0.3)
    proxy.refusing = True           # down until the records are in
    assert proxy.cut() == 1
    for i in range(4):
        mk.produce("quiet", '{"i":%d}' % i, key="k", partition=i % 2)
    mk.flush()
    wait_channel_seq(srv.port, "quiet", 4 + routed)
    proxy.refusing = False
    p.cmd("waitopen 2 10000")
    p.cmd("wait 4 5000")
    time.sleep(0.5)                 # anything more would be a duplicate
    res = p.finish()
    proxy.save(name)
    streams = [s for s in proxy.streams() if s["status"] == "200"]
    assert len(streams) == 2 and streams[1]["last_event_id"] == start, (start, proxy.streams())
    got = sorted((r[1], r[2], r[3]) for r in res["records"])
    want = [(0, int(routed), 0), (0, int(routed) + 1, 2), (1, 0, 1), (1, 1, 3)]
    assert got == want, \
        (f"records produced during a break before the first record: want (partition, offset, i) "
         f"{want}, got {got}; the start block's id was {start!r} "
         f"and the reconnect's start id {streams[1]['start_id']!r}")
    assert not res["errors"], res["errors"]


def test_example_reports_a_refused_stream(mock_kafka, kafka_bridge, make):
    """An unknown channel: 404 before the stream. EventSource fails the
    connection for good (no retry, readyState CLOSED) and the example hands
    one CLOSED error (no data from kbridge) to onError."""
    need_browser()
    mk = mock_kafka({"known": 1})
    srv = kafka_bridge(mk, "-t", "known")
    proxy = make("proxy", srv.port)
    p = make("page", f"http://127.0.0.1:{proxy.port}", "no-such-channel", "known", "browser-sse-refused")
    p.cmd("load")
    st = p.cmd("waitclosed 10000")
    assert st["closed"], f"EventSource still not CLOSED after 10 s: {st} {proxy.streams()}"
    time.sleep(3)                   # three retry periods: EventSource must not retry
    res = p.finish()
    streams = proxy.streams()
    assert len(streams) == 1 and streams[0]["status"] == "404", streams
    body = proxy.conns[0]["response"].decode().partition("\r\n\r\n")[2]
    assert json.loads(body)["code"] == "UNKNOWN_CHANNEL", body
    assert res["opens"] == 0 and res["sources"] == 1, res
    assert res["errors"] == [{"type": "error", "code": "CLOSED", "message": "connection refused"}], res["errors"]
    assert res["events"] == [["error", None, 2]], f"one error event, no data, readyState CLOSED: {res['events']}"
    # The page is on another origin (as an app using kbridge is): without
    # Access-Control-Allow-Origin on the refusal Chromium reports a CORS
    # failure (net::ERR_FAILED) instead of the 404, and no page can read why.
    assert "access-control-allow-origin" in streams[0]["headers"], \
        f"the 404 before the stream has no Access-Control-Allow-Origin: {streams[0]['headers']} {res['netErrors']}"
