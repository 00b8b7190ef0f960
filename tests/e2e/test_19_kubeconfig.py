"""Kubeconfigs as users have them, against the real API server: `audit` with
a kubeconfig whose user is an exec credential plugin
(exec-credential-plugin.sh, as kubelogin is one on AKS) printing a token the
API server minted for the audit account (`kubectl create token`); the same
through KUBECONFIG=a:b with the context in the second file, picked by
--context; `serve` with a credential that expires a few seconds after it
is made, the plugin run again when it has; a failing plugin's stderr in the
error; and the real `kubectl spark-identity audit` (kubectl finds the
plugin on PATH) with the current context."""
from __future__ import annotations

import copy
import json
import os
import ssl
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import cluster as cp
from harness import FIXTURES, HERE, POLICY, WEBHOOK_BIN, create_pod, fixture_object, unique

PLUGIN = HERE / "exec-credential-plugin.sh"
EXEC_V1 = "client.authentication.k8s.io/v1"


def mint(cluster, account: str) -> str:
    return cluster.kubectl("create", "token", account, "-n", cp.WEBHOOK_NAMESPACE, "--duration", "1h").stdout.strip()


class Plugin:
    """The plugin's state for one kubeconfig user: its token file and run
    counter, and the exec map that runs it."""

    def __init__(self, d: Path, token: str, **env: str):
        d.mkdir(parents=True, exist_ok=True)
        self.token_file = d / "token"
        self.token_file.write_text(token)
        self.token_file.chmod(0o600)
        self.runs_file = d / "runs"
        self.env = {"TOKEN_FILE": str(self.token_file), "RUNS_FILE": str(self.runs_file), **env}

    @property
    def runs(self) -> int:
        return int(self.runs_file.read_text()) if self.runs_file.exists() else 0

    @property
    def request(self) -> dict:
        return json.loads(Path(f"{self.runs_file}.request").read_text())

    def user(self, name: str) -> dict:
        return {"name": name, "user": {"exec": {
            "apiVersion": EXEC_V1, "command": str(PLUGIN), "interactiveMode": "Never",
            "installHint": "the e2e suite's plugin is tests/e2e/exec-credential-plugin.sh",
            "env": [{"name": k, "value": v} for k, v in self.env.items()]}}}


def kubeconfig(path: Path, cluster, context: str, user: dict, current: bool = True) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "e2e", "cluster": {"server": cluster.url,
                                                     "certificate-authority": str(cluster.pki / "ca.crt")}}],
           "contexts": [{"name": context, "context": {"cluster": "e2e", "user": user["name"]}}],
           "users": [user]}
    if current:
        doc["current-context"] = context
    path.write_text(json.dumps(doc, indent=1))
    path.chmod(0o600)
    return path


def run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    base.update(env or {})
    return subprocess.run([*map(str, args)], capture_output=True, text=True, timeout=120, env=base)


@pytest.fixture(scope="module")
def kc_dir(workdir) -> Path:
    d = workdir / "kubeconfig-tests"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def audit_token(cluster, deployed) -> str:
    return mint(cluster, cp.AUDIT_SERVICE_ACCOUNT)


@pytest.fixture(scope="module")
def pods(kubectl, cluster) -> list[str]:
    """Spark drivers of its own: compliant ones in team-a (through the
    webhook) and one in team-c, in audit mode, which the audit finds."""
    tag = uuid.uuid4().hex[:6]
    names = []
    for i, ns in enumerate(["team-a", "team-a", "team-a", "team-c"]):
        pod = unique(fixture_object("spark35-driver.json"), f"kc{i}-{tag}")
        create_pod(cluster, pod, ns)
        names.append(pod["metadata"]["name"])
    return names


@pytest.fixture(scope="module")
def token_audit(audit_kubeconfig, pods) -> dict:
    """The audit with the static token kubeconfig of test_7: what every
    other way must agree with."""
    p = run(WEBHOOK_BIN, "audit", "--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "json")
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


def test_audit_with_an_exec_plugin(cluster, kc_dir, audit_token, token_audit, pods):
    plugin = Plugin(kc_dir / "exec", audit_token)
    kc = kubeconfig(kc_dir / "exec.kubeconfig", cluster, "aks", plugin.user("audit-exec"))
    p = run(WEBHOOK_BIN, "audit", "--policy", POLICY, "--kubeconfig", kc, "-o", "json", "--page-size", "2")
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    assert doc["findings"] == token_audit["findings"]
    assert any(f["pod"] == pods[3] and f["problem"] == "missing-identity" for f in doc["findings"]), doc
    assert doc["summary"]["pods"] == len(cluster.kubectl_json("get", "pods", "-A")["items"]) > 2
    assert doc["summary"]["source"] == cluster.url
    # Run once for every page, given the request of the protocol, no terminal.
    assert plugin.runs == 1
    assert plugin.request == {"apiVersion": EXEC_V1, "kind": "ExecCredential", "spec": {"interactive": False}}


def test_kubeconfig_list_with_the_context_in_the_second_file(cluster, kc_dir, audit_token, token_audit):
    """KUBECONFIG=a:b: a's current-context is a user the API server refuses;
    --context picks b's, whose user is the exec plugin."""
    plugin = Plugin(kc_dir / "list", audit_token)
    a = kubeconfig(kc_dir / "a.kubeconfig", cluster, "stale",
                   {"name": "stale", "user": {"token": "not-a-token-the-api-server-minted"}})
    b = kubeconfig(kc_dir / "b.kubeconfig", cluster, "aks-audit", plugin.user("audit-exec"), current=False)
    env = {"KUBECONFIG": f"{kc_dir / 'missing.kubeconfig'}:{a}:{b}", "HOME": str(kc_dir)}

    p = run(WEBHOOK_BIN, "audit", "--policy", POLICY, "-o", "json", env=env)
    assert p.returncode == 2 and "401" in p.stderr, p.stderr
    assert plugin.runs == 0

    p = run(WEBHOOK_BIN, "audit", "--policy", POLICY, "-o", "json", "--context", "aks-audit", env=env)
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(p.stdout)["findings"] == token_audit["findings"]
    assert plugin.runs == 1

    p = run(WEBHOOK_BIN, "audit", "--policy", POLICY, "--context", "aks", env=env)
    assert p.returncode == 2
    assert f'no context "aks" in {a} and {b} (contexts: stale, aks-audit)' in p.stderr, p.stderr


def test_a_failing_plugin_says_why(cluster, kc_dir):
    plugin = Plugin(kc_dir / "failing", "unused",
                    FAIL="AADSTS700082: The refresh token has expired due to inactivity. Run 'az login'.")
    kc = kubeconfig(kc_dir / "failing.kubeconfig", cluster, "aks", plugin.user("expired-login"))
    p = run(WEBHOOK_BIN, "audit", "--policy", POLICY, "--kubeconfig", kc)
    assert p.returncode == 2 and p.stdout == ""
    assert (f'exec plugin "{PLUGIN}" failed with exit status 1: AADSTS700082: The refresh token has expired due '
            "to inactivity. Run 'az login'.") in p.stderr, p.stderr
    assert plugin.runs == 1


def post_review(port: int, ca: Path, namespace: str) -> dict:
    review = json.loads((FIXTURES / "spark35-driver.json").read_text())
    review["request"]["uid"] = str(uuid.uuid4())
    review["request"]["namespace"] = namespace
    review["request"]["object"] = copy.deepcopy(review["request"]["object"])
    review["request"]["object"]["metadata"]["namespace"] = namespace
    req = urllib.request.Request(f"https://127.0.0.1:{port}/mutate?timeout=10s", data=json.dumps(review).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(req, context=ctx, timeout=15) as r:
        return json.loads(r.read())


def test_an_expiring_credential_is_renewed(cluster, kc_dir, deployed):
    """serve reads namespaces through an exec plugin whose credential
    expires 3 s after it is made: its first list runs the plugin; a
    namespace read after that (one the cache has not seen, for a review)
    runs it again and is answered."""
    plugin = Plugin(kc_dir / "expiring", mint(cluster, cp.WEBHOOK_SERVICE), EXPIRES_IN="3")
    kc = kubeconfig(kc_dir / "expiring.kubeconfig", cluster, "aks", plugin.user("webhook-exec"))
    d = kc_dir / "serve"
    d.mkdir()
    wh = cp.Webhook(WEBHOOK_BIN, d, POLICY, kc)
    wh.make_certs()
    try:
        wh.start()
        assert plugin.runs == 1
        time.sleep(4.5)
        answer = post_review(wh.port, wh.certs / "ca.crt", f"kc-absent-{uuid.uuid4().hex[:6]}")
        assert answer["response"]["allowed"] is True   # unmatched: allow, for a namespace that is not there
        assert plugin.runs == 2
        decision = wh.decisions()[-1]
        assert decision["decision"] == "unchanged", decision
    finally:
        wh.stop()
    log = (d / "webhook.log").read_text(errors="replace")
    assert "exec plugin" not in log, log[-2000:]


def test_kubectl_plugin_with_the_current_context(cluster, kc_dir, audit_kubeconfig, token_audit):
    """The binary as kubectl-spark_identity on PATH: `kubectl spark-identity
    audit` with KUBECONFIG's current context, as kubectl runs plugins."""
    bindir = kc_dir / "plugins"
    bindir.mkdir()
    (bindir / "kubectl-spark_identity").symlink_to(Path(WEBHOOK_BIN).resolve())
    env = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "KUBECONFIG": str(audit_kubeconfig),
           "HOME": str(kc_dir)}
    kubectl = cluster.kubectl_bin
    p = run(kubectl, "plugin", "list", env=env)
    assert str(bindir / "kubectl-spark_identity") in p.stdout, p.stdout + p.stderr

    p = run(kubectl, "spark-identity", "audit", "--policy", POLICY, "-o", "json", env=env)
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(p.stdout)["findings"] == token_audit["findings"]
    assert json.loads(p.stdout)["summary"]["source"] == cluster.url

    p = run(kubectl, "spark-identity", "help", env=env)
    assert p.returncode == 0 and "Usage: kubectl spark-identity COMMAND" in p.stdout, p.stdout
