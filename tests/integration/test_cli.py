"""The `mutate` and `check-policy` subcommands."""
import json
import re

import pytest

from conftest import ALL_FIXTURES, FIXTURES, POLICY, ROOT, check_envelope, fresh, in_namespace, load_fixture, run_bin


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_mutate_prints_what_the_server_answers(client, name):
    rv = load_fixture(name)
    p = run_bin("mutate", "--policy", POLICY, FIXTURES / name)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    cli = json.loads(p.stdout)
    check_envelope(rv, 200, {"content-type": "application/json"}, p.stdout)
    assert cli == client.review(rv)


@pytest.mark.parametrize("ns", ["team-c", "team-d", "team-e", "team-f"])
def test_mutate_reads_stdin(client, ns):
    rv = in_namespace(load_fixture("spark35-driver-foreign-identity.json"), ns)
    body = json.dumps(rv).encode()
    p = run_bin("mutate", "--policy", POLICY, "-", input=body)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert json.loads(p.stdout) == client.review(rv)
    p2 = run_bin("mutate", "--policy", POLICY, input=body)   # no file argument: stdin too
    assert p2.returncode == 0 and json.loads(p2.stdout) == json.loads(p.stdout)


@pytest.mark.parametrize("path", [FIXTURES / "policy.yaml", FIXTURES / "policy-unmatched-deny.yaml",
                                  ROOT / "deploy" / "policy.yaml"])
def test_check_policy_accepts_the_shipped_policies(path):
    p = run_bin("check-policy", path)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


def test_check_policy_accepts_the_same_policy_as_json(tmp_path):
    import model
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(model.load_policy(POLICY), indent=2))
    p = run_bin("check-policy", path)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


GOOD_HEAD = """defaults:
  mode: enforce
  java:
    options: [-Dio.netty.tryReflectionSetAccessible=true]
  hadoop:
    fs.azure.account.auth.type: OAuth
namespaces:
  team-a:
    identity: sparkaks
"""

BROKEN = {
    # name: (text, line of the error)
    "hadoop-value-with-space": (GOOD_HEAD + "    hadoop:\n      fs.azure.account.oauth2.msi.endpoint: \"http://x y\"\n", 11),
    "java-option-with-space": (GOOD_HEAD.replace("[-Dio.netty.tryReflectionSetAccessible=true]",
                                                 "[\"-Dfoo=a b\"]"), 4),
    "tenant-with-space": (GOOD_HEAD + "    tenantId: \"6513270e 269e\"\n", 10),
    "bad-mode": (GOOD_HEAD + "    mode: sometimes\n", 10),
    "bad-on-conflict": (GOOD_HEAD.replace("  mode: enforce\n", "  mode: enforce\n  onConflict: maybe\n"), 3),
    "bad-jvm-env": (GOOD_HEAD + "    jvmEnv: JDK_JAVA_OPTIONS\n", 10),
    "bad-unmatched": (GOOD_HEAD + "unmatched: perhaps\n", 10),
    # the key (line 10) or the mapping that lacks it (line 11)
    "entry-without-identity": (GOOD_HEAD + "  team-b:\n    clientId: 9531985d-5d9d-49f8-9818-e811892f902b\n", (10, 11)),
    "yaml-syntax": (GOOD_HEAD + "  team-b: {identity: b, storageAccounts: [one, two}\n", 10),
    "options-not-a-list": (GOOD_HEAD.replace("[-Dio.netty.tryReflectionSetAccessible=true]", "{a: b}"), 4),
    # WH_MAX_RULE_LIST_ITEMS (64): a rule cannot name more identities than that
    "too-many-allowed-identities": (GOOD_HEAD + "    allowedIdentities: [" + ", ".join(f"i{n}" for n in range(65)) + "]\n",
                                    10),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_policy_reports_file_line_col(tmp_path, case):
    text, line = BROKEN[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    p = run_bin("check-policy", path)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 1, f"exit {p.returncode}: {out}"
    m = re.search(re.escape(str(path)) + r":(\d+):(\d+): \S", out)
    assert m, f"no '{path}:LINE:COL: message' in: {out}"
    lines = line if isinstance(line, tuple) else (line,)
    assert int(m.group(1)) in lines, f"error reported at line {m.group(1)}, want {line}: {out}"
    assert int(m.group(2)) >= 1


def test_check_policy_names_an_identitys_owners_then_counts_the_rest(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("namespaces:\n" + "".join(
        f"  team-{i:03d}: {{identity: shared, allowedIdentities: [shared, other-{i % 3}, shared]}}\n"
        for i in range(100)) +
        "selectors:\n  - name: by-label\n    namespaceSelector: {matchLabels: {x: y}}\n    identity: shared\n"
        "delegableIdentities: [lonely]\n")
    p = run_bin("check-policy", path)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and len(line.split()) > 2}
    # 100 namespaces and one selector name "shared": as many names as fit, in order, each once, then the count
    shown = re.findall(r"team-\d{3}", rows["shared"])
    assert shown == [f"team-{i:03d}" for i in range(len(shown))] and 10 < len(shown) < 100, rows["shared"]
    assert rows["shared"].endswith(f", and {101 - len(shown)} more"), rows["shared"]
    shown = re.findall(r"team-\d{3}", rows["other-1"])
    assert shown[:2] == ["team-001", "team-004"] and rows["other-1"].endswith(f"and {33 - len(shown)} more")
    assert rows["lonely"].split()[1:] == ["enforce", "delegable:", "namespaces", "whose", "annotations", "name", "it"]


def test_check_policy_reports_every_error(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(GOOD_HEAD + "    mode: sometimes\n  team-b:\n    identity: b\n    onConflict: maybe\n")
    p = run_bin("check-policy", path)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 1, out
    lines = {int(m.group(1)) for m in re.finditer(re.escape(str(path)) + r":(\d+):\d+:", out)}
    assert {10, 13} <= lines, out


def test_serve_refuses_a_broken_policy(tmp_path, certs):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN["bad-mode"][0])
    p = run_bin("serve", "--policy", path, "--tls-cert", certs.cert, "--tls-key", certs.key,
                "--listen", "127.0.0.1:1", timeout=10)
    assert p.returncode != 0
    assert str(path) in p.stderr.decode(errors="replace")


def _serve_with(cert, key, listen="127.0.0.1:1", policy=None):
    policy = policy or (ROOT / "tests" / "fixtures" / "policy.yaml")
    return run_bin("serve", "--policy", policy, "--tls-cert", cert, "--tls-key", key,
                   "--listen", listen, timeout=10)


def test_serve_refuses_a_key_that_does_not_match(certs):
    # The CA's key with the serving certificate: both valid PEM, not a pair.
    p = _serve_with(certs.cert, certs.dir / "ca.key")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2, err
    assert "does not match" in err


def test_serve_refuses_missing_and_garbage_files(certs, tmp_path):
    p = _serve_with(tmp_path / "nope.crt", certs.key)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2 and "nope.crt" in err and "No such file" in err, err
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    p = _serve_with(junk, certs.key)
    assert p.returncode == 2 and "junk.crt" in p.stderr.decode(errors="replace")


def test_serve_usage_errors(certs):
    for args, says in [
        (["serve"], "--policy is required"),
        (["serve", "--policy", "x"], "--tls-cert and --tls-key are required"),
        (["serve", "--policy", "x", "--tls-cert", "c", "--tls-key", "k", "--listen", "8443"], "is not ADDR:PORT"),
        (["serve", "--max-body", "lots"], "--max-body wants a size"),
        (["serve", "--threads", "1000"], "--threads must be between"),
        (["serve", "--bogus"], "unknown option --bogus"),
        (["frobnicate"], "no command \"frobnicate\""),
    ]:
        p = run_bin(*args)
        err = p.stderr.decode(errors="replace")
        assert p.returncode == 2, (args, err)
        assert says in err, (args, err)


def test_serve_reports_a_port_in_use(certs, server):
    p = _serve_with(certs.cert, certs.key, listen=f"127.0.0.1:{server.port}")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2 and err == f"serve: cannot listen on 127.0.0.1:{server.port}: Address already in use\n", err


def test_version_and_help():
    p = run_bin("--version")
    assert p.returncode == 0 and p.stdout.decode().startswith("spark-identity-webhook ")
    for cmd in ("serve", "certs", "mutate", "check-policy"):
        p = run_bin("help", cmd)
        assert p.returncode == 0 and b"Usage: spark-identity-webhook " + cmd.encode() in p.stdout, cmd
        p2 = run_bin(cmd, "--help")
        assert p2.returncode == 0 and p2.stdout == p.stdout, cmd
    p = run_bin("--help")
    assert p.returncode == 0 and all(c in p.stdout.decode() for c in ("serve", "certs", "mutate", "check-policy"))


SELECTOR_POLICY = (
    "selectors:\n"
    "  - {name: data, namespaceSelector: {matchLabels: {team: data}}, identity: data-spark}\n"
    "namespaceAnnotations: true\n"
    "delegableIdentities: [ann-spark]\n")


def _identity_from(out: bytes):
    r = json.loads(out)["response"]
    if "patch" not in r:
        return None
    import base64
    ops = json.loads(base64.b64decode(r["patch"]))
    return next((o["value"] for o in ops if o["path"] == "/metadata/labels/aadpodidbinding"), None)


def test_mutate_takes_the_namespaces_labels_and_annotations(tmp_path):
    pol = tmp_path / "ns.yaml"
    pol.write_text(SELECTOR_POLICY)
    review = json.dumps(in_namespace(fresh(load_fixture("spark35-driver.json")), "lake")).encode()
    p = run_bin("mutate", "--policy", pol, "-", input=review)
    assert p.returncode == 0 and _identity_from(p.stdout) is None
    p = run_bin("mutate", "--policy", pol, "--namespace-labels", "team=data,env=prod", "-", input=review)
    assert p.returncode == 0 and _identity_from(p.stdout) == "data-spark", p.stderr
    p = run_bin("mutate", "--policy", pol, "--namespace-labels", "team=data",
                "--namespace-annotations", "spark-identity.io/identity=ann-spark", "-", input=review)
    assert p.returncode == 0 and _identity_from(p.stdout) == "ann-spark", p.stderr
    p = run_bin("mutate", "--policy", pol, "--namespace-labels", "team", "-", input=review)
    assert p.returncode == 2 and b"--namespace-labels wants key=value" in p.stderr


def test_serve_refuses_a_policy_that_reads_namespaces_without_an_api(certs, tmp_path):
    pol = tmp_path / "ns.yaml"
    pol.write_text(SELECTOR_POLICY)
    p = _serve_with(certs.cert, certs.key, policy=pol)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2, err
    assert "the policy reads namespaces" in err and "--kubeconfig" in err, err


def test_serve_refuses_a_kubeconfig_it_cannot_use(certs, tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts: []\n")
    p = run_bin("serve", "--policy", ROOT / "tests" / "fixtures" / "policy.yaml", "--tls-cert", certs.cert,
                "--tls-key", certs.key, "--listen", "127.0.0.1:1", "--kubeconfig", kc)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2 and f'no context "x" (the current-context) in {kc} (no file defines a context)' in err, err
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: x\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                  "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}}]\n"
                  "users: [{name: u, user: {token: t}}]\n")
    p = run_bin("serve", "--policy", ROOT / "tests" / "fixtures" / "policy.yaml", "--tls-cert", certs.cert,
                "--tls-key", certs.key, "--listen", "127.0.0.1:1", "--kubeconfig", kc)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 2 and "insecure-skip-tls-verify is not supported" in err, err
