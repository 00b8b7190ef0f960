"""deploy/cert-manager/, rendered by the real kubectl's kustomize: the base
plus a CA issuer chain and a Certificate whose Secret is the one the
Deployment mounts, for exactly the names the API server calls, and the CA
injection annotation on every webhook configuration. (cert-manager itself does
not run here; its objects are checked against what the base needs.)"""
from __future__ import annotations

import yaml

from harness import DEPLOY


def rendered(cluster, path) -> list[dict]:
    """kubectl kustomize's YAML, read with PyYAML (the cert-manager kinds are
    unknown to this API server, so kubectl cannot turn them into JSON)."""
    return [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", path).stdout) if d]


def test_the_cert_manager_overlay_fits_the_base(cluster):
    objects = rendered(cluster, DEPLOY / "cert-manager")
    by_kind: dict[str, list[dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    base = rendered(cluster, DEPLOY)
    assert {o["kind"] for o in base} <= set(by_kind), "the overlay lost objects of the base"

    cert = next(c for c in by_kind["Certificate"] if not c["spec"].get("isCA"))
    deployment = by_kind["Deployment"][0]
    secrets = [v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert cert["spec"]["secretName"] in secrets
    service = by_kind["Service"][0]
    name, ns = service["metadata"]["name"], service["metadata"]["namespace"]
    assert set(cert["spec"]["dnsNames"]) == {name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"}
    assert cert["metadata"]["namespace"] == ns
    issuer = cert["spec"]["issuerRef"]["name"]
    assert any(i["metadata"]["name"] == issuer and "ca" in i["spec"] for i in by_kind["Issuer"])

    # Every webhook configuration gets the CA: the policy ConfigMap's too.
    paths = {"spark-identity-webhook": {"MutatingWebhookConfiguration": "/mutate",
                                        "ValidatingWebhookConfiguration": "/validate"},
             "spark-identity-webhook-policy": {"ValidatingWebhookConfiguration": "/validate-policy"}}
    configs = by_kind["MutatingWebhookConfiguration"] + by_kind["ValidatingWebhookConfiguration"]
    assert sorted((o["metadata"]["name"], o["kind"]) for o in configs) == \
        sorted((n, k) for n, kinds in paths.items() for k in kinds)
    for webhook in configs:
        kind = webhook["kind"]
        path = paths[webhook["metadata"]["name"]][kind]
        assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            f"{ns}/{cert['metadata']['name']}", kind
        for w in webhook["webhooks"]:
            assert w["clientConfig"]["service"] == {"name": name, "namespace": ns, "path": path, "port": 443}
