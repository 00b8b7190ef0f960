"""The image, run for real: a working container made from the image that
tests/image/build.sh built, and the image's own binary run in it with
`buildah run` (chroot isolation: the host's network, so the server listens on
the host's loopback). Its configuration (non-root, exec-form ENTRYPOINT), its
file system (no compiler, no meson, small; the binary hardened: PIE, full
RELRO, stack protector, _FORTIFY_SOURCE) and its binary (--version, certs,
serve answering /healthz and /mutate over verified TLS) are checked. The
server is stopped and the container removed even when a test fails.

Python 3.11 standard library, pytest and jsonpatch only. Needs root, like
build.sh; the same buildah storage as build.sh.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import jsonpatch
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TAG = os.environ.get("IMAGE_TAG", "localhost/spark-identity-webhook:test")
# build.sh tags the Dockerfile's build stage too (that keeps its steps cached).
BUILD_STAGE = "localhost/spark-identity-webhook-build-stage:cache"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spark-identity-webhook"
# The same storage as tests/image/build.sh.
BUILDAH = ["buildah", "--storage-driver", "vfs", "--root", str(CACHE / "containers" / "storage"),
           "--runroot", "/run/spark-identity-webhook/containers"]

NONROOT = 65532
SERVICE = "spark-identity-webhook"
NAMESPACE = "spark-identity-system"
SNI = f"{SERVICE}.{NAMESPACE}.svc"
# Where the image's CMD (and deploy/base/deployment.yaml) expects them.
POLICY_DIR = "/etc/spark-identity/policy"
TLS_DIR = "/etc/spark-identity/tls"
# The runtime base (debian:bookworm-slim, about 78 MB) and the libraries.
MAX_IMAGE_BYTES = 120 * 1000 * 1000


def buildah(*args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*BUILDAH, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"buildah {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def project_version() -> str:
    m = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text(encoding="utf-8"))
    assert m, "no version in meson.build"
    return m.group(1)


@pytest.fixture(scope="module")
def config() -> dict:
    log = os.environ.get("IMAGE_BUILD_ERROR")
    if log:
        # tests/image/run.sh: the build failed; an older image must not pass for this one.
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-25:])
        pytest.fail(f"the image could not be built (see {log}):\n{tail}", pytrace=False)
    p = buildah("inspect", "--type", "image", TAG, check=False)
    if p.returncode != 0:
        pytest.fail(f"no image {TAG} in buildah's storage (tests/image/build.sh builds it):\n{p.stderr}",
                    pytrace=False)
    return json.loads(p.stdout)["OCIv1"]["config"]


@pytest.fixture(scope="module")
def container(config):
    """A working container made from the image; removed at the end."""
    name = f"siw-image-test-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull=false", "--name", name, TAG)
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


@pytest.fixture(scope="module")
def rootfs(container) -> Path:
    """The container's file system, seen from the host."""
    path = Path(buildah("mount", container).stdout.strip())
    try:
        yield path
    finally:
        buildah("umount", container, check=False)


@pytest.fixture(scope="module")
def build_stage(config) -> Path:
    """The file system of the build stage's result, seen from the host."""
    name = f"siw-image-test-build-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull=false", "--name", name, BUILD_STAGE)
    try:
        yield Path(buildah("mount", name).stdout.strip())
    finally:
        buildah("umount", name, check=False)
        buildah("rm", name, check=False)


def run_in(container: str, argv: list[str], mounts=(), timeout: float = 60) -> subprocess.CompletedProcess:
    """argv run in the container as its configured user, no shell involved."""
    vols = [a for src, dst in mounts for a in ("-v", f"{src}:{dst}")]
    return buildah("run", "--isolation", "chroot", *vols, container, "--", *argv, timeout=timeout, check=False)


# ---------------------------------------------------------------------------
# The image's configuration and file system
# ---------------------------------------------------------------------------

def test_runs_as_nonroot(config):
    assert config.get("User") == f"{NONROOT}:{NONROOT}", config.get("User")


def test_entrypoint_is_the_binary_in_exec_form(config, rootfs):
    # A list (exec form) naming the binary itself, not ["/bin/sh", "-c", ...].
    ep = config.get("Entrypoint")
    assert ep == ["/usr/local/bin/spark-identity-webhook"], ep
    binary = rootfs / ep[0].lstrip("/")
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert binary.read_bytes()[:4] == b"\x7fELF"
    cmd = config.get("Cmd")
    assert cmd and cmd[0] == "serve", cmd
    assert "8443/tcp" in (config.get("ExposedPorts") or {}), config.get("ExposedPorts")


def test_no_build_tools(rootfs):
    for tool in ("gcc", "cc", "c99", "cpp", "gcc-12", "x86_64-linux-gnu-gcc-12", "ld", "as",
                 "make", "meson", "ninja", "pkg-config", "pkgconf", "strip"):
        for d in ("usr/bin", "usr/local/bin", "bin"):
            assert not (rootfs / d / tool).exists(), f"/{d}/{tool} is in the image"
    assert not (rootfs / "usr/include/microhttpd.h").exists(), "-dev headers are in the image"
    installed = set()
    status = (rootfs / "var/lib/dpkg/status").read_text(encoding="utf-8")
    for stanza in status.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Status): (.*)$", stanza, re.M))
        if fields.get("Status", "").endswith(" installed"):
            installed.add(fields["Package"])
    build_only = sorted(p for p in installed
                        if p.endswith("-dev") or p in ("meson", "ninja-build", "binutils", "make", "pkgconf",
                                                       "pkg-config", "libcmocka0")
                        or re.fullmatch(r"(gcc|cpp)(-\d+)?", p))
    assert not build_only, f"build packages in the image: {build_only}"
    # libmicrohttpd is linked in statically (subprojects/libmicrohttpd.wrap).
    assert "libmicrohttpd12" not in installed, "libmicrohttpd 0.9 in the image"
    for lib in ("libgnutls30", "libssl3", "libcjson1", "libcurl4", "libyaml-0-2",
                "ca-certificates"):
        assert lib in installed, f"{lib} is not installed"
    assert not list((rootfs / "var/lib/apt/lists").glob("*_Packages*")), "apt lists left in the image"


def test_size_is_reasonable(rootfs, record_testsuite_property):
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    listed = json.loads(buildah("images", "--json", TAG).stdout)[0]["size"]
    record_testsuite_property("image_bytes", total)
    record_testsuite_property("image_size_buildah", listed)
    print(f"image {TAG}: {total / 1e6:.1f} MB of files; buildah says {listed}")
    assert total < MAX_IMAGE_BYTES, f"{total / 1e6:.1f} MB, more than {MAX_IMAGE_BYTES / 1e6:.0f} MB"


def test_build_context_is_only_the_sources(build_stage):
    # The Dockerfile copies the sources by name and .dockerignore keeps build
    # directories, certs/ (keys) and .git out of the context. Besides them,
    # /src holds only what meson fetched there in the build stage: the
    # tarball the wrap names (packagecache/), checked against its hash, and
    # its unpacked tree.
    src = build_stage / "src"
    found = sorted(str(p.relative_to(src)) for p in src.rglob("*") if not p.is_dir())
    assert found, "nothing in /src"
    fetched = [f for f in found if re.match(r"subprojects/(packagecache|libmicrohttpd-[\d.]+)/", f)]
    ours = [f for f in found if f not in fetched]
    allowed = [f for f in ours if f in ("meson.build", "tests/meson.build",
                                        "subprojects/libmicrohttpd.wrap",
                                        "subprojects/packagefiles/libmicrohttpd/meson.build")
               or re.fullmatch(r"(include/(core|io|cmd)/[\w.-]+\.h|webhook/(core|io|cmd)/[\w.-]+\.[ch])", f)]
    assert ours == allowed, f"not sources: {sorted(set(ours) - set(allowed))}"
    assert "meson.build" in ours and "subprojects/libmicrohttpd.wrap" in ours
    wrap = (src / "subprojects/libmicrohttpd.wrap").read_text()
    name = re.search(r"^source_filename\s*=\s*(\S+)", wrap, re.M).group(1)
    want = re.search(r"^source_hash\s*=\s*(\S+)", wrap, re.M).group(1)
    tarball = src / "subprojects/packagecache" / name
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == want


def test_build_stage_built_only_the_binary(build_stage):
    # cmocka is not in the build stage, so tests/meson.build builds no unit test.
    assert (build_stage / "build/spark-identity-webhook").is_file()
    # libmicrohttpd's own build tree (build/subprojects/) has its test
    # sources' dependency files; only our unit tests must be absent.
    ours = [p for p in (build_stage / "build").rglob("test_*")
            if "subprojects" not in p.relative_to(build_stage / "build").parts]
    assert not ours, f"unit tests were built: {ours[:3]}"
    log = (build_stage / "build/meson-logs/meson-log.txt").read_text(errors="replace")
    assert "cmocka not found: unit tests are not built" in log


def readelf(binary: Path, *args: str) -> str:
    exe = shutil.which("readelf")
    assert exe, "readelf is missing on the host (binutils): run .ci/deps.sh"
    p = subprocess.run([exe, "-W", *args, str(binary)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_binary_is_hardened(config, rootfs):
    # meson.build: PIE, full RELRO, the stack protector and, the release
    # build being optimized, _FORTIFY_SOURCE=3; stripping keeps all of it.
    binary = rootfs / config["Entrypoint"][0].lstrip("/")
    assert re.search(r"^\s*Type:\s+DYN\b", readelf(binary, "-h"), re.M), "not a PIE (ELF type is not DYN)"
    dynamic = readelf(binary, "-d")
    assert re.search(r"\(FLAGS_1\).*\bPIE\b", dynamic), "no PIE in FLAGS_1"
    assert re.search(r"\(FLAGS\).*\bBIND_NOW\b", dynamic) or re.search(r"\(FLAGS_1\).*\bNOW\b", dynamic), \
        "lazy binding: no BIND_NOW (-z now), so RELRO is partial"
    assert re.search(r"^\s*GNU_RELRO\s", readelf(binary, "-l"), re.M), "no GNU_RELRO segment"
    imported = set()
    for line in readelf(binary, "--dyn-syms").splitlines():
        f = line.split()
        if len(f) >= 8 and f[6] == "UND" and f[0].endswith(":"):
            imported.add(f[7].split("@")[0])
    assert "__stack_chk_fail" in imported, "no stack protector (__stack_chk_fail)"
    fortified = {s for s in imported if s.endswith("_chk") and s != "__stack_chk_fail"}
    assert {"__snprintf_chk", "__memcpy_chk"} <= fortified, f"not fortified: {sorted(fortified)}"


# ---------------------------------------------------------------------------
# The image's binary, run in the container
# ---------------------------------------------------------------------------

def test_version_label_is_mesons_version(config):
    """One version: meson.build's, in the OCI label that registries and
    scanners read, as --version prints it (build.sh passes it; the build
    stage checks it against the binary)."""
    labels = config.get("Labels") or {}
    assert labels.get("org.opencontainers.image.version") == project_version(), labels
    assert labels.get("org.opencontainers.image.licenses") == "Apache-2.0", labels
    assert labels.get("org.opencontainers.image.title") == "spark-identity-webhook", labels


def test_version(config, container):
    p = run_in(container, [*config["Entrypoint"], "--version"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"spark-identity-webhook {project_version()}", p.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Served:
    """`serve` in the container, with the image's ENTRYPOINT and CMD; only
    the address is ours (a free port on the host's loopback)."""

    def __init__(self, config: dict, container: str, workdir: Path):
        self.certs = workdir / "tls"
        self.policy = workdir / "policy"
        self.port = free_port()
        self.stderr_path = workdir / "serve.stderr"
        cmd = [a if not a.startswith("--listen") else f"--listen=127.0.0.1:{self.port}" for a in config["Cmd"]]
        assert cmd != config["Cmd"], f"the image's CMD has no --listen: {config['Cmd']}"
        self.argv = [*BUILDAH, "run", "--isolation", "chroot",
                     "-v", f"{self.policy}:{POLICY_DIR}:ro", "-v", f"{self.certs}:{TLS_DIR}:ro",
                     container, "--", *config["Entrypoint"], *cmd]
        self.proc = None
        self.pid = None

    def start(self, timeout: float = 30):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"buildah run exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                st, _, body = self.request("GET", "/readyz", timeout=2)
                if st == 200:
                    self.pid = self.server_pid()
                    return
                last = f"/readyz answered {st}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout}s ({last}):\n{self.stderr()}")

    def server_pid(self) -> int:
        """The server process (a descendant of `buildah run`, running the
        image's binary)."""
        for pid in descendants(self.proc.pid):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if exe.endswith("/usr/local/bin/spark-identity-webhook"):
                return pid
        raise AssertionError(f"no spark-identity-webhook process under buildah run ({self.proc.pid})")

    def alive(self, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/exe").endswith("/usr/local/bin/spark-identity-webhook")
        except OSError:
            return False

    def stop(self) -> int | None:
        """SIGTERM to the server, as the kubelet would send it; after 10 s,
        SIGKILL to what is left of `buildah run` and the server. Returns
        buildah run's status (the server's)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if self.pid is not None and self.alive(self.pid):
                os.kill(self.pid, signal.SIGTERM)
            else:
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # not reaped yet: still our group
        if self.pid is not None and self.alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        rc = self.proc.wait(10)
        self.proc = None
        self._err.close()
        return rc

    def stderr(self, tail: int = 30) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-tail:])
        except OSError:
            return ""

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 10):
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
            try:
                conn.sock = ctx.wrap_socket(raw, server_hostname=SNI)
            except BaseException:
                raw.close()
                raise
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def served(config, container, tmp_path_factory):
    """Certificates from the image's `certs` command (run in the container,
    as its user, into a directory that user owns), the test policy, and
    `serve`; stopped at the end whatever happened."""
    work = tmp_path_factory.mktemp("image")
    s = Served(config, container, work)
    s.certs.mkdir()
    os.chown(s.certs, NONROOT, NONROOT)
    p = run_in(container, [*config["Entrypoint"], "certs", "--service", SERVICE, "--namespace", NAMESPACE,
                           "--out", "/out", "--ip", "127.0.0.1"], mounts=[(s.certs, "/out")])
    assert p.returncode == 0, f"certs failed ({p.returncode}):\n{p.stderr}"
    s.policy.mkdir()
    shutil.copy(FIXTURES / "policy.yaml", s.policy / "policy.yaml")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_certs_written_by_the_nonroot_user(served):
    key = served.certs / "tls.key"
    st = key.stat()
    assert (st.st_uid, st.st_gid) == (NONROOT, NONROOT), (st.st_uid, st.st_gid)
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)


def test_server_process_runs_as_nonroot(served):
    out = subprocess.run(["ps", "-o", "uid=,gid=", "-p", str(served.pid)], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(NONROOT), str(NONROOT)], out.stdout


def test_healthz(served):
    st, hdrs, body = served.request("GET", "/healthz")
    assert st == 200, body
    assert json.loads(body) == {"status": "ok"}


def test_mutate_spark_driver(served):
    review = json.loads((FIXTURES / "spark35-driver.json").read_text(encoding="utf-8"))
    review["request"]["uid"] = str(uuid.uuid4())
    st, hdrs, body = served.request("POST", "/mutate?timeout=10s", json.dumps(review).encode(),
                                    {"Content-Type": "application/json"})
    assert st == 200, body[:500]
    assert hdrs.get("content-type", "").split(";")[0] == "application/json", hdrs
    out = json.loads(body)
    assert out["apiVersion"] == review["apiVersion"] and out["kind"] == "AdmissionReview", out
    r = out["response"]
    assert r["uid"] == review["request"]["uid"] and r["allowed"] is True, r
    assert r.get("patchType") == "JSONPatch", r
    ops = json.loads(base64.b64decode(r["patch"], validate=True))
    pod = jsonpatch.apply_patch(review["request"]["object"], ops, in_place=False)
    # tests/fixtures/policy.yaml: team-a uses identity sparkaks.
    assert review["request"]["namespace"] == "team-a"
    assert pod["metadata"]["labels"]["aadpodidbinding"] == "sparkaks", ops
    # The decision line passes through buildah's output copy: give it a moment.
    deadline = time.monotonic() + 10
    while '"decision":"mutated"' not in served.stderr_path.read_text(errors="replace") \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '"decision":"mutated"' in served.stderr_path.read_text(errors="replace"), served.stderr()


def test_stops_on_sigterm(served):
    """Last: the server ends cleanly on SIGTERM (what the kubelet sends)."""
    assert served.proc.poll() is None, served.stderr()
    rc = served.stop()
    assert rc == 0, f"buildah run ended with {rc}:\n{served.stderr()}"
