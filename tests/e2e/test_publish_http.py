"""Publishing into Kafka over HTTP (docs/protocol.md#publishing):
`POST /publish/CHANNEL[?key=K]` with a JSON body answers
200 {"topic","partition","offset"} once Kafka acknowledged the record
(value = the body's bytes), else 400/401/403/404/408/411/413/503 with a JSON
{"error": ...} body. Other POSTs stay 405.

Real peers: curl for the well-formed requests, raw sockets (wsutil.Conn)
for framing cases no HTTP client sends (no Content-Length, a body longer
or shorter than announced, a trickle); kafka-python reads the records
back from the mock Kafka cluster.
"""
import json
import subprocess
import time

import pytest

import authutil as au
import pubutil as pu
from authutil import keyring  # noqa: F401  (session fixture)
from wsutil import build_request


@pytest.fixture
def bridge(mock_kafka, kafka_bridge):
    def start(topics, *flags, **kw):
        t = dict(topics)
        t.setdefault("feed", 1)
        mk = mock_kafka(t)
        srv = kafka_bridge(mk, "-t", "feed", *flags, **kw)
        return mk, srv
    return start


def curl_post(srv, path, body, headers=()):
    """POST with curl: (status, parsed JSON body or raw bytes)."""
    cmd = ["curl", "-sS", "--max-time", "15", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
           "-H", "Content-Type: application/json", "--data-binary", "@-"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{srv.port}{path}")
    p = subprocess.run(cmd, input=body, capture_output=True, timeout=20)
    assert p.returncode == 0, f"curl failed: {p.stderr!r}"
    out, _, code = p.stdout.rpartition(b"\n")
    try:
        return int(code), json.loads(out)
    except ValueError:
        return int(code), out


def post(path, body, headers=None, cl=True):
    h = [("Content-Type", "application/json")] + list(headers or [])
    if cl:
        h.append(("Content-Length", str(len(body))))
    return build_request("POST", path, h, body=body)


def check_pos(obj, topic):
    assert isinstance(obj, dict) and obj.get("topic") == topic, f"200 body {obj!r}"
    p, o = obj.get("partition"), obj.get("offset")
    assert isinstance(p, int) and isinstance(o, int) and p >= 0 and o >= 0, f"200 body {obj!r}"
    return p, o


def check_error_body(r, status, what=""):
    assert r.status == status, f"{what}: expected {status}, got {r!r}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{what}: {status} body is not JSON: {r.body!r}")
    assert isinstance(body.get("error"), str) and body["error"], f"{what}: {status} body {body!r}"
    return body


def wait_closed(c, timeout=3.0):
    """The server closed the connection (EOF or reset) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not c.is_open(0.1):
            assert not c.buf, f"bytes before close: {c.buf[:200]!r}"
            return True
    raise AssertionError(f"connection still open {timeout}s after the answer")


def topic_count(mk, topic, partitions=1):
    return sum(len(v) for v in pu.read_all(mk, topic, partitions).values())


# ---------------------------------------------------------------- well-formed

def test_curl_post_publishes_body_bytes(bridge):
    """curl POST /publish/CHANNEL?key=K: 200 {"topic","partition","offset"}
    after the ack; the record there has the body's exact bytes as value
    and K as key (percent-decoded)."""
    mk, srv = bridge({"ht": 3}, "--publish", "hc=ht")
    body = '{"a": 1,  "b":[1, 2 ], "u":"\u00e9\u2603\\u00e9" }'.encode("utf-8")
    st, obj = curl_post(srv, "/publish/hc?key=K-1", body)
    assert st == 200, (st, obj)
    p, o = check_pos(obj, "ht")
    rec = pu.read_at(mk, "ht", p, o)[0]
    assert rec.value == body, f"value {rec.value!r}, body {body!r}"
    assert rec.key == b"K-1", f"key {rec.key!r}"
    st, obj = curl_post(srv, "/publish/hc?key=BTC%2FUSDT", b"[1,2,3]")
    assert st == 200, (st, obj)
    p, o = check_pos(obj, "ht")
    rec = pu.read_at(mk, "ht", p, o)[0]
    assert rec.value == b"[1,2,3]" and rec.key == b"BTC/USDT", rec
    st, obj = curl_post(srv, "/publish/hc", b'"no key"')
    assert st == 200, (st, obj)
    p, o = check_pos(obj, "ht")
    rec = pu.read_at(mk, "ht", p, o)[0]
    assert rec.value == b'"no key"' and rec.key is None, rec
    assert topic_count(mk, "ht", 3) == 3


def test_keep_alive_two_posts_one_connection(bridge):
    mk, srv = bridge({"kt": 1}, "--publish", "kc=kt")
    c = srv.conn()
    c.send(post("/publish/kc?key=a", b'{"n":1}'))
    r1 = c.read_response(timeout=10)
    assert r1.status == 200, r1
    c.send(post("/publish/kc?key=b", b'{"n":2}'))
    r2 = c.read_response(timeout=10)
    assert r2.status == 200, r2
    assert c.is_open(0.3), "connection closed after a 200 (keep-alive expected)"
    p1, o1 = check_pos(r1.json(), "kt")
    p2, o2 = check_pos(r2.json(), "kt")
    assert o2 == o1 + 1, (o1, o2)
    recs = pu.read_at(mk, "kt", 0, o1, 2)
    assert [(r.key, r.value) for r in recs] == [(b"a", b'{"n":1}'), (b"b", b'{"n":2}')]
    # pipelined: two requests in one write, answered in order
    c.send(post("/publish/kc", b"3") + post("/publish/kc", b"4"))
    r3, r4 = c.read_response(timeout=10), c.read_response(timeout=10)
    assert (r3.status, r4.status) == (200, 200), (r3, r4)
    assert r4.json()["offset"] == r3.json()["offset"] + 1


def test_body_exactly_max_message_accepted(bridge):
    mk, srv = bridge({"xt": 1}, "--publish", "xc=xt", "--max-message", "4096")
    body = b'"' + b"y" * 4094 + b'"'
    st, obj = curl_post(srv, "/publish/xc", body)
    assert st == 200, (st, obj)
    p, o = check_pos(obj, "xt")
    assert pu.read_at(mk, "xt", p, o)[0].value == body


# ---------------------------------------------------------------- framing

def test_no_content_length_411_closed(bridge):
    mk, srv = bridge({"ft": 1}, "--publish", "fc=ft")
    c = srv.conn()
    c.send(build_request("POST", "/publish/fc", [("Content-Type", "application/json")]) + b'{"a":1}')
    r = c.read_response()
    check_error_body(r, 411, "POST without Content-Length")
    wait_closed(c)
    c = srv.conn()
    c.send(build_request("POST", "/publish/fc", [("Transfer-Encoding", "chunked")]) + b"7\r\n{\"a\":1}\r\n0\r\n\r\n")
    r = c.read_response()
    check_error_body(r, 411, "POST with Transfer-Encoding: chunked")
    wait_closed(c)
    assert topic_count(mk, "ft") == 0


def test_content_length_over_max_message_413_closed(bridge):
    """Content-Length over --max-message: 413 at once (the body is not
    awaited) and the connection closed."""
    mk, srv = bridge({"ft": 1}, "--publish", "fc=ft", "--max-message", "4096")
    c = srv.conn()
    t0 = time.monotonic()
    c.send(build_request("POST", "/publish/fc", [("Content-Type", "application/json"),
                                                 ("Content-Length", "4097")]))
    r = c.read_response(timeout=3)
    check_error_body(r, 413, "Content-Length 4097, --max-message 4096")
    assert time.monotonic() - t0 < 1.0, "413 only after waiting for the body"
    wait_closed(c)
    assert topic_count(mk, "ft") == 0


def test_body_longer_than_announced(bridge):
    """The surplus after the announced body is the next request: a
    malformed one gets 400 and the connection closes; the first was
    published with exactly the announced bytes."""
    mk, srv = bridge({"lt": 1}, "--publish", "lc=lt")
    c = srv.conn()
    head = build_request("POST", "/publish/lc", [("Content-Type", "application/json"), ("Content-Length", "10")])
    c.send(head + b'{"a":1234}' + b'xyz"}\r\n\r\n')
    r1 = c.read_response(timeout=10)
    assert r1.status == 200, r1
    p, o = check_pos(r1.json(), "lt")
    r2 = c.read_response(timeout=5)
    assert r2.status == 400, f"the surplus as a request: {r2!r}"
    wait_closed(c)
    assert pu.read_at(mk, "lt", p, o)[0].value == b'{"a":1234}'
    assert topic_count(mk, "lt") == 1


def test_expect_100_continue(bridge):
    """A client that sends its head with `Expect: 100-continue` and waits
    gets `100 Continue` at once, then the answer after its body; a head
    that would be refused anyway gets the refusal instead (413), no 100.
    curl itself waits this way for bodies over 1 MiB."""
    mk, srv = bridge({"ec": 1}, "--publish", "ecc=ec")
    c = srv.conn()
    c.send(build_request("POST", "/publish/ecc", [("Content-Type", "application/json"), ("Content-Length", "7"),
                                                  ("Expect", "100-continue")]))
    r1 = c.read_response(timeout=5)
    assert r1.status == 100, f"no 100 Continue for a head that waits: {r1!r}"
    c.send(b'{"e":1}')
    r2 = c.read_response(timeout=10)
    assert r2.status == 200, r2
    p, o = check_pos(r2.json(), "ec")
    assert pu.read_at(mk, "ec", p, o)[0].value == b'{"e":1}'
    c2 = srv.conn()
    c2.send(build_request("POST", "/publish/ecc", [("Content-Length", str(1 << 20)), ("Expect", "100-continue")]))
    r3 = c2.read_response(timeout=5)
    assert r3.status == 413, f"a body over --max-message is refused at once, not continued: {r3!r}"
    wait_closed(c2)
    c3 = srv.conn()
    c3.send(build_request("POST", "/publish/nope", [("Content-Length", "7"), ("Expect", "100-continue")]))
    r4 = c3.read_response(timeout=5)
    assert r4.status == 404, f"a channel the head names is refused before the body, not continued: {r4!r}"
    wait_closed(c3)


def test_half_close_after_post_still_answered(bridge):
    """A client that sends its whole POST and shuts its side of the
    connection (as `nc -N` does) still reads the answer: 200 with the
    record's place and `Connection: close`."""
    import socket
    mk, srv = bridge({"hct": 1}, "--publish", "hcc=hct")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(post("/publish/hcc", b'{"h":1}'))
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        out += d
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, out
    p, o = check_pos(json.loads(body), "hct")
    assert pu.read_at(mk, "hct", p, o)[0].value == b'{"h":1}'


def test_body_shorter_than_announced_408(bridge):
    """A body that stops short: 408 at --header-timeout (1 s), closed,
    nothing written."""
    mk, srv = bridge({"st": 1}, "--publish", "sc=st", "--header-timeout", "1")
    c = srv.conn()
    t0 = time.monotonic()
    c.send(build_request("POST", "/publish/sc", [("Content-Length", "20")]) + b'{"a":')
    r = c.read_response(timeout=4)
    took = time.monotonic() - t0
    assert r.status == 408, f"short body: {r!r}"
    assert 0.8 <= took <= 2.5, f"408 after {took:.2f}s, --header-timeout 1"
    wait_closed(c)
    assert topic_count(mk, "st") == 0


def test_body_trickle_408(bridge):
    """The whole request, head and body, must arrive within
    --header-timeout: a body sent a byte every 0.15 s (6 s in all) gets 408
    after about 1 s, and the connection closes."""
    mk, srv = bridge({"st": 1}, "--publish", "sc=st", "--header-timeout", "1")
    body = b'{"trickle":"' + b"z" * 26 + b'"}'
    c = srv.conn()
    t0 = time.monotonic()
    c.send(build_request("POST", "/publish/sc", [("Content-Length", str(len(body)))]))
    answer = None
    for i, b in enumerate(body):
        try:
            c.send(bytes([b]))
        except OSError:
            break
        if not c.is_open(0.15):
            break
        if c.buf:
            break
    took = time.monotonic() - t0
    if c.buf:
        answer = c.read_response(timeout=1)
    assert took <= 2.5, f"trickled body still accepted {took:.1f}s into a request with --header-timeout 1"
    assert answer is not None and answer.status == 408, f"trickle: {answer!r} after {took:.2f}s"
    wait_closed(c)
    assert topic_count(mk, "st") == 0


# ---------------------------------------------------------------- errors

def test_invalid_json_unknown_channel_and_methods(bridge):
    mk, srv = bridge({"et": 1}, "--publish", "ec=et")
    for body in (b'{"a":', b"not json", b"", b'{"a":1} x', b"\xff\xfe"):
        r = srv.http("POST", "/publish/ec", headers=[("Content-Length", str(len(body)))], body=body)
        check_error_body(r, 400, f"body {body!r}")
    r = srv.http("POST", "/publish/ec?key=%zz", headers=[("Content-Length", "1")], body=b"1")
    check_error_body(r, 400, "?key=%zz")
    st, obj = curl_post(srv, "/publish/nope", b"{}")
    assert st == 404 and isinstance(obj, dict) and obj.get("error"), (st, obj)
    st, obj = curl_post(srv, "/publish/feed", b"{}")        # consumed, not a --publish channel
    assert st == 404, (st, obj)
    r = srv.http("GET", "/publish/ec")
    assert r.status == 405, r
    assert sorted(t.strip() for t in (r.header("Allow") or "").split(",")) == ["OPTIONS", "POST"], \
        f"GET /publish/ec: Allow {r.header('Allow')!r}"
    for method in ("PUT", "DELETE"):
        r = srv.http(method, "/publish/ec", headers=[("Content-Length", "2")], body=b"{}")
        assert r.status == 405, f"{method} /publish/ec: {r!r}"
        assert sorted(t.strip() for t in (r.header("Allow") or "").split(",")) == ["OPTIONS", "POST"], \
            f"{method} /publish/ec: Allow {r.header('Allow')!r}"
    for path in ("/other", "/health", "/publishx/ec"):
        r = srv.http("POST", path, headers=[("Content-Length", "2")], body=b"{}")
        assert r.status == 405, f"POST {path}: {r!r}"
        assert sorted(t.strip() for t in (r.header("Allow") or "").split(",")) == ["GET", "HEAD", "OPTIONS"], \
            f"POST {path}: Allow {r.header('Allow')!r}"
    assert topic_count(mk, "et") == 0


def test_broker_down_503(bridge):
    """Kafka does not acknowledge within --publish-timeout: 503 with a
    JSON error, after about the timeout."""
    mk, srv = bridge({"dt": 1}, "--publish", "dc=dt", "--publish-timeout", "1.5")
    st, obj = curl_post(srv, "/publish/dc", b'{"warm":1}')
    assert st == 200, (st, obj)
    mk.down(1)
    t0 = time.monotonic()
    r = srv.http("POST", "/publish/dc", headers=[("Content-Length", "8")], body=b'{"x":42}', timeout=6)
    took = time.monotonic() - t0
    check_error_body(r, 503, "broker down")
    assert 1.4 <= took <= 3.0, f"503 after {took:.2f}s, --publish-timeout 1.5"
    mk.up(1)
    vals = [rec.value for rec in pu.read_all(mk, "dt")[0]]
    assert vals == [b'{"warm":1}'], vals


def test_waiting_publishes_leave_room_for_other_requests(bridge):
    """1,100 POSTs waiting for Kafka (broker down) are not requests whose
    head is still coming: the cap on those (1,024) does not refuse the
    next connection, so /health still answers 200."""
    import resource
    import socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    mk, srv = bridge({"wt": 1}, "--publish", "wc=wt", "--publish-timeout", "20")
    st, obj = curl_post(srv, "/publish/wc", b'{"warm":1}')
    assert st == 200, (st, obj)
    mk.down(1)
    req = post("/publish/wc", b'{"w":1}')
    socks = []
    try:
        for _ in range(1100):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(req)
            socks.append(s)
        deadline = time.monotonic() + 10
        while True:
            r = srv.http("GET", "/health", timeout=5)
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status == 200, f"/health with 1,100 publishes waiting: {r!r}"
    finally:
        for s in socks:
            s.close()
        mk.up(1)


# ---------------------------------------------------------------- auth, CORS

def test_auth_401_403_200(bridge, keyring):
    mk, srv = bridge({"ot": 1, "st": 1}, "--jwt-secret", keyring.secret,
                     "--publish", "orders-eu=ot", "--publish", "secret=st")
    c = au.claims(channels=["*"])
    c["kbridge"]["publish"] = ["orders*"]
    tok = au.mint("HS256", keyring.good["hmac"], c)
    nopub = au.mint("HS256", keyring.good["hmac"], au.claims(channels=["*"]))
    wrong = au.mint("HS256", keyring.wrong["hmac"], c)

    st, obj = curl_post(srv, "/publish/orders-eu", b"{}")
    assert st == 401 and isinstance(obj, dict) and obj.get("error"), ("no token", st, obj)
    st, obj = curl_post(srv, "/publish/orders-eu", b"{}", [f"Authorization: Bearer {wrong}"])
    assert st == 401, ("bad signature", st, obj)
    st, obj = curl_post(srv, "/publish/secret", b"{}", [f"Authorization: Bearer {tok}"])
    assert st == 403 and isinstance(obj, dict) and obj.get("error"), ("forbidden channel", st, obj)
    st, obj = curl_post(srv, "/publish/orders-eu", b"{}", [f"Authorization: Bearer {nopub}"])
    assert st == 403, ("token without publish", st, obj)
    st, obj = curl_post(srv, "/publish/orders-eu?key=k", b'{"ok":1}', [f"Authorization: Bearer {tok}"])
    assert st == 200, ("allowed", st, obj)
    p, o = check_pos(obj, "ot")
    rec = pu.read_at(mk, "ot", p, o)[0]
    assert rec.value == b'{"ok":1}' and rec.key == b"k"
    st, obj = curl_post(srv, f"/publish/orders-eu?access_token={tok}&key=q", b'{"ok":2}')
    assert st == 200, ("?access_token=", st, obj)
    st, obj = curl_post(srv, f"/publish/secret?access_token={tok}", b'{"no":1}')
    assert st == 403, ("?access_token=, forbidden channel", st, obj)
    sig = tok.rsplit(".", 1)[1]
    assert sig not in srv.log(), "a token from ?access_token= is in the log (docs/security.md: redacted)"
    assert topic_count(mk, "st") == 0
    assert topic_count(mk, "ot") == 2
    # A request's token is not a connection's: no info line per publish
    # (docs/operations.md: `client authenticated`, by=request at debug).
    lines = [ln for ln in srv.log().splitlines() if "client authenticated" in ln]
    assert not lines, f"an info line per POST: {lines[:2]}"


def test_request_token_logged_at_debug(bridge, keyring):
    """With --log-level debug, the POST's accepted token is logged with
    by=request (the info-level test above checks it is not an info line)."""
    mk, srv = bridge({"dt": 1}, "--jwt-secret", keyring.secret, "--publish", "dc=dt", "--log-level", "debug")
    c = au.claims(channels=["*"], sub="poster")
    c["kbridge"]["publish"] = ["*"]
    st, obj = curl_post(srv, "/publish/dc", b"{}", [f"Authorization: Bearer {au.mint('HS256', keyring.good['hmac'], c)}"])
    assert st == 200, (st, obj)
    lines = [ln for ln in srv.log().splitlines() if "client authenticated" in ln]
    assert len(lines) == 1 and " debug " in lines[0] and "by=request" in lines[0] and "sub=poster" in lines[0], lines


def test_cors_preflight_and_post(bridge):
    mk, srv = bridge({"ct": 1}, "--publish", "cc=ct", "--allow-origin", "http://a.example")
    r = srv.http("OPTIONS", "/publish/cc", headers=[
        ("Origin", "http://a.example"), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization, content-type")])
    assert r.status == 204, f"preflight: {r!r}"
    methods = [t.strip().upper() for t in (r.header("Access-Control-Allow-Methods") or "").split(",")]
    assert "POST" in methods, f"Access-Control-Allow-Methods {r.header('Access-Control-Allow-Methods')!r}"
    assert r.header("Access-Control-Allow-Origin") == "http://a.example", r
    allowed_h = (r.header("Access-Control-Allow-Headers") or "").lower()
    assert "authorization" in allowed_h and "content-type" in allowed_h, r
    r = srv.http("OPTIONS", "/publish/nope", headers=[("Origin", "http://a.example"),
                                                      ("Access-Control-Request-Method", "POST")])
    assert r.status == 404, f"preflight for a channel that is not a --publish channel: {r!r}"
    r = srv.http("POST", "/publish/cc", headers=[("Origin", "http://a.example"), ("Content-Type", "application/json"),
                                                 ("Content-Length", "2")], body=b"{}", timeout=10)
    assert r.status == 200, r
    assert r.header("Access-Control-Allow-Origin") == "http://a.example", f"POST answer without CORS: {r!r}"
    r = srv.http("POST", "/publish/cc", headers=[("Origin", "http://evil.example"),
                                                 ("Content-Length", "2")], body=b"{}", timeout=10)
    assert r.header("Access-Control-Allow-Origin") not in ("http://evil.example", "*"), \
        f"a disallowed origin got CORS: {r!r}"


@pytest.mark.one_process("counts /metrics of the one process serving the request")
def test_http_publish_counts_in_metrics(bridge):
    mk, srv = bridge({"mt": 1}, "--publish", "mc=mt")
    for i in range(3):
        st, obj = curl_post(srv, "/publish/mc", b"%d" % i)
        assert st == 200, (st, obj)
    assert pu.published(srv, "mt", "ok") == 3


def test_sigterm_answers_http_publish_in_flight(bridge):
    """SIGTERM with a POST waiting for Kafka (broker down,
    --publish-timeout 10, --drain-timeout 2): it is answered 503 by the
    drain timeout, and kbridge exits 0."""
    import signal
    mk, srv = bridge({"sdt": 1}, "--publish", "sd=sdt", "--publish-timeout", "10", "--drain-timeout", "2")
    st, obj = curl_post(srv, "/publish/sd", b"1")
    assert st == 200, (st, obj)
    mk.down(1)
    c = srv.conn()
    c.send(post("/publish/sd", b'{"inflight":1}'))
    assert c.is_open(0.5) and not c.buf, f"answered while Kafka is down: {c.buf!r}"
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    r = c.read_response(timeout=5)
    took = time.monotonic() - t0
    check_error_body(r, 503, "POST in flight at SIGTERM")
    assert took <= 3.5, f"answered {took:.2f}s after SIGTERM, --drain-timeout 2 (and long before the 10 s publish timeout)"
    rc = srv.wait_exit(6)
    assert rc == 0, f"exit status {rc}\n{srv.log_tail()}"


def test_head_publish_405_without_body(bridge):
    """HEAD /publish/CHANNEL: 405 (Allow: POST, OPTIONS) and, as for every
    HEAD, no content after the head (RFC 9110 §9.3.2)."""
    mk, srv = bridge({"ht": 1}, "--publish", "hc=ht")
    c = srv.conn()
    c.send(build_request("HEAD", "/publish/hc"))
    r = c.read_response(head=True)
    assert r.status == 405, r
    assert sorted(t.strip() for t in (r.header("Allow") or "").split(",")) == ["OPTIONS", "POST"], r
    c.is_open(0.5)
    assert c.buf == b"", f"content after the head of a HEAD answer: {c.buf[:100]!r}"


@pytest.mark.one_process("counts /metrics of the one process serving the request")
def test_http_client_gone_while_waiting(bridge):
    """A POST whose client hangs up while Kafka is down: kbridge survives,
    the publish ends counted as failed, and the next POST works."""
    mk, srv = bridge({"gt": 1}, "--publish", "gc=gt", "--publish-timeout", "1")
    st, obj = curl_post(srv, "/publish/gc", b"0")
    assert st == 200, (st, obj)
    mk.down(1)
    c = srv.conn()
    c.send(post("/publish/gc", b"1"))
    time.sleep(0.2)
    c.close()
    pu.wait_until(lambda: pu.published(srv, "gt", "failed") == 1, 5, "the abandoned POST counted failed")
    mk.up(1)
    assert srv.alive()
    deadline = time.monotonic() + 20
    while True:
        st, obj = curl_post(srv, "/publish/gc", b"2")
        if st == 200 or time.monotonic() > deadline:
            break
    assert st == 200, (st, obj)


@pytest.mark.one_process("the queue is one process's producer; the two connections may land on two workers")
def test_producer_queue_full_429(bridge):
    """librdkafka's queue full (-X queue.buffering.max.messages=1, the
    broker down): a POST gets 429 at once; the queued one 503 at
    --publish-timeout."""
    mk, srv = bridge({"qt": 1}, "--publish", "qc=qt", "-X", "queue.buffering.max.messages=1",
                     "--publish-timeout", "1.5")
    st, obj = curl_post(srv, "/publish/qc", b"0")
    assert st == 200, (st, obj)
    mk.down(1)
    a = srv.conn()
    a.send(post("/publish/qc", b"1"))
    assert a.is_open(0.3) and not a.buf, f"answered while Kafka is down: {a.buf!r}"
    t0 = time.monotonic()
    r = srv.http("POST", "/publish/qc", headers=[("Content-Length", "1")], body=b"2", timeout=5)
    check_error_body(r, 429, "producer queue full")
    assert time.monotonic() - t0 < 1.0, "429 not immediate"
    ra = a.read_response(timeout=5)
    check_error_body(ra, 503, "queued publish, broker down")
    mk.up(1)
    assert topic_count(mk, "qt") == 1


def test_kafka_error_503(bridge):
    """Kafka refuses the record (MESSAGE_TOO_LARGE injected): 503 with a
    JSON error naming Kafka's reason; the connection (its request read
    whole) serves the next POST."""
    mk, srv = bridge({"kt": 1}, "--publish", "kc=kt")
    st, obj = curl_post(srv, "/publish/kc", b"0")
    assert st == 200, (st, obj)
    mk.request_errors(0, 10, 0, 1)
    c = srv.conn()
    c.send(post("/publish/kc", b"1"))
    r = c.read_response(timeout=5)
    body = check_error_body(r, 503, "Kafka error")
    assert "too large" in body["error"].lower(), body
    assert c.is_open(0.2), "connection closed after a 503 (keep-alive expected: the body was read)"
    c.send(post("/publish/kc", b"2"))
    assert c.read_response(timeout=5).status == 200
    assert [rec.value for rec in pu.read_all(mk, "kt")[0]] == [b"0", b"2"]


def tls_post_then_shut(port, ctx, request, close_notify):
    """Over TLS (a MemoryBIO, so the TCP socket stays ours): sends the
    request, then close_notify when asked, then shuts the socket's sending
    side (FIN); returns every byte the server sends back, decrypted."""
    import socket
    import ssl
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")

    def pump():
        data = out.read()
        if data:
            raw.sendall(data)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
            d = raw.recv(65536)
            assert d, "the server closed during the handshake"
            inc.write(d)
    tls.write(request)
    pump()
    if close_notify:
        try:
            tls.unwrap()                  # sends close_notify, then would wait for the server's
        except ssl.SSLWantReadError:
            pass
        pump()
    raw.shutdown(socket.SHUT_WR)
    plain = b""
    while True:
        d = raw.recv(65536)
        if d:
            inc.write(d)
        else:
            inc.write_eof()
        try:
            while True:
                chunk = tls.read(65536)
                if not chunk:
                    break
                plain += chunk
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not d:
            break
    raw.close()
    return plain


@pytest.mark.parametrize("close_notify", [False, True], ids=["fin", "close_notify"])
def test_half_close_after_post_over_tls(mock_kafka, tls_kbridge, pki, close_notify):
    """The half-close above over TLS: the client shuts its side after its
    POST, with a bare FIN or with TLS's close_notify first, and still reads
    the 200 with the record's place, decrypted."""
    mk = mock_kafka({"feed": 1, "ht": 1})
    srv = tls_kbridge("--brokers", mk.bootstrap, "-t", "feed", "--publish", "hc=ht", brokers=False)
    pu.wait_until(lambda: srv.http("GET", "/ready", timeout=1).status == 200, 20, "/ready over https")
    out = tls_post_then_shut(srv.port, pki.context(), post("/publish/hc", b'{"t":1}'), close_notify)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, out
    p, o = check_pos(json.loads(body), "ht")
    assert pu.read_at(mk, "ht", p, o)[0].value == b'{"t":1}'


def test_publish_over_tls(mock_kafka, tls_kbridge, pki):
    """TLS on --listen: curl POSTs a 20 KB body over https; a raw TLS
    client sends the head and the body in several records (the body split
    across reads); a `websockets` client publishes over wss. Each record
    is read back with the exact bytes."""
    mk = mock_kafka({"feed": 1, "tt": 1})
    srv = tls_kbridge("--brokers", mk.bootstrap, "-X", "fetch.wait.max.ms=10", "-t", "feed",
                      "--publish", "tc=tt", brokers=False)
    pu.wait_until(lambda: srv.http("GET", "/ready", timeout=1).status == 200, 20, "/ready over https")
    body = json.dumps({"rows": ["r%05d" % i for i in range(2500)]}).encode()
    p = subprocess.run(["curl", "-sS", "--max-time", "15", "--cacert", pki.ca.cert, "-X", "POST",
                        "--data-binary", "@-", "-w", "\n%{http_code}",
                        f"https://127.0.0.1:{srv.port}/publish/tc?key=tls"],
                       input=body, capture_output=True, timeout=20)
    out, _, code = p.stdout.rpartition(b"\n")
    assert code == b"200", (p.stdout[-300:], p.stderr)
    pos = check_pos(json.loads(out), "tt")
    rec = pu.read_at(mk, "tt", *pos)[0]
    assert rec.value == body and rec.key == b"tls"

    c = srv.conn()
    piece = b'{"split":"' + b"s" * 3000 + b'"}'
    c.send(build_request("POST", "/publish/tc", [("Content-Length", str(len(piece)))]))
    for i in range(0, len(piece), 700):
        time.sleep(0.05)
        c.send(piece[i:i + 700])
    r = c.read_response(timeout=10)
    assert r.status == 200, r
    rec = pu.read_at(mk, "tt", *check_pos(r.json(), "tt"))[0]
    assert rec.value == piece

    ctx = pki.context()

    async def wss():
        import websockets
        async with websockets.connect(f"wss://127.0.0.1:{srv.port}/ws", ssl=ctx, open_timeout=5,
                                      close_timeout=2, ping_interval=None) as ws:
            return await pu.request(ws, '{"type":"publish","channel":"tc","id":"w","data": [1, "\u00e9"] }',
                                    ident="w")
    r = pu.run(wss())
    p_, o_ = pu.check_ack(r, "w", "tt", channel="tc")
    assert pu.read_at(mk, "tt", p_, o_)[0].value == '[1, "\u00e9"]'.encode()
