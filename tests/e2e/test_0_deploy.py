"""The deploy/ kustomize base, applied for real to the API server (with the
test overlay: the loopback URL and the e2e policy): every object is stored,
and the webhook's own identity has exactly the access the ClusterRole gives."""
from __future__ import annotations

import json

from harness import DEPLOY, POLICY, Registration, cp, kubectl_objects


def test_every_object_of_the_base_is_stored(kubectl, cluster, registration):
    for o in registration.objects:
        ns = o["metadata"].get("namespace")
        args = ["get", o["kind"], o["metadata"]["name"]] + (["-n", ns] if ns else [])
        cluster.kubectl(*args)


def test_the_policy_configmap_carries_the_policy_the_webhook_serves(kubectl, cluster, registration):
    cms = [o for o in registration.objects if o["kind"] == "ConfigMap"]
    assert len(cms) == 1, [o["metadata"]["name"] for o in cms]
    got = cluster.kubectl_json("get", "configmap", "-n", cp.WEBHOOK_NAMESPACE, cms[0]["metadata"]["name"])
    assert got["data"] == {"policy.yaml": POLICY.read_text()}


def test_the_webhook_configuration_points_at_the_loopback_server(kubectl, cluster, registration, webhook):
    got = cluster.kubectl_json("get", "mutatingwebhookconfiguration", registration.name)
    for w in got["webhooks"]:
        assert w["clientConfig"] == {"url": webhook.url, "caBundle": webhook.ca_bundle}
        assert w["sideEffects"] == "None"
        assert w["reinvocationPolicy"] == "IfNeeded"
        assert "v1" in w["admissionReviewVersions"]
        assert w["rules"][0]["operations"] == ["CREATE"]
    got = cluster.kubectl_json("get", "validatingwebhookconfiguration", registration.validating_name)
    assert [w["name"] for w in got["webhooks"]] == ["identity-claims.spark-identity.io",
                                                   "namespace-grants.spark-identity.io"]
    for w in got["webhooks"]:
        assert w["clientConfig"] == {"url": webhook.validate_url, "caBundle": webhook.ca_bundle}
        assert w["sideEffects"] == "None" and w["failurePolicy"] == "Fail"
        assert "v1" in w["admissionReviewVersions"]
        assert w["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert w["matchConditions"], w["name"]


def test_the_base_webhook_configurations_pass_the_api_servers_validation(kubectl, cluster):
    """deploy/'s configurations exactly as shipped (the Service, an empty
    caBundle, the matchConditions' empty label list): the API server
    compiles and type-checks their CEL (server-side dry run)."""
    base = kubectl_objects(cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                           input=cluster.kubectl("kustomize", DEPLOY).stdout).stdout)
    configs = [o for o in base if o["kind"] in Registration.KINDS]
    assert sorted(o["kind"] for o in configs) == sorted(Registration.KINDS)
    for o in configs:
        o["metadata"]["name"] = "e2e-base-check"
    p = cluster.kubectl("create", "--dry-run=server", "-f", "-",
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": configs}))
    assert p.stdout.count("created (server dry run)") == 2, p.stdout


def _can(cluster, verb, resource, *extra) -> bool:
    p = cluster.kubectl("auth", "can-i", verb, resource, *extra, kubeconfig=cluster.webhook_kubeconfig,
                        check=False)
    return p.stdout.strip() == "yes"


def test_the_webhooks_identity_reads_namespaces_and_pods_and_nothing_more(kubectl, cluster, registration):
    """The server runs with the ServiceAccount's identity (a token for
    system:serviceaccount:spark-identity-system:spark-identity-webhook);
    the ClusterRole of deploy/ must let it watch namespaces and read pods."""
    who = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                          kubeconfig=cluster.webhook_kubeconfig)
    assert who.stdout == cp.WEBHOOK_SA_USER
    for verb in ("get", "list", "watch"):
        assert _can(cluster, verb, "namespaces"), f"cannot {verb} namespaces"
    for verb in ("get", "list"):
        assert _can(cluster, verb, "pods", "--all-namespaces"), f"cannot {verb} pods"
    for verb, resource in (("create", "pods"), ("update", "namespaces"), ("get", "secrets"),
                           ("delete", "pods"), ("patch", "mutatingwebhookconfigurations")):
        assert not _can(cluster, verb, resource, "--all-namespaces"), f"may {verb} {resource}"
