"""What users see from kubectl: refusals with our message, audit warnings,
server-side dry runs, and pods the webhook leaves alone."""
from __future__ import annotations

import json
import re

from harness import (create_pod, env_of, expected_spark_pod, fixture_object, get_pod, model,
                      spark_container, unique, warnings_of)


def _not_found(cluster, ns, name) -> bool:
    p = cluster.kubectl("get", "pod", "-n", ns, name, check=False)
    return p.returncode != 0 and "NotFound" in p.stderr


def test_a_pod_claiming_another_namespaces_identity_is_refused(kubectl, cluster, registration):
    pod = unique(fixture_object("rogue-pod.json"))  # not Spark; aadpodidbinding=sparkaks
    assert pod["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"
    p = create_pod(cluster, pod, "team-x", check=False)
    assert p.returncode != 0, f"created: {p.stdout}"
    assert "Error from server (Forbidden)" in p.stderr, p.stderr
    assert re.search(registration.denial_re(), p.stderr), p.stderr
    assert 'namespace team-x may not use Azure identity "sparkaks" (label aadpodidbinding)' in p.stderr, p.stderr
    assert _not_found(cluster, "team-x", pod["metadata"]["name"])


def test_a_spark_pod_may_not_claim_it_either_in_another_namespace(kubectl, cluster, registration):
    """A Spark driver in a namespace without an entry passes unchanged, but
    not with another namespace's identity on it."""
    pod = unique(fixture_object("spark35-driver.json"), "claim")
    pod["metadata"]["labels"]["aadpodidbinding"] = "sparkaks"
    p = create_pod(cluster, pod, "team-x", check=False)
    assert p.returncode != 0, f"created: {p.stdout}"
    assert re.search(registration.denial_re(), p.stderr), p.stderr
    assert "sparkaks" in p.stderr, p.stderr


def test_a_namespace_may_use_its_allowed_identities(kubectl, cluster):
    pod = fixture_object("api-pod-allowed.json")   # generateName, a ReplicaSet's pod
    pod["metadata"].pop("ownerReferences", None)
    ns = "team-a"
    assert pod["metadata"]["labels"]["aadpodidbinding"] == "team-a-api"
    p = create_pod(cluster, pod, ns, "-o", "json")
    assert not warnings_of(p), p.stderr
    stored = get_pod(cluster, ns, json.loads(p.stdout)["metadata"]["name"])
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]


def test_audit_mode_warns_on_kubectls_output_and_changes_nothing(kubectl, cluster, policy):
    ns = "team-c"
    pod = unique(fixture_object("spark35-driver.json"), "audit")
    p = create_pod(cluster, pod, ns)
    warnings = warnings_of(p)
    rule = model.rule_for(policy, ns)
    assert rule.mode == "audit"
    assert any(w.startswith("audit: ") for w in warnings), p.stderr
    assert f"audit: would set label aadpodidbinding={rule.identity}" in warnings, p.stderr
    stored = get_pod(cluster, ns, pod["metadata"]["name"])
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]
    assert env_of(spark_container(stored)) == env_of(spark_container(pod))


def test_audit_mode_warns_about_a_refusal_it_does_not_make(kubectl, cluster):
    """team-c has onConflict: deny, in audit mode: admitted, with a warning
    that it would have been refused."""
    ns = "team-c"
    pod = unique(fixture_object("spark35-driver.json"), "auditdeny")
    pod["metadata"]["labels"]["aadpodidbinding"] = "someone-else"
    p = create_pod(cluster, pod, ns)
    assert any(w.startswith("audit: ") and "someone-else" in w and "refused" in w
               for w in warnings_of(p)), p.stderr
    stored = get_pod(cluster, ns, pod["metadata"]["name"])
    assert stored["metadata"]["labels"]["aadpodidbinding"] == "someone-else"


def test_server_side_dry_run_returns_the_mutated_pod_and_stores_nothing(kubectl, cluster, policy):
    ns = "team-a"
    pod = unique(fixture_object("spark35-driver.json"), "dry")
    p = create_pod(cluster, pod, ns, "--dry-run=server", "-o", "json")
    got = json.loads(p.stdout)
    want = expected_spark_pod(pod, ns, policy)
    assert got["metadata"]["labels"] == want["metadata"]["labels"]
    assert env_of(spark_container(got)) == env_of(spark_container(want))
    assert _not_found(cluster, ns, pod["metadata"]["name"])


def test_a_pod_that_is_not_spark_comes_back_untouched(kubectl, cluster):
    ns = "team-a"
    pod = fixture_object("nginx-pod.json")   # generateName, a ReplicaSet's pod
    pod["metadata"].pop("ownerReferences", None)
    p = create_pod(cluster, pod, ns, "-o", "json")
    assert not warnings_of(p), p.stderr
    created = json.loads(p.stdout)
    stored = get_pod(cluster, ns, created["metadata"]["name"])
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]
    assert model.IDENTITY_LABEL not in stored["metadata"]["labels"]
    for c_sent, c_got in zip(pod["spec"]["containers"], stored["spec"]["containers"]):
        assert c_got.get("env") == c_sent.get("env")


def test_a_spark_pod_in_a_namespace_without_an_entry_comes_back_untouched(kubectl, cluster, policy):
    ns = "team-x"
    assert model.rule_for(policy, ns) is None and policy.get("unmatched") == "allow"
    pod = unique(fixture_object("spark35-driver.json"), "unmatched")
    create_pod(cluster, pod, ns)
    stored = get_pod(cluster, ns, pod["metadata"]["name"])
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]
    assert env_of(spark_container(stored)) == env_of(spark_container(pod))
