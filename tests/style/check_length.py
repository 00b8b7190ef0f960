"""Lists every C function of the given files longer than the limit, counted
from the line of its opening brace at column 0 to that of its closing brace
at column 0, both included, whose comment right above it (above the
signature) has no line starting with "Long:" saying why it is long.

Prints one line per offender, FILE:LINE: FUNCTION is N lines (over LIMIT)
with no "Long:" reason, LINE being the line of the function's name, and
writes RESULTS (one check per file, as tests/style/junit.py reads them).
Usage: check_length.py LIMIT RESULTS.tsv FILE...   exit 1 on an offender
(tests/style/check-length.sh)."""
import re
import sys

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def signature(lines, brace):
    """(first line index, text) of the signature ending on the line above
    the brace: the lines up to a blank one, a comment, a preprocessor line
    or the end of the previous declaration."""
    i = brace - 1
    while i >= 0:
        s = lines[i].rstrip()
        if (not s or s.startswith("#") or s.endswith(";") or s.endswith("}") or s.endswith("*/")
                or s.lstrip().startswith("//")):
            break
        i -= 1
    return i + 1, " ".join(l.strip() for l in lines[i + 1:brace])


def name_of(sig):
    """The function's name: the last identifier before the first "(" of
    the signature (good enough for our code: no function returns a function
    pointer)."""
    head = sig.split("(", 1)[0]
    names = IDENT.findall(head)
    return names[-1] if names else "?"


def comment_above(lines, first):
    """The lines of the comment that ends right above the signature (none
    when a blank line or code comes between)."""
    i = first - 1
    if i < 0:
        return []
    s = lines[i].strip()
    if s.startswith("//"):
        j = i
        while j >= 0 and lines[j].strip().startswith("//"):
            j -= 1
        return lines[j + 1:first]
    if not s.endswith("*/"):
        return []
    j = i
    while j >= 0 and "/*" not in lines[j]:
        j -= 1
    return lines[max(j, 0):first]


def has_reason(comment):
    for line in comment:
        s = line.strip()
        for lead in ("/*", "//", "*"):
            if s.startswith(lead):
                s = s[len(lead):].strip()
                break
        if s.startswith("Long:"):
            return True
    return False


def check(path, limit):
    """The offenders of one file: (line, name, length)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    found = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip() != "{":
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("}"):
            end += 1
        length = end - i + 1
        if length > limit:
            first, sig = signature(lines, i)
            if not has_reason(comment_above(lines, first)):
                name = name_of(sig)
                at = next((k for k in range(first, i) if re.search(r"\b%s\s*\(" % re.escape(name), lines[k])),
                          first)
                found.append((at + 1, name, length))
        i = end + 1
    return found


def main(limit, results, files):
    limit = int(limit)
    status = 0
    with open(results, "w", encoding="utf-8") as out:
        for path in files:
            found = check(path, limit)
            msgs = ["%s:%d: %s is %d lines (over %d) with no \"Long:\" reason" % (path, line, name, n, limit)
                    for line, name, n in found]
            for m in msgs:
                print(m)
            if msgs:
                status = 1
                out.write("length %s\tfail\t%s (split it, or say why in a \"Long:\" line of its comment)\n"
                          % (path, "\\n".join(msgs)))
            else:
                out.write("length %s\tok\t\n" % path)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
