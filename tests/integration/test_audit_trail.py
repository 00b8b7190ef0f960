"""What auditors and monitoring get: the decision lines (to stderr or
--audit-log, which survives logrotate), the API server's audit annotations
in every answer that matters, and Prometheus metrics on the HTTPS port and on
--metrics-listen."""
from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request

from conftest import ROOT, Server, fresh, free_port, in_namespace, load_fixture

POLICY = ROOT / "tests" / "fixtures" / "policy.yaml"


def decisions(path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if d.get("msg") == "admission":
            out.append(d)
    return out


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def test_audit_annotations_say_identity_decision_rule_and_policy(client):
    sha = json.loads(client.request("GET", "/readyz")[2])["policySha256"]
    r = client.review(fresh(load_fixture("spark35-driver.json")))["response"]
    assert r["auditAnnotations"] == {"identity": "sparkaks", "decision": "mutated", "rule": "team-a",
                                     "policy-sha256": sha}
    for k, v in r["auditAnnotations"].items():
        assert "/" not in k and len(k) <= 63
    r = client.review(fresh(load_fixture("rogue-pod.json")))["response"]
    assert r["allowed"] is False
    assert r["auditAnnotations"]["decision"] == "denied" and r["auditAnnotations"]["rule"] == "none"
    # A pod that neither runs Spark nor claims an identity: nothing to record.
    r = client.review(fresh(load_fixture("nginx-pod.json")))["response"]
    assert "auditAnnotations" not in r
    for w in client.review(in_namespace(fresh(load_fixture("spark35-driver.json")), "team-c"))["response"]["warnings"]:
        assert len(w) < 120


def test_audit_log_file_has_every_field_and_follows_logrotate(tmp_path, certs, workdir):
    log = tmp_path / "decisions.log"
    s = Server("audit-log", certs, POLICY, workdir, extra=["--audit-log", log]).start()
    try:
        c = s.client()
        review = fresh(load_fixture("spark35-driver.json"))
        review["request"]["userInfo"]["groups"] = ["system:serviceaccounts", "airflow"]
        c.review(review)
        d = wait_for(lambda: decisions(log))[-1]
        sha = json.loads(c.request("GET", "/readyz")[2])["policySha256"]
        pod = review["request"]["object"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["time"])
        assert d["uid"] == review["request"]["uid"]
        assert d["namespace"] == "team-a" and d["pod"] == pod["metadata"]["name"]
        assert d["role"] == "driver"
        assert d["appId"] == pod["metadata"]["labels"]["spark-app-selector"]
        assert d["appName"] == pod["metadata"]["labels"]["spark-app-name"]
        assert d["user"] == review["request"]["userInfo"]["username"]
        assert d["groups"] == ["system:serviceaccounts", "airflow"]
        assert d["operation"] == "CREATE" and d["dryRun"] is False
        assert d["rule"] == "team-a" and d["policySha256"] == sha and d["mode"] == "enforce"
        assert d["decision"] == "mutated" and d["identity"] == "sparkaks" and "identityBefore" not in d
        assert d["changes"] == len(d["patch"]) and d["patch"][0]["path"] == "/metadata/labels/aadpodidbinding"
        # The changes counted by kind: the label, and the driver's env.
        assert d["changeKinds"] == {"setIdentityLabel": 1, "addEnv": 2}
        assert isinstance(d["micros"], int) and d["micros"] >= 0
        # Decisions go to the file, not to stderr; nothing secret goes anywhere.
        assert '"msg":"admission"' not in s.stderr(200)
        text = log.read_text()
        assert "PRIVATE KEY" not in text and "Bearer" not in text

        # logrotate: the file is moved away; the server notices and opens a
        # new one, and the next decision goes there. Nothing is lost.
        log.rename(tmp_path / "decisions.log.1")
        assert wait_for(lambda: log.exists()), "no new audit log after the rename"
        c.review(fresh(load_fixture("spark35-executor.json")))
        assert wait_for(lambda: decisions(log)), "the decision did not reach the new audit log"
        assert decisions(log)[-1]["role"] == "executor"
        assert decisions(log)[-1]["changeKinds"] == {"setIdentityLabel": 1, "addEnv": 1, "addJavaOpt": 4}
        assert len(decisions(tmp_path / "decisions.log.1")) == 1
        # SIGHUP reopens too.
        log.rename(tmp_path / "decisions.log.2")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: log.exists()), "SIGHUP did not reopen the audit log"
    finally:
        s.stop()


def main_thread_wakeups(pid: int) -> int:
    """How often the server's main thread (its signal, inotify and reload
    loop) has slept and been woken."""
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


def test_decision_lines_do_not_wake_the_main_loop(tmp_path, certs, workdir):
    # The log beside the policy: both in one watched directory, where a
    # watch for writes would see every decision line.
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(POLICY.read_bytes())
    log = tmp_path / "decisions.log"
    s = Server("audit-wakeups", certs, policy, workdir, extra=["--audit-log", log]).start()
    try:
        c = s.client()
        review = load_fixture("spark35-driver.json")
        c.review(fresh(review))
        assert wait_for(lambda: decisions(log))
        before, t0 = main_thread_wakeups(s.proc.pid), time.monotonic()
        for _ in range(200):
            c.review(fresh(review))
        assert wait_for(lambda: len(decisions(log)) == 201)
        woken, seconds = main_thread_wakeups(s.proc.pid) - before, time.monotonic() - t0
        # Only the poll, every 2 s; a wake per line would be about 200.
        assert woken <= seconds / 2 + 5, f"the main loop woke {woken} times in {seconds:.1f} s for 200 decision lines"
        # Still follows logrotate, and a policy written in place.
        log.rename(tmp_path / "decisions.log.1")
        assert wait_for(lambda: log.exists(), timeout=1.5), "no new audit log soon after the rename"
        policy.write_text(POLICY.read_text() + "# edited\n")
        assert wait_for(lambda: "policy reloaded" in s.stderr(200), timeout=1.5), s.stderr(200)
    finally:
        s.stop()


def scrape(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_on_the_https_port_and_on_metrics_listen(certs, workdir):
    port = free_port()
    s = Server("metrics", certs, POLICY, workdir, extra=["--metrics-listen", f"127.0.0.1:{port}"]).start()
    try:
        c = s.client()
        before = scrape(c.request("GET", "/metrics")[2].decode())
        c.review(fresh(load_fixture("spark35-driver.json")))
        c.review(fresh(load_fixture("rogue-pod.json")))
        c.post_raw(b"{}", content_type="text/plain")
        c.post_raw(b"not json")
        st, hdrs, body = c.request("GET", "/metrics")
        assert st == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
        after = scrape(body.decode())
        key = 'spark_identity_webhook_admission_requests_total{decision="mutated",role="driver"}'
        assert after[key] == before.get(key, 0) + 1
        key = 'spark_identity_webhook_admission_requests_total{decision="denied",role="none"}'
        assert after[key] == before.get(key, 0) + 1
        assert after['spark_identity_webhook_bad_requests_total{code="415"}'] >= 1
        assert after['spark_identity_webhook_bad_requests_total{code="400"}'] >= 1
        assert 'spark_identity_webhook_admission_duration_seconds_bucket{le="5e-05"}' in after
        assert after['spark_identity_webhook_admission_duration_seconds_bucket{le="+Inf"}'] == \
            after["spark_identity_webhook_admission_duration_seconds_count"]
        sha = json.loads(c.request("GET", "/readyz")[2])["policySha256"]
        assert after[f'spark_identity_webhook_policy_info{{sha256="{sha}"}}'] == 1
        assert after["spark_identity_webhook_certificate_expiry_timestamp_seconds"] > time.time()
        assert 'spark_identity_webhook_build_info{version="0.1.0"}' in after

        plain = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert plain.status == 200 and b"spark_identity_webhook_build_info" in plain.read()
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/mutate", data=b"{}",
                                                          headers={"Content-Type": "application/json"}),
                                   timeout=5)
            raise AssertionError("the metrics port answered /mutate")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        s.stop()


def _validate(c, review: dict) -> dict:
    st, _, body = c.request("POST", "/validate", json.dumps(review).encode(), {"Content-Type": "application/json"})
    assert st == 200, body
    return json.loads(body)["response"]


def test_judged_updates_and_the_validating_path_are_on_record(tmp_path, certs, workdir):
    """Every judged UPDATE is a decision line: operation UPDATE, the label
    before (oldObject's) and after, the decision; /validate says so too."""
    log = tmp_path / "decisions.log"
    s = Server("audit-update", certs, POLICY, workdir, extra=["--audit-log", log]).start()
    try:
        c = s.client()
        rv = in_namespace(fresh(load_fixture("rogue-pod.json")), "team-b")
        req = rv["request"]
        req["operation"] = "UPDATE"
        req["oldObject"] = json.loads(json.dumps(req["object"]))
        req["oldObject"]["metadata"]["labels"]["aadpodidbinding"] = "team-b-spark"
        req["subResource"] = "status"
        r = _validate(c, rv)
        assert r["allowed"] is False and "patch" not in r
        assert r["status"]["message"].startswith('namespace team-b may not use Azure identity "sparkaks"')
        d = wait_for(lambda: decisions(log))[-1]
        assert d["uid"] == req["uid"] and d["operation"] == "UPDATE" and d["webhook"] == "validate"
        assert d["subResource"] == "status"
        assert d["identityBefore"] == "team-b-spark" and d["identity"] == "sparkaks"
        assert d["decision"] == "denied" and d["reason"] == r["status"]["message"]
        assert r["auditAnnotations"]["decision"] == "denied"

        # The same label left as it was: allowed, and on record as unchanged.
        req["oldObject"]["metadata"]["labels"]["aadpodidbinding"] = "sparkaks"
        req["uid"] = "7d0b8a54-2f8e-4f57-9b1e-3c1e2a0f9d11"
        assert _validate(c, rv)["allowed"] is True
        d = wait_for(lambda: [x for x in decisions(log) if x["uid"] == req["uid"]])[-1]
        assert d["decision"] == "unchanged" and d["identityBefore"] == d["identity"] == "sparkaks"
    finally:
        s.stop()
