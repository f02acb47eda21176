"""Operability (docs/operations.md#monitoring, #logs, #signals-and-shutdown):
/metrics parsed by Prometheus' own text-format parser and checked against
known traffic, /stats and /ws/stats shape, /docs and /asyncapi.json from the
live routes, structured logs with secrets redacted, SIGHUP."""
import platform
import json
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import read_messages, settled, wait_channel_seq, ws_subscribe
from wsutil import get_json, http_request, upgrade_headers, Conn

N = 20


def metrics(port):
    r = http_request(port, "GET", "/metrics")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("text/plain; version=0.0.4"), r
    text = r.body.decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return text, fams


def sample(fams, family, name=None, **labels):
    for s in fams[family].samples:
        if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name or family} {labels} in {fams[family].samples}")


@pytest.fixture
def traffic(mock_kafka, kafka_bridge):
    """A bridge on two routes; two clients on channel 'obs' get N records."""
    mk = mock_kafka({"obs-t": 1, "other-t": 1})
    srv = kafka_bridge(mk, "-t", "obs-t=obs:obs_type", "-t", "other-t", "--allow-origin", "http://ok.example")
    clients = [srv.ws(), srv.ws()]
    for c in clients:
        ws_subscribe(c, {"type": "subscribe", "channel": "obs"})
    time.sleep(0.5)      # latest: start offsets settle after /ready
    for i in range(N):
        mk.produce("obs-t", '{"i":%d}' % i, key="k%d" % (i % 3))
    mk.flush()
    for c in clients:
        got = read_messages(c, N, timeout=15)
        assert len(got) == N
    # a refused origin counts as a rejected connection
    conn = Conn.open(srv.port)
    conn.send(("GET /ws HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in upgrade_headers(origin="http://evil.example")) + "\r\n").encode())
    assert conn.read_response().status == 403
    conn.close()
    return srv, mk, clients


def test_metrics_parse_and_count_traffic(traffic):
    srv, mk, clients = traffic
    # messages are counted when written in full, and with workers a worker
    # without clients may consume later than the one that served them: give
    # both a moment
    deadline = time.monotonic() + 10
    while True:
        text, fams = metrics(srv.port)
        done = (sample(fams, "kbridge_messages_sent", "kbridge_messages_sent_total") >= 2 * N and
                sample(fams, "kbridge_records_consumed", "kbridge_records_consumed_total",
                       topic="obs-t") >= N * srv.workers)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # every family of docs/operations.md#metrics with HELP and TYPE
    want = {
        "kbridge_clients": "gauge", "kbridge_connections": "counter", "kbridge_subscriptions": "gauge",
        "kbridge_records_consumed": "counter", "kbridge_messages_sent": "counter",
        "kbridge_bytes_sent": "counter", "kbridge_messages_dropped": "counter",
        "kbridge_slow_disconnects": "counter", "kbridge_consumer_lag": "gauge", "kbridge_kafka_up": "gauge",
        "kbridge_broadcast_latency_seconds": "histogram", "kbridge_build_info": "gauge",
    }
    for name, typ in want.items():
        assert name in fams, f"{name} missing from /metrics"
        assert fams[name].type == typ, (name, fams[name].type)
        assert fams[name].documentation, f"{name} has no HELP"
    assert f"# TYPE kbridge_connections_total counter" in text or "# TYPE kbridge_connections counter" in text
    assert sample(fams, "kbridge_clients") == 2
    assert sample(fams, "kbridge_connections", "kbridge_connections_total", result="accepted") == 2
    assert sample(fams, "kbridge_connections", "kbridge_connections_total", result="rejected_origin") == 1
    assert sample(fams, "kbridge_subscriptions", channel="obs") == 2
    # each worker consumes every record (docs/operations.md#workers)
    assert sample(fams, "kbridge_records_consumed", "kbridge_records_consumed_total", topic="obs-t") == N * srv.workers
    assert sample(fams, "kbridge_messages_sent", "kbridge_messages_sent_total") == 2 * N
    assert sample(fams, "kbridge_bytes_sent", "kbridge_bytes_sent_total") > 2 * N * 100
    assert sample(fams, "kbridge_messages_dropped", "kbridge_messages_dropped_total") == 0
    assert sample(fams, "kbridge_slow_disconnects", "kbridge_slow_disconnects_total") == 0
    assert sample(fams, "kbridge_kafka_up") == 1
    # one latency observation per record that reached a client (in each
    # worker that has one); buckets cumulative
    h = [s for s in fams["kbridge_broadcast_latency_seconds"].samples]
    count = [s.value for s in h if s.name.endswith("_count")][0]
    assert count % N == 0 and N <= count <= N * srv.workers, count
    buckets = [(s.labels["le"], s.value) for s in h if s.name.endswith("_bucket")]
    les = [float(le) for le, _ in buckets]
    assert les[0] == 0.0005 and les[-1] == float("inf") and 10.0 in les, les
    vals = [v for _, v in buckets]
    assert vals == sorted(vals) and vals[-1] == count
    bi = [s for s in fams["kbridge_build_info"].samples][0]
    assert bi.value == 1 and bi.labels["librdkafka"].startswith("2.15") and bi.labels["version"]
    assert bi.labels["target"].startswith(platform.machine() + "-linux-"), bi.labels


def test_stats_shape(traffic):
    srv, mk, clients = traffic
    # with workers, a channel's seq is what every worker has routed
    wait_channel_seq(srv.port, "obs", N)
    for path in ("/stats", "/ws/stats"):
        st = get_json(srv.port, path)
        assert st["clients"] == 2 and isinstance(st["uptime_s"], int) and st["kafka"] == "up"
        assert st["channels"]["obs"] == {"subscribers": 2, "seq": N}
        assert st["channels"]["other-t"]["subscribers"] == 0
        assert st["records_in"] == N * srv.workers
        assert isinstance(st["messages_out"], int) and isinstance(st["bytes_out"], int)
        assert st["dropped"] == 0
        assert "obs-t:0" in st["lag"]
        assert st["target"].startswith(platform.machine() + "-linux-"), st["target"]
        assert len(st["client_list"]) == 2
        for c in st["client_list"]:
            assert c["subscriptions"] == 1 and "peer" in c and "queued_bytes" in c
    # A channel-less action-dialect subscription covers every channel: it
    # counts toward each channel's subscriptions, in /stats and /metrics.
    w = srv.ws("/ws/crypto")
    assert w.request({"action": "subscribe", "type": "obs_type"}).get("type") == "ack"
    # with workers, the other worker may answer before this one's table
    # reaches it (at most 50 ms)
    settled(lambda: get_json(srv.port, "/stats")["channels"]["obs"]["subscribers"], 3)
    st = get_json(srv.port, "/stats")
    assert st["channels"]["obs"]["subscribers"] == 3 and st["channels"]["other-t"]["subscribers"] == 1, st["channels"]
    _, fams = metrics(srv.port)
    assert sample(fams, "kbridge_subscriptions", channel="obs") == 3
    w.close()


def test_docs_and_asyncapi_show_live_routes(traffic):
    srv, mk, clients = traffic
    r = http_request(srv.port, "GET", "/docs")
    assert r.status == 200 and r.header("content-type", "").startswith("text/html")
    html = r.body.decode()
    assert "<code>obs-t</code></td><td><code>obs</code></td><td><code>obs_type</code>" in html
    assert "<code>other-t</code>" in html
    for code in ("INVALID_JSON", "UNKNOWN_CHANNEL", "BAD_REQUEST", "SLOW_CONSUMER"):
        assert code in html
    doc = get_json(srv.port, "/asyncapi.json")
    assert doc["asyncapi"].startswith(("2.6", "3."))
    assert set(doc["channels"]) >= {"obs", "other-t"}
    assert "obs-t" in doc["channels"]["obs"]["description"] and "obs_type" in doc["channels"]["obs"]["description"]
    assert doc["components"]["messages"]["data"]["payload"]["type"] == "object"


def test_console_is_served(server):
    r = http_request(server.port, "GET", "/")
    assert r.status == 200 and r.header("content-type", "").startswith("text/html")
    assert b"<html" in r.body.lower() and b"/ws" in r.body


def test_json_logs_and_secret_redaction(kbridge):
    srv = kbridge("--log-format", "json", "-X", "sasl.password=hunter2", "-X", "client.id=visible-id")
    c = srv.ws()
    c.ping_ok()
    c.close()
    deadline = time.monotonic() + 5
    while "websocket closed" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [l for l in srv.log().splitlines() if l and not l.startswith("# ")]
    assert lines
    events = [json.loads(l) for l in lines]        # every line is one JSON object
    for e in events:
        assert {"ts", "level", "msg"} <= set(e), e
        assert e["ts"].endswith("Z") and e["level"] in ("debug", "info", "warn", "error")
    start = [e for e in events if e["msg"] == "starting"][0]
    assert not any("hunter2" in l for l in lines), "secret from -X leaked into the log"
    assert "sasl.password=***" in start["x"] and "client.id=visible-id" in start["x"]
    opened = [e for e in events if e["msg"] == "websocket open"]
    closed = [e for e in events if e["msg"] == "websocket closed"]
    assert opened and closed and closed[0].get("reason"), (opened, closed)


def test_sighup_is_ignored(server):
    c = server.ws()
    server.signal(signal.SIGHUP)
    # with workers, they log it once the master has passed the signal on
    settled(lambda: "SIGHUP ignored" in server.log(), True)
    assert server.alive()
    c.ping_ok()
    assert "SIGHUP ignored" in server.log()
