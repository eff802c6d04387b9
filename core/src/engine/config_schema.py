"""The configuration schema: one :class:`Option` per daemon.json key, and the JSON decoding rules.

dockerd decodes daemon.json with Go's encoding/json into a typed struct, so a value of the wrong
JSON type fails with Go's message (``json: cannot unmarshal string into Go struct field
Config.debug of type bool``). :func:`decode_value` reproduces that, so messages match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.errors import ConfigError

# Value types, as daemon.json carries them.
STR, BOOL, INT, LIST, MAP, OBJECT, ANY = "string", "bool", "int", "list", "map", "object", "any"

#: Go's name for each type, used in JSON type errors.
GO_TYPES = {
    STR: "string",
    BOOL: "bool",
    INT: "int",
    LIST: "[]string",
    MAP: "map[string]string",
    OBJECT: "map[string]interface {}",
    ANY: "interface {}",
}

#: ``validate(value) -> value``: checks (and may normalise) a value; raises ValueError(message).
Validator = Callable[[Any], Any]
#: ``flag_value(current, argument) -> new value``: applies one occurrence of a repeatable flag.
FlagApplier = Callable[[Any, str], Any]
#: ``decode(raw) -> value``: decodes a daemon.json value that Go decodes with a custom type.
Decoder = Callable[[Any], Any]


@dataclass(frozen=True)
class Option:
    """One configuration key.

    :param key: the daemon.json key (``storage-driver``, ``hosts``).
    :param type: ``string``, ``bool``, ``int``, ``list`` (of strings), ``map`` (string to string),
        ``object`` (decoded by ``decode``) or ``any``.
    :param default: the value when neither the file nor a flag sets it.
    :param flags: the dockerd flags that set it, long name first (``("--host", "-H")``); empty: file only.
        The long name may differ from the key (``--label`` sets ``labels``), as dockerd's named options.
    :param reloadable: SIGHUP may change it without a restart.
    :param validate: dockerd's value check (``Validate``), run on file and merged values.
    :param flag_value: for ``list``/``map``/``object`` keys, applies one flag argument
        (``--add-runtime name=path``); raises ValueError with the flag validator's message.
    :param decode: for ``object`` keys (and custom scalar types), decodes the JSON value.
    :param go_type: the Go type named in JSON type errors (defaults from ``type``).
    :param supported: False for dockerd keys engine accepts (so the file stays valid) but ignores.
    :param owner: the distribution that declared the key.
    """

    key: str
    type: str
    default: Any = None
    flags: tuple[str, ...] = ()
    help: str = ""
    reloadable: bool = False
    validate: Validator | None = None
    flag_value: FlagApplier | None = None
    decode: Decoder | None = None
    go_type: str = ""
    supported: bool = True
    owner: str = "engine-core"

    @property
    def flag_name(self) -> str | None:
        """The long flag name without dashes (``host`` for ``hosts``), or None for file-only keys."""
        for flag in self.flags:
            if flag.startswith("--"):
                return flag[2:]
        return None

    @property
    def shorthand(self) -> str | None:
        for flag in self.flags:
            if len(flag) == 2 and flag[0] == "-" and flag[1] != "-":
                return flag[1]
        return None


class ConfigSchema:
    """The set of keys engine accepts; passed to ``engine_add_config`` so plugins can add theirs."""

    def __init__(self, options: Iterable[Option] = ()) -> None:
        self._options: dict[str, Option] = {}
        self._checks: list[Callable[[dict[str, Any]], None]] = []
        for option in options:
            self.add_option(option)

    def add_option(self, option: Option) -> None:
        if option.key in self._options:
            raise ConfigError(
                f"configuration key {option.key!r} is declared twice "
                f"({self._options[option.key].owner} and {option.owner})"
            )
        for flag in option.flags:
            for other in self._options.values():
                if flag in other.flags:
                    raise ConfigError(f"flag {flag} is declared twice ({other.key} and {option.key})")
        self._options[option.key] = option

    def add(self, key: str, type_: str, default: Any = None, help: str = "", **kwargs: Any) -> None:
        """Declare a key (the plugin-facing shorthand for :meth:`add_option`)."""
        self.add_option(Option(key=key, type=type_, default=default, help=help, **kwargs))

    def add_check(self, check: Callable[[dict[str, Any]], None]) -> None:
        """A check over several keys, run after the per-key checks; raises ValueError(message)."""
        self._checks.append(check)

    @property
    def checks(self) -> list[Callable[[dict[str, Any]], None]]:
        return list(self._checks)

    def __contains__(self, key: str) -> bool:
        return key in self._options

    def __getitem__(self, key: str) -> Option:
        return self._options[key]

    def options(self) -> list[Option]:
        return list(self._options.values())

    def defaults(self) -> dict[str, Any]:
        return {o.key: copy_value(o.default) for o in self._options.values()}


def copy_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    return value


# ---- Go's view of values -------------------------------------------------------------------------


def json_kind(value: Any) -> str:
    """The JSON kind Go names in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def go_format(value: Any) -> str:
    """``fmt.Sprintf("%v", v)`` of a value decoded into interface{} (for conflict messages)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):  # JSON numbers decode to float64 in Go
        return _go_float(float(value))
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form when the exponent is < -4 or >= 6."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(text) + int(exponent) - 1  # position of the decimal exponent of the first digit
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return prefix + format(Decimal(repr(abs(value))).normalize(), "f")


class TypeMismatch(ValueError):
    """A JSON value of the wrong type; str() is Go's message."""


def type_error(key: str, value: Any, go_type: str, *, literal: str | None = None) -> TypeMismatch:
    kind = json_kind(value)
    if literal is not None:
        kind = f"{kind} {literal}"
    return TypeMismatch(f"json: cannot unmarshal {kind} into Go struct field Config.{key} of type {go_type}")


def decode_value(option: Option, raw: Any) -> Any:
    """Decode one daemon.json value as Go's encoding/json would into dockerd's struct field."""
    if raw is None:  # JSON null leaves the field at its zero value
        return copy_value(option.default)
    if option.decode is not None:
        return option.decode(raw)
    go_type = option.go_type or GO_TYPES[option.type]
    key = option.key
    if option.type == STR:
        if not isinstance(raw, str):
            raise type_error(key, raw, go_type)
    elif option.type == BOOL:
        if not isinstance(raw, bool):
            raise type_error(key, raw, go_type)
    elif option.type == INT:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise type_error(key, raw, go_type)
        if isinstance(raw, float):
            raise type_error(key, raw, go_type, literal=repr(raw))
    elif option.type == LIST:
        if not isinstance(raw, list):
            raise type_error(key, raw, go_type)
        for item in raw:
            if not isinstance(item, str):
                raise type_error(key, item, "string")
    elif option.type == MAP:
        if not isinstance(raw, dict):
            raise type_error(key, raw, go_type)
        for item in raw.values():
            if not isinstance(item, str):
                raise type_error(key, item, "string")
    elif option.type == OBJECT and not isinstance(raw, dict):
        raise type_error(key, raw, go_type)
    return copy_value(raw)


def is_zero(value: Any) -> bool:
    """Go's zero value: dockerd's merge lets a flag default replace a zero value from the file."""
    if isinstance(value, bool):
        return False  # dockerd copies bools from the file onto the flags, so False stays False
    return value is None or value in ("", 0) or value == [] or value == {}
