"""`audit` against the real API server, after the other tests stored their
pods: a compliant driver created through the webhook, and, with the webhook
removed for a moment (stopped, failurePolicy Ignore), a driver that got
nothing and a pod that claims another namespace's identity. The audit
account of deploy/audit/ lists them (its ClusterRole: list pods and
namespaces), page by page, with a token the API server minted for it, from
a kubeconfig and --in-cluster as its CronJob's pods would; the webhook's
own account and a ServiceAccount without those rights get a 403 that says
so. A Job made from the CronJob, as the README says to run one now, is accepted
by the API server (its pod under the namespace's restricted Pod Security).
The PolicyReports are applied with kubectl, to a PolicyReport CRD installed
from tests/e2e/policyreport-crd.yaml (see that file), and follow the
cluster when pods are fixed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

import cluster as cp
from harness import HERE, POLICY, WEBHOOK_BIN, create_pod, fixture_object, model, unique, wait_mutating

CRD = HERE / "policyreport-crd.yaml"
CRD_NAME = "policyreports.wgpolicyk8s.io"


def run_audit(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(WEBHOOK_BIN), "audit", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


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


def test_audit_lists_pods_from_the_api_server(pods, cluster, audit_kubeconfig):
    p = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "json", "--page-size", "2")
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
    p2 = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "json")
    assert p2.returncode == 1, p2.stderr
    assert json.loads(p2.stdout)["findings"] == doc["findings"]


def test_audit_of_kubectl_output_agrees(pods, cluster, workdir, audit_kubeconfig):
    pods_file = workdir / "audit-pods.json"
    ns_file = workdir / "audit-namespaces.json"
    pods_file.write_text(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)
    ns_file.write_text(cluster.kubectl("get", "namespaces", "-o", "json").stdout)
    p = run_audit("--policy", POLICY, "--pods", pods_file, "--namespaces", ns_file, "-o", "json")
    assert p.returncode == 1, p.stderr
    api = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "json")
    assert json.loads(p.stdout)["findings"] == json.loads(api.stdout)["findings"]

    # The table, as an admin reads it.
    t = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "--namespace", pods["rogue_ns"])
    assert t.returncode == 1, t.stderr
    row = next(l for l in t.stdout.splitlines() if pods["rogue"] in l)
    assert row.split()[0] == pods["rogue_ns"] and row.split()[-1] == "foreign-identity"
    assert "\n1 pod in 1 namespace, 0 of them Spark pods; judged 1: 0 compliant, 1 with 1 finding.\n" in t.stdout, \
        t.stdout


def test_audit_in_cluster_as_the_audit_account(pods, cluster, workdir, audit_kubeconfig):
    """--in-cluster, as in a pod of deploy/audit/'s CronJob: the API
    server from KUBERNETES_SERVICE_HOST/PORT, the audit account's token and
    the CA from the service account directory (SPARK_IDENTITY_WEBHOOK_SA_DIR
    stands in for /var/run/secrets/kubernetes.io/serviceaccount)."""
    sa_dir = workdir / "audit-in-cluster-sa"
    sa_dir.mkdir()
    shutil.copy(cluster.pki / "ca.crt", sa_dir / "ca.crt")
    token = cluster.kubectl("create", "token", cp.AUDIT_SERVICE_ACCOUNT, "-n", cp.WEBHOOK_NAMESPACE,
                            "--duration", "10m").stdout.strip()
    (sa_dir / "token").write_text(token)
    env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(cluster.port),
               SPARK_IDENTITY_WEBHOOK_SA_DIR=str(sa_dir))
    p = run_audit("--policy", POLICY, "--in-cluster", "-o", "json", env=env)
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["summary"]["source"] == f"https://127.0.0.1:{cluster.port}"
    assert problems_by_pod(doc)[(pods["rogue_ns"], pods["rogue"])] == {"foreign-identity"}
    api = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "json")
    assert doc["findings"] == json.loads(api.stdout)["findings"]


def test_audit_with_a_kubeconfig_made_as_the_readme_says(pods, cluster, workdir, audit_kubeconfig):
    """README.md, "For auditors": the admin's current cluster and CA, the
    admin's credentials removed, and a token of the audit account."""
    kc = workdir / "readme-audit.kubeconfig"
    kc.write_text(cluster.kubectl("config", "view", "--minify", "--flatten").stdout)
    cluster.kubectl("config", "unset", "users", kubeconfig=kc)
    token = cluster.kubectl("-n", cp.WEBHOOK_NAMESPACE, "create", "token", cp.AUDIT_SERVICE_ACCOUNT,
                            "--duration", "10m").stdout.strip()
    cluster.kubectl("config", "set-credentials", "audit", "--token", token, kubeconfig=kc)
    cluster.kubectl("config", "set-context", "--current", "--user", "audit", kubeconfig=kc)
    assert cluster.admin_token not in kc.read_text()
    p = run_audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json")
    assert p.returncode == 1, p.stderr
    api = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "json")
    assert json.loads(p.stdout)["findings"] == json.loads(api.stdout)["findings"]


def test_the_serving_account_cannot_audit(pods, cluster, webhook):
    """The webhook's own account reads namespaces, so the audit gets that
    far, and is refused the pods."""
    p = run_audit("--policy", POLICY, "--kubeconfig", webhook.kubeconfig)
    assert p.returncode == 2 and p.stdout == "", p.stderr
    assert f"audit: listing pods: GET {cluster.url}/api/v1/pods?limit=500: HTTP 403: " in p.stderr, p.stderr
    assert f'User "{cp.WEBHOOK_SA_USER}" cannot list resource "pods"' in p.stderr
    assert "the identity needs 'list' on pods in all namespaces (a ClusterRole)" in p.stderr
    # Nor in one namespace.
    p = run_audit("--policy", POLICY, "--kubeconfig", webhook.kubeconfig, "--namespace", "team-a")
    assert p.returncode == 2 and "HTTP 403" in p.stderr and "'list' on pods in namespace team-a" in p.stderr, \
        p.stderr


def test_an_audit_job_from_the_cronjob_runs_as_the_audit_account(pods, cluster, registration):
    """deploy/audit/'s CronJob, stored by the suite's overlay: running, and
    `kubectl create job --from=cronjob/...` (how the README runs an audit)
    is accepted by the API server (--dry-run=server), and so is a pod of its
    template under the namespace's restricted Pod Security (which is
    enforced on pods, not on Jobs). It runs the Deployment's image as the
    audit account, reads the policy from the ConfigMap the Deployment
    mounts, at the same path, and does not carry the label by which the
    Service, the PodDisruptionBudget and the Deployment select the serving
    pods. (No controller or kubelet runs it here.)"""
    deployment = next(o for o in registration.objects if o["kind"] == "Deployment")
    serving = deployment["spec"]["template"]["spec"]
    (cron,) = [o for o in registration.objects if o["kind"] == "CronJob"]
    name = cron["metadata"]["name"]
    stored = cluster.kubectl_json("get", "cronjob", "-n", cp.WEBHOOK_NAMESPACE, name)
    assert stored["spec"]["suspend"] is False   # it keeps the PolicyReports current (test_21)

    p = cluster.kubectl("create", "job", "-n", cp.WEBHOOK_NAMESPACE, f"--from=cronjob/{name}", "e2e-audit-now",
                        "--dry-run=server", "-o", "json")
    job = json.loads(p.stdout)
    template = job["spec"]["template"]
    spec = template["spec"]
    assert job["spec"]["backoffLimit"] == 0
    assert spec["serviceAccountName"] == cp.AUDIT_SERVICE_ACCOUNT
    (container,) = spec["containers"]
    assert container["image"] == serving["containers"][0]["image"]
    args = container["args"]
    assert args[0] == "audit" and "--in-cluster" in args, args
    policy_arg = next(a for a in args if a.startswith("--policy="))
    assert policy_arg in serving["containers"][0]["args"], (policy_arg, serving["containers"][0]["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    serving_mounts = {m["name"]: m["mountPath"] for m in serving["containers"][0]["volumeMounts"]}
    assert mounts["policy"] == serving_mounts["policy"] and policy_arg.startswith(f"--policy={mounts['policy']}/")
    volumes = {v["name"]: v for v in spec["volumes"]}
    serving_volumes = {v["name"]: v for v in serving["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == serving_volumes["policy"]["configMap"]["name"]

    labels = template["metadata"]["labels"]
    selectors = {"Service": lambda o: o["spec"]["selector"],
                 "PodDisruptionBudget": lambda o: o["spec"]["selector"]["matchLabels"],
                 "Deployment": lambda o: o["spec"]["selector"]["matchLabels"]}
    for o in registration.objects:
        if o["kind"] in selectors:
            assert not selectors[o["kind"]](o).items() <= labels.items(), \
                f"an audit Job's pods would be selected by the {o['kind']}"

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "e2e-audit-now-", "namespace": cp.WEBHOOK_NAMESPACE, "labels": labels},
           "spec": spec}
    p = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    assert not [line for line in p.stderr.splitlines() if line.startswith("Warning:")], p.stderr


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


def test_policyreports_apply_and_follow_the_cluster(pods, crd, cluster, audit_kubeconfig):
    p = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "policyreport")
    assert p.returncode == 1, p.stderr
    applied = cluster.kubectl("apply", "-f", "-", input=p.stdout)
    assert "policyreport.wgpolicyk8s.io/spark-identity created" in applied.stdout, applied.stdout

    findings = json.loads(run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig,
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
    p = run_audit("--policy", POLICY, "--kubeconfig", audit_kubeconfig, "-o", "policyreport")
    assert p.returncode in (0, 1), p.stderr
    applied = cluster.kubectl("apply", "-f", "-", input=p.stdout)
    assert "policyreport.wgpolicyk8s.io/spark-identity configured" in applied.stdout, applied.stdout
    reports = stored_reports(cluster)
    assert not {r for r in report_results(reports["team-a"]) if r[0] == pods["bare"]}
    x = reports[pods["rogue_ns"]]
    assert x["results"] == [] and x["summary"]["fail"] == 0, x
