"""The `test` subcommand: a policy's declarative test cases. The suite
deploy/tests ships for deploy/policy.yaml passes; a wrong expectation
fails with exit 1 and shows the difference; malformed test files exit 2
with FILE:LINE:COL; -o json is JSON; and what a case sees is what `mutate`
answers for the same review."""
import base64
import copy
import json
import re
import shutil

import jsonpatch
import pytest

from conftest import FIXTURES, POLICY, ROOT, load_fixture, run_bin

DEPLOY_TESTS = ROOT / "deploy" / "tests"
SUMMARY = re.compile(r"^(\d+) cases?: (\d+) passed, (\d+) failed", re.M)


def run_tests(*args):
    p = run_bin("test", *args)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def summary(out):
    m = SUMMARY.search(out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def test_the_shipped_suite_passes():
    rc, out, err = run_tests(DEPLOY_TESTS)
    assert rc == 0, out + err
    total, passed, failed = summary(out)
    assert total == passed and failed == 0 and total >= 15
    rows = [l for l in out.splitlines() if re.match(r"^\d+ +\S.* (PASS|FAIL|ERROR)$", l)]
    assert len(rows) == total and all(l.rstrip().endswith("PASS") for l in rows)
    assert out.splitlines()[0].split() == ["#", "CASE", "FILE", "RESULT"]


def test_the_shipped_suite_covers_every_namespace_of_the_example_policy():
    text = (ROOT / "deploy" / "policy.yaml").read_text()
    listed = re.findall(r"^  ([a-z0-9-]+):\s*$", text.split("\nnamespaces:\n", 1)[1], re.M)
    assert listed
    suite = (DEPLOY_TESTS / "policy-test.yaml").read_text()
    tested = set(re.findall(r"namespace: \{name: ([a-z0-9-]+)", suite))
    assert set(listed) <= tested, set(listed) - tested
    assert tested - set(listed), "no case for a namespace the policy does not list"


def test_a_wrong_expectation_fails_and_shows_the_difference(tmp_path):
    suite = tmp_path / "suite"
    shutil.copytree(DEPLOY_TESTS, suite)
    shutil.copy(ROOT / "deploy" / "policy.yaml", tmp_path / "policy.yaml")
    f = suite / "policy-test.yaml"
    text = f.read_text()
    wrong = text.replace("      identity: sparkaks\n", "      identity: lake-spark\n", 1)
    assert wrong != text
    f.write_text(wrong)
    rc, out, err = run_tests(suite)
    assert rc == 1, out + err
    total, passed, failed = summary(out)
    assert failed == 1 and passed == total - 1
    lines = out.splitlines()
    row = next(i for i, l in enumerate(lines) if l.rstrip().endswith("FAIL"))
    assert "team-a driver gets sparkaks" in lines[row]
    assert f"{f}:" in lines[row]
    assert lines[row + 1].strip() == "identity: want lake-spark, got sparkaks"

    rc, out, err = run_tests("-o", "json", suite)
    assert rc == 1
    doc = json.loads(out)
    failed = [c for c in doc["cases"] if c["result"] == "FAIL"]
    assert len(failed) == 1
    assert failed[0]["differences"] == [{"field": "identity", "want": "lake-spark", "got": "sparkaks"}]
    assert failed[0]["got"]["identity"] == "sparkaks" and failed[0]["got"]["allowed"] is True


def test_json_output(tmp_path):
    rc, out, err = run_tests("--output", "json", DEPLOY_TESTS)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["summary"]["cases"] == len(doc["cases"]) == doc["summary"]["passed"]
    assert doc["summary"]["failed"] == doc["summary"]["errored"] == doc["summary"]["invalidFiles"] == 0
    assert doc["errors"] == []
    for i, c in enumerate(doc["cases"], 1):
        assert c["n"] == i and c["result"] == "PASS" and c["differences"] == []
        assert c["file"].endswith("policy-test.yaml") and c["line"] > 0 and c["name"]
        assert set(c["got"]) >= {"allowed", "identity", "patched", "warnings"}
    refused = [c for c in doc["cases"] if not c["got"]["allowed"]]
    assert refused and all(c["got"]["message"] for c in refused)


CASE = ("  - name: {name}\n    namespace: {{name: team-a}}\n    podFile: " + str(FIXTURES / "spark35-driver.json") +
        "\n    expect: {{allowed: true}}\n")

MALFORMED = [
    # (the test file, a line of the problems)
    ("policy: P\ncases:\n" + CASE.format(name="a").replace("allowed: true", "alowed: true"),
     ":6:14: cases[0].expect.alowed: unknown key"),
    ("policy: P\ncases:\n" + CASE.format(name="a") + "extra: 1\n", ":7:1: extra: unknown key"),
    ("policy: P\ncases: [\n", ":3:1: "),
    ("policy: P\ncases:\n" + CASE.format(name="a").replace("team-a", "Team_A"),
     ":4:23: cases[0].namespace.name: \"Team_A\" is not a namespace name"),
    ("policy:\n  namespaces:\n    team-a: {identity: sparkaks, mode: enforced}\ncases:\n" + CASE.format(name="a"),
     ":3:40: namespaces.team-a.mode: must be one of"),
    ("policy: no-such-policy.yaml\ncases:\n" + CASE.format(name="a"), ":1:9: policy: "),
    ("policy: P\ncases:\n" + CASE.format(name="a").replace(str(FIXTURES / "spark35-driver.json"), "nope.json"),
     ":3:5: cases: podFile: "),
]


@pytest.mark.parametrize("text,problem", MALFORMED)
def test_malformed_files_exit_2_with_their_place(tmp_path, text, problem):
    f = tmp_path / "bad-test.yaml"
    f.write_text(text.replace("policy: P\n", f"policy: {POLICY}\n"))
    rc, out, err = run_tests(f)
    assert rc == 2, out + err
    assert f"{f}{problem}" in err, err


def test_a_bad_file_does_not_stop_the_others(tmp_path):
    (tmp_path / "a-test.yaml").write_text(f"policy: {POLICY}\ncases:\n" + CASE.format(name="good"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b-test.yaml").write_text(f"policy: {POLICY}\ncases:\n  - nam: x\n")
    (tmp_path / "sub" / "tests.yaml").write_text("garbage: [\n")   # not *-test.yaml: not read
    rc, out, err = run_tests(tmp_path)
    assert rc == 2
    assert summary(out) == (1, 1, 0)
    assert f"{tmp_path}/sub/b-test.yaml:3:5: cases[0].nam: unknown key" in err
    assert "; 1 test file not valid (the problems are on stderr)" in out
    rc, out, err = run_tests("-o", "json", tmp_path)
    doc = json.loads(out)
    assert rc == 2 and doc["summary"]["invalidFiles"] == 1 and doc["summary"]["passed"] == 1
    assert any("cases[0].nam: unknown key" in e for e in doc["errors"]) and "cases[0].nam" in err
    assert "tests.yaml" not in err + out


def test_usage_errors(tmp_path):
    for args, says in [((), "name a test file or a directory"),
                       (("-o", "xml", DEPLOY_TESTS), "-o wants table or json"),
                       ((tmp_path / "missing",), "No such file"),
                       ((tmp_path,), "no file named *-test.yaml"),
                       (("--nope", DEPLOY_TESTS), "unknown option --nope")]:
        rc, out, err = run_tests(*args)
        assert rc == 2 and says in err, (args, err)
    p = run_bin("help", "test")
    assert p.returncode == 0 and b"Usage: spark-identity-webhook test" in p.stdout
    assert b"test" in run_bin("--help").stdout


def _mutate(review):
    p = run_bin("mutate", "--policy", POLICY, "-", input=json.dumps(review).encode())
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["response"]


def _spark_container(pod):
    for c in pod["spec"]["containers"]:
        if c["name"] in ("spark-kubernetes-driver", "spark-kubernetes-executor", "executor"):
            return c
    return None


CROSS_FIXTURES = ["spark35-driver.json", "spark35-executor.json", "spark24-executor.json",
                  "spark35-driver-template-sidecar-first.json", "spark35-driver-foreign-identity.json",
                  "spark40-driver.json", "nginx-pod.json", "api-pod-allowed.json", "rogue-pod.json"]
CROSS_NAMESPACES = ["team-a", "team-b", "team-c", "team-d", "team-e", "team-f", "team-off", "elsewhere"]


def test_cases_agree_with_mutate(tmp_path):
    """Cases whose expectations are what `mutate` answers for the same review
    all pass; the same cases expecting the opposite decision all fail."""
    cases, flipped = [], []
    for name in CROSS_FIXTURES:
        for ns in CROSS_NAMESPACES:
            review = copy.deepcopy(load_fixture(name))
            review["request"]["namespace"] = ns
            review["request"]["object"].setdefault("metadata", {})["namespace"] = ns
            resp = _mutate(review)
            pod = review["request"]["object"]
            if "patch" in resp:
                pod = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))
            expect = {"allowed": resp["allowed"], "patched": "patch" in resp,
                      "identity": pod["metadata"].get("labels", {}).get("aadpodidbinding", "none"),
                      "warnings": resp.get("warnings", [])}
            ctr = _spark_container(pod)
            if ctr is not None:
                env = {e["name"]: e.get("value", "") for e in ctr.get("env", []) if "valueFrom" not in e}
                expect["env"] = {k: env.get(k) for k in ("JAVA_HOME", "SPARK_SUBMIT_OPTS", "SPARK_JAVA_OPT_1")}
            if not resp["allowed"]:
                expect["message"] = resp["status"]["message"]
            case = {"name": f"{name} in {ns}", "namespace": {"name": ns}, "podFile": str(FIXTURES / name),
                    "expect": expect}
            cases.append(case)
            flipped.append({**case, "expect": {"allowed": not resp["allowed"]}})
    f = tmp_path / "cross-test.yaml"
    f.write_text(json.dumps({"policy": str(POLICY), "cases": cases}, indent=1))
    rc, out, err = run_tests("-o", "json", f)
    doc = json.loads(out)
    bad = [c for c in doc["cases"] if c["result"] != "PASS"]
    assert rc == 0 and not bad, (err, bad[:3])
    assert len(doc["cases"]) == len(CROSS_FIXTURES) * len(CROSS_NAMESPACES)
    assert any(not c["got"]["allowed"] for c in doc["cases"]) and any(c["got"]["patched"] for c in doc["cases"])

    f.write_text(json.dumps({"policy": str(POLICY), "cases": flipped}, indent=1))
    rc, out, err = run_tests("-o", "json", f)
    doc = json.loads(out)
    assert rc == 1 and all(c["result"] == "FAIL" for c in doc["cases"])
    assert all(c["differences"][0]["field"] == "allowed" for c in doc["cases"])


def test_directories_are_searched_in_order_without_hidden_ones_or_links(tmp_path):
    for rel in ("b/z-test.yaml", "a/y-test.yaml", "x-test.yaml", ".hidden/h-test.yaml"):
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"policy: {POLICY}\ncases:\n" + CASE.format(name=rel.replace("/", "-")))
    (tmp_path / "b" / "loop").symlink_to(tmp_path)   # not followed: no loop, no second run
    rc, out, err = run_tests("-o", "json", tmp_path)
    assert rc == 0, err
    names = [c["name"] for c in json.loads(out)["cases"]]
    assert names == ["a-y-test.yaml", "b-z-test.yaml", "x-test.yaml"]


def test_namespace_cases_judge_grant_keys(tmp_path):
    f = tmp_path / "grants-test.yaml"
    f.write_text(
        "policy:\n"
        "  namespaceAnnotations: true\n"
        "  grantors: [platform-bot, 'group:platform-admins']\n"
        "  namespaces: {team-a: {identity: sparkaks}}\n"
        "cases:\n"
        "  - name: alice may not give team-x an identity\n"
        "    namespace: {name: team-x, annotations: {spark-identity.io/identity: sparkaks}}\n"
        "    userInfo: {username: alice}\n"
        "    expect: {allowed: false, message: spark-identity.io/identity}\n"
        "  - name: a platform admin may\n"
        "    namespace:\n"
        "      name: team-x\n"
        "      annotations: {spark-identity.io/identity: x-spark,\n"
        "                    spark-identity.io/client-id: 66666666-7777-4888-9999-aaaaaaaaaaaa}\n"
        "    userInfo: {username: bob, groups: [platform-admins]}\n"
        "    expect: {allowed: true, patched: false}\n"
        "  - name: alice may not remove it either (wrong on purpose)\n"
        "    operation: UPDATE\n"
        "    namespace: {name: team-x}\n"
        "    oldNamespace: {annotations: {spark-identity.io/identity: x-spark}}\n"
        "    userInfo: {username: alice}\n"
        "    expect: {allowed: true}\n")
    rc, out, err = run_tests("-o", "json", f)
    assert rc == 1, err
    cases = json.loads(out)["cases"]
    assert [c["result"] for c in cases] == ["PASS", "PASS", "FAIL"]
    assert cases[2]["differences"][0]["field"] == "allowed"
    assert "spark-identity.io/identity" in cases[2]["differences"][0]["got"]
    assert "identity" not in cases[0]["got"]


def test_the_readme_example_runs(tmp_path):
    """README's example test file, next to the example policy (annotations
    read, for its namespace case) and the shipped driver: every case passes."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Testing a policy\n", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    (tmp_path / "policy.yaml").write_text((ROOT / "deploy" / "policy.yaml").read_text() +
                                          "namespaceAnnotations: true\n")
    (tmp_path / "tests" / "pods").mkdir(parents=True)
    shutil.copy(DEPLOY_TESTS / "pods" / "spark-driver.yaml", tmp_path / "tests" / "pods")
    (tmp_path / "tests" / "readme-test.yaml").write_text(example)
    rc, out, err = run_tests(tmp_path / "tests")
    assert rc == 0, out + err
    assert summary(out) == (3, 3, 0)
