"""The README says what the binary does: every flag of every command, every
metric the server exports (and which only while it reads namespaces), links
that stay inside the repository, and one version everywhere."""
import re
import subprocess
from pathlib import Path

from conftest import BIN, ROOT, run_bin

README = (ROOT / "README.md").read_text(encoding="utf-8")
METRIC = "spark_identity_webhook_"


def commands() -> list[str]:
    """The commands `--help` lists."""
    out = run_bin("--help").stdout.decode()
    block = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.split() and line.split()[0] != "help"]


def help_flags(cmd: str) -> set[str]:
    """The flags of the options list of `help CMD` (lines "  --flag ..." or
    "  -o, --flag ..."; "  -o ..." alone counts as -o), without --help."""
    text = run_bin("help", cmd).stdout.decode()
    flags = set()
    for m in re.finditer(r"^  (?:(-[a-zA-Z]), )?(--[a-z][a-z0-9-]*)|^  (-[a-zA-Z])[ ,]", text, re.M):
        flags.add(normal(m.group(2) or m.group(3)))
    return flags - {"--help"}


def normal(flag: str) -> str:
    return {"-o": "--output", "-h": "--help"}.get(flag, flag)


def readme_command_lines() -> dict[str, str]:
    """The README's command list (the block under "## Commands"): each
    command's lines joined, continuation lines being indented."""
    section = README.split("\n## Commands\n", 1)[1]
    block = section.split("```\n", 2)[1]
    out: dict[str, str] = {}
    cmd = None
    for line in block.splitlines():
        if line.startswith("spark-identity-webhook "):
            cmd = line.split()[1]
            out[cmd] = out.get(cmd, "") + " " + line
        elif line.startswith(" ") and cmd:
            out[cmd] += " " + line
    return out


def readme_flags(line: str) -> set[str]:
    return {normal(f) for f in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])", line)}


def test_the_readme_lists_every_flag_of_every_command():
    lines = readme_command_lines()
    for cmd in commands():
        assert cmd in lines, f"README's command list has no line for {cmd}"
        missing = help_flags(cmd) - readme_flags(lines[cmd])
        assert not missing, f"README's {cmd} line lacks {sorted(missing)}"


def test_the_readme_names_no_flag_a_command_lacks(tmp_path):
    lines = readme_command_lines()
    for cmd in commands():
        extra = readme_flags(lines[cmd]) - help_flags(cmd)
        assert not extra, f"README's {cmd} line names {sorted(extra)}, which 'help {cmd}' does not list"
        for flag in help_flags(cmd):
            # a flag that takes a value swallows the next one; one that takes
            # none leaves it to be refused: either way, never "unknown option FLAG"
            p = subprocess.run([str(BIN.resolve()), cmd, flag, "--not-an-option"], input=b"", cwd=tmp_path,
                               capture_output=True, timeout=20)
            assert f"unknown option {flag} (see".encode() not in p.stderr, (cmd, flag, p.stderr)
            assert p.returncode == 2, (cmd, flag, p.returncode, p.stderr)   # all of these are usage errors
    # ... and none of those usage errors left a file behind (serve --audit-log opened its log first)
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_the_serve_flags_of_the_readme_tables_are_real():
    tables = README.split("\n## Commands\n", 1)[1].split("\n### ", 1)[0]
    named = {f for f in re.findall(r"^\| `(--[a-z0-9-]+)", tables, re.M)}
    assert named and named <= help_flags("serve"), named - help_flags("serve")


# Metrics

def readme_metrics() -> set[str]:
    names = set(re.findall(METRIC + r"[a-z0-9_]+", README))
    names |= {METRIC + m for m in re.findall(r"`\.\.\._([a-z0-9_]+)", README)}
    return names


def namespace_only_metrics() -> set[str]:
    """The metrics the README says exist only while the server reads namespaces."""
    m = re.search(r"Only while the server reads namespaces.*?\n\n", README, re.S)
    assert m, "README does not say which metrics exist only while namespaces are read"
    return {METRIC + n for n in re.findall(r"`\.\.\._([a-z0-9_]+)", m.group(0))}


def exported(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith(METRIC):
            name = re.match(r"[a-z0-9_]+", line).group(0)
            names.add(name)
            names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def test_every_metric_the_readme_names_is_exported_or_documented_as_namespace_only(client):
    status, _, body = client.request("GET", "/metrics")
    assert status == 200
    have = exported(body.decode())
    ns_only = namespace_only_metrics()
    source = "".join(p.read_text() for p in (ROOT / "webhook").rglob("*.c"))
    for name in sorted(readme_metrics()):
        if name in ns_only:
            assert name not in have, f"{name} is exported without a Kubernetes API: README says it is not"
            assert f'NS "{name.removeprefix(METRIC)} ' in source, f"{name} is in no source"
            continue
        assert name in have, f"README names {name}, which the server does not export (and not as namespace-only)"


def test_every_metric_the_server_exports_is_in_the_readme(client):
    _, _, body = client.request("GET", "/metrics")
    missing = exported(body.decode()) - readme_metrics()
    missing = {m for m in missing if not re.search(r"_(bucket|sum|count)$", m)}
    assert not missing, f"README does not name {sorted(missing)}"


# Links

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[Path]:
    skip = ("build", "subprojects", ".git")
    return [p for p in ROOT.rglob("*.md")
            if not any(part.startswith(skip) for part in p.relative_to(ROOT).parts[:-1])]


def test_relative_links_resolve_inside_the_repository():
    root = ROOT.resolve()
    files = markdown_files()
    assert ROOT / "README.md" in files and ROOT / "tests" / "e2e" / "README.md" in files
    for md in files:
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://|mailto:|#", target):
                continue
            path = (md.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(root), f"{md.relative_to(ROOT)}: {target} leaves the repository"
            assert path.exists(), f"{md.relative_to(ROOT)}: {target} does not exist"


def test_no_document_points_outside_the_repository():
    for md in markdown_files():
        text = md.read_text(encoding="utf-8")
        for bad in ("/work/", "file://", "](/"):
            assert bad not in text, f"{md.relative_to(ROOT)} refers to {bad}"


# One version

def meson_version() -> str:
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text(), re.S)
    assert m
    return m.group(1)


def test_one_version_everywhere(client):
    version = meson_version()
    p = run_bin("--version")
    assert p.returncode == 0 and p.stdout.decode() == f"spark-identity-webhook {version}\n"
    _, _, body = client.request("GET", "/metrics")
    assert f'{METRIC}build_info{{version="{version}"}} 1\n' in body.decode()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(version)}\]", changelog, re.M), "CHANGELOG.md has no section for it"
    assert "## [Unreleased]" in changelog
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^\s*org\.opencontainers\.image\.version="\$\{VERSION\}"', dockerfile, re.M), \
        "the image's version label is not the VERSION build argument"
    assert '--build-arg "VERSION=$version"' in (ROOT / "tests" / "image" / "build.sh").read_text()
    assert not re.search(r"\d+\.\d+\.\d+", "".join(l for l in dockerfile.splitlines(True) if "VERSION" in l)), \
        "the Dockerfile repeats the version instead of taking it from meson.build"


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "license : 'Apache-2.0'" in (ROOT / "meson.build").read_text()

