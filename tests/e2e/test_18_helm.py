"""The Helm chart (deploy/helm/spark-identity-webhook) installed, upgraded
and uninstalled by the real helm (v4.3.2, built from its Go module by
tests/helm/build-helm.sh) against the real kube-apiserver.

`helm install` puts the release into a namespace of its own (e2e-helm), under
fullnameOverride e2e-helm-webhook so that its cluster-wide objects (webhook
configurations, ClusterRoles) stand beside the suite's own from deploy/,
with the e2e policy inline (--set-file policy.content), the label keys
`check-policy` prints in namespace-grants' matchConditions, the audit
account on, and `webhooks.url` pointing every webhook configuration at a
second server this module runs on loopback, with the caBundle of its
`certs` (certs.caBundle).

What stands in for the kubelet, which this suite does not run: the second
server is started by the test, with a token the API server minted for the
chart's ServiceAccount (so the chart's ClusterRole must be enough), and it
serves a file into which the test writes the ConfigMap's `policy.yaml` *as
the API server stored it* (read back after each helm install and upgrade),
replaced atomically as a ConfigMap volume's update swaps its files. No pod of
the Deployment runs; the Deployment is checked as stored.

Then: a Spark driver created with kubectl in team-a is stored mutated (its
identity label and env, as the policy computes), and the second server
logged the decision. `helm upgrade` with a policy that adds the namespace
e2e-helm-spark changes the stored ConfigMap; once it is written to the
served file, the same running server (same PID) reports the new policy's
sha256 on /readyz, and a new driver in e2e-helm-spark, stored unchanged
before, now gets its identity (the upgrade's values leave certs.caBundle
out: the chart keeps the one the configurations carry). The optional parts of the chart rendered
(cert-manager mode, the network policy, the audit CronJob, the admission
policy) pass the API server's validation, and an upgrade with a policy that
does not load is refused by the chart's policy webhook. `helm uninstall` leaves none of the release's
objects (webhook configurations and ClusterRoles included), and a driver
created afterwards no longer reaches the second server. The suite's own
registration from deploy/ stays in place throughout (it has no entry for
e2e-helm-spark and lets such pods through unchanged)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from harness import (POLICY, ROOT, WEBHOOK_BIN, cp, create_pod, env_of, expected_spark_pod, fixture_object, get_pod,
                     model, spark_container, unique)

CHART = ROOT / "deploy" / "helm" / "spark-identity-webhook"
RELEASE = "spark-identity-webhook"
NS = "e2e-helm"
FULLNAME = "e2e-helm-webhook"
POLICY_CM = "e2e-helm-policy"          # the full name without "-webhook", then "-policy"
NEW_NS = "e2e-helm-spark"              # in the upgraded policy only
NEW_IDENTITY = "helm-spark"
FOLLOW_TIMEOUT_S = 30
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "Namespace"}


def _helm_bin() -> Path:
    given = os.environ.get("HELM_BIN")
    if given:
        return Path(given)
    build = os.environ.get("E2E_BUILD_DIR") or str(ROOT / "build")
    p = subprocess.run([str(ROOT / "tests" / "helm" / "build-helm.sh"), build], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail("helm could not be built by tests/helm/build-helm.sh:\n" + "\n".join(p.stderr.splitlines()[-20:]),
                    pytrace=False)
    return Path(p.stdout.strip().splitlines()[-1])


class Helm:
    """helm as an admin runs it: the e2e admin's kubeconfig, and helm's own
    cache, configuration and data in the work directory."""

    def __init__(self, binary: Path, cluster: cp.ControlPlane, home: Path):
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_") and k != "KUBECONFIG"}
        self.env.update(KUBECONFIG=str(cluster.kubeconfig), HELM_CACHE_HOME=str(home / "cache"),
                        HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data"))

    def __call__(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([str(self.binary), *map(str, args)], capture_output=True, text=True, timeout=120,
                           env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"helm {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}{p.stdout}")
        return p


def _upgraded_policy() -> str:
    """The e2e policy with an entry for NEW_NS."""
    text = POLICY.read_text()
    entry = (f"  {NEW_NS}:\n    identity: {NEW_IDENTITY}\n"
             "    clientId: 5a1c2e3f-4b5d-4e6f-8a7b-9c0d1e2f3a4b\n\n")
    assert text.count("\nnamespaces:\n") == 1
    return text.replace("\nnamespaces:\n", "\nnamespaces:\n" + entry)


def _grant_label_keys() -> list[str]:
    p = subprocess.run([str(WEBHOOK_BIN), "check-policy", str(POLICY)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    m = re.search(r"k in \[([^\]\n]*)\]", p.stdout)
    assert m, p.stdout
    return re.findall(r"'([^']+)'", m.group(1))


def _serve_stored_policy(cluster, served: Path) -> str:
    """What the kubelet does for a ConfigMap volume: the stored
    ConfigMap's policy.yaml into the served file, swapped in whole."""
    stored = cluster.kubectl_json("get", "configmap", "-n", NS, POLICY_CM)["data"]["policy.yaml"]
    tmp = served.with_name(f".{served.name}.new")
    tmp.write_text(stored)
    os.replace(tmp, served)
    return stored


def _served_sha(server: cp.Webhook) -> str | None:
    st, body = server.readyz()
    return json.loads(body).get("policySha256") if st == 200 else None


def _manifest_objects(helm: Helm) -> list[tuple[str, str, str | None]]:
    text = helm("get", "manifest", RELEASE, "-n", NS).stdout
    out = []
    for o in yaml.safe_load_all(text):
        if o:
            ns = None if o["kind"] in CLUSTER_SCOPED else o["metadata"].get("namespace", NS)
            out.append((o["kind"], o["metadata"]["name"], ns))
    return out


def _exists(cluster, kind: str, name: str, ns: str | None) -> bool:
    args = ["get", kind, name, "--ignore-not-found", "-o", "name"] + (["-n", ns] if ns else [])
    return bool(cluster.kubectl(*args).stdout.strip())


def _wait_driver(cluster, namespace: str, want_identity: str | None, tag: str) -> dict:
    """Creates Spark drivers (server-side dry run) in namespace until the API
    server, which follows webhook configurations through a watch, stores
    one with want_identity (None: no label); then creates one for real and
    returns it as stored."""
    pod = unique(fixture_object("spark35-driver.json"), tag)
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while True:
        p = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-n", namespace, "-f", "-",
                            input=json.dumps(pod), check=False)
        if p.returncode == 0:
            got = json.loads(p.stdout)["metadata"].get("labels", {}).get(model.IDENTITY_LABEL)
        else:
            got = p.stderr.strip()
        if got == want_identity:
            break
        assert time.monotonic() < deadline, f"a driver in {namespace} is stored with {got!r}, want {want_identity!r}"
        time.sleep(0.25)
    create_pod(cluster, pod, namespace)
    return get_pod(cluster, namespace, pod["metadata"]["name"]) | {"sent": pod}


@pytest.fixture(scope="module")
def release(kubectl, cluster, workdir):
    """The chart installed, and the second server started on what it
    stored. Uninstalled (and the server stopped) at the end whatever
    happened, so that no configuration with failurePolicy Fail is left
    pointing at a stopped server."""
    helm = Helm(_helm_bin(), cluster, workdir / "helm-home")
    d = workdir / "helm-release"
    (d / "served").mkdir(parents=True)
    served = d / "served" / "policy.yaml"
    server = cp.Webhook(WEBHOOK_BIN, d, served, d / "webhook-sa.kubeconfig")
    server.make_certs()
    values = d / "values.yaml"
    values.write_text(yaml.safe_dump({
        "fullnameOverride": FULLNAME,
        "certs": {"caBundle": server.ca_bundle},
        "webhooks": {"url": f"https://127.0.0.1:{server.port}",
                     "namespaceGrants": {"labelKeys": _grant_label_keys()}},
        "audit": {"enabled": True},
    }))
    # NEW_NS with the accounts Spark pods name (nothing makes them here: no
    # kube-controller-manager runs).
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NEW_NS}}] + [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": NEW_NS}}
        for sa in ("default", "spark")]}))
    state = {"helm": helm, "server": server, "served": served, "values": values, "dir": d}
    try:
        state["install"] = helm("install", RELEASE, CHART, "--namespace", NS, "--create-namespace",
                                "--values", values, "--set-file", f"policy.content={POLICY}")
        state["objects"] = _manifest_objects(helm)
        _serve_stored_policy(cluster, served)
        token = cluster.kubectl("create", "token", FULLNAME, "-n", NS, "--duration", "1h").stdout.strip()
        cluster.write_kubeconfig(server.kubeconfig, f"system:serviceaccount:{NS}:{FULLNAME}", token)
        server.start()
        yield state
    finally:
        helm("uninstall", RELEASE, "--namespace", NS, check=False)
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            cluster.kubectl("delete", kind, FULLNAME, f"{FULLNAME}-policy", "--ignore-not-found", check=False)
        server.stop()


def test_helm_install_stores_every_object_of_the_chart(release, cluster):
    objs = release["objects"]
    kinds = {k for k, _, _ in objs}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding",
            "PodDisruptionBudget", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
            "CronJob"} <= kinds, kinds
    for kind, name, ns in objs:
        assert _exists(cluster, kind, name, ns), (kind, name, ns)
    assert "STATUS: deployed" in release["install"].stdout
    assert f"spark-identity-webhook 0.1.0 is installed in the namespace {NS}" in release["install"].stdout
    got = cluster.kubectl_json("get", "configmap", "-n", NS, POLICY_CM)
    assert got["data"] == {"policy.yaml": POLICY.read_text()}
    d = cluster.kubectl_json("get", "deployment", "-n", NS, FULLNAME)
    vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    assert vols["policy"]["configMap"]["name"] == POLICY_CM
    port = release["server"].port
    for kind, path in (("mutatingwebhookconfiguration", "/mutate"), ("validatingwebhookconfiguration", "/validate")):
        for w in cluster.kubectl_json("get", kind, FULLNAME)["webhooks"]:
            assert w["clientConfig"] == {"url": f"https://127.0.0.1:{port}{path}",
                                         "caBundle": release["server"].ca_bundle}, w["name"]
    (w,) = cluster.kubectl_json("get", "validatingwebhookconfiguration", f"{FULLNAME}-policy")["webhooks"]
    assert w["clientConfig"]["url"].endswith("/validate-policy") and w["failurePolicy"] == "Ignore"
    assert w["matchConditions"][0]["expression"] == f"object.metadata.name == '{POLICY_CM}'"


def test_the_charts_account_may_read_namespaces_and_not_pods(release, cluster):
    """The second server runs as the chart's ServiceAccount and is ready:
    it listed namespaces. Pods it may not read."""
    assert release["server"].readyz()[0] == 200
    kubeconfig = release["server"].kubeconfig
    assert cluster.kubectl("get", "namespaces", "-o", "name", kubeconfig=kubeconfig).returncode == 0
    p = cluster.kubectl("get", "pods", "-n", "team-a", kubeconfig=kubeconfig, check=False)
    assert p.returncode != 0 and "forbidden" in p.stderr, p.stderr


def test_a_spark_driver_is_stored_mutated_through_the_charts_configuration(release, cluster, policy):
    server = release["server"]
    stored = _wait_driver(cluster, "team-a", "sparkaks", "helm")
    sent = stored.pop("sent")
    want = expected_spark_pod(sent, "team-a", policy)
    assert stored["metadata"]["labels"] == want["metadata"]["labels"]
    assert env_of(spark_container(stored)) == env_of(spark_container(want))
    name = sent["metadata"]["name"]
    hits = [d for d in server.decisions() if d.get("pod") == name and d.get("namespace") == "team-a"]
    assert hits, f"the chart's server logged no decision for {name}: {server.proc.tail(5)}"


def test_helm_upgrade_with_a_new_policy_reaches_the_running_server(release, cluster, workdir):
    helm, server = release["helm"], release["server"]
    before = _wait_driver(cluster, NEW_NS, None, "before")
    assert model.IDENTITY_LABEL not in before["metadata"].get("labels", {})
    pid, sha0 = server.proc.proc.pid, _served_sha(server)
    assert sha0 == hashlib.sha256(POLICY.read_bytes()).hexdigest()

    new = release["dir"] / "policy-v2.yaml"
    new.write_text(_upgraded_policy())
    # The install's values but certs.caBundle, as an admin who forgot it:
    # the chart keeps the caBundle the configurations carry (helm lookup).
    values = yaml.safe_load(release["values"].read_text())
    del values["certs"]
    forgetful = release["dir"] / "values-without-ca.yaml"
    forgetful.write_text(yaml.safe_dump(values))
    p = helm("upgrade", RELEASE, CHART, "--namespace", NS, "--values", forgetful,
             "--set-file", f"policy.content={new}")
    assert "STATUS: deployed" in p.stdout and "REVISION: 2" in p.stdout, p.stdout
    assert "certs.caBundle is empty" not in p.stdout, p.stdout
    for kind, name in (("mutatingwebhookconfiguration", FULLNAME), ("validatingwebhookconfiguration", FULLNAME),
                       ("validatingwebhookconfiguration", f"{FULLNAME}-policy")):
        for w in cluster.kubectl_json("get", kind, name)["webhooks"]:
            assert w["clientConfig"]["caBundle"] == server.ca_bundle, (name, w["name"])
    stored = cluster.kubectl_json("get", "configmap", "-n", NS, POLICY_CM)["data"]["policy.yaml"]
    assert stored == new.read_text()

    assert _serve_stored_policy(cluster, release["served"]) == new.read_text()
    want = hashlib.sha256(new.read_bytes()).hexdigest()
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while _served_sha(server) != want:
        assert time.monotonic() < deadline, f"the server did not load the upgraded policy: {server.proc.tail(5)}"
        time.sleep(0.1)
    assert server.proc.alive() and server.proc.proc.pid == pid, "the server was restarted"

    after = _wait_driver(cluster, NEW_NS, NEW_IDENTITY, "after")
    sent = after.pop("sent")
    upgraded = model.load_policy(new)
    assert env_of(spark_container(after)) == env_of(spark_container(expected_spark_pod(sent, NEW_NS, upgraded)))




def test_helm_upgrade_with_a_policy_that_does_not_load_is_refused(release, cluster):
    """The chart's policy webhook (/validate-policy, on the running server)
    judges the ConfigMap helm writes: the upgrade fails with the lines
    `check-policy` prints, and the stored policy stays the one in force."""
    helm = release["helm"]
    before = cluster.kubectl_json("get", "configmap", "-n", NS, POLICY_CM)["data"]
    broken = release["dir"] / "policy-broken.yaml"
    broken.write_text("namespaces:\n  team-a: {identity: \"two words\", mode: loud}\n")
    p = helm("upgrade", RELEASE, CHART, "--namespace", NS, "--values", release["values"],
             "--set-file", f"policy.content={broken}", check=False)
    assert p.returncode != 0, p.stdout
    assert 'admission webhook "policy.spark-identity.io" denied the request' in p.stderr, p.stderr
    assert "policy.yaml:2:" in p.stderr, p.stderr
    assert cluster.kubectl_json("get", "configmap", "-n", NS, POLICY_CM)["data"] == before


def test_the_api_server_accepts_what_the_optional_values_render(release, cluster):
    """Every other part of the chart, as the API server validates it
    (apply --dry-run=server, nothing stored): cert-manager mode's webhook
    configurations without caBundle, other failure policies and timeouts,
    the namespace-grants label keys, the network policy, the audit CronJob,
    and the admission policy rendered for this namespace by the `render`
    command (its CEL compiled). cert-manager's and prometheus-operator's
    kinds are left out: their CRDs are not installed here."""
    d = release["dir"]
    ap = d / "admission-policy.yaml"
    p = subprocess.run([str(WEBHOOK_BIN), "render", "admission-policy", "--policy", str(POLICY), "--namespace", NS],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    ap.write_text(p.stdout)
    out = release["helm"]("template", "dry", CHART, "--namespace", NS, "--set-file", f"policy.content={POLICY}",
                          "--set-file", f"admissionPolicy.rendered={ap}", "--values",
                          ROOT / "tests" / "helm" / "values" / "failure-policies.yaml",
                          "--set", "fullnameOverride=e2e-dry-webhook", "--set", "certs.mode=certManager",
                          "--set", "admissionPolicy.enabled=true", "--set", "audit.enabled=true",
                          "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.apiServerCIDRs={10.0.0.1/32}",
                          "--set", "metrics.dashboard.enabled=true").stdout
    objs = [o for o in yaml.safe_load_all(out) if o]
    crds = [o for o in objs if o["apiVersion"].split("/")[0] in ("cert-manager.io", "monitoring.coreos.com")]
    assert {o["kind"] for o in crds} == {"Certificate", "Issuer"}
    rest = [o for o in objs if o not in crds]
    kinds = {o["kind"] for o in rest}
    assert {"NetworkPolicy", "CronJob", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
            "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} <= kinds, kinds
    p = cluster.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rest}))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("(server dry run)") == len(rest), p.stdout


def test_helm_uninstall_removes_every_object(release, cluster):
    helm = release["helm"]
    objs = _manifest_objects(helm)
    assert len(objs) >= len(release["objects"])
    p = helm("uninstall", RELEASE, "--namespace", NS)
    assert "uninstalled" in p.stdout, p.stdout
    left = [o for o in objs if _exists(cluster, *o)]
    assert not left, f"left after helm uninstall: {left}"
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration",
                 "clusterrole", "clusterrolebinding"):
        names = cluster.kubectl("get", kind, "-o", "name").stdout.split()
        assert not [n for n in names if "e2e-helm" in n], (kind, names)
    assert helm("list", "--namespace", NS, "-q").stdout.strip() == ""
    # The API server no longer calls the chart's server: a driver in
    # e2e-helm-spark (which the suite's own policy does not list) passes unchanged.
    mark = len(release["server"].decisions())
    stored = _wait_driver(cluster, NEW_NS, None, "gone")
    name = stored.pop("sent")["metadata"]["name"]
    assert not [d for d in release["server"].decisions()[mark:] if d.get("pod") == name]
