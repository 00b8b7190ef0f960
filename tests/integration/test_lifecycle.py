"""The server's own life: it reloads its policy without a restart, refuses a
broken one while the old keeps serving, and stops cleanly on SIGTERM (exit 0,
and under the ASan build no sanitizer report, leaks included)."""
import json
import shutil
import signal
import time

from conftest import ROOT, Server, decode_patch, fresh, load_fixture

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def identity_given(client, review):
    r = client.review(fresh(review))["response"]
    return r


def test_policy_reload_on_change_and_bad_policy_kept_out(certs, workdir):
    pol_dir = workdir / "reload"
    pol_dir.mkdir()
    pol = pol_dir / "policy.yaml"
    shutil.copy(ROOT / "tests" / "fixtures" / "policy.yaml", pol)
    s = Server("reload", certs, pol, workdir).start()
    try:
        c = s.client()
        driver = load_fixture("spark35-driver.json")
        sha0 = json.loads(c.request("GET", "/readyz")[2])["policySha256"]
        assert "patch" in identity_given(c, driver)

        # A new policy gives team-a another identity. It is written to a new
        # file and renamed into place, as editors and ConfigMap updates do.
        tmp = pol_dir / ".policy.tmp"
        tmp.write_text("namespaces:\n  team-a: {identity: other-spark}\n")
        tmp.replace(pol)
        changed = wait_for(lambda: json.loads(c.request("GET", "/readyz")[2])["policySha256"] != sha0)
        assert changed, s.stderr()
        sha1 = json.loads(c.request("GET", "/readyz")[2])["policySha256"]
        ops = decode_patch(identity_given(c, driver))
        assert {"op": "add", "path": "/metadata/labels/aadpodidbinding", "value": "other-spark"} in ops
        assert '"msg":"policy reloaded"' in s.stderr(100)

        # A broken policy is refused; the last good one keeps serving.
        pol.write_text("namespaces:\n  team-a: {identity: \"two words\"}\n")
        assert wait_for(lambda: "policy reload refused" in s.stderr(100)), s.stderr()
        st, _, body = c.request("GET", "/readyz")
        assert st == 200 and json.loads(body)["policySha256"] == sha1
        assert "two words" in s.stderr(100)

        # SIGHUP reloads too.
        shutil.copy(ROOT / "tests" / "fixtures" / "policy.yaml", pol)
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: json.loads(c.request("GET", "/readyz")[2])["policySha256"] == sha0), s.stderr()
        assert "patch" in identity_given(c, driver)
    finally:
        s.stop()


def test_sigterm_exits_cleanly(certs, workdir):
    s = Server("lifecycle", certs, ROOT / "tests" / "fixtures" / "policy.yaml", workdir).start()
    c = s.client()
    for name in ("spark35-driver.json", "spark35-executor.json", "rogue-pod.json"):
        c.review(fresh(load_fixture(name)))
    c.post_raw(b"{not json", "/mutate")
    s.proc.send_signal(signal.SIGTERM)
    rc = s.proc.wait(10)
    err = s.stderr_path.read_text(errors="replace")
    s.stop()
    assert rc == 0, err[-3000:]
    assert not any(m in err for m in SANITIZER_MARKS), err[-3000:]
    assert '"msg":"shutting down"' in err
    for line in err.splitlines():
        json.loads(line)


def test_configmap_style_symlink_swap_reloads(certs, workdir):
    """A ConfigMap volume: policy.yaml -> ..data/policy.yaml, ..data ->
    ..<timestamp>/; an update writes a new timestamped directory and renames
    a new ..data link over the old one."""
    import os
    mount = workdir / "configmap"
    (mount / "..2026_01").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "policy.yaml", mount / "..2026_01" / "policy.yaml")
    os.symlink("..2026_01", mount / "..data")
    os.symlink("..data/policy.yaml", mount / "policy.yaml")
    s = Server("configmap", certs, mount / "policy.yaml", workdir).start()
    try:
        c = s.client()
        sha0 = json.loads(c.request("GET", "/readyz")[2])["policySha256"]
        (mount / "..2026_02").mkdir()
        (mount / "..2026_02" / "policy.yaml").write_text("namespaces:\n  team-a: {identity: swapped-spark}\n")
        os.symlink("..2026_02", mount / "..data_tmp")
        os.replace(mount / "..data_tmp", mount / "..data")
        shutil.rmtree(mount / "..2026_01")
        assert wait_for(lambda: json.loads(c.request("GET", "/readyz")[2])["policySha256"] != sha0), s.stderr()
        ops = decode_patch(identity_given(c, load_fixture("spark35-driver.json")))
        assert {"op": "add", "path": "/metadata/labels/aadpodidbinding", "value": "swapped-spark"} in ops
    finally:
        s.stop()
