"""Certificates from `spark-identity-webhook certs`, and verified TLS with SNI."""
import base64
import ssl
import stat

import pytest

from conftest import NAMESPACE, SERVICE, SNI, Client, make_certs, run_bin


def test_certs_writes_the_four_files_with_private_keys_0600(certs):
    for p in (certs.ca, certs.ca_key, certs.cert, certs.key):
        assert p.is_file() and p.stat().st_size > 0, p
    for p in (certs.ca_key, certs.key):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p} mode {oct(p.stat().st_mode)}"
    assert certs.cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert certs.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("name", [
    SERVICE,
    f"{SERVICE}.{NAMESPACE}",
    f"{SERVICE}.{NAMESPACE}.svc",
    f"{SERVICE}.{NAMESPACE}.svc.cluster.local",
    "127.0.0.1",   # --ip 127.0.0.1
])
def test_certificate_verifies_for_every_service_name(server, name):
    st, _, body = Client(server.port, server.certs.ca, sni=name).request("GET", "/healthz")
    assert st == 200, body


def test_sni_is_the_service_dns_name(server):
    with server.client().tls_socket() as s:
        assert s.server_hostname == SNI
        cert = s.getpeercert()
    sans = {v for k, v in cert["subjectAltName"]}
    assert SNI in sans, sans


def test_wrong_hostname_fails_verification(server):
    c = Client(server.port, server.certs.ca, sni="evil.example.com")
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        c.request("GET", "/healthz")
    assert "hostname" in str(e.value).lower() or "match" in str(e.value).lower(), e.value


def test_unknown_ca_fails_verification(server, workdir):
    other = make_certs(workdir / "other-ca")
    assert other.ca.read_bytes() != server.certs.ca.read_bytes()
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(server.port, other.ca).request("GET", "/healthz")


def test_server_still_serves_after_failed_handshakes(server, client):
    for sni in ("evil.example.com", "x.invalid"):
        with pytest.raises(ssl.SSLError):
            Client(server.port, server.certs.ca, sni=sni).request("GET", "/healthz")
    st, _, _ = client.request("GET", "/healthz")
    assert st == 200


def test_print_ca_bundle_is_base64_of_the_ca_pem(workdir):
    out = workdir / "bundle"
    p = run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", out, "--print-ca-bundle")
    assert p.returncode == 0, p.stderr
    bundle = p.stdout.decode().strip()
    assert base64.b64decode(bundle, validate=True) == (out / "ca.crt").read_bytes()


def test_certs_refuses_to_overwrite_without_force(workdir):
    out = workdir / "again"
    make_certs(out)
    before = (out / "tls.key").read_bytes()
    p = run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", out)
    assert p.returncode != 0, "existing files must not be overwritten without --force"
    assert (out / "tls.key").read_bytes() == before
    p = run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", out, "--force")
    assert p.returncode == 0, p.stderr
    assert (out / "tls.key").read_bytes() != before
