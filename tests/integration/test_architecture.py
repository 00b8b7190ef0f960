"""ARCHITECTURE.md's map of the modules is true: every module its table
names is a file in the layer it says, every source file of webhook/ is in
the table, and each layer's headers are where the build looks for them."""
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("core", "io", "cmd")


def table():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| (core|io|cmd) \| (.+?) \| (.+?) \|$", text, re.M)
    assert rows, "no module table in ARCHITECTURE.md"
    out = []
    for layer, modules, job in rows:
        names = re.findall(r"`([\w*]+)`", modules)
        assert names, f"a row without a module: {modules}"
        assert job.strip(), f"{names}: no job"
        out += [(layer, n) for n in names]
    return out


def sources(layer):
    return sorted(p.stem for p in (ROOT / "webhook" / layer).glob("*.c"))


def test_every_module_in_the_table_is_a_file_of_its_layer():
    for layer, name in table():
        found = fnmatch.filter(sources(layer), name)
        assert found, f"ARCHITECTURE.md names {layer}/{name}, which is not in webhook/{layer}/"


def test_every_source_file_is_in_the_table():
    rows = table()
    for layer in LAYERS:
        for stem in sources(layer):
            assert any(l == layer and fnmatch.fnmatch(stem, n) for l, n in rows), \
                f"webhook/{layer}/{stem}.c is missing from ARCHITECTURE.md's table of modules"


def test_the_tree_has_only_the_three_layers():
    assert not list((ROOT / "webhook").glob("*.c")), "a source file outside the layers"
    assert not list((ROOT / "include").glob("*.h")), "a header outside the layers"
    for layer in LAYERS:
        assert (ROOT / "include" / layer).is_dir() and (ROOT / "webhook" / layer).is_dir()


def test_a_layer_compiles_with_its_headers_and_those_below_only():
    build = (ROOT / "meson.build").read_text()
    assert "include_directories('include/core')" in build
    assert "include_directories('include/core', 'include/io')" in build
    core = re.search(r"core = static_library\((.*?)\)\n", build, re.S).group(1)
    assert "include_directories : inc_core" in core
    # The core links nothing that does I/O or threads.
    deps = re.search(r"dependencies : \[(.*?)\]", core).group(1)
    assert set(d.strip() for d in deps.split(",")) == {"cjson", "yaml"}, deps
