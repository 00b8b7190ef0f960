"""`audit` against the real API server, after the other tests stored their
pods: a compliant driver created through the webhook, and, with the webhook
removed for a moment (stopped, failurePolicy Ignore), a driver that got
nothing and a pod that claims another namespace's identity. The webhook's
own ServiceAccount lists them (deploy/'s ClusterRole: list pods and
namespaces), page by page; a ServiceAccount without that right gets a 403
that says so. The PolicyReports are applied with kubectl, to a PolicyReport
CRD installed from tests/e2e/policyreport-crd.yaml (see that file), and
follow the cluster when pods are fixed."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from harness import HERE, POLICY, WEBHOOK_BIN, create_pod, fixture_object, model, unique, wait_mutating

CRD = HERE / "policyreport-crd.yaml"
CRD_NAME = "policyreports.wgpolicyk8s.io"


def run_audit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(WEBHOOK_BIN), "audit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def problems_by_pod(doc: dict) -> dict:
    out: dict = {}
    for f in doc["findings"]:
        out.setdefault((f["namespace"], f["pod"]), set()).add(f["problem"])
    return out


@pytest.fixture(scope="module")
def pods(kubectl, cluster, webhook, registration):
    tag = uuid.uuid4().hex[:6]
    ok = unique(fixture_object("spark35-driver.json"), f"audit-ok-{tag}")
    bare = unique(fixture_object("spark35-driver.json"), f"audit-bare-{tag}")
    rogue = fixture_object("rogue-pod.json")
    rogue["metadata"]["name"] = f"audit-rogue-{tag}"
    # A namespace of its own, without a rule, so that its report can go away.
    rogue_ns = f"audit-x-{tag}"
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": rogue_ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": rogue_ns}}]}))
    create_pod(cluster, ok, "team-a")
    assert model.IDENTITY_LABEL in cluster.kubectl_json("get", "pod", "-n", "team-a",
                                                        ok["metadata"]["name"])["metadata"]["labels"]
    webhook.stop()
    try:
        registration.set_failure_policy("Ignore")
        wait_mutating(cluster, False)
        create_pod(cluster, bare, "team-a")
        create_pod(cluster, rogue, rogue_ns)
    finally:
        webhook.start()
        registration.set_failure_policy("Fail")
        wait_mutating(cluster, True)
    return {"ok": ok["metadata"]["name"], "bare": bare["metadata"]["name"], "rogue": rogue["metadata"]["name"],
            "rogue_ns": rogue_ns}


def test_audit_lists_pods_from_the_api_server(pods, cluster):
    p = run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig, "-o", "json", "--page-size", "2")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    by_pod = problems_by_pod(doc)
    assert ("team-a", pods["ok"]) not in by_pod
    assert by_pod[("team-a", pods["bare"])] == {"missing-identity", "missing-jvm-settings"}
    assert by_pod[(pods["rogue_ns"], pods["rogue"])] == {"foreign-identity"}
    bare = next(f for f in doc["findings"] if f["pod"] == pods["bare"] and f["problem"] == "missing-identity")
    assert bare["expected"] == "aadpodidbinding=sparkaks" and bare["uid"]
    assert bare["phase"] == "Pending"   # no node runs it here
    assert doc["summary"]["source"] == cluster.url

    # Every pod stored (by every test so far) was read, over many pages.
    stored = cluster.kubectl_json("get", "pods", "-A")["items"]
    assert doc["summary"]["pods"] == len(stored) > 2
    assert doc["summary"]["namespacesKnown"] is True and doc["summary"]["unknown"] == 0
    # Spark pods the webhook-down tests let through unchanged are found too.
    for pod in stored:
        md = pod["metadata"]
        if "down-ignore" in md["name"]:
            assert "missing-identity" in by_pod[(md["namespace"], md["name"])]

    # The default page size gives the same answer.
    p2 = run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig, "-o", "json")
    assert p2.returncode == 1, p2.stderr
    assert json.loads(p2.stdout)["findings"] == doc["findings"]


def test_audit_of_kubectl_output_agrees(pods, cluster, workdir):
    pods_file = workdir / "audit-pods.json"
    ns_file = workdir / "audit-namespaces.json"
    pods_file.write_text(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)
    ns_file.write_text(cluster.kubectl("get", "namespaces", "-o", "json").stdout)
    p = run_audit("--policy", POLICY, "--pods", pods_file, "--namespaces", ns_file, "-o", "json")
    assert p.returncode == 1, p.stderr
    api = run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig, "-o", "json")
    assert json.loads(p.stdout)["findings"] == json.loads(api.stdout)["findings"]

    # The table, as an admin reads it.
    t = run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig, "--namespace", pods["rogue_ns"])
    assert t.returncode == 1, t.stderr
    row = next(l for l in t.stdout.splitlines() if pods["rogue"] in l)
    assert row.split()[0] == pods["rogue_ns"] and row.split()[-1] == "foreign-identity"
    assert "\n1 pod in 1 namespace, 0 of them Spark pods; judged 1: 0 compliant, 1 with 1 finding.\n" in t.stdout, \
        t.stdout


def test_audit_without_the_right_to_list_says_so(pods, cluster, workdir):
    token = cluster.kubectl("create", "token", "default", "-n", "team-a", "--duration", "10m").stdout.strip()
    kc = workdir / "team-a-default.kubeconfig"
    cluster.write_kubeconfig(kc, "system:serviceaccount:team-a:default", token)
    p = run_audit("--policy", POLICY, "--kubeconfig", kc)
    assert p.returncode == 2 and p.stdout == ""
    # The e2e policy reads namespaces (selectors, annotations): they come first.
    assert f"audit: listing namespaces: GET {cluster.url}/api/v1/namespaces?limit=500: HTTP 403: " in p.stderr, p.stderr
    assert 'User "system:serviceaccount:team-a:default" cannot list resource "namespaces"' in p.stderr
    assert "the identity needs 'list' on namespaces" in p.stderr


@pytest.fixture(scope="module")
def crd(kubectl, cluster):
    cluster.kubectl("apply", "-f", CRD)
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    try:
        yield
    finally:
        cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", check=False)


def stored_reports(cluster) -> dict:
    return {r["metadata"]["namespace"]: r for r in cluster.kubectl_json("get", "policyreports", "-A")["items"]}


def report_results(r: dict) -> set:
    return {(x["resources"][0]["name"], x["rule"]) for x in r.get("results") or []}


def test_policyreports_apply_and_follow_the_cluster(pods, crd, cluster):
    p = run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig, "-o", "policyreport")
    assert p.returncode == 1, p.stderr
    applied = cluster.kubectl("apply", "-f", "-", input=p.stdout)
    assert "policyreport.wgpolicyk8s.io/spark-identity created" in applied.stdout, applied.stdout

    findings = json.loads(run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig,
                                    "-o", "json").stdout)["findings"]
    reports = stored_reports(cluster)
    for ns in {f["namespace"] for f in findings}:
        want = {(f["pod"], f["problem"]) for f in findings if f["namespace"] == ns}
        assert report_results(reports[ns]) == want, ns
        assert reports[ns]["summary"]["fail"] == len(want)
    a = reports["team-a"]
    assert (pods["bare"], "missing-identity") in report_results(a)
    assert a["summary"]["pass"] >= 1
    x = reports[pods["rogue_ns"]]
    assert report_results(x) == {(pods["rogue"], "foreign-identity")}
    res = x["results"][0]
    assert res["policy"] == "spark-identity" and res["result"] == "fail" and res["severity"] == "high"
    uid = cluster.kubectl_json("get", "pod", "-n", pods["rogue_ns"], pods["rogue"])["metadata"]["uid"]
    assert res["resources"][0] == {"apiVersion": "v1", "kind": "Pod", "namespace": pods["rogue_ns"],
                                   "name": pods["rogue"], "uid": uid}
    table = cluster.kubectl("get", "polr", "-n", "team-a").stdout
    assert table.split()[:4] == ["NAME", "PASS", "FAIL", "WARN"], table

    # Every namespace has its report, those without pods too.
    namespaces = {n["metadata"]["name"] for n in cluster.kubectl_json("get", "namespaces")["items"]}
    assert set(reports) == namespaces
    assert reports["kube-system"]["results"] == []

    # Fix the cluster: the next apply empties what was fixed.
    cluster.kubectl("delete", "pod", "-n", "team-a", pods["bare"])
    cluster.kubectl("delete", "pod", "-n", pods["rogue_ns"], pods["rogue"])
    p = run_audit("--policy", POLICY, "--kubeconfig", cluster.webhook_kubeconfig, "-o", "policyreport")
    assert p.returncode in (0, 1), p.stderr
    applied = cluster.kubectl("apply", "-f", "-", input=p.stdout)
    assert "policyreport.wgpolicyk8s.io/spark-identity configured" in applied.stdout, applied.stdout
    reports = stored_reports(cluster)
    assert not {r for r in report_results(reports["team-a"]) if r[0] == pods["bare"]}
    x = reports[pods["rogue_ns"]]
    assert x["results"] == [] and x["summary"]["fail"] == 0, x
