"""Parts of DESIGN §3/§4 that this version does not implement (snapshots,
resume, MessagePack) are refused explicitly, never silently ignored: a
client asking to resume must not believe it got a replay."""
from wsutil import upgrade_headers


def upgrade_status(server, path):
    c = server.conn()
    c.send((f"GET {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in upgrade_headers()) + "\r\n").encode())
    r = c.read_response()
    return r.status, r.body


def test_upgrade_resume_and_msgpack_refused(server):
    status, body = upgrade_status(server, "/ws?resume=t:0:5")
    assert status == 400 and b"resume" in body
    status, body = upgrade_status(server, "/ws?format=msgpack")
    assert status == 400 and b"msgpack" in body
    status, _ = upgrade_status(server, "/ws?format=json")
    assert status == 101


def test_resume_and_refresh_messages_refused_connection_kept(server):
    c = server.ws()
    c.send_json({"type": "subscribe", "channel": "x", "resume": {"t:0": 5}, "id": 1})
    m = c.recv_json()
    assert m["type"] == "error" and m["code"] == "BAD_REQUEST" and m["id"] == 1 and "resume" in m["message"]
    c.send_json({"type": "refresh", "channel": "x", "id": 2})
    m = c.recv_json()
    assert m["type"] == "error" and m["code"] == "UNKNOWN_TYPE" and m["id"] == 2
    c.ping_ok()
