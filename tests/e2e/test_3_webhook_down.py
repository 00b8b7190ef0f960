"""The webhook is down. failurePolicy: Fail (deploy/'s choice) refuses Spark
pods, so none runs without its identity settings; Ignore admits them
unchanged. The webhook comes back, with Fail, for the tests after these."""
from __future__ import annotations

import re

import pytest

from harness import (create_pod, env_of, fixture_object, get_pod, model, spark_container, unique,
                      wait_mutating)

NS = "team-b"


@pytest.fixture(scope="module")
def webhook_down(kubectl, cluster, webhook, registration):
    assert registration.failure_policies() == ["Fail"] * len(registration.webhook_names), \
        "deploy/ should register the webhook with failurePolicy: Fail"
    webhook.stop()
    try:
        yield webhook
    finally:
        webhook.start()
        registration.set_failure_policy("Fail")
        wait_mutating(cluster, True)


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
