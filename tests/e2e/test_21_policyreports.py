"""The audit CronJob of deploy/audit/ keeps PolicyReports current: its
exact command (`audit --in-cluster -o policyreport --apply`, the arguments
read from the CronJob as the suite's overlay stored it, the policy from the
stored ConfigMap) run as the audit account (a token the API server minted
for it, in a service account directory as a pod of the Job would have it)
against the real API server, with the PolicyReport CRD of
tests/e2e/policyreport-crd.yaml installed. Reports are created for the
namespaces with findings, with the counts of the audit's table; a second
run changes nothing; a fixed namespace loses its report and a changed one
is replaced; without the CRD, without the permission, or against another
tool's report, the run fails (exit status 2) and says why. The serving
account may not touch reports."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import cluster as cp
from harness import HERE, WEBHOOK_BIN, create_pod, fixture_object, wait_mutating

CRD = HERE / "policyreport-crd.yaml"
CRD_NAME = "policyreports.wgpolicyk8s.io"
API = "/apis/wgpolicyk8s.io/v1alpha2"
SELECTOR = "app.kubernetes.io/managed-by=spark-identity-webhook"
MODES = ("enforce", "audit", "off", "?")


@pytest.fixture(scope="module")
def cronjob_args(registration) -> list[str]:
    (cron,) = [o for o in registration.objects if o["kind"] == "CronJob"]
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container["args"]


@pytest.fixture(scope="module")
def policy_file(cluster, registration, workdir, cronjob_args):
    """The policy the Job's pod would read: the stored ConfigMap's key at
    the path the CronJob gives."""
    (arg,) = [a for a in cronjob_args if a.startswith("--policy=")]
    key = arg.rsplit("/", 1)[1]
    cm = cluster.kubectl_json("get", "configmap", "-n", cp.WEBHOOK_NAMESPACE, "spark-identity-policy")
    path = workdir / "polr-policy" / key
    path.parent.mkdir(exist_ok=True)
    path.write_text(cm["data"][key])
    return path


def _sa_env(cluster, workdir, account: str, namespace: str, name: str) -> dict:
    """--in-cluster as a pod running as `account`: the API server's address
    in the environment, the minted token and the CA in a service account
    directory (SPARK_IDENTITY_WEBHOOK_SA_DIR)."""
    sa_dir = workdir / name
    sa_dir.mkdir(exist_ok=True)
    shutil.copy(cluster.pki / "ca.crt", sa_dir / "ca.crt")
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration", "30m").stdout.strip()
    (sa_dir / "token").write_text(token)
    return dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(cluster.port),
                SPARK_IDENTITY_WEBHOOK_SA_DIR=str(sa_dir))


@pytest.fixture(scope="module")
def audit_env(cluster, registration, workdir) -> dict:
    return _sa_env(cluster, workdir, cp.AUDIT_SERVICE_ACCOUNT, cp.WEBHOOK_NAMESPACE, "polr-audit-sa")


def run_cronjob(args: list[str], policy, env: dict) -> subprocess.CompletedProcess:
    """The CronJob's command, its --policy at the file the ConfigMap holds."""
    argv = [f"--policy={policy}" if a.startswith("--policy=") else a for a in args]
    return subprocess.run([str(WEBHOOK_BIN), *argv], capture_output=True, text=True, timeout=120, env=env)


def audit(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(WEBHOOK_BIN), "audit", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def actions(stdout: str) -> dict:
    """{namespace: (action, rest)} from the lines --apply prints."""
    out = {}
    for line in stdout.splitlines():
        head, _, rest = line.partition(": ")
        parts = head.split()
        if len(parts) == 2 and parts[0] in ("created", "updated", "unchanged", "deleted", "skipped"):
            out[parts[1]] = (parts[0], rest)
    return out


def ours(cluster) -> dict:
    items = cluster.kubectl_json("get", "policyreports", "-A", "-l", SELECTOR)["items"]
    return {r["metadata"]["namespace"]: r for r in items}


def table_counts(table: str, ns: str) -> tuple[int, int, int]:
    """(COMPLIANT, UNKNOWN, FINDINGS) of a namespace's summary row, read by
    the summary header's column names; FINDINGS is checked against the sum
    of PROBLEMS."""
    lines = table.splitlines()
    head = next((i for i, line in enumerate(lines) if line.split()[:3] == ["NAMESPACE", "RULE", "MODE"]), None)
    assert head is not None, f"no summary header in:\n{table}"
    cols = lines[head].split()
    counts = cols[cols.index("MODE") + 1:cols.index("PROBLEMS")]   # the numbers, after RULE (several words) and MODE
    for line in lines[head + 1:]:
        t = line.split()
        if t and t[0] == ns:
            at = next(i for i, x in enumerate(t) if i > 1 and x in MODES) + 1
            row = dict(zip(counts, t[at:at + len(counts)]))
            assert all(v.isdigit() for v in row.values()), line
            problems = " ".join(t[at + len(counts):])
            n = 0 if problems == "-" else sum(int(p.split()[-1]) for p in problems.split(", "))
            assert int(row["FINDINGS"]) == n, line
            return int(row["COMPLIANT"]), int(row["UNKNOWN"]), int(row["FINDINGS"])
    raise AssertionError(f"no summary row for {ns} in:\n{table}")


@pytest.fixture(scope="module")
def scene(kubectl, cluster, webhook, registration):
    """Two namespaces without a rule, each with pods claiming team-a's
    identity (a foreign-identity finding each), stored while the webhook
    was ignored: polr-two-* with two, polr-one-* with one."""
    tag = uuid.uuid4().hex[:6]
    two, one = f"polr-two-{tag}", f"polr-one-{tag}"
    items = []
    for ns in (two, one):
        items += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                  {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}]
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    pods = {two: [f"rogue-a-{tag}", f"rogue-b-{tag}"], one: [f"rogue-c-{tag}"]}
    webhook.stop()
    try:
        registration.set_failure_policy("Ignore")
        wait_mutating(cluster, False)
        for ns, names in pods.items():
            for name in names:
                pod = fixture_object("rogue-pod.json")
                pod["metadata"]["name"] = name
                create_pod(cluster, pod, ns)
    finally:
        webhook.start()
        registration.set_failure_policy("Fail")
        wait_mutating(cluster, True)
    return {"two": two, "one": one, "pods": pods}


@pytest.fixture(scope="module")
def crd(kubectl, cluster):
    cluster.kubectl("apply", "-f", CRD)
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    # Established is not yet served: the API server answers 503 "is
    # (re)initializing" for a moment after.
    deadline = time.monotonic() + 60
    while cluster.kubectl("get", "policyreports", "-A", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the PolicyReport API is not served 60 s after its CRD"
        time.sleep(0.2)
    try:
        yield
    finally:
        cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", check=False)


def test_the_cronjob_runs_every_hour_and_applies(cronjob_args, cluster, registration):
    (cron,) = [o for o in registration.objects if o["kind"] == "CronJob"]
    stored = cluster.kubectl_json("get", "cronjob", "-n", cp.WEBHOOK_NAMESPACE, cron["metadata"]["name"])
    assert stored["spec"]["suspend"] is False
    assert stored["spec"]["schedule"] == "17 * * * *"
    assert stored["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob_args[0] == "audit"
    assert {"--in-cluster", "--output=policyreport", "--apply"} <= set(cronjob_args), cronjob_args


def test_without_the_crd_the_run_says_so(scene, cronjob_args, policy_file, audit_env, cluster):
    """Before the CRD is installed (the crd fixture comes later)."""
    assert cluster.kubectl("get", "crd", CRD_NAME, check=False).returncode != 0, "the CRD is already there"
    p = run_cronjob(cronjob_args, policy_file, audit_env)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "audit: the PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed" in p.stderr, p.stderr
    assert "PolicyReports: 0 created" in p.stdout


def test_the_cronjob_creates_reports_with_the_tables_counts(scene, crd, cronjob_args, policy_file, audit_env,
                                                            cluster):
    p = run_cronjob(cronjob_args, policy_file, audit_env)
    assert p.returncode == 0, (p.stdout, p.stderr)   # findings, and the reports written
    did = actions(p.stdout)
    assert did[scene["two"]] == ("created", "2 fail, 0 pass, 0 skip"), p.stdout
    assert did[scene["one"]] == ("created", "1 fail, 0 pass, 0 skip"), p.stdout
    assert "; the PolicyReports are written" in p.stderr

    # The audit of the same cluster, as JSON and as a table.
    j = audit(f"--policy={policy_file}", "--in-cluster", "-o", "json", env=audit_env)
    assert j.returncode == 1, j.stderr
    doc = json.loads(j.stdout)
    t = audit(f"--policy={policy_file}", "--in-cluster", env=audit_env)
    assert t.returncode == 1, t.stderr
    failing = {n["namespace"]: n for n in doc["summary"]["namespaces"] if sum(n["problems"].values())}
    reports = ours(cluster)
    assert set(reports) == set(failing), (set(reports), set(failing))
    assert set(did) == set(failing) and {a for a, _ in did.values()} == {"created"}, p.stdout
    for ns, n in failing.items():
        r = reports[ns]
        s = r["summary"]
        findings = [f for f in doc["findings"] if f["namespace"] == ns]
        assert (s["pass"], s["skip"], s["fail"]) == (n["compliant"], n["unknown"], len(findings)), ns
        assert (s["pass"], s["skip"], s["fail"]) == table_counts(t.stdout, ns), ns
        assert did[ns][1] == f"{s['fail']} fail, {s['pass']} pass, {s['skip']} skip"
        assert {(x["resources"][0]["name"], x["rule"]) for x in r["results"]} == \
            {(f["pod"], f["problem"]) for f in findings}
        assert r["metadata"]["name"] == "spark-identity"
    x = reports[scene["two"]]
    assert {x["resources"][0]["name"] for x in x["results"]} == set(scene["pods"][scene["two"]])
    assert p.stdout.splitlines()[-1] == f"PolicyReports: {len(failing)} created, 0 updated, 0 unchanged, 0 deleted"
    # kubectl's own view, as the README shows it.
    table = cluster.kubectl("get", "policyreports", "-n", scene["two"]).stdout
    assert table.split()[:4] == ["NAME", "PASS", "FAIL", "WARN"] and "spark-identity" in table, table


def test_a_run_with_nothing_changed_writes_nothing(scene, crd, cronjob_args, policy_file, audit_env, cluster):
    before = {ns: r["metadata"]["resourceVersion"] for ns, r in ours(cluster).items()}
    time.sleep(1.1)   # another second: the results' timestamps would differ
    p = run_cronjob(cronjob_args, policy_file, audit_env)
    assert p.returncode == 0, (p.stdout, p.stderr)
    did = actions(p.stdout)
    assert set(did) == set(before) and {a for a, _ in did.values()} == {"unchanged"}, p.stdout
    assert p.stdout.splitlines()[-1] == f"PolicyReports: 0 created, 0 updated, {len(before)} unchanged, 0 deleted"
    assert {ns: r["metadata"]["resourceVersion"] for ns, r in ours(cluster).items()} == before
    # The reports listed one a page (limit/continue) are found all the same.
    p = audit(f"--policy={policy_file}", "--in-cluster", "-o", "policyreport", "--apply", "--page-size", "1",
              env=audit_env)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert {a for a, _ in actions(p.stdout).values()} == {"unchanged"} and len(before) > 1, p.stdout


def test_fixed_pods_update_or_delete_their_report(scene, crd, cronjob_args, policy_file, audit_env, cluster):
    two, one = scene["two"], scene["one"]
    cluster.kubectl("delete", "pod", "-n", two, scene["pods"][two][0], "--wait=false")
    cluster.kubectl("delete", "pod", "-n", one, scene["pods"][one][0], "--wait=false")
    p = run_cronjob(cronjob_args, policy_file, audit_env)
    assert p.returncode == 0, (p.stdout, p.stderr)
    did = actions(p.stdout)
    assert did[two] == ("updated", "1 fail, 0 pass, 0 skip"), p.stdout
    assert did[one] == ("deleted", "no findings"), p.stdout
    reports = ours(cluster)
    assert one not in reports
    assert [x["resources"][0]["name"] for x in reports[two]["results"]] == [scene["pods"][two][1]]
    assert reports[two]["summary"]["fail"] == 1
    others = {a for ns, (a, _) in did.items() if ns not in (one, two)}
    assert others <= {"unchanged"}, p.stdout


def test_the_audit_account_may_write_reports_and_no_more(crd, cluster, audit_env, registration, workdir):
    kc = workdir / "polr-audit.kubeconfig"
    token = (Path(audit_env["SPARK_IDENTITY_WEBHOOK_SA_DIR"]) / "token").read_text()
    cluster.write_kubeconfig(kc, cp.AUDIT_SA_USER, token)
    for verb in ("list", "create", "update", "delete"):
        assert _can(cluster, kc, verb, "policyreports.wgpolicyk8s.io"), f"cannot {verb} policyreports"
    for verb in ("get", "watch", "patch", "deletecollection"):
        assert not _can(cluster, kc, verb, "policyreports.wgpolicyk8s.io"), f"may {verb} policyreports"


def test_the_serving_account_cannot_touch_reports(crd, scene, cluster, webhook):
    kc = webhook.kubeconfig
    for verb in ("get", "list", "create", "update", "patch", "delete"):
        assert not _can(cluster, kc, verb, "policyreports.wgpolicyk8s.io"), f"the serving account may {verb}"
    report = {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
              "metadata": {"name": "forged", "namespace": scene["two"]}, "results": []}
    p = cluster.kubectl("create", "-f", "-", input=json.dumps(report), kubeconfig=kc, check=False)
    assert p.returncode != 0 and "Forbidden" in p.stderr, p.stderr
    assert f'User "{cp.WEBHOOK_SA_USER}" cannot create resource "policyreports"' in p.stderr, p.stderr


def _can(cluster, kubeconfig, verb, resource, *extra) -> bool:
    p = cluster.kubectl("auth", "can-i", verb, resource, "--all-namespaces", *extra, kubeconfig=kubeconfig,
                        check=False)
    assert p.stdout.strip() in ("yes", "no"), p.stderr
    return p.stdout.strip() == "yes"


@pytest.fixture
def reader_account(cluster, workdir):
    """An account that may list pods and namespaces (an audit's reads),
    and may only list PolicyReports, or nothing of them."""
    name = f"polr-reader-{uuid.uuid4().hex[:6]}"
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "team-a"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "team-a"}]},
    ]
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    try:
        yield name, _sa_env(cluster, workdir, name, "team-a", name)
    finally:
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "serviceaccount", "-n", "team-a", name, "--ignore-not-found", check=False)


def test_without_the_permission_a_403_names_it(crd, scene, cronjob_args, policy_file, reader_account, cluster):
    name, env = reader_account
    user = f"system:serviceaccount:team-a:{name}"
    p = run_cronjob(cronjob_args, policy_file, env)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"audit: GET {cluster.url}{API}/policyreports?labelSelector=" in p.stderr, p.stderr
    assert f'HTTP 403: policyreports.wgpolicyk8s.io is forbidden: User "{user}" cannot list resource ' \
        '"policyreports"' in p.stderr, p.stderr
    assert "the identity needs 'list' on policyreports.wgpolicyk8s.io in all namespaces (a ClusterRole)" \
        in p.stderr, p.stderr

    # May list them, not create them: the first write says which.
    cluster.kubectl("patch", "clusterrole", name, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/rules/-",
          "value": {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": ["list"]}}]))
    ns = scene["two"]
    # A namespace where this tool's report is not there yet, so a create is due.
    cluster.kubectl("delete", "policyreport", "-n", ns, "spark-identity")
    p = run_cronjob(cronjob_args, policy_file, env)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"audit: POST {cluster.url}{API}/namespaces/{ns}/policyreports: HTTP 403: " in p.stderr, p.stderr
    assert f"the identity needs 'create' on policyreports.wgpolicyk8s.io in namespace {ns}" in p.stderr, p.stderr
    assert "; the PolicyReports are not all written" in p.stderr


def test_another_tools_report_is_left_alone(crd, scene, cronjob_args, policy_file, audit_env, cluster):
    """A PolicyReport of the same name without this tool's label: not
    replaced, not deleted; the run says so and fails; the others are
    written."""
    ns = scene["two"]
    cluster.kubectl("delete", "policyreport", "-n", ns, "spark-identity", "--ignore-not-found")
    theirs = {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
              "metadata": {"name": "spark-identity", "namespace": ns, "labels": {"owner": "someone-else"}},
              "summary": {"pass": 7}, "results": []}
    cluster.kubectl("create", "-f", "-", input=json.dumps(theirs))
    p = run_cronjob(cronjob_args, policy_file, audit_env)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "a PolicyReport named spark-identity is there without the label " \
        f"{SELECTOR}: another tool's; left alone" in p.stderr, p.stderr
    assert ns not in actions(p.stdout)
    assert p.stdout.splitlines()[-1].endswith(", 1 failed"), p.stdout
    stored = cluster.kubectl_json("get", "policyreport", "-n", ns, "spark-identity")
    assert stored["summary"] == {"pass": 7} and stored["metadata"]["labels"] == {"owner": "someone-else"}
    cluster.kubectl("delete", "policyreport", "-n", ns, "spark-identity")
    # And the next run takes over the namespace again.
    p = run_cronjob(cronjob_args, policy_file, audit_env)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert actions(p.stdout)[ns] == ("created", "1 fail, 0 pass, 0 skip"), p.stdout


def test_one_namespace_only(crd, scene, policy_file, audit_kubeconfig, cluster):
    """--namespace: only that namespace's report is written or deleted;
    from a kubeconfig (the audit account's token) as from inside."""
    ns = scene["two"]
    before = ours(cluster)
    p = audit(f"--policy={policy_file}", "--kubeconfig", audit_kubeconfig, "-o", "policyreport", "--apply",
              "--namespace", ns, env=dict(os.environ))
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert actions(p.stdout) == {ns: ("unchanged", "1 fail, 0 pass, 0 skip")}, p.stdout
    assert set(ours(cluster)) == set(before)


def test_a_namespace_being_deleted_is_skipped(crd, scene, cronjob_args, policy_file, audit_env, cluster, webhook,
                                              registration):
    """A namespace being deleted takes no new object (the API server's 403
    NamespaceTerminating): its report is skipped, not an error. No
    namespace controller runs here, so the namespace stays Terminating with
    its pod until the test removes both."""
    ns = f"polr-gone-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}]}))
    webhook.stop()
    try:
        registration.set_failure_policy("Ignore")
        wait_mutating(cluster, False)
        pod = fixture_object("rogue-pod.json")
        pod["metadata"]["name"] = "rogue-gone"
        create_pod(cluster, pod, ns)
    finally:
        webhook.start()
        registration.set_failure_policy("Fail")
        wait_mutating(cluster, True)
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    try:
        assert cluster.kubectl_json("get", "namespace", ns)["status"]["phase"] == "Terminating"
        p = run_cronjob(cronjob_args, policy_file, audit_env)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert actions(p.stdout)[ns] == ("skipped", "the namespace is being deleted"), p.stdout
        assert ns not in ours(cluster)
    finally:
        # What the namespace controller would do: empty it, then finalize it.
        cluster.kubectl("delete", "pod", "-n", ns, "rogue-gone", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "serviceaccount", "-n", ns, "default", "--ignore-not-found", check=False)
        stored = cluster.kubectl_json("get", "namespace", ns)
        stored["spec"]["finalizers"] = []
        cluster.kubectl("replace", "--raw", f"/api/v1/namespaces/{ns}/finalize", "-f", "-",
                        input=json.dumps(stored), check=False)
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
