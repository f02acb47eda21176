#!/usr/bin/python3
"""tests/static/ws_live.py URL [N] [TIMEOUT_S]

Connects to kbridge's WebSocket endpoint URL (ws://ADDR:PORT/ws), subscribes
to the demo's "dashboard" channel and waits for N (default 5) live data
messages within TIMEOUT_S (default 15) seconds. Exits 0 when they arrived
with strictly increasing seq, 1 otherwise; prints one line either way.
"""
import asyncio
import json
import sys

import websockets


async def main(url, want, timeout):
    got = []
    async with websockets.connect(url, open_timeout=5, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": "dashboard"}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if ack.get("type") != "ack":
            return f"expected an ack, got {ack!r}"
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while len(got) < want:
            left = end - loop.time()
            if left <= 0:
                return f"only {len(got)} of {want} data messages in {timeout}s"
            m = json.loads(await asyncio.wait_for(ws.recv(), left))
            if m.get("channel") == "dashboard" and "data" in m and "seq" in m:
                got.append(m)
    seqs = [m["seq"] for m in got]
    if any(b <= a for a, b in zip(seqs, seqs[1:])):
        return f"seq not increasing: {seqs}"
    kinds = sorted({m["type"] for m in got})
    print(f"received {len(got)} live records over WebSocket: seq {seqs[0]}..{seqs[-1]}, "
          f"types {','.join(kinds)}, last topic={got[-1].get('topic')} offset={got[-1].get('offset')}")
    return None


if __name__ == "__main__":
    url = sys.argv[1]
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 15
    try:
        err = asyncio.run(asyncio.wait_for(main(url, want, timeout), timeout + 15))
    except Exception as e:  # noqa: BLE001 - any failure is the test's answer
        err = f"{type(e).__name__}: {e}"
    if err:
        print(f"ws_live: {err}")
        sys.exit(1)
