#!/usr/bin/python3
"""mint.py - writes the fixtures of tests/unit/test_jwt.c (and the seeds of
fuzz/fuzz_jwt.c) with libraries that are not kbridge: PyJWT signs the
ordinary tokens, `cryptography` makes the keys, the certificate and the odd
signatures, Python's hmac and base64 build the broken ones by hand.

usage: /usr/bin/python3 tests/unit/jwt/mint.py   (Debian: python3-jwt, python3-cryptography)

The private keys under private/ are made once and kept, so a new run signs
new tokens with the same keys (and fuzz/fuzz_jwt.c's copy of ec256.pem and
secret.txt stays right). Delete private/ to start over; then paste the new
ec256.pem and secret into fuzz/fuzz_jwt.c. Output: the key files here,
tokens.txt ("name token" per line) and fuzz/seeds/jwt/. The test, not this
script, says what each token must give.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import sys

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
PRIV = os.path.join(HERE, "private")
SEEDS = os.path.join(HERE, "..", "..", "..", "fuzz", "seeds", "jwt")

EXP_FAR = 4102444800        # 2100-01-01: the ordinary tokens never expire
EXPIRED = 1700000000        # 2023-11-14; the test's "now" is 1800000000
EDGE = 1800000000           # exp of the leeway token, equal to the test's now
NBF_FUTURE = 1900000000
AUD, ISS = "kbridge", "https://issuer.test"

SECRET = b"kbridge unit-test secret, 48 bytes long: 0123456"
SECRET_OTHER = b"another secret, not the one kbridge is given...."


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(name, data, mode="w"):
    with open(os.path.join(HERE, name), mode) as f:
        f.write(data)


def private_key(name, make):
    """The kept private key private/NAME.key, made by make() the first time."""
    path = os.path.join(PRIV, name + ".key")
    if not os.path.exists(path):
        os.makedirs(PRIV, exist_ok=True)
        with open(path, "wb") as f:
            f.write(make().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def spki(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def p521_with_short_x():
    """A P-521 key whose x has a leading zero byte, so its JWK can be
    written with the short coordinate some issuers produce."""
    while True:
        k = ec.generate_private_key(ec.SECP521R1())
        if k.public_key().public_numbers().x < 1 << 512:
            return k


def keys():
    k = {
        "rsa": private_key("rsa", lambda: rsa.generate_private_key(65537, 2048)),
        "rsa_other": private_key("rsa_other", lambda: rsa.generate_private_key(65537, 2048)),
        "rsa1024": private_key("rsa1024", lambda: rsa.generate_private_key(65537, 1024)),
        "ec256": private_key("ec256", lambda: ec.generate_private_key(ec.SECP256R1())),
        "ec256_other": private_key("ec256_other", lambda: ec.generate_private_key(ec.SECP256R1())),
        "ec384": private_key("ec384", lambda: ec.generate_private_key(ec.SECP384R1())),
        "ec384_other": private_key("ec384_other", lambda: ec.generate_private_key(ec.SECP384R1())),
        "ec521": private_key("ec521", lambda: ec.generate_private_key(ec.SECP521R1())),
        "ec521_other": private_key("ec521_other", lambda: ec.generate_private_key(ec.SECP521R1())),
        "ec521_short": private_key("ec521_short", p521_with_short_x),
        "eck1": private_key("eck1", lambda: ec.generate_private_key(ec.SECP256K1())),
        "ed25519": private_key("ed25519", ed25519.Ed25519PrivateKey.generate),
        "ed25519_other": private_key("ed25519_other", ed25519.Ed25519PrivateKey.generate),
        "x25519": private_key("x25519", x25519.X25519PrivateKey.generate),
    }
    return k


def certificate(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kbridge test issuer")])
    start = datetime.datetime(2020, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def uint(n, size=None):
    size = size or max(1, (n.bit_length() + 7) // 8)
    return b64u(n.to_bytes(size, "big"))


def jwk(key, **extra):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        d = {"kty": "RSA", "n": uint(nums.n), "e": uint(nums.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521",
               "secp256k1": "secp256k1"}[pub.curve.name]
        d = {"kty": "EC", "crv": crv, "x": uint(nums.x, size), "y": uint(nums.y, size)}
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        d = {"kty": "OKP", "crv": "Ed25519",
             "x": b64u(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}
    else:
        d = {"kty": "OKP", "crv": "X25519",
             "x": b64u(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}
    d.update(extra)
    return d


def jwks(k):
    short = jwk(k["ec521_short"], kid="ec-521-short")
    # Drop the leading zero byte of x: 65 bytes instead of 66.
    x = base64.urlsafe_b64decode(short["x"] + "==")
    assert x[0] == 0
    short["x"] = b64u(x[1:])
    doc = {"keys": [
        jwk(k["rsa"], kid="rsa-1", use="sig"),
        jwk(k["rsa_other"], kid="rsa-ps", alg="PS256"),
        jwk(k["ec256"], kid="ec-256", alg="ES256"),
        jwk(k["ec384"], kid="ec-384"),
        jwk(k["ec521"], kid="ec-521"),
        short,
        jwk(k["ed25519"], kid="ed-1", alg="EdDSA"),
        # Skipped: a secret, a key for encryption, curves without our JWS algorithm.
        {"kty": "oct", "kid": "hmac", "k": b64u(SECRET)},
        jwk(k["rsa"], kid="rsa-enc", use="enc"),
        jwk(k["eck1"], kid="k1"),
        jwk(k["x25519"], kid="x1"),
    ]}
    write("jwks.json", json.dumps(doc, indent=1) + "\n")
    write("jwks_unusable.json", json.dumps({"keys": [doc["keys"][7], doc["keys"][8]]}) + "\n")
    write("jwks_rsa1024.json", json.dumps({"keys": [jwk(k["rsa1024"], kid="small")]}) + "\n")
    priv = jwk(k["ec256"], kid="private")
    priv["d"] = uint(k["ec256"].private_numbers().private_value, 32)
    write("jwks_private.json", json.dumps({"keys": [priv]}) + "\n")
    off = jwk(k["ec256"], kid="off")
    nums = k["ec256"].public_key().public_numbers()
    off["y"] = uint((nums.y + 1) % (1 << 256), 32)
    write("jwks_offcurve.json", json.dumps({"keys": [off]}) + "\n")
    padded = jwk(k["rsa"], kid="padded")
    padded["e"] += "=" * (-len(padded["e"]) % 4) or "=="
    write("jwks_padded.json", json.dumps({"keys": [padded]}) + "\n")
    write("jwks_nokeys.json", json.dumps({"key": [doc["keys"][0]]}) + "\n")
    write("not_json.json", '{"keys": [\n')


def key_files(k):
    for name in ("rsa", "rsa_other", "rsa1024", "ec256", "ec256_other", "ec384", "ec384_other",
                 "ec521", "ec521_other", "eck1", "ed25519", "ed25519_other"):
        write(name + ".pem", spki(k[name]))
    write("rsa_pkcs1.pem", k["rsa"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode())
    write("rsa.crt", certificate(k["rsa"]))
    # Several keys with text around them, as a bundle from an issuer looks.
    write("all.pem", "Issuer keys, rotated yearly.\n" + certificate(k["rsa"]) + "\n" + spki(k["ec256"])
          + "# P-384\n" + spki(k["ec384"]) + spki(k["ec521"]) + spki(k["ed25519"]))
    with open(os.path.join(PRIV, "ec256.key")) as f:
        write("private.pem", f.read())
    pem = spki(k["ec256"]).splitlines()
    write("truncated.pem", "\n".join(pem[:-1]) + "\n")
    write("garbage.txt", "this is neither a PEM file nor a JWKS document\n")
    write("secret.txt", SECRET + b"\n", "wb")
    write("secret_other.txt", SECRET_OTHER + b"\n", "wb")
    write("secret_crlf.txt", b"crlf secret\r\n", "wb")
    write("secret_nl.txt", b"two newlines\n\n", "wb")
    write("secret_empty.txt", b"\n", "wb")


def claims(**over):
    c = {"sub": "user-1", "iss": ISS, "aud": AUD, "exp": EXP_FAR, "iat": EXPIRED,
         "kbridge": {"channels": ["prices.*"]}}
    for name, value in over.items():
        if value is None:
            c.pop(name, None)
        else:
            c[name] = value
    return c


def manual(header, payload, sign):
    """header.payload.signature from raw bytes (or dicts), signed by sign(input)."""
    enc = lambda p: b64u(p if isinstance(p, bytes) else json.dumps(p, separators=(",", ":")).encode())
    signing_input = enc(header) + "." + enc(payload)
    return signing_input + "." + b64u(sign(signing_input.encode()))


def hs256(key):
    return lambda msg: hmac.new(key, msg, hashlib.sha256).digest()


def swap_payload(tok, payload):
    h, _, s = tok.split(".")
    return h + "." + b64u(json.dumps(payload).encode()) + "." + s


def flip_sig(tok):
    """A byte in the middle of the signature changed (a middle character, so
    the base64url stays canonical)."""
    h, p, s = tok.split(".")
    i = len(s) // 2
    s = s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    return h + "." + p + "." + s


def raw_sig(tok):
    return base64.urlsafe_b64decode(tok.split(".")[2] + "==")


def with_sig(tok, sig):
    h, p, _ = tok.split(".")
    return h + "." + p + "." + b64u(sig)


def tokens(k):
    t = {}
    signer = {"HS": SECRET, "RS": k["rsa"], "PS": k["rsa"], "ES256": k["ec256"], "ES384": k["ec384"],
              "ES512": k["ec521"], "EdDSA": k["ed25519"]}
    for alg in ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                "ES256", "ES384", "ES512", "EdDSA"):
        key = signer.get(alg) or signer[alg[:2]]
        t[alg.lower()] = jwt.encode(claims(sub="user-" + alg), key, alg)
    enc = lambda c, key, alg, **h: jwt.encode(c, key, alg, headers=h or None)

    # JWKS: by kid, and kids that lead nowhere or to the wrong kind of key.
    t["rs256_kid"] = enc(claims(), k["rsa"], "RS256", kid="rsa-1")
    t["ps384_kid"] = enc(claims(), k["rsa"], "PS384", kid="rsa-1")
    t["ps256_kidps"] = enc(claims(), k["rsa_other"], "PS256", kid="rsa-ps")
    t["rs256_kidps"] = enc(claims(), k["rsa_other"], "RS256", kid="rsa-ps")     # the JWK says PS256
    t["es256_kid"] = enc(claims(), k["ec256"], "ES256", kid="ec-256")
    t["es384_kid"] = enc(claims(), k["ec384"], "ES384", kid="ec-384")
    t["es512_kid"] = enc(claims(), k["ec521"], "ES512", kid="ec-521")
    t["es512_short_kid"] = enc(claims(), k["ec521_short"], "ES512", kid="ec-521-short")
    t["eddsa_kid"] = enc(claims(), k["ed25519"], "EdDSA", kid="ed-1")
    t["rs256_kid_ec"] = enc(claims(), k["rsa"], "RS256", kid="ec-256")        # kid of an EC key
    t["rs256_kid_unknown"] = enc(claims(), k["rsa"], "RS256", kid="nope")
    t["rs256_kid_enc"] = enc(claims(), k["rsa"], "RS256", kid="rsa-enc")      # skipped: "use":"enc"
    t["es256_kid_wrong"] = enc(claims(), k["ec256_other"], "ES256", kid="ec-256")
    t["hs256_kid"] = enc(claims(), SECRET, "HS256", kid="hmac")
    t["es256_other"] = enc(claims(), k["ec256_other"], "ES256")               # no kid, no such key

    # Changed after signing.
    for name in ("hs256", "rs256", "ps256", "es256", "es512", "eddsa"):
        t[name + "_payload"] = swap_payload(t[name], claims(sub="admin"))
        t[name + "_sig"] = flip_sig(t[name])

    # ECDSA signatures that are not the 2 x curve-size pair of RFC 7518 §3.4.
    sig = raw_sig(t["es256"])
    t["es256_short"] = with_sig(t["es256"], sig[:-1])
    t["es256_long"] = with_sig(t["es256"], sig + b"\0")
    t["es256_zero_pad"] = with_sig(t["es256"], b"\0" + sig[:-1])              # shifted: right length, wrong value
    hdr, pay = t["es256"].split(".")[:2]
    der = k["ec256"].sign((hdr + "." + pay).encode(), ec.ECDSA(hashes.SHA256()))
    t["es256_der"] = with_sig(t["es256"], der)                                # a valid DER signature
    t["es256_sig96"] = with_sig(t["es256"], raw_sig(t["es384"]))              # P-384 length under ES256
    # PSS with the maximum salt instead of the hash length; RS256 header over a PSS signature.
    ps_hdr = b64u(json.dumps({"alg": "PS256", "typ": "JWT"}).encode())
    pss_in = (ps_hdr + "." + pay).encode()
    t["ps256_saltmax"] = ps_hdr + "." + pay + "." + b64u(k["rsa"].sign(
        pss_in, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256()))
    t["ps256_mgf1_sha1"] = ps_hdr + "." + pay + "." + b64u(k["rsa"].sign(
        pss_in, padding.PSS(padding.MGF1(hashes.SHA1()), 32), hashes.SHA256()))
    rs_hdr = b64u(json.dumps({"alg": "RS256"}).encode())
    t["rs256_pss"] = rs_hdr + "." + pay + "." + b64u(k["rsa"].sign(
        (rs_hdr + "." + pay).encode(), padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()))

    # Time, audience, issuer, claim types.
    t["expired"] = enc(claims(exp=EXPIRED), SECRET, "HS256")
    t["rs256_expired"] = enc(claims(exp=EXPIRED), k["rsa"], "RS256")
    t["edge"] = enc(claims(exp=EDGE, nbf=EDGE - 1000), SECRET, "HS256")
    t["nbf_future"] = enc(claims(nbf=NBF_FUTURE), SECRET, "HS256")
    t["aud_wrong"] = enc(claims(aud="someone-else"), SECRET, "HS256")
    t["aud_array"] = enc(claims(aud=["a", AUD, "b"]), SECRET, "HS256")
    t["aud_array_wrong"] = enc(claims(aud=["a", "b"]), SECRET, "HS256")
    t["aud_missing"] = enc(claims(aud=None), SECRET, "HS256")
    t["aud_number"] = enc(claims(aud=5), SECRET, "HS256")
    t["aud_array_number"] = enc(claims(aud=[AUD, 5]), SECRET, "HS256")
    t["aud_escaped"] = manual({"alg": "HS256"}, b'{"aud":"kbr\\u0069dge","exp":4102444800,"iss":"https://issuer.test"}',
                              hs256(SECRET))
    t["iss_wrong"] = enc(claims(iss="https://evil.test"), SECRET, "HS256")
    t["iss_missing"] = enc(claims(iss=None), SECRET, "HS256")
    t["iss_number"] = enc(claims(iss=7), SECRET, "HS256")
    t["exp_missing"] = enc(claims(exp=None), SECRET, "HS256")
    t["exp_string"] = enc(claims(exp=str(EXP_FAR)), SECRET, "HS256")
    t["exp_null"] = manual({"alg": "HS256"}, b'{"exp":null}', hs256(SECRET))
    t["exp_fraction"] = manual({"alg": "HS256"}, b'{"exp":4102444800.75,"nbf":1500000000.25}', hs256(SECRET))
    t["exp_huge"] = manual({"alg": "HS256"}, b'{"exp":1e300}', hs256(SECRET))
    t["nbf_string"] = enc(claims(nbf="0"), SECRET, "HS256")
    t["sub_number"] = enc(claims(sub=12), SECRET, "HS256")
    t["sub_absent"] = enc(claims(sub=None), SECRET, "HS256")
    # 254 ASCII bytes then a two-byte character across the 255-byte cut.
    t["sub_long"] = enc(claims(sub="a" * 254 + "\u00e9" + "b" * 40), SECRET, "HS256")
    t["sub_escaped"] = manual({"alg": "HS256"}, b'{"exp":4102444800,"sub":"caf\\u00e9 \\"x\\""}', hs256(SECRET))

    # Algorithms that must never verify, and algorithm confusion.
    none_hdr = b64u(b'{"alg":"none","typ":"JWT"}')
    body = b64u(json.dumps(claims()).encode())
    t["alg_none"] = none_hdr + "." + body + "."
    t["alg_none_sig"] = none_hdr + "." + body + "." + t["hs256"].split(".")[2]
    t["alg_none_upper"] = manual({"alg": "NONE"}, claims(), lambda m: b"")
    t["alg_lower"] = manual({"alg": "hs256"}, claims(), hs256(SECRET))
    t["alg_unknown"] = manual({"alg": "HS1"}, claims(), hs256(SECRET))
    t["alg_es256k"] = manual({"alg": "ES256K"}, claims(), hs256(SECRET))
    with open(os.path.join(HERE, "rsa.pem"), "rb") as f:
        rsa_pem = f.read()
    # PyJWT refuses a PEM as an HMAC secret; the attacker uses hmac directly.
    t["hs256_rsa_pem"] = manual({"alg": "HS256", "typ": "JWT"}, claims(), hs256(rsa_pem))
    t["hs256_crlf"] = enc(claims(), b"crlf secret", "HS256")
    t["hs256_nl"] = enc(claims(), b"two newlines\n", "HS256")

    # Malformed.
    good = t["hs256"]
    h, p, s = good.split(".")
    t["two_parts"] = h + "." + p
    t["four_parts"] = good + "." + s
    t["empty_parts"] = ".."
    t["empty_sig"] = h + "." + p + "."
    t["header_padded"] = h + "=" * (-len(h) % 4 or 4) + "." + p + "." + s
    t["payload_padded"] = h + "." + p + "=" * (-len(p) % 4 or 4) + "." + s
    t["sig_padded"] = h + "." + p + "." + s + "="
    t["header_plus"] = h[:4] + "+" + h[5:] + "." + p + "." + s
    t["payload_slash"] = h + "." + p[:6] + "/" + p[7:] + "." + s
    t["sig_space"] = h + "." + p + "." + s[:10] + " " + s[11:]
    t["header_lone_char"] = h + "A." + p + "." + s                          # length 4k+1
    # Non-zero bits after the last whole byte (a 22-byte header: 30 characters).
    odd = manual(b'{"alg":"HS256","x":12}', claims(), hs256(SECRET)).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(odd[0]) % 4 == 2 and alphabet.index(odd[0][-1]) % 16 == 0
    t["header_bits_control"] = ".".join(odd)
    odd[0] = odd[0][:-1] + alphabet[alphabet.index(odd[0][-1]) + 1]
    t["header_bits"] = ".".join(odd)
    t["payload_not_json"] = manual({"alg": "HS256"}, b'{"exp":', hs256(SECRET))
    t["payload_trailing"] = manual({"alg": "HS256"}, b'{"exp":4102444800}x', hs256(SECRET))
    t["payload_array"] = manual({"alg": "HS256"}, b'[{"exp":4102444800}]', hs256(SECRET))
    t["payload_bad_utf8"] = manual({"alg": "HS256"}, b'{"exp":4102444800,"sub":"\xff"}', hs256(SECRET))
    t["header_array"] = manual(["HS256"], claims(), hs256(SECRET))
    t["header_string"] = manual(b'"HS256"', claims(), hs256(SECRET))
    t["header_not_json"] = manual(b'{alg:HS256}', claims(), hs256(SECRET))
    t["header_no_alg"] = manual({"typ": "JWT"}, claims(), hs256(SECRET))
    t["header_alg_number"] = manual({"alg": 256}, claims(), hs256(SECRET))
    t["header_alg_null"] = manual({"alg": None}, claims(), hs256(SECRET))
    t["header_kid_number"] = manual({"alg": "HS256", "kid": 1}, claims(), hs256(SECRET))
    t["header_crit"] = manual({"alg": "HS256", "crit": ["exp"], "exp": 1}, claims(), hs256(SECRET))
    t["header_b64_false"] = manual({"alg": "HS256", "b64": False, "crit": ["b64"]}, claims(), hs256(SECRET))
    t["header_jwk"] = manual({"alg": "ES256", "jwk": jwk(k["ec256_other"])}, claims(),
                             lambda m: raw_es(k["ec256_other"], m, hashes.SHA256(), 32))
    t["header_deep"] = manual(b'{"alg":"HS256","x":' + b"[" * 20 + b"]" * 20 + b"}", claims(), hs256(SECRET))
    t["jwe"] = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"
    return t


def raw_es(key, msg, h, size):
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(h)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def seeds(t):
    """Inputs for fuzz/fuzz_jwt.c, whose keys are secret.txt and ec256.pem:
    tokens as they are, and (raw_*) a header's and a payload's JSON joined
    by a NUL byte, which the target encodes and signs with HS256 itself."""
    os.makedirs(SEEDS, exist_ok=True)
    for name in ("hs256", "es256", "hs256_kid", "es256_kid", "expired", "nbf_future", "aud_array",
                 "exp_fraction", "exp_missing", "sub_long", "alg_none", "es256_der", "header_crit",
                 "payload_not_json", "hs256_payload", "es256_short", "rs256", "eddsa"):
        with open(os.path.join(SEEDS, name), "w") as f:
            f.write(t[name])
    for name in ("hs256", "aud_array", "sub_escaped", "sub_long", "exp_fraction", "edge", "aud_number",
                 "iss_wrong", "nbf_future", "hs256_kid"):
        h, p = (base64.urlsafe_b64decode(s + "==") for s in t[name].split(".")[:2])
        with open(os.path.join(SEEDS, "raw_" + name), "wb") as f:
            f.write(h + b"\0" + p)


def main():
    k = keys()
    key_files(k)
    jwks(k)
    t = tokens(k)
    with open(os.path.join(HERE, "tokens.txt"), "w") as f:
        for name in sorted(t):
            f.write("%s %s\n" % (name, t[name]))
    seeds(t)
    # Every ordinary token verifies with PyJWT itself: the fixtures are sound.
    pub = {"HS": SECRET, "RS": k["rsa"].public_key(), "PS": k["rsa"].public_key(),
           "ES256": k["ec256"].public_key(), "ES384": k["ec384"].public_key(),
           "ES512": k["ec521"].public_key(), "EdDSA": k["ed25519"].public_key()}
    for alg in ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                "ES256", "ES384", "ES512", "EdDSA"):
        jwt.decode(t[alg.lower()], pub.get(alg) or pub[alg[:2]], [alg], audience=AUD, issuer=ISS)
    print("mint.py: %d tokens, keys in %s" % (len(t), HERE), file=sys.stderr)


if __name__ == "__main__":
    main()
