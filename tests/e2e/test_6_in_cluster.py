"""The server as it runs in a pod: no --kubeconfig, the API server found
through KUBERNETES_SERVICE_HOST/PORT, the service account's token and CA read
from its directory (SPARK_IDENTITY_WEBHOOK_SA_DIR stands in for
/var/run/secrets/kubernetes.io/serviceaccount). The token is read again at
every connection, so a rotated token is picked up without a restart."""
from __future__ import annotations

import json
import os
import shutil
import time

import cluster as cp
from harness import model


def wait_readyz(wh: cp.Webhook, want: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    st, body = wh.readyz()
    while st != want and time.monotonic() < deadline:
        time.sleep(0.2)
        st, body = wh.readyz()
    assert st == want, f"/readyz answered {st}: {body}"
    return json.loads(body)


def test_in_cluster_service_account_and_token_rotation(kubectl, cluster, webhook, workdir):
    sa_dir = workdir / "in-cluster-sa"
    sa_dir.mkdir()
    shutil.copy(cluster.pki / "ca.crt", sa_dir / "ca.crt")
    # A token the API server does not know: the list fails (401) and the
    # server stays not ready, saying why.
    (sa_dir / "token").write_text("not-a-valid-token\n")

    wh = cp.Webhook(webhook.binary, workdir / "in-cluster", webhook.policy, kubeconfig=None)
    wh.dir.mkdir()
    wh.make_certs()
    env = dict(os.environ, KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(cluster.port),
               SPARK_IDENTITY_WEBHOOK_SA_DIR=str(sa_dir))
    args = [wh.binary, "serve", "--policy", wh.policy, "--tls-cert", wh.certs / "tls.crt",
            "--tls-key", wh.certs / "tls.key", "--listen", f"127.0.0.1:{wh.port}"]
    wh.proc = cp.Proc("in-cluster-webhook", args, wh.dir / "webhook.log", env=env).start()
    try:
        body = wait_readyz(wh, 503)
        deadline = time.monotonic() + 15
        while "401" not in body.get("reason", "") and time.monotonic() < deadline:
            time.sleep(0.2)
            body = json.loads(wh.readyz()[1])
        assert "namespaces not listed yet" in body["reason"] and "401" in body["reason"], body

        # The kubelet rotates the token: the next attempt uses the new one.
        token = cluster.kubectl("create", "token", cp.WEBHOOK_SERVICE, "-n", cp.WEBHOOK_NAMESPACE,
                                "--duration", "1h").stdout.strip()
        tmp = sa_dir / "..token.new"
        tmp.write_text(token)
        os.replace(tmp, sa_dir / "token")
        body = wait_readyz(wh, 200, timeout=60)
        assert body["namespaces"] >= 4, body

        log = (wh.dir / "webhook.log").read_text()
        serving = [json.loads(l) for l in log.splitlines() if l.startswith("{") and '"msg":"serving"' in l]
        assert serving and serving[0]["kubernetes"] == f"https://127.0.0.1:{cluster.port}", serving
    finally:
        wh.stop()
