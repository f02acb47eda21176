"""test_console_tls.py - the web console in Chromium over https:// and wss://
(issue 14, docs/operations.md#tls).

kbridge --demo listens with TLS (tlsutil: a server certificate for
127.0.0.1 issued by a throwaway test CA). The browser trusts it through
--ignore-certificate-errors-spki-list=<sha256 of the certificate's public
key, base64>, computed here with the openssl command line. console.mjs's
`tls` mode first checks that Chromium without the flag refuses the page
(ERR_CERT_*), then, with it: the page's TLS details (test certificate,
TLS 1.2+), a secure context, the console's default URL wss://, and the whole
console test (subscribe, data rows, msg/s, pause, auth, phone) over wss://,
every WebSocket wss:// and at least 20 frames received. Screenshots go to
tests/artifacts/tls/. Skips like test_console.py without Chromium or
playwright-core, and without a kbridge built with TLS.
"""
import os
import subprocess

from conftest import ARTIFACTS
from test_console import need_browser, run_browser
from tlsutil import OPENSSL


def spki_sha256_b64(cert_path):
    """base64(sha256(DER SubjectPublicKeyInfo)) of a PEM certificate: what
    Chromium's --ignore-certificate-errors-spki-list takes. The pipeline
    `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64`, each step checked."""
    data = None
    for cmd in ([OPENSSL, "x509", "-in", cert_path, "-pubkey", "-noout"],
                [OPENSSL, "pkey", "-pubin", "-outform", "der"],
                [OPENSSL, "dgst", "-sha256", "-binary"],
                ["base64"]):
        r = subprocess.run(cmd, input=data, capture_output=True, timeout=30)
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr.decode(errors='replace')}"
        data = r.stdout
    out = data.decode().strip()
    assert len(out) == 44 and out.endswith("="), f"not a base64 sha256: {out!r}"
    return out


def test_console_over_https_and_wss(tls_kbridge, pki):
    need_browser()
    srv = tls_kbridge("--demo", "--demo-rate", "40", brokers=False)
    spki = spki_sha256_b64(pki.server.cert)
    out_dir = os.path.join(ARTIFACTS, "tls")
    result, out = run_browser("tls", f"https://127.0.0.1:{srv.port}", out_dir=out_dir, args=[spki])
    checks = result["checks"]
    assert "without the SPKI flag Chromium refuses the certificate" in checks, out
    assert "the console connects over wss://" in checks, out
    assert "every WebSocket was wss://" in checks, out
    assert result["wssFrames"] >= 20 and result["rate"] > 0, out
    assert 0 < result["rows"] <= 500, out
    assert os.path.getsize(os.path.join(out_dir, "console.png")) > 10000, "screenshot looks empty"
