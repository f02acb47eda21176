"""Channels a regex route could produce (docs/protocol.md#overview) exist
while someone subscribes to them and are forgotten after: clients cannot
grow the channel table, and acks keep naming the channels correctly when
the last subscription goes (this ran into freed memory once; the suite also
runs under ASan)."""
import time

from conftest import settled
from wsutil import get_json


def test_regex_channels_come_and_go(kbridge):
    srv = kbridge("-t", "^rx-.*", "-t", "fixed")
    c = srv.ws()
    for i in range(30):
        name = f"rx-n{i}"
        c.send_json({"type": "subscribe", "channels": [name, "fixed"], "id": i})
        m = c.recv_json()
        assert m["type"] == "ack" and m["channels"] == [name, "fixed"], m
        c.send_json({"type": "unsubscribe", "channels": [name, "fixed"], "id": i})
        m = c.recv_json()
        assert m["type"] == "ack" and m["channels"] == [name, "fixed"] and m["removed"] == 2, m
        # a failing request must not leave channels behind either
        c.send_json({"type": "subscribe", "channels": [f"rx-f{i}", "nope"], "id": "f"})
        m = c.recv_json()
        assert m["code"] == "UNKNOWN_CHANNEL", m
    # channels are collected on the 250 ms timer tick (and with workers a
    # worker's table reaches /stats up to 50 ms later): the table settles
    # within a few ticks, and a subscribed channel never leaves it
    settles(srv, {"fixed"})
    c.send_json({"type": "subscribe", "channel": "rx-keep"})
    assert c.recv_json()["type"] == "ack"
    settles(srv, {"fixed", "rx-keep"})
    time.sleep(0.6)
    assert set(get_json(srv.port, "/stats")["channels"]) == {"fixed", "rx-keep"}
    c.close()
    settles(srv, {"fixed"})


def settles(srv, want):
    chans = settled(lambda: set(get_json(srv.port, "/stats")["channels"]), want)
    assert chans == want, f"/stats channels {sorted(chans)}, not {sorted(want)}"
