"""Our auditAnnotations reach the API server's own audit log: each pod
CREATE the webhook judged carries, under the webhook's name, the identity,
the decision, the rule and the policy's sha256 (issue 5)."""
from __future__ import annotations

import json

from harness import create_pod, fixture_object, unique


def _create_event(cluster, ns: str, name: str) -> dict:
    events = [e for e in cluster.audit_events()
              if e.get("verb") == "create" and e.get("stage") == "ResponseComplete"
              and (e.get("objectRef") or {}).get("resource") == "pods"
              and (e.get("objectRef") or {}).get("namespace") == ns
              and (e.get("objectRef") or {}).get("name") == name]
    assert len(events) == 1, f"{len(events)} audit events for creating {name}"
    return events[0]


def test_audit_annotations_of_a_mutated_spark_pod(kubectl, cluster, webhook, registration):
    pod = unique(fixture_object("spark35-driver.json"), "annot")
    create_pod(cluster, pod, "team-a")
    ann = _create_event(cluster, "team-a", pod["metadata"]["name"]).get("annotations") or {}
    sha = json.loads(webhook.readyz()[1])["policySha256"]
    spark = "spark-pods.spark-identity.io"
    assert ann.get(f"{spark}/identity") == "sparkaks", ann
    assert ann.get(f"{spark}/decision") == "mutated", ann
    assert ann.get(f"{spark}/rule") == "team-a", ann
    assert ann.get(f"{spark}/policy-sha256") == sha, ann
    assert spark in registration.webhook_names


def test_audit_annotations_of_a_refused_identity_claim(kubectl, cluster, webhook):
    pod = unique(fixture_object("rogue-pod.json"))
    p = create_pod(cluster, pod, "team-x", check=False)
    assert p.returncode != 0
    ann = _create_event(cluster, "team-x", pod["metadata"]["name"]).get("annotations") or {}
    claims = "identity-claims.spark-identity.io"
    assert ann.get(f"{claims}/decision") == "denied", ann
    assert ann.get(f"{claims}/identity") == "sparkaks", ann
    assert ann.get(f"{claims}/rule") == "none", ann
