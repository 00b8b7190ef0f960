"""A namespace without a rule is written one way per kind of output: the word
`none` where the output is text or a map of strings (tables, explain, the API
server's audit annotations, PolicyReport properties), `null` in JSON
documents (the decision log, audit -o json). Never absent, never `-`."""
import copy
import json
import uuid

from conftest import POLICY_UNMATCHED_DENY, ROOT, Server, fresh, load_fixture, run_bin
from test_audit_trail import decisions, wait_for

NO_RULE = "team-x"   # named nowhere in either fixture policy


def rogue_review() -> dict:
    r = fresh(load_fixture("rogue-pod.json"))
    assert r["request"]["namespace"] == NO_RULE
    return r


def pods_file(tmp_path):
    """A Spark driver stored in a namespace without a rule, which
    unmatched: deny refuses: a no-policy finding."""
    pod = copy.deepcopy(load_fixture("spark35-driver.json")["request"]["object"])
    pod["metadata"].pop("generateName", None)
    pod["metadata"].update(namespace=NO_RULE, name="unmatched-driver", uid=str(uuid.uuid4()))
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod]}))
    return path


def audit(*args):
    p = run_bin("audit", "--policy", POLICY_UNMATCHED_DENY, *args)
    return p.returncode, p.stdout.decode()


def test_decision_log_says_null_and_audit_annotations_say_none(tmp_path, certs, workdir):
    log = tmp_path / "decisions.log"
    s = Server("no-rule", certs, ROOT / "tests" / "fixtures" / "policy.yaml", workdir,
               extra=["--audit-log", log]).start()
    try:
        r = s.client().review(rogue_review())["response"]
        assert r["allowed"] is False and r["auditAnnotations"]["rule"] == "none", r
        d = wait_for(lambda: decisions(log))[-1]
        assert d["namespace"] == NO_RULE
        assert "rule" in d and d["rule"] is None, d
    finally:
        s.stop()


def test_audit_table_says_none_json_null_policyreport_none(tmp_path):
    pods = pods_file(tmp_path)
    rc, table = audit("--pods", pods)
    assert rc == 1, table
    summary = table.splitlines()
    head = next(i for i, l in enumerate(summary) if l.startswith("NAMESPACE  RULE"))
    row = summary[head + 1].split()
    assert row[:3] == [NO_RULE, "none", "enforce"], summary[head + 1]
    assert " - " not in summary[head + 1]

    rc, out = audit("--pods", pods, "-o", "json")
    doc = json.loads(out)
    ns = next(n for n in doc["summary"]["namespaces"] if n["namespace"] == NO_RULE)
    assert "rule" in ns and ns["rule"] is None
    f = doc["findings"][0]
    assert f["problem"] == "no-policy" and "rule" in f and f["rule"] is None

    rc, out = audit("--pods", pods, "-o", "policyreport")
    reports = json.loads(out) if out.lstrip().startswith("{") else None
    assert reports, out[:200]
    results = [res for r in reports["items"] for res in r.get("results", [])]
    assert results and all(res["properties"]["rule"] == "none" for res in results), results


def test_explain_says_none():
    p = run_bin("explain", "--policy", POLICY_UNMATCHED_DENY, "--namespace", NO_RULE)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert "  rule        none: no entry under namespaces" in out, out
