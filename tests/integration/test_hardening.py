"""The binary is built hardened (meson.build): position independent, full
RELRO (the GOT read-only once every symbol is bound at start), the stack
protector, and, where the optimizer runs and no sanitizer does,
_FORTIFY_SOURCE's checked libc calls. Read from the ELF file with readelf
(binutils); which of them apply comes from the build directory's own meson
options, so the same test holds for the debug, ASan, TSan and release
builds. tests/image checks the image's binary the same way."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import BIN


def readelf(*args: str) -> str:
    exe = shutil.which("readelf")
    assert exe, "readelf is missing (binutils): run .ci/deps.sh"
    p = subprocess.run([exe, "-W", *args, str(BIN)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def imported(symbols: str) -> set[str]:
    """The undefined (imported) dynamic symbols, without their versions."""
    out = set()
    for line in symbols.splitlines():
        f = line.split()
        if len(f) >= 8 and f[6] == "UND" and f[0].endswith(":"):
            out.add(f[7].split("@")[0])
    return out


@pytest.fixture(scope="module")
def options() -> dict:
    info = BIN.parent / "meson-info" / "intro-buildoptions.json"
    if not info.is_file():
        pytest.fail(f"{BIN} is not in a meson build directory (no {info})", pytrace=False)
    return {o["name"]: o["value"] for o in json.loads(info.read_text())}


def test_position_independent():
    assert re.search(r"^\s*Type:\s+DYN\b", readelf("-h"), re.M), "not a PIE (ELF type is not DYN)"
    assert re.search(r"\(FLAGS_1\).*\bPIE\b", readelf("-d")), "no PIE in FLAGS_1"


def test_full_relro():
    assert re.search(r"^\s*GNU_RELRO\s", readelf("-l"), re.M), "no GNU_RELRO segment"
    dynamic = readelf("-d")
    assert re.search(r"\(FLAGS\).*\bBIND_NOW\b", dynamic) or re.search(r"\(FLAGS_1\).*\bNOW\b", dynamic), \
        "lazy binding: no BIND_NOW (-z now), so RELRO is partial"


def test_stack_protector():
    assert "__stack_chk_fail" in imported(readelf("--dyn-syms")), "no stack protector (__stack_chk_fail)"


def test_fortify_where_it_applies(options):
    fortified = sorted(s for s in imported(readelf("--dyn-syms"))
                       if s.endswith("_chk") and s != "__stack_chk_fail")
    # _FORTIFY_SOURCE needs the optimizer; the sanitizers check those calls themselves.
    expected = options["optimization"] not in ("0", "plain") and options["b_sanitize"] == "none"
    if expected:
        assert fortified, f"optimization {options['optimization']} and no sanitizer, yet no fortified call"
        # Those the code cannot do without: its formatting and copies.
        assert {"__snprintf_chk", "__memcpy_chk"} <= set(fortified), fortified
    else:
        assert not fortified, (f"fortified calls in a build with optimization {options['optimization']} "
                               f"and b_sanitize {options['b_sanitize']}: {fortified}")
