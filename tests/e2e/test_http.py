"""HTTP/1.1 side of kbridge (docs/protocol.md#endpoints-and-upgrade and
#http-errors, docs/operations.md#health-and-readiness), no Kafka."""
import json
import time

import pytest

from conftest import settled
from wsutil import (Conn, WS, build_request, http_request, upgrade_headers, new_key,
                    check_101)


def is_json_type(r):
    ct = (r.header("Content-Type") or "").lower()
    return ct.split(";")[0].strip() == "application/json"


# ---------------------------------------------------------------- /health

def test_health_ok(kbridge):
    srv = kbridge()
    r = srv.http("GET", "/health")
    assert r.status == 200, r
    assert is_json_type(r), r
    h = r.json()
    assert h["status"] == "ok"
    assert isinstance(h["clients"], int) and not isinstance(h["clients"], bool) and h["clients"] == 0
    assert isinstance(h["uptime_s"], (int, float)) and not isinstance(h["uptime_s"], bool)
    assert 0 <= h["uptime_s"] < 60
    # the broker 127.0.0.1:1 never answers: "down" (within 10 s at most,
    # docs/operations.md#health-and-readiness)
    deadline = time.monotonic() + 11
    while h["kafka"] != "down" and time.monotonic() < deadline:
        time.sleep(0.5)
        h = srv.health()
    assert h["kafka"] == "down", h


def test_health_counts_websocket_clients_only(server):
    a, b = server.ws(), server.ws()
    plain = server.conn()       # an idle plain HTTP connection is no client
    plain.send(build_request("GET", "/nope"))
    assert plain.read_response().status == 404
    assert settled(lambda: server.health()["clients"], 2) == 2
    a.send_close(1000)
    a.expect_close(1000, reply=False)
    deadline = time.monotonic() + 3
    while server.health()["clients"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.health()["clients"] == 1
    b.ping_ok()


def test_health_uptime_advances(server):
    t0 = server.health()["uptime_s"]
    time.sleep(1.6)
    t1 = server.health()["uptime_s"]
    assert t1 >= t0 + 1, (t0, t1)


def test_head_health_same_headers_no_body(server):
    c = server.conn()
    c.send(build_request("GET", "/health"))
    g = c.read_response()
    c.send(build_request("HEAD", "/health"))
    h = c.read_response(head=True)
    assert h.status == 200, h
    names = lambda r: sorted(k.lower() for k, _ in r.headers if k.lower() != "date")
    assert names(h) == names(g), (g.headers, h.headers)
    assert h.header("Content-Type") == g.header("Content-Type")
    if h.header("Content-Length") is not None:
        assert abs(int(h.header("Content-Length")) - int(g.header("Content-Length"))) <= 1
    # no body bytes: the next response starts right after HEAD's headers
    c.send(build_request("GET", "/health"))
    assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 "), c.buf[:100]
    r = c.read_response()
    assert r.status == 200 and r.json()["status"] == "ok"


def test_health_query_string_ignored_for_routing(server):
    r = server.http("GET", "/health?verbose=1")
    assert r.status == 200 and r.json()["status"] == "ok"


# ---------------------------------------------------------------- 404 / 405

@pytest.mark.parametrize("path", ["/nope", "/healthz", "/health/x", "/wsx", "/ws2"])
def test_unknown_path_404(server, path):
    r = server.http("GET", path)
    assert r.status == 404, r
    assert is_json_type(r), r
    assert r.json() == {"error": "not found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_405(server, method):
    r = server.http(method, "/health", headers={"Content-Length": "0"})
    assert r.status == 405, r
    allow = sorted(t.strip() for t in (r.header("Allow") or "").split(","))
    assert allow == ["GET", "HEAD", "OPTIONS"], f"Allow: {r.header('Allow')!r}"


def test_405_with_body_does_not_desync(server):
    """A POST body must not be parsed as the next request: either it is
    skipped and the next request is answered, or the connection closes."""
    c = server.conn()
    c.send(build_request("POST", "/health", {"Content-Length": "22"},
                         body=b"GET /nope HTTP/1.1\r\n\r\n") + build_request("GET", "/health"))
    r = c.read_response()
    assert r.status == 405, r
    try:
        r2 = c.read_response()
    except Exception:
        return       # closed after 405: acceptable
    assert r2.status == 200 and r2.json()["status"] == "ok", f"body treated as a request: {r2!r}"


# ---------------------------------------------------------------- malformed

@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /health\r\n\r\n",
    b"GET /health HTTP/1.1 extra\r\n\r\n",
    b"GET /health FOO/1.1\r\n\r\n",
    b"GET  HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",   # TLS hello
], ids=["no-spaces", "no-version", "extra-token", "bad-version", "empty-target", "tls"])
def test_malformed_request_line_400_close(server, raw):
    c = server.conn()
    c.send(raw)
    r = c.read_response()
    assert r.status == 400, r
    c.wait_closed(3)


@pytest.mark.parametrize("header", [
    b"Host 127.0.0.1",            # no colon
    b"Host : 127.0.0.1",          # space before colon (RFC 7230 §3.2.4: 400)
    b": novalue",                 # empty name
    b"X-Bad\x00Name: v",          # NUL in the name
    b"X-Nul: a\x00b",             # NUL in the value
], ids=["no-colon", "space-before-colon", "empty-name", "nul-name", "nul-value"])
def test_bad_header_line_400_close(server, header):
    c = server.conn()
    c.send(b"GET /health HTTP/1.1\r\nAccept: */*\r\n" + header + b"\r\n\r\n")
    r = c.read_response()
    assert r.status == 400, r
    c.wait_closed(3)


@pytest.mark.parametrize("shape", ["one-big-header", "many-headers", "long-target"])
def test_headers_over_8k_431_close(server, shape):
    c = server.conn()
    if shape == "one-big-header":
        req = build_request("GET", "/health", {"X-Big": "a" * 9000})
    elif shape == "many-headers":
        req = build_request("GET", "/health", [(f"X-H{i}", "b" * 90) for i in range(100)])
    else:
        req = build_request("GET", "/health?" + "q" * 9000)
    assert len(req) > 8192
    try:
        c.send(req)
    except OSError:
        pass         # the server may answer and close before reading it all
    r = c.read_response()
    assert r.status == 431, r
    c.wait_closed(3)


@pytest.mark.parametrize("shape", ["one-big-header", "few-big-headers"])
def test_headers_just_under_8k_accepted(server, shape):
    if shape == "one-big-header":
        req = build_request("GET", "/health", {"X-Big": "a" * 7900})
    else:
        req = build_request("GET", "/health", [(f"X-H{i}", "c" * 980) for i in range(8)])
    assert 7800 < len(req) < 8100
    c = server.conn()
    c.send(req)
    r = c.read_response()
    assert r.status == 200, r


def test_many_small_headers_under_8k_accepted(server):
    """The header block is limited by bytes (8 KiB), not by line count
    (docs/protocol.md#http-errors: 431 only beyond 256 lines)."""
    req = build_request("GET", "/health", [(f"X-H{i}", "c" * 8) for i in range(100)])
    assert len(req) < 2500
    c = server.conn()
    c.send(req)
    r = c.read_response()
    assert r.status == 200, r


def test_request_byte_by_byte(server):
    c = server.conn()
    for b in build_request("GET", "/health", {"User-Agent": "slow-but-in-time"}):
        c.send(bytes([b]))
        time.sleep(0.002)
    r = c.read_response()
    assert r.status == 200 and r.json()["status"] == "ok"


# ---------------------------------------------------------------- keep-alive

def test_keep_alive_sequential(server):
    c = server.conn()
    for path, status in [("/health", 200), ("/nope", 404), ("/health", 200), ("/x", 404)]:
        c.send(build_request("GET", path))
        r = c.read_response()
        assert r.status == status, (path, r)
        assert "close" not in r.tokens("Connection")
    assert c.is_open()


def test_keep_alive_pipelined_in_order(server):
    c = server.conn()
    c.send(build_request("GET", "/health") + build_request("GET", "/nope")
           + build_request("HEAD", "/health") + build_request("GET", "/health?n=5")
           + build_request("DELETE", "/health"))
    rs = [c.read_response(), c.read_response(), c.read_response(head=True),
          c.read_response(), c.read_response()]
    assert [r.status for r in rs] == [200, 404, 200, 200, 405]
    assert rs[0].json()["status"] == "ok"
    assert rs[1].json() == {"error": "not found"}
    assert rs[3].json()["status"] == "ok"


def test_connection_close_honoured(server):
    c = server.conn()
    c.send(build_request("GET", "/health", {"Connection": "close"}))
    r = c.read_response()
    assert r.status == 200
    c.wait_closed(3)


def test_http10_closes(server):
    c = server.conn()
    c.send(b"GET /health HTTP/1.0\r\n\r\n")
    r = c.read_response()
    assert r.status == 200, r
    assert r.json()["status"] == "ok"
    c.wait_closed(3)


# ---------------------------------------------------------------- upgrade errors

@pytest.mark.parametrize("path", ["/ws", "/ws/crypto"])
def test_ws_without_upgrade_426(server, path):
    r = server.http("GET", path)
    assert r.status == 426, r
    assert "websocket" in r.tokens("Upgrade"), r


def test_ws_version_8_426(server):
    r = server.http("GET", "/ws", headers=upgrade_headers(version="8"))
    assert r.status == 426, r
    assert [v.strip() for v in (r.header("Sec-WebSocket-Version") or "").split(",")] == ["13"], r


@pytest.mark.parametrize("key", [
    None,                                   # missing
    "",                                     # empty
    "abc",                                  # not 16 bytes
    "AAECAwQFBgcICQoLDA0O",                 # 15 bytes, unpadded
    "AAECAwQFBgcICQoLDA0ODw",               # 16 bytes but unpadded (not canonical base64 of length 24)
    "AAECAwQFBgcICQoLDA0ODxA=",             # 17 bytes
    "!!!!!!!!!!!!!!!!!!!!!!==",             # 24 chars, not base64
    "AAECAwQFBgcICQoLDA0ODw==AAAA",         # trailing garbage
], ids=["missing", "empty", "short", "15-bytes", "unpadded", "17-bytes", "not-base64", "trailing"])
def test_bad_websocket_key_400(server, key):
    h = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")]
    if key is not None:
        h.append(("Sec-WebSocket-Key", key))
    r = server.http("GET", "/ws", headers=h)
    assert r.status == 400, r


def test_good_key_and_header_variants_upgrade(server):
    """Header names and the Upgrade/Connection tokens are case-insensitive,
    and Connection may list several tokens (RFC 6455 §4.2.1)."""
    key = new_key()
    c = server.conn()
    c.send(build_request("GET", "/ws", [("upgrade", "WebSocket"), ("CONNECTION", "keep-alive, Upgrade"),
                                        ("sec-websocket-key", key), ("SEC-WEBSOCKET-VERSION", "13")]))
    r = c.read_response(head=True)
    check_101(r, key)


# ---------------------------------------------------------------- origin

@pytest.mark.parametrize("origin,status", [
    ("http://evil.example", 403),
    ("http://a.example:80", 403),           # exact match only
    ("https://a.example", 403),
    ("http://a.example", 101),
    ("https://b.example:8443", 101),
    (None, 101),
])
def test_allow_origin(kbridge, origin, status):
    srv = kbridge("--allow-origin", "http://a.example,https://b.example:8443")
    key = new_key()
    c = srv.conn()
    c.send(build_request("GET", "/ws", upgrade_headers(key=key, origin=origin)))
    r = c.read_response(head=(status == 101))
    assert r.status == status, r
    if status == 101:
        check_101(r, key)


def test_allow_origin_default_any(server):
    key = new_key()
    c = server.conn()
    c.send(build_request("GET", "/ws", upgrade_headers(key=key, origin="https://anything.example")))
    check_101(c.read_response(head=True), key)


# ---------------------------------------------------------------- paths

@pytest.mark.parametrize("path", ["/ws/stats", "/ws/stats?x=1"])
def test_ws_stats_is_never_an_upgrade(server, path):
    c = server.conn()
    c.send(build_request("GET", path, upgrade_headers()))
    r = c.read_response()
    assert r.status != 101, r
    assert r.status == 200, r
    assert isinstance(r.json(), dict)


@pytest.mark.parametrize("path", ["/stats", "/ws/stats"])
def test_stats_json(server, path):
    r = server.http("GET", path)
    assert r.status == 200, r
    assert is_json_type(r)
    s = r.json()
    assert s["clients"] == 0, s


@pytest.mark.parametrize("path", ["/ws", "/ws/", "/ws/anything", "/ws/crypto", "/ws/a/b", "/ws?format=json",
                                  "/ws/stats2", "/ws/statsx"])
def test_ws_paths_upgrade(server, path):
    c = server.ws(path)
    c.ping_ok()


# ---------------------------------------------------------------- max clients

@pytest.mark.one_process("--max-clients is split between the workers, and the kernel picks the worker")
def test_max_clients_503_then_room_again(kbridge):
    srv = kbridge("--max-clients", "3")
    clients = [srv.ws() for _ in range(3)]
    r = srv.http("GET", "/ws", headers=upgrade_headers())
    assert r.status == 503, r
    assert srv.health()["clients"] == 3
    clients[0].send_close(1000)
    clients[0].expect_close(1000, reply=False)
    deadline = time.monotonic() + 3
    while True:
        r = srv.http("GET", "/ws", headers=upgrade_headers())
        if r.status == 101 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 101, r
    # plain HTTP still served while full
    assert srv.health()["clients"] == 3 or srv.health()["clients"] == 2
    for c in clients[1:]:
        c.ping_ok()


# ---------------------------------------------------------------- slowloris

@pytest.mark.one_process("--max-clients is split between the workers, and the kernel picks the worker")
def test_slowloris_closed_after_header_timeout(kbridge):
    srv = kbridge("--header-timeout", "2", "--max-clients", "1")
    slow = srv.conn()
    idle = srv.conn()           # sends nothing at all
    t0 = time.monotonic()
    slow.send(b"GET /health HTTP/1.1\r\n")
    closed_at = None
    i = 0
    while time.monotonic() - t0 < 6:
        try:
            slow.send(f"X-Slow-{i}: x\r\n".encode())
        except OSError:
            closed_at = time.monotonic()
            break
        i += 1
        if not slow.is_open(0.4):
            closed_at = time.monotonic()
            break
        if i == 2:
            # while the slow connections are open they are not clients
            assert srv.health()["clients"] == 0
            ws = srv.ws()       # --max-clients 1 is still free for a real client
            ws.ping_ok()
            ws.send_close(1000)
            ws.expect_close(1000, reply=False)
    assert closed_at is not None, "slowloris connection still open after 6 s with --header-timeout 2"
    elapsed = closed_at - t0
    assert 1.5 <= elapsed <= 4.5, f"closed after {elapsed:.1f}s, --header-timeout 2"
    # whatever the slow one got (a 408 or nothing), it is closed; the idle one too
    idle_deadline = time.monotonic() + 2.5
    while idle.is_open(0.2) and time.monotonic() < idle_deadline:
        pass
    assert not idle.is_open(0.1), "idle connection without a request still open past --header-timeout"
    assert srv.health()["status"] == "ok"
