"""authutil.py - keys, tokens and small checks for the authentication tests
(test_auth.py, test_auth_permissions.py; docs/security.md).

Every key is made at test time with `cryptography` (Debian's python3-
cryptography) into a pytest temporary directory, and every token is minted
with Debian's PyJWT (`import jwt`), except the few no library will make
(alg none, an HMAC keyed with a public key's PEM, broken base64url), which
are put together by hand here.

`keyring` (a session fixture) holds, for each kind, a key kbridge is given
("good") and one it is not ("wrong"): RSA 2048, EC P-256/P-384/P-521,
Ed25519, and the HMAC secret; the public halves as one PEM file of public
keys, one PEM file of self-signed X.509 certificates, and JWKS documents.
"""
import base64
import datetime
import json
import os
import re
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

import wsutil
from wsutil import recv_until  # noqa: F401 (used as au.recv_until)

# alg -> the kind of key that signs it
ALG_KIND = {
    "HS256": "hmac", "HS384": "hmac", "HS512": "hmac",
    "RS256": "rsa", "RS384": "rsa", "RS512": "rsa",
    "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
    "ES256": "p256", "ES384": "p384", "ES512": "p521",
    "EdDSA": "ed25519",
}
ASYMMETRIC = [a for a, k in ALG_KIND.items() if k != "hmac"]
HMAC_ALGS = [a for a, k in ALG_KIND.items() if k == "hmac"]

# reason -> the text beside it in the 401 body and the auth error
REASON_TEXT = {
    "malformed": "malformed token",
    "algorithm": "algorithm not allowed",
    "unknown_key": "unknown key",
    "signature": "bad signature",
    "expired": "token expired",
    "not_yet_valid": "token not yet valid",
    "missing_exp": "token has no exp",
    "audience": "wrong audience",
    "issuer": "wrong issuer",
}
REASONS = list(REASON_TEXT)

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def b64u(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _new_key(kind):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "p521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "hmac":
        return os.urandom(32).hex().encode("ascii")
    raise ValueError(kind)


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def self_signed_cert_pem(key, cn="kbridge test issuer"):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=2)))
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(key, algo).public_bytes(serialization.Encoding.PEM)


def jwk_of(key, kid=None, alg=None):
    """The public JWK of a private key (PyJWT's own encoders)."""
    pub = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        d = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pub))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        # Not PyJWT 2.6's to_jwk: it drops leading zero bytes of x and y,
        # which RFC 7518 §6.2.1.2 forbids (they are the full coordinate size).
        n = (pub.curve.key_size + 7) // 8
        nums = pub.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[pub.curve.name]
        d = {"kty": "EC", "crv": crv, "x": b64u(nums.x.to_bytes(n, "big")), "y": b64u(nums.y.to_bytes(n, "big"))}
    else:
        d = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(pub))
    d.pop("key_ops", None)
    if kid is not None:
        d["kid"] = kid
    if alg is not None:
        d["alg"] = alg
    return d


class Keyring:
    def __init__(self, d):
        self.dir = str(d)
        self.good = {k: _new_key(k) for k in ("rsa", "p256", "p384", "p521", "ed25519", "hmac")}
        self.wrong = {k: _new_key(k) for k in self.good}
        self.pub_pem = self.write("pub.pem", b"".join(public_pem(self.good[k])
                                                      for k in ("rsa", "p256", "p384", "p521", "ed25519")))
        self.cert_pem = self.write("certs.pem", b"".join(self_signed_cert_pem(self.good[k])
                                                         for k in ("rsa", "p256", "p384", "p521", "ed25519")))
        self.rsa_pub_pem_bytes = public_pem(self.good["rsa"])
        self.rsa_pem = self.write("rsa.pem", self.rsa_pub_pem_bytes)
        # the secret file ends with one newline, which is not part of the secret
        self.secret = self.write("secret", self.good["hmac"] + b"\n")

    def write(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def key_for(self, alg, wrong=False):
        return (self.wrong if wrong else self.good)[ALG_KIND[alg]]


@pytest.fixture(scope="session")
def keyring(tmp_path_factory):
    return Keyring(tmp_path_factory.mktemp("jwtkeys"))


def claims(channels=("*",), keys=None, filt=None, sub="alice", exp_in=300, extra=None, claim="kbridge",
           perm=True, **kw):
    """A claims set: exp now+exp_in (None: no exp), the permission object."""
    now = int(time.time())
    c = {"sub": sub, "iat": now}
    if exp_in is not None:
        c["exp"] = now + exp_in
    if perm:
        p = {}
        if channels is not None:
            p["channels"] = list(channels)
        if keys is not None:
            p["keys"] = list(keys)
        if filt is not None:
            p["filter"] = dict(filt)
        c[claim] = p
    if sub is None:
        del c["sub"]
    c.update(extra or {})
    c.update(kw)
    return c


def mint(alg, key, payload, kid=None, headers=None):
    h = dict(headers or {})
    if kid is not None:
        h["kid"] = kid
    tok = jwt.encode(payload, key, algorithm=alg, headers=h or None)
    return tok if isinstance(tok, str) else tok.decode("ascii")


def hand_token(header, payload, signature=b""):
    """header.payload.signature from objects (or raw bytes), unchecked."""
    def part(x):
        if isinstance(x, (dict, list)):
            x = json.dumps(x, separators=(",", ":"))
        return b64u(x)
    return f"{part(header)}.{part(payload)}.{b64u(signature)}"


def hs_with_bytes(alg, secret, payload, header_extra=None):
    """An HS token keyed with arbitrary bytes (PyJWT refuses a PEM as an
    HMAC secret, which is exactly the algorithm-confusion token)."""
    algo = {"HS256": hashes.SHA256(), "HS384": hashes.SHA384(), "HS512": hashes.SHA512()}[alg]
    header = dict({"alg": alg, "typ": "JWT"}, **(header_extra or {}))
    signing = f"{b64u(json.dumps(header, separators=(',', ':')))}.{b64u(json.dumps(payload, separators=(',', ':')))}"
    h = hmac.HMAC(secret, algo)
    h.update(signing.encode("ascii"))
    return f"{signing}.{b64u(h.finalize())}"


def hs_sign_parts(secret, header_part, payload_part, alg="HS256"):
    """header_part.payload_part (taken as they are, even when they are not
    valid base64url) with a correct HMAC over them."""
    algo = {"HS256": hashes.SHA256(), "HS384": hashes.SHA384(), "HS512": hashes.SHA512()}[alg]
    h = hmac.HMAC(secret, algo)
    h.update(f"{header_part}.{payload_part}".encode("ascii"))
    return f"{header_part}.{payload_part}.{b64u(h.finalize())}"


def hs_with_bytes_raw(secret, payload_bytes):
    """A correctly signed HS256 token whose payload is these bytes."""
    return hs_sign_parts(secret, b64u('{"alg":"HS256","typ":"JWT"}'), b64u(payload_bytes))


def tamper_payload(tok, **changes):
    h, p, s = tok.split(".")
    obj = json.loads(b64u_dec(p))
    obj.update(changes)
    return f"{h}.{b64u(json.dumps(obj, separators=(',', ':')))}.{s}"


def tamper_signature(tok):
    h, p, s = tok.split(".")
    sig = bytearray(b64u_dec(s))
    sig[len(sig) // 2] ^= 0x01
    return f"{h}.{p}.{b64u(bytes(sig))}"


# ---------------------------------------------------------------- HTTP / WS

def upgrade(srv, path="/ws", token=None, scheme="Bearer", extra=None):
    """A raw upgrade request; returns the Response (101 or an error). The
    connection is closed afterwards."""
    hdrs = list(extra or [])
    if token is not None:
        hdrs.append(("Authorization", f"{scheme} {token}"))
    return srv.http("GET", path, headers=wsutil.upgrade_headers(extra=hdrs))


def check_401(r, reason, what=""):
    """A refused upgrade: 401, WWW-Authenticate Bearer error="invalid_token",
    JSON {"error": text, "reason": reason}."""
    assert r.status == 401, f"{what}: expected 401 ({reason}), got {r!r}"
    www = r.header("WWW-Authenticate") or ""
    assert re.match(r'^Bearer\s+error="invalid_token"', www, re.I), \
        f"{what}: WWW-Authenticate {www!r}, expected Bearer error=\"invalid_token\""
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{what}: 401 body is not JSON: {r.body!r}")
    assert body.get("reason") == reason, f"{what}: 401 reason {body.get('reason')!r}, expected {reason!r}: {body!r}"
    assert body.get("error") == REASON_TEXT[reason], \
        f"{what}: 401 error text {body.get('error')!r}, expected {REASON_TEXT[reason]!r}"
    return body


def auth_ws(srv, token, ident="auth-1", action=False, path="/ws"):
    """Upgrades without a token and authenticates by message; returns (ws, ack)."""
    ws = srv.ws(path)
    msg = {"action" if action else "type": "auth", "token": token, "id": ident}
    return ws, ws.request(msg)


def check_auth_ack(reply, ident, sub, exp):
    assert reply.get("type") == "ack" and reply.get("action") == "auth", f"auth -> {reply!r}"
    assert reply.get("id") == ident, f"auth ack without the id {ident!r}: {reply!r}"
    assert reply.get("sub") == sub, f"auth ack sub {reply.get('sub')!r}, expected {sub!r}"
    e = reply.get("expires")
    assert isinstance(e, str) and ISO_UTC.match(e), f"expires {e!r} is not ISO-8601 UTC"
    when = datetime.datetime.fromisoformat(e.replace("Z", "+00:00")).timestamp()
    assert int(when) == exp, f"expires {e!r} is not the token's exp {exp} " \
        f"({datetime.datetime.utcfromtimestamp(exp).isoformat()}Z)"


def check_unauthorized_reply(reply, ident, reason):
    assert reply.get("type") == "error" and reply.get("code") == "UNAUTHORIZED", \
        f"expected UNAUTHORIZED ({reason}), got {reply!r}"
    assert reply.get("id") == ident, f"error without the id {ident!r}: {reply!r}"
    want = f"invalid token: {REASON_TEXT[reason]} ({reason})"
    assert reply.get("message") == want, f"message {reply.get('message')!r}, expected {want!r}"


def metrics(srv):
    """/metrics as {(name, labels): value}; labels a sorted tuple of pairs."""
    r = srv.http("GET", "/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def auth_failures(srv):
    """{reason: count} of kbridge_auth_failures_total."""
    out = {}
    for (name, labels), v in metrics(srv).items():
        if name == "kbridge_auth_failures_total":
            out[dict(labels).get("reason")] = v
    return out


def wait_for(pred, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(step)


