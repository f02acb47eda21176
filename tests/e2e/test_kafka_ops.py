"""Operations: Kafka going away and coming back
(docs/operations.md#health-and-readiness: /ready is 503 whenever Kafka is
down, /health reports kafka down within 10 s), consumer lag (#lag), --demo
(#demo), and configuration errors (#exit-status)."""
import json
import re
import subprocess
import time
import uuid

import pytest

from conftest import free_port, read_messages, run_kbridge, wait_status, ws_subscribe
from wsutil import get_json, http_request


def health(port):
    return get_json(port, "/health", timeout=2)


def wait_health_kafka(port, want, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        h = health(port)
        assert h.get("status") == "ok", h
        if h.get("kafka") == want:
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def test_broker_down_and_back(mock_kafka, kafka_bridge):
    mk = mock_kafka({"bd": 2})
    srv = kafka_bridge(mk, "-t", "bd")
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "bd"})
    assert health(srv.port)["kafka"] == "up"
    for i in range(10):
        mk.produce("bd", '{"phase":"before","i":%d}' % i, partition=i % 2)
    got = read_messages(c, 10, timeout=10)

    mk.down(1)
    t_down = wait_health_kafka(srv.port, "down", 15)
    assert t_down is not None, "/health still says kafka up 15 s after the only broker went down"
    r = http_request(srv.port, "GET", "/ready")
    assert r.status == 503, f"/ready {r.status} while Kafka is down"
    c.ping_ok()                                      # clients stay connected
    # records produced while the broker is down: kafka-python keeps them
    # and sends them once it is back
    pending = [mk.produce("bd", '{"phase":"while","i":%d}' % i, partition=i % 2, wait=False)
               for i in range(6)]
    time.sleep(1.0)
    r = http_request(srv.port, "GET", "/ready")
    assert r.status == 503, f"/ready {r.status} while Kafka is down"
    assert health(srv.port)["kafka"] == "down"
    c.ping_ok()

    mk.up(1)
    t_up = wait_health_kafka(srv.port, "up", 20)
    assert t_up is not None, "/health did not report kafka up within 20 s of the broker's return"
    assert wait_status(srv.port, "/ready", 200, 20) is not None, "/ready not 200 after Kafka returned"
    for f in pending:
        f.get(30)
    for i in range(10):
        mk.produce("bd", '{"phase":"after","i":%d}' % i, partition=i % 2)
    got += read_messages(c, 16, timeout=20)
    got += read_messages(c, None, timeout=1, quiet=0.5)
    for p in range(2):
        offs = [m["offset"] for m in got if m["partition"] == p]
        assert offs == list(range(13)), f"partition {p}: offsets {offs} (lost or duplicated)"
    assert t_down <= 11.0, f"/health reported kafka down only after {t_down:.1f}s (docs/operations.md#health-and-readiness: within 10 s)"


def test_consumer_lag_in_stats_and_metrics(mock_kafka, kafka_bridge):
    """Lag per partition (docs/operations.md#lag) appears in /stats
    ("lag":{"topic:partition":N}) and /metrics (kbridge_consumer_lag)."""
    mk = mock_kafka({"lagt": 2})
    srv = kafka_bridge(mk, "-t", "lagt")
    for i in range(5):
        mk.produce("lagt", "{}", partition=0)
    deadline = time.monotonic() + 8
    lag = {}
    while time.monotonic() < deadline:
        lag = get_json(srv.port, "/stats").get("lag") or {}
        if lag.get("lagt:0") == 0 and "lagt:1" in lag:
            break
        time.sleep(0.3)
    # partition 1 is empty and nothing was consumed from it: its lag may be
    # reported as unknown (null) or 0
    assert lag.get("lagt:0") == 0 and "lagt:1" in lag and lag["lagt:1"] in (0, None), \
        f"/stats lag {lag}"
    r = http_request(srv.port, "GET", "/metrics")
    assert r.status == 200
    text = r.body.decode()
    lines = [l for l in text.splitlines() if l.startswith("kbridge_consumer_lag{")]
    assert any('topic="lagt"' in l and 'partition="0"' in l for l in lines), lines


def test_lag_known_right_after_ready(mock_kafka, kafka_bridge):
    """"lag":{"topic:partition":N} (docs/operations.md#lag): numbers from the
    first fetch on, not null until librdkafka's first statistics (every
    2 s); a backlog shows."""
    mk = mock_kafka({"lag2": 2})
    for i in range(3):
        mk.produce("lag2", "{}", partition=1)
    srv = kafka_bridge(mk, "-t", "lag2", "--offset", "earliest", "--client-queue", "10")
    t0 = time.monotonic()
    lag = {}
    while time.monotonic() - t0 < 1.0:
        lag = get_json(srv.port, "/stats").get("lag") or {}
        if all(isinstance(lag.get(k), int) for k in ("lag2:0", "lag2:1")):
            break
        time.sleep(0.05)
    # partition 1's three records came in three batches, and the mock
    # answers a fetch with one: its lag may be read on the way down
    assert lag.get("lag2:0") == 0 and lag.get("lag2:1") in (0, 1, 2, 3), f"/stats lag 1 s after /ready: {lag}"


# ---------------------------------------------------------------- --demo

DEMO_TYPES = {"token-info": "token_info", "trade-info": "trade_data", "aggregate-info": "aggregate_data"}


def test_demo_live_data_and_external_producer(kbridge):
    srv = kbridge("--demo", brokers=False)
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "dashboard"})
    t0 = time.monotonic()
    seen = set()
    msgs = []
    while time.monotonic() - t0 < 5 and len(seen) < 3:
        for m in read_messages(c, None, timeout=0.5, quiet=0.5):
            msgs.append(m)
            assert m["channel"] == "dashboard", m
            assert m["topic"] in DEMO_TYPES and m["type"] == DEMO_TYPES[m["topic"]], m
            assert isinstance(m["data"], dict), m
            seen.add(m["type"])
    assert seen == set(DEMO_TYPES.values()), \
        f"within 5 s got types {sorted(seen)} from {len(msgs)} messages"
    assert any("BTC/USDT" in m.raw.decode() or "/USDT" in m.raw.decode() for m in msgs), \
        "no symbol like BTC/USDT in the demo data"

    mo = re.search(r"bootstrap=(127\.0\.0\.1:\d+)", srv.log())
    assert mo, f"no bootstrap=127.0.0.1:PORT in the log:\n{srv.log_tail()}"
    marker = uuid.uuid4().hex
    r = subprocess.run(["kcat", "-P", "-b", mo.group(1), "-t", "trade-info", "-K", "|"],
                       input=f'E2E/MARK|{{"symbol":"E2E/MARK","marker":"{marker}"}}\n'.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    found = None
    while time.monotonic() < deadline and not found:
        for m in read_messages(c, None, timeout=0.5, quiet=0.5):
            if isinstance(m["data"], dict) and m["data"].get("marker") == marker:
                found = m
    assert found, "record produced with kcat into trade-info did not reach the dashboard client"
    assert found["type"] == "trade_data" and found["key"] == "E2E/MARK" and found["topic"] == "trade-info"


def test_demo_json_log_bootstrap_and_rate(kbridge):
    srv = kbridge("--demo", "--log-format", "json", "--demo-rate", "50", brokers=False)
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "dashboard"})
    read_messages(c, 1, timeout=5)          # flowing
    t0 = time.monotonic()
    n = len(read_messages(c, None, timeout=3.0, quiet=3.0))
    rate = n / (time.monotonic() - t0)
    boots = []
    for line in srv.log().splitlines():
        if line.startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail(f"--log-format json line is not JSON: {line!r}")
        if "bootstrap" in obj:
            boots.append(obj["bootstrap"])
    assert boots and re.match(r"^127\.0\.0\.1:\d+$", boots[0]), boots
    assert 25 <= rate <= 100, f"--demo-rate 50 gave {rate:.0f} records/s"


# ---------------------------------------------------------------- bad configuration

@pytest.mark.parametrize("args,names", [
    (["-X", "no.such.property=1"], ["no.such.property"]),
    (["-X", "fetch.wait.max.ms=notanumber"], ["fetch.wait.max.ms"]),
    (["-X", "novalue"], ["-X", "novalue"]),
    (["--topic", "^("], ["^("]),
    (["--topic", "bad topic!"], ["bad topic!"]),
    (["--topic", "=chan"], ["=chan"]),
    (["--offset", "sometime"], ["--offset", "sometime"]),
    (["--offset", "@yesterday"], ["--offset", "@yesterday"]),
], ids=["unknown-X", "bad-X-value", "X-without-equals", "bad-regex", "bad-topic-name",
        "empty-topic", "bad-offset", "bad-offset-ts"])
def test_bad_kafka_config_exit_2(args, names):
    port = free_port()
    base = ["--brokers", "127.0.0.1:1", "--listen", f"127.0.0.1:{port}"]
    if "--topic" not in args:
        base += ["--topic", "t"]
    r = run_kbridge(base + args, timeout=15)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    assert r.returncode == 2, f"exit {r.returncode}, output {out!r}"
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line, got {lines}"
    for n in names:
        assert n in lines[0] or (n.startswith("-") and n.lstrip("-") in lines[0]), \
            f"message does not name {n!r}: {lines[0]!r}"
