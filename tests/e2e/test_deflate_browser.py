"""test_deflate_browser.py - permessage-deflate with a browser's own
implementation: headless Chromium (tests/e2e/browser/deflate.mjs) opens a
WebSocket to kbridge through wsutil.FrameRelay, which records the RSV1 bit of
every frame. Records must arrive intact in the page, the big ones compressed
on the wire (docs/protocol.md#compression). Chromium and playwright-core are
installed on demand as in test_console.py; without them the test skips.
"""
import json
import os

from test_console import CHROMIUM, need_browser
from test_deflate import check_wire, run_peer
from wsutil import OP_TEXT, PMD_ANSWER, FrameRelay

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "browser", "deflate.mjs")


def test_chromium_negotiates_and_reads_compressed_records(mock_kafka, kafka_bridge):
    need_browser()
    mk = mock_kafka({"pmd": 1})
    srv = kafka_bridge(mk, "-t", "pmd")
    relay = FrameRelay(srv.port)
    values = ['{"i":0}', json.dumps({"i": 1, "text": " ".join(["chromium record"] * 200)}),
              '{"i":2}', json.dumps({"i": 3, "list": list(range(800))})]
    last, err = run_peer(["node", SCRIPT, f"http://127.0.0.1:{srv.port}/health",
                          f"ws://127.0.0.1:{relay.port}/ws?channel=pmd", str(len(values))],
                         lambda: [mk.produce("pmd", v, key="b") for v in values], relay, 40, 40,
                         env=dict(os.environ, CHROMIUM=CHROMIUM))
    assert last, f"browser script printed no result; stderr: {err}"
    res = json.loads(last)
    assert res["ok"], res
    # the page's ws.extensions is what kbridge answered
    assert res["extensions"] == PMD_ANSWER, res["extensions"]
    assert relay.answers == [PMD_ANSWER], relay.answers
    data = [m for m in res["messages"] if "offset" in m]
    assert [m["data"] for m in data] == [json.loads(v) for v in values], data
    # RSV1 exactly on the big records and the 2 KB pong (which may come first)
    check_wire(relay.data_frames(), res["messages"])
    assert all(rsv == 0 for _, _, rsv, _ in relay.control_frames()), relay.control_frames()
    # Chromium compressed its 2 KB ping: kbridge inflated it to answer
    assert [rsv for op, _, rsv, _ in relay.client_frames if op == OP_TEXT] == [4], relay.client_frames
