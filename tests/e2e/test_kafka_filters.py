"""Subscriptions and filters on real records: docs/protocol.md#subscribe,
#filters, #unsubscribe, #other-messages and #action-dialect.

Every filtered client's result is compared with a Python model of the rules:
- key: equal to the record key; "*" matches every record, null keys included;
- keys: any of them;
- filter / action-dialect fields: the payload must be a JSON object with that
  top-level field; "*" matches any value, else JSON equality with types
  ("5" != 5, true != 1);
- action dialect: "type" matches the message type, no channel = every
  channel, "channel" narrows.
An unfiltered observer client tells when everything was routed."""
import json

import pytest

from conftest import read_messages, ws_subscribe

ROUTES = ["-t", "trades=market:trade_data", "-t", "candles=market:candle", "-t", "misc"]
TOPICS = {"trades": 2, "candles": 1, "misc": 1}
CHAN = {"trades": ("market", "trade_data"), "candles": ("market", "candle"), "misc": ("misc", "misc")}

# (topic, partition, key, value bytes or None)
RECORDS = [
    ("trades", 0, "BTC/USDT", b'{"symbol":"BTC/USDT","side":"buy","qty":5,"px":"5"}'),
    ("trades", 1, "ETH/USDT", b'{"symbol":"ETH/USDT","side":"sell","qty":"5","flag":true}'),
    ("trades", 0, None, b'{"symbol":"BTC/USDT","side":null,"qty":6,"flag":1}'),
    ("trades", 1, "BTC/USDT", b'[1,2,3]'),
    ("trades", 0, "BTC/USDT", b'"side"'),
    ("trades", 1, "BTC/USDT", b"\xff\xfe side"),
    ("trades", 0, "XRP", b'{"symbol":"XRP/USDT","side":"buy","nested":{"side":"sell"}}'),
    ("trades", 1, "DOGE", b'{"symbol":"DOGE/USDT","nested":{"side":"buy"}}'),
    ("trades", 0, "BTC/USDT", b'{"other":1,"flag":false}'),
    ("trades", 1, "ETH/USDT", None),
    ("trades", 0, "", b'{"symbol":"", "side":"*"}'),
    ("candles", 0, "BTC/USDT", b'{"symbol":"BTC/USDT","timeframe":"5s","o":1}'),
    ("candles", 0, "ETH/USDT", b'{"symbol":"ETH/USDT","timeframe":"1m"}'),
    ("candles", 0, None, b'{"symbol":"SOL/USDT","timeframe":"5s"}'),
    ("candles", 0, "BTC/USDT", b'{"symbol":"BTC/USDT","type":"trade_data","timeframe":"5s"}'),
    ("candles", 0, "ETH/USDT", b'  {"symbol" : "ETH/USDT" , "timeframe":"5s"}  '),
    ("misc", 0, "BTC/USDT", b'{"symbol":"BTC/USDT","side":"buy"}'),
    ("misc", 0, None, b"plain text, not json"),
    ("misc", 0, "ETH/USDT", b'{"symbol":"ETH/USDT","qty":5.5,"side":"sell"}'),
    ("misc", 0, 'q"\u00e9\\k', b'{"symbol":"\\u0041\\"B","side":"sell"}'),
]


def payload_obj(value):
    """The payload as a JSON object, or None when it is not one."""
    if value is None:
        return None
    try:
        v = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return v if isinstance(v, dict) else None


def json_eq(a, b):
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def fields_match(fields, value):
    if not fields:
        return True
    obj = payload_obj(value)
    if obj is None:
        return False
    for f, want in fields.items():
        if f not in obj:
            return False
        if want != "*" and not json_eq(obj[f], want):
            return False
    return True


def native_match(sub, rec):
    topic, _, key, value = rec
    chans = sub.get("channels") or [sub["channel"]]
    if CHAN[topic][0] not in chans:
        return False
    if "key" in sub and not (sub["key"] == "*" or key == sub["key"]):
        return False
    if "keys" in sub and not ("*" in sub["keys"] or key in sub["keys"]):
        return False
    return fields_match(sub.get("filter"), value)


def action_match(sub, rec):
    topic, _, key, value = rec
    channel, mtype = CHAN[topic]
    if "channel" in sub and sub["channel"] != channel:
        return False
    if "type" in sub and sub["type"] != "*" and sub["type"] != mtype:
        return False
    fields = {k: v for k, v in sub.items() if k not in ("action", "type", "channel", "id")}
    return fields_match(fields, value)


NATIVE = {
    "key": {"channel": "market", "key": "BTC/USDT"},
    "keys": {"channel": "market", "keys": ["ETH/USDT", "XRP"]},
    "key-star": {"channel": "market", "key": "*"},
    "key-empty": {"channel": "market", "key": ""},
    "field-number": {"channel": "market", "filter": {"qty": 5}},
    "field-string": {"channel": "market", "filter": {"qty": "5"}},
    "field-star": {"channel": "market", "filter": {"side": "*"}},
    "field-null": {"channel": "market", "filter": {"side": None}},
    "field-true": {"channel": "market", "filter": {"flag": True}},
    "field-false": {"channel": "market", "filter": {"flag": False}},
    "field-toplevel-only": {"channel": "market", "filter": {"side": "buy"}},
    "field-literal-star-value": {"channel": "market", "filter": {"symbol": ""}},
    "key-and-field": {"channel": "market", "key": "BTC/USDT", "filter": {"side": "buy"}},
    "two-fields-two-channels": {"channels": ["market", "misc"],
                                "filter": {"symbol": "BTC/USDT", "side": "buy"}},
    "field-float": {"channel": "misc", "filter": {"qty": 5.5}},
    "whole-channel": {"channel": "misc"},
    "key-needing-escapes": {"channel": "misc", "key": 'q"\u00e9\\k'},
    "field-value-escaped-in-payload": {"channel": "misc", "filter": {"symbol": 'A"B'}},
    "keys-and-field-star": {"channels": ["market", "misc"], "keys": ["ETH/USDT"],
                            "filter": {"timeframe": "*"}},
}

ACTION = {
    "type-and-symbol": {"action": "subscribe", "type": "trade_data", "symbol": "BTC/USDT"},
    "candle-star-timeframe": {"action": "subscribe", "type": "candle", "symbol": "*", "timeframe": "5s"},
    "symbol-any-type": {"action": "subscribe", "symbol": "BTC/USDT"},
    "type-only": {"action": "subscribe", "type": "misc"},
    "channel-narrows": {"action": "subscribe", "channel": "misc", "symbol": "*"},
    "type-star": {"action": "subscribe", "type": "*", "symbol": "ETH/USDT"},
    "side-buy": {"action": "subscribe", "side": "buy"},
    "number-field": {"action": "subscribe", "qty": 5},
}


def produce_all(mk):
    for topic, p, key, value in RECORDS:
        mk.produce(topic, value, key=key, partition=p)


def describe(rec):
    return f"{rec[0]}:{rec[1]} key={rec[2]!r} value={rec[3]!r}"


def run_cases(srv, mk, cases, match, path="/ws"):
    clients = {}
    for name, sub in cases.items():
        c = srv.ws(path)
        req = dict(sub, id=name) if "action" in sub else dict(sub, type="subscribe", id=name)
        ack = ws_subscribe(c, req)
        assert ack.get("id") == name and ack.get("action") == "subscribe", ack
        echo = ack.get("subscription")
        assert isinstance(echo, dict), f"{name}: ack without subscription object: {ack}"
        for k, v in sub.items():
            if k in ("action", "channel", "channels"):
                continue
            if k == "type" and "action" not in sub:
                continue
            assert k in echo and echo[k] == v, f"{name}: ack.subscription {echo} lacks {k}={v!r}"
        clients[name] = c
    obs = srv.ws()
    ws_subscribe(obs, {"type": "subscribe", "channels": ["market", "misc"]})
    produce_all(mk)
    seen = read_messages(obs, len(RECORDS), timeout=15)
    index = {}
    for m in seen:
        index[m.pos()] = m
    assert len(index) == len(RECORDS), "observer got duplicates"
    # map positions back to RECORDS (offsets within each partition follow production order)
    counters, pos_of = {}, []
    for rec in RECORDS:
        k = (rec[0], rec[1])
        pos_of.append((rec[0], rec[1], counters.get(k, 0)))
        counters[k] = counters.get(k, 0) + 1
    errors = []
    quiet = 0.5             # the first client waits; the rest got theirs meanwhile
    for name, c in clients.items():
        got = read_messages(c, None, timeout=3, quiet=quiet)
        quiet = 0.1
        got_pos = [m.pos() for m in got]
        want_pos = [pos_of[i] for i, rec in enumerate(RECORDS) if match(cases[name], rec)]
        if len(set(got_pos)) != len(got_pos):
            errors.append(f"{name}: duplicates {got_pos}")
        extra = [describe(RECORDS[pos_of.index(p)]) for p in set(got_pos) - set(want_pos)]
        missing = [describe(RECORDS[pos_of.index(p)]) for p in set(want_pos) - set(got_pos)]
        if extra or missing:
            errors.append(f"{name} {cases[name]}:\n    unexpected: {extra}\n    missing: {missing}")
        for m in got:               # each delivered message is the observer's, unchanged
            assert m.raw == index[m.pos()].raw, (m, index[m.pos()])
    assert not errors, "\n".join(errors)


@pytest.mark.one_process("compares seq across connections: seq is per process")
def test_native_key_and_field_filters(mock_kafka, kafka_bridge):
    mk = mock_kafka(TOPICS)
    srv = kafka_bridge(mk, *ROUTES)
    run_cases(srv, mk, NATIVE, native_match)


@pytest.mark.one_process("compares seq across connections: seq is per process")
def test_action_dialect_filters(mock_kafka, kafka_bridge):
    mk = mock_kafka(TOPICS)
    srv = kafka_bridge(mk, *ROUTES)
    run_cases(srv, mk, ACTION, action_match, path="/ws/crypto")


def test_overlapping_subscriptions_each_record_once(mock_kafka, kafka_bridge):
    mk = mock_kafka(TOPICS)
    srv = kafka_bridge(mk, *ROUTES)
    c = srv.ws()
    subs = [{"type": "subscribe", "channel": "market", "key": "BTC/USDT"},
            {"type": "subscribe", "channel": "market", "filter": {"side": "buy"}},
            {"type": "subscribe", "channels": ["market", "misc"], "key": "*"},
            {"action": "subscribe", "symbol": "BTC/USDT"}]
    for s in subs:
        ws_subscribe(c, s)
    reply = c.request({"type": "list", "id": "L"})
    assert reply.get("type") == "subscriptions" and reply.get("id") == "L", reply
    # the listing's shape is not specified; a multi-channel subscribe may be
    # listed once per channel
    assert isinstance(reply.get("subscriptions"), list) and \
        len(subs) <= len(reply["subscriptions"]) <= len(subs) + 1, reply
    produce_all(mk)
    got = read_messages(c, len(RECORDS), timeout=10)
    got += read_messages(c, None, timeout=2, quiet=0.5)
    pos = [m.pos() for m in got]
    assert len(pos) == len(set(pos)) == len(RECORDS), \
        f"{len(pos)} messages for {len(RECORDS)} records ({len(pos) - len(set(pos))} duplicates)"


def test_list_unsubscribe_and_ids(mock_kafka, kafka_bridge):
    """list / list_subscriptions, unsubscribe acks with the request id, and
    delivery stops after unsubscribe (both dialects)."""
    mk = mock_kafka(TOPICS)
    srv = kafka_bridge(mk, *ROUTES)
    c = srv.ws("/ws/crypto")
    a1 = ws_subscribe(c, {"type": "subscribe", "channel": "misc"}, ident=1)
    a2 = ws_subscribe(c, {"action": "subscribe", "type": "candle", "symbol": "*"}, ident="two")
    assert a1["id"] == 1 and a2["id"] == "two" and a2["action"] == "subscribe"
    assert a2["subscription"].get("type") == "candle" and a2["subscription"].get("symbol") == "*", a2
    for req in ({"type": "list", "id": 3}, {"action": "list_subscriptions", "id": 4}):
        r = c.request(req)
        assert r.get("type") == "subscriptions" and r.get("id") == req["id"], r
        assert len(r["subscriptions"]) == 2, r
        text = json.dumps(r["subscriptions"])
        assert "misc" in text and "candle" in text, r
    mk.produce("misc", b'{"n":1}', key="a")
    mk.produce("candles", b'{"symbol":"X","n":2}', key="a")
    first = read_messages(c, 2, timeout=10)
    assert sorted(m["type"] for m in first) == ["candle", "misc"], first

    u1 = c.request({"type": "unsubscribe", "channel": "misc", "id": 5})
    assert u1.get("type") == "ack" and u1.get("action") == "unsubscribe" and u1.get("id") == 5, u1
    r = c.request({"type": "list"})
    assert len(r["subscriptions"]) == 1, r
    mk.produce("misc", b'{"n":3}', key="a")
    mk.produce("candles", b'{"symbol":"X","n":4}', key="a")
    later = read_messages(c, 1, timeout=10) + read_messages(c, None, timeout=1, quiet=0.5)
    assert [m["data"]["n"] for m in later] == [4], [m.obj for m in later]

    u2 = c.request({"action": "unsubscribe", "type": "candle", "symbol": "*", "id": 6})
    assert u2.get("type") == "ack" and u2.get("action") == "unsubscribe" and u2.get("id") == 6, u2
    r = c.request({"action": "list_subscriptions"})
    assert r == {"type": "subscriptions", "subscriptions": []}, r
    mk.produce("misc", b'{"n":5}', key="a")
    mk.produce("candles", b'{"symbol":"X","n":6}', key="a")
    assert read_messages(c, None, timeout=1.5, quiet=1.0) == []
    c.ping_ok()


def assert_error(reply, code, ident=None):
    assert reply.get("type") == "error" and reply.get("code") == code, reply
    assert isinstance(reply.get("message"), str), reply
    if ident is not None:
        assert reply.get("id") == ident, reply


BAD = [
    ({"type": "subscribe", "key": "BTC/USDT"}, "BAD_REQUEST"),
    ({"type": "unsubscribe"}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "key": 5}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "keys": "BTC/USDT"}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "keys": [1, 2]}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "filter": "side"}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "filter": ["side"]}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "filter": {"side": {"a": 1}}}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "market", "filter": {"side": ["buy"]}}, "BAD_REQUEST"),
    ({"action": "subscribe", "symbol": {"a": 1}}, "BAD_REQUEST"),
    ({"action": "subscribe", "symbol": ["BTC/USDT"]}, "BAD_REQUEST"),
    ({"action": "subscribe", "channel": 5}, "BAD_REQUEST"),
    ({"action": "subscribe", "type": 5}, "BAD_REQUEST"),
    ({"type": "subscribe", "channel": "nope"}, "UNKNOWN_CHANNEL"),
    ({"type": "subscribe", "channels": ["market", "nope"]}, "UNKNOWN_CHANNEL"),
    ({"type": "bogus"}, "UNKNOWN_TYPE"),
    ({"action": "bogus"}, "UNKNOWN_TYPE"),
    ({"action": "refreshh"}, "UNKNOWN_TYPE"),
]


def test_errors_keep_connection_and_deliver_nothing(mock_kafka, kafka_bridge):
    mk = mock_kafka(TOPICS)
    srv = kafka_bridge(mk, *ROUTES)
    c = srv.ws()
    errors = []
    for i, (msg, code) in enumerate(BAD):
        reply = c.request(dict(msg, id=i))
        if not (reply.get("type") == "error" and reply.get("code") == code and reply.get("id") == i):
            errors.append(f"{msg} -> {reply} (expected {code})")
    for i, text in enumerate(["not json", "{", '{"type":"subscribe","channel":"market"']):
        reply = c.request(text)
        if not (reply.get("type") == "error" and reply.get("code") == "INVALID_JSON"):
            errors.append(f"{text!r} -> {reply} (expected INVALID_JSON)")
    assert not errors, "\n".join(errors)
    c.ping_ok()
    r = c.request({"type": "list"})
    assert r.get("subscriptions") == [], f"failed subscribes left subscriptions: {r}"
    produce_all(mk)
    assert read_messages(c, None, timeout=1.5, quiet=1.0) == []
    # still usable
    ws_subscribe(c, {"type": "subscribe", "channel": "misc"})
    mk.produce("misc", b'{"after":1}')
    m = read_messages(c, 1, timeout=5)
    assert m[0]["data"] == {"after": 1}


def test_max_subscriptions(mock_kafka, kafka_bridge):
    mk = mock_kafka(TOPICS)
    srv = kafka_bridge(mk, *ROUTES, "--max-subscriptions", "2")
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "market", "key": "BTC/USDT"})
    ws_subscribe(c, {"action": "subscribe", "type": "misc"})
    reply = c.request({"type": "subscribe", "channel": "market", "key": "ETH/USDT", "id": "x"})
    assert_error(reply, "TOO_MANY_SUBSCRIPTIONS", "x")
    reply = c.request({"action": "subscribe", "symbol": "*", "id": "y"})
    assert_error(reply, "TOO_MANY_SUBSCRIPTIONS", "y")
    c.ping_ok()
    assert len(c.request({"type": "list"})["subscriptions"]) == 2
    mk.produce("trades", b'{"k":1}', key="ETH/USDT", partition=0)
    mk.produce("trades", b'{"k":2}', key="BTC/USDT", partition=0)
    mk.produce("misc", b'{"k":3}', key="ETH/USDT")
    got = read_messages(c, 2, timeout=10) + read_messages(c, None, timeout=1, quiet=0.5)
    assert sorted(m["data"]["k"] for m in got) == [2, 3], [m.obj for m in got]
    # room again after an unsubscribe
    u = c.request({"type": "unsubscribe", "channel": "market", "key": "BTC/USDT"})
    assert u.get("type") == "ack", u
    ws_subscribe(c, {"type": "subscribe", "channel": "market", "key": "ETH/USDT"})
