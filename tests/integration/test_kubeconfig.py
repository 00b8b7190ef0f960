"""Kubeconfigs as users have them, through the real binary: KUBECONFIG lists
and ~/.kube/config, --context, exec credential plugins (small scripts the
tests write) and what each command says when a kubeconfig does not work;
and the same binary installed as the kubectl plugin.

The API server is test_audit's FakeAPI (TLS, bearer tokens, paging); the
end-to-end suite runs the same against a real kube-apiserver
(tests/e2e/test_19_kubeconfig.py).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, POLICY, ROOT
from test_audit import TOKEN, FakeAPI, audit, pod_list, stored, running, write

EXEC_V1 = "client.authentication.k8s.io/v1"


def env_with(**values) -> dict:
    """The environment without KUBECONFIG, HOME and KUBERNETES_SERVICE_HOST,
    then `values`."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HOME", "KUBERNETES_SERVICE_HOST")}
    env.update({k: str(v) for k, v in values.items()})
    return env


def cluster_entry(name: str, server: str, ca: Path) -> dict:
    return {"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}


def plugin(path: Path, body: str) -> Path:
    """An exec plugin: a shell script that counts its runs in PATH.runs."""
    path.write_text("#!/bin/sh\n"
                    f"n=$(cat '{path}.runs' 2>/dev/null || echo 0); echo $((n + 1)) > '{path}.runs'\n"
                    f"{body}\n")
    path.chmod(0o755)
    return path


def runs(path: Path) -> int:
    return int(path.with_name(path.name + ".runs").read_text()) if path.with_name(path.name + ".runs").exists() else 0


def token_plugin(path: Path, token: str = TOKEN) -> Path:
    answer = json.dumps({"apiVersion": EXEC_V1, "kind": "ExecCredential", "status": {"token": token}})
    return plugin(path, f"echo '{answer}'")


def exec_user(name: str, command: str, **extra) -> dict:
    return {"name": name, "user": {"exec": {"apiVersion": EXEC_V1, "command": command,
                                            "interactiveMode": "Never", **extra}}}


PODS = [running(stored("spark35-driver.json", "team-a", f"driver-{i}")) for i in range(7)]


@pytest.fixture()
def api(certs):
    with FakeAPI(certs, PODS) as a:
        yield a


def pods_file(tmp_path: Path) -> Path:
    return write(tmp_path / "pods.json", pod_list(PODS))


def test_default_is_kubeconfig_env_then_home(tmp_path, api, certs):
    """No --pods/--kubeconfig/--in-cluster: KUBECONFIG's files (missing ones
    skipped; the first current-context; the first definition of a name; a
    path relative to the file that defined the entry), else ~/.kube/config."""
    _, want, _ = audit("--policy", POLICY, "--pods", pods_file(tmp_path), "-o", "json")
    first, second = tmp_path / "first", tmp_path / "dir" / "second"
    second.parent.mkdir()
    token_plugin(second.parent / "get-token")
    first.write_text(json.dumps({"current-context": "fake", "contexts": [
        {"name": "fake", "context": {"cluster": "api", "user": "exec"}},
        {"name": "elsewhere", "context": {"cluster": "api", "user": "nobody"}}]}))
    second.write_text(json.dumps({
        "current-context": "ignored",
        "clusters": [cluster_entry("api", api.url, certs.ca)],
        "contexts": [{"name": "fake", "context": {"cluster": "none", "user": "none"}}],
        "users": [exec_user("exec", "./get-token")]}))
    env = env_with(KUBECONFIG=f"{tmp_path}/missing:{first}:{second}", HOME=tmp_path)
    rc, out, err = audit("--policy", POLICY, "-o", "json", env=env)
    assert rc == 1 and json.loads(out)["findings"] == json.loads(want)["findings"], err
    assert runs(second.parent / "get-token") == 1   # kept for every page
    assert {r[2] for r in api.requests} == {f"Bearer {TOKEN}"}

    # An unknown --context lists the contexts of the merged files.
    rc, out, err = audit("--policy", POLICY, "--context", "prod", env=env)
    assert rc == 2 and out == ""
    assert f'audit: kubeconfig: no context "prod" in {first} and {second} (contexts: fake, elsewhere)' in err, err
    rc, _, err = audit("--policy", POLICY, "--context", "elsewhere", env=env)
    assert rc == 2 and f'{first}: context "elsewhere" names user "nobody", which no file defines' in err, err

    # --kubeconfig FILE is that file alone, whatever KUBECONFIG says.
    rc, _, err = audit("--policy", POLICY, "--kubeconfig", second, env=env)
    assert rc == 2 and f"--kubeconfig {second}: " in err and 'context "ignored"' in err, err

    # ~/.kube/config when KUBECONFIG is unset or empty.
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(json.dumps({
        "current-context": "home", "clusters": [cluster_entry("api", api.url, certs.ca)],
        "contexts": [{"name": "home", "context": {"cluster": "api", "user": "t"}}],
        "users": [{"name": "t", "user": {"token": TOKEN}}]}))
    for env in (env_with(HOME=tmp_path), env_with(HOME=tmp_path, KUBECONFIG="")):
        rc, out, err = audit("--policy", POLICY, "-o", "json", env=env)
        assert rc == 1 and json.loads(out)["findings"] == json.loads(want)["findings"], err


def test_no_kubeconfig_says_where_it_looked(tmp_path):
    rc, out, err = audit("--policy", POLICY, env=env_with(HOME=tmp_path))
    assert rc == 2 and out == ""
    assert (f"audit: kubeconfig: no kubeconfig: KUBECONFIG is not set and {tmp_path}/.kube/config does not exist "
            "(or give --pods FILE or --in-cluster)") in err, err
    rc, _, err = audit("--policy", POLICY, env=env_with(HOME=tmp_path, KUBECONFIG=f"{tmp_path}/a:{tmp_path}/b"))
    assert rc == 2 and f"KUBECONFIG={tmp_path}/a:{tmp_path}/b: none of its files exists" in err, err


def kubeconfig_with_user(tmp_path: Path, api_url: str, ca: Path, user: dict) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "current-context": "c", "clusters": [cluster_entry("api", api_url, ca)],
        "contexts": [{"name": "c", "context": {"cluster": "api", "user": user["name"]}}], "users": [user]}))
    return path


def test_exec_plugin_failures_say_why(tmp_path, api, certs):
    plugin(tmp_path / "fails", "echo 'Error: AADSTS50173: the grant has expired; run az login' >&2; exit 1")
    kc = kubeconfig_with_user(tmp_path, api.url, certs.ca, exec_user("u", "./fails"))
    rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc, env=env_with(HOME=tmp_path))
    assert rc == 2 and out == ""
    assert (f'exec plugin "{tmp_path}/./fails" failed with exit status 1: Error: AADSTS50173: the grant has expired; '
            "run az login") in err, err
    assert api.requests == []     # nothing is sent without a credential

    kc = kubeconfig_with_user(tmp_path, api.url, certs.ca, exec_user(
        "u", "kubelogin-absent", installHint="kubelogin is not installed: 'az aks install-cli' installs it"))
    rc, _, err = audit("--policy", POLICY, "--kubeconfig", kc, env=env_with(HOME=tmp_path))
    assert rc == 2
    assert ('exec plugin "kubelogin-absent" is not found on PATH: kubelogin is not installed: '
            "'az aks install-cli' installs it") in err, err

    plugin(tmp_path / "wrong", "echo '{\"apiVersion\": \"client.authentication.k8s.io/v1beta1\", "
                               "\"kind\": \"ExecCredential\", \"status\": {\"token\": \"sekret\"}}'")
    kc = kubeconfig_with_user(tmp_path, api.url, certs.ca, exec_user("u", "./wrong"))
    rc, _, err = audit("--policy", POLICY, "--kubeconfig", kc, env=env_with(HOME=tmp_path))
    assert rc == 2 and "not the ExecCredential client.authentication.k8s.io/v1 it was asked for" in err, err
    assert "sekret" not in err

    # A token the API server refuses: the plugin runs again, once, then 401 is reported.
    token_plugin(tmp_path / "stale", "not-the-token")
    kc = kubeconfig_with_user(tmp_path, api.url, certs.ca, exec_user("u", "./stale"))
    rc, _, err = audit("--policy", POLICY, "--kubeconfig", kc, env=env_with(HOME=tmp_path))
    assert rc == 2 and "401" in err, err
    assert runs(tmp_path / "stale") == 2


@pytest.mark.parametrize("user, message", [
    ({"name": "u", "user": {"auth-provider": {"name": "azure", "config": {}}}},
     'uses auth-provider "azure", which is not supported'),
    ({"name": "u", "user": {"exec": {"apiVersion": EXEC_V1, "command": "kubelogin", "interactiveMode": "Always"}}},
     "exec.interactiveMode Always: the plugin wants a terminal"),
    ({"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}},
     "v1alpha1 is gone from Kubernetes"),
    ({"name": "u", "user": {"username": "admin", "password": "x"}},
     'the user of context "c" has no token, tokenFile, client certificate or exec plugin'),
])
def test_kubeconfig_users_refused(tmp_path, user, message):
    kc = kubeconfig_with_user(tmp_path, "https://127.0.0.1:1", tmp_path / "ca.crt", user)
    (tmp_path / "ca.crt").write_text("")
    rc, out, err = audit("--policy", POLICY, "--kubeconfig", kc)
    assert rc == 2 and out == "" and message in err, err


@pytest.mark.parametrize("args, message", [
    (["--pods", "x", "--in-cluster"], "give at most one of --pods FILE, --kubeconfig FILE, --in-cluster"),
    (["--pods", "x", "--context", "c"], "--context picks a kubeconfig's context: not with --pods"),
    (["--in-cluster", "--context", "c"], "--context picks a kubeconfig's context: not with --in-cluster"),
    (["--context", ""], "--context wants a context's name"),
    (["--context"], "--context needs a value"),
])
def test_context_usage_errors(args, message):
    rc, out, err = audit("--policy", POLICY, *args)
    assert rc == 2 and out == "" and message in err, err


def test_serve_context(tmp_path, certs):
    """serve reads namespaces through --context's kubeconfig; an unknown
    context stops it before it serves."""
    kc = tmp_path / "kc"
    kc.write_text(json.dumps({"current-context": "a", "contexts": [{"name": "a", "context": {"cluster": "x"}}]}))
    p = subprocess.run([str(BIN), "serve", "--policy", POLICY, "--tls-cert", certs.cert, "--tls-key", certs.key,
                        "--listen", "127.0.0.1:0", "--context", "b"],
                       capture_output=True, timeout=30, env=env_with(HOME=tmp_path, KUBECONFIG=kc))
    assert p.returncode == 2
    assert f'serve: no context "b" in {kc} (contexts: a)' in p.stderr.decode(), p.stderr


# ---------------------------------------------------------------------------
# The kubectl plugin
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """make install PREFIX=... with the build under test."""
    prefix = tmp_path_factory.mktemp("prefix")
    build = Path(BIN).resolve().parent
    p = subprocess.run(["make", "-C", str(ROOT), "install", f"PREFIX={prefix}", f"BUILD={build}"],
                       capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    return prefix / "bin"


def test_make_install_gives_the_binary_and_the_plugin_link(installed):
    binary, link = installed / "spark-identity-webhook", installed / "kubectl-spark_identity"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert link.is_symlink() and os.readlink(link) == "spark-identity-webhook"
    assert binary.read_bytes() == Path(BIN).read_bytes()


def run_as(path: Path, *args, env=None):
    p = subprocess.run([str(path), *map(str, args)], capture_output=True, timeout=30, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_plugin_help_speaks_kubectl(installed):
    link = installed / "kubectl-spark_identity"
    rc, out, _ = run_as(link, "--help")
    assert rc == 0 and "Usage: kubectl spark-identity COMMAND [options]" in out, out
    assert "'kubectl spark-identity help serve'" in out and "spark-identity-webhook" not in out
    for args in (["help", "audit"], ["audit", "--help"], ["audit", "--policy", "p", "-h"]):
        rc, out, _ = run_as(link, *args)
        assert rc == 0 and out.startswith("Usage: kubectl spark-identity audit --policy FILE"), (args, out)
        assert "  kubectl spark-identity audit --policy policy.yaml --context my-aks" in out
    # Names that are not command lines stay: the Service in certs' examples.
    rc, out, _ = run_as(link, "help", "certs")
    assert rc == 0 and "kubectl spark-identity certs --service spark-identity-webhook" in out, out
    rc, out, err = run_as(link, "audit", "--bogus")
    assert rc == 2 and out == "" and "(see 'kubectl spark-identity help audit')" in err, err
    rc, _, err = run_as(link, "nope")
    assert rc == 2 and 'kubectl spark-identity: no command "nope"' in err
    # The binary under its own name is unchanged.
    rc, out, _ = run_as(installed / "spark-identity-webhook", "help", "audit")
    assert rc == 0 and out.startswith("Usage: spark-identity-webhook audit") and "kubectl spark-identity" not in out


def test_plugin_uses_the_current_context(installed, tmp_path, api, certs):
    """As kubectl runs it: no flag but --policy, the current context."""
    kc = kubeconfig_with_user(tmp_path, api.url, certs.ca, {"name": "t", "user": {"token": TOKEN}})
    rc, out, err = run_as(installed / "kubectl-spark_identity", "audit", "--policy", POLICY, "-o", "json",
                          env=env_with(HOME=tmp_path, KUBECONFIG=kc))
    assert rc == 1 and {f["pod"] for f in json.loads(out)["findings"]} == {p["metadata"]["name"] for p in PODS}, err
