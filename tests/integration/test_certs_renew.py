"""`certs --renew` (a new serving pair under the CA already in DIR) and
`certs --print-ca-bundle --previous-ca` (a caBundle that trusts the old and
the new CA during a rollover), through the real binary and real TLS."""
from __future__ import annotations

import base64
import re
import ssl
import stat
from pathlib import Path

import pytest

from conftest import NAMESPACE, POLICY, SERVICE, Certs, Client, Server, make_certs, run_bin

PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", re.S)


def certs_cmd(out: Path, *extra):
    return run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", out, "--ip", "127.0.0.1", *extra)


def files(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("ca.crt", "ca.key", "tls.crt", "tls.key")}


def serial(cert: Path) -> str:
    # The standard library's own decoder, as getpeercert() uses.
    return ssl._ssl._test_decode_cert(str(cert))["serialNumber"]


def bundle_of(p) -> bytes:
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, "stdout holds the caBundle and nothing else"
    return base64.b64decode(lines[0], validate=True)


def serve_and_call(name: str, certs: Certs, cafile: Path, workdir: Path) -> int:
    """Starts the server on `certs`, calls /healthz trusting only `cafile`."""
    s = Server(name, certs, POLICY, workdir)
    try:
        s.start()
        st, _, _ = Client(s.port, cafile).request("GET", "/healthz")
        return st
    finally:
        s.stop()


def test_renew_keeps_the_ca_and_the_ca_bundle(tmp_path):
    out = tmp_path / "certs"
    first = bundle_of(certs_cmd(out, "--print-ca-bundle"))
    before = files(out)

    p = certs_cmd(out, "--renew", "--print-ca-bundle")
    assert bundle_of(p) == first == before["ca.crt"]
    after = files(out)
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    assert after["tls.crt"] != before["tls.crt"] and after["tls.key"] != before["tls.key"]
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    err = p.stderr.decode()
    assert f"wrote {out / 'tls.crt'}" in err and f"wrote {out / 'tls.key'}" in err
    assert "wrote " + str(out / "ca.crt") not in err and "wrote " + str(out / "ca.key") not in err
    assert sorted(x.name for x in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_renewed_pair_is_served_and_trusted_by_the_same_ca(tmp_path):
    certs = make_certs(tmp_path / "certs")
    old_serial = serial(certs.cert)
    p = certs_cmd(certs.dir, "--renew", "--days", "30")
    assert p.returncode == 0, p.stderr
    assert serial(certs.cert) != old_serial
    assert serve_and_call("renewed", certs, certs.ca, tmp_path) == 200


def test_renew_with_force_is_a_usage_error(tmp_path):
    out = tmp_path / "certs"
    make_certs(out)
    before = files(out)
    p = certs_cmd(out, "--renew", "--force")
    assert p.returncode == 2, p
    assert b"--renew and --force" in p.stderr
    assert files(out) == before


@pytest.mark.parametrize("missing", ["ca.key", "ca.crt"])
def test_renew_without_the_ca_fails_and_names_what_is_missing(tmp_path, missing):
    out = tmp_path / "certs"
    make_certs(out)
    (out / missing).unlink()
    tls = (out / "tls.crt").read_bytes(), (out / "tls.key").read_bytes()
    p = certs_cmd(out, "--renew")
    assert p.returncode == 2, p
    assert f"{out / missing} is missing".encode() in p.stderr, p.stderr
    assert ((out / "tls.crt").read_bytes(), (out / "tls.key").read_bytes()) == tls


def test_renew_refuses_a_ca_key_from_another_ca(tmp_path):
    out, other = tmp_path / "certs", tmp_path / "other"
    make_certs(out)
    make_certs(other)
    (out / "ca.key").write_bytes((other / "ca.key").read_bytes())
    before = files(out)
    p = certs_cmd(out, "--renew")
    assert p.returncode == 2, p
    assert b"does not match" in p.stderr, p.stderr
    assert files(out) == before


def test_previous_ca_bundle_holds_both_cas_and_trusts_both_pairs(tmp_path):
    old = make_certs(tmp_path / "old")
    new_dir = tmp_path / "new"
    decoded = bundle_of(certs_cmd(new_dir, "--print-ca-bundle", "--previous-ca", old.ca))
    new = Certs(new_dir)

    # New CA first, then the previous one, each whole.
    assert decoded == new.ca.read_bytes() + old.ca.read_bytes()
    pems = PEM_CERT.findall(decoded)
    assert pems == [new.ca.read_bytes(), old.ca.read_bytes()]
    for pem in pems:
        ssl.PEM_cert_to_DER_cert(pem.decode())
    assert b"PRIVATE KEY" not in decoded

    # What the API server does with it: either serving pair verifies.
    bundle_file = tmp_path / "bundle.pem"
    bundle_file.write_bytes(decoded)
    assert serve_and_call("old-ca", old, bundle_file, tmp_path) == 200
    assert serve_and_call("new-ca", new, bundle_file, tmp_path) == 200


def test_previous_ca_with_renew_keeps_the_rollover_bundle(tmp_path):
    old = make_certs(tmp_path / "old")
    new_dir = tmp_path / "new"
    first = bundle_of(certs_cmd(new_dir, "--print-ca-bundle", "--previous-ca", old.ca))
    again = bundle_of(certs_cmd(new_dir, "--renew", "--print-ca-bundle", "--previous-ca", old.ca))
    assert again == first


def test_previous_ca_needs_print_ca_bundle(tmp_path):
    old = make_certs(tmp_path / "old")
    p = certs_cmd(tmp_path / "new", "--previous-ca", old.ca)
    assert p.returncode == 2, p
    assert b"--previous-ca needs --print-ca-bundle" in p.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("what", ["missing", "key", "garbage"])
def test_a_bad_previous_ca_is_refused_before_anything_is_written(tmp_path, what):
    old = make_certs(tmp_path / "old")
    prev = {"missing": tmp_path / "nope.crt", "key": old.ca_key, "garbage": tmp_path / "junk.crt"}[what]
    if what == "garbage":
        prev.write_text("not a certificate\n")
    p = certs_cmd(tmp_path / "new", "--print-ca-bundle", "--previous-ca", prev)
    assert p.returncode == 2, p
    assert p.stdout == b""
    assert str(prev).encode() in p.stderr, p.stderr
    assert not (tmp_path / "new").exists()


def test_previous_ca_must_not_be_the_ca_in_out(tmp_path):
    out = tmp_path / "certs"
    make_certs(out)
    before = files(out)
    for extra in (["--renew"], ["--force"]):
        p = certs_cmd(out, *extra, "--print-ca-bundle", "--previous-ca", out / "ca.crt")
        assert p.returncode == 2, p
        assert b"itself" in p.stderr, p.stderr
        assert files(out) == before


def test_help_explains_renewal_and_rollover():
    p = run_bin("help", "certs")
    assert p.returncode == 0
    text = p.stdout.decode()
    for word in ("--renew", "--previous-ca", "Rolling over", "caBundle", "Secret"):
        assert word in text, word
