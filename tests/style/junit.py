"""Writes a style step's JUnit XML from its results: one line per check,
tab-separated: name, ok or fail, message. Usage: junit.py SUITE RESULTS.tsv OUT.xml
(tests/style/check-format.sh, tests/style/analyze.sh; tests/summary.py counts
the XML like the other suites'). A results file with no line gives a suite
with no test, which tests/summary.py counts as a failure."""
import sys
import xml.etree.ElementTree as ET


def main(suite_name, results, out):
    rows = []
    with open(results, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) == 3:
                rows.append(parts)
    failures = sum(1 for r in rows if r[1] != "ok")
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(rows)), failures=str(failures),
                       errors="0", skipped="0")
    for name, state, message in rows:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=name)
        message = message.replace("\\n", "\n")
        if state != "ok":
            ET.SubElement(case, "failure", message=message.splitlines()[0] if message else "failed").text = message
        elif message:
            ET.SubElement(case, "system-out").text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
