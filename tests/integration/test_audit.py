"""The `audit` and `explain` commands, run as the real binary.

Pods are the Spark fixtures as `kubectl get pods -A -o json` shows stored
pods (request.object, with a namespace, a name and a uid); pods that are
compliant are made by the oracle (model.mutate_spark_pod), independently of
the binary. The API server is a small HTTPS server here (TLS with the `certs`
command's CA, bearer tokens, limit/continue paging, 401/403 Status answers),
started and stopped by a fixture.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import re
import ssl
import subprocess
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import BIN, POLICY, POLICY_UNMATCHED_DENY, free_port, load_fixture, model, run_bin

PROBLEMS = ["missing-identity", "wrong-identity", "foreign-identity", "missing-jvm-settings", "no-policy",
            "missing-workload-identity", "too-large"]
PAGE_MAX_BYTES = 16 * 1024 * 1024    # AUDIT_PAGE_MAX_BYTES in include/core/webhook_limits.h
REPORT_MAX_RESULTS = 500      # AUDIT_REPORT_MAX_RESULTS in include/io/audit_report.h
TOKEN = "audit-test-token"
WI_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
WI_CLIENT = "22222222-2222-2222-2222-222222222222"


# ---------------------------------------------------------------------------
# Pods and policies
# ---------------------------------------------------------------------------

def stored(fixture: str, ns: str, name: str, labels: dict | None = None) -> dict:
    """A fixture's pod as the API server stores it in `ns`."""
    pod = copy.deepcopy(load_fixture(fixture)["request"]["object"])
    md = pod["metadata"]
    md.pop("generateName", None)
    md.update(namespace=ns, name=name, uid=str(uuid.uuid4()))
    for k, v in (labels or {}).items():
        if v is None:
            md.setdefault("labels", {}).pop(k, None)
        else:
            md.setdefault("labels", {})[k] = v
    return pod


def running(pod: dict) -> dict:
    pod["status"] = {"phase": "Running"}
    return pod


def compliant(fixture: str, ns: str, name: str, policy: dict) -> dict:
    """A pod as the oracle says the policy wants it."""
    want, _ = model.mutate_spark_pod(stored(fixture, ns, name), model.rule_for(policy, ns))
    return want


def pod_list(pods: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": pods, "metadata": {"resourceVersion": ""}}


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=1))
    return path


@pytest.fixture(scope="module")
def deny_policy(tmp_path_factory) -> Path:
    """tests/fixtures/policy.yaml with `unmatched: deny`: every namespace
    kind of the fixture policy, and no-policy findings; plus team-w, moved
    to workload identity."""
    text = POLICY.read_text()
    assert "unmatched: allow" in text
    doc = yaml.safe_load(text.replace("unmatched: allow", "unmatched: deny"))
    doc["namespaces"]["team-w"] = {"auth": "workloadIdentity", "tenantId": WI_TENANT, "clientId": WI_CLIENT,
                                   "serviceAccount": "spark"}
    path = tmp_path_factory.mktemp("audit-policy") / "policy-deny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# (namespace, pod) -> the problems the audit must find; [] compliant; None not judged.
def cluster_pods(policy: dict) -> tuple[list[dict], dict]:
    # A Spark driver carrying team-a's other allowed identity: another
    # identity than its rule's, but one team-a may use.
    allowed = compliant("spark35-driver.json", "team-a", "allowed-id-driver", policy)
    allowed["metadata"]["labels"][model.IDENTITY_LABEL] = "team-a-api"
    pods = [
        (compliant("spark35-driver.json", "team-a", "ok-driver", policy), []),
        (stored("spark35-driver-mutated.json", "team-a", "ok-driver-fixture"), []),
        (compliant("spark35-executor.json", "team-a", "ok-exec", policy), []),
        (running(stored("spark35-driver.json", "team-a", "bare-driver")), ["missing-identity", "missing-jvm-settings"]),
        (stored("spark35-executor.json", "team-a", "bare-exec"), ["missing-identity", "missing-jvm-settings"]),
        (stored("spark24-executor.json", "team-a", "bare-exec-24"), ["missing-identity", "missing-jvm-settings"]),
        (stored("spark35-driver-foreign-identity.json", "team-a", "foreign-driver"),
         ["wrong-identity", "foreign-identity", "missing-jvm-settings"]),
        (allowed, ["wrong-identity"]),
        (stored("spark35-driver-valuefrom.json", "team-a", "valuefrom-driver"),
         ["missing-identity", "missing-jvm-settings"]),
        (stored("api-pod-allowed.json", "team-a", "orders-api"), []),
        (stored("nginx-pod.json", "team-a", "web"), None),
        (stored("rogue-pod.json", "team-x", "debug-shell"), ["foreign-identity"]),
        (stored("spark35-driver.json", "team-x", "unmatched-driver"), ["no-policy"]),
        (stored("spark35-driver.json", "team-c", "audit-driver"), ["missing-identity", "missing-jvm-settings"]),
        (stored("spark35-driver.json", "team-off", "off-driver"), None),
        (stored("spark35-pyspark-driver.json", "team-e", "tool-driver"), ["missing-identity", "missing-jvm-settings"]),
        (compliant("spark35-pyspark-driver.json", "team-e", "ok-tool-driver", policy), []),
        # Mutated while team-w was on pod identity (team-a's identity then).
        (stored("spark35-driver-mutated.json", "team-w", "pod-identity-driver"),
         ["foreign-identity", "missing-jvm-settings", "missing-workload-identity"]),
    ]
    items = [p for p, _ in pods]
    want = {(p["metadata"]["namespace"], p["metadata"]["name"]): w for p, w in pods}
    return items, want


@pytest.fixture(scope="module")
def cluster(deny_policy, tmp_path_factory):
    policy = model.load_policy(deny_policy)
    items, want = cluster_pods(policy)
    path = write(tmp_path_factory.mktemp("audit-pods") / "pods.json", pod_list(items))
    return {"policy": policy, "items": items, "want": want, "path": path}


def audit(*args, input: bytes | None = None, env: dict | None = None):
    """Runs `audit ARGS`: (exit status, stdout, stderr)."""
    p = subprocess.run([str(BIN), "audit", *map(str, args)], input=input, capture_output=True, timeout=60,
                       env=env)
    err = p.stderr.decode(errors="replace")
    assert_no_sanitizer_report(err)
    return p.returncode, p.stdout.decode(errors="replace"), err


def assert_no_sanitizer_report(err: str) -> None:
    """Against the ASan+UBSan build, a report would otherwise hide behind
    the exit status 1 that findings have too."""
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in err, err


def findings_by_pod(doc: dict) -> dict:
    out: dict = {}
    for f in doc["findings"]:
        out.setdefault((f["namespace"], f["pod"]), []).append(f["problem"])
    return out


# ---------------------------------------------------------------------------
# Every problem kind, in JSON
# ---------------------------------------------------------------------------

def test_json_finds_every_problem_kind(cluster, deny_policy):
    rc, out, err = audit("--policy", deny_policy, "--pods", cluster["path"], "-o", "json")
    assert rc == 1, err
    doc = json.loads(out)
    got = findings_by_pod(doc)
    for key, want in cluster["want"].items():
        assert sorted(got.get(key, [])) == sorted(want or []), f"{key}: {got.get(key)} want {want}"
    assert set(got) <= set(cluster["want"])
    # Every kind a pods file can show (too-large comes only from the API: see below).
    assert {f["problem"] for f in doc["findings"]} == set(PROBLEMS) - {"too-large"}

    s = doc["summary"]
    assert s["pods"] == len(cluster["items"])
    assert s["findings"] == s["findingsListed"] == len(doc["findings"])
    assert s["withFindings"] == sum(1 for w in cluster["want"].values() if w)
    assert s["compliant"] == sum(1 for w in cluster["want"].values() if w == [])
    assert s["off"] == 1 and s["notConcerned"] == 1 and s["unknown"] == 0
    assert s["problems"] == {k: sum(1 for f in doc["findings"] if f["problem"] == k) for k in PROBLEMS}
    assert s["source"] == str(cluster["path"])
    assert re.fullmatch(r"[0-9a-f]{64}", s["policySha256"])
    by_ns = {n["namespace"]: n for n in s["namespaces"]}
    assert by_ns["team-a"]["rule"] == "team-a" and by_ns["team-a"]["mode"] == "enforce"
    assert by_ns["team-c"]["mode"] == "audit"
    assert by_ns["team-off"]["off"] == 1 and by_ns["team-off"]["withFindings"] == 0
    assert by_ns["team-x"]["rule"] is None

    # Sorted by namespace and pod.
    keys = [(f["namespace"], f["pod"]) for f in doc["findings"]]
    assert keys == sorted(keys)


def finding(doc: dict, ns: str, pod: str, problem: str) -> dict:
    hits = [f for f in doc["findings"] if (f["namespace"], f["pod"], f["problem"]) == (ns, pod, problem)]
    assert len(hits) == 1, f"{ns}/{pod} {problem}: {hits}"
    return hits[0]


def test_json_says_what_was_expected_and_found(cluster, deny_policy):
    policy = cluster["policy"]
    rc, out, _ = audit("--policy", deny_policy, "--pods", cluster["path"], "-o", "json")
    doc = json.loads(out)
    a = model.rule_for(policy, "team-a")
    bare = {p["metadata"]["name"]: p for p in cluster["items"]}["bare-driver"]

    f = finding(doc, "team-a", "bare-driver", "missing-identity")
    assert (f["expected"], f["found"]) == ("aadpodidbinding=sparkaks", "no aadpodidbinding label")
    assert f["role"] == "driver" and f["appId"] == bare["metadata"]["labels"]["spark-app-selector"]
    assert f["uid"] == bare["metadata"]["uid"] and f["rule"] == "team-a" and f["mode"] == "enforce"
    assert f["phase"] == "Running"
    f = finding(doc, "team-a", "bare-driver", "missing-jvm-settings")
    assert f["expected"] == f"JAVA_HOME={a.java_home}; SPARK_SUBMIT_OPTS={' '.join(a.flags)}"
    assert f["found"] == "JAVA_HOME unset; SPARK_SUBMIT_OPTS unset"

    # The executor lacks the flags its Spark-made SPARK_JAVA_OPT_n do not carry.
    bare_exec = next(p for p in cluster["items"] if p["metadata"]["name"] == "bare-exec")
    exec_env = [e.get("value") for e in bare_exec["spec"]["containers"][model.spark_container_index(bare_exec)]["env"]]
    missing = [fl for fl in a.flags if fl not in exec_env]
    f = finding(doc, "team-a", "bare-exec", "missing-jvm-settings")
    assert f["expected"] == f"JAVA_HOME={a.java_home}; SPARK_JAVA_OPT_<n> for each of: {' '.join(missing)}"
    assert f["role"] == "executor"

    f = finding(doc, "team-a", "foreign-driver", "wrong-identity")
    assert (f["expected"], f["found"]) == ("aadpodidbinding=sparkaks", "aadpodidbinding=team-b-spark")
    f = finding(doc, "team-a", "foreign-driver", "foreign-identity")
    assert f["expected"] == "an identity namespace team-a may use: sparkaks, team-a-api"
    f = finding(doc, "team-a", "allowed-id-driver", "wrong-identity")
    assert f["found"] == "aadpodidbinding=team-a-api"

    f = finding(doc, "team-a", "valuefrom-driver", "missing-jvm-settings")
    assert "SPARK_SUBMIT_OPTS from valueFrom" in f["found"]

    f = finding(doc, "team-x", "debug-shell", "foreign-identity")
    assert f["role"] is None and f["appId"] is None and f["found"] == "aadpodidbinding=sparkaks"
    f = finding(doc, "team-x", "unmatched-driver", "no-policy")
    assert f["found"] == "no rule" and "unmatched: deny" in f["expected"]

    f = finding(doc, "team-c", "audit-driver", "missing-identity")
    assert f["mode"] == "audit" and f["expected"] == "aadpodidbinding=c-spark"

    e = model.rule_for(policy, "team-e")
    f = finding(doc, "team-e", "tool-driver", "missing-jvm-settings")
    assert f["expected"] == f"JAVA_HOME={e.java_home}; JAVA_TOOL_OPTIONS={' '.join(e.flags)}"
    assert "SPARK_SUBMIT_OPTS" not in f["expected"]


# ---------------------------------------------------------------------------
# Table and PolicyReports
# ---------------------------------------------------------------------------

def test_table_is_the_default(cluster, deny_policy):
    rc, out, err = audit("--policy", deny_policy, "--pods", cluster["path"])
    assert rc == 1, err
    lines = out.splitlines()
    head = lines[0]
    assert re.match(r"NAMESPACE +POD +ROLE +APP ID +PROBLEM$", head), head
    rows = [l for l in lines[1:] if l and not l.startswith(" ") and not l.startswith("NAMESPACE")
            and re.match(r"team-\S+ ", l)]
    col = {c: head.index(c) for c in ("POD", "ROLE", "APP ID", "PROBLEM")}
    finding_rows = rows[:sum(len(w or []) for w in cluster["want"].values())]
    for r in finding_rows:
        for c, at in col.items():
            assert r[at - 1] == " " and r[at] != " ", f"{c} not aligned in {r!r}"
    assert any("debug-shell" in r and "foreign-identity" in r for r in finding_rows)
    assert any("(namespace in audit mode)" in r for r in finding_rows)
    # Each finding row is followed by what was expected and found.
    i = lines.index(finding_rows[0])
    assert lines[i + 1].startswith("    expected  ") and lines[i + 2].startswith("    found     ")

    summary = lines.index(next(l for l in lines[1:] if l.startswith("NAMESPACE ")))
    assert re.match(r"NAMESPACE +RULE +MODE +PODS +SPARK +COMPLIANT +NONCOMPLIANT +UNKNOWN +FINDINGS +PROBLEMS$",
                    lines[summary])
    per_ns = {l.split()[0]: l for l in lines[summary + 1:] if l and l.split()[0].startswith("team-")}
    assert set(per_ns) == {"team-a", "team-c", "team-e", "team-off", "team-w", "team-x"}
    assert per_ns["team-off"].split()[2] == "off"
    assert "no-policy 1" in per_ns["team-x"] and "foreign-identity 1" in per_ns["team-x"]
    assert any(re.match(rf"{len(cluster['items'])} pods in 6 namespaces", l) for l in lines), out


def test_table_counts_agree_with_json(cluster, deny_policy):
    """NONCOMPLIANT counts pods (withFindings), FINDINGS counts findings (a
    pod can have several), PROBLEMS splits the findings by kind; a namespace
    without a rule says none where JSON says null."""
    rc, out, _ = audit("--policy", deny_policy, "--pods", cluster["path"])
    rc2, js, err = audit("--policy", deny_policy, "--pods", cluster["path"], "-o", "json")
    assert rc == rc2 == 1, err
    doc = json.loads(js)
    lines = out.splitlines()
    summary = lines.index(next(l for l in lines[1:] if l.startswith("NAMESPACE  RULE")))
    head = lines[summary].split()
    by_ns = {n["namespace"]: n for n in doc["summary"]["namespaces"]}
    several = 0
    for line in lines[summary + 1:]:
        if not line.strip() or line.split()[0] not in by_ns:
            break
        cells = dict(zip(head, line.split(maxsplit=len(head) - 1)))
        ns = by_ns[cells["NAMESPACE"]]
        assert int(cells["NONCOMPLIANT"]) == ns["withFindings"], line
        assert int(cells["FINDINGS"]) == ns["findings"] == sum(ns["problems"].values()), line
        listed = [f for f in doc["findings"] if f["namespace"] == cells["NAMESPACE"]]
        assert ns["findings"] == len(listed), line
        by_kind = dict(re.findall(r"([a-z-]+) (\d+)", cells["PROBLEMS"]))
        assert {k: int(v) for k, v in by_kind.items()} == {k: v for k, v in ns["problems"].items() if v}, line
        assert cells["RULE"] == (ns["rule"] or "none"), line
        several += ns["findings"] > ns["withFindings"]
    assert several, "no namespace has a pod with several findings: the test would not tell pods from findings"
    assert by_ns["team-x"]["rule"] is None
    assert sum(n["findings"] for n in by_ns.values()) == doc["summary"]["findings"]
    assert re.search(rf"{doc['summary']['withFindings']} with {doc['summary']['findings']} findings", out), out


def test_foreign_claims_in_audit_and_off_namespaces_are_findings(tmp_path):
    """The owner's mode protects an identity: pods of an audit or off
    namespace that carry team-a's sparkaks are reported. An unlisted identity
    is free in an off namespace and in one without a rule, not in an
    enforcing namespace whose rule lists what it may use."""
    pods = [stored("nginx-pod.json", "team-c", "c-web", {"aadpodidbinding": "sparkaks"}),
            stored("nginx-pod.json", "team-off", "off-web", {"aadpodidbinding": "sparkaks"}),
            stored("nginx-pod.json", "team-off", "off-free", {"aadpodidbinding": "nobodys"}),
            stored("nginx-pod.json", "team-x", "x-free", {"aadpodidbinding": "nobodys"}),
            stored("nginx-pod.json", "team-a", "a-unlisted", {"aadpodidbinding": "nobodys"})]
    path = write(tmp_path / "pods.json", pod_list(pods))
    rc, out, err = audit("--policy", POLICY, "--pods", path, "-o", "json")
    assert rc == 1, out + err
    got = findings_by_pod(json.loads(out))
    assert got == {("team-c", "c-web"): ["foreign-identity"], ("team-off", "off-web"): ["foreign-identity"],
                   ("team-a", "a-unlisted"): ["foreign-identity"]}, got


def test_no_findings_exits_0(tmp_path):
    policy = model.load_policy(POLICY)
    pods = [compliant("spark35-driver.json", "team-a", "d", policy),
            compliant("spark33-executor.json", "team-a", "e", policy),
            compliant("spark35-driver.json", "team-d", "d", policy),
            stored("spark35-driver.json", "team-off", "off"),
            stored("spark35-driver.json", "team-x", "unmatched"),     # unmatched: allow
            stored("nginx-pod.json", "team-a", "web"),
            stored("api-pod-allowed.json", "team-a", "api")]
    path = write(tmp_path / "pods.json", pod_list(pods))
    rc, out, err = audit("--policy", POLICY, "--pods", path)
    assert rc == 0, out + err
    assert out.startswith("No findings.\n")
    rc, out, _ = audit("--policy", POLICY, "--pods", path, "-o", "json")
    assert rc == 0 and json.loads(out)["findings"] == []
    assert json.loads(out)["summary"]["compliant"] == 5
    rc, out, err = audit("--policy", POLICY, "--pods", path, "-o", "policyreport")
    assert rc == 0
    reports = json.loads(out)["items"]
    assert {r["metadata"]["namespace"] for r in reports} == {"team-a", "team-d", "team-off", "team-x"}
    assert all(r["results"] == [] and r["summary"]["fail"] == 0 for r in reports)
    assert "0 findings" in err


SEVERITIES = {"critical", "high", "medium", "low", "info"}


def check_report_shape(r: dict) -> None:
    """The wgpolicyk8s.io/v1alpha2 PolicyReport fields, with their types."""
    assert r["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and r["kind"] == "PolicyReport"
    md = r["metadata"]
    assert md["name"] == "spark-identity" and md["namespace"]
    assert all(isinstance(v, str) for v in md["annotations"].values())
    assert all(isinstance(v, str) for v in md["labels"].values())
    assert set(r) <= {"apiVersion", "kind", "metadata", "summary", "results", "scope", "scopeSelector"}
    assert set(r["summary"]) == {"pass", "fail", "warn", "error", "skip"}
    assert all(isinstance(v, int) and v >= 0 for v in r["summary"].values())
    for res in r["results"]:
        assert set(res) <= {"policy", "rule", "result", "severity", "category", "source", "message",
                            "properties", "resources", "timestamp", "scored", "resourceSelector"}
        assert res["policy"] == "spark-identity" and res["result"] == "fail"
        assert res["rule"] in PROBLEMS and res["severity"] in SEVERITIES
        assert isinstance(res["message"], str) and res["message"]
        assert all(isinstance(v, str) for v in res["properties"].values())
        assert isinstance(res["timestamp"]["seconds"], int) and res["timestamp"]["nanos"] == 0
        (ref,) = res["resources"]
        assert ref["apiVersion"] == "v1" and ref["kind"] == "Pod" and ref["namespace"] == md["namespace"]
        assert ref["name"] and ref["uid"]


def test_policyreport_one_per_namespace(cluster, deny_policy):
    rc, out, err = audit("--policy", deny_policy, "--pods", cluster["path"], "-o", "policyreport")
    assert rc == 1, err
    doc = json.loads(out)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    reports = {r["metadata"]["namespace"]: r for r in doc["items"]}
    # One per namespace with pods; team-off's is empty (not judged).
    assert set(reports) == {"team-a", "team-c", "team-e", "team-off", "team-w", "team-x"}
    assert reports["team-off"]["results"] == [] and reports["team-off"]["summary"]["fail"] == 0
    for r in reports.values():
        check_report_shape(r)
    got = {(r["metadata"]["namespace"], res["resources"][0]["name"], res["rule"])
           for r in reports.values() for res in r["results"]}
    want = {(ns, pod, p) for (ns, pod), ps in cluster["want"].items() for p in (ps or [])}
    assert got == want
    a = reports["team-a"]
    assert a["summary"]["fail"] == len(a["results"])
    assert a["summary"]["pass"] == sum(1 for (ns, _), w in cluster["want"].items() if ns == "team-a" and w == [])
    assert a["metadata"]["annotations"]["spark-identity.io/results-left-out"] == "0"
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster["items"] if p["metadata"]["namespace"] == "team-a"}
    for res in a["results"]:
        assert res["resources"][0]["uid"] == uids[res["resources"][0]["name"]]
    assert re.search(r"audit: \d+ findings in \d+ pods", err), err


def test_policyreport_results_are_bounded(tmp_path):
    n = REPORT_MAX_RESULTS // 2 + 10          # two findings each
    pods = [stored("spark35-driver.json", "team-b", f"driver-{i:04d}") for i in range(n)]
    pods.append(stored("rogue-pod.json", "team-x", "rogue"))
    path = write(tmp_path / "many.json", pod_list(pods))
    rc, out, err = audit("--policy", POLICY, "--pods", path, "-o", "policyreport")
    assert rc == 1
    reports = {r["metadata"]["namespace"]: r for r in json.loads(out)["items"]}
    b = reports["team-b"]
    check_report_shape(b)
    assert len(b["results"]) == REPORT_MAX_RESULTS
    assert b["summary"]["fail"] == 2 * n
    left = 2 * n - REPORT_MAX_RESULTS
    assert b["metadata"]["annotations"]["spark-identity.io/results-left-out"] == str(left)
    assert len(reports["team-x"]["results"]) == 1
    assert f"{left} results left out of the reports (at most {REPORT_MAX_RESULTS} per report)" in err, err


def test_policyreport_covers_every_namespace(tmp_path, certs):
    """A namespace without pods (or whose pods were fixed) gets an empty
    report, so that applying the output again replaces its old one."""
    pods = [stored("spark35-driver.json", "team-a", "d")]
    nss = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("team-a", "team-empty")]
    pods_file = write(tmp_path / "pods.json", pod_list(pods))
    ns_file = write(tmp_path / "ns.json", pod_list(nss))

    def reports(out):
        return [(r["metadata"]["namespace"], len(r["results"])) for r in json.loads(out)["items"]]

    rc, out, _ = audit("--policy", POLICY, "--pods", pods_file, "--namespaces", ns_file, "-o", "policyreport")
    assert rc == 1 and reports(out) == [("team-a", 2), ("team-empty", 0)]
    rc, out, _ = audit("--policy", POLICY, "--pods", pods_file, "-o", "policyreport")
    assert rc == 1 and reports(out) == [("team-a", 2)]
    rc, out, _ = audit("--policy", POLICY, "--pods", pods_file, "--namespace", "team-empty", "-o", "policyreport")
    assert rc == 0 and reports(out) == [("team-empty", 0)]

    # From the API the namespaces are listed for the reports, even when the
    # policy reads none; without the right to, the reports cover the
    # namespaces that have pods, and stderr says why.
    with FakeAPI(certs, pods, nss) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "policyreport")
        assert rc == 1 and reports(out) == [("team-a", 2), ("team-empty", 0)], err
        assert [r[0] for r in api.requests] == ["/api/v1/namespaces", "/api/v1/pods"]
        rc, out, _ = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json")
        assert [r[0] for r in api.requests][2:] == ["/api/v1/pods"]
    with FakeAPI(certs, pods, nss, forbid={"/api/v1/namespaces"}) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "policyreport")
        assert rc == 1 and reports(out) == [("team-a", 2)]
        assert "listing namespaces: GET" in err and "HTTP 403" in err
        assert "reports only for the namespaces that have pods" in err, err


# ---------------------------------------------------------------------------
# Inputs: a single Pod, stdin, --namespace, --namespaces
# ---------------------------------------------------------------------------

def test_single_pod_and_stdin(tmp_path):
    pod = stored("spark35-driver.json", "team-a", "one")
    path = write(tmp_path / "pod.json", pod)
    rc, out, _ = audit("--policy", POLICY, "--pods", path, "-o", "json")
    assert rc == 1
    assert sorted(findings_by_pod(json.loads(out))[("team-a", "one")]) == ["missing-identity", "missing-jvm-settings"]
    rc, out2, _ = audit("--policy", POLICY, "--pods", "-", "-o", "json", input=json.dumps(pod_list([pod])).encode())
    assert rc == 1
    assert json.loads(out2)["findings"] == json.loads(out)["findings"]
    assert json.loads(out2)["summary"]["source"] == "stdin"

    # A manifest without metadata.namespace: --namespace says where.
    del pod["metadata"]["namespace"]
    write(path, pod)
    rc, _, err = audit("--policy", POLICY, "--pods", path)
    assert rc == 2 and "pod one has no metadata.namespace; say which with --namespace" in err, err
    rc, out, _ = audit("--policy", POLICY, "--pods", path, "--namespace", "team-b", "-o", "json")
    assert rc == 1 and json.loads(out)["findings"][0]["expected"] == "aadpodidbinding=team-b-spark"


def test_namespace_filter_and_other_kinds(cluster, deny_policy, tmp_path):
    rc, out, _ = audit("--policy", deny_policy, "--pods", cluster["path"], "--namespace", "team-x", "-o", "json")
    assert rc == 1
    doc = json.loads(out)
    assert {f["namespace"] for f in doc["findings"]} == {"team-x"}
    assert doc["summary"]["pods"] == 2
    # Objects that are not pods (kubectl get all) are skipped, and said so.
    items = [stored("spark35-driver.json", "team-a", "d"),
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "team-a"}}]
    path = write(tmp_path / "all.json", pod_list(items))
    rc, out, err = audit("--policy", POLICY, "--pods", path, "-o", "json")
    assert rc == 1 and json.loads(out)["summary"]["pods"] == 1
    assert "1 items of the list are not pods; skipped" in err


SELECTOR_POLICY = """\
namespaces:
  team-a: {identity: sparkaks, clientId: d23f0824-128b-4f33-8c5c-7fd0a6a3a450}
selectors:
  - name: data
    namespaceSelector: {matchLabels: {spark-identity.io/team: data}}
    identity: data-spark
namespaceAnnotations: true
delegableIdentities: [y-spark]
unmatched: deny
"""


def namespaces_list() -> dict:
    return pod_list([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lake", "labels": {"spark-identity.io/team": "data"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-y", "annotations": {
            "spark-identity.io/identity": "y-spark", "unrelated": "x"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-bad", "annotations": {
            "spark-identity.io/identity": "not a label value"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-z"}},
    ])


def selector_pods() -> list[dict]:
    return [stored("spark35-driver.json", "lake", "lake-driver"),
            stored("spark35-driver.json", "team-y", "y-driver"),
            stored("spark35-driver.json", "team-bad", "bad-driver"),
            stored("spark35-driver.json", "team-a", "a-driver"),
            stored("rogue-pod.json", "team-z", "z-rogue", {model.IDENTITY_LABEL: "y-spark"}),
            stored("nginx-pod.json", "lake", "web")]


def test_namespaces_file_for_selectors_and_annotations(tmp_path):
    policy = tmp_path / "selectors.yaml"
    policy.write_text(SELECTOR_POLICY)
    pods = write(tmp_path / "pods.json", pod_list(selector_pods()))
    nss = write(tmp_path / "ns.json", namespaces_list())

    # Without the namespaces: only team-a (an entry by name) is judged; the
    # others are unknown, not guessed.
    rc, out, _ = audit("--policy", policy, "--pods", pods, "-o", "json")
    assert rc == 1
    doc = json.loads(out)
    assert {f["namespace"] for f in doc["findings"]} == {"team-a"}
    assert doc["summary"]["unknown"] == 4 and doc["summary"]["namespacesKnown"] is False
    rc, out, _ = audit("--policy", policy, "--pods", pods)
    assert "4 pods unknown" in out and "--namespaces FILE" in out

    rc, out, _ = audit("--policy", policy, "--pods", pods, "--namespaces", nss, "-o", "json")
    assert rc == 1
    doc = json.loads(out)
    got = findings_by_pod(doc)
    assert sorted(got[("lake", "lake-driver")]) == ["missing-identity", "missing-jvm-settings"]
    assert finding(doc, "lake", "lake-driver", "missing-identity")["rule"] == "selector data"
    assert finding(doc, "team-y", "y-driver", "missing-identity")["expected"] == "aadpodidbinding=y-spark"
    assert got[("team-bad", "bad-driver")] == ["no-policy"]
    assert "not a valid label value" in finding(doc, "team-bad", "bad-driver", "no-policy")["found"]
    # y-spark is granted to team-y by its annotation: team-z may not claim it.
    assert got[("team-z", "z-rogue")] == ["foreign-identity"]
    assert doc["summary"]["unknown"] == 0 and doc["summary"]["namespacesKnown"] is True

    # A single Namespace is accepted too; pods of namespaces not in the file are unknown.
    one = write(tmp_path / "one-ns.json", namespaces_list()["items"][0])
    rc, out, _ = audit("--policy", policy, "--pods", pods, "--namespaces", one, "-o", "json")
    doc = json.loads(out)
    assert ("lake", "lake-driver") in findings_by_pod(doc)
    assert doc["summary"]["unknown"] == 3


# ---------------------------------------------------------------------------
# Errors: exit 2 and a message that says which
# ---------------------------------------------------------------------------

def test_file_errors(tmp_path, deny_policy):
    missing = tmp_path / "nope.json"
    rc, out, err = audit("--policy", POLICY, "--pods", missing)
    assert rc == 2 and out == ""
    assert f"audit: --pods: cannot read {missing}: No such file or directory" in err, err
    rc, _, err = audit("--policy", POLICY, "--pods", tmp_path)
    assert rc == 2 and "is a directory" in err

    bad = tmp_path / "bad.json"
    text = '{"kind": "List", "items": [{"metadata": {"name": "a", "namespace": "n"}} {"metadata": {}}]}'
    bad.write_text(text)
    rc, _, err = audit("--policy", POLICY, "--pods", bad)
    at = text.index("}} {") + 3
    assert rc == 2 and f"{bad}: expected ',' or ']' after an item at byte {at}" in err, err
    bad.write_text("")
    rc, _, err = audit("--policy", POLICY, "--pods", bad)
    assert rc == 2 and "is empty" in err
    bad.write_text('{"kind": "List", "items": [{"metadata": {"name": "x", "namespace": "a"}}')
    rc, _, err = audit("--policy", POLICY, "--pods", bad)
    assert rc == 2 and "at byte" in err
    write(bad, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    rc, _, err = audit("--policy", POLICY, "--pods", bad)
    assert rc == 2 and "holds a Namespace, not a List or a Pod" in err, err
    rc, _, err = audit("--policy", POLICY, "--pods", bad, "--namespaces", missing)
    assert rc == 2 and f"--namespaces: cannot read {missing}" in err, err

    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults:\n  mode: sometimes\n")
    rc, _, err = audit("--policy", broken, "--pods", bad)
    assert rc == 2 and "the policy is not valid" in err and f"{broken}:2:" in err, err
    rc, _, err = audit("--policy", tmp_path / "none.yaml", "--pods", bad)
    assert rc == 2 and "the policy is not valid" in err


@pytest.mark.parametrize("args, message", [
    ([], "--policy is required"),
    (["--policy", "P"], "give exactly one of --pods FILE, --kubeconfig FILE, --in-cluster"),
    (["--policy", "P", "--pods", "x", "--in-cluster"], "give exactly one of"),
    (["--policy", "P", "--pods", "x", "-o", "yaml"], "-o wants table, json or policyreport, not \"yaml\""),
    (["--policy", "P", "--in-cluster", "--namespaces", "x"], "--namespaces goes with --pods"),
    (["--policy", "P", "--pods", "x", "--namespace", "Team_A"], "--namespace wants a namespace name"),
    (["--policy", "P", "--pods", "x", "--page-size", "0"], "--page-size must be between 1 and 5000"),
    (["--policy", "P", "--pods", "x", "--bogus"], "unknown option --bogus"),
    (["--policy", "P", "--pods", "x", "extra"], "unexpected \"extra\""),
    (["--policy"], "--policy needs a value"),
])
def test_usage_errors(args, message):
    rc, out, err = audit(*[str(POLICY) if a == "P" else a for a in args])
    assert rc == 2 and out == ""
    assert message in err, err


def test_api_unreachable(tmp_path, certs):
    port = free_port()
    kc = kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}", certs.ca, TOKEN)
    rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc)
    assert rc == 2 and out == ""
    assert f"audit: listing pods: cannot reach the API server: https://127.0.0.1:{port}" in err, err
    rc, _, err = audit("--policy", POLICY, "--kubeconfig", tmp_path / "missing")
    assert rc == 2 and f"--kubeconfig {tmp_path / 'missing'}: cannot read" in err, err
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    rc, _, err = audit("--policy", POLICY, "--in-cluster", env=env)
    assert rc == 2 and "--in-cluster: not in a cluster (KUBERNETES_SERVICE_HOST is not set)" in err, err


# ---------------------------------------------------------------------------
# From the API: a small API server over TLS
# ---------------------------------------------------------------------------

def kubeconfig(path: Path, server: str, ca: Path, token: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u"}}]}))
    return path


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeAPI:
    """Lists pods and namespaces in pages as the API server does: `limit`,
    and a `continue` token (with characters that need percent-encoding) for
    the rest. Records every request."""

    def __init__(self, certs, pods, namespaces=(), forbid=()):
        self.pods = list(pods)
        self.namespaces = list(namespaces)
        self.forbid = set(forbid)
        self.requests: list[tuple[str, dict, str]] = []
        self.sizes: list[int] = []      # the bytes of each answer
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                api.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.cert, certs.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def send(self, h, code, body):
        data = json.dumps(body).encode()
        self.sizes.append(len(data))
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass    # the client stopped reading at its bound

    def handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        self.requests.append((u.path, q, h.headers.get("Authorization", "")))
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.send(h, 401, status(401, "Unauthorized", "Unauthorized"))
        if u.path in self.forbid:
            what = "namespaces" if u.path.endswith("namespaces") else "pods"
            return self.send(h, 403, status(403, "Forbidden", f'{what} is forbidden: User "system:serviceaccount:x:y" '
                                            f'cannot list resource "{what}" in API group "" at the cluster scope'))
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", u.path)
        if u.path == "/api/v1/pods":
            items, kind = self.pods, "PodList"
        elif m:
            items, kind = [p for p in self.pods if p["metadata"]["namespace"] == m.group(1)], "PodList"
        elif u.path == "/api/v1/namespaces":
            items, kind = self.namespaces, "NamespaceList"
        else:
            return self.send(h, 404, status(404, "NotFound", "the server could not find the requested resource"))
        limit = int(q.get("limit", "0")) or len(items)
        start = 0
        if q.get("continue"):
            start = json.loads(base64.b64decode(q["continue"]))["start"]
        page = items[start:start + limit]
        meta = {"resourceVersion": "4711"}
        if start + limit < len(items):
            # '+', '/', '=' and '&' must reach us intact: the client percent-encodes.
            meta["continue"] = base64.b64encode(json.dumps({"start": start + limit, "pad": "?&+/"}).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        self.send(h, 200, {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": page})


def test_api_pages_give_the_same_findings_as_a_file(cluster, deny_policy, certs, tmp_path):
    rc_file, out_file, _ = audit("--policy", deny_policy, "--pods", cluster["path"], "-o", "json")
    with FakeAPI(certs, cluster["items"]) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", deny_policy, "--kubeconfig", kc, "-o", "json", "--page-size", "4")
    assert rc == rc_file == 1, err
    assert json.loads(out)["findings"] == json.loads(out_file)["findings"]
    assert json.loads(out)["summary"]["source"] == api.url
    # Every page asked for with limit=4, each next page with the token the last one gave.
    pages = [r for r in api.requests if r[0] == "/api/v1/pods"]
    n = len(cluster["items"])
    assert len(pages) == (n + 3) // 4
    assert all(q["limit"] == "4" for _, q, _ in pages)
    assert "continue" not in pages[0][1]
    assert [json.loads(base64.b64decode(q["continue"]))["start"] for _, q, _ in pages[1:]] == \
        list(range(4, n, 4))
    assert all(a == f"Bearer {TOKEN}" for _, _, a in api.requests)
    # This policy reads no namespaces: none were listed.
    assert not [r for r in api.requests if r[0] == "/api/v1/namespaces"]


def test_api_lists_namespaces_when_the_policy_reads_them(certs, tmp_path):
    policy = tmp_path / "selectors.yaml"
    policy.write_text(SELECTOR_POLICY)
    nss = namespaces_list()["items"]
    pods = selector_pods()
    pods_file = write(tmp_path / "pods.json", pod_list(pods))
    _, want, _ = audit("--policy", policy, "--pods", pods_file, "--namespaces",
                       write(tmp_path / "ns.json", namespaces_list()), "-o", "json")
    with FakeAPI(certs, pods, nss) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", policy, "--kubeconfig", kc, "-o", "json", "--page-size", "2")
        assert rc == 1, err
        assert json.loads(out)["findings"] == json.loads(want)["findings"]
        ns_pages = [r for r in api.requests if r[0] == "/api/v1/namespaces"]
        assert len(ns_pages) == 3 and all(q["limit"] == "2" for _, q, _ in ns_pages)

        # --namespace: only that namespace's pods, from its own URL.
        api.requests.clear()
        rc, out, err = audit("--policy", policy, "--kubeconfig", kc, "-o", "json", "--namespace", "lake")
        assert rc == 1, err
        assert {f["namespace"] for f in json.loads(out)["findings"]} == {"lake"}
        assert [r[0] for r in api.requests if "pods" in r[0]] == ["/api/v1/namespaces/lake/pods"]


def test_api_forbidden_and_unauthorized_say_which(cluster, deny_policy, certs, tmp_path):
    with FakeAPI(certs, cluster["items"], forbid={"/api/v1/pods", "/api/v1/namespaces"}) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", deny_policy, "--kubeconfig", kc)
        assert rc == 2 and out == ""
        assert (f"audit: listing pods: GET {api.url}/api/v1/pods?limit=500: HTTP 403: pods is forbidden: "
                f'User "system:serviceaccount:x:y" cannot list resource "pods"') in err, err
        assert "the identity needs 'list' on pods in all namespaces (a ClusterRole), or give --namespace NS" in err

        # A policy that reads namespaces lists them first.
        policy = tmp_path / "selectors.yaml"
        policy.write_text(SELECTOR_POLICY)
        rc, _, err = audit("--policy", policy, "--kubeconfig", kc)
        assert rc == 2
        assert f"audit: listing namespaces: GET {api.url}/api/v1/namespaces?limit=500: HTTP 403" in err, err
        assert "needs 'list' on namespaces (the policy reads their labels or annotations)" in err

        bad = kubeconfig(tmp_path / "bad", api.url, certs.ca, "wrong-token")
        rc, _, err = audit("--policy", deny_policy, "--kubeconfig", bad)
        assert rc == 2 and "HTTP 401: Unauthorized; the credentials were refused" in err, err


def test_in_cluster(cluster, deny_policy, certs, tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "ca.crt").write_bytes(Path(certs.ca).read_bytes())
    (sa / "token").write_text(TOKEN + "\n")
    with FakeAPI(certs, cluster["items"]) as api:
        port = api.url.rsplit(":", 1)[1]
        env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=port,
                   SPARK_IDENTITY_WEBHOOK_SA_DIR=str(sa))
        rc, out, err = audit("--policy", deny_policy, "--in-cluster", "-o", "json", env=env)
    assert rc == 1, err
    assert len(json.loads(out)["findings"]) == sum(len(w or []) for w in cluster["want"].values())


# ---------------------------------------------------------------------------
# What tenants write is shown, not obeyed (issue 12)
# ---------------------------------------------------------------------------

FAKE_ROW = "\x1b[2J\nfake-ns  fake-pod  driver  spark-fake  missing-identity\r"


def with_env(pod: dict, name: str, value: str) -> dict:
    c = pod["spec"]["containers"][model.spark_container_index(pod)]
    c.setdefault("env", []).append({"name": name, "value": value})
    return pod


def hostile_pods() -> list[dict]:
    """A driver whose JAVA_HOME clears the screen and prints a fake row, with
    a C1 CSI (U+009B) and a right-to-left override in its app id label; a
    pod claiming an identity with an ESC in its name (as a file may hold)."""
    evil = with_env(stored("spark35-driver.json", "team-a", "evil-driver",
                           {"spark-app-selector": "spark-\u009b31m\u202eevil"}), "JAVA_HOME", FAKE_ROW)
    rogue = stored("rogue-pod.json", "team-x", "rogue\x1b]0;owned\x07")
    return [evil, rogue, stored("spark35-driver.json", "team-a", "plain-driver")]


def assert_one_line_rows(out: bytes) -> list[str]:
    """No control character but the newlines, no C1, valid UTF-8; the lines."""
    text = out.decode("utf-8")      # strict: the table is valid UTF-8
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f or c in "\u202e\u2028"]
    assert not bad, (bad, text)
    return text.split("\n")


def check_hostile_table(out: bytes, json_doc: dict) -> None:
    lines = assert_one_line_rows(out)
    head = lines[0]
    rows = [l for l in lines[1:l_end(lines)] if l and not l.startswith("    ")]
    # One row per finding, each followed by its expected and found lines: no fake row.
    assert len(rows) == len(json_doc["findings"]), lines
    assert not any(l.startswith("fake-ns") for l in lines)
    col = {c: head.index(c) for c in ("POD", "ROLE", "APP ID", "PROBLEM")}
    for r in rows:
        for c, at in col.items():
            assert r[at - 1] == " " and r[at] != " ", f"{c} not aligned in {r!r}"
    evil = [r for r in rows if "evil-driver" in r]
    assert evil and all("spark-\\u009b31m\\u202eevil" in r for r in evil), rows
    assert any(r.split()[1] == "rogue\\x1b]0;owned\\x07" for r in rows), rows
    found = [l for l in lines if l.startswith("    found     ") and "JAVA_HOME=" in l]
    assert found == ["    found     JAVA_HOME=\\x1b[2J\\nfake-ns  fake-pod  driver  spark-fake  missing-identity\\r"
                     "; SPARK_SUBMIT_OPTS unset"], found


def l_end(lines: list[str]) -> int:
    """Where the findings end: the blank line before the summary."""
    return lines.index("")


def test_table_escapes_what_tenants_wrote(tmp_path, certs):
    pods = hostile_pods()
    path = write(tmp_path / "pods.json", pod_list(pods))
    p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--pods", str(path), "-o", "json"],
                       capture_output=True, timeout=60)
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout.decode("utf-8"))    # strict UTF-8, valid JSON
    # JSON keeps the strings exactly, escaped.
    f = finding(doc, "team-a", "evil-driver", "missing-jvm-settings")
    assert f["found"] == f"JAVA_HOME={FAKE_ROW}; SPARK_SUBMIT_OPTS unset"
    assert f["appId"] == "spark-\u009b31m\u202eevil"
    assert b"\x1b" not in p.stdout and b"\xc2\x9b" not in p.stdout and b"\\u009b" in p.stdout
    assert ("team-x", "rogue\x1b]0;owned\x07") in findings_by_pod(doc)

    p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--pods", str(path)], capture_output=True,
                       timeout=60)
    assert p.returncode == 1, p.stderr
    check_hostile_table(p.stdout, doc)

    # From the API the same: the API server sends "\u001b" in JSON, which is ESC once parsed.
    with FakeAPI(certs, pods) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--kubeconfig", str(kc)],
                           capture_output=True, timeout=60)
        assert p.returncode == 1, p.stderr
        check_hostile_table(p.stdout, doc)
        p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--kubeconfig", str(kc), "-o",
                            "policyreport"], capture_output=True, timeout=60)
        assert p.returncode == 1, p.stderr
        reports = json.loads(p.stdout.decode("utf-8"))["items"]
        for r in reports:
            check_report_shape(r)
        msgs = [res["message"] for r in reports for res in r["results"]]
        assert any(FAKE_ROW in m for m in msgs)


def test_table_escapes_annotation_problems(tmp_path):
    """A namespace's annotations (whoever may annotate it writes them) come
    back in a no-policy finding: escaped in the table too."""
    policy = tmp_path / "selectors.yaml"
    policy.write_text(SELECTOR_POLICY)
    nss = pod_list([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-bad", "annotations": {
        "spark-identity.io/identity": "x\x1b[2J\nteam-bad  fake  driver  spark-1  no-policy"}}}])
    pods = write(tmp_path / "pods.json", pod_list([stored("spark35-driver.json", "team-bad", "d")]))
    p = subprocess.run([str(BIN), "audit", "--policy", str(policy), "--pods", str(pods), "--namespaces",
                        str(write(tmp_path / "ns.json", nss))], capture_output=True, timeout=60)
    assert p.returncode == 1, p.stderr
    lines = assert_one_line_rows(p.stdout)
    assert ('    found     spark-identity.io/identity "x\\x1b[2J\\nteam-bad  fake  driver  spark-1  no-policy" '
            'is not a valid label value') in lines, lines
    assert [l for l in lines if l.startswith("team-bad ")][0].endswith("no-policy")
    assert len([l for l in lines if l.startswith("team-bad  ") and "fake" in l]) == 0


def test_bytes_that_are_not_utf8(tmp_path):
    """A pods file may hold any bytes: the table shows them as \\xHH, JSON
    and PolicyReports stay valid UTF-8 (U+FFFD); error messages on stderr are
    escaped too."""
    pod = with_env(stored("spark35-driver.json", "team-a", "bytes-driver"), "JAVA_HOME", "/opt/PLACEHOLDER")
    text = json.dumps(pod_list([pod])).encode().replace(b"PLACEHOLDER", b"j\xff\x9b2J\xc3")
    path = tmp_path / "pods.json"
    path.write_bytes(text)
    p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--pods", str(path)], capture_output=True,
                       timeout=60)
    assert p.returncode == 1
    lines = assert_one_line_rows(p.stdout)
    assert "    found     JAVA_HOME=/opt/j\\xff\\x9b2J\\xc3; SPARK_SUBMIT_OPTS unset" in lines, lines
    for fmt in ("json", "policyreport"):
        p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--pods", str(path), "-o", fmt],
                           capture_output=True, timeout=60)
        assert p.returncode == 1
        doc = json.loads(p.stdout.decode("utf-8"))      # strict UTF-8
        assert "JAVA_HOME=/opt/j\ufffd\ufffd2J\ufffd" in json.dumps(doc, ensure_ascii=False)

    del pod["metadata"]["namespace"]
    pod["metadata"]["name"] = "evil\x1b[2J\nfake"
    write(path, pod)
    p = subprocess.run([str(BIN), "audit", "--policy", str(POLICY), "--pods", str(path)], capture_output=True,
                       timeout=60)
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode() == ("audit: --pods: pod evil\\x1b[2J\\nfake has no metadata.namespace; say which "
                                 "with --namespace\n"), p.stderr


# ---------------------------------------------------------------------------
# Pages bounded in bytes (issue 12)
# ---------------------------------------------------------------------------

def big_pod(ns: str, name: str, size: int, fixture: str = "spark35-driver.json") -> dict:
    """A pod whose JSON takes about `size` bytes: a long env value."""
    pod = stored(fixture, ns, name)
    pad = size - len(json.dumps(pod)) - 40
    return with_env(pod, "BIG", "x" * pad)


def limits(api, path="/api/v1/pods") -> list[int]:
    return [int(q["limit"]) for p, q, _ in api.requests if p == path]


def starts(api, path="/api/v1/pods") -> list[int]:
    return [json.loads(base64.b64decode(q["continue"]))["start"] if q.get("continue") else 0
            for p, q, _ in api.requests if p == path]


def test_api_pages_of_oversized_pods_are_read_in_smaller_pages(tmp_path, certs):
    """14 pods of 1.3 MB in one namespace: the first page's answer passes the
    bound, so it is asked again with half the limit until it fits (7 pods),
    then read on from there; every finding is reported, as from a file."""
    pods = [big_pod("team-a", f"big-{i:02d}", 1_300_000) for i in range(14)]
    assert len(json.dumps(pod_list(pods))) > PAGE_MAX_BYTES > len(json.dumps(pod_list(pods[:7])))
    file_rc, file_out, _ = audit("--policy", POLICY, "--pods", write(tmp_path / "pods.json", pod_list(pods)),
                                 "-o", "json")
    assert file_rc == 1
    want = json.loads(file_out)["findings"]
    assert len(want) == 28

    with FakeAPI(certs, pods) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json")
        assert rc == 1, err
        assert json.loads(out)["findings"] == want
        assert json.loads(out)["summary"]["pods"] == 14
        # Halved from 500 down to 7, each time from the start; then the rest from the token.
        assert limits(api) == [500, 250, 125, 62, 31, 15, 7, 7]
        assert starts(api) == [0] * 7 + [7]
        assert all(n > PAGE_MAX_BYTES for n in api.sizes[:6]) and all(n <= PAGE_MAX_BYTES for n in api.sizes[6:])
        assert err == ""

        # The table, as the issue ran it.
        api.requests.clear()
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc)
        assert rc == 1, err
        assert "14 pods in 1 namespace, 14 of them Spark pods; judged 14: 0 compliant, 14 with 28 findings." in out

        # --page-size is where the halving starts; the limit grows back after
        # the large pods, at the bytes per pod the last page had.
        small = [stored("spark35-driver.json", "team-b", f"small-{i}") for i in range(40)]
        api.pods = pods + small
        api.requests.clear()
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json", "--page-size", "20")
        assert rc == 1, err
        assert len(json.loads(out)["findings"]) == 28 + 80
        # (pods 10..19: four large and six small ones, about 16 to the half bound)
        assert limits(api) == [20, 10, 10, 16, 20]
        assert starts(api) == [0, 0, 10, 20, 36]


def test_api_a_pod_over_the_bound_is_named_and_the_run_completes(tmp_path, certs):
    """A pod whose answer passes the bound alone is a too-large finding,
    named from the head of the answer; the pods before and after it are
    judged, and the exit status is 1, not 2."""
    before = [stored("spark35-driver.json", "team-a", f"before-{i}") for i in range(2)]
    huge = big_pod("team-a", "huge-driver", PAGE_MAX_BYTES + 1_000_000)
    after = [stored("rogue-pod.json", "team-x", "rogue")] + \
        [compliant("spark35-driver.json", "team-d", f"after-{i}", model.load_policy(POLICY)) for i in range(2)]
    pods = before + [huge] + after
    _, others, _ = audit("--policy", POLICY, "--pods", write(tmp_path / "others.json", pod_list(before + after)),
                         "-o", "json")
    with FakeAPI(certs, pods) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json", "--page-size", "4")
        assert rc == 1, err
        doc = json.loads(out)
        f = finding(doc, "team-a", "huge-driver", "too-large")
        assert f["uid"] == huge["metadata"]["uid"] and f["role"] == "driver"
        assert f["appId"] == huge["metadata"]["labels"]["spark-app-selector"]
        assert f["expected"] == f"a pod the audit can read: at most {PAGE_MAX_BYTES} bytes as the API server sends it"
        assert f["found"] == f"more than {PAGE_MAX_BYTES} bytes (not judged)"
        assert [x for x in doc["findings"] if x["pod"] != "huge-driver"] == json.loads(others)["findings"]
        s = doc["summary"]
        assert s["pods"] == 6 and s["withFindings"] == 4 and s["compliant"] == 2
        assert s["problems"]["too-large"] == 1
        assert err == (f"audit: pod team-a/huge-driver: the API server's answer with it alone passes "
                       f"{PAGE_MAX_BYTES} bytes: not judged, reported as too-large\n")
        # [before-0, before-1] fit at half the page; the page from the huge
        # pod is halved to 1 and skipped with the token its head gave.
        assert limits(api) == [4, 2, 4, 2, 1, 1, 4]
        assert starts(api) == [0, 0, 2, 2, 2, 3, 4]

        # The table names it; a PolicyReport has its result.
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "--page-size", "4")
        assert rc == 1, err
        assert any(l.startswith("team-a ") and "huge-driver" in l and l.endswith("too-large")
                   for l in out.splitlines()), out
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "policyreport", "--page-size", "4")
        assert rc == 1, err
        reports = {r["metadata"]["namespace"]: r for r in json.loads(out)["items"]}
        for r in reports.values():
            check_report_shape(r)
        res = [r for r in reports["team-a"]["results"] if r["rule"] == "too-large"]
        assert len(res) == 1 and res[0]["resources"][0]["name"] == "huge-driver" and res[0]["severity"] == "high"

        # Last in its namespace's list (its answer gives no continue token):
        # the list ends there.
        api.requests.clear()
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json", "--namespace", "team-a",
                             "--page-size", "2")
        assert rc == 1, err
        got = findings_by_pod(json.loads(out))
        assert got[("team-a", "huge-driver")] == ["too-large"] and len(got) == 3
        assert limits(api, "/api/v1/namespaces/team-a/pods") == [2, 2, 1]

        # Alone, at the default page size: halved from 500 to 1.
        api.pods = [huge]
        api.requests.clear()
        rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, "-o", "json")
        assert rc == 1, err
        assert findings_by_pod(json.loads(out)) == {("team-a", "huge-driver"): ["too-large"]}
        assert limits(api) == [500, 250, 125, 62, 31, 15, 7, 3, 1]


def test_api_an_oversized_answer_that_names_nothing_is_an_error(tmp_path, certs):
    """A namespace list whose single item passes the bound cannot be read:
    exit 2, saying so (namespaces are never that large)."""
    nss = [{"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "huge", "annotations": {"x": "y" * (PAGE_MAX_BYTES + 10)}}}]
    with FakeAPI(certs, [stored("spark35-driver.json", "team-a", "d")], nss) as api:
        kc = kubeconfig(tmp_path / "kc", api.url, certs.ca, TOKEN)
        policy = tmp_path / "selectors.yaml"
        policy.write_text(SELECTOR_POLICY)
        rc, out, err = audit("--policy", policy, "--kubeconfig", kc, "--page-size", "1")
        assert rc == 2 and out == ""
        assert (f"audit: listing namespaces: GET /api/v1/namespaces?limit=1: one item alone passes "
                f"{PAGE_MAX_BYTES} bytes\n") == err, err


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------

def explain(*args):
    p = run_bin("explain", *map(str, args))
    err = p.stderr.decode(errors="replace")
    assert_no_sanitizer_report(err)
    return p.returncode, p.stdout.decode(errors="replace"), err


def changes(out: str, role: str) -> list[tuple[str, str]]:
    """The (kind, "K=V") lines printed for the driver or the executor."""
    block = out.split(f"A Spark {role} created in ", 1)[1].split("\nA Spark ", 1)[0]
    return [tuple(l.split(None, 1)) for l in block.splitlines()[1:]
            if l.startswith("    label ") or l.startswith("    env ")]


@pytest.mark.parametrize("ns", ["team-a", "team-b", "team-d", "team-e", "team-f"])
def test_explain_shows_what_the_policy_computes(ns):
    rule = model.rule_for(model.load_policy(POLICY), ns)
    rc, out, err = explain("--policy", POLICY, "--namespace", ns)
    assert rc == 0, err
    assert f"  rule        {ns}, from its entry under namespaces" in out
    assert f"  identity    {rule.identity}" in out
    assert f"  mode        {rule.mode}:" in out and f"  onConflict  {rule.on_conflict}:" in out
    assert f"  jvmEnv      {rule.jvm_env}:" in out
    assert f"A Spark driver created in {ns}: mutated. It gets:" in out
    home = [("env", f"JAVA_HOME={rule.java_home}")] if rule.java_home else []
    label = [("label", f"aadpodidbinding={rule.identity}")]
    if rule.jvm_env == "JAVA_TOOL_OPTIONS":
        drv = exe = label + home + [("env", "JAVA_TOOL_OPTIONS=" + " ".join(rule.flags))]
    else:
        drv = label + home + [("env", "SPARK_SUBMIT_OPTS=" + " ".join(rule.flags))]
        exe = label + home + [("env", f"SPARK_JAVA_OPT_{i}={f}") for i, f in enumerate(rule.flags)]
    assert changes(out, "driver") == drv
    assert changes(out, "executor") == exe


def test_explain_modes_and_namespaces_without_a_rule():
    rc, out, _ = explain("--policy", POLICY, "--namespace", "team-c")
    assert rc == 0
    assert "mode        audit: pods are admitted unchanged" in out
    assert "A Spark driver created in team-c: would-mutate (mode audit: admitted unchanged). Under enforce it would get:" in out
    assert ("label", "aadpodidbinding=c-spark") in changes(out, "driver")
    assert "warning: audit: would set label aadpodidbinding=c-spark" in out
    assert "onConflict  deny: a Spark pod with another identity is refused" in out

    rc, out, _ = explain("--policy", POLICY, "--namespace", "team-off")
    assert rc == 0 and "A Spark driver created in team-off: unchanged (mode off): admitted as it is." in out

    rc, out, _ = explain("--policy", POLICY, "--namespace", "team-x")
    assert rc == 0
    assert "rule        none: no entry under namespaces" in out
    assert "unmatched   allow" in out
    assert "A Spark driver created in team-x: unchanged: admitted as it is; nothing is added." in out

    rc, out, _ = explain("--policy", POLICY_UNMATCHED_DENY, "--namespace", "team-x")
    assert rc == 0
    assert "unmatched   deny: Spark pods are refused here" in out
    assert ("A Spark executor created in team-x: denied. Refused:\n    namespace team-x has no Spark identity in "
            "the policy, and the policy refuses Spark pods elsewhere (unmatched: deny)") in out


def test_explain_labels_and_annotations(tmp_path):
    policy = tmp_path / "selectors.yaml"
    policy.write_text(SELECTOR_POLICY)
    rc, out, _ = explain("--policy", policy, "--namespace", "lake", "--labels", "spark-identity.io/team=data,env=prod")
    assert rc == 0
    assert "rule        selector data, from the first selector whose namespaceSelector matches its labels" in out
    assert ("label", "aadpodidbinding=data-spark") in changes(out, "executor")

    rc, out, _ = explain("--policy", policy, "--namespace", "lake")
    assert rc == 0 and "rule        none" in out and "none were given (--labels, --annotations)" in out
    assert "A Spark driver created in lake: denied." in out

    rc, out, _ = explain("--policy", policy, "--namespace", "team-y", "--annotations",
                         "spark-identity.io/identity=y-spark,spark-identity.io/client-id=5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c")
    assert rc == 0
    assert "rule        annotations of team-y, from its spark-identity.io/ annotations, over defaults" in out
    drv = changes(out, "driver")
    assert ("label", "aadpodidbinding=y-spark") in drv
    assert any(v.startswith("SPARK_SUBMIT_OPTS=") and
               "-Dspark.hadoop.fs.azure.account.oauth2.client.id=5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c" in v
               for _, v in drv)

    rc, out, _ = explain("--policy", policy, "--namespace", "team-y", "--annotations",
                         "spark-identity.io/identity=y-spark,spark-identity.io/mode=sometimes")
    assert rc == 0
    assert "its spark-identity.io/ annotations make no valid rule: spark-identity.io/mode" in out
    assert "A Spark driver created in team-y: denied." in out


@pytest.mark.parametrize("args, message", [
    (["--namespace", "team-a"], "--policy is required"),
    (["--policy", "P"], "--namespace is required"),
    (["--policy", "P", "--namespace", "a", "--labels", "novalue"], "--labels wants key=value"),
    (["--policy", "P", "--namespace", "a", "--annotations", "=v"], "--annotations wants key=value"),
    (["--policy", "P", "--namespace", "a", "--what"], "unknown option --what"),
    (["--policy", "P", "--namespace", "a", "more"], "unexpected \"more\""),
])
def test_explain_usage_errors(args, message):
    rc, out, err = explain(*[str(POLICY) if a == "P" else a for a in args])
    assert rc == 2 and out == ""
    assert message in err, err


def test_explain_invalid_policy(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("namespaces:\n  team-a: {identity: 'a b'}\n")
    rc, _, err = explain("--policy", broken, "--namespace", "team-a")
    assert rc == 2 and "the policy is not valid" in err and f"{broken}:2:" in err


# ---------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------

def test_help_texts():
    p = run_bin("--help")
    top = p.stdout.decode()
    assert re.search(r"^  audit +find running pods that do not comply", top, re.M), top
    assert re.search(r"^  explain +show a namespace's rule", top, re.M), top
    for args in (["help", "audit"], ["audit", "--help"]):
        p = run_bin(*args)
        text = p.stdout.decode()
        assert p.returncode == 0
        for word in PROBLEMS + ["--pods FILE", "--kubeconfig FILE", "--in-cluster", "--namespaces FILE",
                                "policyreport", "kubectl apply -f -", "Exit status: 0", "--page-size",
                                "SPARK_IDENTITY_WEBHOOK_SA_DIR", f"at most {REPORT_MAX_RESULTS} per"]:
            assert word in text, word
    for args in (["help", "explain"], ["explain", "--help"]):
        p = run_bin(*args)
        text = p.stdout.decode()
        assert p.returncode == 0
        for word in ["--namespace NS", "--labels", "--annotations", "first match wins", "Example"]:
            assert word in text, word
