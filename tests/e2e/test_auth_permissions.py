"""Permissions (docs/security.md#permissions) with real clients and the mock
Kafka cluster: what a token allows (`channels` globs, `keys`, a forced
`filter`, public channels) decides what each client receives, record by
record, compared with the list of records produced.

- channels: globs ('*' any run, dots included); a subscribe naming a
  channel outside them gets UNAUTHORIZED naming it and subscribes nothing;
  channel=/channels= on the upgrade: UNAUTHORIZED per refused channel after
  the 101. The action dialect without a channel needs "*".
- keys: none asked (or "*") = the permitted keys; a list = its intersection
  with them; an empty intersection = UNAUTHORIZED.
- filter: forced onto every subscription to a non-public channel, ANDed
  with the client's own.
- --public-channels: readable without a token, never narrowed.
- refresh: removes refused channels (UNAUTHORIZED each), narrows the rest,
  never widens.
- no leaks: snapshots (subscribe "snapshot":true, snapshot=1, refresh),
  resume replays (from the history and from Kafka with --history 0),
  conflation (interval, --slow-client conflate) and the state dialect
  (type=web) deliver only what the token allows.
Tokens are HS256, minted with PyJWT (authutil.py).
"""
import copy
import json
import time

import pytest

import authutil as au
from authutil import keyring  # noqa: F401  (session fixture)
from conftest import BulkReader, PacedProducer, is_data, read_messages, wait_channel_seq, ws_subscribe
from test_state_dialect import set_nested
from wsutil import WS


class Rec:
    """One produced record: topic, partition, offset, key, raw value, and
    .obj the parsed JSON value (None when not JSON)."""

    def __init__(self, topic, partition, offset, key, raw):
        self.topic, self.partition, self.offset, self.key, self.raw = topic, partition, offset, key, raw
        try:
            self.obj = json.loads(raw) if raw is not None else None
        except ValueError:
            self.obj = None

    def pos(self):
        return (self.topic, self.offset)

    def field(self, name, default=KeyError):
        if isinstance(self.obj, dict) and name in self.obj:
            return self.obj[name]
        return default

    def __repr__(self):
        return f"<{self.topic}@{self.offset} key={self.key!r} {self.raw!r:.80}>"


def routes(topics):
    out = []
    for t in topics:
        out += ["-t", t]
    return out


@pytest.fixture
def bridge(mock_kafka, kafka_bridge, keyring):
    """bridge(topics, *flags) -> (mock, kbridge) with --jwt-secret, every
    topic routed to the channel of its name, -o earliest."""
    def start(topics, *flags, mock=None):
        mk = mock or mock_kafka({t: 1 for t in topics})
        srv = kafka_bridge(mk, "-o", "earliest", *routes(topics), "--jwt-secret", keyring.secret, *flags)
        return mk, srv
    return start


def token(keyring, **kw):
    return au.mint("HS256", keyring.good["hmac"], au.claims(**kw))


def hdr(tok):
    return [("Authorization", f"Bearer {tok}")]


def produce(mk, specs):
    """specs: (topic, key, value) with value a JSON-able object, raw bytes,
    or None (tombstone). Returns [Rec]."""
    out = []
    for topic, key, value in specs:
        raw = value if isinstance(value, (bytes, type(None))) else json.dumps(value).encode()
        md = mk.produce(topic, raw, key=key)
        out.append(Rec(topic, md.partition, md.offset, key, raw))
    return out


def wait_routed(srv, recs, base=None):
    """Waits until /stats shows every channel routed its records (plus
    `base`, a {channel: count} routed before)."""
    per = dict(base or {})
    for r in recs:
        per[r.topic] = per.get(r.topic, 0) + 1
    for ch, n in per.items():
        wait_channel_seq(srv.port, ch, n, timeout=20)
    return per


def check_data(name, got, recs, want_pred):
    """got (DataMsg list) is exactly the records satisfying want_pred, each
    once, in offset order per topic, with the produced payload."""
    by_pos = {r.pos(): r for r in recs}
    got_pos = [(m["topic"], m["offset"]) for m in got]
    unknown = [p for p in got_pos if p not in by_pos]
    assert not unknown, f"{name}: delivered records that were never produced in this phase: {unknown[:5]}"
    want = [r.pos() for r in recs if want_pred(r)]
    extra = sorted(set(got_pos) - set(want))
    missing = sorted(set(want) - set(got_pos))
    assert not extra, f"{name}: records outside what it may/asked to read: " \
                      f"{[by_pos[p] for p in extra][:6]}"
    assert not missing, f"{name}: records it should have received are missing: " \
                        f"{[by_pos[p] for p in missing][:6]}"
    assert len(got_pos) == len(set(got_pos)), f"{name}: duplicates: {got_pos}"
    for t in {p[0] for p in got_pos}:
        offs = [o for tt, o in got_pos if tt == t]
        assert offs == sorted(offs), f"{name}: {t} out of order: {offs}"
    for m in got:
        r = by_pos[(m["topic"], m["offset"])]
        if r.obj is not None:
            assert m["data"] == r.obj, f"{name}: {r!r} delivered as {m['data']!r}"
        assert m.get("key") == r.key, f"{name}: {r!r} delivered with key {m.get('key')!r}"


def check_clients(srv, clients, recs):
    """Once recs are routed: each client ({name: (ws, pred)}) received
    exactly the records pred allows, and no control message."""
    wait_routed(srv, recs)
    for name, (ws, pred) in clients.items():
        data, controls = drain(ws)
        assert not controls, f"{name}: unexpected {controls!r}"
        check_data(name, data, recs, pred)


def drain(ws, quiet=0.6, timeout=20):
    controls = []
    data = read_messages(ws, quiet=quiet, timeout=timeout, controls=controls)
    return data, controls


def expect_unauthorized(reply, channel, ident=None, what=""):
    assert reply.get("type") == "error" and reply.get("code") == "UNAUTHORIZED", f"{what}: {reply!r}"
    if channel is not None:
        assert reply.get("channel") == channel, f"{what}: UNAUTHORIZED names {reply.get('channel')!r}, " \
                                                f"expected {channel!r}: {reply!r}"
    if ident is not None:
        assert reply.get("id") == ident, f"{what}: without the id {ident!r}: {reply!r}"


def subs_of(ws, ident="list"):
    r = ws.request({"type": "list", "id": ident})
    assert r.get("type") == "subscriptions", r
    return sorted(s.get("channel") for s in r.get("subscriptions", []))


# ---------------------------------------------------------------- channels

GLOB_TOPICS = ["orders.eu", "orders.us", "orders.eu.north", "ticker", "secret", "news"]


def test_channel_globs_and_refused_channels(bridge, keyring):
    """A token for ["orders.*", "tick*er"]: orders.eu, orders.us and
    orders.eu.north ('*' spans dots) and ticker ('*' matches nothing) are
    readable; secret and news are not. A subscribe with one refused channel
    subscribes nothing; the upgrade's channels= subscribes the readable ones
    and answers UNAUTHORIZED for each other. A token without the permission
    claim (or with channels []) reads nothing; the action dialect without a
    channel needs "*"; "*s" matches names ending in s."""
    mk, srv = bridge(GLOB_TOPICS)
    globs = ["orders.*", "tick*er"]
    t_glob = token(keyring, channels=globs)
    clients = {}

    full = srv.ws(headers=hdr(t_glob))
    ws_subscribe(full, {"type": "subscribe", "channels": ["orders.eu", "orders.us", "orders.eu.north", "ticker"]})
    clients["globs"] = (full, lambda r: r.topic in ("orders.eu", "orders.us", "orders.eu.north", "ticker"))

    for name, chans in (("mixed", ["ticker", "secret"]), ("mixed-refused-first", ["secret", "orders.eu"]),
                        ("news", ["news"])):
        ws = srv.ws(headers=hdr(t_glob))
        refused = [c for c in chans if c in ("secret", "news")][0]
        expect_unauthorized(ws.request({"type": "subscribe", "channels": chans, "id": name}), refused, name, name)
        assert subs_of(ws) == [], f"{name}: a refused subscribe left subscriptions"
        clients[name] = (ws, lambda r: False)

    up = srv.ws("/ws?channels=ticker,secret,orders.us", headers=hdr(t_glob))
    expect_unauthorized(up.recv_json(5), "secret", what="channels= on the upgrade")
    assert subs_of(up) == ["orders.us", "ticker"]
    clients["upgrade-mixed"] = (up, lambda r: r.topic in ("ticker", "orders.us"))

    up2 = srv.ws(f"/ws?channel=secret&access_token={t_glob}")
    expect_unauthorized(up2.recv_json(5), "secret", what="channel=secret on the upgrade")
    assert subs_of(up2) == []
    clients["upgrade-refused"] = (up2, lambda r: False)

    for name, tok in (("no-claim", au.mint("HS256", keyring.good["hmac"], au.claims(perm=False))),
                      ("no-channels", token(keyring, channels=None, keys=["a"])),
                      ("empty-channels", token(keyring, channels=[]))):
        ws = srv.ws(headers=hdr(tok))
        expect_unauthorized(ws.request({"type": "subscribe", "channel": "ticker", "id": name}), "ticker", name, name)
        r = ws.request({"action": "subscribe", "channel": "ticker", "id": name + "-a"})
        expect_unauthorized(r, "ticker", name + "-a", name + " (action dialect)")
        clients[name] = (ws, lambda r: False)

    act = srv.ws(headers=hdr(t_glob))
    r = act.request({"action": "subscribe", "id": "every"})
    expect_unauthorized(r, None, "every", "action dialect, every channel, token without '*'")
    ws_subscribe(act, {"action": "subscribe", "channel": "orders.eu"})
    clients["action-channel"] = (act, lambda r: r.topic == "orders.eu")

    suffix = srv.ws(headers=hdr(token(keyring, channels=["*s"])))
    ws_subscribe(suffix, {"type": "subscribe", "channels": ["news", "orders.us"]})
    expect_unauthorized(suffix.request({"type": "subscribe", "channel": "orders.eu", "id": "x"}), "orders.eu", "x")
    clients["suffix-glob"] = (suffix, lambda r: r.topic in ("news", "orders.us"))

    star = srv.ws(headers=hdr(token(keyring, channels=["*"])))
    ws_subscribe(star, {"action": "subscribe"})
    clients["star-action-all"] = (star, lambda r: True)

    recs = produce(mk, [(t, k, {"t": t, "k": k, "i": i}) for i, (t, k) in
                        enumerate((t, k) for t in GLOB_TOPICS for k in ("a", "b", None))])
    check_clients(srv, clients, recs)


# ---------------------------------------------------------------- keys

def test_key_narrowing(bridge, keyring):
    """A token with keys [a, b]: subscribe without key, with "*" or ["*"]
    gets exactly the a and b records (no null keys, no others); keys
    [b, c] gets b; key c or keys [c, d] is UNAUTHORIZED and subscribes
    nothing; the action dialect and channel= on the upgrade are narrowed
    the same way. A token without keys reads every key."""
    mk, srv = bridge(["ticker"])
    t = token(keyring, channels=["ticker"], keys=["a", "b"])
    clients = {}
    for name, sub, pred in (
        ("no-key", {}, lambda r: r.key in ("a", "b")),
        ("key-star", {"key": "*"}, lambda r: r.key in ("a", "b")),
        ("keys-star", {"keys": ["*"]}, lambda r: r.key in ("a", "b")),
        ("keys-b-c", {"keys": ["b", "c"]}, lambda r: r.key == "b"),
        ("key-a", {"key": "a"}, lambda r: r.key == "a"),
    ):
        ws = srv.ws(headers=hdr(t))
        ws_subscribe(ws, dict({"type": "subscribe", "channel": "ticker"}, **sub))
        clients[name] = (ws, pred)
    for name, sub in (("key-c", {"key": "c"}), ("keys-c-d", {"keys": ["c", "d"]}), ("key-A", {"key": "A"})):
        ws = srv.ws(headers=hdr(t))
        r = ws.request(dict({"type": "subscribe", "channel": "ticker", "id": name}, **sub))
        expect_unauthorized(r, None, name, name)
        assert subs_of(ws) == [], f"{name}: subscribed although refused"
        clients[name] = (ws, lambda r: False)
    act = srv.ws(headers=hdr(t))
    ws_subscribe(act, {"action": "subscribe", "channel": "ticker"})
    clients["action"] = (act, lambda r: r.key in ("a", "b"))
    act2 = srv.ws(headers=hdr(t))
    ws_subscribe(act2, {"action": "subscribe", "channel": "ticker", "side": "buy"})
    clients["action-side"] = (act2, lambda r: r.key in ("a", "b") and r.field("side", None) == "buy")
    up = srv.ws(f"/ws?channel=ticker&access_token={t}")
    clients["upgrade"] = (up, lambda r: r.key in ("a", "b"))
    allkeys = srv.ws(headers=hdr(token(keyring, channels=["ticker"])))
    ws_subscribe(allkeys, {"type": "subscribe", "channel": "ticker"})
    clients["token-without-keys"] = (allkeys, lambda r: True)

    specs = []
    for i in range(3):
        for k in ("a", "b", "c", "d", None, "A", "a ", "ab"):
            specs.append(("ticker", k, {"k": k, "i": i, "side": "buy" if i % 2 == 0 else "sell"}))
    recs = produce(mk, specs)
    check_clients(srv, clients, recs)


# ---------------------------------------------------------------- forced filter

FILTER_VALUES = [
    {"tenant": "acme", "side": "buy"},
    {"tenant": "acme", "side": "sell"},
    {"tenant": "globex", "side": "buy"},
    {"side": "buy"},
    {"tenant": "ACME", "side": "buy"},
    {"tenant": ["acme"]},
    {"nested": {"tenant": "acme"}},
    "acme",
    [1, 2],
    b"tenant=acme",
    {"tenant": "acme", "level": 3},
    {"tenant": "acme", "level": "3"},
    {"tenant": None},
]


def test_forced_filter_anded_with_the_clients(bridge, keyring):
    """A token with filter {"tenant":"acme"}: every subscription gets only
    records whose payload is an object with tenant == "acme" (JSON
    equality), ANDed with the client's own filter; a client filter on the
    same field cannot widen it; keys and filter together both apply; a
    number in the forced filter is not the string."""
    mk, srv = bridge(["ticker"])
    t = token(keyring, channels=["ticker"], filt={"tenant": "acme"})
    acme = lambda r: r.field("tenant", None) == "acme"  # noqa: E731
    clients = {}
    for name, sub, pred in (
        ("plain", {}, acme),
        ("side-buy", {"filter": {"side": "buy"}}, lambda r: acme(r) and r.field("side", None) == "buy"),
        ("tenant-star", {"filter": {"tenant": "*"}}, acme),
        ("key-b", {"key": "b"}, lambda r: acme(r) and r.key == "b"),
    ):
        ws = srv.ws(headers=hdr(t))
        ws_subscribe(ws, dict({"type": "subscribe", "channel": "ticker"}, **sub))
        clients[name] = (ws, pred)
    # A client filter contradicting the forced one: nothing may come (the
    # subscribe itself may be acked or refused).
    ws = srv.ws(headers=hdr(t))
    r = ws.request({"type": "subscribe", "channel": "ticker", "filter": {"tenant": "globex"}, "id": "g"})
    assert r.get("type") == "ack" or r.get("code") == "UNAUTHORIZED", r
    clients["tenant-globex"] = (ws, lambda r: False)
    act = srv.ws(headers=hdr(t))
    ws_subscribe(act, {"action": "subscribe", "channel": "ticker", "side": "sell"})
    clients["action-side-sell"] = (act, lambda r: acme(r) and r.field("side", None) == "sell")
    up = srv.ws(f"/ws?channel=ticker&access_token={t}")
    clients["upgrade"] = (up, acme)
    both = srv.ws(headers=hdr(token(keyring, channels=["ticker"], keys=["a"], filt={"tenant": "acme"})))
    ws_subscribe(both, {"type": "subscribe", "channel": "ticker"})
    clients["keys-and-filter"] = (both, lambda r: acme(r) and r.key == "a")
    num = srv.ws(headers=hdr(token(keyring, channels=["ticker"], filt={"level": 3})))
    ws_subscribe(num, {"type": "subscribe", "channel": "ticker"})
    clients["number-filter"] = (num, lambda r: r.field("level", None) == 3 and not isinstance(r.field("level"), str))
    two = srv.ws(headers=hdr(token(keyring, channels=["ticker"], filt={"tenant": "acme", "side": "buy"})))
    ws_subscribe(two, {"type": "subscribe", "channel": "ticker"})
    clients["two-field-filter"] = (two, lambda r: acme(r) and r.field("side", None) == "buy")

    specs = [("ticker", k, v) for i, v in enumerate(FILTER_VALUES * 2) for k in ["ab"[i % 2]]]
    recs = produce(mk, specs)
    check_clients(srv, clients, recs)


# ---------------------------------------------------------------- public channels

def test_public_channels_without_token_and_not_narrowed(bridge, keyring):
    """--public-channels news,pub.*: an unauthenticated client may subscribe
    to, list and refresh them and gets every record; a subscribe that also
    names a non-public channel is UNAUTHORIZED and subscribes nothing;
    channels= on the upgrade keeps the public ones. A token with keys and a
    filter reads the public channels whole and its own channel narrowed."""
    mk, srv = bridge(["news", "pub.x", "ticker"], "--public-channels", "news,pub.*")
    clients = {}
    anon = srv.ws()
    ws_subscribe(anon, {"type": "subscribe", "channel": "news"})
    ws_subscribe(anon, {"type": "subscribe", "channel": "pub.x"})
    assert subs_of(anon) == ["news", "pub.x"]
    clients["anon-public"] = (anon, lambda r: r.topic in ("news", "pub.x"))
    mixed = srv.ws()
    expect_unauthorized(mixed.request({"type": "subscribe", "channels": ["news", "ticker"], "id": "m"}), "ticker",
                        "m", "anonymous, news + ticker")
    assert subs_of(mixed) == []
    ws_subscribe(mixed, {"action": "subscribe", "channel": "news"})
    clients["anon-mixed-then-action"] = (mixed, lambda r: r.topic == "news")
    up = srv.ws("/ws?channels=news,ticker")
    expect_unauthorized(up.recv_json(5), "ticker", what="anonymous upgrade channels=news,ticker")
    clients["anon-upgrade"] = (up, lambda r: r.topic == "news")
    every = srv.ws()
    expect_unauthorized(every.request({"action": "subscribe", "id": "e"}), None, "e", "anonymous, every channel")
    clients["anon-every"] = (every, lambda r: False)
    t = token(keyring, channels=["ticker"], keys=["a"], filt={"tenant": "acme"})
    user = srv.ws(headers=hdr(t))
    ws_subscribe(user, {"type": "subscribe", "channels": ["news", "ticker", "pub.x"]})
    clients["token-narrowed"] = (user, lambda r: r.topic in ("news", "pub.x") or
                                 (r.key == "a" and r.field("tenant", None) == "acme"))

    specs = []
    for i in range(2):
        for topic in ("news", "pub.x", "ticker"):
            for k in ("a", "b", None):
                for tenant in ("acme", "globex"):
                    specs.append((topic, k, {"i": i, "tenant": tenant}))
    recs = produce(mk, specs)
    check_clients(srv, clients, recs)

    # Snapshots of a public channel are whole, with or without a token.
    newest = {}
    for r in recs:
        if r.topic == "news" and r.key is not None:
            newest[r.key] = r.obj
    for name, ws in (("anon", srv.ws()), ("token", srv.ws(headers=hdr(t)))):
        ws.send_json({"type": "subscribe", "channel": "news", "snapshot": True, "id": "s"})
        snap, _ = au.recv_until(ws, lambda o: o.get("type") == "snapshot", 5, f"{name}: snapshot of news")
        assert snap["data"] == newest, f"{name}: public snapshot {snap['data']!r}, expected {newest!r}"
        ws.send_json({"type": "refresh", "channel": "news", "id": "r"})
        snap, _ = au.recv_until(ws, lambda o: o.get("type") == "snapshot", 5, f"{name}: refresh of news")
        assert snap["data"] == newest, f"{name}: public refresh {snap['data']!r}"


def test_public_subscriber_outlives_auth_timeout(kbridge, keyring):
    """--auth-timeout 1: an unauthenticated reader of a public channel
    stays; one without a (public) subscription is closed 1008."""
    srv = kbridge("-t", "news", "-t", "ticker", "--jwt-secret", keyring.secret, "--public-channels", "news",
                  "--auth-timeout", "1")
    reader = srv.ws()
    ws_subscribe(reader, {"type": "subscribe", "channel": "news"})
    upgrade_reader = srv.ws("/ws?channel=news")
    idle = srv.ws()
    refused = srv.ws()
    expect_unauthorized(refused.request({"type": "subscribe", "channel": "ticker", "id": 1}), "ticker", 1)
    idle.expect_close(1008, timeout=8, reason="authentication required")
    refused.expect_close(1008, timeout=5, reason="authentication required")
    time.sleep(0.5)
    reader.ping_ok()
    upgrade_reader.ping_ok()


# ---------------------------------------------------------------- refresh

def collect_until(ws, done, timeout=5.0, what="messages"):
    seen = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout}s; got {seen!r}")
        try:
            seen.append(ws.recv_json(left))
        except TimeoutError:
            pass
    return seen


def test_refresh_removes_channels_the_new_token_refuses(bridge, keyring):
    """A second auth with fewer channels: each subscription on a channel it
    refuses is removed with UNAUTHORIZED naming the channel, the rest stay;
    then only those are delivered. The same for a state-dialect client,
    whose state then holds only the remaining channel."""
    mk, srv = bridge(["orders.eu", "orders.us", "ticker"])
    t1 = token(keyring, channels=["orders.*", "ticker"])
    t2 = token(keyring, channels=["ticker"])
    ws = srv.ws(headers=hdr(t1))
    ws_subscribe(ws, {"type": "subscribe", "channels": ["orders.eu", "orders.us", "ticker"]})
    st = srv.ws("/ws?type=web&format=json&channels=orders.eu,ticker", headers=hdr(t1))
    st_reader = BulkReader(st, "state")
    st_reader.wait_for(lambda objs: any(o.get("type") == "snapshot" for o in objs), 5, "first snapshot")

    ws.send_json({"type": "auth", "token": t2, "id": "r2"})
    seen = collect_until(ws, lambda s: any(o.get("type") == "ack" for o in s) and
                         sum(o.get("code") == "UNAUTHORIZED" for o in s) >= 2, 5, "ack + 2 UNAUTHORIZED")
    ack = [o for o in seen if o.get("type") == "ack"]
    assert ack and ack[0].get("action") == "auth" and ack[0].get("id") == "r2", seen
    named = sorted(o.get("channel") for o in seen if o.get("code") == "UNAUTHORIZED")
    assert named == ["orders.eu", "orders.us"], f"UNAUTHORIZED named {named}: {seen!r}"
    assert subs_of(ws) == ["ticker"]

    n_before = len(st_reader.objs())
    st.send_json({"type": "auth", "token": t2, "id": "r2"})
    st_reader.wait_for(lambda objs: any(o.get("type") == "ack" for o in objs[n_before:]) and
                       any(o.get("code") == "UNAUTHORIZED" for o in objs[n_before:]), 5, "state: ack + UNAUTHORIZED")
    errs = [o for o in st_reader.objs()[n_before:] if o.get("code") == "UNAUTHORIZED"]
    assert [o.get("channel") for o in errs] == ["orders.eu"], errs
    st_reader.wait_for(lambda objs: any(o.get("type") == "snapshot" for o in objs[n_before:]), 5,
                       "a snapshot after the set changed")
    n_mark = len(st_reader.objs())

    recs = produce(mk, [(t, k, {"t": t, "k": k}) for t in ("orders.eu", "orders.us", "ticker") for k in ("a", "b")])
    wait_routed(srv, recs)
    data, controls = drain(ws)
    assert not controls, controls
    check_data("refreshed", data, recs, lambda r: r.topic == "ticker")

    st_reader.wait_for(lambda objs: any(o.get("type") == "update" for o in objs[n_mark:]), 5, "an update")
    want = {"a": {"t": "ticker", "k": "a"}, "b": {"t": "ticker", "k": "b"}}
    st_reader.wait_for(lambda objs: [st.get("ticker") for _, st in states(objs)][-1:] == [want], 5,
                       "the ticker state of both records")
    time.sleep(0.6)                       # and nothing after it may bring orders.* back
    st_reader.stop()
    state = {}
    for o in st_reader.objs():
        if o.get("type") == "snapshot":
            state = copy.deepcopy(o["data"])
        elif o.get("type") == "update":
            for path in o["changes"]:
                assert not path.startswith("orders."), f"state update for a removed channel: {o!r}"
            for path, v in o["changes"].items():
                set_nested(state, path, copy.deepcopy(v))
    assert "orders.eu" not in state, f"state still holds orders.eu after the refresh: {state!r}"
    assert state.get("ticker") == want, state


def test_refresh_narrows_keys_and_filter_never_widens(bridge, keyring):
    """One client on ticker through five phases: all keys; refresh to keys
    [a, b] -> a and b; refresh to keys [a] + filter tenant=acme -> a/acme;
    refresh to a wider token -> still a/acme (a refresh never widens);
    subscribe again -> the wider token's whole view."""
    mk, srv = bridge(["ticker"])
    ws = srv.ws(headers=hdr(token(keyring, channels=["ticker"])))
    ws_subscribe(ws, {"type": "subscribe", "channel": "ticker"})
    routed = {}
    phases = [
        ("all keys", None, lambda r: True),
        ("keys a,b", token(keyring, channels=["ticker"], keys=["a", "b"]), lambda r: r.key in ("a", "b")),
        ("key a + acme", token(keyring, channels=["ticker"], keys=["a"], filt={"tenant": "acme"}),
         lambda r: r.key == "a" and r.field("tenant", None) == "acme"),
        ("wider again", token(keyring, channels=["ticker"], keys=["a", "b", "c"]),
         lambda r: r.key == "a" and r.field("tenant", None) == "acme"),
        ("subscribed again", "resubscribe", lambda r: r.key in ("a", "b", "c")),
    ]
    for i, (name, tok, pred) in enumerate(phases):
        if tok == "resubscribe":
            ws_subscribe(ws, {"type": "subscribe", "channel": "ticker"})
        elif tok is not None:
            r = ws.request({"type": "auth", "token": tok, "id": name})
            assert r.get("type") == "ack" and r.get("id") == name, f"{name}: {r!r}"
        recs = produce(mk, [("ticker", k, {"phase": i, "k": k, "tenant": t})
                            for k in ("a", "b", "c", "d", None) for t in ("acme", "globex")])
        routed = wait_routed(srv, recs, routed)
        data, controls = drain(ws)
        assert not controls, f"{name}: {controls!r}"
        check_data(name, data, recs, pred)


# ---------------------------------------------------------------- no leaks

# The token of the leak tests reads ticker, keys a and b, tenant acme.
LEAK_KEYS = ("a", "b")


def leak_token(keyring, **kw):
    return token(keyring, channels=["ticker", "tick"], keys=list(LEAK_KEYS), filt={"tenant": "acme"}, **kw)


def permitted(r):
    return r.key in LEAK_KEYS and r.field("tenant", None) == "acme"


def leak_specs(n_rounds=3, topic="ticker"):
    """Records where each key's newest value differs in kind: a ends acme,
    b ends globex (an older acme before it), c and d are never readable,
    null keys in between."""
    specs = []
    for i in range(n_rounds):
        specs += [(topic, "a", {"i": i, "tenant": "globex", "px": 100 + i}),
                  (topic, "a", {"i": i, "tenant": "acme", "px": 200 + i}),
                  (topic, "b", {"i": i, "tenant": "acme", "px": 300 + i}),
                  (topic, "b", {"i": i, "tenant": "globex", "px": 400 + i, "secret": "b-globex"}),
                  (topic, "c", {"i": i, "tenant": "acme", "px": 500 + i}),
                  (topic, "d", {"i": i, "tenant": "globex", "px": 600 + i}),
                  (topic, None, {"i": i, "tenant": "acme", "px": 700 + i})]
    return specs


def check_snapshot(name, snap, recs, channel="ticker"):
    """A native snapshot: only permitted keys, each value a permitted
    record's value of that key; where a key's newest record is permitted,
    that value."""
    assert snap.get("type") == "snapshot" and snap.get("channel") == channel, f"{name}: {snap!r}"
    data = snap.get("data")
    assert isinstance(data, dict), f"{name}: {snap!r}"
    ok_values = {}
    newest = {}
    for r in recs:
        if r.topic != channel or r.key is None:
            continue
        newest[r.key] = r
        if permitted(r):
            ok_values.setdefault(r.key, []).append(r.obj)
    for k, v in data.items():
        assert k in LEAK_KEYS, f"{name}: snapshot holds key {k!r} the token does not allow: {data!r}"
        assert v in ok_values.get(k, []), f"{name}: snapshot value of {k!r} is not a permitted record: {v!r}"
    for k in LEAK_KEYS:
        if k in newest and permitted(newest[k]):
            assert data.get(k) == newest[k].obj, f"{name}: snapshot {k!r} = {data.get(k)!r}, " \
                                                 f"newest permitted is {newest[k].obj!r}"


def test_snapshots_obey_the_token(bridge, keyring):
    """subscribe "snapshot":true, snapshot=1 on the upgrade, refresh of a
    channel and refresh of everything: only keys a/b with tenant acme, the
    newest where the newest is permitted (key a), never b's globex value nor
    c, d or null keys. A token without keys/filter gets the whole cache."""
    mk, srv = bridge(["ticker"])
    recs = produce(mk, [(t, k, v) for t, k, v in leak_specs()])
    wait_routed(srv, recs)
    t = leak_token(keyring)
    ws = srv.ws(headers=hdr(t))
    ws.send_json({"type": "subscribe", "channel": "ticker", "snapshot": True, "id": "s"})
    snap, seen = au.recv_until(ws, lambda o: o.get("type") == "snapshot", 5, "snapshot on subscribe")
    check_snapshot("subscribe snapshot:true", snap, recs)
    ws.send_json({"type": "refresh", "channel": "ticker", "id": "r1"})
    snap, _ = au.recv_until(ws, lambda o: o.get("type") == "snapshot", 5, "refresh ticker")
    check_snapshot("refresh ticker", snap, recs)
    ws.send_json({"type": "refresh", "id": "r2"})
    snap, _ = au.recv_until(ws, lambda o: o.get("type") == "snapshot", 5, "refresh")
    check_snapshot("refresh (all)", snap, recs)
    up = srv.ws(f"/ws?channel=ticker&snapshot=1&access_token={t}")
    snap, _ = au.recv_until(up, lambda o: o.get("type") == "snapshot", 5, "snapshot=1")
    check_snapshot("snapshot=1", snap, recs)
    # A refresh of a channel the token does not allow is refused; no snapshot.
    narrow = srv.ws(headers=hdr(token(keyring, channels=["other*"])))
    r = narrow.request({"type": "refresh", "channel": "ticker", "id": "x"})
    expect_unauthorized(r, "ticker", "x", "refresh of a refused channel")
    # The client's own key narrows further.
    kb = srv.ws(headers=hdr(t))
    kb.send_json({"type": "subscribe", "channel": "ticker", "key": "b", "snapshot": True, "id": "kb"})
    snap, _ = au.recv_until(kb, lambda o: o.get("type") == "snapshot", 5, "snapshot key b")
    check_snapshot("key b", snap, recs)
    whole = srv.ws(headers=hdr(token(keyring, channels=["ticker"])))
    whole.send_json({"type": "refresh", "channel": "ticker", "id": "w"})
    snap, _ = au.recv_until(whole, lambda o: o.get("type") == "snapshot", 5, "unrestricted refresh")
    want = {}
    for r in recs:
        if r.key is not None:
            want[r.key] = r.obj
    assert snap["data"] == want, f"unrestricted snapshot {snap['data']!r}"


def test_resume_obeys_the_token_history_and_kafka(mock_kafka, kafka_bridge, keyring):
    """Resume after offset 9, on subscribe and with resume= on the upgrade:
    from the history (kbridge that routed the records) and from Kafka
    (--history 0); the replay and the live records after it are exactly
    the permitted records after 9 (and of key b for a client asking b);
    an unrestricted client gets every record after 9."""
    mk = mock_kafka({"ticker": 1})
    base = ["-o", "earliest", "-t", "ticker", "--jwt-secret", keyring.secret]
    hist = kafka_bridge(mk, *base)
    recs = produce(mk, leak_specs(6))
    wait_routed(hist, recs)
    nohist = kafka_bridge(mk, *base, "--history", "0")
    wait_routed(nohist, recs)
    t = leak_token(keyring)
    everything = token(keyring, channels=["ticker"])
    after = 9
    clients = []
    for sname, srv in (("history", hist), ("kafka", nohist)):
        a = srv.ws(headers=hdr(t))
        a.send_json({"type": "subscribe", "channel": "ticker", "resume": {"ticker:0": after}, "id": "a"})
        clients.append((f"{sname}: subscribe resume", a, permitted))
        b = srv.ws(f"/ws?channel=ticker&resume=ticker:0:{after}&access_token={t}")
        clients.append((f"{sname}: upgrade resume=", b, permitted))
        c = srv.ws(headers=hdr(t))
        c.send_json({"type": "subscribe", "channel": "ticker", "key": "b", "resume": {"ticker:0": after}, "id": "c"})
        clients.append((f"{sname}: key b resume", c, lambda r: permitted(r) and r.key == "b"))
        d = srv.ws(headers=hdr(everything))
        d.send_json({"type": "subscribe", "channel": "ticker", "resume": {"ticker:0": after}, "id": "d"})
        clients.append((f"{sname}: unrestricted resume", d, lambda r: True))
    readers = [(n, BulkReader(ws, n), p) for n, ws, p in clients]
    time.sleep(1.0)
    live = produce(mk, leak_specs(2))
    allrecs = recs + live
    wait_routed(hist, allrecs)
    wait_routed(nohist, allrecs)
    last = allrecs[-1].offset
    for name, r, pred in readers:
        want_last = max((x.offset for x in allrecs if x.offset > after and pred(x)), default=None)
        r.wait_for(lambda objs: any(is_data(o) and o["offset"] == want_last for o in objs), 20,
                   f"offset {want_last}")
    time.sleep(0.5)
    for name, r, pred in readers:
        r.stop()
        errs = [o for o in r.controls() if o.get("type") == "error"]
        assert not errs, f"{name}: {errs!r}"
        check_data(name, r.data(), allrecs, lambda x, p=pred: x.offset > after and p(x))
    assert last > after


def check_conflated(name, objs, recs):
    """Conflated deliveries: each a permitted record as produced; per key
    values only move forward; each permitted key's last delivery is its
    newest permitted record."""
    by_off = {r.offset: r for r in recs}
    data = [o for o in objs if is_data(o)]
    assert data, f"{name}: nothing delivered"
    for o in data:
        r = by_off.get(o["offset"])
        assert r is not None, f"{name}: unknown offset {o['offset']}"
        assert permitted(r), f"{name}: delivered {r!r}, which the token does not allow"
        assert o["data"] == r.obj and o.get("key") == r.key, f"{name}: {o!r} vs {r!r}"
    for k in LEAK_KEYS:
        offs = [o["offset"] for o in data if o.get("key") == k]
        assert offs == sorted(set(offs)), f"{name}: key {k} offsets not increasing: {offs[:20]}"
        newest = max((r.offset for r in recs if r.key == k and permitted(r)), default=None)
        assert offs and offs[-1] == newest, f"{name}: key {k} last delivered {offs[-1:]}, newest permitted {newest}"


def test_conflation_obeys_the_token(mock_kafka, kafka_bridge, keyring):
    """interval=250 on the upgrade and "interval":250 on subscribe, while
    ~1000 records of keys a-d, tenants acme/globex arrive: only permitted
    records, and each permitted key ends on its newest permitted record."""
    mk = mock_kafka({"ticker": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "ticker", "--jwt-secret", keyring.secret)
    t = leak_token(keyring)
    up = BulkReader(srv.ws(f"/ws?channel=ticker&interval=250&access_token={t}"), "interval=250")
    sub = srv.ws(headers=hdr(t))
    ws_subscribe(sub, {"type": "subscribe", "channel": "ticker", "interval": 250})
    subr = BulkReader(sub, "subscribe interval")
    keys = "abcd"
    n, seconds = 1000, 2.0
    fmt_key = lambda i: keys[i % 4]  # noqa: E731
    fmt_value = lambda i: '{"i":%d,"tenant":"%s"}' % (i, "globex" if (i // 4) % 3 == 1 else "acme")  # noqa: E731
    prod = PacedProducer(mk, "ticker", n / seconds, seconds, fmt_key=fmt_key, fmt_value=fmt_value)
    count = prod.wait(60)
    recs = [Rec("ticker", 0, i, fmt_key(i), fmt_value(i).encode()) for i in range(count)]
    wait_channel_seq(srv.port, "ticker", count, timeout=30)
    for r in (up, subr):
        for k in LEAK_KEYS:
            newest = max(x.offset for x in recs if x.key == k and permitted(x))
            r.wait_for(lambda objs, nw=newest: any(is_data(o) and o["offset"] == nw for o in objs), 10,
                       f"key {k}'s newest permitted record (offset {newest})")
    time.sleep(0.6)
    for r in (up, subr):
        r.stop()
        errs = [o for o in r.controls() if o.get("type") == "error"]
        assert not errs, f"{r.name}: {errs!r}"
        check_conflated(r.name, r.objs(), recs)


def test_slow_client_conflate_obeys_the_token(mock_kafka, kafka_bridge, keyring):
    """--slow-client conflate --client-queue 32: a client that does not read
    while 20,000 records arrive keeps only the newest per key, and only of
    what its token allows."""
    mk = mock_kafka({"ticker": 1})
    srv = kafka_bridge(mk, "-o", "earliest", "-t", "ticker", "--jwt-secret", keyring.secret,
                       "--slow-client", "conflate", "--client-queue", "32")
    t = leak_token(keyring)
    c = srv.track(WS.connect(srv.port, "/ws", rcvbuf=4096, headers=hdr(t)))
    ws_subscribe(c, {"type": "subscribe", "channel": "ticker"})
    N = 20000
    keys = "abcd"

    def value(i):
        return b'{"i":%d,"tenant":"%s","pad":"%s"}' % (i, b"globex" if (i // 4) % 3 == 1 else b"acme", b"x" * 100)
    mk.kcat_produce("ticker", b"".join(b"%s\t%s\n" % (keys[i % 4].encode(), value(i)) for i in range(N)),
                    key_delim="\t")
    recs = [Rec("ticker", 0, i, keys[i % 4], value(i)) for i in range(N)]
    wait_channel_seq(srv.port, "ticker", N, timeout=30)
    r = BulkReader(c, "slow")
    for k in LEAK_KEYS:
        newest = max(x.offset for x in recs if x.key == k and permitted(x))
        r.wait_for(lambda objs, nw=newest: any(is_data(o) and o["offset"] == nw for o in objs), 15,
                   f"key {k}'s newest permitted record")
    time.sleep(0.5)
    r.stop()
    assert r.closed is None, f"closed: {r.closed}"
    bad = [o for o in r.controls() if o.get("type") == "error" and o.get("code") != "SLOW_CONSUMER"]
    assert not bad, bad
    check_conflated("slow client", r.objs(), recs)


def states(objs):
    """A state-dialect client's state after each of its snapshots and
    updates: (message, state) pairs."""
    state = {}
    for o in objs:
        if o.get("type") == "snapshot":
            state = copy.deepcopy(o["data"])
        elif o.get("type") == "update":
            for path, v in o["changes"].items():
                set_nested(state, path, copy.deepcopy(v))
        else:
            continue
        yield o, state


def test_state_dialect_obeys_the_token(bridge, keyring):
    """type=web clients (by header, and by an auth message) on ticker (and
    the public channel news): the snapshot and every update keep ticker's
    state to keys a/b with values of permitted records (never b's globex
    value, c, d or null-key records); news whole; channels= naming a
    refused channel is UNAUTHORIZED and left out of the state; a refresh's
    snapshot obeys the same."""
    mk, srv = bridge(["ticker", "news", "secret"], "--public-channels", "news")
    t = leak_token(keyring)
    first = produce(mk, leak_specs(2) + leak_specs(1, topic="news") + [("secret", "a", {"tenant": "acme"})])
    wait_routed(srv, first)
    a = srv.ws("/ws?type=web&format=json", headers=hdr(t))
    ra = BulkReader(a, "web-header")
    a.send_json({"type": "subscribe", "channels": ["ticker", "news"], "id": "s"})
    b = srv.ws("/ws?type=web&format=json")
    b.send_json({"type": "auth", "token": t, "id": "auth"})
    rb = BulkReader(b, "web-auth-message")
    rb.wait_for(lambda objs: any(o.get("type") == "ack" for o in objs), 5, "auth ack")
    b.send_json({"type": "subscribe", "channels": ["ticker", "news"], "id": "s"})
    c = srv.ws("/ws?type=web&format=json&channels=ticker,secret,news", headers=hdr(t))
    rc = BulkReader(c, "web-upgrade-channels")
    readers = [ra, rb, rc]
    for r in readers:
        r.wait_for(lambda objs: any(o.get("type") == "snapshot" for o in objs), 5, "snapshot")
    rc.wait_for(lambda objs: any(o.get("code") == "UNAUTHORIZED" for o in objs), 5, "UNAUTHORIZED secret")
    assert [o.get("channel") for o in rc.objs() if o.get("code") == "UNAUTHORIZED"] == ["secret"]

    later = produce(mk, leak_specs(3) + leak_specs(1, topic="news") + [("secret", "b", {"tenant": "acme"})])
    allrecs = first + later
    wait_routed(srv, allrecs)
    time.sleep(0.8)                       # two web periods: the last changes are out
    for r in readers:
        r.ws.send_json({"type": "refresh", "id": "refresh"})
    for r in readers:
        r.wait_for(lambda objs: sum(o.get("type") == "snapshot" for o in objs) >= 2, 5, "refresh snapshot")
    time.sleep(0.3)

    ok_values, newest, news = {}, {}, {}
    for r in allrecs:
        if r.topic == "ticker" and r.key is not None:
            newest[r.key] = r
            if permitted(r):
                ok_values.setdefault(r.key, []).append(r.obj)
        if r.topic == "news" and r.key is not None:
            news[r.key] = r.obj
    for r in readers:
        r.stop()
        errs = [o for o in r.controls() if o.get("type") == "error" and o.get("code") != "UNAUTHORIZED"]
        assert not errs, f"{r.name}: {errs!r}"
        state, n = {}, 0
        for o, state in states(r.objs()):
            n += 1
            assert "secret" not in state, f"{r.name}: message {n} put the refused channel in the state: {o!r}"
            tick = state.get("ticker") or {}
            for k, v in tick.items():
                assert k in LEAK_KEYS or v is None, \
                    f"{r.name}: message {n} ({o.get('type')}) holds ticker key {k!r}: {o!r:.400}"
                assert v is None or v in ok_values.get(k, []), \
                    f"{r.name}: message {n} ({o.get('type')}) leaves ticker.{k} = {v!r}, not a permitted value"
        tick = {k: v for k, v in (state.get("ticker") or {}).items() if v is not None}
        for k in LEAK_KEYS:
            if permitted(newest[k]):
                assert tick.get(k) == newest[k].obj, f"{r.name}: ticker.{k} = {tick.get(k)!r}, " \
                                                     f"expected {newest[k].obj!r}"
        assert state.get("news") == news, f"{r.name}: public news state {state.get('news')!r} != {news!r}"


def test_state_dialect_groups_by_the_token(bridge, keyring):
    """Two type=web clients asking the very same (channels=ticker on the
    URL) under different tokens share no updates: the narrowed one never
    sees a key or value only the other may read, however the state
    dialect groups its clients, also after a refresh narrows a token that
    first read everything."""
    mk, srv = bridge(["ticker"])
    wide = token(keyring, channels=["ticker"])
    a = srv.ws("/ws?type=web&format=json&channels=ticker", headers=hdr(wide))   # first in its group
    ra = BulkReader(a, "wide")
    b = srv.ws("/ws?type=web&format=json&channels=ticker", headers=hdr(leak_token(keyring)))
    rb = BulkReader(b, "narrow")
    c = srv.ws("/ws?type=web&format=json&channels=ticker", headers=hdr(wide))
    rc = BulkReader(c, "narrowed-by-refresh")
    for r in (ra, rb, rc):
        r.wait_for(lambda objs: any(o.get("type") == "snapshot" for o in objs), 5, "snapshot")
    c.send_json({"type": "auth", "token": leak_token(keyring), "id": "narrow"})
    rc.wait_for(lambda objs: any(o.get("type") == "ack" for o in objs), 5, "refresh ack")
    recs = produce(mk, leak_specs(3))
    wait_routed(srv, recs)
    ra.wait_for(lambda objs: {"c", "d"} <= set().union(*[set((st.get("ticker") or {}).keys())
                                                         for _, st in states(objs)]), 5, "keys c and d")
    for r in (rb, rc):
        r.wait_for(lambda objs: any(o.get("type") == "update" for o in objs), 5, "an update")
    time.sleep(0.8)                       # two web periods: the last changes are out
    for r in (ra, rb, rc):
        r.stop()
    ok = {}
    for r in recs:
        if permitted(r):
            ok.setdefault(r.key, []).append(r.obj)

    wide = set()
    for _, st in states(ra.objs()):
        wide |= set((st.get("ticker") or {}).keys())
    assert {"c", "d"} <= wide, f"the wide client should see c and d: {wide}"
    for r in (rb, rc):
        n = 0
        for o, st in states(r.objs()):
            n += 1
            for k, v in (st.get("ticker") or {}).items():
                assert k in LEAK_KEYS or v is None, f"{r.name}: message {n} holds ticker key {k!r}: {o!r:.300}"
                assert v is None or v in ok.get(k, []), f"{r.name}: message {n} leaves ticker.{k} = {v!r}"
        assert n >= 2, f"{r.name}: no update at all"


def test_no_resume_of_what_the_token_refuses(bridge, keyring):
    """A resume naming a topic whose channel the connection does not read
    (refused, or never subscribed) starts no replay: BAD_REQUEST naming
    it, on the upgrade URL (tokenless) and in a subscribe; a permitted
    resume still replays."""
    mk, srv = bridge(["ticker", "secret"], "--history", "0", "--public-channels", "ticker")
    recs = produce(mk, [("secret", "a", {"i": i}) for i in range(3)] + [("ticker", "a", {"i": 9})])
    wait_routed(srv, recs)
    ws = srv.ws("/ws?channels=secret&resume=secret:0:-1")
    got = [ws.recv_json(5), ws.recv_json(5)]
    expect_unauthorized(got[0], "secret", what="refused channel on the URL")
    assert got[1].get("code") == "BAD_REQUEST" and "secret:0" in got[1].get("message", ""), got
    ws.send_json({"type": "subscribe", "channel": "ticker", "resume": {"secret:0": -1}, "id": "r"})
    r = ws.recv_json(5)
    assert r.get("type") == "ack", r                # the public subscription itself stands
    r = ws.recv_json(5)
    assert r.get("code") == "BAD_REQUEST" and r.get("id") == "r" and "secret:0" in r.get("message", ""), r
    ws.send_json({"type": "subscribe", "channel": "ticker", "resume": {"ticker:0": -1}, "id": "ok"})
    data, _ = drain(ws)
    assert [m["data"] for m in data if m.get("topic") == "ticker"] == [{"i": 9}], data
    assert not [m for m in data if m.get("topic") == "secret"], data


def test_refresh_drops_what_conflation_held(bridge, keyring):
    """interval=6000 holds the newest record per key for up to 6 s: a
    refresh that takes the channel away (or narrows its keys) must not
    let a held record out afterwards."""
    mk, srv = bridge(["ticker", "other"])
    ws = srv.ws("/ws?interval=6000", headers=hdr(token(keyring, channels=["ticker", "other"])))
    assert ws.request({"type": "subscribe", "channels": ["ticker"], "id": "s"}).get("type") == "ack"
    nk = srv.ws("/ws?interval=6000", headers=hdr(token(keyring, channels=["ticker"])))
    assert nk.request({"type": "subscribe", "channel": "ticker", "id": "s"}).get("type") == "ack"
    recs = produce(mk, [("ticker", "c", {"v": "first"})])
    wait_routed(srv, recs)
    # the interval starts with this first send; the rest must happen
    # within it, with room for a loaded machine
    read_messages(ws, 1, timeout=10)
    read_messages(nk, 1, timeout=10)
    # The next ones wait in conflation for the rest of the interval.
    recs += produce(mk, [("ticker", "c", {"v": "held"}), ("ticker", "a", {"v": "held-a"})])
    wait_routed(srv, recs)
    ws.send_json({"type": "auth", "token": token(keyring, channels=["other"]), "id": "r"})
    nk.send_json({"type": "auth", "token": token(keyring, channels=["ticker"], keys=["a"]), "id": "r"})
    data, controls = drain(ws, quiet=7.0, timeout=12)
    assert not [m for m in data if m.get("data") == {"v": "held"}], f"revoked channel's held record: {data!r}"
    assert any(o.get("code") == "UNAUTHORIZED" and o.get("channel") == "ticker" for o in controls), controls
    data, controls = drain(nk, quiet=7.0, timeout=12)
    assert not [m for m in data if m.get("key") == "c"], f"narrowed-away key's held record: {data!r}"
