"""``--change`` for import and commit: Dockerfile instructions applied to a container config.

dockerd joins the changes into a tiny Dockerfile and dispatches it onto the config
(``BuildFromConfig``); only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER,
VOLUME and WORKDIR are allowed. Words go through the builder's shell-style lexing: quotes,
backslash escapes and ``$VAR`` / ``${VAR}`` / ``${VAR:-x}`` / ``${VAR:+x}`` from the config's Env.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from typing import Any

from engine.drivers.duration import parse_duration
from engine.errors import InvalidParameter

VALID_COMMANDS = ("cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "user", "volume", "workdir")


def _lines(changes: list[str]) -> list[str]:
    """Join continuation lines, drop blanks and comments."""
    out: list[str] = []
    pending = ""
    for raw in "\n".join(changes).split("\n"):
        line = raw.rstrip("\r")
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        out.append(pending + line)
        pending = ""
    if pending.strip():
        out.append(pending)
    return out


def _env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def process_word(word: str, env: dict[str, str]) -> str:
    """The builder's ShellLex.ProcessWord: quote removal, escapes and variable expansion."""
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        c = word[i]
        if c == "'":
            end = word.find("'", i + 1)
            if end < 0:
                raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
            out.append(word[i + 1 : end])
            i = end + 1
        elif c == '"':
            i += 1
            while i < n and word[i] != '"':
                if word[i] == "\\" and i + 1 < n and word[i + 1] in '"\\$':
                    out.append(word[i + 1])
                    i += 2
                elif word[i] == "$":
                    text, i = _expand(word, i, env)
                    out.append(text)
                else:
                    out.append(word[i])
                    i += 1
            if i >= n:
                raise InvalidParameter("unexpected end of statement while looking for matching double-quote")
            i += 1
        elif c == "\\" and i + 1 < n:
            out.append(word[i + 1])
            i += 2
        elif c == "$":
            text, i = _expand(word, i, env)
            out.append(text)
        else:
            out.append(c)
            i += 1
    return "".join(out)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _expand(word: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """Expand the variable at ``word[i] == '$'``; returns the text and the index after it."""
    if i + 1 < len(word) and word[i + 1] == "{":
        end = word.find("}", i + 2)
        if end < 0:
            raise InvalidParameter(f"missing '}}' in '{word}'")
        body = word[i + 2 : end]
        m = _NAME.match(body)
        if m is None:
            raise InvalidParameter(f"bad substitution: '{body}'")
        name, rest = m.group(0), body[m.end() :]
        value = env.get(name)
        if rest.startswith(":-"):
            return (value if value else process_word(rest[2:], env)), end + 1
        if rest.startswith(":+"):
            return (process_word(rest[2:], env) if value else ""), end + 1
        if rest:
            raise InvalidParameter(f"unsupported modifier ({rest[:2]}) in substitution")
        return value or "", end + 1
    m = _NAME.match(word, i + 1)
    if m is None:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def _split_words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes (they are removed by process_word)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif c == "\\" and i + 1 < len(text):
            cur.extend((c, text[i + 1]))
            i += 1
        elif c.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def _json_args(args: str) -> list[str] | None:
    text = args.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def _command(args: str, config: dict[str, Any]) -> list[str]:
    parsed = _json_args(args)
    if parsed is not None:
        return parsed
    shell = config.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, args.strip()]


def _pairs(instruction: str, args: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` or the legacy ``K V w``."""
    words = _split_words(args)
    if not words:
        raise InvalidParameter(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        if len(words) < 2 and instruction == "ENV":
            raise InvalidParameter("ENV must have two arguments")
        key = words[0]
        value = args.strip()[len(key) :].strip()
        return [(process_word(key, env), process_word(value, env))]
    out = []
    for word in words:
        if "=" not in word:
            raise InvalidParameter(f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value')
        key, _, value = word.partition("=")
        out.append((process_word(key, env), process_word(value, env)))
    return out


def _ports(words: list[str]) -> list[str]:
    out = []
    for word in words:
        spec, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        start, _, end = spec.partition("-")
        try:
            lo = int(start)
            hi = int(end) if end else lo
        except ValueError:
            raise InvalidParameter(f"invalid containerPort: {spec}") from None
        if not (0 <= lo <= 65535 and lo <= hi <= 65535):
            raise InvalidParameter(f"invalid containerPort: {spec}")
        out.extend(f"{p}/{proto}" for p in range(lo, hi + 1))
    return out


def apply(config: dict[str, Any] | None, changes: list[str]) -> dict[str, Any]:
    """Apply ``changes`` to a copy of ``config`` (a container Config dict); returns the new config."""
    cfg: dict[str, Any] = copy.deepcopy(config or {})
    lines = _lines([c for c in changes if c is not None])
    parsed: list[tuple[str, str, str]] = []
    for line in lines:
        stripped = line.strip()
        instruction, _, args = stripped.partition(" ")
        if "\t" in instruction:
            instruction, _, more = instruction.partition("\t")
            args = more + " " + args
        if instruction.lower() not in VALID_COMMANDS:
            raise InvalidParameter(f"{instruction.lower()} is not a valid change command")
        parsed.append((instruction.upper(), args.strip(), stripped))
    cmd_set = False
    for instruction, args, original in parsed:
        env = _env_map(cfg.get("Env"))
        if instruction == "CMD":
            cfg["Cmd"] = _command(args, cfg)
            cmd_set = True
        elif instruction == "ENTRYPOINT":
            parsed_args = _json_args(args)
            if parsed_args is not None:
                cfg["Entrypoint"] = parsed_args
            elif not args:
                cfg["Entrypoint"] = None
            else:
                cfg["Entrypoint"] = [*(cfg.get("Shell") or ["/bin/sh", "-c"]), args]
            if not cmd_set:
                cfg["Cmd"] = None
        elif instruction == "ENV":
            current = list(cfg.get("Env") or [])
            for key, value in _pairs("ENV", args, env):
                item = f"{key}={value}"
                for idx, existing in enumerate(current):
                    if existing.partition("=")[0] == key:
                        current[idx] = item
                        break
                else:
                    current.append(item)
                env[key] = value
            cfg["Env"] = current
        elif instruction == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            for key, value in _pairs("LABEL", args, env):
                labels[key] = value
            cfg["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for port in _ports([process_word(w, env) for w in _split_words(args)]):
                ports[port] = {}
            cfg["ExposedPorts"] = ports
        elif instruction == "USER":
            if not args:
                raise InvalidParameter("USER requires exactly one argument")
            cfg["User"] = process_word(args, env)
        elif instruction == "VOLUME":
            vols = _json_args(args)
            if vols is None:
                vols = [process_word(w, env) for w in _split_words(args)]
            volumes = dict(cfg.get("Volumes") or {})
            for vol in vols:
                if not vol.strip():
                    raise InvalidParameter("VOLUME specified can not be an empty string")
                volumes[vol.strip()] = {}
            cfg["Volumes"] = volumes
        elif instruction == "WORKDIR":
            if not args:
                raise InvalidParameter("WORKDIR requires exactly one argument")
            path = process_word(args, env)
            if not path.startswith("/"):
                path = posixpath.join("/", cfg.get("WorkingDir") or "", path)
            cfg["WorkingDir"] = posixpath.normpath(path)
        elif instruction == "ONBUILD":
            trigger = args.split(None, 1)[0].upper() if args else ""
            if not trigger:
                raise InvalidParameter("ONBUILD requires at least one argument")
            if trigger == "ONBUILD":
                raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if trigger in ("MAINTAINER", "FROM"):
                raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), re.sub(r"(?i)^\s*ONBUILD\s*", "", original)]
        elif instruction == "HEALTHCHECK":
            cfg["Healthcheck"] = _healthcheck(args)
    return cfg


def _healthcheck(args: str) -> dict[str, Any]:
    words = args.split()
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    rest = args.strip()
    for _ in range(len(flags)):
        rest = rest.split(None, 1)[1] if " " in rest else ""
    kind, _, cmd = rest.partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if flags:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    parsed = _json_args(cmd)
    test = ["CMD", *parsed] if parsed is not None else ["CMD-SHELL", cmd.strip()]
    health: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
        if flag in flags:
            try:
                health[key] = parse_duration(flags[flag])
            except ValueError as exc:
                raise InvalidParameter(str(exc)) from None
    if "retries" in flags:
        try:
            health["Retries"] = int(flags["retries"])
        except ValueError:
            raise InvalidParameter(f"invalid retries value {flags['retries']!r}") from None
    return health


def merge(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """dockerd's commit ``merge``: fields the user config leaves empty come from the container's config."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = image.get("User", "")
    if not out.get("ExposedPorts"):
        out["ExposedPorts"] = image.get("ExposedPorts")
    elif image.get("ExposedPorts"):
        for port in image["ExposedPorts"]:
            out["ExposedPorts"].setdefault(port, {})
    if not out.get("Env"):
        out["Env"] = image.get("Env")
    else:
        keys = {e.partition("=")[0] for e in out["Env"]}
        out["Env"] = [*out["Env"], *(e for e in image.get("Env") or [] if e.partition("=")[0] not in keys)]
    labels = dict(out.get("Labels") or {})
    for key, value in (image.get("Labels") or {}).items():
        labels.setdefault(key, value)
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
            out["ArgsEscaped"] = image.get("ArgsEscaped", False)
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    if image.get("Healthcheck"):
        if not out.get("Healthcheck"):
            out["Healthcheck"] = image["Healthcheck"]
        else:
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
                if not out["Healthcheck"].get(key):
                    out["Healthcheck"][key] = image["Healthcheck"].get(key)
    if not out.get("WorkingDir"):
        out["WorkingDir"] = image.get("WorkingDir", "")
    if not out.get("Volumes"):
        out["Volumes"] = image.get("Volumes")
    else:
        out["Volumes"] = {**out["Volumes"], **(image.get("Volumes") or {})}
    if not out.get("StopSignal"):
        out["StopSignal"] = image.get("StopSignal", "")
    return out
