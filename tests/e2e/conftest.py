"""conftest.py - starts kbridge for the end-to-end tests and prints the one
summary line tests/run.sh sums: "e2e: N passed, N failed, N skipped".

`kbridge` is a factory fixture: kbridge("--max-clients", "2") starts the binary
($KBRIDGE_BIN, default ./kbridge) on a free 127.0.0.1 port with an unreachable
broker, waits for GET /health to answer 200, and on teardown closes the test's
sockets, sends SIGTERM (10 s, then SIGKILL), and fails the test when kbridge
did not exit 0 or its log shows a sanitizer report. `server` is one kbridge
with default flags. kbridge(..., ssl=ctx) starts one whose listener speaks
TLS (the caller passes --tls-cert/--tls-key; tlsutil.tls_kbridge does): the
Server's helpers then connect with that SSLContext.
"""
import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

import wsutil
from tlsutil import pki, tls_kbridge  # noqa: F401 (fixtures)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
BIN = os.environ.get("KBRIDGE_BIN", "./kbridge")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
# KBRIDGE_TEST_WORKERS=N (the e2e-workers suite): every kbridge the `kbridge`
# fixture starts runs --workers N, unless the test chose its own --workers or
# a mode that refuses workers (--group, --demo), or is marked
# @pytest.mark.one_process("why"): it checks what one process does alone
# (per-process seq, limits per address, one process's log lines).
# Server.workers is the number of worker processes it runs (1 without).
TEST_WORKERS = os.environ.get("KBRIDGE_TEST_WORKERS")
NO_WORKERS = ("--workers", "--group", "-g", "--demo")

# Configuration variables the user's environment must not leak into tests.
CONFIG_ENV = re.compile(r"^(KBRIDGE_.*|KAFKA_.*|MAX_CLIENTS|MESSAGE_BUFFER_SIZE|PORT|LOG_LEVEL)$")


def bin_path():
    return BIN if os.path.isabs(BIN) else os.path.join(ROOT, BIN)


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not CONFIG_ENV.match(k)}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.update(extra or {})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_sanitized_build():
    try:
        with open(bin_path(), "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"AddressSanitizer" in data


def run_kbridge(args, env=None, timeout=10):
    """Runs kbridge to completion (config errors, --help): CompletedProcess."""
    return subprocess.run([bin_path()] + list(args), env=clean_env(env), capture_output=True,
                          timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def stop_process(proc, timeout=5.0):
    """SIGTERM, then SIGKILL if proc has not exited within timeout s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Server:
    def __init__(self, proc, port, log_path, ssl=None):
        self.ssl = ssl              # SSLContext when the listener speaks TLS
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.log_path = log_path
        self.signalled = False      # the test sent signals itself
        self.workers = 1            # worker processes (--workers)
        self.failed_start = False
        self.sockets = []

    # connections tracked so teardown closes them before SIGTERM
    def track(self, c):
        self.sockets.append(c)
        return c

    def ws(self, path="/ws", **kw):
        kw.setdefault("ssl", self.ssl)
        return self.track(wsutil.WS.connect(self.port, path, **kw))

    def conn(self, **kw):
        kw.setdefault("ssl", self.ssl)
        return self.track(wsutil.Conn.open(self.port, **kw))

    def http(self, method="GET", path="/health", **kw):
        kw.setdefault("ssl", self.ssl)
        return wsutil.http_request(self.port, method, path, **kw)

    def health(self):
        return wsutil.get_json(self.port, "/health", ssl=self.ssl)

    def url(self, path="/ws"):
        """ws:// or wss:// (http:// or https:// for other paths) URL."""
        scheme = ("wss" if path.startswith("/ws") else "https") if self.ssl else \
            ("ws" if path.startswith("/ws") else "http")
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def signal(self, sig):
        self.signalled = True
        os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self):
        return self.proc.poll() is None

    def rss(self):
        """VmRSS in bytes: of the process, and with --workers of the master
        and every worker (their clients are in the workers)."""
        return self.status_total("VmRSS")

    def status_total(self, field):
        """A /proc/PID/status field in kB (VmRSS, VmHWM, ...) in bytes,
        summed over the process and its workers."""
        pids = [self.pid]
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))
        return total

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])


def _wait_ready(srv, timeout=10.0, probe=None):
    """probe(srv) -> HTTP status of GET /health (default: over srv.ssl or plain)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            return False
        try:
            if probe:
                status = probe(srv)
            else:
                status = wsutil.http_request(srv.port, "GET", "/health", timeout=1.0, ssl=srv.ssl).status
            if status == 200:
                return True
        except (OSError, wsutil.Closed, TimeoutError, AssertionError, ValueError):
            pass
        time.sleep(0.05)
    return False


def _set_nofile(n):
    def fn():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return fn


def pytest_configure(config):
    config.addinivalue_line("markers", "one_process(why): never run with --workers in the e2e-workers suite")


@pytest.fixture
def kbridge(request):
    servers = []
    counter = [0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:100]

    def start(*args, env=None, port=None, listen=True, brokers=True, nofile=None, ssl=None,
              ready=None):
        if not os.path.exists(bin_path()):
            pytest.fail(f"kbridge binary {bin_path()} not found (build it with make)")
        os.makedirs(ARTIFACTS, exist_ok=True)
        for attempt in range(3):
            p = port or free_port()
            counter[0] += 1
            log_path = os.path.join(ARTIFACTS, f"e2e-{name}-{counter[0]}.log")
            cmd = [bin_path()]
            if brokers:
                cmd += ["--brokers", "127.0.0.1:1"]
            if listen:
                cmd += ["--listen", f"127.0.0.1:{p}"]
            cmd += [str(a) for a in args]
            workers = 1
            if TEST_WORKERS and not any(str(a).split("=")[0] in NO_WORKERS for a in args) \
                    and not any(k in (env or {}) for k in ("KBRIDGE_GROUP", "KBRIDGE_DEMO", "KBRIDGE_WORKERS")) \
                    and not request.node.get_closest_marker("one_process"):
                cmd += ["--workers", TEST_WORKERS]
                workers = int(TEST_WORKERS)
            for k, a in enumerate(args[:-1]):
                if str(a) == "--workers" and str(args[k + 1]).isdigit():
                    workers = int(args[k + 1])
            with open(log_path, "wb") as logf:
                logf.write(("# " + " ".join(cmd) + "\n").encode())
                logf.flush()
                proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=ROOT, env=clean_env(env),
                                        preexec_fn=_set_nofile(nofile) if nofile else None)
            srv = Server(proc, p, log_path, ssl)
            srv.workers = workers
            servers.append(srv)
            if _wait_ready(srv, probe=ready):
                return srv
            srv.failed_start = True
            if proc.poll() is None:
                pytest.fail(f"kbridge did not answer GET /health within 10 s\n{srv.log_tail()}")
            if "in use" in srv.log().lower() and port is None:
                continue        # lost the port race: try another
            pytest.fail(f"kbridge exited {proc.returncode} at start-up\n{srv.log_tail()}")
        pytest.fail("could not start kbridge on a free port")

    yield start

    errors = []
    for srv in servers:
        for c in srv.sockets:
            c.close()
        early = srv.proc.poll()
        if early is None:
            os.kill(srv.pid, signal.SIGTERM)
            try:
                rc = srv.proc.wait(10)
                if rc != 0 and not srv.signalled:
                    errors.append(f"kbridge pid {srv.pid} exited {rc} after SIGTERM (docs/operations.md#signals-and-shutdown: exit 0)")
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait(10)
                errors.append(f"kbridge pid {srv.pid} ignored SIGTERM for 10 s; killed")
        elif not srv.signalled and not srv.failed_start:
            errors.append(f"kbridge pid {srv.pid} exited during the test with status {early}")
        log = srv.log()
        for mark in SANITIZER_MARKS:
            if mark in log:
                errors.append(f"sanitizer report in {srv.log_path}:\n"
                              + log[max(0, log.index(mark) - 200):][:4000])
                break
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def server(kbridge):
    return kbridge()


# ---------------------------------------------------------------- TLS (issue 14)
#
# `tls_certs` (one per session) is a test CA with an ECDSA P-256 server
# certificate for 127.0.0.1 and client certificates, made with the openssl
# command line; `kbridge_tls` starts kbridge with --tls-cert/--tls-key (more
# flags as args) and waits for GET /health over https.

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=30)


class TlsCerts:
    """Files in .dir: ca.pem (the CA), server.pem/server.key, client.pem/
    client.key (CN "alice", from the CA), other.pem/other.key (CN "mallory",
    from another CA). server(name) makes another server pair from the CA."""

    def __init__(self, d):
        self.dir = d
        self._ca("ca")
        self._ca("otherca")
        self.cert, self.key = self.server("server")
        self.client_cert, self.client_key = self._leaf("client", "alice", "ca", "")
        self.other_cert, self.other_key = self._leaf("other", "mallory", "otherca", "")
        self.ca = os.path.join(d, "ca.pem")

    def _ca(self, name):
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=self.dir)
        _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN=kbridge test {name}",
                 "-days", "2", "-out", f"{name}.pem", cwd=self.dir)

    def _leaf(self, name, cn, ca, ext):
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=self.dir)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-out", f"{name}.csr", cwd=self.dir)
        with open(os.path.join(self.dir, f"{name}.ext"), "w") as f:
            f.write(ext)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-set_serial", str(int(time.time() * 1000) % 2**31), "-days", "2",
                 "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=self.dir)
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def server(self, name):
        return self._leaf(name, "127.0.0.1", "ca", "subjectAltName=IP:127.0.0.1\n")

    def context(self, client=None):
        """An ssl client context trusting the test CA; client: "alice" or
        "mallory" presents that certificate."""
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca)
        if client == "alice":
            ctx.load_cert_chain(self.client_cert, self.client_key)
        elif client == "mallory":
            ctx.load_cert_chain(self.other_cert, self.other_key)
        return ctx


def https_get(port, path="/health", ctx=None, timeout=2.0):
    """GET over https: (status, body bytes)."""
    import http.client
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    return TlsCerts(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def kbridge_tls(kbridge, tls_certs):
    def start(*args, cert=None, key=None, client=None, **kw):
        args = ["--tls-cert", cert or tls_certs.cert, "--tls-key", key or tls_certs.key] + list(args)
        if client is None and "--tls-client-ca" in args:
            client = "alice"
        ctx = tls_certs.context(client)
        return kbridge(*args, ready=lambda srv: https_get(srv.port, ctx=ctx, timeout=1.0)[0], **kw)
    return start


# ---------------------------------------------------------------- summary

_outcomes = {}
_collect_errors = []
_notes = []


def note(line):
    """A line printed in the terminal summary (e.g. the per-client RSS)."""
    _notes.append(line)


def pytest_runtest_logreport(report):
    prev = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and prev != "failed":
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and prev is None:
        _outcomes[report.nodeid] = "passed"


def pytest_collectreport(report):
    if report.failed:
        _collect_errors.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    vals = list(_outcomes.values())
    passed = vals.count("passed")
    failed = vals.count("failed") + len(_collect_errors)
    skipped = vals.count("skipped")
    for line in _notes:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"e2e: {passed} passed, {failed} failed, {skipped} skipped")


# ---------------------------------------------------------------- Kafka (mock cluster)
#
# Appended for the test_kafka_*.py files. `mock_kafka` is a factory fixture:
# mock_kafka({"trades": 3}, brokers=1) starts build/mockkafka (librdkafka's
# mock cluster as a process, a real Kafka protocol peer on 127.0.0.1;
# rebalance_delay=3000 gives its groups Kafka's initial rebalance delay,
# else 0) and returns a MockKafka with .bootstrap, .create_topic(), .down()/.up(),
# .produce() (kafka-python) and .kcat_produce(). `kafka_bridge` starts kbridge
# against one and waits (bounded) for GET /ready.

MOCK_BIN = os.environ.get("MOCKKAFKA_BIN", os.path.join(ROOT, "build", "mockkafka"))


class MockKafka:
    def __init__(self, proc, bootstrap, lines):
        self.proc = proc
        self.bootstrap = bootstrap
        self._lines = lines          # queue.Queue of stdout lines after bootstrap=
        self._producer = None

    def command(self, line, timeout=10.0):
        """Sends one stdin command and returns its reply line."""
        import queue
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        try:
            reply = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"mockkafka did not answer {line!r} within {timeout}s")
        assert reply.startswith("ok"), f"mockkafka {line!r}: {reply!r}"
        return reply

    def create_topic(self, name, partitions=1):
        return self.command(f"topic {name} {partitions}")

    def regrow(self, name, partitions):
        """Deletes topic `name` and creates it again with `partitions`: the
        mock cannot add partitions, and an empty topic grown this way looks
        to a consumer like one whose partitions were added."""
        return self.command(f"regrow {name} {partitions}")

    def down(self, broker=1):
        return self.command(f"down {broker}")

    def up(self, broker=1):
        return self.command(f"up {broker}")

    def request_errors(self, api_key, err, rtt_ms, count=1, broker=1):
        """The next `count` requests of Kafka API `api_key` to `broker` fail
        with error code `err`, answered after `rtt_ms`."""
        return self.command(f"reqerr {broker} {api_key} {err} {rtt_ms} {count}")

    def producer(self):
        if self._producer is None:
            from kafka import KafkaProducer
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0,
                                           acks=1, retries=5, request_timeout_ms=10000,
                                           max_block_ms=20000)
        return self._producer

    def produce(self, topic, value, key=None, partition=None, timestamp_ms=None, headers=None,
                wait=True, timeout=20):
        """One record via kafka-python; returns its RecordMetadata (partition,
        offset) when wait, else the future."""
        def enc(v):
            return v.encode("utf-8") if isinstance(v, str) else v
        fut = self.producer().send(topic, value=enc(value), key=enc(key), partition=partition,
                                   timestamp_ms=timestamp_ms,
                                   headers=[(k, enc(v)) for k, v in (headers or [])] or None)
        return fut.get(timeout) if wait else fut

    def flush(self, timeout=30):
        if self._producer is not None:
            self._producer.flush(timeout)

    def kcat_produce(self, topic, data, partition=None, key_delim=None, codec=None, extra=(),
                     timeout=120):
        """Produces newline-separated records from bytes or a file path with kcat."""
        cmd = ["kcat", "-P", "-b", self.bootstrap, "-t", topic, "-X", "linger.ms=5"]
        if partition is not None:
            cmd += ["-p", str(partition)]
        if key_delim is not None:
            cmd += ["-K", key_delim]
        if codec is not None:
            cmd += ["-z", codec]
        cmd += list(extra)
        if isinstance(data, str):          # a file path
            cmd += ["-l", data]
            r = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        else:
            r = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
        assert r.returncode == 0, f"kcat failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
        return r

    def stop(self):
        if self._producer is not None:
            try:
                self._producer.close(2)
            except Exception:
                pass
            self._producer = None
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def mock_kafka():
    import queue
    import threading
    started = []

    def start(topics=None, brokers=1, lifetime=600, rebalance_delay=None):
        if not os.path.exists(MOCK_BIN):
            pytest.fail(f"{MOCK_BIN} not found (build it with make tools)")
        items = topics.items() if isinstance(topics, dict) else \
            [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1]) if ":" in t else 1) for t in topics or []]
        # Topics are created with stdin commands once the cluster runs: with
        # many --topic flags mockkafka takes seconds to start.
        cmd = [MOCK_BIN, "--brokers", str(brokers), "--lifetime", str(lifetime)]
        if rebalance_delay is not None:        # ms; mockkafka's own default is 0
            cmd += ["--rebalance-delay", str(rebalance_delay)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1)
        lines = queue.Queue()

        def reader():
            for line in proc.stdout:
                lines.put(line.strip())
        threading.Thread(target=reader, daemon=True).start()
        mk = MockKafka(proc, None, lines)
        started.append(mk)
        deadline = time.monotonic() + 10
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("mockkafka printed no bootstrap= line within 10 s")
            if line.startswith("bootstrap="):
                mk.bootstrap = line.split("=", 1)[1]
                for name, parts in items:
                    mk.create_topic(name, parts)
                return mk
            if line.startswith("error"):
                pytest.fail(f"mockkafka: {line}")

    yield start
    for mk in started:
        mk.stop()


def wait_status(port, path, want, timeout):
    """Polls GET path until it answers `want`; returns seconds taken or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if wsutil.http_request(port, "GET", path, timeout=1.0).status == want:
                return time.monotonic() - t0
        except (OSError, wsutil.Closed, TimeoutError, AssertionError, ValueError):
            pass
        time.sleep(0.05)
    return None


@pytest.fixture
def kafka_bridge(mock_kafka, kbridge):
    """kafka_bridge(mock, "-t", "trades", ..., ready=True) starts kbridge on
    the mock (-X fetch.wait.max.ms=10 added) and waits up to 20 s for
    GET /ready 200. Depends on mock_kafka first so the mock outlives kbridge
    at teardown (group mode commits at shutdown)."""
    def start(mock, *args, ready=True, ready_timeout=20.0, **kw):
        srv = kbridge("--brokers", mock.bootstrap, "-X", "fetch.wait.max.ms=10", *args,
                      brokers=False, **kw)
        if ready and wait_status(srv.port, "/ready", 200, ready_timeout) is None:
            pytest.fail(f"kbridge not ready within {ready_timeout}s\n{srv.log_tail()}")
        return srv
    return start


# Reading data messages (one per Kafka record) from a wsutil.WS client.
import json  # noqa: E402
CONTROL_TYPES = ("ack", "error", "pong", "subscriptions", "snapshot")


class DataMsg:
    """A data message: .obj (parsed), .raw (the frame's bytes)."""
    def __init__(self, raw):
        self.raw = raw
        self.obj = json.loads(raw.decode("utf-8"))

    def __getitem__(self, k):
        return self.obj[k]

    def get(self, k, d=None):
        return self.obj.get(k, d)

    def pos(self):
        return (self.obj.get("topic"), self.obj.get("partition"), self.obj.get("offset"))

    def __repr__(self):
        return f"<DataMsg {self.raw[:300]!r}>"


def read_messages(ws, n=None, timeout=10.0, quiet=None, controls=None):
    """Reads data messages until n arrived, or (quiet) nothing came for
    `quiet` seconds, bounded by `timeout`. Control messages (ack, error, ...)
    are appended to `controls` when given, else an error fails the test."""
    out = []
    deadline = time.monotonic() + timeout
    while n is None or len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            if n is None:
                break
            raise AssertionError(f"got {len(out)} of {n} data messages within {timeout}s; "
                                 f"last: {out[-3:]!r}")
        wait = min(left, quiet) if quiet is not None else left
        try:
            op, payload = ws.recv_message(wait)
        except TimeoutError:
            if quiet is not None:
                break               # quiet period over: return what came
            continue                # deadline: the check above raises
        assert op == wsutil.OP_TEXT, f"binary message on a JSON connection: {payload[:100]!r}"
        obj = json.loads(payload.decode("utf-8"))
        if obj.get("type") in CONTROL_TYPES and "topic" not in obj:
            if controls is not None:
                controls.append(obj)
                continue
            raise AssertionError(f"unexpected control message {obj!r}")
        out.append(DataMsg(payload))
    return out


def ws_subscribe(ws, msg, ident=None):
    """Sends a subscribe (native or action dialect) and asserts an ack."""
    msg = dict(msg)
    if ident is not None:
        msg["id"] = ident
    reply = ws.request(msg)
    assert reply.get("type") == "ack", f"{msg!r} -> {reply!r}"
    return reply


# ---------------------------------------------------------------- state tests
#
# Appended for the test_state_*.py files (snapshots, resume, conflation,
# MessagePack): a threaded bulk reader, /stats polling, a rate-controlled
# producer through kcat's stdin.

def mp_unpack(payload):
    """Decodes one MessagePack message with Debian's python3-msgpack (an
    independent decoder): exactly one object, str as str, bin as bytes."""
    import msgpack
    return msgpack.unpackb(payload, raw=False, strict_map_key=False)


def mp_pack(obj):
    import msgpack
    return msgpack.packb(obj, use_bin_type=True)


def decode_message(op, payload):
    """A server message as an object: JSON from a text frame, MessagePack
    from a binary frame."""
    if op == wsutil.OP_TEXT:
        return json.loads(payload.decode("utf-8"))
    assert op == wsutil.OP_BINARY, f"opcode {op}"
    return mp_unpack(payload)


def is_data(obj):
    return isinstance(obj, dict) and "topic" in obj and "offset" in obj


class BulkReader:
    """Reads a wsutil.WS in a thread with big recv()s and keeps every
    complete message as (monotonic time, opcode, payload bytes, decoded
    object). Pings get pongs; a close frame or EOF ends it. stop() ends it
    from outside; abort() also resets the TCP connection (no close frame)."""

    def __init__(self, ws, name="reader", decode=True):
        import threading
        self.ws = ws
        self.name = name
        self.decode = decode
        self.msgs = []
        self.closed = None          # (code, reason) or "eof"/"reset"
        self.error = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        import socket as _s
        import struct as _st
        sock = self.ws.sock
        buf = bytearray(self.ws.buf)
        self.ws.buf = b""
        pos = 0
        frag_op, frags, frag_z = None, [], False
        try:
            sock.settimeout(0.1)
            while not self._stop.is_set():
                while True:
                    n_avail = len(buf) - pos
                    if n_avail < 2:
                        break
                    b0, b1 = buf[pos], buf[pos + 1]
                    n, hl = b1 & 0x7F, 2
                    if n == 126:
                        if n_avail < 4:
                            break
                        n, hl = _st.unpack_from("!H", buf, pos + 2)[0], 4
                    elif n == 127:
                        if n_avail < 10:
                            break
                        n, hl = _st.unpack_from("!Q", buf, pos + 2)[0], 10
                    if n_avail < hl + n:
                        break
                    if b1 & 0x80:
                        raise AssertionError("server frame is masked")
                    payload = bytes(buf[pos + hl:pos + hl + n])
                    pos += hl + n
                    op, fin = b0 & 0x0F, b0 & 0x80
                    if op == wsutil.OP_PING:
                        sock.sendall(wsutil.build_frame(wsutil.OP_PONG, payload))
                        continue
                    if op == wsutil.OP_PONG:
                        continue
                    if op == wsutil.OP_CLOSE:
                        code = _st.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                        self.closed = (code, payload[2:].decode("utf-8", "replace"))
                        return
                    if op != wsutil.OP_CONT:
                        # RSV1: compressed (permessage-deflate, RFC 7692 §6)
                        frag_op, frags, frag_z = op, [], bool(b0 & 0x40)
                        assert not (b0 & 0x30) and (not frag_z or self.ws.deflate), f"RSV bits {b0:#x}"
                    frags.append(payload)
                    if fin:
                        whole = b"".join(frags)
                        if frag_z:
                            whole = wsutil.pmd_inflate(whole, self.ws.bits)
                        obj = decode_message(frag_op, whole) if self.decode else None
                        with self._lock:
                            self.msgs.append((time.monotonic(), frag_op, whole, obj))
                        frag_op, frags = None, []
                if pos > (1 << 20):
                    del buf[:pos]
                    pos = 0
                try:
                    chunk = sock.recv(1 << 20)
                except _s.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    self.closed = "reset"
                    return
                except OSError:
                    if self._stop.is_set():
                        return
                    raise
                if not chunk:
                    self.closed = "eof"
                    return
                buf += chunk
        except Exception as e:          # reported by check()
            self.error = e

    def objs(self):
        with self._lock:
            return [m[3] for m in self.msgs]

    def data(self):
        return [o for o in self.objs() if is_data(o)]

    def controls(self):
        return [o for o in self.objs() if not is_data(o)]

    def wait_for(self, pred, timeout, what="condition"):
        """Waits until pred(objs) is true; raises with a summary if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.objs()):
                return True
            if self.error or (self.closed and not self.thread.is_alive()):
                break
            time.sleep(0.02)
        objs = self.objs()
        raise AssertionError(f"{self.name}: no {what} within {timeout}s: {len(objs)} messages, "
                             f"closed={self.closed}, error={self.error!r}, "
                             f"last={objs[-3:]!r}, controls={[o for o in objs if not is_data(o)][-5:]!r}")

    def stop(self, timeout=5):
        self._stop.set()
        self.thread.join(timeout)
        self.check()

    def abort(self):
        """Abrupt disconnect: RST without a close frame; returns the
        messages read so far (only complete ones)."""
        import socket as _s
        import struct as _st
        self._stop.set()
        self.thread.join(5)
        try:
            self.ws.sock.setsockopt(_s.SOL_SOCKET, _s.SO_LINGER, _st.pack("ii", 1, 0))
        except OSError:
            pass
        self.ws.close()
        self.check()
        return self.objs()

    def check(self):
        if self.error is not None:
            raise AssertionError(f"{self.name}: reader failed: {self.error!r}")


def settled(read, want, timeout=3.0):
    """read()'s value once it equals want (within timeout; the last value
    read otherwise, for the caller's assertion). With --workers, a count
    that one worker changed reaches /health, /stats and /metrics answered
    by another at the end of the first one's loop turn."""
    deadline = time.monotonic() + timeout
    while True:
        v = read()
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


def channel_seq(port, channel):
    """The channel's seq from GET /stats (docs/operations.md#stats), 0 when
    absent."""
    st = wsutil.get_json(port, "/stats")
    return int(((st.get("channels") or {}).get(channel) or {}).get("seq", 0))


def wait_channel_seq(port, channel, n, timeout=20.0):
    """Waits until /stats shows channel's seq >= n (records routed)."""
    deadline = time.monotonic() + timeout
    seq = 0
    while time.monotonic() < deadline:
        seq = channel_seq(port, channel)
        if seq >= n:
            return seq
        time.sleep(0.05)
    raise AssertionError(f"channel {channel}: seq {seq} after {timeout}s, expected {n}")


class PacedProducer:
    """Produces `rate` records/s for `seconds` through one kcat process fed
    on stdin (keyed lines, tab as key delimiter), in a thread. Line i is
    key fmt_key(i), value fmt_value(i). .count is the number written."""

    def __init__(self, mk, topic, rate, seconds, fmt_key=None, fmt_value=None, batch_ms=10,
                 partition=None):
        import threading
        self.rate, self.seconds = rate, seconds
        self.fmt_key = fmt_key or (lambda i: "k%d" % (i % 20))
        self.fmt_value = fmt_value or (lambda i: '{"i":%d}' % i)
        cmd = ["kcat", "-P", "-b", mk.bootstrap, "-t", topic, "-K", "\t",
               "-X", "linger.ms=5", "-X", "queue.buffering.max.messages=1000000"]
        if partition is not None:
            cmd += ["-p", str(partition)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.count = 0
        self.batch_ms = batch_ms
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            t0 = time.monotonic()
            per_batch = max(1, int(self.rate * self.batch_ms / 1000))
            while True:
                el = time.monotonic() - t0
                if el >= self.seconds:
                    break
                want = min(int(el * self.rate) + per_batch, int(self.seconds * self.rate))
                if want > self.count:
                    lines = "".join("%s\t%s\n" % (self.fmt_key(i), self.fmt_value(i))
                                    for i in range(self.count, want))
                    self.proc.stdin.write(lines.encode())
                    self.proc.stdin.flush()
                    self.count = want
                time.sleep(self.batch_ms / 1000)
        except Exception as e:
            self.error = e
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.done.set()

    def wait(self, timeout=60):
        """Waits for the thread and kcat (all delivered); returns count."""
        self.thread.join(timeout)
        self.proc.wait(timeout)
        err = self.proc.stderr.read()
        assert self.error is None, f"producer: {self.error!r}"
        assert self.proc.returncode == 0, f"kcat: {err.decode(errors='replace')}"
        return self.count
