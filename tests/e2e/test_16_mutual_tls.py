"""Mutual TLS with the real API server. Its admission configuration
(--admission-control-config-file, a WebhookAdmissionConfiguration whose
kubeconfig has a user for the webhook's host:port) presents a client
certificate to a second webhook server started with --client-ca and
--client-cn: pods that server must judge are admitted through it, while a
caller without that certificate is refused in the TLS handshake, before
any HTTP. Its probes answer on the plain --metrics-listen port."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import time

import pytest

from harness import cp, create_pod, fixture_object, get_pod, model, mutating_webhook_config, unique

NS = "team-a"
CN = "kube-apiserver-webhook-client"
CONFIG = "e2e-mutual-tls"


@pytest.fixture(scope="module")
def mtls_webhook(kubectl, cluster, webhook):
    plain = cp.free_port()
    args = [webhook.binary, "serve", "--policy", webhook.policy, "--tls-cert", webhook.certs / "tls.crt",
            "--tls-key", webhook.certs / "tls.key", "--listen", f"127.0.0.1:{cluster.mtls_port}",
            "--client-ca", cluster.pki / "webhook-clients-ca.crt", "--client-cn", CN,
            "--metrics-listen", f"127.0.0.1:{plain}"]
    if webhook.kubeconfig is not None:
        args += ["--kubeconfig", webhook.kubeconfig]
    proc = cp.Proc("mtls-webhook", args, cluster.dir / "mtls-webhook.log").start()

    def ready():
        c = http.client.HTTPConnection("127.0.0.1", plain, timeout=2)
        c.request("GET", "/readyz")
        return c.getresponse().status == 200

    proc.wait_until(ready, "ready on the plain port", 30)
    config = mutating_webhook_config(CONFIG, "mutual-tls.e2e.spark-identity.io",
                                     f"https://127.0.0.1:{cluster.mtls_port}/mutate", webhook.ca_bundle,
                                     {"matchLabels": {"e2e-mutual-tls": "yes"}})
    cluster.kubectl("apply", "-f", "-", input=json.dumps(config))
    try:
        yield proc, plain
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", CONFIG, "--ignore-not-found")
        proc.stop()


def _decisions(proc: cp.Proc) -> list[dict]:
    out = []
    for line in proc.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            if d.get("msg") == "admission":
                out.append(d)
    return out


def test_the_api_server_presents_its_certificate_and_the_pod_is_judged(mtls_webhook, cluster, policy):
    proc, _ = mtls_webhook
    pod = unique(fixture_object("spark35-driver.json"), "mtls")
    pod["metadata"]["labels"]["e2e-mutual-tls"] = "yes"
    deadline = time.monotonic() + 30
    while True:   # the API server picks the configuration up from a watch
        create_pod(cluster, pod, NS)
        name = pod["metadata"]["name"]
        if any(d.get("pod") == name for d in _decisions(proc)):
            break
        assert time.monotonic() < deadline, "the API server never called the mutual-TLS webhook"
        pod = unique(fixture_object("spark35-driver.json"), "mtls")
        pod["metadata"]["labels"]["e2e-mutual-tls"] = "yes"
        time.sleep(0.5)
    stored = get_pod(cluster, NS, name)
    assert stored["metadata"]["labels"][model.IDENTITY_LABEL] == "sparkaks"
    line = next(d for d in _decisions(proc) if d.get("pod") == name)
    assert line["decision"] in ("mutated", "unchanged"), line


@pytest.mark.parametrize("with_cert", [False, True])
def test_a_caller_without_the_certificate_is_refused_in_the_handshake(mtls_webhook, cluster, webhook, with_cert):
    """Without a certificate, or with one of another CA (the webhook's own
    serving pair): a TLS alert and not one byte of HTTP."""
    ctx = ssl.create_default_context(cafile=str(webhook.certs / "ca.crt"))
    if with_cert:
        ctx.load_cert_chain(str(webhook.certs / "tls.crt"), str(webhook.certs / "tls.key"))
    body = json.dumps({"kind": "AdmissionReview"}).encode()
    got = b""
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", cluster.mtls_port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            raise ssl.SSLError("closed without an answer")
    assert got == b"", got[:200]


def test_probes_answer_on_the_plain_port(mtls_webhook):
    _, plain = mtls_webhook
    for path in ("/healthz", "/readyz", "/metrics"):
        c = http.client.HTTPConnection("127.0.0.1", plain, timeout=5)
        c.request("GET", path)
        assert c.getresponse().status == 200, path
