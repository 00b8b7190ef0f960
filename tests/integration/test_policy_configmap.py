"""The policy ConfigMap's own validating webhook (POST /validate-policy): a
ConfigMap whose policy key does not load is refused (422 Invalid) with the
lines `check-policy` prints, the key standing for the file; one that loads,
other objects, DELETE and a ConfigMap without the key are allowed. And a
refused reload: /readyz stays ready on the old policy but says so, and two
gauges say it too, until a policy that loads is written back."""
import json
import re
import shutil
import subprocess
import time
import uuid

from conftest import BIN, ROOT, Server, load_fixture

POLICY_TEXT = (ROOT / "tests" / "fixtures" / "policy.yaml").read_text()
BROKEN = "namespaces:\n  team-a: {identity: \"two words\", mode: loud}\n"
PATH = "/validate-policy?timeout=10s"


def configmap_review(data: dict | None, operation: str = "CREATE", old_data: dict | None = None,
                     resource: str = "configmaps") -> dict:
    review = load_fixture("configmap-create.json")
    req = review["request"]
    req["uid"] = str(uuid.uuid4())
    req["operation"] = operation
    req["resource"]["resource"] = resource
    req["namespace"] = "spark-identity-system"
    req["name"] = "spark-identity-policy"
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "spark-identity-policy", "namespace": "spark-identity-system"}}
    if data is not None:
        obj["data"] = data
    req["object"] = None if operation == "DELETE" else obj
    old = dict(obj)
    if old_data is not None:
        old["data"] = old_data
    req["oldObject"] = old if operation in ("UPDATE", "DELETE") else None
    return review


def judged(client, review: dict) -> dict:
    """POSTs the review to /validate-policy: the answer's response, after
    the envelope's checks (a refusal here is 422 Invalid, not conftest's 403)."""
    st, hdrs, data = client.post_raw(json.dumps(review).encode(), PATH)
    assert st == 200 and hdrs["content-type"].startswith("application/json"), (st, data[:300])
    out = json.loads(data)
    assert out["apiVersion"] == review["apiVersion"] and out["kind"] == "AdmissionReview", out
    r = out["response"]
    assert r["uid"] == review["request"]["uid"] and isinstance(r["allowed"], bool), r
    assert "patch" not in r and "patchType" not in r, r
    if not r["allowed"]:
        assert r["status"]["code"] == 422 and r["status"]["reason"] == "Invalid", r
    return r


def check_policy_lines(tmp_path, text: str) -> list[str]:
    """What `check-policy policy.yaml` prints for the text, run where the
    file is so that its name is the ConfigMap's key."""
    d = tmp_path / "cp"
    d.mkdir(exist_ok=True)
    (d / "policy.yaml").write_text(text)
    p = subprocess.run([str(BIN.resolve()), "check-policy", "policy.yaml"], cwd=d, capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stdout
    return p.stdout.splitlines()


def test_a_policy_that_does_not_load_is_refused_with_check_policys_lines(client, tmp_path):
    r = judged(client, configmap_review({"policy.yaml": BROKEN}))
    assert r["allowed"] is False
    assert r["status"]["code"] == 422 and r["status"]["reason"] == "Invalid"
    lines = r["status"]["message"].splitlines()
    assert lines == check_policy_lines(tmp_path, BROKEN)
    assert all(re.match(r"policy\.yaml:\d+:\d+: ", line) for line in lines), lines
    assert "patch" not in r


def test_an_update_to_a_broken_policy_is_refused_and_one_that_loads_allowed(client):
    r = judged(client, configmap_review({"policy.yaml": BROKEN}, "UPDATE", {"policy.yaml": POLICY_TEXT}))
    assert r["allowed"] is False
    r = judged(client, configmap_review({"policy.yaml": POLICY_TEXT}, "UPDATE", {"policy.yaml": BROKEN}))
    assert r["allowed"] is True


def test_a_policy_that_loads_is_allowed(client):
    r = judged(client, configmap_review({"policy.yaml": POLICY_TEXT, "README": "x"}))
    assert r["allowed"] is True and "status" not in r and "patch" not in r


def test_what_carries_no_new_policy_is_allowed(client):
    cases = [
        configmap_review({"other.yaml": BROKEN}),                                   # no policy key
        configmap_review(None),                                                      # no data at all
        configmap_review({"policy.yaml": BROKEN}, "DELETE"),                         # a deletion
        configmap_review({"policy.yaml": BROKEN}, resource="secrets"),               # not a ConfigMap
        configmap_review({"policy.yaml": BROKEN, "x": "1"}, "UPDATE", {"policy.yaml": BROKEN}),  # unchanged
    ]
    for review in cases:
        r = judged(client, review)
        assert r["allowed"] is True, review["request"]


def test_many_problems_are_bounded(client):
    text = "namespaces:\n" + "".join(f"  team-{i}: {{identity: \"bad {i}\"}}\n" for i in range(400))
    r = judged(client, configmap_review({"policy.yaml": text}))
    msg = r["status"]["message"]
    assert r["allowed"] is False and len(msg) <= 4096
    assert re.search(r"more lines \(check-policy prints them all\)$", msg), msg[-200:]


def test_a_policy_too_large_to_load_within_the_parse_bound_is_a_413(client):
    """The largest input: a policy whose YAML makes a node per two bytes
    (a flow sequence of 1s) takes far more than the review's parse bound to
    load. It is answered 413 naming the bound, not loaded without one (the
    webhook's failurePolicy Ignore lets it through, and the reload judges
    it), and the server goes on answering."""
    text = "namespaces: [" + "1," * 150_000 + "1]\n"
    st, _, data = client.post_raw(json.dumps(configmap_review({"policy.yaml": text})).encode(), PATH)
    assert st == 413, (st, data[:300])
    status = json.loads(data)
    assert status["kind"] == "Status" and status["code"] == 413 and "to parse" in status["message"], status
    r = judged(client, configmap_review({"policy.yaml": POLICY_TEXT}))
    assert r["allowed"] is True


def test_a_body_that_is_not_a_review_is_a_400(client):
    st, _, body = client.post_raw(b'{"kind":"Pod"}', PATH)
    assert st == 400 and json.loads(body)["kind"] == "Status"


def test_get_on_the_path_is_a_405(client):
    st, hdrs, _ = client.request("GET", "/validate-policy")
    assert st == 405 and hdrs.get("allow") == "POST"


def metric(client, name: str) -> float:
    text = client.request("GET", "/metrics")[2].decode()
    m = re.search(rf"^spark_identity_webhook_{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def test_a_refused_reload_is_in_readyz_and_the_metrics(certs, workdir):
    d = workdir / "reload-failing"
    d.mkdir()
    pol = d / "policy.yaml"
    shutil.copy(ROOT / "tests" / "fixtures" / "policy.yaml", pol)
    started = time.time()
    s = Server("reload-failing", certs, pol, workdir).start()
    try:
        c = s.client()
        st, _, body = c.request("GET", "/readyz")
        ready = json.loads(body)
        assert st == 200 and ready["policyReloadFailing"] is False and "policyRefused" not in ready
        assert metric(c, "policy_reload_failing") == 0
        loaded_at = metric(c, "policy_last_reload_success_timestamp_seconds")
        assert started - 2 <= loaded_at <= time.time() + 1
        sha = ready["policySha256"]

        pol.write_text(BROKEN)
        assert wait_for(lambda: json.loads(c.request("GET", "/readyz")[2])["policyReloadFailing"]), s.stderr()
        st, _, body = c.request("GET", "/readyz")
        ready = json.loads(body)
        assert st == 200 and ready["status"] == "ready" and ready["policySha256"] == sha
        first = check_policy_lines(workdir, BROKEN)[0].split(":", 1)[1]   # LINE:COL: ... without the file
        assert ready["policyRefused"] == f"{pol}:{first}"
        assert metric(c, "policy_reload_failing") == 1
        assert metric(c, "policy_last_reload_success_timestamp_seconds") == loaded_at
        assert metric(c, 'policy_reloads_total{result="failed"}') >= 1

        time.sleep(1.1)   # the timestamp is in seconds: the good load must move it
        shutil.copy(ROOT / "tests" / "fixtures" / "policy.yaml", pol)   # the same policy as before
        assert wait_for(lambda: not json.loads(c.request("GET", "/readyz")[2])["policyReloadFailing"]), s.stderr()
        ready = json.loads(c.request("GET", "/readyz")[2])
        assert "policyRefused" not in ready and ready["policySha256"] == sha
        assert metric(c, "policy_reload_failing") == 0
        assert metric(c, "policy_last_reload_success_timestamp_seconds") > loaded_at
    finally:
        s.stop()
