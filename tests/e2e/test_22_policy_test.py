"""`spark-identity-webhook test` predicts what the real API server does: pods
of the fixtures are created (`--dry-run=server`) in the test namespaces
through the webhook the API server calls, and a test file whose cases expect
exactly what came back (allowed or refused and why, the stored label, the
Spark container's env, the warnings) passes with the policy the server
serves, offline."""
from __future__ import annotations

import json
import subprocess

from harness import (NAMESPACES, POLICY, WEBHOOK_BIN, create_pod, fixture_object, spark_container, unique,
                     warnings_of)

FIXTURES = ["spark35-driver.json", "spark35-executor.json", "spark40-driver.json", "nginx-pod.json",
            "rogue-pod.json", "api-pod-allowed.json", "spark35-driver-foreign-identity.json"]
ENV = ["JAVA_HOME", "SPARK_SUBMIT_OPTS", "SPARK_JAVA_OPT_1", "AZURE_CLIENT_ID"]
DENIED = "denied the request: "


def _what_the_api_server_did(cluster, pod: dict, ns: str) -> dict:
    """The expectations of a case: what creating `pod` in `ns` answered."""
    p = create_pod(cluster, pod, ns, "--dry-run=server", "-o", "json", check=False)
    if p.returncode != 0:
        assert DENIED in p.stderr, p.stderr
        return {"allowed": False, "message": p.stderr.split(DENIED, 1)[1].strip()}
    got = json.loads(p.stdout)
    expect = {"allowed": True,
              "identity": got["metadata"].get("labels", {}).get("aadpodidbinding", "none"),
              "warnings": warnings_of(p)}
    if got["metadata"].get("labels", {}).get("spark-role"):
        env = {e["name"]: e for e in spark_container(got).get("env", [])}
        expect["env"] = {k: (env[k].get("value", "") if "valueFrom" not in env[k] else "(valueFrom)")
                         if k in env else None for k in ENV}
    return expect


def test_cases_made_from_the_api_servers_answers_pass_offline(kubectl, cluster, tmp_path):
    cases = []
    for ns in NAMESPACES:
        meta = cluster.kubectl_json("get", "namespace", ns)["metadata"]
        namespace = {"name": ns, "labels": meta.get("labels", {}), "annotations": meta.get("annotations", {})}
        for name in FIXTURES:
            pod = unique(fixture_object(name), "ptest")
            pod["metadata"].pop("ownerReferences", None)
            for key in ("serviceAccountName", "serviceAccount"):   # the accounts the namespaces have
                if key in pod["spec"]:
                    pod["spec"][key] = "spark"
            pod_file = tmp_path / f"{ns}-{name}"
            pod_file.write_text(json.dumps(pod))
            cases.append({"name": f"{name} in {ns}", "namespace": namespace, "podFile": pod_file.name,
                          "expect": _what_the_api_server_did(cluster, pod, ns)})
    test_file = tmp_path / "cluster-test.yaml"
    test_file.write_text(json.dumps({"policy": str(POLICY), "cases": cases}, indent=1))
    p = subprocess.run([str(WEBHOOK_BIN), "test", "-o", "json", str(test_file)], capture_output=True, text=True,
                       timeout=60)
    doc = json.loads(p.stdout)
    failed = [c for c in doc["cases"] if c["result"] != "PASS"]
    assert p.returncode == 0 and not failed, (p.stderr, failed[:3])
    assert len(doc["cases"]) == len(NAMESPACES) * len(FIXTURES)
    # Not all alike: refusals, patches and warnings are among them.
    assert any(not c["expect"]["allowed"] for c in cases)
    assert any(c["expect"].get("identity") not in (None, "none") for c in cases)
    assert any(c["expect"].get("warnings") for c in cases)
