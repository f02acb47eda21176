"""Authentication (docs/security.md): token verification and the auth flow,
with tokens minted by PyJWT at test time and keys made by `cryptography`
(tests/e2e/authutil.py).

- Every algorithm (HS256/384/512 with --jwt-secret; RS, PS, ES, EdDSA with
  --jwt-key as PEM public keys, as X.509 certificates and as JWKS) is
  accepted with the right key and refused with a wrong one, on each of the
  three token paths: `Authorization: Bearer` on the upgrade (101, or 401
  with `WWW-Authenticate: Bearer error="invalid_token"` and a JSON body
  {"error": text, "reason": reason}), `access_token=` on the upgrade, and
  the `auth` message (an ack with sub and the ISO-8601 expiry, or
  UNAUTHORIZED "invalid token: <text> (<reason>)" after which the client
  may try again).
- Each refusal reason (malformed, algorithm, unknown_key, signature,
  expired, not_yet_valid, missing_exp, audience, issuer) from the token that
  earns it, counted in kbridge_auth_failures_total{reason}.
- Before authentication only auth and ping are served; --auth-timeout,
  token expiry and refresh; key rotation by file change and by SIGHUP; a
  bad key file (at start: exit 2; later: the old keys stay); tokens never
  in the log; without any auth flag nothing changes.
"""
import asyncio
import json
import os
import re
import signal
import time

import pytest

import authutil as au
from authutil import keyring  # noqa: F401  (session fixture)
from conftest import read_messages, run_kbridge, ws_subscribe

ROUTE = ["-t", "orders"]


def subscribe_reply(ws, ident="s1", channel="orders"):
    return ws.request({"type": "subscribe", "channel": channel, "id": ident})


def assert_authenticated(ws, what, ident="s-ok"):
    r = subscribe_reply(ws, ident)
    assert r.get("type") == "ack" and r.get("id") == ident, f"{what}: authenticated client's subscribe -> {r!r}"


def assert_unauthenticated(ws, what, ident="s-no"):
    r = subscribe_reply(ws, ident)
    assert r.get("type") == "error" and r.get("code") == "UNAUTHORIZED" and r.get("id") == ident, \
        f"{what}: unauthenticated client's subscribe -> {r!r}"


def check_accepted(srv, tok, sub, exp, what):
    """The token works on all three paths."""
    ws = srv.ws(headers=[("Authorization", f"Bearer {tok}")])
    assert_authenticated(ws, f"{what} via Authorization")
    ws.close()
    ws = srv.ws(f"/ws?access_token={tok}")
    assert_authenticated(ws, f"{what} via access_token=")
    ws.close()
    ws, ack = au.auth_ws(srv, tok, ident=f"a-{what}")
    au.check_auth_ack(ack, f"a-{what}", sub, exp)
    assert_authenticated(ws, f"{what} via auth message")
    ws.close()


def check_refused(srv, tok, reason, what, retry=None):
    """The token is refused on all three paths with `reason`; after the
    refused auth message, `retry` (a good token) is accepted on the same
    connection."""
    au.check_401(au.upgrade(srv, token=tok), reason, f"{what} via Authorization")
    au.check_401(au.upgrade(srv, f"/ws?access_token={tok}"), reason, f"{what} via access_token=")
    ws, reply = au.auth_ws(srv, tok, ident=f"bad-{what}")
    au.check_unauthorized_reply(reply, f"bad-{what}", reason)
    assert_unauthenticated(ws, f"{what}: after a refused auth message")
    if retry is not None:
        r = ws.request({"type": "auth", "token": retry, "id": "retry"})
        assert r.get("type") == "ack" and r.get("action") == "auth" and r.get("id") == "retry", \
            f"{what}: a good token after a refused one -> {r!r}"
        assert_authenticated(ws, f"{what}: after the retry")
    ws.close()


# ---------------------------------------------------------------- algorithms

ALG_CASES = [(a, "secret") for a in au.HMAC_ALGS] + \
            [(a, form) for form in ("pem", "cert") for a in au.ASYMMETRIC]


@pytest.mark.parametrize("alg,keyform", ALG_CASES, ids=[f"{a}-{f}" for a, f in ALG_CASES])
def test_algorithm_right_key_accepted_wrong_key_refused(kbridge, keyring, alg, keyform):
    """One algorithm: its token signed with the configured key is accepted
    on the three paths; signed with another key of the same kind it is
    refused as `signature` on the three paths (and a good token then works
    on the same connection). --jwt-key is one file of all five public keys
    (RSA 2048, P-256, P-384, P-521, Ed25519), as PEM public keys or as
    self-signed X.509 certificates; --jwt-secret is given too."""
    keyfile = keyring.pub_pem if keyform in ("pem", "secret") else keyring.cert_pem
    srv = kbridge(*ROUTE, "--jwt-key", keyfile, "--jwt-secret", keyring.secret)
    before = au.auth_failures(srv)
    good = au.claims(sub=f"user-{alg}")
    tok = au.mint(alg, keyring.key_for(alg), good)
    check_accepted(srv, tok, f"user-{alg}", good["exp"], alg)
    bad = au.mint(alg, keyring.key_for(alg, wrong=True), au.claims(sub="mallory"))
    check_refused(srv, bad, "signature", f"{alg} wrong key", retry=tok)
    n = 3
    if alg.startswith("HS"):
        # The secret is the file's bytes without its one trailing newline.
        withnl = au.mint(alg, keyring.good["hmac"] + b"\n", au.claims())
        check_refused(srv, withnl, "signature", f"{alg} keyed with the newline")
        n += 3
    after = au.auth_failures(srv)
    ok = after.get("signature") is not None and after["signature"] - before.get("signature", 0) == n
    assert ok, f"kbridge_auth_failures_total{{reason=\"signature\"}} went {before.get('signature')} -> " \
               f"{after.get('signature')}, expected +{n}"


def test_jwks_keys_matched_by_kid(kbridge, keyring, tmp_path):
    """--jwt-key as a JWKS document: each token's kid picks its key (RSA,
    P-256, P-384, P-521, Ed25519); an unknown kid is `unknown_key`; a known
    kid with another key's signature is `signature`."""
    kinds = {"rsa": "RS256", "p256": "ES256", "p384": "ES384", "p521": "ES512", "ed25519": "EdDSA"}
    doc = {"keys": [au.jwk_of(keyring.good[k], kid=f"kid-{k}") for k in kinds]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    srv = kbridge(*ROUTE, "--jwt-key", str(path))
    for kind, alg in kinds.items():
        c = au.claims(sub=f"jwks-{kind}")
        check_accepted(srv, au.mint(alg, keyring.good[kind], c, kid=f"kid-{kind}"), f"jwks-{kind}", c["exp"],
                       f"{alg}-kid")
        # PS256 shares the RSA key
    c = au.claims(sub="ps")
    check_accepted(srv, au.mint("PS384", keyring.good["rsa"], c, kid="kid-rsa"), "ps", c["exp"], "PS384-kid")
    good = au.mint("RS256", keyring.good["rsa"], au.claims(), kid="kid-rsa")
    check_refused(srv, au.mint("RS256", keyring.good["rsa"], au.claims(), kid="kid-nobody"), "unknown_key",
                  "unknown kid", retry=good)
    check_refused(srv, au.mint("ES256", keyring.wrong["p256"], au.claims(), kid="kid-p256"), "signature",
                  "known kid, other key")
    f = au.auth_failures(srv)
    assert f.get("unknown_key") == 3 and f.get("signature") == 3, f


# ---------------------------------------------------------------- every reason

AUD, ISS = "kbridge-clients", "https://idp.example.test"


def token_cases(k):
    """(name, token, reason or None for accepted, sub)."""
    sec = k.good["hmac"]
    rsa_key = k.good["rsa"]
    now = int(time.time())

    def c(**kw):
        base = au.claims(aud=AUD, iss=ISS)
        base.update(kw)
        return {x: y for x, y in base.items() if y is not None}

    def hs(payload, alg="HS256"):
        return au.mint(alg, sec, payload)

    good = hs(c(sub="good"))
    cases = [
        ("good-hs", good, None),
        ("good-rs", au.mint("RS256", rsa_key, c(sub="good-rs")), None),
        ("aud-array-containing", hs(c(aud=["other", AUD])), None),
        ("within-leeway-expired", hs(c(exp=now - 10)), None),
        ("nbf-within-leeway", hs(c(nbf=now + 10)), None),
        ("nbf-past", hs(c(nbf=now - 100)), None),
        ("tampered-payload-hs", au.tamper_payload(good, sub="mallory"), "signature"),
        ("tampered-payload-rs", au.tamper_payload(au.mint("RS256", rsa_key, c()),
                                                  kbridge={"channels": ["*"], "keys": ["x"]}), "signature"),
        ("tampered-signature-hs", au.tamper_signature(good), "signature"),
        ("tampered-signature-rs", au.tamper_signature(au.mint("PS256", rsa_key, c())), "signature"),
        ("tampered-signature-es", au.tamper_signature(au.mint("ES256", k.good["p256"], c())), "signature"),
        ("tampered-signature-eddsa", au.tamper_signature(au.mint("EdDSA", k.good["ed25519"], c())), "signature"),
        ("expired-beyond-leeway", hs(c(exp=now - 120)), "expired"),
        ("nbf-future", hs(c(nbf=now + 600)), "not_yet_valid"),
        ("missing-exp", hs(c(exp=None)), "missing_exp"),
        ("aud-wrong", hs(c(aud="someone-else")), "audience"),
        ("aud-array-without", hs(c(aud=["a", "b"])), "audience"),
        ("aud-missing", hs(c(aud=None)), "audience"),
        ("iss-wrong", hs(c(iss="https://evil.example")), "issuer"),
        ("iss-missing", hs(c(iss=None)), "issuer"),
        ("alg-none-empty-sig", au.hand_token({"alg": "none", "typ": "JWT"}, c()), "algorithm"),
        ("alg-none-with-sig", au.hand_token({"alg": "none"}, c(), b"x" * 32), "algorithm"),
        ("alg-unknown", au.hand_token({"alg": "XS256"}, c(), b"x" * 32), "algorithm"),
        # an HMAC keyed with the RSA public key's PEM (algorithm confusion)
        ("hs-keyed-with-rsa-pem", au.hs_with_bytes("HS256", k.rsa_pub_pem_bytes, c()), "signature"),
        ("malformed-one-part", "abcdef", "malformed"),
        ("malformed-two-parts", ".".join(good.split(".")[:2]), "malformed"),
        ("malformed-four-parts", good + ".xyz", "malformed"),
        ("malformed-base64url-chars", au.hs_sign_parts(sec, "eyJ*bGciOiJIUzI1NiJ9", good.split(".")[1]),
         "malformed"),
        ("malformed-base64-plus-slash", au.hs_sign_parts(sec, good.split(".")[0], good.split(".")[1] + "+/"),
         "malformed"),
        ("malformed-payload-padded", au.hs_sign_parts(sec, good.split(".")[0], good.split(".")[1] + "=="),
         "malformed"),
        ("malformed-header-json", au.hs_sign_parts(sec, au.b64u("{not json"), good.split(".")[1]), "malformed"),
        ("malformed-payload-json", au.hs_with_bytes_raw(sec, b"{\"exp\": 1,"), "malformed"),
        ("malformed-payload-not-object", au.hs_with_bytes_raw(sec, b"[1,2,3]"), "malformed"),
        ("claim-channels-not-array", hs(c(kbridge={"channels": "orders"})), "malformed"),
        ("claim-keys-not-strings", hs(c(kbridge={"channels": ["*"], "keys": [1, 2]})), "malformed"),
        ("claim-filter-object-value", hs(c(kbridge={"channels": ["*"], "filter": {"tenant": {"x": 1}}})),
         "malformed"),
        ("claim-filter-not-object", hs(c(kbridge={"channels": ["*"], "filter": ["tenant"]})), "malformed"),
        ("claim-not-object", hs(c(kbridge=["orders"])), "malformed"),
    ]
    return cases


def test_every_refusal_reason_on_every_path(kbridge, keyring):
    """One kbridge with --jwt-secret, --jwt-key (the PEM keys),
    --jwt-audience, --jwt-issuer (leeway 30 s by default). Each token is
    tried on the three paths: accepted ones give 101 / an ack, refused ones
    401 with the reason and its text / UNAUTHORIZED with both; every reason
    is on /metrics from the start, and each counts exactly its refusals."""
    srv = kbridge(*ROUTE, "--jwt-key", keyring.pub_pem, "--jwt-secret", keyring.secret,
                  "--jwt-audience", AUD, "--jwt-issuer", ISS)
    start = au.auth_failures(srv)
    problems = []
    missing = [r for r in au.REASONS if r not in start]
    if missing:
        problems.append(f"metrics: kbridge_auth_failures_total lacks reasons {missing} at start: {start}")
    if any(start.get(r, 0) != 0 for r in au.REASONS):
        problems.append(f"metrics: not 0 at start: {start}")
    cases = token_cases(keyring)
    good = cases[0][1]
    want = {r: 0 for r in au.REASONS}
    for name, tok, reason in cases:
        try:
            if reason is None:
                ws = srv.ws(headers=[("Authorization", f"Bearer {tok}")])
                assert_authenticated(ws, name)
                ws.close()
                ws = srv.ws(f"/ws?access_token={tok}")
                assert_authenticated(ws, name)
                ws.close()
                ws, ack = au.auth_ws(srv, tok, ident=name)
                assert ack.get("type") == "ack" and ack.get("action") == "auth", f"{name}: {ack!r}"
                ws.close()
            else:
                want[reason] += 3
                check_refused(srv, tok, reason, name, retry=good)
        except AssertionError as e:
            problems.append(str(e).splitlines()[0])
    got = au.auth_failures(srv)
    counts = [f"{r}: {got.get(r)} (expected {want[r]})" for r in au.REASONS if got.get(r) != want[r]]
    assert not problems and not counts, "\n".join(problems + ["metrics: " + c for c in counts])


def test_algorithm_confusion_hs_keyed_with_the_public_key(kbridge, keyring):
    """--jwt-key holds an RSA public key and no secret is configured: an
    HS256/384/512 token whose HMAC key is that public key's PEM text (with
    and without its final newline) must be refused, never checked against
    the public key; the RS256 token of the same key works."""
    srv = kbridge(*ROUTE, "--jwt-key", keyring.rsa_pem)
    pem = keyring.rsa_pub_pem_bytes
    for alg in au.HMAC_ALGS:
        for secret in (pem, pem.rstrip(b"\n")):
            tok = au.hs_with_bytes(alg, secret, au.claims())
            r = au.upgrade(srv, token=tok)
            assert r.status == 401, f"{alg} keyed with the RSA PEM was not refused: {r!r}"
            body = r.json()
            assert body.get("reason") in ("algorithm", "signature"), body
            ws, reply = au.auth_ws(srv, tok, ident="conf")
            assert reply.get("code") == "UNAUTHORIZED", reply
            assert_unauthenticated(ws, "after the confusion token")
            ws.close()
    c = au.claims(sub="rs")
    check_accepted(srv, au.mint("RS256", keyring.good["rsa"], c), "rs", c["exp"], "RS256")
    # alg none is refused here too
    au.check_401(au.upgrade(srv, token=au.hand_token({"alg": "none"}, au.claims())), "algorithm", "alg none")


def test_bearer_scheme_case_and_header_wins_over_query(kbridge, keyring):
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret)
    good = au.mint("HS256", keyring.good["hmac"], au.claims())
    bad = au.tamper_signature(good)
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        ws = srv.ws(headers=[("Authorization", f"{scheme} {good}")])
        assert_authenticated(ws, f"scheme {scheme}")
        ws.close()
    # Authorization wins over access_token=
    ws = srv.ws(f"/ws?access_token={bad}", headers=[("Authorization", f"Bearer {good}")])
    assert_authenticated(ws, "good header, bad access_token")
    ws.close()
    au.check_401(au.upgrade(srv, f"/ws?access_token={good}", token=bad), "signature", "bad header, good query")


def test_websockets_library_client(kbridge, keyring):
    """The Python `websockets` library as the client: the Authorization
    header opens the connection, a bad token is the 401 the library
    reports, and the auth message path works in it too."""
    import websockets
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret)
    c = au.claims(sub="lib")
    good = au.mint("HS512", keyring.good["hmac"], c)
    bad = au.tamper_payload(good, sub="mallory")
    uri = f"ws://127.0.0.1:{srv.port}/ws"

    async def run():
        out = {}
        async with websockets.connect(uri, extra_headers={"Authorization": f"Bearer {good}"}, ping_interval=None,
                                      open_timeout=5, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channel": "orders", "id": 1}))
            out["header"] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        try:
            async with websockets.connect(uri, extra_headers={"Authorization": f"Bearer {bad}"},
                                          ping_interval=None, open_timeout=5, close_timeout=5):
                out["bad"] = "opened"
        except websockets.exceptions.InvalidStatusCode as e:
            out["bad"] = (e.status_code, dict(e.headers))
        async with websockets.connect(uri, ping_interval=None, open_timeout=5, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "auth", "token": bad, "id": "x"}))
            out["msg-bad"] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"type": "auth", "token": good, "id": "y"}))
            out["msg-good"] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"type": "subscribe", "channel": "orders", "id": 2}))
            out["msg-sub"] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return out

    out = asyncio.run(asyncio.wait_for(run(), 30))
    assert out["header"].get("type") == "ack", out
    assert isinstance(out["bad"], tuple) and out["bad"][0] == 401, out["bad"]
    www = {k.lower(): v for k, v in out["bad"][1].items()}.get("www-authenticate", "")
    assert re.match(r'^Bearer\s+error="invalid_token"', www, re.I), out["bad"]
    au.check_unauthorized_reply(out["msg-bad"], "x", "signature")
    au.check_auth_ack(out["msg-good"], "y", "lib", c["exp"])
    assert out["msg-sub"].get("type") == "ack", out


# ---------------------------------------------------------------- before authentication

def test_before_auth_only_auth_and_ping(kbridge, keyring):
    """An upgrade without a token is a 101; until a valid auth message only
    auth and ping are served, every other message (both dialects) gets
    UNAUTHORIZED with its id; channel= on the upgrade gets UNAUTHORIZED
    naming the channel after the 101. The action dialect authenticates with
    {"action":"auth"}."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret)
    ws = srv.ws()
    for i, msg in enumerate([
        {"type": "subscribe", "channel": "orders"},
        {"type": "subscribe", "channels": ["orders"], "snapshot": True},
        {"type": "unsubscribe", "channel": "orders"},
        {"type": "list"},
        {"type": "refresh", "channel": "orders"},
        {"type": "refresh"},
        {"action": "subscribe", "type": "x"},
        {"action": "list_subscriptions"},
        {"action": "unsubscribe"},
    ]):
        msg["id"] = i
        r = ws.request(msg)
        assert r.get("type") == "error" and r.get("code") == "UNAUTHORIZED" and r.get("id") == i, \
            f"unauthenticated {msg!r} -> {r!r}"
    ws.ping_ok("p1")
    r = ws.request({"action": "ping", "id": "p2"})
    assert r.get("type") == "pong" and r.get("id") == "p2", r
    c = au.claims(sub="late")
    r = ws.request({"action": "auth", "token": au.mint("HS256", keyring.good["hmac"], c), "id": "a"})
    au.check_auth_ack(r, "a", "late", c["exp"])
    r = ws.request({"action": "list_subscriptions", "id": "l"})
    assert r.get("type") == "subscriptions" and r.get("id") == "l", r
    assert_authenticated(ws, "after action-dialect auth")

    up = srv.ws("/ws?channel=orders")
    r = up.recv_json(5)
    assert r.get("type") == "error" and r.get("code") == "UNAUTHORIZED" and r.get("channel") == "orders", \
        f"channel= on an unauthenticated upgrade -> {r!r}"
    r = up.request({"type": "ping", "id": "alive"})
    assert r.get("type") == "pong", r


def test_refused_refresh_keeps_the_old_token(kbridge, keyring):
    """An authenticated client that sends a bad token keeps what it had:
    UNAUTHORIZED for the message, its subscriptions stay and it may
    subscribe."""
    srv = kbridge(*ROUTE, "-t", "other", "--jwt-secret", keyring.secret)
    tok = au.mint("HS256", keyring.good["hmac"], au.claims(channels=["orders", "other"]))
    ws = srv.ws(headers=[("Authorization", f"Bearer {tok}")])
    assert_authenticated(ws, "first")
    for name, bad, reason in (("expired", au.mint("HS256", keyring.good["hmac"], au.claims(exp_in=-600)), "expired"),
                              ("garbage", "not-a-token", "malformed")):
        r = ws.request({"type": "auth", "token": bad, "id": name})
        au.check_unauthorized_reply(r, name, reason)
    r = ws.request({"type": "list", "id": "l"})
    assert [s.get("channel") for s in r.get("subscriptions", [])] == ["orders"], r
    r = ws.request({"type": "subscribe", "channel": "other", "id": "o"})
    assert r.get("type") == "ack", r


def test_exp_far_in_the_future(kbridge, keyring):
    """exp beyond the year 9999 (up to 2**62, or a float) is accepted as
    forever: the ack says 9999-12-31T23:59:59Z, the client stays and
    reads (no overflow into an instant TOKEN_EXPIRED)."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret, "--jwt-leeway", "86400")
    for exp in (2 ** 62, 2 ** 63 - 1, 1e300):
        tok = au.mint("HS256", keyring.good["hmac"], au.claims(exp_in=None, exp=exp))
        ws = srv.ws()
        r = ws.request({"type": "auth", "token": tok, "id": "a"})
        assert r.get("type") == "ack" and r.get("expires") == "9999-12-31T23:59:59Z", (exp, r)
        time.sleep(0.6)                     # past a server tick: no TOKEN_EXPIRED
        assert_authenticated(ws, f"exp {exp}")


def test_auth_timeout_closes_unauthenticated(kbridge, keyring):
    """--auth-timeout 1: a client that brought no token and sent none (or
    only a bad one) is closed with 1008 "authentication required"; clients
    that authenticated by header or by message stay. Each close counts in
    kbridge_rejected_total{reason="auth_timeout"}."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret, "--auth-timeout", "1")
    tok = au.mint("HS256", keyring.good["hmac"], au.claims())
    t0 = time.monotonic()
    silent = srv.ws()
    tried = srv.ws()
    r = tried.request({"type": "auth", "token": "x.y.z", "id": 1})
    assert r.get("code") == "UNAUTHORIZED", r
    by_header = srv.ws(headers=[("Authorization", f"Bearer {tok}")])
    by_msg, ack = au.auth_ws(srv, tok)
    assert ack.get("type") == "ack", ack
    code, why = silent.expect_close(1008, timeout=8, reason="authentication required")
    took = time.monotonic() - t0
    assert 0.7 <= took <= 6, f"closed after {took:.1f}s with --auth-timeout 1"
    tried.expect_close(1008, timeout=5, reason="authentication required")
    by_header.ping_ok("h")
    by_msg.ping_ok("m")
    rej = {dict(l).get("reason"): v for (n, l), v in au.metrics(srv).items() if n == "kbridge_rejected_total"}
    assert rej.get("auth_timeout") == 2, f"kbridge_rejected_total: {rej}"


def test_auth_timeout_again_after_the_last_unsubscribe(kbridge, keyring):
    """With public channels an anonymous reader outlives --auth-timeout;
    once it unsubscribes from the last one it has --auth-timeout again,
    then 1008 "authentication required"."""
    srv = kbridge(*ROUTE, "-t", "news", "--public-channels", "news", "--jwt-secret", keyring.secret,
                  "--auth-timeout", "1")
    ws = srv.ws()
    assert ws.request({"type": "subscribe", "channel": "news", "id": "s"}).get("type") == "ack"
    time.sleep(1.6)
    ws.ping_ok("still")
    assert ws.request({"type": "unsubscribe", "channel": "news", "id": "u"}).get("type") == "ack"
    t0 = time.monotonic()
    ws.expect_close(1008, timeout=8, reason="authentication required")
    assert time.monotonic() - t0 >= 0.7


def test_two_authorization_lines_refused(kbridge, keyring):
    """Two Authorization lines on an upgrade get 400: a proxy in front and
    kbridge must not read different tokens."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret)
    tok = au.mint("HS256", keyring.good["hmac"], au.claims())
    hdrs = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Authorization", f"Bearer {tok}"),
            ("Authorization", "Bearer other")]
    r = srv.http("GET", "/ws", headers=hdrs)
    assert r.status == 400, r
    r = srv.http("GET", "/ws", headers=hdrs[:-1])
    assert r.status == 101, r


def test_default_auth_timeout_is_not_tiny(kbridge, keyring):
    """The default --auth-timeout is 10 s: an anonymous client is still open
    after 2 s."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret)
    ws = srv.ws()
    time.sleep(2)
    ws.ping_ok()


# ---------------------------------------------------------------- expiry and refresh

def test_token_expiry_then_close(kbridge, keyring):
    """--jwt-leeway 0, tokens with exp 3 s ahead (by header and by message):
    at exp {"type":"error","code":"TOKEN_EXPIRED"} then close 1008 "token
    expired", not before exp."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret, "--jwt-leeway", "0")
    c = au.claims(exp_in=3)
    tok = au.mint("HS256", keyring.good["hmac"], c)
    a = srv.ws(headers=[("Authorization", f"Bearer {tok}")])
    b, ack = au.auth_ws(srv, tok)
    au.check_auth_ack(ack, "auth-1", "alice", c["exp"])
    for name, ws in (("header", a), ("message", b)):
        err, seen = au.recv_until(ws, lambda o: o.get("type") == "error", timeout=10,
                                  what=f"{name}: TOKEN_EXPIRED")
        now = time.time()
        assert err.get("code") == "TOKEN_EXPIRED", f"{name}: {err!r}"
        assert now >= c["exp"] - 0.3, f"{name}: TOKEN_EXPIRED {c['exp'] - now:.2f}s before exp"
        ws.expect_close(1008, timeout=5, reason="token expired")


def test_refresh_before_expiry_keeps_the_connection(kbridge, keyring):
    """A refresh with a later exp moves the deadline: the connection is
    still open (and subscribed) 2 s after the first token's exp. A refused
    refresh does not: that client is closed at the first exp."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret, "--jwt-leeway", "0")
    c1 = au.claims(exp_in=3)
    t1 = au.mint("HS256", keyring.good["hmac"], c1)
    good = srv.ws(headers=[("Authorization", f"Bearer {t1}")])
    ws_subscribe(good, {"type": "subscribe", "channel": "orders"})
    stale = srv.ws(headers=[("Authorization", f"Bearer {t1}")])
    time.sleep(1)
    c2 = au.claims(exp_in=60)
    r = good.request({"type": "auth", "token": au.mint("HS256", keyring.good["hmac"], c2), "id": "r"})
    au.check_auth_ack(r, "r", "alice", c2["exp"])
    r = stale.request({"type": "auth", "token": au.tamper_signature(au.mint("HS256", keyring.good["hmac"], c2)),
                       "id": "r"})
    au.check_unauthorized_reply(r, "r", "signature")
    stale.expect_close(1008, timeout=8, reason="token expired")
    while time.time() < c1["exp"] + 2:
        time.sleep(0.1)
    good.ping_ok("still")
    r = good.request({"type": "list", "id": "l"})
    assert [s.get("channel") for s in r.get("subscriptions", [])] == ["orders"], r


# ---------------------------------------------------------------- key rotation

def write_atomic(path, data):
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)


def count_lines(srv, text):
    return sum(1 for line in srv.log().splitlines() if text in line)


def jwks_bytes(*pairs):
    return json.dumps({"keys": [au.jwk_of(k, kid=kid) for kid, k in pairs]}).encode()


def test_jwks_rotation_by_file_change(mock_kafka, kafka_bridge, keyring, tmp_path):
    """The JWKS file is replaced by one with a new key and kid: kbridge
    reloads it by its mtime poll within a few seconds (no SIGHUP, no token
    with the new kid shown before); then the new kid's tokens are accepted
    and the old kid's refused; a client authenticated with the old key
    keeps receiving records."""
    mk = mock_kafka({"rot": 1})
    path = tmp_path / "jwks.json"
    old, new = keyring.good["rsa"], keyring.wrong["rsa"]
    path.write_bytes(jwks_bytes(("k-old", old)))
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "rot", "--jwt-key", str(path))
    loaded0 = count_lines(srv, "jwt keys loaded")
    assert loaded0 >= 1, f"no 'jwt keys loaded' line at start:\n{srv.log_tail()}"
    old_tok = au.mint("RS256", old, au.claims(), kid="k-old")
    client = srv.ws(headers=[("Authorization", f"Bearer {old_tok}")])
    ws_subscribe(client, {"type": "subscribe", "channel": "rot"})
    mk.produce("rot", b'{"n":1}', key="a")
    assert [m["data"] for m in read_messages(client, 1, timeout=10)] == [{"n": 1}]

    time.sleep(1.1)                      # a different mtime second on coarse file systems
    write_atomic(path, jwks_bytes(("k-new", new)))
    t0 = time.monotonic()
    # every worker reloads on its own poll: wait for all of them, or the
    # old kid may meet one that has not yet
    au.wait_for(lambda: sum(1 for line in srv.log().splitlines()
                            if "jwt keys loaded" in line and "why=start" not in line) >= srv.workers, 8,
                "'jwt keys loaded' after the change")
    took = time.monotonic() - t0
    assert took < 6, f"reloaded {took:.1f}s after the change (polled every 2 s)"
    new_tok = au.mint("RS256", new, au.claims(sub="rotated"), kid="k-new")
    ws = srv.ws(headers=[("Authorization", f"Bearer {new_tok}")])
    r = ws.request({"type": "subscribe", "channel": "rot", "id": "n"})
    assert r.get("type") == "ack", f"new kid after reload: {r!r}"
    au.check_401(au.upgrade(srv, token=au.mint("RS256", old, au.claims(), kid="k-old")), "unknown_key",
                 "old kid after rotation")
    mk.produce("rot", b'{"n":2}', key="a")
    assert [m["data"] for m in read_messages(client, 1, timeout=10)] == [{"n": 2}], \
        "the client authenticated with the old key stopped receiving"
    assert [m["data"] for m in read_messages(ws, 1, timeout=10)] == [{"n": 2}]
    client.ping_ok()


def test_jwks_rotation_on_sighup(kbridge, keyring, tmp_path):
    """SIGHUP reloads at once: the file is rewritten in place with the same
    size and its old mtime (so no poll can see a change), then SIGHUP; the
    new kid is accepted right after."""
    path = tmp_path / "jwks.json"
    old, new = keyring.good["p256"], keyring.wrong["p256"]
    a, b = jwks_bytes(("kid-1", old)), jwks_bytes(("kid-2", new))
    n = max(len(a), len(b))
    a, b = a.ljust(n), b.ljust(n)        # JSON whitespace: the same size
    path.write_bytes(a)
    srv = kbridge(*ROUTE, "--jwt-key", str(path))
    st = os.stat(path)
    loaded0 = count_lines(srv, "jwt keys loaded")
    with open(path, "r+b") as f:
        f.write(b)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_ino == st.st_ino
    time.sleep(2.5)                      # more than one poll: nothing may reload on its own
    assert count_lines(srv, "jwt keys loaded") == loaded0, "reloaded although the file's mtime did not change"
    os.kill(srv.pid, signal.SIGHUP)
    au.wait_for(lambda: count_lines(srv, "jwt keys loaded") > loaded0, 3, "'jwt keys loaded' after SIGHUP")
    c = au.claims(sub="after-hup")
    check_accepted(srv, au.mint("ES256", new, c, kid="kid-2"), "after-hup", c["exp"], "kid-2")
    assert srv.alive()


def rewrite_in_place(path, data, st):
    """New contents with the same size, inode and mtime: no file-change poll
    can see it."""
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.one_process("each worker re-reads its keys file on its own 10 s clock")
def test_unknown_kid_rereads_the_jwks_at_most_every_10s(kbridge, keyring, tmp_path):
    """A kid that is not in the keys makes kbridge read the JWKS file again,
    at most once per 10 s, before refusing it as `unknown_key`. The file is
    changed in place with its size and mtime kept, so only that re-read can
    see the new keys: the first new kid is accepted at once; a second one
    added within 10 s is refused; after the 10 s it is accepted. (All keys
    P-384.)"""
    from cryptography.hazmat.primitives.asymmetric import ec
    third = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "jwks.json"
    ks = [("kid-a", keyring.good["p384"]), ("kid-b", keyring.wrong["p384"]), ("kid-c", third)]
    versions = [jwks_bytes(*ks[:n]) for n in (1, 2, 3)]
    size = max(len(v) for v in versions)
    versions = [v.ljust(size) for v in versions]
    path.write_bytes(versions[0])
    srv = kbridge(*ROUTE, "--jwt-key", str(path))
    st = os.stat(path)

    rewrite_in_place(path, versions[1], st)
    t_first = time.monotonic()
    c = au.claims(sub="kid-b")
    tok_b = au.mint("ES384", keyring.wrong["p384"], c, kid="kid-b")
    ws = srv.ws(headers=[("Authorization", f"Bearer {tok_b}")])
    assert_authenticated(ws, "a new kid, found by re-reading the file")
    rewrite_in_place(path, versions[2], st)
    tok_c = au.mint("ES384", third, au.claims(sub="kid-c"), kid="kid-c")
    if time.monotonic() - t_first < 8:
        au.check_401(au.upgrade(srv, token=tok_c), "unknown_key", "a second new kid within 10 s of the re-read")
    while time.monotonic() - t_first < 10.5:
        time.sleep(0.1)
    ws = srv.ws(headers=[("Authorization", f"Bearer {tok_c}")])
    assert_authenticated(ws, "the second new kid, 10 s later")
    check_accepted(srv, tok_b, "kid-b", c["exp"], "kid-b still")


def test_unknown_kid_of_a_new_key_type(kbridge, keyring, tmp_path):
    """A JWKS of one P-384 key; the identity provider adds an Ed25519 key
    (file changed in place, size and mtime kept): the EdDSA token with the
    new kid is an unknown kid, so kbridge re-reads the file and accepts it.
    A token whose kid is in no file, for a key type kbridge has none of
    (ES256 here), is refused as `unknown_key` too."""
    path = tmp_path / "jwks.json"
    v1 = jwks_bytes(("kid-a", keyring.good["p384"]))
    v2 = jwks_bytes(("kid-a", keyring.good["p384"]), ("kid-ed", keyring.good["ed25519"]))
    size = max(len(v1), len(v2))
    path.write_bytes(v1.ljust(size))
    srv = kbridge(*ROUTE, "--jwt-key", str(path))
    rewrite_in_place(path, v2.ljust(size), os.stat(path))
    c = au.claims(sub="ed")
    tok = au.mint("EdDSA", keyring.good["ed25519"], c, kid="kid-ed")
    r = au.upgrade(srv, token=tok)
    problems = []
    if r.status != 101:
        problems.append(f"EdDSA token with a kid added to the JWKS: {r.status} {r.body!r} (expected 101 after the "
                        f"unknown-kid re-read)")
    r = au.upgrade(srv, token=au.mint("ES256", keyring.good["p256"], au.claims(), kid="kid-nowhere"))
    try:
        au.check_401(r, "unknown_key", "ES256 token with a kid in no file")
    except AssertionError as e:
        problems.append(str(e))
    assert not problems, "\n".join(problems)


@pytest.mark.one_process("counts the one error line a process logs")
def test_bad_new_key_file_keeps_old_keys(kbridge, keyring, tmp_path):
    """The key file is replaced by garbage: one error line ("jwt keys not
    reloaded"), not repeated at every poll, and the old keys stay (tokens of
    the old kid accepted on all paths). A good file afterwards is loaded."""
    path = tmp_path / "jwks.json"
    old = keyring.good["ed25519"]
    path.write_bytes(jwks_bytes(("ed-1", old)))
    srv = kbridge(*ROUTE, "--jwt-key", str(path))
    time.sleep(1.1)
    write_atomic(path, b"this is { not a key file\n")
    au.wait_for(lambda: count_lines(srv, "jwt keys not reloaded"), 8, "'jwt keys not reloaded'")
    c = au.claims(sub="old-key")
    check_accepted(srv, au.mint("EdDSA", old, c, kid="ed-1"), "old-key", c["exp"], "old kid")
    time.sleep(4.5)                      # two more polls
    lines = [l for l in srv.log().splitlines() if "jwt keys not reloaded" in l]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n" + "\n".join(lines)
    assert re.search(r"\berror\b", lines[0]), f"not an error line: {lines[0]!r}"
    loaded = count_lines(srv, "jwt keys loaded")
    write_atomic(path, jwks_bytes(("ed-2", keyring.wrong["ed25519"])))
    au.wait_for(lambda: count_lines(srv, "jwt keys loaded") > loaded, 8, "'jwt keys loaded' for the good file")
    c = au.claims(sub="new-key")
    check_accepted(srv, au.mint("EdDSA", keyring.wrong["ed25519"], c, kid="ed-2"), "new-key", c["exp"], "new kid")


# ---------------------------------------------------------------- logs, start-up, no auth

def test_tokens_never_logged(kbridge, keyring):
    """--log-level debug; tokens good and bad on every path (header, query,
    auth message, refresh): none of them, not even their signature part,
    appears in the log; access_token in a logged path is REDACTED."""
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret, "--log-level", "debug")
    sec = keyring.good["hmac"]
    toks = [au.mint("HS256", sec, au.claims(sub=f"user-{i}")) for i in range(4)]
    bad = [au.tamper_signature(au.mint("HS256", sec, au.claims(sub="bad-1"))),
           au.mint("HS256", sec, au.claims(sub="bad-2", exp_in=-1000)),
           au.tamper_payload(au.mint("HS256", sec, au.claims(sub="bad-3")), sub="x")]
    ws = srv.ws(headers=[("Authorization", f"Bearer {toks[0]}")])
    ws.ping_ok()
    ws2 = srv.ws(f"/ws?channel=orders&access_token={toks[1]}&format=json")
    ws2.ping_ok()
    ws3, ack = au.auth_ws(srv, toks[2])
    assert ack.get("type") == "ack", ack
    r = ws3.request({"type": "auth", "token": toks[3], "id": "refresh"})
    assert r.get("type") == "ack", r
    for t in bad:
        assert au.upgrade(srv, token=t).status == 401
        assert au.upgrade(srv, f"/ws?access_token={t}&channel=orders").status == 401
        r = ws3.request({"type": "auth", "token": t, "id": "b"})
        assert r.get("code") == "UNAUTHORIZED", r
    au.wait_for(lambda: "websocket open" in srv.log() or srv.log().count("\n") > 5, 3, "log lines")
    time.sleep(0.3)
    log = srv.log()
    for t in toks + bad:
        h, p, s = t.split(".")
        assert t not in log, f"a token appears in the log ({srv.log_path})"
        assert s not in log, f"a token's signature appears in the log ({srv.log_path})"
        assert p not in log, f"a token's payload part appears in the log ({srv.log_path})"
    for m in re.finditer(r"access_token=([^&\s\"]*)", log):
        assert m.group(1) == "REDACTED", f"logged path shows access_token={m.group(1)[:20]}...: " \
                                         f"{log[max(0, m.start() - 80):m.end() + 20]!r}"


def test_sub_is_the_identity_in_stats_and_logs(kbridge, keyring):
    """The token's sub is the client's identity: in the admin /stats client
    list ("identity"; --admin-listen) and in the log line of its
    authentication."""
    from conftest import free_port
    import wsutil
    admin = free_port()
    srv = kbridge(*ROUTE, "--jwt-secret", keyring.secret, "--admin-listen", f"127.0.0.1:{admin}")
    a = srv.ws(headers=[("Authorization", f"Bearer {au.mint('HS256', keyring.good['hmac'], au.claims(sub='alice@x'))}")])
    b, ack = au.auth_ws(srv, au.mint("HS256", keyring.good["hmac"], au.claims(sub="bob@y")))
    assert ack.get("sub") == "bob@y", ack
    anon = srv.ws()
    for ws in (a, b, anon):
        ws.ping_ok()
    st = wsutil.get_json(admin, "/stats")
    rows = [row for v in st.values() if isinstance(v, list) for row in v
            if isinstance(row, dict) and "identity" in row]
    idents = sorted(str(r.get("identity")) for r in rows)
    assert "alice@x" in idents and "bob@y" in idents, f"/stats client identities: {idents} ({st!r:.600})"
    assert len(rows) == 3, f"/stats lists {len(rows)} clients with an identity field, expected 3: {rows!r}"
    log = srv.log()
    assert "alice@x" in log and "bob@y" in log, f"the subs are not in the log ({srv.log_path})"


BAD_KEY_FILES = {
    "missing": None,
    "empty": b"",
    "garbage": b"hello, I am not a key\n",
    "truncated-pem": b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n",
    "jwks-no-keys": b'{"keys":[]}',
    "jwks-bad-json": b'{"keys":[{"kty":"RSA","n":',
    "rsa-1024": "rsa1024",
}


@pytest.mark.parametrize("case", list(BAD_KEY_FILES))
def test_bad_key_file_at_start_exit_2(tmp_path, case):
    """A --jwt-key file that cannot be used: exit 2 before anything starts,
    one line that names the file."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    data = BAD_KEY_FILES[case]
    path = tmp_path / f"key-{case}.pem"
    if data == "rsa1024":
        data = au.public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    if data is not None:
        path.write_bytes(data)
    p = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0", "-t", "x", "--jwt-key", str(path)])
    out = p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")
    lines = [l for l in out.splitlines() if l.strip()]
    assert p.returncode == 2, f"{case}: exit {p.returncode}, expected 2; output={out!r}"
    assert len(lines) == 1, f"{case}: expected one line, got {lines!r}"
    assert str(path) in lines[0], f"{case}: {lines[0]!r} does not name {path}"


def test_bad_secret_file_at_start_exit_2(tmp_path):
    for name, data in (("missing", None), ("empty", b""), ("just-a-newline", b"\n")):
        path = tmp_path / f"secret-{name}"
        if data is not None:
            path.write_bytes(data)
        p = run_kbridge(["--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0", "-t", "x", "--jwt-secret", str(path)])
        out = p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")
        lines = [l for l in out.splitlines() if l.strip()]
        assert p.returncode == 2 and len(lines) == 1 and str(path) in lines[0], \
            f"--jwt-secret {name}: exit {p.returncode}, output {lines!r}"


def test_without_auth_flags_nothing_changes(kbridge):
    """No --jwt-key/--jwt-secret: an auth message is BAD_REQUEST (with its
    id); tokens on the upgrade are ignored (101); every channel may be read."""
    srv = kbridge(*ROUTE)
    ws = srv.ws()
    r = ws.request({"type": "auth", "token": "whatever", "id": "a"})
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST" and r.get("id") == "a", r
    r = ws.request({"action": "auth", "token": "whatever", "id": "b"})
    assert r.get("type") == "error" and r.get("code") == "BAD_REQUEST" and r.get("id") == "b", r
    assert_authenticated(ws, "no auth configured")
    r = ws.request({"action": "subscribe", "id": "all"})
    assert r.get("type") == "ack", r
    r = ws.request({"type": "list", "id": "l"})
    assert r.get("type") == "subscriptions", r
    ws2 = srv.ws("/ws?channel=orders&access_token=garbage", headers=[("Authorization", "Bearer garbage")])
    r = ws2.request({"type": "list", "id": "l"})
    assert [s.get("channel") for s in r.get("subscriptions", [])] == ["orders"], r
    time.sleep(0.2)
    ws2.ping_ok()
