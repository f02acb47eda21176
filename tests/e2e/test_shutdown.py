"""SIGTERM / SIGINT (docs/operations.md#signals-and-shutdown)."""
import signal
import socket
import time

import pytest

from test_slow import flood
from wsutil import tcp_connect

FLOOD_FLAGS = ["--client-rate", "1000000"]


def stuck_client(srv):
    """A client whose pending output can never be flushed: it pipelines
    pings and never reads, with a tiny receive buffer, until the replies
    overflow the kernel's buffers and kbridge itself holds some."""
    c = srv.ws(rcvbuf=4096)
    flood(c)
    return c


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_sends_1001_and_exits_0(kbridge, sig):
    srv = kbridge("--drain-timeout", "3")
    clients = [srv.ws() for _ in range(3)] + [srv.ws("/ws/other")]
    for c in clients:
        c.ping_ok()
    t0 = time.monotonic()
    srv.signal(sig)
    for c in clients:
        c.expect_close(1001, timeout=3)
    rc = srv.wait_exit(3 + 3)
    assert rc is not None, "kbridge still running 6 s after the signal with --drain-timeout 3"
    assert rc == 0, f"exit status {rc}"
    assert time.monotonic() - t0 < 6


def test_sigterm_without_clients_exits_0_quickly(kbridge):
    srv = kbridge()
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(5) == 0
    assert time.monotonic() - t0 < 5


def test_sigterm_refuses_new_connections(kbridge):
    srv = kbridge("--drain-timeout", "2", *FLOOD_FLAGS)
    idle = srv.ws()
    stuck_client(srv)
    srv.signal(signal.SIGTERM)
    # with workers, each closes its copy of the listener once the master
    # has passed the signal on: refused within a moment, and from then on
    deadline = time.monotonic() + 2
    while True:
        try:
            tcp_connect(srv.port, timeout=2).close()
        except ConnectionRefusedError:
            break
        except ConnectionResetError:       # came while a listener was closing
            pass
        assert time.monotonic() < deadline, "new connections still accepted 2 s after SIGTERM"
        time.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):
        tcp_connect(srv.port, timeout=2).close()
    idle.expect_close(1001, timeout=3)
    rc = srv.wait_exit(2 + 4)
    assert rc == 0, f"exit status {rc} (None = still running 6 s after SIGTERM with --drain-timeout 2)"


def test_drain_timeout_bounds_exit(kbridge):
    srv = kbridge("--drain-timeout", "2", *FLOOD_FLAGS)
    stuck_client(srv)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(2 + 4)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit status {rc} after {elapsed:.1f}s (--drain-timeout 2)"


def test_second_signal_exits_at_once_with_1(kbridge):
    srv = kbridge("--drain-timeout", "30", *FLOOD_FLAGS)
    stuck_client(srv)
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert srv.alive(), "kbridge exited at once although a client's output was not flushed (--drain-timeout 30)"
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(3)
    assert rc is not None, "kbridge still running 3 s after the second signal"
    assert rc == 1, f"exit status {rc} after the second signal, expected 1"
    assert time.monotonic() - t0 < 2


def test_second_signal_sigint_after_sigterm(kbridge):
    srv = kbridge("--drain-timeout", "30", *FLOOD_FLAGS)
    stuck_client(srv)
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert srv.alive()
    srv.signal(signal.SIGINT)
    assert srv.wait_exit(3) == 1
