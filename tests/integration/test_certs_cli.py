"""`certs` on the command-line conventions of the other commands: usage
errors in the same form and with the same exit status, and a flag given
twice taking its last value (while --dns and --ip add a name each)."""
from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from conftest import NAMESPACE, SERVICE, run_bin

HELP = "(see 'spark-identity-webhook help {}')"


def usage_error(cmd: str, *args) -> str:
    p = run_bin(cmd, *args)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2, (cmd, args, err)
    assert p.stdout == b"", (cmd, args, p.stdout)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(cmd + ": ") and lines[0].endswith(HELP.format(cmd)), err
    return lines[0][len(cmd) + 2:-len(HELP.format(cmd)) - 1]


@pytest.mark.parametrize("args", [["--bogus"], ["--bogus=1"], ["--namespace"], ["--policy"]])
def test_getopt_errors_read_as_in_the_other_commands(args):
    # --policy is audit's and not certs': needs a value there, unknown here.
    audit = usage_error("audit", *args)
    certs = usage_error("certs", *args)
    if args == ["--policy"]:
        assert audit == "--policy needs a value" and certs == "unknown option --policy"
    else:
        assert certs == audit


@pytest.mark.parametrize("args, says", [
    (["--bogus"], "unknown option --bogus"),
    (["--service"], "--service needs a value"),
    (["--out", "d", "extra"], 'unexpected "extra"'),
    (["--service", "s", "--namespace", "n", "--out", "d", "--days", "0"],
     '--days must be a whole number from 1 to 3650, not "0"'),
    (["--service", "s", "--namespace", "n", "--out", "d", "--days", "+5"],
     '--days must be a whole number from 1 to 3650, not "+5"'),
    (["--namespace", "n", "--out", "d"], "--service is required"),
    (["--service", "s", "--namespace", "n", "--out", "d", "--previous-ca", "x"],
     "--previous-ca needs --print-ca-bundle"),
    (["--service", "s", "--namespace", "n", "--out", "d", "--renew", "--force"],
     "--renew and --force cannot be used together: --renew keeps the CA and always replaces tls.crt and tls.key"),
])
def test_certs_usage_errors(args, says, tmp_path):
    assert usage_error("certs", *args) == says
    assert not (Path.cwd() / "d").exists()


def test_help_says_a_repeated_flag_takes_its_last_value():
    p = run_bin("help", "certs")
    assert p.returncode == 0 and b"given twice, a flag takes its last value" in p.stdout


def test_a_repeated_flag_takes_its_last_value(tmp_path):
    first, last = tmp_path / "first", tmp_path / "last"
    p = run_bin("certs", "--service", "ignored", "--namespace", "ignored", "--out", first, "--days", "nonsense",
                "--service", SERVICE, "--namespace", NAMESPACE, "--out", last, "--days", "7",
                "--dns", "a.example", "--dns", "b.example", "--ip", "127.0.0.1", "--ip", "::1")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert not first.exists()
    assert p.stderr.decode().splitlines() == [f"wrote {last / n}" for n in ("ca.crt", "ca.key", "tls.crt", "tls.key")]
    cert = ssl._ssl._test_decode_cert(str(last / "tls.crt"))
    assert dict(x[0] for x in cert["subject"])["commonName"] == f"{SERVICE}.{NAMESPACE}.svc"
    svc = f"{SERVICE}.{NAMESPACE}"
    assert cert["subjectAltName"] == (
        ("DNS", SERVICE), ("DNS", svc), ("DNS", f"{svc}.svc"), ("DNS", f"{svc}.svc.cluster.local"),
        ("DNS", "a.example"), ("DNS", "b.example"),
        ("IP Address", "127.0.0.1"), ("IP Address", "0:0:0:0:0:0:0:1"))
    days = (ssl.cert_time_to_seconds(cert["notAfter"]) - ssl.cert_time_to_seconds(cert["notBefore"])) / 86400
    assert days == pytest.approx(7 + 5 / 1440)


def test_a_repeated_previous_ca_takes_its_last_value(tmp_path):
    old = tmp_path / "old"
    assert run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", old).returncode == 0
    p = run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", tmp_path / "new",
                "--print-ca-bundle", "--previous-ca", tmp_path / "missing.crt", "--previous-ca", old / "ca.crt")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    bundle = base64.b64decode(p.stdout.decode().strip(), validate=True)
    assert bundle == (tmp_path / "new" / "ca.crt").read_bytes() + (old / "ca.crt").read_bytes()
