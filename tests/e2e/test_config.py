"""Command line and environment (docs/operations.md#configuration)."""
import os
import re

import pytest

from conftest import ROOT, SANITIZER_MARKS, free_port, run_kbridge
from wsutil import http_request, upgrade_headers


def base_args(port=None):
    return ["--brokers", "127.0.0.1:1", "--listen", f"127.0.0.1:{port or free_port()}"]


def assert_config_error(p, name_re):
    out = p.stderr.decode(errors="replace")
    for mark in SANITIZER_MARKS:
        assert mark not in out, out
    assert p.returncode == 2, f"exit {p.returncode}, expected 2; stderr={out!r}"
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert re.search(name_re, lines[0], re.I), f"{lines[0]!r} does not name {name_re}"


BAD = [
    ("--max-clients", "abc"), ("--max-clients", "-5"), ("--max-clients", "10x"), ("--max-clients", ""),
    ("--slow-client", "bogus"), ("--listen", "nonsense"), ("--listen", "127.0.0.1:99999"),
    ("--listen", "127.0.0.1"), ("--ping-interval", "-1"), ("--ping-interval", "soon"),
    ("--client-buffer", "lots"), ("--client-queue", "-1"), ("--max-message", "abc"),
    ("--drain-timeout", "-2"), ("--header-timeout", "x"), ("--client-rate", "fast"),
    ("--log-level", "loud"), ("--log-format", "xml"), ("--offset", "yesterday"),
]


@pytest.mark.parametrize("flag,value", BAD, ids=[f"{f}={v}" for f, v in BAD])
def test_bad_value_exit_2(flag, value):
    args = ["--brokers", "127.0.0.1:1"] if flag == "--listen" else base_args()
    p = run_kbridge(args + [flag, value])
    assert_config_error(p, re.escape(flag.lstrip("-")))


RANGES = [("--max-clients", "0", r"from 1 to 1000000"), ("--client-queue", "-1", r"from \d+ to \d+"),
          ("--client-buffer", "1", r"from 1024 to \d+"), ("--ping-interval", "-1", r"seconds from \S+ to \S+"),
          ("--client-rate", "fast", r"from \d+ to \d+")]


@pytest.mark.parametrize("flag,value,accepted", RANGES, ids=[f"{f}={v}" for f, v, _ in RANGES])
def test_bad_number_names_the_accepted_range(flag, value, accepted):
    """A bad value is one line naming the flag and the accepted values
    (docs/operations.md#configuration)."""
    p = run_kbridge(base_args() + [flag, value])
    assert_config_error(p, re.escape(flag.lstrip("-")) + ".*" + accepted)


def test_unknown_flag_exit_2():
    p = run_kbridge(base_args() + ["--bogus-flag", "1"])
    assert_config_error(p, r"bogus-flag")


def test_missing_flag_value_exit_2():
    p = run_kbridge(base_args() + ["--max-clients"])
    assert_config_error(p, r"max-clients")


def test_missing_brokers_exit_2():
    p = run_kbridge(["--listen", f"127.0.0.1:{free_port()}"])
    assert_config_error(p, r"brokers")


def test_bad_env_value_exit_2():
    p = run_kbridge(base_args(), env={"KBRIDGE_MAX_CLIENTS": "abc"})
    assert_config_error(p, r"max.?clients")


HELP_FLAGS = ["--brokers", "--topic", "--group", "--offset", "-X", "--listen", "--max-clients",
              "--client-buffer", "--client-queue", "--slow-client", "--max-message", "--ping-interval",
              "--allow-origin", "--demo", "--log-level", "--log-format", "--version", "--demo-rate",
              "--drain-timeout", "--header-timeout", "--max-subscriptions", "--client-rate",
              "--history", "--headers", "--help", "--licenses"]
SHORT = ["-b", "-t", "-g", "-o", "-l"]


def test_help_lists_every_flag():
    p = run_kbridge(["--help"])
    assert p.returncode == 0, p
    text = p.stdout.decode()
    missing = [f for f in HELP_FLAGS if not re.search(re.escape(f) + r"(?![A-Za-z-])", text)]
    assert not missing, f"--help does not list {missing}"
    missing = [f for f in SHORT if not re.search(r"(?<![A-Za-z-])" + re.escape(f) + r"\b", text)]
    assert not missing, f"--help does not list short flags {missing}"
    # defaults from docs/operations.md#flags
    for default in ["10000", "65536", "drop-oldest", "0.0.0.0:8080", "1024", "latest"]:
        assert default in text, f"--help does not show the default {default}"


def test_help_works_without_brokers():
    p = run_kbridge(["--help"])
    assert p.returncode == 0 and not p.stderr.strip(), p


def test_version():
    p = run_kbridge(["--version"])
    assert p.returncode == 0, p
    text = p.stdout.decode().lower()
    assert "kbridge" in text and "librdkafka" in text, text
    # the build target: this machine's architecture (the dev build is glibc's)
    import platform
    lines = text.splitlines()
    assert lines[1] in ("target %s-linux-gnu" % platform.machine(), "target %s-linux-musl" % platform.machine()), lines


LICENSES_HELP = ("      --licenses                 print the licences of kbridge and of the code"
                 " linked into it, then exit")


def test_help_lists_licenses():
    p = run_kbridge(["--help"])
    assert p.returncode == 0, p
    lines = p.stdout.decode().splitlines()
    assert LICENSES_HELP in lines, f"--help has no line {LICENSES_HELP!r}"
    at = lines.index(LICENSES_HELP)
    assert "--version" in lines[at - 1], "--licenses is not right after --version in --help"


def repo_file(name):
    with open(os.path.join(ROOT, name), "rb") as f:
        return f.read()


def test_licenses_prints_license_then_notices():
    """The binary is shipped alone, so the notices are built into it: exit 0
    without any other flag, and exactly LICENSE + THIRD-PARTY-NOTICES as in
    the repository (a stale build or a missing file shows as a difference)."""
    p = run_kbridge(["--licenses"])
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and not err.strip(), f"exit {p.returncode}, stderr={err!r}"
    out = p.stdout
    assert out.lstrip().startswith(b"Apache License\n"), out[:200]
    assert b"Version 2.0, January 2004" in out[:200], out[:200]
    license, notices = repo_file("LICENSE"), repo_file("THIRD-PARTY-NOTICES")
    assert out[:len(license)] == license, "--licenses does not start with LICENSE byte for byte"
    assert out[len(license):] == notices, "--licenses: THIRD-PARTY-NOTICES does not follow LICENSE byte for byte"
    text = out[len(license):].decode()
    # librdkafka, what it bundles (LICENSES.txt), and what kbridge-static links
    for name in ["librdkafka", "LICENSE.lz4", "LICENSE.snappy", "OpenSSL", "zlib", "Zstandard", "zstd",
                 "musl"]:
        assert name in text, f"THIRD-PARTY-NOTICES does not name {name}"


def pins():
    with open(os.path.join(ROOT, "deps", "versions.mk")) as f:
        return dict(l.strip().split("=", 1) for l in f if re.match(r"^[A-Z][A-Z0-9_]*=", l))


def test_notices_name_the_pinned_versions():
    """The notices name the versions deps/versions.mk builds: a bump that
    forgets them fails here."""
    v = pins()
    upstream = lambda deb: re.match(r"^(?:\d+:)?(\d+(?:\.\d+)+)", deb).group(1)
    want = {"librdkafka": v["LIBRDKAFKA_VERSION"], "OpenSSL": upstream(v["OPENSSL_DEB_VERSION"]),
            "zlib": upstream(v["ZLIB_DEB_VERSION"]), "Zstandard (zstd)": upstream(v["ZSTD_DEB_VERSION"])}
    text = repo_file("THIRD-PARTY-NOTICES").decode()
    for name, version in want.items():
        assert re.search(r"^\d+\. " + re.escape(f"{name} {version}") + "$", text, re.M), \
            f"THIRD-PARTY-NOTICES has no heading '{name} {version}' (the pin in deps/versions.mk)"


def upgrade(port):
    return http_request(port, "GET", "/ws", headers=upgrade_headers()).status


@pytest.mark.one_process("--max-clients is split between the workers, and the kernel picks the worker")
def test_env_max_clients(kbridge):
    srv = kbridge(env={"KBRIDGE_MAX_CLIENTS": "1"})
    srv.ws()
    assert upgrade(srv.port) == 503


@pytest.mark.one_process("--workers above --max-clients is refused")
def test_env_alias_max_clients(kbridge):
    srv = kbridge(env={"MAX_CLIENTS": "1"})
    srv.ws()
    assert upgrade(srv.port) == 503


@pytest.mark.one_process("--max-clients is split between the workers, and the kernel picks the worker")
def test_flag_wins_over_env(kbridge):
    srv = kbridge("--max-clients", "2", env={"KBRIDGE_MAX_CLIENTS": "1", "MAX_CLIENTS": "1"})
    srv.ws()
    srv.ws()
    assert upgrade(srv.port) == 503


def test_env_max_message(kbridge):
    srv = kbridge(env={"KBRIDGE_MAX_MESSAGE": "1024"})
    c = srv.ws()
    c.send_text('{"type":"ping","id":"' + "a" * 1100 + '"}')
    c.expect_close(1009)


def test_env_listen(kbridge):
    port = free_port()
    srv = kbridge(listen=False, port=port, env={"KBRIDGE_LISTEN": f"127.0.0.1:{port}"})
    assert srv.health()["status"] == "ok"


def test_listen_flag_wins_over_env(kbridge):
    other = free_port()
    srv = kbridge(env={"KBRIDGE_LISTEN": f"127.0.0.1:{other}"})
    assert srv.health()["status"] == "ok"
    with pytest.raises(OSError):
        http_request(other, "GET", "/health", timeout=1)


def test_env_brokers(kbridge):
    srv = kbridge(brokers=False, env={"KAFKA_BROKERS": "127.0.0.1:1"})
    assert srv.health()["kafka"] in ("down", "up")


@pytest.mark.parametrize("args,name", [
    (["-X", "foo.bar=1"], r"foo\.bar"),
    (["-X", "fetch.wait.max.ms=abc"], r"fetch\.wait\.max\.ms"),
    (["--topic", "^(bad"], r"\^\(bad"),
], ids=["unknown -X", "bad -X value", "bad topic regex"])
def test_config_errors_exit_2_before_listening(args, name):
    """A bad value exits 2 before anything starts
    (docs/operations.md#exit-status): also when the listen port is taken
    (the error is the configuration's, not the port's)."""
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        p = run_kbridge(base_args(busy.getsockname()[1]) + args)
    finally:
        busy.close()
    assert_config_error(p, name)


def test_flag_wins_over_a_bad_environment_value(kbridge):
    """Flags win over environment variables (docs/operations.md#configuration),
    so a bad value in the environment of an option given as a flag is not an
    error; alone it is."""
    srv = kbridge("--max-clients", "5", "--topic", "a", env={"MAX_CLIENTS": "abc", "KAFKA_TOPICS": "=bad"})
    assert srv.health() is not None
    p = run_kbridge(base_args(), env={"MAX_CLIENTS": "abc"})
    assert_config_error(p, r"MAX_CLIENTS")


def test_operations_doc_carries_the_help_text():
    # docs/operations.md#flags quotes `kbridge --help` whole: it must not
    # fall behind a new flag.
    p = run_kbridge(["--help"])
    assert p.returncode == 0, p
    with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as f:
        doc = f.read()
    start = doc.index("`kbridge --help`:\n\n```\n") + len("`kbridge --help`:\n\n```\n")
    quoted = doc[start:doc.index("```", start)]
    # The usage line names the binary as it was run (kbridge-asan, ...).
    printed = re.sub(r"\AUsage: \S+", "Usage: kbridge", p.stdout.decode())
    assert quoted == printed, "docs/operations.md#flags differs from kbridge --help"
