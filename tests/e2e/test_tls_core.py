"""TLS on the main listener (issue 14), the core: wss and https
from real TLS peers (Python's websockets and ssl, curl, openssl s_client),
TLS 1.2 / 1.3 / ALPN, peers that do not speak TLS, mutual TLS, and the pair
reloaded on SIGHUP while a connection stays open. The certificates come
from the `tls_certs` fixture (conftest.py): a test CA, ECDSA P-256."""
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import websockets

import wsutil
from conftest import free_port, https_get


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _subscribe(port, ctx):
    ws = await websockets.connect(f"wss://127.0.0.1:{port}/ws", ssl=ctx, open_timeout=5)
    await ws.send(json.dumps({"type": "subscribe", "channel": "dashboard", "id": 1}))
    return ws


async def _next_record(ws):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if m.get("channel") == "dashboard" and m.get("type") not in ("ack", "error"):
            return m


def _served_cert(port):
    return ssl.get_server_certificate(("127.0.0.1", port))


def _pem(path):
    with open(path) as f:
        return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(f.read()))


def test_wss_subscribe_receives_demo_records(kbridge_tls, tls_certs):
    srv = kbridge_tls("--demo", brokers=False)

    async def go():
        ws = await _subscribe(srv.port, tls_certs.context())
        try:
            return await _next_record(ws)
        finally:
            await ws.close()
    rec = _run(go())
    assert rec["channel"] == "dashboard"
    # records leave in gathered TLS records, counted for the bench note
    status, body = https_get(srv.port, "/metrics", ctx=tls_certs.context())
    assert status == 200 and b"kbridge_tls_records_total" in body


def test_curl_https_health(kbridge_tls, tls_certs):
    srv = kbridge_tls()
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", tls_certs.ca,
                          f"https://127.0.0.1:{srv.port}/health"], capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] in ("ok", "degraded")


@pytest.mark.parametrize("version,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_s_client_versions_and_alpn(kbridge_tls, tls_certs, version, name):
    srv = kbridge_tls()
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", version,
                          "-alpn", "http/1.1", "-CAfile", tls_certs.ca, "-servername", "127.0.0.1"],
                         input=b"", capture_output=True, timeout=15).stdout.decode()
    assert name in out
    assert "ALPN protocol: http/1.1" in out
    assert "Verify return code: 0 (ok)" in out


def test_alpn_without_http11_gets_no_alpn(kbridge_tls, tls_certs):
    # tls.c's choice: no ALPN answer rather than a fatal alert
    srv = kbridge_tls()
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-alpn", "h2",
                          "-CAfile", tls_certs.ca], input=b"", capture_output=True, timeout=15).stdout.decode()
    assert "No ALPN negotiated" in out
    assert "Verify return code: 0 (ok)" in out


def _closed_without_answer(port, payload, wait=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        if payload:
            s.sendall(payload)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            return True
        # a TLS alert at most, never an HTTP answer
        return not data.startswith(b"HTTP/") and (not data or data[0] == 0x15)


@pytest.mark.parametrize("payload", [b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(300)],
                         ids=["plain-http", "garbage"])
def test_non_tls_peer_is_closed_and_server_stays_up(kbridge_tls, tls_certs, payload):
    srv = kbridge_tls()
    assert _closed_without_answer(srv.port, payload)
    assert https_get(srv.port, ctx=tls_certs.context())[0] == 200
    assert srv.alive()


def test_silent_handshake_cut_off_by_header_timeout(kbridge_tls, tls_certs):
    srv = kbridge_tls("--header-timeout", "1")
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01")      # the start of a ClientHello, then nothing
        try:
            assert s.recv(100) == b""     # closed by the deadline, nothing said
        except ConnectionResetError:
            pass
    assert 0.5 < time.monotonic() - t0 < 4
    assert https_get(srv.port, ctx=tls_certs.context())[0] == 200


def test_mtls_accepts_the_ca_and_names_the_client(kbridge_tls, tls_certs):
    srv = kbridge_tls("--demo", "--tls-client-ca", tls_certs.ca, brokers=False)

    async def go():
        ws = await _subscribe(srv.port, tls_certs.context("alice"))
        try:
            await _next_record(ws)
            return https_get(srv.port, "/stats", ctx=tls_certs.context("alice"))
        finally:
            await ws.close()
    status, body = _run(go())
    assert status == 200
    assert "alice" in [c.get("identity") for c in json.loads(body)["client_list"]]
    assert "identity=alice" in srv.log()         # the CN names the client in the logs too


@pytest.mark.parametrize("who", [None, "mallory"], ids=["no-cert", "other-ca"])
def test_mtls_refuses(kbridge_tls, tls_certs, who):
    srv = kbridge_tls("--tls-client-ca", tls_certs.ca)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_get(srv.port, ctx=tls_certs.context(who))
    assert https_get(srv.port, ctx=tls_certs.context("alice"))[0] == 200


def test_sighup_reload_new_pair_for_new_handshakes_old_connection_continues(kbridge_tls, tls_certs, tmp_path):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    shutil.copy(tls_certs.cert, cert)
    shutil.copy(tls_certs.key, key)
    srv = kbridge_tls("--demo", cert=cert, key=key, brokers=False)
    assert _served_cert(srv.port) == _pem(tls_certs.cert)
    new_cert, new_key = tls_certs.server("rotated")

    async def go():
        ws = await _subscribe(srv.port, tls_certs.context())
        try:
            await _next_record(ws)
            # a broken pair keeps the old one
            with open(key, "w") as f:
                f.write("not a key\n")
            os.kill(srv.pid, signal.SIGHUP)
            for _ in range(100):
                if "tls certificate not reloaded" in srv.log():
                    break
                await asyncio.sleep(0.05)
            assert _served_cert(srv.port) == _pem(tls_certs.cert)
            assert "tls certificate not reloaded" in srv.log()
            # the new pair: new handshakes get it
            shutil.copy(new_key, key)
            shutil.copy(new_cert, cert)
            loaded = srv.log().count("tls certificate loaded")
            os.kill(srv.pid, signal.SIGHUP)
            for _ in range(100):
                if srv.log().count("tls certificate loaded") > loaded:
                    break
                await asyncio.sleep(0.05)
            assert _served_cert(srv.port) == _pem(new_cert)
            assert https_get(srv.port, ctx=tls_certs.context())[0] == 200
            # the connection made before keeps receiving
            await _next_record(ws)
            await _next_record(ws)
        finally:
            await ws.close()
    _run(go())


def test_tls_flags_come_as_a_pair(tls_certs):
    from conftest import run_kbridge
    r = run_kbridge(["--demo", "--tls-cert", tls_certs.cert])
    assert r.returncode == 2 and b"--tls-key" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_kbridge(["--demo", "--tls-cert", tls_certs.cert, "--tls-key", tls_certs.other_key])
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr


def test_mtls_identity_with_jwt_on_grants_nothing_until_a_token(kbridge_tls, tls_certs, tmp_path):
    import jwt
    from authutil import claims
    secret = tmp_path / "secret"
    secret.write_bytes(b"s3cret-for-tls-tests-0123456789abcdef")
    admin = free_port()
    # the client list is the admin listener's once tokens are on; it stays plain HTTP
    srv = kbridge_tls("--demo", "--tls-client-ca", tls_certs.ca, "--jwt-secret", str(secret),
                      "--admin-listen", f"127.0.0.1:{admin}", brokers=False)
    ctx = tls_certs.context("alice")

    def identities():
        return [c.get("identity") for c in wsutil.get_json(admin, "/stats")["client_list"]]

    async def reply(ws, ident):
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m.get("id") == ident:
                return m

    async def go():
        ws = await websockets.connect(f"wss://127.0.0.1:{srv.port}/ws", ssl=ctx, open_timeout=5)
        try:
            await ws.send(json.dumps({"type": "subscribe", "channel": "dashboard", "id": 1}))
            refused = await reply(ws, 1)
            who_before = identities()
            tok = jwt.encode(claims(sub="bob"), secret.read_bytes(), algorithm="HS256")
            await ws.send(json.dumps({"type": "auth", "token": tok, "id": 2}))
            acked = await reply(ws, 2)
            await ws.send(json.dumps({"type": "subscribe", "channel": "dashboard", "id": 3}))
            await _next_record(ws)
            return refused, who_before, acked, identities()
        finally:
            await ws.close()
    refused, who_before, acked, who_after = _run(go())
    assert refused["type"] == "error"          # the certificate is no token
    assert who_before == ["alice"]             # but it names the client
    assert acked["type"] == "ack" and acked["sub"] == "bob"
    assert who_after == ["bob"]


def test_half_open_handshakes_and_a_trickled_hello_are_cut_off(kbridge_tls, tls_certs):
    srv = kbridge_tls("--header-timeout", "2")
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(300)]
    vanished = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    vanished.sendall(b"\x16\x03\x01\x02\x00\x01")   # half a ClientHello, then gone
    vanished.close()
    trickle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    t0 = time.monotonic()
    # a normal client is served meanwhile
    assert https_get(srv.port, ctx=tls_certs.context())[0] == 200
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64
    closed_at = None
    for b in hello:
        try:
            trickle.sendall(bytes([b]))
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.25)
        trickle.settimeout(0.01)
        try:
            if trickle.recv(1) == b"":
                closed_at = time.monotonic()
                break
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic()
            break
    trickle.close()
    assert closed_at is not None and closed_at - t0 < 4, "the trickled ClientHello was not cut off"
    for s in idle:
        s.settimeout(3)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert srv.alive()
    assert https_get(srv.port, ctx=tls_certs.context())[0] == 200


def test_renegotiation_is_refused(kbridge_tls, tls_certs):
    srv = kbridge_tls()
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-tls1_2",
                          "-CAfile", tls_certs.ca], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    time.sleep(1.0)
    p.stdin.write(b"R\n")          # s_client's command: renegotiate
    p.stdin.flush()
    time.sleep(1.5)
    out = p.communicate(timeout=10)[0].decode(errors="replace")
    assert "RENEGOTIATING" in out and "no renegotiation" in out
    assert https_get(srv.port, ctx=tls_certs.context())[0] == 200


def test_a_burst_is_gathered_into_few_records(kbridge_tls, tls_certs):
    # many small frames per flush: far fewer TLS records than messages
    srv = kbridge_tls("--demo", "--demo-rate", "5000", brokers=False)

    async def go():
        ws = await _subscribe(srv.port, tls_certs.context())
        try:
            for _ in range(2000):
                await _next_record(ws)
        finally:
            await ws.close()
    _run(go())
    body = https_get(srv.port, "/metrics", ctx=tls_certs.context())[1].decode()
    val = {l.split()[0]: float(l.split()[1]) for l in body.splitlines() if l and not l.startswith("#")}
    assert val["kbridge_messages_sent_total"] >= 2000
    assert val["kbridge_tls_records_total"] * 3 < val["kbridge_messages_sent_total"], val


def test_a_stalled_reader_resumes_with_intact_frames(kbridge_tls, tls_certs):
    # the socket fills while the client does not read: SSL_write wants to
    # write, the same staged bytes go again later, framing stays whole
    srv = kbridge_tls("--demo", "--demo-rate", "20000", brokers=False)

    async def go():
        ws = await websockets.connect(f"wss://127.0.0.1:{srv.port}/ws", ssl=tls_certs.context(),
                                      max_queue=4, read_limit=2**12, open_timeout=5,
                                      close_timeout=2)   # records still arriving fill max_queue
        try:
            await ws.send(json.dumps({"type": "subscribe", "channel": "dashboard", "id": 1}))
            await _next_record(ws)
            await asyncio.sleep(2.0)          # stall: the kernel buffers fill
            n = 0
            for _ in range(1500):
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                n += m.get("channel") == "dashboard"
            return n
        finally:
            await ws.close()
    assert _run(go()) > 1000
    assert srv.alive()


def test_a_flood_of_half_open_handshakes_does_not_lock_out_a_client(kbridge_tls, tls_certs):
    # more silent connections than the cap of heads in progress (1024): the
    # oldest handshakes give way, a real client gets through at once
    srv = kbridge_tls("--header-timeout", "30", nofile=8192)
    flood = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(1500)]
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        assert https_get(srv.port, ctx=tls_certs.context(), timeout=5)[0] == 200
        assert time.monotonic() - t0 < 3
        assert srv.alive()
    finally:
        for s in flood:
            s.close()
