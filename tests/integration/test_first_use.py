"""What a new user meets first: the help's examples work as copied, every
command takes its policy the same way, errors name what failed and say what
to do next."""
import re
import shlex
import socket
import subprocess

import yaml

from conftest import BIN, ROOT, run_bin

COMMANDS = ["serve", "certs", "mutate", "check-policy", "explain", "audit", "render"]


def help_of(cmd: str) -> str:
    p = run_bin("help", cmd)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def deploy_base_names() -> tuple[str, str]:
    """The Service's name and the namespace deploy/base puts it in."""
    base = ROOT / "deploy" / "base"
    namespace = yaml.safe_load((base / "kustomization.yaml").read_text())["namespace"]
    service = yaml.safe_load((base / "service.yaml").read_text())["metadata"]["name"]
    return service, namespace


def example_commands(text: str, cmd: str) -> list[list[str]]:
    """Every example line of the help that runs `spark-identity-webhook cmd`,
    its continuation lines joined, as words."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        if line.startswith("Usage:"):
            continue
        m = re.search(r"spark-identity-webhook " + re.escape(cmd) + r" (.*?)(\)|$)", line)
        if m:
            out.append(shlex.split(m.group(1)))
    return out


def flag_value(words: list[str], flag: str):
    return words[words.index(flag) + 1] if flag in words else None


def test_the_certs_examples_name_deploys_service_and_namespace():
    service, namespace = deploy_base_names()
    for cmd in ("certs", "serve"):
        examples = example_commands(help_of(cmd), "certs")
        assert examples, f"help {cmd} has no certs example"
        for words in examples:
            assert flag_value(words, "--service") == service, (cmd, words)
            assert flag_value(words, "--namespace") == namespace, (cmd, words)
    assert "spark-webhook " not in help_of("certs") and "--namespace default" not in help_of("certs")


def test_the_help_uses_the_certificate_directory_make_run_uses():
    dev = re.search(r"^DEV\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    for cmd in ("certs", "serve"):
        text = help_of(cmd)
        assert ".dev/" not in text, cmd
        assert any(flag_value(w, "--out") == dev for w in example_commands(text, "certs")), (cmd, dev)
    serve = example_commands(help_of("serve"), "serve")
    assert serve and flag_value(serve[0], "--tls-cert") == f"{dev}/tls.crt", serve


def test_the_certs_example_makes_a_pair_the_cluster_accepts(tmp_path):
    """The in-cluster example, run as printed (in a scratch directory): the
    certificate names the Service deploy/ calls."""
    service, namespace = deploy_base_names()
    words = next(w for w in example_commands(help_of("certs"), "certs") if "--print-ca-bundle" in w)
    p = subprocess.run([str(BIN.resolve()), "certs", *words], cwd=tmp_path, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr   # certs/cluster with no certs/ yet: made as mkdir -p would
    out = tmp_path / flag_value(words, "--out") / "tls.crt"
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", out],
                          capture_output=True, text=True, check=True).stdout
    assert f"DNS:{service}.{namespace}.svc" in text, text


def test_help_help():
    p = run_bin("help", "help")
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert out.startswith("Usage: spark-identity-webhook help [COMMAND]")
    assert all(c in out for c in COMMANDS)


def test_certs_refusing_to_overwrite_names_both_ways_out(tmp_path):
    args = ["certs", "--service", "s", "--namespace", "n", "--out", tmp_path / "c"]
    assert run_bin(*args).returncode == 0
    p = run_bin(*args)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "already exists" in err and "--renew" in err and "--force" in err, err
    assert "caBundle stays valid" in err and "caBundle must then change" in err, err
    assert run_bin(*args, "--renew").returncode == 0


# check-policy takes its policy as every other command does

GOOD = (ROOT / "deploy" / "policy.yaml").read_bytes()
BAD = b"defaults:\n  mode: sometimes\n"


def test_check_policy_takes_the_policy_flag():
    path = ROOT / "deploy" / "policy.yaml"
    by_flag, alone = run_bin("check-policy", "--policy", path), run_bin("check-policy", path)
    assert by_flag.returncode == 0, by_flag.stderr
    assert by_flag.stdout == alone.stdout
    assert run_bin("check-policy", f"--policy={path}").stdout == alone.stdout
    p = run_bin("check-policy", "--policy", path, path)
    assert p.returncode == 2 and b"give the policy once" in p.stderr, p.stderr


def test_check_policy_reads_stdin():
    p = run_bin("check-policy", "-", input=GOOD)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith(b"<stdin>: valid; sha256 ")
    file_out = run_bin("check-policy", ROOT / "deploy" / "policy.yaml").stdout
    assert p.stdout.split(b"\n", 1)[1] == file_out.split(b"\n", 1)[1]
    p = run_bin("check-policy", "--policy", "-", input=BAD)
    assert p.returncode == 1
    assert p.stdout.decode() == "<stdin>:2:9: defaults.mode: must be one of enforce | audit | off\n"


def test_check_policy_exits_2_on_input_it_cannot_read(tmp_path):
    for path, says in [(tmp_path / "missing.yaml", "No such file"), (tmp_path, "Is a directory")]:
        p = run_bin("check-policy", path)
        err = p.stderr.decode()
        assert p.returncode == 2, (path, p.returncode, err)
        assert err.startswith(f"check-policy: cannot read {path}: {says}"), err
        assert p.stdout == b""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (4 << 20) + b"\n")
    p = run_bin("check-policy", big)
    assert p.returncode == 2 and str(big).encode() in p.stderr, p.stderr
    for cmd in ("mutate", "explain", "render"):   # the others say the same with 2
        args = {"mutate": [], "explain": ["--namespace", "a"], "render": ["admission-policy"]}[cmd]
        first = [cmd, *args] if cmd != "render" else ["render", "admission-policy"]
        p = run_bin(*first, "--policy", tmp_path / "missing.yaml", input=b"{}")
        assert p.returncode == 2, (cmd, p.stderr)


def test_check_policy_exits_1_on_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(BAD)
    p = run_bin("check-policy", path)
    assert p.returncode == 1 and p.stdout.decode().startswith(f"{path}:2:9: "), p.stdout


# a bind failure names the address that failed

def _serve(certs, *listen):
    return run_bin("serve", "--policy", ROOT / "tests" / "fixtures" / "policy.yaml", "--tls-cert", certs.cert,
                   "--tls-key", certs.key, *listen, timeout=10)


def _taken(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family)
    s.bind((host, 0))
    s.listen()
    return s


def test_a_port_in_use_is_named_with_its_address(certs):
    with _taken() as s:
        port = s.getsockname()[1]
        p = _serve(certs, "--listen", f"127.0.0.1:{port}")
        assert p.returncode == 2
        assert p.stderr.decode() == f"serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
        assert b"port 0" not in p.stderr


def test_a_metrics_port_in_use_is_named_with_its_address(certs):
    with _taken() as s:
        port = s.getsockname()[1]
        p = _serve(certs, "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}")
        assert p.returncode == 2
        assert p.stderr.decode().endswith(f"serve: cannot listen on 127.0.0.1:{port}: Address already in use\n")
        assert b"port 0" not in p.stderr


def test_an_address_not_on_this_machine_is_named(certs):
    p = _serve(certs, "--listen", "192.0.2.1:8443")   # TEST-NET-1: never a local address
    assert p.returncode == 2
    assert p.stderr.decode() == "serve: cannot listen on 192.0.2.1:8443: Cannot assign requested address\n"


def test_ipv6_in_use_is_named_too(certs):
    try:
        s = _taken(socket.AF_INET6, "::1")
    except OSError:
        import pytest
        pytest.skip("no IPv6 loopback here")
    with s:
        port = s.getsockname()[1]
        p = _serve(certs, "--listen", f"[::1]:{port}")
        assert p.returncode == 2
        assert p.stderr.decode() == f"serve: cannot listen on [::1]:{port}: Address already in use\n"


def test_check_policy_lists_problems_in_file_order_and_names_the_key_meant(tmp_path):
    path = tmp_path / "typos.yaml"
    path.write_text("namespaces:\n"
                    "  team-b: {clientId: nope}\n"
                    "  team-a: {identity: x, clientID: 5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c}\n"
                    "defaults:\n"
                    "  mode: sometimes\n"
                    "unmatch: deny\n")
    p = run_bin("check-policy", path)
    assert p.returncode == 1
    lines = p.stdout.decode().splitlines()
    places = [tuple(int(n) for n in line.split(":")[1:3]) for line in lines]
    assert places == sorted(places) and len(places) == 5, lines
    assert f"{path}:3:25: namespaces.team-a.clientID: unknown key, did you mean clientId? (" in lines[2], lines
    assert lines[-1].startswith(f"{path}:6:1: unmatch: unknown key, did you mean unmatched? ("), lines
