"""``.dockerignore``: Docker's pattern rules (fileutils.PatternMatcher).

Patterns are cleaned paths relative to the context; ``*`` and ``?`` stay within one path element,
``**`` spans any number of them; ``!`` makes an exception; the last matching pattern decides. A
pattern also matches everything below a directory it matches.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]
    depth: int


def read_patterns(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1  # "**/" matches zero or more directories
                    out.append("(.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                body = "^" + body[1:].replace("\\", "\\\\") if body.startswith("^") else body.replace("\\", "\\\\")
                out.append("[" + body + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out))


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            exclusion = raw.startswith("!")
            text = raw[1:].strip() if exclusion else raw
            text = posixpath.normpath(text).lstrip("/") or "."
            if text == ".":
                continue
            self.patterns.append(Pattern(text, exclusion, _compile(text), len(text.split("/"))))

    @property
    def has_exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is ignored."""
        parts = path.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # cannot change the outcome
            hit = bool(pattern.regex.match(path))
            if not hit and len(parts) > 1 and pattern.depth < len(parts):
                hit = bool(pattern.regex.match("/".join(parts[: pattern.depth])))
            if hit:
                matched = not pattern.exclusion
        return matched


def apply(context: Path, patterns: list[str], keep: tuple[str, ...] = ()) -> None:
    """Remove what the patterns ignore from an extracted context (``keep``: paths never removed)."""
    matcher = Matcher(patterns)
    if not matcher.patterns:
        return
    for top, dirs, files in os.walk(context, topdown=False):
        rel_top = os.path.relpath(top, context)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            if rel not in keep and matcher.matches(rel):
                os.unlink(os.path.join(top, name))
        for name in dirs:
            full = os.path.join(top, name)
            if os.path.islink(full) or not os.path.isdir(full):
                continue
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            if matcher.matches(rel) and not any(os.scandir(full)):
                os.rmdir(full)
