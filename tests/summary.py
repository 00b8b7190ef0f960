"""Counts the results of every suite: the TAP lines of the unit tests in
meson's test log, and pytest's JUnit XML (the integration tests of each
build; the end-to-end tests, BUILD/e2e.xml, the image tests, BUILD/image.xml,
the soak, BUILD/soak.xml, the attack suite, BUILD/attack.xml, the monitoring suite,
BUILD/monitoring.xml, the Helm chart's, BUILD/helm.xml, the server
under valgrind, BUILD/valgrind.xml, and the style steps, BUILD/format.xml
(clang-format), BUILD/length.xml (the length of functions) and
BUILD/analyzer.xml (gcc -fanalyzer),
of the first build only; the fuzz targets' FUZZ_BUILD/fuzz.xml with --fuzz
FUZZ_BUILD; with --tsan TSAN_BUILD, the ThreadSanitizer build's unit tests,
integration tests, soak and its reports, TSAN_BUILD/tsan.xml, as
tests/tsan.sh writes them). Prints one line per suite and, last,
"N passed, N failed". A suite that ran no test counts as one failure.
Usage: summary.py BUILD ASAN_BUILD [--fuzz FUZZ_BUILD] [--tsan TSAN_BUILD]"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def junit_counts(xmlf):
    """(passed, failed) from pytest's JUnit XML; a missing file or one with
    no test is one failure."""
    p = f = 0
    if os.path.exists(xmlf):
        root = ET.parse(xmlf).getroot()
        for suite in ([root] if root.tag == "testsuite" else root.findall("testsuite")):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            p += tests - bad - skipped
            f += bad + skipped  # a skipped test hides something: count it against us
    if p + f == 0:
        f = 1
    return p, f


def option(args, name):
    """The value of `name VALUE` in args (removed from them), or None."""
    if name not in args:
        return None
    i = args.index(name)
    value = args[i + 1]
    del args[i:i + 2]
    return value


builds = sys.argv[1:]
fuzz = option(builds, "--fuzz")  # tests/fuzz runs once, in its own clang build
tsan = option(builds, "--tsan")  # tests/tsan.sh: its own ThreadSanitizer build

total_pass = total_fail = 0
for build in builds + ([tsan] if tsan else []):
    log = os.path.join(build, "meson-logs", "testlog.json")
    p = f = 0
    if os.path.exists(log):
        for line in open(log, encoding="utf-8"):
            t = json.loads(line)  # tests/run.sh runs only the unit suite through meson
            out = t.get("stdout") or ""
            oks = sum(1 for l in out.splitlines() if l.startswith("ok "))
            bad = sum(1 for l in out.splitlines() if l.startswith("not ok "))
            if t.get("result") not in ("OK", "EXPECTEDFAIL") and bad == 0:
                bad = 1  # crashed or timed out before reporting
            p += oks
            f += bad
    if p + f == 0:
        f = 1
    print(f"unit ({build}): {p} passed, {f} failed")
    total_pass += p
    total_fail += f

    suites = [("integration", "pytest.xml")]
    if build == tsan:
        suites.append(("soak", "soak.xml"))  # tests/soak/soak.py --tsan
        suites.append(("tsan reports", "tsan.xml"))  # no report from the unit and integration runs
    elif build == builds[0]:
        suites.append(("end-to-end", "e2e.xml"))  # tests/e2e runs against the first build only
        suites.append(("image", "image.xml"))  # tests/image runs once, its results in the first build
        suites.append(("soak", "soak.xml"))  # tests/soak runs once, against the first build
        suites.append(("valgrind", "valgrind.xml"))  # the first build's server under memcheck
        suites.append(("attack", "attack.xml"))  # tests/attack against the first build's server
        suites.append(("monitoring", "monitoring.xml"))  # tests/monitoring against the first build's server
        suites.append(("helm", "helm.xml"))  # tests/helm, once
        suites.append(("format", "format.xml"))  # tests/style/check-format.sh, once
        suites.append(("length", "length.xml"))  # tests/style/check-length.sh, once
        suites.append(("analyzer", "analyzer.xml"))  # tests/style/analyze.sh, its own build
    for label, name in suites:
        p, f = junit_counts(os.path.join(build, name))
        print(f"{label} ({build}): {p} passed, {f} failed")
        total_pass += p
        total_fail += f

if fuzz:
    p, f = junit_counts(os.path.join(fuzz, "fuzz.xml"))
    print(f"fuzz ({fuzz}): {p} passed, {f} failed")
    total_pass += p
    total_fail += f

print(f"{total_pass} passed, {total_fail} failed")
