"""tlsutil.py - a test PKI made with the `openssl` command line, and the
pieces that start kbridge with TLS (docs/operations.md#tls).

`pki` (session fixture) makes, in a session temp dir: a CA, a server
certificate for IP 127.0.0.1 (ECDSA P-256, SAN IP:127.0.0.1 and
DNS:localhost), a second unrelated CA, a client certificate from each CA,
and can issue more server certificates (rotation tests read their serials).
`tls_kbridge` starts kbridge with --tls-cert/--tls-key and returns a Server
whose ws()/conn()/http() speak TLS verified against the test CA; it skips
with a reason while the binary under test has no --tls-cert.
"""
import os
import shutil
import ssl
import subprocess

import pytest

OPENSSL = shutil.which("openssl") or "openssl"


def openssl(*args, cwd=None, timeout=30):
    r = subprocess.run([OPENSSL] + [str(a) for a in args], cwd=cwd, capture_output=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))}: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode(errors="replace")


class Pair:
    """A certificate and its key (PEM files), with the serial as hex."""

    def __init__(self, cert, key, serial, cn):
        self.cert, self.key, self.serial, self.cn = cert, key, serial, cn

    def __repr__(self):
        return f"<Pair CN={self.cn} serial={self.serial} {self.cert}>"


class PKI:
    def __init__(self, d):
        self.dir = d
        self._n = 0
        self.ca = self._ca("ca", "kbridge test CA")
        self.other_ca = self._ca("other-ca", "kbridge other CA")
        self.server = self.issue_server()
        self.client = self._leaf("client", "alice", self.ca, "clientAuth")
        self.other_client = self._leaf("other-client", "mallory", self.other_ca, "clientAuth")

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, cn):
        key, cert = self._path(name + ".key"), self._path(name + ".pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", "/CN=" + cn, "-keyout", key, "-out", cert,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return Pair(cert, key, serial_of(cert), cn)

    def _leaf(self, name, cn, ca, eku, san=None):
        self._n += 1
        key, csr, cert = self._path(name + ".key"), self._path(name + ".csr"), self._path(name + ".pem")
        ext = self._path(name + ".ext")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=" + cn, "-keyout", key, "-out", csr)
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
                 "extendedKeyUsage=" + eku]
        if san:
            lines.append("subjectAltName=" + san)
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        serial = "%X" % (0x1000 + self._n * 0x11 + int.from_bytes(os.urandom(4), "big") * 0x10000)
        openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial",
                "0x" + serial, "-days", "2", "-extfile", ext, "-out", cert)
        return Pair(cert, key, serial_of(cert), cn)

    def issue_server(self, name=None, ca=None):
        """A new server certificate for 127.0.0.1 (fresh key, fresh serial)."""
        name = name or "server-%d" % (self._n + 1)
        return self._leaf(name, "127.0.0.1", ca or self.ca, "serverAuth",
                          san="IP:127.0.0.1,DNS:localhost")

    def context(self, client=None, verify=True):
        """A client SSLContext trusting the test CA; `client` is a Pair to
        present (mutual TLS)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca.cert)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client is not None:
            ctx.load_cert_chain(client.cert, client.key)
        return ctx


def serial_of(cert_path):
    """The certificate's serial, upper-case hex without leading zeros."""
    out = openssl("x509", "-noout", "-serial", "-in", cert_path)
    return out.strip().split("=", 1)[1].lstrip("0").upper() or "0"


def serial_of_der(der):
    """Serial of a DER certificate (what SSLSocket.getpeercert(True) gives)."""
    r = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip().split("=", 1)[1].lstrip("0").upper() or "0"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(str(tmp_path_factory.mktemp("pki")))


_has_tls = {}


def binary_has_tls(bin_path):
    """True when `kbridge --help` lists --tls-cert (issue14-core merged)."""
    if bin_path not in _has_tls:
        try:
            r = subprocess.run([bin_path, "--help"], capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL)
            _has_tls[bin_path] = b"--tls-cert" in r.stdout + r.stderr
        except (OSError, subprocess.TimeoutExpired):
            _has_tls[bin_path] = False
    return _has_tls[bin_path]


def require_tls(bin_path):
    if not binary_has_tls(bin_path):
        pytest.skip(f"{bin_path} has no --tls-cert (TLS core of issue 14 not in this binary)")


@pytest.fixture
def tls_kbridge(kbridge, pki):
    """tls_kbridge(*args, pair=None, client_ca=None) starts kbridge with
    --tls-cert/--tls-key (pki.server unless pair) and returns its Server,
    whose helpers speak TLS verified against the test CA."""
    import conftest

    def start(*args, pair=None, client_ca=None, context=None, **kw):
        require_tls(conftest.bin_path())
        pair = pair or pki.server
        extra = ["--tls-cert", pair.cert, "--tls-key", pair.key]
        if client_ca:
            extra += ["--tls-client-ca", client_ca]
        ctx = context or pki.context(client=pki.client if client_ca else None)
        return kbridge(*extra, *args, ssl=ctx, **kw)
    return start
