"""The admin listener, the admin token and the abuse limits
(docs/operations.md#admin-listener, #limits-per-address,
#trusted-proxies): which port serves which endpoint, 401 without the
token, SIGHUP reloading it, the identity column of /stats' client list,
--max-clients-per-ip and --upgrade-rate with client sockets bound to
several loopback addresses (127.0.0.2, 127.0.0.3, ...), --trusted-proxy
naming the address those limits count, the strict upgrade (a field given
twice: 400) and access_token kept out of the log. Peers are raw sockets,
curl and the Python websockets library; no Kafka is needed."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, run_kbridge, settled
from wsutil import WS, Conn, build_request, check_101, get_json, http_request, new_key, upgrade_headers

BEARER_REALM = 'Bearer realm="kbridge-admin"'


def connect_from(port, src, timeout=5.0):
    """A TCP connection to 127.0.0.1:port from source address src."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def upgrade(port, src="127.0.0.1", path="/ws", headers=None, tracker=None):
    """Sends an upgrade from src. Returns (response, WS): the WS is open
    after a 101 (tracked so teardown closes it), None otherwise (the
    connection is then closed here)."""
    key = new_key()
    c = WS(connect_from(port, src))
    c.send(build_request("GET", path, upgrade_headers(key=key, extra=headers)))
    r = c.read_response()
    if r.status != 101:
        c.close()
        return r, None
    check_101(r, key)
    if tracker is not None:
        tracker.track(c)
    return r, c


def metrics(port, headers=None):
    r = http_request(port, "GET", "/metrics", headers=headers)
    assert r.status == 200, r
    return {f.name: f for f in text_string_to_metric_families(r.body.decode())}


def sample(fams, family, **labels):
    for s in fams[family].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {family} {labels}")


def wait_clients(port, n, timeout=5.0, path="/health", headers=None):
    """Waits until the server counts n WebSocket clients."""
    deadline = time.monotonic() + timeout
    while True:
        r = http_request(port, "GET", path, headers=headers)
        got = r.json()["clients"]
        if got == n:
            return
        assert time.monotonic() < deadline, f"{got} clients after {timeout}s, expected {n}"
        time.sleep(0.05)


def log_events(srv, msg):
    out = []
    for line in srv.log().splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            if e.get("msg") == msg:
                out.append(e)
    return out


def wait_log(srv, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{srv.log_tail()}"
        time.sleep(0.05)


def token_file(tmp_path, content, name="admin-token"):
    p = tmp_path / name
    p.write_bytes(content)
    return str(p)


# ---------------------------------------------------------------- admin listener

def test_admin_listener_serves_the_admin_endpoints_and_the_main_port_no_longer(kbridge):
    admin = free_port()
    srv = kbridge("--admin-listen", f"127.0.0.1:{admin}")
    assert f"admin_listen=127.0.0.1:{admin}" in srv.log()
    ws = srv.ws()
    # The main port: no admin endpoints, everything else as before.
    for path in ("/metrics", "/stats", "/ws/stats"):
        for method in ("GET", "HEAD"):
            r = http_request(srv.port, method, path)
            assert r.status == 404, (method, path, r)
        assert http_request(srv.port, "GET", path).json() == {"error": "not found"}
    assert http_request(srv.port, "OPTIONS", "/metrics").status == 404
    for path in ("/health", "/ready", "/docs", "/", "/openapi.json", "/asyncapi.json"):
        assert http_request(srv.port, "GET", path).status in (200, 503), path
    # /ws/stats stays no upgrade on the main port: a 404, not a 101.
    r, _ = upgrade(srv.port, path="/ws/stats")
    assert r.status == 404, r
    # The admin port: the admin endpoints and the probes, nothing else.
    assert settled(lambda: sample(metrics(admin), "kbridge_clients"), 1) == 1
    for path in ("/stats", "/ws/stats"):
        st = get_json(admin, path)
        assert st["clients"] == 1 and len(st["client_list"]) == 1
    assert get_json(admin, "/health")["clients"] == 1
    assert http_request(admin, "GET", "/ready").status in (200, 503)
    assert http_request(admin, "HEAD", "/metrics").status == 200
    for path in ("/docs", "/", "/index.html", "/openapi.json", "/asyncapi.json", "/nope"):
        assert http_request(admin, "GET", path).status == 404, path
    # No WebSockets there, on any /ws path.
    for path in ("/ws", "/ws/crypto"):
        r, _ = upgrade(admin, path=path)
        assert r.status == 404, r
    # Keep-alive works there as on the main port.
    c = Conn.open(admin)
    try:
        for path in ("/metrics", "/stats", "/health"):
            c.send(build_request("GET", path))
            assert c.read_response().status == 200
    finally:
        c.close()
    ws.ping_ok()


@pytest.mark.one_process("--max-clients is split between the workers, and the kernel picks the worker")
def test_admin_connections_take_no_client_places(kbridge):
    admin = free_port()
    srv = kbridge("--admin-listen", f"127.0.0.1:{admin}", "--max-clients", "1", "--max-clients-per-ip", "1")
    idle = [Conn.open(admin) for _ in range(20)]
    try:
        ws = srv.ws()
        # Admin connections are no clients: /health counts the one WebSocket.
        assert get_json(admin, "/health")["clients"] == 1
        r, _ = upgrade(srv.port)
        assert r.status == 503, r          # --max-clients is full with one
        for c in idle:                      # and every admin connection still answers
            c.send(build_request("GET", "/health"))
            assert c.read_response().status == 200
        ws.ping_ok()
    finally:
        for c in idle:
            c.close()


def test_admin_listen_address_in_use_exits_1(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        p = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", f"127.0.0.1:{free_port()}",
                         "--admin-listen", f"127.0.0.1:{busy.getsockname()[1]}"])
    finally:
        busy.close()
    assert p.returncode == 1, p
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "cannot listen on 127.0.0.1:" in lines[0], lines


# ---------------------------------------------------------------- admin token

def check_401(r, invalid):
    assert r.status == 401, r
    assert r.header("WWW-Authenticate", "").startswith(BEARER_REALM), r
    assert ('error="invalid_token"' in r.header("WWW-Authenticate")) == invalid, r
    assert r.header("Content-Type", "").startswith("application/json"), r
    assert set(r.json()) == {"error"}, r


@pytest.mark.parametrize("admin_port", [True, False], ids=["admin-listen", "main-port"])
def test_admin_token_required_on_whichever_port_serves_the_admin_endpoints(kbridge, tmp_path, admin_port):
    tok = token_file(tmp_path, b"s3cr3t-Token.1\n")
    args = ["--admin-token", tok]
    admin = free_port()
    if admin_port:
        args += ["--admin-listen", f"127.0.0.1:{admin}"]
    srv = kbridge(*args)
    port = admin if admin_port else srv.port
    good = [("Authorization", "Bearer s3cr3t-Token.1")]
    for path in ("/metrics", "/stats", "/ws/stats"):
        check_401(http_request(port, "GET", path), invalid=False)
        check_401(http_request(port, "GET", path, headers=[("Authorization", "Basic czNjcjN0")]), invalid=False)
        check_401(http_request(port, "GET", path, headers=[("Authorization", "Bearer ")]), invalid=False)
        for wrong in ("Bearer s3cr3t-Token.2", "Bearer s3cr3t-Token.1x", "Bearer s3cr3t", "Bearer x"):
            check_401(http_request(port, "GET", path, headers=[("Authorization", wrong)]), invalid=True)
        assert http_request(port, "GET", path, headers=good).status == 200, path
        # The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
        assert http_request(port, "GET", path, headers=[("Authorization", "bearer s3cr3t-Token.1")]).status == 200
        check_401(http_request(port, "GET", path, headers=[("Authorization", "Bearer S3CR3T-TOKEN.1")]), invalid=True)
        # HEAD is a GET without the body: the same rule.
        assert http_request(port, "HEAD", path).status == 401
    # Two Authorization lines are not a token.
    check_401(http_request(port, "GET", "/stats", headers=good + good), invalid=True)
    # The probes stay open for orchestrators.
    assert http_request(port, "GET", "/health").status == 200
    assert http_request(port, "GET", "/ready").status in (200, 503)
    if not admin_port:
        assert http_request(port, "GET", "/docs").status == 200
    # curl, as an operator would ask.
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                          "Authorization: Bearer s3cr3t-Token.1", f"http://127.0.0.1:{port}/metrics"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == "200", out
    out = subprocess.run(["curl", "-s", "-i", f"http://127.0.0.1:{port}/metrics"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.startswith("HTTP/1.1 401"), out.stdout
    assert f"WWW-Authenticate: {BEARER_REALM}" in out.stdout, out.stdout
    # The token never reaches the log.
    assert "s3cr3t" not in srv.log()


@pytest.mark.parametrize("content,why", [
    (b"", "empty"), (b"\n", "empty"), (b"two words\n", "visible"), (b"a\nb\n", "visible"),
])
def test_admin_token_file_must_hold_a_token(tmp_path, content, why):
    p = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", f"127.0.0.1:{free_port()}",
                     "--admin-token", token_file(tmp_path, content)])
    assert p.returncode == 2, p
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--admin-token" in lines[0] and why in lines[0], lines


def test_admin_token_file_missing_exits_2(tmp_path):
    p = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", f"127.0.0.1:{free_port()}",
                     "--admin-token", str(tmp_path / "nope")])
    assert p.returncode == 2, p
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--admin-token" in lines[0] and "nope" in lines[0], lines


def test_sighup_reloads_the_admin_token(kbridge, tmp_path):
    tok = token_file(tmp_path, b"first\n")
    admin = free_port()
    srv = kbridge("--admin-listen", f"127.0.0.1:{admin}", "--admin-token", tok)
    first = [("Authorization", "Bearer first")]
    second = [("Authorization", "Bearer second")]
    ws = srv.ws()
    assert http_request(admin, "GET", "/stats", headers=first).status == 200
    assert http_request(admin, "GET", "/stats", headers=second).status == 401
    with open(tok, "wb") as f:
        f.write(b"second")               # no newline this time: also fine
    srv.signal(signal.SIGHUP)
    wait_log(srv, "admin token reloaded")
    assert http_request(admin, "GET", "/stats", headers=first).status == 401
    assert http_request(admin, "GET", "/stats", headers=second).status == 200
    # A file that cannot serve keeps the token loaded before.
    with open(tok, "wb") as f:
        f.write(b"")
    srv.signal(signal.SIGHUP)
    wait_log(srv, "admin token not reloaded")
    assert http_request(admin, "GET", "/stats", headers=second).status == 200
    os.unlink(tok)
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while srv.log().count("admin token not reloaded") < 2:
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.05)
    assert http_request(admin, "GET", "/stats", headers=second).status == 200
    # Nothing else changed: the client is still served, the process runs.
    assert srv.alive()
    ws.ping_ok()
    assert "SIGHUP ignored" not in srv.log()


# ---------------------------------------------------------------- /stats

def test_client_list_has_identity_and_peer(kbridge):
    admin = free_port()
    srv = kbridge("--admin-listen", f"127.0.0.1:{admin}")
    _, ws = upgrade(srv.port, src="127.0.0.9", tracker=srv)
    settled(lambda: len(get_json(admin, "/stats")["client_list"]), 1)
    st = get_json(admin, "/stats")
    assert len(st["client_list"]) == 1
    entry = st["client_list"][0]
    assert "identity" in entry and entry["identity"] is None, entry
    assert entry["peer"].startswith("127.0.0.9:"), entry
    ws.ping_ok()


def test_without_new_flags_stats_and_metrics_are_as_before(kbridge):
    srv = kbridge()
    ws = srv.ws()
    # Open on the main port, no token asked.
    settled(lambda: get_json(srv.port, "/stats")["clients"], 1)
    st = get_json(srv.port, "/stats")
    assert st.keys() == get_json(srv.port, "/ws/stats").keys()
    assert st["clients"] == 1
    assert st["rejected"] == {"per_ip": 0, "upgrade_rate": 0, "auth_timeout": 0}
    assert st["auth_failures"] == {k: 0 for k in (
        "malformed", "algorithm", "unknown_key", "signature", "expired", "not_yet_valid",
        "missing_exp", "audience", "issuer", "no_memory")}
    assert set(st["connections"]) == {"accepted", "rejected_full", "rejected_origin", "rejected_bad"}
    assert st["client_list"][0]["identity"] is None and st["client_list"][0]["peer"].startswith("127.0.0.1:")
    text = http_request(srv.port, "GET", "/metrics").body.decode()
    fams = metrics(srv.port)
    # The existing series, unchanged.
    results = sorted(s.labels["result"] for s in fams["kbridge_connections"].samples)
    assert results == ["accepted", "rejected_bad_request", "rejected_full", "rejected_origin"], results
    assert sample(fams, "kbridge_connections", result="accepted") == 1
    # The new ones, with HELP and TYPE, every reason present at 0.
    for fam, reasons in (("kbridge_rejected", ["auth_timeout", "per_ip", "upgrade_rate"]),
                         ("kbridge_auth_failures", sorted(st["auth_failures"]))):
        assert fams[fam].type == "counter" and fams[fam].documentation, fam
        assert sorted(s.labels["reason"] for s in fams[fam].samples) == reasons
        assert all(s.value == 0 for s in fams[fam].samples)
        assert f"# TYPE {fam}_total counter" in text and f"# HELP {fam}_total " in text
    # Many upgrades from one address: no limit without the flags.
    many = [upgrade(srv.port, src="127.0.0.2", tracker=srv)[1] for _ in range(12)]
    assert all(many)
    wait_clients(srv.port, 13)
    ws.ping_ok()


# ---------------------------------------------------------------- per-address limits

@pytest.mark.one_process("limits per address are kept by each worker for its own connections")
def test_max_clients_per_ip(kbridge):
    srv = kbridge("--max-clients-per-ip", "2")
    a1 = upgrade(srv.port, "127.0.0.2", tracker=srv)[1]
    a2 = upgrade(srv.port, "127.0.0.2", tracker=srv)[1]
    assert a1 and a2
    r, none = upgrade(srv.port, "127.0.0.2")
    assert r.status == 429 and none is None, r
    assert r.json() == {"error": "too many connections from this address"}
    assert r.header("Retry-After") is None
    # Other addresses are not affected.
    b = [upgrade(srv.port, "127.0.0.3", tracker=srv)[1] for _ in range(2)]
    assert all(b)
    assert upgrade(srv.port, "127.0.0.3")[0].status == 429
    assert upgrade(srv.port, "127.0.0.4", tracker=srv)[1]
    # Plain requests are no clients: never limited.
    for _ in range(5):
        c = Conn(connect_from(srv.port, "127.0.0.2"))
        c.send(build_request("GET", "/health"))
        assert c.read_response().status == 200
        c.close()
    # Closing a client frees its place once the server has seen it go.
    a1.close()
    wait_clients(srv.port, 4)
    a3 = upgrade(srv.port, "127.0.0.2", tracker=srv)[1]
    assert a3, "the place a closed client left was not freed"
    assert upgrade(srv.port, "127.0.0.2")[0].status == 429
    # A clean close frees it too.
    a2.send_close(1000)
    a2.expect_close(1000, reply=False)
    wait_clients(srv.port, 4)
    assert upgrade(srv.port, "127.0.0.2", tracker=srv)[1]
    st = get_json(srv.port, "/stats")
    assert st["rejected"]["per_ip"] == 3 and st["rejected"]["upgrade_rate"] == 0, st["rejected"]
    assert sample(metrics(srv.port), "kbridge_rejected", reason="per_ip") == 3
    # A 429 is no upgrade attempt of another kind.
    assert st["connections"]["rejected_full"] == 0 and st["connections"]["rejected_bad"] == 0
    for c in (a3, *b):
        c.ping_ok()


@pytest.mark.one_process("limits per address are kept by each worker for its own connections")
def test_upgrade_rate_429_with_retry_after_then_recovers(kbridge):
    srv = kbridge("--upgrade-rate", "1")          # burst 2
    for _ in range(2):
        r, c = upgrade(srv.port, "127.0.0.5")
        assert c is not None, r
        c.close()
    r, _ = upgrade(srv.port, "127.0.0.5")
    assert r.status == 429, r
    assert r.json() == {"error": "too many upgrades from this address"}
    retry = r.header("Retry-After")
    assert retry is not None and retry.isdigit() and 1 <= int(retry) <= 2, r
    # Another address has its own bucket.
    assert upgrade(srv.port, "127.0.0.6", tracker=srv)[1]
    # After the time it said, the address may upgrade again.
    time.sleep(int(retry) + 0.1)
    r, c = upgrade(srv.port, "127.0.0.5", tracker=srv)
    assert c is not None, r
    st = get_json(srv.port, "/stats")
    assert st["rejected"] == {"per_ip": 0, "upgrade_rate": 1, "auth_timeout": 0}, st["rejected"]
    assert sample(metrics(srv.port), "kbridge_rejected", reason="upgrade_rate") == 1
    c.ping_ok()


@pytest.mark.one_process("limits per address are kept by each worker for its own connections")
def test_limits_hold_for_the_websockets_library(kbridge):
    """A real client library sees the 429 as a refused handshake."""
    srv = kbridge("--max-clients-per-ip", "1")

    async def run():
        sock = connect_from(srv.port, "127.0.0.7")
        sock.setblocking(False)
        first = await websockets.connect(f"ws://127.0.0.1:{srv.port}/ws", sock=sock, open_timeout=5)
        await first.send(json.dumps({"type": "ping", "id": 1}))
        assert json.loads(await asyncio.wait_for(first.recv(), 5))["type"] == "pong"
        sock2 = connect_from(srv.port, "127.0.0.7")
        sock2.setblocking(False)
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(f"ws://127.0.0.1:{srv.port}/ws", sock=sock2, open_timeout=5)
        assert e.value.status_code == 429
        sock3 = connect_from(srv.port, "127.0.0.8")
        sock3.setblocking(False)
        other = await websockets.connect(f"ws://127.0.0.1:{srv.port}/ws", sock=sock3, open_timeout=5)
        await other.close()
        await first.close()

    asyncio.run(run())


# ---------------------------------------------------------------- trusted proxies

@pytest.mark.one_process("limits per address are kept by each worker for its own connections")
def test_trusted_proxy_names_the_client_address(kbridge):
    admin = free_port()
    srv = kbridge("--trusted-proxy", "127.0.0.1,127.0.0.100/31", "--max-clients-per-ip", "1",
                  "--admin-listen", f"127.0.0.1:{admin}", "--log-format", "json")
    xff = lambda v: [("X-Forwarded-For", v)]
    # From a trusted peer, the rightmost untrusted entry is the client.
    p1 = upgrade(srv.port, "127.0.0.1", headers=xff("198.51.100.1, 203.0.113.7, 127.0.0.101"), tracker=srv)[1]
    assert p1
    # ... so the limit is per forwarded address, not per proxy:
    r, _ = upgrade(srv.port, "127.0.0.100", headers=xff("203.0.113.7"))
    assert r.status == 429, r
    p2 = upgrade(srv.port, "127.0.0.1", headers=xff("203.0.113.8"), tracker=srv)[1]
    assert p2
    # X-Real-IP, when a trusted proxy sends it, decides.
    p3 = upgrade(srv.port, "127.0.0.1", headers=[("X-Real-IP", "2001:db8::9"),
                                                 ("X-Forwarded-For", "203.0.113.7")], tracker=srv)[1]
    assert p3
    # From an untrusted peer the headers are ignored: it is itself.
    u1 = upgrade(srv.port, "127.0.0.5", headers=xff("203.0.113.7"), tracker=srv)[1]
    assert u1
    r, _ = upgrade(srv.port, "127.0.0.5", headers=xff("203.0.113.99"))
    assert r.status == 429, r
    # A bad value: the proxy stays the address (and has no place left now).
    bad = upgrade(srv.port, "127.0.0.1", headers=xff("not-an-address"), tracker=srv)[1]
    assert bad
    r, _ = upgrade(srv.port, "127.0.0.1", headers=xff("unknown"))
    assert r.status == 429, r
    peers = sorted(c["peer"].rsplit(":", 1)[0] for c in get_json(admin, "/stats")["client_list"])
    assert peers == sorted(["203.0.113.7", "203.0.113.8", "2001:db8::9", "127.0.0.5", "127.0.0.1"]), peers
    # The log names the client address too.
    wait_log(srv, "websocket open")
    opened = [e["peer"].rsplit(":", 1)[0] for e in log_events(srv, "websocket open")]
    assert "203.0.113.7" in opened and "2001:db8::9" in opened, opened
    # The forwarded address is freed like any other when its client goes.
    p1.close()
    wait_clients(srv.port, 4)
    assert upgrade(srv.port, "127.0.0.100", headers=xff("203.0.113.7"), tracker=srv)[1]
    for c in (p2, p3, u1, bad):
        c.ping_ok()


# ---------------------------------------------------------------- strict upgrade

@pytest.mark.parametrize("field", ["Sec-WebSocket-Key", "Sec-WebSocket-Version", "Upgrade", "Host"])
def test_a_field_given_twice_is_400(kbridge, field):
    srv = kbridge()
    before = get_json(srv.port, "/stats")["connections"]["rejected_bad"]
    hdrs = [("Host", "127.0.0.1")] + upgrade_headers()
    extra = {"Sec-WebSocket-Key": new_key(), "Sec-WebSocket-Version": "13",
             "Upgrade": "websocket", "Host": "127.0.0.1"}[field]
    hdrs.append((field, extra))
    c = Conn.open(srv.port)
    try:
        c.send(build_request("GET", "/ws", hdrs))
        r = c.read_response()
        assert r.status == 400, r
        assert "error" in r.json()
        assert c.wait_closed() in ("eof", "reset")
    finally:
        c.close()
    after = get_json(srv.port, "/stats")["connections"]["rejected_bad"]
    assert after == before + (0 if field == "Host" else 1)
    assert get_json(srv.port, "/health")["clients"] == 0


def test_two_host_lines_are_400_on_any_request(kbridge):
    srv = kbridge()
    for path in ("/health", "/stats", "/nope"):
        c = Conn.open(srv.port)
        try:
            c.send(build_request("GET", path, [("Host", "a.example"), ("Host", "b.example")]))
            r = c.read_response()
            assert r.status == 400 and r.json() == {"error": "more than one Host header"}, r
            assert c.wait_closed() in ("eof", "reset")
        finally:
            c.close()
    # One Host line is fine, as is a header that only starts like it.
    assert http_request(srv.port, "GET", "/health", headers=[("Host", "a"), ("Hostname", "b")]).status == 200


# ---------------------------------------------------------------- logs

def test_access_token_is_redacted_from_the_log(kbridge):
    srv = kbridge("--log-format", "json")
    secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.SIGNATUREsecret"
    _, ws = upgrade(srv.port, path=f"/ws?format=json&access_token={secret}&snapshot=0&access_token=again",
                    tracker=srv)
    assert ws
    ws.ping_ok()
    ws.close()
    wait_log(srv, "websocket closed")
    opened = log_events(srv, "websocket open")
    assert len(opened) == 1, opened
    assert opened[0]["path"] == "/ws"
    assert opened[0]["query"] == "format=json&access_token=REDACTED&snapshot=0&access_token=REDACTED", opened
    log = srv.log()
    assert secret not in log and "SIGNATURE" not in log and "again" not in log
    # The text format too.
    srv2 = kbridge()
    _, ws2 = upgrade(srv2.port, path=f"/ws/crypto?access_token={secret}", tracker=srv2)
    ws2.ping_ok()
    wait_log(srv2, "websocket open")
    assert secret not in srv2.log() and "access_token=REDACTED" in srv2.log()
