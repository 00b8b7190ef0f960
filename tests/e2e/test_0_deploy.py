"""The deploy/ kustomize base, applied for real to the API server (with the
test overlay: the loopback URL, the e2e policy and the audit account of
deploy/audit/): every object is stored, and each of the two accounts,
with a token the API server minted for it, has exactly the access its
ClusterRole gives: the serving one reads namespaces and may not read pods,
the audit one lists pods and namespaces."""
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
    assert {o["kind"] for o in configs} == set(Registration.KINDS)
    assert len(configs) == 3, [o["metadata"]["name"] for o in configs]   # the policy ConfigMap's too
    for i, o in enumerate(configs):
        o["metadata"]["name"] = f"e2e-base-check-{i}"
    p = cluster.kubectl("create", "--dry-run=server", "-f", "-",
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": configs}))
    assert p.stdout.count("created (server dry run)") == len(configs), p.stdout


def _can(cluster, kubeconfig, verb, resource, *extra) -> bool:
    p = cluster.kubectl("auth", "can-i", verb, resource, *extra, kubeconfig=kubeconfig, check=False)
    assert p.stdout.strip() in ("yes", "no"), p.stderr
    return p.stdout.strip() == "yes"


def _whoami(cluster, kubeconfig) -> str:
    return cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                           kubeconfig=kubeconfig).stdout


# What neither account may do, whatever else it may: (verb, resource, more
# arguments of `kubectl auth can-i`).
FORBIDDEN = (("create", "pods"), ("delete", "pods"), ("update", "namespaces"), ("get", "secrets"),
             ("list", "secrets"), ("get", "configmaps"), ("patch", "mutatingwebhookconfigurations"),
             ("patch", "validatingwebhookconfigurations"), ("create", "serviceaccounts", "--subresource=token"))


def test_the_serving_identity_reads_namespaces_and_nothing_more(kubectl, cluster, registration, webhook):
    """The server runs with the ServiceAccount's identity (a token the API
    server minted for system:serviceaccount:spark-identity-system:
    spark-identity-webhook); the ClusterRole of deploy/base lets it watch
    namespaces, and no more: not even read pods (audits have an account of
    their own)."""
    kc = webhook.kubeconfig
    assert _whoami(cluster, kc) == cp.WEBHOOK_SA_USER
    for verb in ("get", "list", "watch"):
        assert _can(cluster, kc, verb, "namespaces"), f"cannot {verb} namespaces"
    for verb in ("get", "list", "watch"):
        assert not _can(cluster, kc, verb, "pods", "--all-namespaces"), f"may {verb} pods"
        assert not _can(cluster, kc, verb, "pods", "-n", "team-a"), f"may {verb} pods in team-a"
    for verb, resource, *more in FORBIDDEN:
        assert not _can(cluster, kc, verb, resource, *more, "--all-namespaces"), f"may {verb} {resource} {more}"


def test_the_serving_identity_is_refused_a_list_of_pods(kubectl, cluster, registration, webhook):
    """Not only what RBAC says it would do: the request itself, with the
    serving account's token, is refused by the API server."""
    for args in (("--all-namespaces",), ("-n", "team-a")):
        p = cluster.kubectl("get", "pods", *args, kubeconfig=webhook.kubeconfig, check=False)
        assert p.returncode != 0, p.stdout
        assert "Forbidden" in p.stderr and \
            f'User "{cp.WEBHOOK_SA_USER}" cannot list resource "pods"' in p.stderr, p.stderr
    # Namespaces, which it needs, it lists.
    p = cluster.kubectl("get", "namespaces", "-o", "name", kubeconfig=webhook.kubeconfig)
    assert "namespace/team-a" in p.stdout.split()


def test_the_audit_identity_lists_pods_and_namespaces_and_nothing_more(kubectl, cluster, registration,
                                                                       audit_kubeconfig):
    """deploy/audit/'s account, with a token the API server minted for
    it: `list` on pods and namespaces, which is every request `audit` makes,
    and nothing else."""
    kc = audit_kubeconfig
    assert _whoami(cluster, kc) == cp.AUDIT_SA_USER
    for resource in ("pods", "namespaces"):
        assert _can(cluster, kc, "list", resource, "--all-namespaces"), f"cannot list {resource}"
        for verb in ("get", "watch", "update", "patch"):
            assert not _can(cluster, kc, verb, resource, "--all-namespaces"), f"may {verb} {resource}"
    for verb, resource, *more in FORBIDDEN + (("get", "pods", "--subresource=log"),
                                             ("create", "pods", "--subresource=exec")):
        assert not _can(cluster, kc, verb, resource, *more, "--all-namespaces"), f"may {verb} {resource} {more}"
