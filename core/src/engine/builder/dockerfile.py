"""Dockerfile parsing: parser directives, comments, line continuations, instructions and flags.

The result keeps each instruction's source text (``original``: what ``Step n/m : ...`` prints,
continuation lines joined without the escape) and its raw argument text; word expansion
happens at dispatch time (:mod:`engine.builder.shell`), because ARG/ENV values change between steps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.errors import InvalidParameter

INSTRUCTIONS = (
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)
#: flags each instruction accepts (``--name=value``); bool flags take no value
FLAGS: dict[str, tuple[str, ...]] = {
    "from": ("platform",),
    "copy": ("from", "chown"),
    "add": ("chown",),
    "healthcheck": ("interval", "timeout", "start-period", "retries"),
}
#: instructions whose arguments may be a JSON array
JSON_FORMS = ("run", "cmd", "entrypoint", "shell", "copy", "add", "volume")

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


class ParseError(InvalidParameter):
    pass


@dataclass
class Instruction:
    name: str  # lower case
    original: str  # the joined source line, for "Step n/m : <original>"
    rest: str  # the argument text after the flags
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None  # the JSON (exec) form, when used

    def __str__(self) -> str:
        return self.original


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"


def parse(text: str) -> Dockerfile:
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    start = 0
    # parser directives: only at the very top, before any comment, blank line or instruction
    seen: set[str] = set()
    for index, raw in enumerate(lines):
        match = _DIRECTIVE.match(raw.strip()) if raw.strip().startswith("#") else None
        if match is None:
            break
        key = match.group(1).lower()
        if key in seen:
            raise ParseError(f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            value = match.group(2)
            if value not in ("\\", "`"):
                raise ParseError(f"invalid ESCAPE '{value}'. Must be ` or \\")
            escape = value
        start = index + 1
    instructions: list[Instruction] = []
    pending = ""
    pending_line = 0
    for index in range(start, len(lines)):
        raw = lines[index]
        stripped = raw.strip()
        if pending == "" and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue  # comments and empty lines inside a continuation are dropped
        text_line = raw.rstrip()
        if not pending:
            pending_line = index + 1
            text_line = text_line.lstrip()
        if text_line.endswith(escape):
            pending += text_line[:-1]
            continue
        pending += text_line
        instructions.append(_instruction(pending, pending_line, escape))
        pending = ""
    if pending.strip():
        instructions.append(_instruction(pending, pending_line, escape))
    return Dockerfile(instructions, escape)


def _instruction(text: str, line: int, escape: str) -> Instruction:
    text = text.strip()
    name, _, rest = text.partition(" ")
    if "\t" in name:
        name, _, more = name.partition("\t")
        rest = more + " " + rest
    lower = name.lower()
    if lower not in INSTRUCTIONS:
        raise ParseError(f"Dockerfile parse error line {line}: unknown instruction: {name.upper()}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, remainder = _split_first(rest)
        if token == "--":
            rest = remainder
            break
        key, has_value, value = token[2:].partition("=")
        if key not in FLAGS.get(lower, ()):
            raise ParseError(f"Dockerfile parse error line {line}: Unknown flag: {key}")
        if not has_value:
            raise ParseError(f"Dockerfile parse error line {line}: Missing a value on flag: {key}")
        flags[key] = value
        rest = remainder
    json_args = None
    if lower in JSON_FORMS and rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            json_args = parsed
    return Instruction(lower, text, rest, line, flags, json_args)


def _split_first(text: str) -> tuple[str, str, str]:
    parts = text.split(None, 1)
    return parts[0], " ", parts[1] if len(parts) > 1 else ""


def split_pairs(text: str, escape: str) -> list[str]:
    """Whitespace-separated tokens, with quotes and escapes kept (parseNameVal's words)."""
    tokens: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == escape and quote == '"' and i + 1 < len(text):
                current.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in " \t\n":
            if current:
                tokens.append("".join(current))
                current = []
        elif ch == escape and i + 1 < len(text):
            current.append(ch)
            current.append(text[i + 1])
            i += 2
            continue
        else:
            if ch in "'\"":
                quote = ch
            current.append(ch)
        i += 1
    if quote:
        raise ParseError("unexpected end of statement while looking for matching " + quote)
    if current:
        tokens.append("".join(current))
    return tokens


def key_values(instruction: Instruction, escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL arguments: ``k=v k2="v 2"`` or the old ``key value with spaces`` (raw, unexpanded)."""
    what = instruction.name.upper()
    rest = instruction.rest
    if not rest:
        raise ParseError(f"{what} requires at least one argument")
    tokens = split_pairs(rest, escape)
    if "=" not in tokens[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ParseError(f"{what} must have two arguments")
        return [(parts[0], parts[1].strip())]
    out = []
    for token in tokens:
        key, has_eq, value = token.partition("=")
        if not has_eq:
            raise ParseError(f"Syntax error - can't find = in {token!r}. Must be of the form: name=value")
        if not key:
            raise ParseError(f"{what} names can not be blank")
        out.append((key, value))
    return out


# -- whole-file checks (dockerd's instructions.Parse: these fail before any step runs) ---------------------

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_\.]*$")


def validate(parsed: Dockerfile) -> None:
    """Raise dockerd's "Dockerfile parse error line N: ..." for a malformed instruction."""
    for ins in parsed.instructions:
        message = _problem(ins, parsed.escape)
        if message:
            raise ParseError(f"Dockerfile parse error line {ins.line}: {message}")


def _problem(ins: Instruction, escape: str) -> str:
    name = ins.name.upper()
    rest = ins.rest
    if ins.name in ("env", "label"):
        if not rest:
            return f"{name} requires at least one argument"
        try:
            key_values(ins, escape)
        except ParseError as exc:
            return str(exc.args[0])
    elif ins.name == "from":
        words = rest.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            return "FROM requires either one or three arguments"
        if len(words) == 3 and not _STAGE_NAME.match(words[2].lower()):
            return f'invalid name for build stage: "{words[2]}", name can\'t start with a number or contain symbols'
    elif ins.name in ("copy", "add"):
        args = ins.json_args if ins.json_args is not None else rest.split()
        if len(args) < 2:
            return f"{name} requires at least two arguments, but only one was provided. Destination could not be determined."
    elif ins.name in ("expose", "volume"):
        if not rest:
            return f"{name} requires at least one argument"
    elif ins.name in ("user", "workdir", "stopsignal", "maintainer"):
        if not rest:
            return f"{name} requires exactly one argument"
    elif ins.name == "arg":
        if len(split_pairs(rest, escape)) != 1:
            return "ARG requires exactly one argument"
    elif ins.name == "shell":
        if ins.json_args is None:
            return "SHELL requires the arguments to be in JSON form"
        if not ins.json_args:
            return "SHELL requires at least one argument"
    elif ins.name == "onbuild":
        first = rest.split(None, 1)[0].upper() if rest else ""
        if not first:
            return "ONBUILD requires at least one argument"
        if first == "ONBUILD":
            return "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        if first in ("FROM", "MAINTAINER"):
            return f"{first} isn't allowed as an ONBUILD trigger"
        try:
            inner = parse(rest).instructions
        except ParseError as exc:
            return str(exc.args[0]).split(": ", 1)[-1]
        return _problem(inner[0], escape) if inner else ""
    elif ins.name == "healthcheck":
        words = rest.split(None, 1)
        kind = words[0].upper() if words else ""
        if not kind:
            return "HEALTHCHECK requires at least one argument"
        if kind == "NONE":
            if len(words) > 1 or ins.flags:
                return "HEALTHCHECK NONE takes no arguments"
        elif kind == "CMD":
            if len(words) < 2:
                return "Missing command after HEALTHCHECK CMD"
            from engine.builder import healthcheck
            from engine.builder.context import BuildError

            try:
                for flag in ("interval", "timeout", "start-period"):
                    healthcheck.flag_duration(ins.flags, flag)
            except BuildError as exc:
                return exc.message
            retries = ins.flags.get("retries", "")
            if retries:
                if not re.fullmatch(r"[+-]?\d+", retries):
                    return f'strconv.ParseInt: parsing "{retries}": invalid syntax'
                if int(retries) < 1:
                    return f"--retries must be at least 1 (not {int(retries)})"
        else:
            return f'Unknown type "{kind}" in HEALTHCHECK (try CMD)'
    return ""
