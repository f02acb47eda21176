"""test_console.py - the web console (GET /) and the protocol page (GET /docs)
in a real browser: Debian's Chromium, headless, driven by playwright-core from
Node (tests/e2e/browser/console.mjs, which does the clicking and checking and
prints one JSON line). Both are installed on demand: `apt-get install chromium`
(root only) and `npm install` in tests/e2e; without them the tests skip.

The console test runs kbridge --demo, subscribes to `dashboard`, waits for
data rows and a msg/s above 0, pauses and checks the list stops growing, and
saves tests/artifacts/console.png (and console-phone.png); it is copied to
web/console-screenshot.png when that is missing or KBRIDGE_SCREENSHOT=1.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ARTIFACTS, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCRIPT = os.path.join(HERE, "browser", "console.mjs")
SCREENSHOT_COPY = os.path.join(ROOT, "web", "console-screenshot.png")

_browser = {}       # cached outcome of the install attempt: None or a skip reason


def _install_chromium():
    if os.path.exists(CHROMIUM):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{CHROMIUM} missing and not root: apt-get install chromium"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    # Refresh the package lists only when the install finds them stale.
    for cmds in ([install], [["apt-get", "update"], install]):
        for cmd in cmds:
            try:
                subprocess.run(cmd, env=env, capture_output=True, timeout=900, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if os.path.exists(CHROMIUM):
            return None
    return "apt-get install chromium failed"


def _install_playwright():
    mod = os.path.join(HERE, "node_modules", "playwright-core")
    if os.path.isdir(mod):
        return None
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not available"
    # playwright-core has no install script and never downloads a browser.
    try:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None if os.path.isdir(mod) else "npm install playwright-core failed"


def need_browser():
    if "reason" not in _browser:
        _browser["reason"] = _install_chromium() or _install_playwright()
    if _browser["reason"]:
        pytest.skip(_browser["reason"])


def run_browser(mode, base, timeout=90):
    """Runs console.mjs; returns (parsed last JSON line, whole output)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    env = dict(os.environ, CHROMIUM=CHROMIUM)
    try:
        p = subprocess.run(["node", SCRIPT, mode, base, ARTIFACTS], cwd=HERE, env=env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"browser script ran over {timeout}s:\n{e.stdout or ''}{e.stderr or ''}")
    out = p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"browser script printed no result (exit {p.returncode}):\n{out[-4000:]}"
    result = json.loads(lines[-1])
    assert p.returncode == 0 and result.get("ok"), f"browser {mode} test failed:\n{out[-6000:]}"
    return result, out


def test_console_subscribes_shows_rate_and_pauses(kbridge):
    need_browser()
    srv = kbridge("--demo", "--demo-rate", "40", brokers=False)
    result, out = run_browser("console", f"http://127.0.0.1:{srv.port}")
    assert result["rate"] > 0, out
    assert 0 < result["rows"] <= 500, out
    shot = os.path.join(ARTIFACTS, "console.png")
    assert os.path.getsize(shot) > 10000, "screenshot looks empty"
    assert os.path.getsize(os.path.join(ARTIFACTS, "console-phone.png")) > 10000
    # The README's copy is refreshed only when missing or asked for, so a
    # test run does not leave a changed tracked file behind.
    if not os.path.exists(SCREENSHOT_COPY) or os.environ.get("KBRIDGE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT_COPY)


def test_docs_page_lists_live_routes(kbridge):
    need_browser()
    srv = kbridge("--demo", brokers=False)
    result, out = run_browser("docs", f"http://127.0.0.1:{srv.port}")
    assert "live route trade-info -> dashboard -> trade_data in the routes table body" in result["checks"], out


def test_pages_are_self_contained():
    """No external assets (air-gapped hosts): nothing loads from a URL with a
    scheme or a protocol-relative one; links stay relative to the server."""
    import re
    for name in ("console.html", "docs.html"):
        with open(os.path.join(ROOT, "web", name), encoding="utf-8") as f:
            html = f.read()
        assert len(html.encode()) < 40000, f"{name} grew to {len(html.encode())} bytes"
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", html, re.I), name
        assert not re.search(r"@import|url\(\s*['\"]?(?:https?:|//)", html, re.I), name
        assert "<meta name=\"viewport\"" in html, name
    with open(os.path.join(ROOT, "web", "docs.html"), encoding="utf-8") as f:
        assert f.read().count("<!--ROUTES-->") == 1
