"""test_browser_resume.py - the browser reconnect-and-resume example
(web/examples/resume.js, linked from the README; the rules it follows are
docs/protocol.md#resume and #snapshots) run as is in headless Chromium
through tests/e2e/browser/resume.mjs (playwright-core driving
/usr/bin/chromium; both installed on demand as in test_console.py, skipped
without them).

A tiny page served from a temporary directory by an in-process HTTP server on
another 127.0.0.1 port loads resume.js and calls kbridgeFeed(); the test
drives the browser step by step over the script's stdin:

- test_example_resumes_without_gap_or_duplicate: records go continuously into
  a 2-partition topic while the page's WebSocket is closed several times, the
  page is reloaded once (the page keeps feed.positions and what it got in
  sessionStorage and passes the positions back to kbridgeFeed) and kbridge is
  restarted once on the same port (a fresh instance without history: the
  replay comes from Kafka). Every produced record must reach the page exactly
  once, in offset order per partition; the first subscribe asks for a
  snapshot, every later one resumes.
- test_example_turns_resume_gap_into_snapshot: a saved position Kafka no
  longer holds gets RESUME_GAP; the example asks for a snapshot and hands it
  to its onSnapshot callback.

Results go to tests/artifacts/browser-resume*.json and .png.
"""
import functools
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from conftest import ARTIFACTS, ROOT, wait_channel_seq
from test_console import CHROMIUM, HERE, need_browser

SCRIPT = os.path.join(HERE, "browser", "resume.mjs")
EXAMPLE = os.path.join(ROOT, "web", "examples", "resume.js")

# The test's page: an app that keeps what it got and, on a reload, carries
# its positions over in sessionStorage (the records it reported are carried
# over by resume.mjs). ?positions= gives starting positions.
PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>kbridge resume example</title><link rel="icon" href="data:,">
<style>body{font:14px monospace;margin:1em;background:#111;color:#ddd}</style>
<h1>kbridge resume example</h1>
<pre id="status">connecting</pre>
<script src="resume.js"></script>
<script>
const q = new URLSearchParams(location.search);
const saved = JSON.parse(sessionStorage.getItem('positions') || q.get('positions') || '{}');
let n = 0, snaps = 0;
const feed = kbridgeFeed(q.get('ws'), q.get('channel'), m => {
  n++;
  kbRecord(m.topic, m.partition, m.offset, m.data && m.data.i, m.seq === undefined ? null : m.seq);
}, data => { snaps++; kbSnapshot(data); }, saved);
addEventListener('pagehide', () => sessionStorage.setItem('positions', JSON.stringify(feed.positions)));
setInterval(() => {
  document.getElementById('status').textContent = 'channel ' + q.get('channel') + '\\nrecords this page: ' + n
    + '\\nsnapshots: ' + snaps + '\\npositions: ' + JSON.stringify(feed.positions);
}, 100);
</script>
</html>
"""


class Page:
    """An HTTP server for the example page and the browser script behind it,
    talked to one command at a time."""

    def __init__(self, ws_port, channel, name, positions=None):
        self.dir = tempfile.mkdtemp(prefix="kbridge-resume-")
        shutil.copyfile(EXAMPLE, os.path.join(self.dir, "resume.js"))
        with open(os.path.join(self.dir, "index.html"), "w") as f:
            f.write(PAGE)
        handler = functools.partial(_QuietHandler, directory=self.dir)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        url = (f"http://127.0.0.1:{self.httpd.server_address[1]}/index.html"
               f"?ws=ws://127.0.0.1:{ws_port}/ws&channel={channel}")
        if positions is not None:
            url += "&positions=" + urllib.parse.quote(json.dumps(positions))
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.name = name
        self.proc = subprocess.Popen(["node", SCRIPT, url, ARTIFACTS, name], cwd=HERE,
                                     env=dict(os.environ, CHROMIUM=CHROMIUM), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=1)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()
        self.result = None

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line.rstrip("\n"))
            if line.startswith("{"):
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    pass
        self.lines.put(None)

    def _next(self, timeout):
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"browser script silent for {timeout}s:\n" + "\n".join(self.log[-30:]))
        if msg is None or "reply" not in msg:
            self.result = msg
            raise AssertionError("browser script ended early:\n" + "\n".join(self.log[-30:])[-6000:])
        return msg

    def cmd(self, line, timeout=20):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self._next(timeout)
        assert reply["reply"] == line.split()[0], reply
        return reply

    def finish(self, timeout=20):
        self.proc.stdin.write("finish\n")
        self.proc.stdin.flush()
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("browser script did not finish:\n" + "\n".join(self.log[-30:]))
        assert msg is not None and "reply" not in msg, "\n".join(self.log[-30:])
        self.proc.wait(10)
        assert msg.get("ok"), f"browser: {msg.get('error')} problems={msg.get('problems')}"
        with open(msg["file"]) as f:
            self.result = json.load(f)
        return self.result

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()     # the script then closes Chromium and exits
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()            # our own child, by PID
                self.proc.wait(10)
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def page():
    pages = []

    def start(*a, **kw):
        p = Page(*a, **kw)
        pages.append(p)
        return p
    yield start
    for p in pages:
        p.close()


class Producer:
    """kafka-python in a thread: `rate` records/s alternating between the
    partitions, value {"i":i}, until stop(); keeps (partition, offset) of each."""

    def __init__(self, mk, topic, partitions, rate):
        self.mk, self.topic, self.partitions, self.rate = mk, topic, partitions, rate
        self.futures = []
        self.error = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            t0 = time.monotonic()
            i = 0
            while not self._stop.is_set():
                due = int((time.monotonic() - t0) * self.rate) + 1
                while i < due:
                    self.futures.append(self.mk.produce(self.topic, '{"i":%d}' % i, key="k%d" % (i % 10),
                                                        partition=i % self.partitions, wait=False))
                    i += 1
                time.sleep(0.01)
        except Exception as e:      # reported by stop()
            self.error = e

    def stop(self):
        self._stop.set()
        self.thread.join(10)
        assert self.error is None, f"producer: {self.error!r}"
        self.mk.flush()
        out = {}
        for i, f in enumerate(self.futures):
            md = f.get(20)
            out[i] = (md.partition, md.offset)
        return out


def assert_exactly_once(recs, produced, context):
    """recs: (topic, partition, offset, i, seq) as a page reported them;
    produced: i -> (partition, offset). Every produced record arrived once,
    in offset order per partition of topic "ticks"; context ends every
    failure message."""
    by_i = {}
    for topic, part, off, i, _seq in recs:
        assert topic == "ticks"
        assert produced.get(i) == (part, off), f"record i={i} at {part}:{off}, produced at {produced.get(i)}"
        by_i[i] = by_i.get(i, 0) + 1
    dup = sorted(i for i, n in by_i.items() if n > 1)
    missing = sorted(i for i in produced if i not in by_i)
    for part in (0, 1):
        got = [off for _t, pp, off, _i, _s in recs if pp == part]
        want = sorted(off for pp, off in produced.values() if pp == part)
        if got != want:
            first_bad = next((k for k, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            raise AssertionError(
                f"partition {part}: {len(got)} records received, {len(want)} produced; "
                f"first difference at #{first_bad}: got {got[first_bad:first_bad + 5]} "
                f"want {want[first_bad:first_bad + 5]}; duplicates (i) {dup[:10]}, missing (i) {missing[:10]}; "
                f"{context}")
    assert not dup and not missing


def test_example_resumes_without_gap_or_duplicate(mock_kafka, kafka_bridge, page):
    need_browser()
    mk = mock_kafka({"ticks": 2})
    a = kafka_bridge(mk, "-t", "ticks")
    time.sleep(0.5)                 # --offset latest: let the assignment settle
    p = page(a.port, "ticks", "browser-resume")
    p.cmd("open")
    prod = Producer(mk, "ticks", 2, 250)
    t0 = time.monotonic()
    steps = []

    def at(t):                      # the timeline, in seconds after the first record
        time.sleep(max(0.0, t0 + t - time.monotonic()))

    # A partition never seen has no position to resume from: the first break
    # waits until the page saw both.
    deadline = time.monotonic() + 10
    while len(p.cmd("state")["last"]) < 2:
        assert time.monotonic() < deadline, "the page saw no records of both partitions within 10 s"
        time.sleep(0.1)
    for t in (1.5, 3.0):
        at(t)
        steps.append(("break", p.cmd("break")))
    at(4.5)
    steps.append(("reload", p.cmd("reload")))
    at(6.0)
    a.signal(signal.SIGTERM)
    assert a.wait_exit(15) == 0, "kbridge did not exit 0 on SIGTERM"
    time.sleep(0.5)                 # down for a while: refused reconnects, backoff
    kafka_bridge(mk, "-t", "ticks", port=a.port)     # the same URL for the page
    steps.append(("restart", {"state": p.cmd("state")}))
    for t in (10.0, 11.0):
        at(max(t, time.monotonic() - t0 + 1.0))
        steps.append(("break", p.cmd("break")))
    at(max(12.5, time.monotonic() - t0 + 1.0))
    produced = prod.stop()
    p.cmd(f"wait {len(produced)} 15000", timeout=20)
    res = p.finish()

    recs = res["records"]
    summary = {"produced": len(produced), "received": len(recs), "sockets": res["sockets"],
               "refused_connects": res["refused"], "steps": [s[0] for s in steps]}
    print("browser resume:", json.dumps(summary))
    assert res["sockets"] >= 6, f"expected at least 6 WebSocket connections: {summary}"
    errors = [c for c in res["controls"] if c.get("type") == "error"]
    assert not errors, f"errors sent to the example: {errors}"
    subs = [m for m in res["sent"] if m.get("type") == "subscribe"]
    assert subs[0].get("snapshot") is True and "resume" not in subs[0], subs[0]
    assert all(set(m.get("resume", {})) == {"ticks:0", "ticks:1"} and "snapshot" not in m for m in subs[1:]), \
        f"every subscribe after the first (the reload's too) resumes both partitions: {subs}"
    assert len(res["snapshots"]) == 1, res["snapshots"]
    assert len(subs) == res["sockets"] - res["refused"], (subs, summary)
    assert any(r[4] is None for r in recs), \
        f"no record without seq: the restarted instance replayed nothing from Kafka {summary}"
    assert_exactly_once(recs, produced, f"{summary}; steps {steps}")


def test_example_turns_resume_gap_into_snapshot(mock_kafka, kafka_bridge, page):
    """The mock broker keeps about 5 MB per partition: 700 records of 10 KB
    push the first ones out of partition 0, so a saved position of offset 0
    there (passed to kbridgeFeed) is a RESUME_GAP; the example then asks for
    a snapshot and hands it to onSnapshot."""
    need_browser()
    mk = mock_kafka({"gap": 2})
    srv = kafka_bridge(mk, "-t", "gap", "--history", "64K")
    time.sleep(0.5)

    def fill(lo, hi):
        mk.kcat_produce("gap", b"".join(b'k%d\t{"i":%d,"pad":"%s"}\n' % (i % 7, i, b"z" * 10000)
                                        for i in range(lo, hi)),
                        partition=0, key_delim="\t")
    # In two steps: the mock deletes the oldest records of partition 0 only
    # in the second, after kbridge has routed them (a slow build could
    # otherwise fall behind retention, which another test covers).
    fill(0, 400)
    wait_channel_seq(srv.port, "gap", 400, timeout=30)
    fill(400, 700)
    mk.produce("gap", '{"i":1000}', key="p1", partition=1)
    wait_channel_seq(srv.port, "gap", 701, timeout=30)
    p = page(srv.port, "gap", "browser-resume-gap", positions={"gap:0": 0, "gap:1": -1})
    p.cmd("open")
    assert p.cmd("waitsnap 10000")["snapshots"] >= 1
    p.cmd("wait 1 10000")           # gap:1 replays from its start: offset 0
    mk.produce("gap", '{"i":2000}', key="live", partition=0)
    st = p.cmd("wait 2 10000")
    res = p.finish()
    gaps = [c for c in res["controls"] if c.get("code") == "RESUME_GAP"]
    assert gaps and "gap:0" in json.dumps(gaps[0]), res["controls"]
    snap = res["snapshots"][0]
    assert set(snap) >= {"k%d" % k for k in range(7)} | {"p1"}, sorted(snap)
    assert snap["k6"]["i"] == 699 and snap["p1"]["i"] == 1000, {k: snap[k].get("i") for k in snap}
    recs = [(r[1], r[2], r[3]) for r in res["records"]]
    assert recs == [(1, 0, 1000), (0, 700, 2000)], (st, recs)
