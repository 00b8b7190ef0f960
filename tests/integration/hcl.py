"""A strict reader of the Terraform `render identities -o terraform` writes
(no terraform binary here): comments, then `resource "TYPE" "LABEL" { ... }`
blocks whose arguments are `name = "string"` or `name = ["string", ...]`.
Strings are HCL quoted strings: the escapes \\" \\\\ \\n \\r \\t \\uNNNN, and
$${ / %%{ for a literal ${ / %{; an unescaped ${ or %{ (a template) is an
error, as is anything else this reader does not know. Used by
test_render_identities.py and tests/e2e/test_20_render_identities.py."""
from __future__ import annotations

import re

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class HclError(ValueError):
    pass


class _Reader:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.line = 1

    def error(self, what: str) -> HclError:
        return HclError(f"line {self.line}: {what}: {self.s[self.i:self.i + 40]!r}")

    def skip(self, newlines: bool = True) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            elif c == "\n" and newlines:
                self.line += 1
                self.i += 1
            elif c in " \t":
                self.i += 1
            else:
                return

    def expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise self.error(f"expected {token!r}")
        self.i += len(token)

    def ident(self) -> str:
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise self.error("expected an identifier")
        self.i = m.end()
        return m.group()

    def string(self) -> str:
        self.expect('"')
        out = []
        while True:
            if self.i >= len(self.s) or self.s[self.i] == "\n":
                raise self.error("unterminated string")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                e = self.s[self.i + 1:self.i + 2]
                simple = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
                if e in simple:
                    out.append(simple[e])
                    self.i += 2
                elif e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", self.s[self.i + 2:self.i + 6]):
                    out.append(chr(int(self.s[self.i + 2:self.i + 6], 16)))
                    self.i += 6
                else:
                    raise self.error("unknown escape")
            elif c in "$%" and self.s.startswith(c + c + "{", self.i):
                out.append(c + "{")
                self.i += 3
            elif c in "$%" and self.s.startswith(c + "{", self.i):
                raise self.error("a template sequence")
            else:
                out.append(c)
                self.i += 1

    def value(self):
        if self.s.startswith("[", self.i):
            self.i += 1
            items = []
            self.skip()
            while not self.s.startswith("]", self.i):
                items.append(self.string())
                self.skip()
                if self.s.startswith(",", self.i):
                    self.i += 1
                    self.skip()
                elif not self.s.startswith("]", self.i):
                    raise self.error("expected , or ]")
            self.i += 1
            return items
        return self.string()


def parse(text: str) -> list[dict]:
    """The resources, in order: {"type", "label", "args": {name: value},
    "comment": the comment lines right above, joined}."""
    r = _Reader(text)
    resources = []
    while True:
        start = r.i
        r.skip()
        if r.i >= len(r.s):
            return resources
        comment = "\n".join(line.strip() for line in r.s[start:r.i].splitlines()
                            if line.strip().startswith("#"))
        if r.ident() != "resource":
            raise r.error("expected resource")
        r.skip(newlines=False)
        rtype = r.string()
        r.skip(newlines=False)
        label = r.string()
        if not _IDENT.fullmatch(label):
            raise r.error(f"label {label!r} is not an identifier")
        r.skip(newlines=False)
        r.expect("{")
        args: dict = {}
        while True:
            r.skip()
            if r.s.startswith("}", r.i):
                r.i += 1
                break
            name = r.ident()
            if name in args:
                raise r.error(f"argument {name} twice")
            r.skip(newlines=False)
            r.expect("=")
            r.skip(newlines=False)
            args[name] = r.value()
            r.skip(newlines=False)
            if not r.s.startswith("\n", r.i):
                raise r.error("expected the end of the line")
        resources.append({"type": rtype, "label": label, "args": args, "comment": comment})
