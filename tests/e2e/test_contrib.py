"""test_contrib.py - the files in contrib/ (docs/operations.md#on-an-edge-box)
against the kbridge they are for.

- contrib/kbridge.service: `systemd-analyze verify` prints nothing about it,
  `systemd-analyze security --offline` rates it 2.0 or lower, it carries the
  hardening settings named in the docs, and every KBRIDGE_* variable it and
  contrib/kbridge.env name is one `kbridge --help` lists. Systemd is not
  PID 1 where these tests run, so kbridge is never started under the unit
  itself; instead it runs under strace, serving a TLS client with a token
  from the mock Kafka cluster, and every system call it makes must be in
  the unit's SystemCallFilter=@system-service, every socket family in its
  RestrictAddressFamilies=, and no mapping writable and executable at once
  (MemoryDenyWriteExecute=). That checks what the filter allows, not that
  systemd enforces it.
- contrib/grafana-dashboard.json: every metric name in every PromQL
  expression (panels, panels of collapsed rows, template variables) is a
  series a running kbridge exposes on /metrics, after traffic with TLS and
  JWT authentication on.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import authutil as au
import conftest
import wsutil
from conftest import free_port, read_messages, ws_subscribe

ROOT = conftest.ROOT
UNIT = os.path.join(ROOT, "contrib", "kbridge.service")
ENV_FILE = os.path.join(ROOT, "contrib", "kbridge.env")
DASHBOARD = os.path.join(ROOT, "contrib", "grafana-dashboard.json")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
STRACE = shutil.which("strace")

needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                           reason="systemd-analyze not installed (Debian: systemd)")


# ---------------------------------------------------------------- the unit

def unit_settings():
    """{(section, key): [values]} of contrib/kbridge.service, in order."""
    out, section = {}, None
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def unit_value(key, section="Service"):
    vals = unit_settings().get((section, key))
    assert vals, f"contrib/kbridge.service has no {key}= in [{section}]"
    return vals[-1]


def help_text():
    r = conftest.run_kbridge(["--help"])
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def help_default(flag):
    m = re.search(r"--%s \S+ .*?\[default: ([^\]]+)\]" % re.escape(flag), help_text())
    assert m, f"--help gives no default for --{flag}"
    return m.group(1)


def fake_root(tmp_path):
    """A file system root for `systemd-analyze verify --root=`: the unit at
    /etc/systemd/system as shipped, byte for byte, the kbridge under test
    copied to /usr/local/bin/kbridge (its ExecStart=), /bin/kill (its
    ExecReload=), and the host's unit directory for the targets every
    service depends on (sysinit.target, ...). verify insists that Exec paths
    exist, and under --root= it looks for them inside the root: so the unit
    is checked unchanged instead of rewriting its ExecStart= in a copy."""
    if not os.path.isdir("/usr/lib/systemd/system"):
        pytest.skip("no /usr/lib/systemd/system to take the targets from")
    root = tmp_path / "root"
    for d in ("usr/local/bin", "usr/bin", "usr/lib/systemd", "etc/systemd/system"):
        (root / d).mkdir(parents=True)
    os.symlink("usr/bin", root / "bin")
    shutil.copy2(conftest.bin_path(), root / "usr/local/bin/kbridge")
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "usr/bin/kill")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy2(UNIT, root / "etc/systemd/system/kbridge.service")
    return root


def verify(root):
    r = subprocess.run([SYSTEMD_ANALYZE, "verify", "--root=%s" % root, "kbridge.service"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return r.returncode, (r.stdout + r.stderr).strip()


@needs_systemd_analyze
def test_unit_verifies_without_a_word(tmp_path):
    root = fake_root(tmp_path)
    rc, out = verify(root)
    assert rc == 0 and out == "", f"systemd-analyze verify (rc {rc}):\n{out}"
    # verify exits 0 on an unknown key or a bad value, only printing a
    # warning: the check above is on its output, and here it is seen to
    # print one for a misspelt setting.
    unit = root / "etc/systemd/system/kbridge.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    rc, out = verify(root)
    assert "ProtectSytem" in out, f"verify said nothing about a misspelt key (rc {rc}): {out!r}"


@needs_systemd_analyze
def test_unit_with_the_key_group_verifies(tmp_path):
    # The group line ships commented out (a group that does not exist fails
    # the start): switched on, as the docs say for key files, it verifies too.
    root = fake_root(tmp_path)
    unit = root / "etc/systemd/system/kbridge.service"
    text = unit.read_text()
    assert text.count("\n#SupplementaryGroups=kbridge\n") == 1, "no '#SupplementaryGroups=kbridge' line to switch on"
    unit.write_text(text.replace("\n#SupplementaryGroups=kbridge\n", "\nSupplementaryGroups=kbridge\n"))
    rc, out = verify(root)
    assert rc == 0 and out == "", f"systemd-analyze verify with the group (rc {rc}):\n{out}"


@needs_systemd_analyze
def test_unit_exposure_is_low():
    r = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", UNIT], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    m = re.search(r"Overall exposure level for kbridge\.service: (\d+\.\d+)", r.stdout)
    assert m, f"no overall exposure level (rc {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr}"
    level = float(m.group(1))
    assert level <= 2.0, f"exposure {level} > 2.0:\n" + "\n".join(
        l for l in r.stdout.splitlines() if l.startswith("\u2717"))


HARDENING = {
    "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "NoNewPrivileges": "yes", "AmbientCapabilities": "",
    "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "ProtectProc": "invisible", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
    "UMask": "0077", "Restart": "on-failure", "KillSignal": "SIGTERM",
    "ExecStart": "/usr/local/bin/kbridge", "EnvironmentFile": "/etc/kbridge/env",
    "ExecReload": "/bin/kill -HUP $MAINPID",
}


def seconds(v):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", v)
    assert m, f"cannot read {v!r} as seconds"
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_unit_has_the_hardening_and_the_limits_kbridge_needs():
    s = unit_settings()
    wrong = {k: (s.get(("Service", k)) or [None])[-1] for k, v in HARDENING.items()
             if (s.get(("Service", k)) or [None])[-1] != v}
    assert not wrong, f"settings missing or other than {HARDENING}: {wrong}"
    # Rotated keys must reach the running kbridge: files read in place, no
    # credential copies (see the unit's comments).
    assert ("Service", "LoadCredential") not in s
    assert seconds(unit_value("RestartSec")) > 0
    # Stopping must outlast the drain (docs/operations.md#signals-and-shutdown).
    drain = seconds(help_default("drain-timeout"))
    assert seconds(unit_value("TimeoutStopSec")) >= drain + 10
    # One descriptor per client beside the 1,024 unfinished and 64 admin
    # connections (docs/operations.md#limits).
    assert int(unit_value("LimitNOFILE")) >= int(help_default("max-clients")) + 1024 + 64 + 100
    assert re.fullmatch(r"\d+[KMG]", unit_value("MemoryMax"))
    assert unit_value("WantedBy", "Install") == "multi-user.target"


def test_env_names_are_kbridge_variables():
    listed = set(re.findall(r"KBRIDGE_[A-Z_]+", help_text()))
    assert "KBRIDGE_BROKERS" in listed and len(listed) > 30, "cannot read the variables from --help"
    with open(ENV_FILE, encoding="utf-8") as f:
        env = f.read()
    with open(UNIT, encoding="utf-8") as f:
        unit = f.read()
    named = set(re.findall(r"KBRIDGE_[A-Z_]+", env + unit))
    assert len(named) >= 15
    assert named <= listed, f"not kbridge variables: {sorted(named - listed)}"
    for line in env.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"KBRIDGE_[A-Z_]+=\S+", line), f"kbridge.env: {line!r}"
    active = dict(l.split("=", 1) for l in env.splitlines() if l and not l.startswith("#"))
    assert {"KBRIDGE_BROKERS", "KBRIDGE_TOPIC", "KBRIDGE_LISTEN"} <= set(active)


def test_env_example_with_every_line_on_starts_kbridge(kbridge, pki, tmp_path):
    """contrib/kbridge.env with its commented settings switched on too (the
    last of a name wins), its /etc/kbridge files replaced by test ones and
    its addresses by free ports: kbridge takes every value and serves."""
    token = tmp_path / "admin-token"
    token.write_text("contrib-admin-token\n")
    files = {"/etc/kbridge/tls.pem": pki.server.cert, "/etc/kbridge/tls.key": pki.server.key,
             "/etc/kbridge/client-ca.pem": pki.ca.cert, "/etc/kbridge/kafka-ca.pem": pki.ca.cert,
             "/etc/kbridge/jwt.pem": pki.ca.cert, "/etc/kbridge/admin-token": str(token)}
    env = {}
    with open(ENV_FILE, encoding="utf-8") as f:
        for line in f:
            m = re.fullmatch(r"#?(KBRIDGE_[A-Z_]+)=(\S+)\n?", line)
            if m:
                env[m.group(1)] = files.get(m.group(2), m.group(2))
    left = [v for v in env.values() if v.startswith("/etc/")]
    assert not left, f"files the test does not stand in for: {left}"
    assert len(env) >= 20, sorted(env)
    port, admin = free_port(), free_port()
    env.update(KBRIDGE_BROKERS="127.0.0.1:1", KBRIDGE_LISTEN="127.0.0.1:%d" % port,
               KBRIDGE_ADMIN_LISTEN="127.0.0.1:%d" % admin)
    srv = kbridge(env=env, port=port, listen=False, brokers=False,
                  ssl=pki.context(client=pki.client))
    r = wsutil.http_request(admin, "GET", "/metrics",
                            headers=[("Authorization", "Bearer contrib-admin-token")])
    assert r.status == 200 and b"kbridge_clients" in r.body, r
    assert srv.http("GET", "/health").status == 200


# ---------------------------------------------------------------- a TLS + JWT kbridge with traffic

TOPIC = "trades"


def start_secured(mock_kafka, tls_kbridge, tmp_path, prefix=()):
    """kbridge with TLS and --jwt-secret on the mock cluster, ready; one
    authenticated client got one record of each partition; one upgrade was
    refused for a bad token. Returns (srv, secret)."""
    mk = mock_kafka({TOPIC: 2})
    secret = b"contrib-test-secret-0123456789abcdef"
    (tmp_path / "secret").write_bytes(secret + b"\n")
    srv = tls_kbridge("--brokers", mk.bootstrap, "-X", "fetch.wait.max.ms=10", "-t", TOPIC,
                      "--jwt-secret", str(tmp_path / "secret"), brokers=False)
    au.wait_for(lambda: srv.http("GET", "/ready", timeout=1.0).status == 200, 20, "GET /ready 200")
    tok = au.mint("HS256", secret, au.claims(channels=[TOPIC]))
    ws = srv.ws(headers=[("Authorization", "Bearer " + tok)])
    ws_subscribe(ws, {"type": "subscribe", "channel": TOPIC})
    for p in (0, 1):
        mk.produce(TOPIC, '{"p":%d}' % p, key="k%d" % p, partition=p)
    got = read_messages(ws, 2, timeout=10)
    assert sorted(m["partition"] for m in got) == [0, 1]
    r = au.upgrade(srv, token=au.tamper_signature(tok))
    assert r.status == 401, r
    return srv


def exposed(srv, labels=None):
    """(sample names, {name: TYPE}) of /metrics; fills labels, when given,
    with {sample name: {label names its samples carry}}."""
    r = srv.http("GET", "/metrics")
    assert r.status == 200, r
    samples, types = set(), {}
    for line in r.body.decode().splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            samples.add(name)
            if labels is not None:
                labels.setdefault(name, set()).update(re.findall(r'[{,]([a-zA-Z_][a-zA-Z0-9_]*)="', line))
    return samples, types


# Labels Prometheus adds to every scraped series, not kbridge's.
TARGET_LABELS = {"job", "instance"}


def promql_labels(expr, legend=""):
    """Label names a query relies on: grouped by (by (...)), matched
    ({label=...}) or shown in the legend ({{label}})."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    used = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", s):
        used.update(x.strip() for x in group.split(",") if x.strip())
    for matchers in re.findall(r"\{([^}]*)\}", s):
        used.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    used.update(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend))
    return used - TARGET_LABELS - {"__name__"}


# ---------------------------------------------------------------- the dashboard

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "inf", "nan", "Inf", "NaN"}


def promql_names(expr):
    """Metric names in a PromQL expression: identifiers that are not
    functions, aggregations, keywords, label names or numbers."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)     # strings
    s = re.sub(r"\{[^}]*\}", " ", s)                                       # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                      # ranges
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before, after = s[:m.start()], s[m.end():].lstrip()
        if after.startswith("(") or m.group(0) in KEYWORDS:
            continue
        if before and (before[-1].isdigit() or before[-1] in ".$"):
            continue                                    # 1e3, 5m, $var
        names.append(m.group(0))
    return names


def test_promql_names_finds_metrics_and_only_them():
    assert promql_names('histogram_quantile(0.99, sum by (le, job) (rate(kbrige_x_bucket{job=~"$job",'
                        'le!="1"}[$__rate_interval]))) / on(instance) group_left(version) '
                        'kbridge_build_info offset 5m > 1e3') == ["kbrige_x_bucket", "kbridge_build_info"]
    assert promql_names("sum(kbridge_clients) by (instance) + 2 * up") == ["kbridge_clients", "up"]


def label_values_names(query):
    """label_values(metric{...}, label) -> [metric]; label_values(label) -> []."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query)
    return promql_names(m.group(1)) if m else promql_names(query)


def dashboard_panels(panels):
    """Every panel, rows and the panels inside collapsed rows included."""
    for p in panels:
        yield p
        yield from dashboard_panels(p.get("panels") or [])


def dashboard_exprs():
    """[(where, expr)] of every PromQL query in the dashboard; asserts every
    panel but a row has at least one."""
    with open(DASHBOARD, encoding="utf-8") as f:
        d = json.load(f)
    out = []
    panels = list(dashboard_panels(d["panels"]))
    for p in panels:
        if p["type"] == "row":
            assert not p.get("targets"), f"row {p['title']!r} has targets"
            continue
        exprs = [t.get("expr", "") for t in p.get("targets", [])]
        assert exprs and all(e.strip() for e in exprs), f"panel {p.get('title')!r} has no query"
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        out += [("panel %r" % p["title"], e) for e in exprs]
    for v in d["templating"]["list"]:
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        assert v.get("definition", q) == q, f"variable ${v['name']}: definition and query differ"
        out.append(("variable $%s" % v["name"], q))
    return d, panels, out


def test_dashboard_is_importable():
    d, panels, exprs = dashboard_exprs()
    assert d["schemaVersion"] >= 36 and d["uid"] and d["title"]
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    assert d["__inputs"][0]["pluginId"] == "prometheus"
    assert [v["name"] for v in d["templating"]["list"]] == ["job", "instance"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert any(p["type"] == "row" and p["collapsed"] and p["panels"] for p in panels)
    assert len([p for p in panels if p["type"] != "row"]) >= 12
    text = " ".join(e for _, e in exprs)
    for what in ("histogram_quantile(0.5,", "histogram_quantile(0.99,",
                 "kbridge_broadcast_latency_seconds_bucket", "kbridge_consumer_lag",
                 "kbridge_auth_failures_total", "kbridge_kafka_up", "kbridge_messages_dropped_total",
                 "kbridge_slow_disconnects_total", "kbridge_bytes_sent_total"):
        assert what in text, f"the dashboard does not use {what}"
    for _, e in exprs:
        if "[" in e:
            assert "$__rate_interval" in e, e


def test_dashboard_uses_only_what_kbridge_exposes(mock_kafka, tls_kbridge, tmp_path):
    _, _, exprs = dashboard_exprs()
    used = {}
    for where, e in exprs:
        names = promql_names(e) if not where.startswith("variable") else label_values_names(e)
        assert names, f"{where}: no metric name found in {e!r}"
        for n in names:
            used.setdefault(n, []).append(where)
    assert len(used) >= 15, f"only {sorted(used)} found in the dashboard"
    srv = start_secured(mock_kafka, tls_kbridge, tmp_path)
    labels = {}
    samples, types = exposed(srv, labels)
    missing = {n: w for n, w in used.items() if n not in samples}
    assert not missing, f"not on kbridge's /metrics: {missing}\nexposed: {sorted(samples)}"
    # Every label a panel groups by, matches on or names in its legend is
    # one the queried metrics carry: a renamed label breaks no panel silently.
    assert promql_labels('sum by (le, topic) (rate(x{reason="a"}[1m]))', "{{partition}}") == \
        {"le", "topic", "reason", "partition"}
    checked = 0
    for p in dashboard_panels(dashboard_exprs()[0]["panels"]):
        for t in p.get("targets", []):
            names = promql_names(t["expr"])
            carried = set().union(*(labels.get(n, set()) for n in names))
            wanted = promql_labels(t["expr"], t.get("legendFormat", ""))
            assert wanted <= carried, (f"panel {p['title']!r}: labels {sorted(wanted - carried)} are not on "
                                       f"{names} (they carry {sorted(carried)})")
            checked += len(wanted)
    assert checked >= 10, f"only {checked} label uses checked"
    for n in used:
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        if base != n and base in types:
            assert types[base] == "histogram", f"{n}: {base} is a {types[base]}"
        if n.endswith("_bucket"):
            assert types.get(base) == "histogram", f"{n} is not a histogram's buckets"


# ---------------------------------------------------------------- what the unit's filters allow

def syscall_groups():
    """{"@group": {names and @subgroups}} from systemd-analyze syscall-filter."""
    r = subprocess.run([SYSTEMD_ANALYZE, "syscall-filter"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    groups, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif not line.strip():
            cur = None
        elif cur is not None and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(name, groups, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = set()
    for n in groups.get(name, ()):
        out |= expand(n, groups, seen)
    return out


@needs_systemd_analyze
@pytest.mark.skipif(STRACE is None, reason="strace not installed")
def test_kbridge_stays_inside_the_units_filters(mock_kafka, tmp_path, pki):
    allowed = expand(unit_value("SystemCallFilter"), syscall_groups())
    assert {"epoll_wait", "read", "sendmsg", "setrlimit"} <= allowed, "cannot read @system-service"
    mk = mock_kafka({TOPIC: 1})
    port = free_port()
    trace = tmp_path / "trace"
    secret = tmp_path / "secret"
    secret.write_bytes(b"contrib-test-secret-0123456789abcdef\n")
    log = open(tmp_path / "kbridge.log", "wb")
    proc = subprocess.Popen([STRACE, "-f", "-qq", "-o", str(trace), "--", conftest.bin_path(),
                             "--brokers", mk.bootstrap, "-X", "fetch.wait.max.ms=10", "-t", TOPIC,
                             "--listen", "127.0.0.1:%d" % port, "--tls-cert", pki.server.cert,
                             "--tls-key", pki.server.key, "--jwt-secret", str(secret)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            # LeakSanitizer cannot run under ptrace; the other
                            # tests look for leaks.
                            env=conftest.clean_env({"ASAN_OPTIONS": "detect_leaks=0"}), cwd=ROOT)
    ctx = pki.context()
    try:
        def ready():
            if proc.poll() is not None:
                out = (tmp_path / "kbridge.log").read_text(errors="replace")
                if "ptrace" in out or "Operation not permitted" in out:
                    pytest.skip("strace cannot trace here: " + out[-300:])
                raise AssertionError(f"kbridge under strace exited {proc.returncode}: {out[-2000:]}")
            return _status(port, "/ready", ctx) == 200
        au.wait_for(ready, 30, "GET /ready 200 under strace")
        tok = au.mint("HS256", b"contrib-test-secret-0123456789abcdef", au.claims(channels=[TOPIC]))
        ws = wsutil.WS.connect(port, headers=[("Authorization", "Bearer " + tok)], ssl=ctx)
        try:
            ws_subscribe(ws, {"type": "subscribe", "channel": TOPIC})
            mk.produce(TOPIC, '{"n":1}', key="k")
            assert len(read_messages(ws, 1, timeout=10)) == 1
        finally:
            ws.close()
        assert _status(port, "/metrics", ctx) == 200
        kb = _child(proc.pid)
        assert kb, "no kbridge under strace"
        os.kill(kb, signal.SIGHUP)              # the reload path (systemctl reload)
        time.sleep(0.3)
        os.kill(kb, signal.SIGTERM)
        assert proc.wait(20) == 0, "kbridge under strace did not exit 0 after SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    lines = trace.read_text(errors="replace").splitlines()
    calls = set()
    for l in lines:
        m = re.match(r"\d+\s+([a-z0-9_]+)\(", l)
        if m:
            calls.add(m.group(1))
    assert "accept4" in calls and len(calls) > 20, f"trace too thin: {sorted(calls)}"
    assert calls <= allowed, f"system calls outside {unit_value('SystemCallFilter')}: {sorted(calls - allowed)}"
    families = set(re.findall(r"\bsocket\((AF_[A-Z0-9]+)", "\n".join(lines)))
    permitted = set(unit_value("RestrictAddressFamilies").split())
    with open(conftest.bin_path(), "rb") as f:
        glibc = b"libc.so.6" in f.read()
    if glibc:
        # glibc's getaddrinfo asks netlink which address families the host
        # has (AI_ADDRCONFIG) and, refused, assumes both; the static musl
        # binary the unit is for never opens one (see the unit).
        families.discard("AF_NETLINK")
    assert families <= permitted, f"socket families outside RestrictAddressFamilies: {families - permitted}"
    wx = [l for l in lines if re.search(r"\b(mmap|mprotect|pkey_mprotect)\(.*PROT_WRITE\|PROT_EXEC|"
                                        r"\b(mmap|mprotect|pkey_mprotect)\(.*PROT_EXEC\|PROT_WRITE", l)]
    assert not wx, "writable and executable mappings (MemoryDenyWriteExecute=):\n" + "\n".join(wx[:5])
    log_text = (tmp_path / "kbridge.log").read_text(errors="replace")
    assert not any(m in log_text for m in conftest.SANITIZER_MARKS), log_text[-3000:]


def _status(port, path, ctx):
    try:
        return wsutil.http_request(port, "GET", path, timeout=1.0, ssl=ctx).status
    except (OSError, wsutil.Closed, TimeoutError, AssertionError, ValueError):
        return None


def _child(pid):
    """The first child of pid (strace's tracee), or None."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None
