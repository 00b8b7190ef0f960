"""The policy ConfigMap's own validating webhook, registered from
deploy/base/policy-webhook.yaml against the real kube-apiserver: `kubectl
apply` of the ConfigMap with a policy that does not load is refused with the
lines `check-policy` prints (the key, policy.yaml, standing for the file);
one that loads is stored. The configuration reaches only that ConfigMap: the
same data under another name, or in another namespace, is not judged."""
from __future__ import annotations

import json
import subprocess
import time

from harness import POLICY, WEBHOOK_BIN, cp

NAME = "spark-identity-policy"
BROKEN = "namespaces:\n  team-a: {identity: \"two words\", mode: loud}\n"
DENIED = 'admission webhook "policy.spark-identity.io" denied the request'


def configmap(text: str, name: str = NAME, namespace: str = cp.WEBHOOK_NAMESPACE) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": namespace}, "data": {"policy.yaml": text}})


def apply(cluster, text: str, *extra, **kw) -> subprocess.CompletedProcess:
    return cluster.kubectl("apply", *extra, "-f", "-", input=configmap(text, **kw), check=False)


def check_policy_lines(tmp_path, text: str) -> list[str]:
    (tmp_path / "policy.yaml").write_text(text)
    p = subprocess.run([str(WEBHOOK_BIN.resolve()), "check-policy", "policy.yaml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stdout
    return p.stdout.splitlines()


def wait_judged(cluster, timeout: float = 30) -> subprocess.CompletedProcess:
    """The API server follows the configuration through a watch: waits
    until a server-side dry run of the broken ConfigMap is refused."""
    deadline = time.monotonic() + timeout
    p = apply(cluster, BROKEN, "--dry-run=server")
    while DENIED not in p.stderr and time.monotonic() < deadline:
        time.sleep(0.25)
        p = apply(cluster, BROKEN, "--dry-run=server")
    assert DENIED in p.stderr, f"the policy webhook never refused the broken policy: {p.stderr or p.stdout}"
    return p


def test_a_broken_policy_configmap_is_refused_with_check_policys_lines(kubectl, cluster, registration, tmp_path):
    (w,) = registration.policy_config["webhooks"]
    assert w["failurePolicy"] == "Ignore" and w["sideEffects"] == "None"
    wait_judged(cluster)
    before = cluster.kubectl_json("get", "configmap", "-n", cp.WEBHOOK_NAMESPACE, NAME)

    p = apply(cluster, BROKEN)
    assert p.returncode != 0
    assert p.stderr.startswith("The request is invalid"), p.stderr   # 422 Invalid, as kubectl says it
    assert DENIED in p.stderr, p.stderr
    # kubectl prints the message whole: every check-policy line, in order.
    want = check_policy_lines(tmp_path, BROKEN)
    assert len(want) >= 2 and all(line.startswith("policy.yaml:2:") for line in want), want
    got = p.stderr[p.stderr.index(DENIED) + len(DENIED):].lstrip(": ")
    assert got.splitlines()[:len(want)] == want, p.stderr
    after = cluster.kubectl_json("get", "configmap", "-n", cp.WEBHOOK_NAMESPACE, NAME)
    assert after["data"] == before["data"], "the refused policy was stored"


def test_a_policy_that_loads_is_applied(kubectl, cluster, registration):
    wait_judged(cluster)
    good = POLICY.read_text()
    try:
        p = apply(cluster, good + "\n# applied by the e2e test\n")
        assert p.returncode == 0, p.stderr
        got = cluster.kubectl_json("get", "configmap", "-n", cp.WEBHOOK_NAMESPACE, NAME)
        assert got["data"]["policy.yaml"].endswith("# applied by the e2e test\n")
    finally:
        p = apply(cluster, good)   # the policy as deploy/ (and test_0) have it
        assert p.returncode == 0, p.stderr


def test_only_the_policy_configmap_is_judged(kubectl, cluster, registration):
    wait_judged(cluster)
    for kw in ({"name": "not-the-policy"}, {"namespace": "team-a"}):
        p = apply(cluster, BROKEN, "--dry-run=server", **kw)
        assert p.returncode == 0, (kw, p.stderr)
