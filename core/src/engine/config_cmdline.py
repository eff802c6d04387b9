"""engined's command line, parsed with dockerd's rules (spf13/pflag under cobra).

What users notice and scripts rely on:

- a bool flag takes its value only with ``=`` (``--debug``, ``--debug=false``); in ``--debug false``
  the ``false`` is a positional argument, and engined, like dockerd, accepts none;
- bool values are Go's ``strconv.ParseBool`` set (1 t T TRUE true True 0 f F FALSE false False);
- other flags take ``--flag=value``, ``--flag value``, ``-xvalue``, ``-x value`` or ``-x=value``;
  shorthand bools combine (``-Dl debug``); ``--`` ends the flags;
- repeatable flags (``-H``, ``--label``, ``--log-opt``...) validate each value as they are parsed.

Errors carry pflag's and cobra's wording, e.g. ``unknown flag: --foo`` + ``See 'engined --help'.``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config_schema import BOOL, INT, LIST, MAP, STR, ConfigSchema, Option, copy_value
from engine.drivers.strconv import parse_bool, parse_int
from engine.drivers.units import bytes_size
from engine.errors import ConfigError

PROG = "engined"
DEFAULT_CONFIG_FILE = Path("/etc/engine/daemon.json")
SHORT_DESCRIPTION = "A self-sufficient runtime for containers."

#: flags that are not configuration keys: name -> (shorthand, is_bool, help)
META_FLAGS: dict[str, tuple[str | None, bool, str]] = {
    "config-file": (None, False, f"Daemon configuration file (default {DEFAULT_CONFIG_FILE})"),
    "validate": (None, True, "Validate daemon configuration and exit"),
    "version": ("v", True, "Print version information and quit"),
    "help": ("h", True, "Print usage"),
}


@dataclass(frozen=True)
class CommandLine:
    config_file: Path
    config_file_given: bool
    validate_only: bool
    version: bool
    help: bool
    #: configuration keys set by flags, with their values
    flag_values: Mapping[str, Any]
    #: the flags' values as pflag prints them (``Value.String()``), for conflict messages
    flag_reprs: Mapping[str, str] = field(default_factory=dict)


def flag_display_name(option: Option) -> str:
    short = option.shorthand
    return f"-{short}, --{option.flag_name}" if short else f"--{option.flag_name}"


def _empty(option: Option) -> Any:
    if option.type == LIST:
        return []
    if option.type == MAP:
        return {}
    default = copy_value(option.default)
    return type(default)() if isinstance(default, (dict, list)) else default


def flag_repr(option: Option, value: Any) -> str:
    """pflag's ``Value.String()`` of a flag's value."""
    if option.go_type == "opts.PoolsOpt":
        return ", ".join(f"{p['base']} {p['size']}" for p in value)
    if option.go_type == "map[string]*units.Ulimit":
        return "[" + " ".join(f"{u['Name']}={u['Soft']}:{u['Hard']}" for u in value.values()) + "]"
    if option.go_type == "map[string]types.Runtime":
        return "[" + " ".join(value) + "]"
    if option.go_type == "opts.MemBytes":
        return bytes_size(value) if value else "0"
    if option.type == BOOL:
        return "true" if value else "false"
    if option.type == LIST:
        return "[" + " ".join(value) + "]" if value else ""
    if option.type == MAP:
        return "map[" + " ".join(f"{k}:{value[k]}" for k in sorted(value)) + "]"
    return str(value)


class _Parser:
    def __init__(self, schema: ConfigSchema) -> None:
        self.long: dict[str, Option | str] = {}
        self.short: dict[str, Option | str] = {}
        for name, (short, _, _) in META_FLAGS.items():
            self.long[name] = name
            if short:
                self.short[short] = name
        for option in schema.options():
            if option.flag_name:
                self.long[option.flag_name] = option
            if option.shorthand:
                self.short[option.shorthand] = option
        self.values: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self.positional: list[str] = []

    @staticmethod
    def _is_bool(target: Option | str) -> bool:
        return META_FLAGS[target][1] if isinstance(target, str) else target.type == BOOL

    def _set(self, target: Option | str, value: str) -> None:
        if isinstance(target, str):  # a meta flag
            self.meta[target] = parse_bool(value) if META_FLAGS[target][1] else value
            return
        option = target
        try:
            if option.flag_value is not None:
                current = self.values.get(option.key, _empty(option))
                self.values[option.key] = option.flag_value(current, value)
            elif option.type == BOOL:
                self.values[option.key] = parse_bool(value)
            elif option.type == INT:
                self.values[option.key] = parse_int(value)  # pflag: ParseInt(s, 0, 64)
            elif option.type == LIST:
                self.values[option.key] = [*self.values.get(option.key, []), value]
            elif option.type == MAP:
                key, _, val = value.partition("=")
                self.values[option.key] = {**self.values.get(option.key, {}), key: val}
            elif option.type == STR:
                self.values[option.key] = value
            else:
                raise ValueError(f"flag --{option.flag_name} cannot be set on the command line")
        except ValueError as exc:
            raise _FlagError(f'invalid argument "{value}" for "{flag_display_name(option)}" flag: {exc}') from None

    def parse(self, args: list[str]) -> None:
        while args:
            arg, args = args[0], args[1:]
            if len(arg) < 2 or arg[0] != "-":
                self.positional.append(arg)
            elif arg == "--":
                self.positional.extend(args)
                return
            elif arg.startswith("--"):
                args = self._long(arg, args)
            else:
                args = self._shorts(arg, args)

    def _long(self, arg: str, args: list[str]) -> list[str]:
        name = arg[2:]
        if not name or name[0] in "-=":
            raise _FlagError(f"bad flag syntax: {arg}")
        name, has_value, value = name.partition("=")
        target = self.long.get(name)
        if target is None:
            raise _FlagError(f"unknown flag: --{name}")
        if not has_value:
            if self._is_bool(target):
                value = "true"
            elif args:
                value, args = args[0], args[1:]
            else:
                raise _FlagError(f"flag needs an argument: {arg}")
        self._set(target, value)
        return args

    def _shorts(self, arg: str, args: list[str]) -> list[str]:
        shorthands = arg[1:]
        while shorthands:
            c, rest = shorthands[0], shorthands[1:]
            target = self.short.get(c)
            if target is None:
                raise _FlagError(f"unknown shorthand flag: '{c}' in -{shorthands}")
            if len(shorthands) > 2 and shorthands[1] == "=":
                value, rest = shorthands[2:], ""
            elif self._is_bool(target):
                value = "true"
            elif rest:
                value, rest = rest, ""
            elif args:
                value, args = args[0], args[1:]
            else:
                raise _FlagError(f"flag needs an argument: '{c}' in -{shorthands}")
            self._set(target, value)
            shorthands = rest
        return args


class _FlagError(Exception):
    pass


def usage(schema: ConfigSchema) -> str:
    lines = [f"Usage:\t{PROG} [OPTIONS]", "", SHORT_DESCRIPTION, "", "Options:"]
    entries = []
    for name, (short, is_bool, help_) in META_FLAGS.items():
        entries.append((name, short, "" if is_bool else "string", help_))
    for option in schema.options():
        if option.flag_name:
            kind = {BOOL: "", INT: "int", LIST: "list", MAP: "map"}.get(option.type, "string")
            entries.append((option.flag_name, option.shorthand, kind, option.help))
    for name, short, kind, help_ in sorted(entries):
        flag = (f"-{short}, " if short else "    ") + f"--{name}" + (f" {kind}" if kind else "")
        lines.append(f"  {flag:<40} {help_}")
    return "\n".join(lines) + "\n"


def parse_command_line(schema: ConfigSchema, argv: list[str]) -> CommandLine:
    """Parse ``argv`` (without the program name).

    :raises ConfigError: with pflag's/cobra's message for unknown flags, bad values and arguments.
    """
    parser = _Parser(schema)
    try:
        parser.parse(list(argv))
    except _FlagError as exc:
        raise ConfigError(f"{exc}\nSee '{PROG} --help'.") from None
    if parser.positional and not parser.meta.get("help"):
        raise ConfigError(
            f"\"{PROG}\" accepts no argument(s).\nSee '{PROG} --help'.\n\nUsage:  {PROG} [OPTIONS]\n\n{SHORT_DESCRIPTION}"
        )
    options = {o.key: o for o in schema.options()}
    reprs = {key: flag_repr(options[key], value) for key, value in parser.values.items()}
    given = "config-file" in parser.meta
    return CommandLine(
        config_file=Path(parser.meta["config-file"]) if given else DEFAULT_CONFIG_FILE,
        config_file_given=given,
        validate_only=bool(parser.meta.get("validate")),
        version=bool(parser.meta.get("version")),
        help=bool(parser.meta.get("help")),
        flag_values=parser.values,
        flag_reprs=reprs,
    )
