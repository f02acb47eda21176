#!/usr/bin/python3
"""tests/static/jwt_upgrade.py URL ALG PRIVATE_KEY_PEM

Mints a token with PyJWT (ALG: RS256, ES256, ...; signed with the private
key in PRIVATE_KEY_PEM, exp one minute ahead, permission to read every
channel), then against kbridge's WebSocket endpoint URL (ws://ADDR:PORT/ws,
started with --jwt-key holding the public key):
  - the upgrade with `Authorization: Bearer <token>` is a 101 and a
    subscribe to the demo's "dashboard" channel is acknowledged;
  - the same token with its signature tampered is a 401 whose JSON body
    says reason "signature", and with its payload tampered too.
Exits 0 when all hold, 1 otherwise; prints one line either way.
"""
import asyncio
import base64
import json
import sys
import time

import jwt
import websockets


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def tampered(tok):
    h, p, s = tok.split(".")
    sig = bytearray(unb64u(s))
    sig[len(sig) // 2] ^= 1
    bad_sig = f"{h}.{p}.{b64u(bytes(sig))}"
    claims = json.loads(unb64u(p))
    claims["sub"] = "mallory"
    bad_payload = f"{h}.{b64u(json.dumps(claims).encode())}.{s}"
    return bad_sig, bad_payload


async def refused(url, tok):
    """The 401's body reason, or a sentence when the upgrade was not refused."""
    try:
        async with websockets.connect(url, extra_headers={"Authorization": f"Bearer {tok}"},
                                      open_timeout=5, close_timeout=2):
            return "the upgrade succeeded"
    except websockets.exceptions.InvalidStatusCode as e:
        if e.status_code != 401:
            return f"HTTP {e.status_code} instead of 401"
        www = e.headers.get("WWW-Authenticate", "")
        if 'error="invalid_token"' not in www:
            return f"401 without WWW-Authenticate Bearer error=\"invalid_token\" ({www!r})"
    # websockets does not keep the body: ask again with a plain request
    reader, writer = await asyncio.open_connection(*url.split("//")[1].split("/")[0].split(":"))
    writer.write((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {tok}\r\n\r\n").encode())
    data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    try:
        return json.loads(body).get("reason")
    except ValueError:
        return f"401 body is not JSON: {body[:100]!r}"


async def main(url, alg, keyfile):
    with open(keyfile, "rb") as f:
        key = f.read()
    now = int(time.time())
    tok = jwt.encode({"sub": "static-test", "iat": now, "exp": now + 60, "kbridge": {"channels": ["*"]}},
                     key, algorithm=alg)
    async with websockets.connect(url, extra_headers={"Authorization": f"Bearer {tok}"},
                                  open_timeout=5, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": "dashboard", "id": 1}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if "topic" not in m:
                break
        if m.get("type") != "ack":
            return f"{alg}: subscribe with a valid token -> {m!r}"
    bad_sig, bad_payload = tampered(tok)
    for name, bad in (("signature", bad_sig), ("payload", bad_payload)):
        reason = await refused(url, bad)
        if reason != "signature":
            return f"{alg}: token with tampered {name}: {reason}"
    print(f"{alg}: valid token -> 101 and subscribed; tampered signature and payload -> 401 (reason signature)")
    return None


if __name__ == "__main__":
    try:
        err = asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), 30))
    except Exception as e:  # noqa: BLE001 - any failure is the test's answer
        err = f"{type(e).__name__}: {e}"
    if err:
        print(f"jwt_upgrade: {err}")
    sys.exit(1 if err else 0)
