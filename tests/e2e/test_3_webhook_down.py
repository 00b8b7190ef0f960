"""The webhook is down. failurePolicy: Fail (deploy/'s choice) refuses Spark
pods, so none runs without its identity settings, and the validating
webhooks refuse what they guard: a pod UPDATE that adds an identity claim,
a namespace change of a grant key. Ordinary pod and namespace updates never
reach the webhooks (matchConditions), so the outage does not block them.
Ignore admits everything unchanged. The webhook comes back, with Fail, for
the tests after these."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from harness import (create_pod, env_of, fixture_object, get_pod, model, spark_container, unique,
                      wait_mutating)

NS = "team-b"
CLAIMS = "identity-claims.spark-identity.io"
GRANTS = "namespace-grants.spark-identity.io"


@pytest.fixture(scope="module")
def webhook_down(kubectl, cluster, webhook, registration):
    assert registration.failure_policies() == ["Fail"] * len(registration.webhook_names), \
        "deploy/ should register the webhooks with failurePolicy: Fail"
    webhook.stop()
    try:
        yield webhook
    finally:
        webhook.start()
        registration.set_failure_policy("Fail")
        wait_mutating(cluster, True)


@pytest.fixture
def plain_pod(webhook_down, cluster):
    """A stored pod that no webhook matches (no aadpodidbinding, no
    spark-role): created while the webhook is down."""
    name = f"down-plain-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("run", name, "-n", NS, "--image=busybox:1.36", "--restart=Never", "--labels=app=down")
    return name


@pytest.fixture
def plain_namespace(webhook_down, cluster):
    """A namespace without grant keys: created while the webhook is down."""
    name = f"down-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


def _failed_calling(p, webhook, name: str, path: str) -> None:
    assert p.returncode != 0, f"admitted while the webhook is down: {p.stdout}"
    assert "Internal error occurred" in p.stderr, p.stderr
    assert f'failed calling webhook "{name}"' in p.stderr, p.stderr
    assert f"127.0.0.1:{webhook.port}{path}" in p.stderr, p.stderr
    assert "connection refused" in p.stderr, p.stderr


def test_fail_refuses_a_spark_pod_while_the_webhook_is_down(webhook_down, cluster, registration):
    pod = unique(fixture_object("spark35-driver.json"), "down-fail")
    p = create_pod(cluster, pod, NS, check=False)
    assert p.returncode != 0, f"created while the webhook is down: {p.stdout}"
    assert "Internal error occurred" in p.stderr, p.stderr
    names = "|".join(re.escape(n) for n in registration.webhook_names)
    assert re.search(rf'failed calling webhook "({names})"', p.stderr), p.stderr
    assert f"127.0.0.1:{webhook_down.port}" in p.stderr, p.stderr
    assert "connection refused" in p.stderr, p.stderr
    g = cluster.kubectl("get", "pod", "-n", NS, pod["metadata"]["name"], check=False)
    assert g.returncode != 0 and "NotFound" in g.stderr


def test_fail_refuses_an_identity_claim_added_by_update_while_the_webhook_is_down(webhook_down, cluster,
                                                                                  plain_pod):
    """Only the validating identity-claims webhook registers UPDATE: it fails
    closed on /validate."""
    p = cluster.kubectl("label", "pod", "-n", NS, plain_pod, f"{model.IDENTITY_LABEL}=team-b-spark", check=False)
    _failed_calling(p, webhook_down, CLAIMS, "/validate")
    assert model.IDENTITY_LABEL not in get_pod(cluster, NS, plain_pod)["metadata"]["labels"]
    # Ordinary updates never reach it.
    cluster.kubectl("label", "pod", "-n", NS, plain_pod, "tier=batch")
    cluster.kubectl("annotate", "pod", "-n", NS, plain_pod, "owner=data-eng")
    assert get_pod(cluster, NS, plain_pod)["metadata"]["labels"]["tier"] == "batch"


def test_fail_refuses_a_grant_while_the_webhook_is_down(webhook_down, cluster, plain_namespace):
    p = cluster.kubectl("annotate", "namespace", plain_namespace, "spark-identity.io/identity=ann-spark",
                        check=False)
    _failed_calling(p, webhook_down, GRANTS, "/validate")
    p = cluster.kubectl("label", "namespace", plain_namespace, "spark-identity.io/team=data", check=False)
    _failed_calling(p, webhook_down, GRANTS, "/validate")
    md = cluster.kubectl_json("get", "namespace", plain_namespace)["metadata"]
    assert "spark-identity.io/identity" not in (md.get("annotations") or {})
    assert "spark-identity.io/team" not in md["labels"]
    # Ordinary namespace changes never reach it.
    cluster.kubectl("label", "namespace", plain_namespace, "cost-center=4711")
    cluster.kubectl("annotate", "namespace", plain_namespace, "description=batch jobs")


def test_ignore_admits_a_spark_pod_unchanged_while_the_webhook_is_down(webhook_down, cluster, registration):
    registration.set_failure_policy("Ignore")
    assert registration.failure_policies() == ["Ignore"] * len(registration.webhook_names)
    # The API server picks the new configuration up from a watch.
    wait_mutating(cluster, False)
    pod = unique(fixture_object("spark35-driver.json"), "down-ignore")
    create_pod(cluster, pod, NS)
    stored = get_pod(cluster, NS, pod["metadata"]["name"])
    assert model.IDENTITY_LABEL not in stored["metadata"]["labels"]
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]
    assert env_of(spark_container(stored)) == env_of(spark_container(pod))
    # The API server says so in its audit log: the call failed open.
    events = [e for e in cluster.audit_events()
              if e.get("verb") == "create" and e.get("stage") == "ResponseComplete"
              and (e.get("objectRef") or {}).get("name") == pod["metadata"]["name"]]
    assert events, "no audit event for the pod"
    ann = events[-1].get("annotations") or {}
    assert any(k.startswith("failed-open.mutation.webhook.admission.k8s.io/") for k in ann), ann


def test_ignore_admits_an_identity_claim_added_by_update_while_the_webhook_is_down(webhook_down, cluster,
                                                                                    registration, plain_pod):
    """What Ignore costs: any pod can take any identity while no replica
    answers (`spark-identity-webhook audit` finds it afterwards)."""
    registration.set_failure_policy("Ignore")
    p = cluster.kubectl("label", "pod", "-n", NS, plain_pod, f"{model.IDENTITY_LABEL}=sparkaks", "-o", "json")
    assert json.loads(p.stdout)["metadata"]["labels"][model.IDENTITY_LABEL] == "sparkaks"
    events = [e for e in cluster.audit_events()
              if e.get("verb") == "patch" and e.get("stage") == "ResponseComplete"
              and (e.get("objectRef") or {}).get("name") == plain_pod]
    assert events, "no audit event for the label"
    ann = events[-1].get("annotations") or {}
    assert any(k.startswith("failed-open.validating.webhook.admission.k8s.io/") for k in ann), ann
