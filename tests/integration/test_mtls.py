"""Mutual TLS: with --client-ca (and --client-cn), a client without a
certificate that chains to the CA, or with another CN, is refused in the
TLS handshake, before any HTTP; the API server's certificate is served. The
probes then go to the plain --metrics-listen port."""
from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, SNI, fresh, free_port, load_fixture, run_bin

POLICY = ROOT / "tests" / "fixtures" / "policy.yaml"


def openssl(*args, cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def client_pki(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("clients", "other"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}-ca.key", "-out", f"{ca}-ca.crt", "-days", "2",
                "-subj", f"/CN={ca}-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    for name, ca, cn in (("apiserver", "clients", "kube-apiserver"), ("intruder", "clients", "intruder"),
                         ("forged", "other", "kube-apiserver")):
        openssl("req", "-x509", *ec, "-CA", f"{ca}-ca.crt", "-CAkey", f"{ca}-ca.key", "-keyout", f"{name}.key",
                "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature",
                "-addext", "extendedKeyUsage=clientAuth", cwd=d)


@pytest.fixture(scope="module")
def mtls(certs, tmp_path_factory):
    d = tmp_path_factory.mktemp("mtls")
    client_pki(d)
    port, plain = free_port(), free_port()
    err = open(d / "server.stderr", "wb")
    proc = subprocess.Popen([str(BIN), "serve", "--policy", str(POLICY), "--tls-cert", str(certs.cert),
                             "--tls-key", str(certs.key), "--listen", f"127.0.0.1:{port}",
                             "--client-ca", str(d / "clients-ca.crt"), "--client-cn", "kube-apiserver",
                             "--metrics-listen", f"127.0.0.1:{plain}"], stderr=err)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", plain, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail((d / "server.stderr").read_text())
    yield d, port, plain, certs
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, (d / "server.stderr").read_text()


def ctx(certs, d: Path, name: str | None) -> ssl.SSLContext:
    c = ssl.create_default_context(cafile=str(certs.ca))
    if name:
        c.load_cert_chain(str(d / f"{name}.crt"), str(d / f"{name}.key"))
    return c


def post(port: int, context: ssl.SSLContext, body: bytes) -> bytes:
    """Everything the server sends back; raises on a TLS alert."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=SNI) as s:
        s.sendall(f"POST /mutate HTTP/1.1\r\nHost: {SNI}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


BODY = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()


def test_the_api_servers_certificate_is_served(mtls):
    d, port, _, certs = mtls
    out = post(port, ctx(certs, d, "apiserver"), BODY)
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert b'"allowed":true' in out


@pytest.mark.parametrize("name", [None, "intruder", "forged"])
def test_others_are_refused_in_the_handshake(mtls, name):
    """No certificate, another CN, or another CA: a TLS alert, not one byte of HTTP."""
    d, port, _, certs = mtls
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        out = post(port, ctx(certs, d, name), BODY)
        assert out == b"", out[:200]      # (if the alert raced the read, nothing was said)
        raise ssl.SSLError("closed without an answer")


def test_probes_on_the_plain_port(mtls):
    _, _, plain, _ = mtls
    for path in ("/healthz", "/readyz", "/metrics"):
        c = http.client.HTTPConnection("127.0.0.1", plain, timeout=5)
        c.request("GET", path)
        assert c.getresponse().status == 200, path


def test_bad_client_ca_and_cn_without_ca_are_usage_errors(certs, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    base = ["serve", "--policy", POLICY, "--tls-cert", certs.cert, "--tls-key", certs.key,
            "--listen", f"127.0.0.1:{free_port()}"]
    p = run_bin(*base, "--client-ca", bad)
    assert p.returncode == 2 and b"--client-ca" in p.stderr and b"no PEM certificate" in p.stderr, p.stderr
    p = run_bin(*base, "--client-ca", tmp_path / "missing.pem")
    assert p.returncode == 2 and b"missing.pem" in p.stderr, p.stderr
    p = run_bin(*base, "--client-cn", "kube-apiserver")
    assert p.returncode == 2 and b"--client-cn needs --client-ca" in p.stderr, p.stderr
