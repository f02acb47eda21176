"""Start to ready without a consumer-group join, and partitions that appear
later (docs/operations.md#fan-out-and-group-mode).

Fan-out mode with literal routes assigns every partition itself: no group
to join, so no coordinator and no initial rebalance delay stand between exec
and GET /ready. The mock here keeps Kafka's own delay (3 s), and group mode
against the same mock shows it, so the fast start is not the mock's doing.
New partitions are found by describing the topics again every
topic.metadata.refresh.interval.ms and start at their beginning.
"""
import subprocess
import time

import pytest

import conftest
import wsutil
from conftest import read_messages, ws_subscribe

DELAY_MS = 3000     # Kafka's group.initial.rebalance.delay.ms default


def exec_to_ready(mk, *args, limit=15.0):
    """Starts kbridge; returns (seconds from exec to the first GET /ready
    200, process, stderr file). Polls every 2 ms."""
    port = conftest.free_port()
    log = open(mk.logdir / ("kbridge-%d.log" % port), "w+b")
    cmd = [conftest.bin_path(), "--listen", "127.0.0.1:%d" % port, "--brokers", mk.bootstrap,
           "-X", "fetch.wait.max.ms=10", *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                            env=conftest.clean_env())
    took = None
    while time.monotonic() - t0 < limit and proc.poll() is None:
        try:
            if wsutil.http_request(port, "GET", "/ready", timeout=0.5).status == 200:
                took = time.monotonic() - t0
                break
        except (OSError, wsutil.Closed, TimeoutError, AssertionError, ValueError):
            pass
        time.sleep(0.002)
    return took, proc, log, port


def stop(proc, log):
    conftest.stop_process(proc, 20)
    log.seek(0)
    text = log.read().decode(errors="replace")
    log.close()
    assert not any(m in text for m in conftest.SANITIZER_MARKS), text[-3000:]
    return text


@pytest.fixture
def slow_mock(mock_kafka, tmp_path):
    mk = mock_kafka({"starts": 3}, rebalance_delay=DELAY_MS)
    mk.logdir = tmp_path
    return mk


def test_fan_out_is_ready_without_waiting_for_a_group(slow_mock):
    # Three starts; the slowest must beat the rebalance delay by far. The
    # 250 ms target is the bench's start-to-ready row (timed tests on a
    # shared machine, under ASan too, get a margin).
    times = []
    for _ in range(3):
        took, proc, log, _ = exec_to_ready(slow_mock, "-t", "starts")
        text = stop(proc, log)
        assert took is not None, "not ready within 15 s:\n" + text[-2000:]
        assert "partitions assigned count=3" in text, text[-2000:]
        times.append(took)
    conftest.note("exec to /ready, fan-out, 3 partitions, mock rebalance delay %d ms: %s ms"
                  % (DELAY_MS, ", ".join("%.0f" % (t * 1000) for t in times)))
    limit = 2.0 if conftest.is_sanitized_build() else 1.0
    assert max(times) < limit, times


def test_group_mode_against_the_same_mock_waits_for_the_delay(slow_mock):
    # The contrast that makes the test above mean something: joining a group
    # on this mock costs the initial rebalance delay.
    took, proc, log, _ = exec_to_ready(slow_mock, "-t", "starts", "--group", "g-start")
    text = stop(proc, log)
    assert took is not None, "group mode not ready within 15 s:\n" + text[-2000:]
    assert took >= DELAY_MS / 1000 * 0.8, took


def test_regex_route_keeps_the_group(slow_mock):
    # No non-blocking topic listing exists to match a regex against: a regex
    # route subscribes, as before, and pays the join (documented).
    took, proc, log, _ = exec_to_ready(slow_mock, "-t", "^sta.*")
    text = stop(proc, log)
    assert took is not None, text[-2000:]
    assert took >= DELAY_MS / 1000 * 0.8, took


def test_a_partition_added_later_is_delivered_from_its_beginning(mock_kafka, kafka_bridge):
    mk = mock_kafka({"grow": 1})
    srv = kafka_bridge(mk, "-t", "grow", "-X", "topic.metadata.refresh.interval.ms=500")
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "grow"})
    mk.regrow("grow", 3)
    # Produced at once, before kbridge can have seen the new partitions:
    # they must still arrive, from offset 0 of each.
    for i in range(30):
        mk.produce("grow", '{"i":%d}' % i, partition=i % 3)
    got = read_messages(c, 30, timeout=30)
    by_part = {}
    for m in got:
        by_part.setdefault(m["partition"], []).append(m["offset"])
    assert by_part == {0: list(range(10)), 1: list(range(10)), 2: list(range(10))}, by_part
    assert "new partitions found" in srv.log(), srv.log_tail()


def test_broker_down_at_start_delays_ready_until_it_answers(mock_kafka, kbridge):
    # The topics cannot be described while the broker is down: not ready
    # (no partitions are assigned), and ready once it answers.
    mk = mock_kafka({"late": 2})
    mk.down(1)
    srv = kbridge("--brokers", mk.bootstrap, "-X", "fetch.wait.max.ms=10", "-t", "late", brokers=False)
    time.sleep(1.5)
    assert wsutil.http_request(srv.port, "GET", "/ready", timeout=2).status == 503
    mk.up(1)
    assert conftest.wait_status(srv.port, "/ready", 200, 30) is not None, srv.log_tail()
    c = srv.ws()
    ws_subscribe(c, {"type": "subscribe", "channel": "late"})
    mk.produce("late", '{"ok":1}', partition=1)
    assert len(read_messages(c, 1, timeout=10)) == 1
    assert "partitions assigned count=2" in srv.log(), srv.log_tail()
