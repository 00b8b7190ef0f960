"""deploy/cert-manager/, rendered by the real kubectl's kustomize: the base
plus a CA issuer chain and a Certificate whose Secret is the one the
Deployment mounts, for exactly the names the API server calls, and the CA
injection annotation on every webhook configuration, which carry no caBundle
key at all (the CA injector's field alone) and are otherwise the base's; the
API server accepts them so. (cert-manager itself does not run here; its
objects are checked against what the base needs.)"""
from __future__ import annotations

import copy
import json

import yaml

from harness import DEPLOY, kubectl_objects


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


KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def test_the_overlay_leaves_every_ca_bundle_to_the_injector(cluster):
    """No caBundle key in any webhook of the overlay (an empty one, applied
    again, would blank what the injector filled, and under server-side apply
    the two managers would fight over it); apart from that key and the
    annotation, each configuration is the base's, webhook for webhook."""
    def configs(path):
        return {(o["kind"], o["metadata"]["name"]): o for o in rendered(cluster, path) if o["kind"] in KINDS}

    overlay, base = configs(DEPLOY / "cert-manager"), configs(DEPLOY)
    assert sorted(overlay) == sorted(base)
    assert {kind for kind, _ in base} == set(KINDS)
    for kind in overlay:
        for w in overlay[kind]["webhooks"]:
            assert "caBundle" not in w["clientConfig"], (kind, w["name"])
        want = copy.deepcopy(base[kind])
        for w in want["webhooks"]:
            assert w["clientConfig"].pop("caBundle") == "", (kind, w["name"])
        got = copy.deepcopy(overlay[kind])
        assert set(got["metadata"].pop("annotations")) == {"cert-manager.io/inject-ca-from"}
        assert got == want, kind


def test_the_api_server_accepts_the_overlays_configurations(kubectl, cluster):
    """Without a caBundle (the injector adds it later), as the overlay
    renders them: server-side dry run, under other names."""
    configs = [o for o in rendered(cluster, DEPLOY / "cert-manager") if o["kind"] in KINDS]
    for i, o in enumerate(configs):
        o["metadata"]["name"] = f"e2e-cert-manager-check-{i}"
    p = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": configs}))
    items = kubectl_objects(p.stdout)
    assert sorted(o["kind"] for o in items) == sorted(o["kind"] for o in configs)
    assert {o["kind"] for o in items} == set(KINDS)
    for o in items:
        for w in o["webhooks"]:
            assert "caBundle" not in w["clientConfig"], (o["kind"], w["name"])
