"""Resume (DESIGN §4) is not in this version: it is refused explicitly,
never silently ignored, so a client asking to resume cannot believe it got
a replay."""
from wsutil import upgrade_headers


def upgrade_status(server, path):
    c = server.conn()
    c.send((f"GET {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in upgrade_headers()) + "\r\n").encode())
    r = c.read_response()
    return r.status, r.body


def test_upgrade_resume_refused(server):
    status, body = upgrade_status(server, "/ws?resume=t:0:5")
    assert status == 400 and b"resume" in body
    status, _ = upgrade_status(server, "/ws?format=msgpack")
    assert status == 101


def test_subscribe_resume_refused_connection_kept(server):
    c = server.ws()
    c.send_json({"type": "subscribe", "channel": "x", "resume": {"t:0": 5}, "id": 1})
    m = c.recv_json()
    assert m["type"] == "error" and m["code"] == "BAD_REQUEST" and m["id"] == 1 and "resume" in m["message"]
    c.ping_ok()
