"""The ``tag`` log option: a small, safe subset of Go templates (moby's ``loggerutils.ParseLogTag``).

Supported: text with ``{{.Field}}`` actions, functions ``lower``, ``upper``, ``title`` (as
``{{lower .Name}}`` or ``{{.Name | lower}}``) and ``truncate`` (``{{truncate .ID 5}}``), over
the fields dockerd's ``logger.Info`` offers: ``ID`` (12 characters), ``FullID``, ``Name``,
``ImageID`` (12), ``ImageFullID``, ``ImageName``, ``Command``, ``Hostname``, ``DaemonName``,
``ContainerID``, ``ContainerName``, ``ContainerImageID``, ``ContainerImageName``, ``LogPath``.
Nothing is evaluated beyond looking names up in that table.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping

from engine.drivers.log import LogInfo
from engine.errors import InvalidParameter

__all__ = ["DEFAULT_TEMPLATE", "TagTemplateError", "check_attribute_options", "check_tag", "log_tag", "render_tag"]

DEFAULT_TEMPLATE = "{{.ID}}"  # what syslog, journald... use when no tag is given

_ACTION = re.compile(r"{{(-?)(.*?)(-?)}}", re.S)
_TOKEN = re.compile(r'\s*(?:(\|)|(\.[A-Za-z_]\w*)|"((?:[^"\\]|\\.)*)"|(-?\d+)|([A-Za-z_]\w*))')


def _truncate_id(value: str) -> str:
    return value.split(":", 1)[-1][:12]


def info_fields(info: LogInfo) -> dict[str, str]:
    return {
        "ID": info.container_id[:12],
        "FullID": info.container_id,
        "Name": info.name,
        "ImageID": _truncate_id(info.image_id),
        "ImageFullID": info.image_id,
        "ImageName": info.image_name,
        "Command": " ".join(info.command),
        "Hostname": socket.gethostname(),
        "DaemonName": info.daemon_name,
        "ContainerID": info.container_id,
        "ContainerName": info.container_name,
        "ContainerImageID": info.image_id,
        "ContainerImageName": info.image_name,
        "LogPath": str(info.log_dir / f"{info.container_id}-json.log") if info.container_id else "",
    }


def _title(value: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), value)


_FUNCTIONS: dict[str, Callable[..., str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "title": _title,
    "truncate": lambda value, length: value[: max(0, int(length))],
}


class TagTemplateError(InvalidParameter):
    pass


def _error(message: str) -> TagTemplateError:
    return TagTemplateError(f"template: log-tag:{message}")


def _tokens(action: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    action = action.rstrip()
    while pos < len(action):
        match = _TOKEN.match(action, pos)
        if not match or match.end() == pos:
            raise _error(f"1: unexpected {action[pos:].strip()[:20]!r} in command")
        pipe, field, string, number, name = match.groups()
        if pipe:
            tokens.append(("pipe", "|"))
        elif field:
            tokens.append(("field", field[1:]))
        elif string is not None:
            tokens.append(("string", re.sub(r"\\(.)", r"\1", string)))
        elif number:
            tokens.append(("number", number))
        else:
            if name not in _FUNCTIONS:
                raise _error(f'1: function "{name}" not defined')
            tokens.append(("func", name))
        pos = match.end()
    return tokens


def _evaluate(action: str, column: int, fields: dict[str, str]) -> str:
    commands: list[list[tuple[str, str]]] = [[]]
    for token in _tokens(action):
        if token[0] == "pipe":
            commands.append([])
        else:
            commands[-1].append(token)
    if not commands[0] or any(not c for c in commands):
        raise _error("1: missing value for command")

    def arg(token: tuple[str, str]) -> str:
        kind, value = token
        if kind == "field":
            if value not in fields:
                raise _error(
                    f'1:{column}: executing "log-tag" at <.{value}>: can\'t evaluate field {value} in type *logger.Info'
                )
            return fields[value]
        if kind == "func":
            raise _error(f"1:{column}: wrong number of args for {value}")
        return value

    result: str | None = None
    for command in commands:
        head, *rest = command
        if head[0] == "func":
            args = [arg(t) for t in rest]
            if result is not None:
                args.append(result)  # Go pipes pass the value as the last argument
            function = _FUNCTIONS[head[1]]
            expected = 2 if head[1] == "truncate" else 1
            if len(args) != expected:
                raise _error(f"1:{column}: wrong number of args for {head[1]}: want {expected} got {len(args)}")
            if head[1] == "truncate":
                # truncate's arguments are (string, length), in that order, whichever way they came
                text, length = (args[1], args[0]) if args[0].lstrip("-").isdigit() else (args[0], args[1])
                if not length.lstrip("-").isdigit():
                    raise _error(f"1:{column}: wrong type for value; expected int; got string")
                result = function(text, length)
            else:
                result = function(args[0])
        else:
            if rest or result is not None:
                raise _error(f"1:{column}: can't give argument to non-function {head[1]}")
            result = arg(head)
    return result or ""


def render_tag(template: str, info: LogInfo) -> str:
    """The tag for ``info``.

    :raises InvalidParameter: a template error, worded as Go's ``text/template``.
    """
    if "{{" not in template:
        return template
    fields = info_fields(info)
    out: list[str] = []
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        out.append(text)
        out.append(_evaluate(match.group(2), match.start() + 2, fields))
        pos = match.end()
        if match.group(3):
            while pos < len(template) and template[pos].isspace():
                pos += 1
    rest = template[pos:]
    if "{{" in rest:
        raise _error("1: unclosed action")
    out.append(rest)
    return "".join(out)


def check_tag(template: str) -> None:
    """Validate a template with placeholder values (for ``--log-opt tag=`` at create)."""
    from pathlib import Path

    render_tag(template, LogInfo("0" * 64, "/x", "sha256:" + "0" * 64, "x", "", (), {}, {}, Path("/")))


def check_attribute_options(options: Mapping[str, str]) -> None:
    """The ``labels-regex``, ``env-regex`` and ``tag`` log options of a driver that tags and labels
    its messages, checked at container create (dockerd finds a bad one only at start).

    :raises InvalidParameter: "error parsing regexp: ...", or the template's error.
    """
    for key in ("labels-regex", "env-regex"):
        if options.get(key):
            try:
                re.compile(options[key])
            except re.error as exc:
                raise InvalidParameter(f"error parsing regexp: {exc}: `{options[key]}`") from None
    if options.get("tag"):
        check_tag(options["tag"])


def log_tag(info: LogInfo, default: str = "") -> str:
    """moby's ``ParseLogTag``: the ``tag`` option, else ``default``, rendered."""
    return render_tag(info.config.get("tag") or default, info)
