"""Writes the fuzz suite's JUnit XML from tests/fuzz/run.sh's results:
one line per target and phase, tab-separated: target, phase (replay or
fuzz), ok or fail, seconds, message, log file. A failure's message names the
crash file. Usage: junit.py RESULTS.tsv OUT.xml"""
import re
import sys
import xml.etree.ElementTree as ET

# Characters XML 1.0 cannot carry: fuzz inputs quoted in messages have them.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def main(results, out):
    rows = []
    with open(results, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = NOT_XML.sub("?", line.rstrip("\n")).split("\t")
            if len(parts) == 6:
                rows.append(parts)
    failures = sum(1 for r in rows if r[2] != "ok")
    total = sum(float(r[3] or 0) for r in rows)
    suite = ET.Element("testsuite", name="fuzz", tests=str(len(rows)), failures=str(failures),
                       errors="0", skipped="0", time=f"{total:.1f}")
    for target, phase, state, secs, message, log in rows:
        case = ET.SubElement(suite, "testcase", classname=f"fuzz.{target}",
                             name=f"fuzz_{target} {phase}", time=f"{float(secs or 0):.1f}")
        if state != "ok":
            fail = ET.SubElement(case, "failure", message=message)
            fail.text = f"{message}\nlog: {log}\n"
        else:
            ET.SubElement(case, "system-out").text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
