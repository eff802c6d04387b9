"""JSON request bodies checked against the Engine API 1.41 types and ranges before anything is stored.

The schema (schema/engine-api-1.41.json) is the swagger definitions of the bodies engine serves, with the
Go type each field decodes into. A body that Go's encoding/json would refuse is refused here with Go's
words (``json: cannot unmarshal number into Go struct field ContainerConfig.Cmd of type string``), so a
client error is a 400 in dockerd's kind of message and never a value that breaks a listing later.
Go's decoding rules kept: ``null`` leaves a field unset, unknown fields are ignored, integers are
integers within their Go type's range, NaN and Infinity are not JSON, the body is UTF-8.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

from engine.config import go_json_syntax_error
from engine.errors import InvalidParameter

#: Go's integer types: the range a JSON number must fit to decode into them
INT_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**63), 2**63 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint": (0, 2**64 - 1),
    "uint64": (0, 2**64 - 1),
    "uint32": (0, 2**32 - 1),
    "uint16": (0, 2**16 - 1),
}

#: the largest JSON body read into memory (dockerd has none; a body this size is not a config)
MAX_JSON_BODY = 32 << 20

_JSON_WORDS = {str: "string", bool: "bool", list: "array", dict: "object"}


class _Number(float):
    """A JSON float that remembers its text, for Go's ``number 1e30`` in errors."""

    text: str

    def __new__(cls, text: str) -> _Number:
        value = super().__new__(cls, text)
        value.text = text
        return value


class _SyntaxError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_float(text: str) -> float:
    value = _Number(text)
    if not math.isfinite(value):
        raise _SyntaxError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def _parse_constant(name: str) -> Any:
    if name.startswith("-"):
        raise _SyntaxError(f"invalid character '{name[1]}' in numeric literal")
    raise _SyntaxError(f"invalid character '{name[0]}' looking for beginning of value")


def loads(raw: bytes) -> Any:
    """Decode a JSON body as Go's encoding/json would accept it.

    :raises InvalidParameter: invalid UTF-8, a syntax error (Go's wording), NaN/Infinity, too deep.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameter(f"invalid JSON: invalid UTF-8 in request body at offset {exc.start}") from None
    try:
        return json.loads(text, parse_float=_parse_float, parse_constant=_parse_constant)
    except _SyntaxError as exc:
        raise InvalidParameter(exc.message) from None
    except json.JSONDecodeError as exc:
        raise InvalidParameter(go_json_syntax_error(text, exc)) from None
    except RecursionError:
        raise InvalidParameter("exceeded max depth") from None


@functools.cache
def _schema() -> dict[str, Any]:
    raw = resources.files("engine.api").joinpath("schema/engine-api-1.41.json").read_text()
    schema = json.loads(raw)
    definitions = schema["definitions"]
    for definition in definitions.values():  # Go's embedded structs: their fields are promoted
        for embedded in definition.get("x-embed", ()):
            definition["properties"] = {**definitions[embedded]["properties"], **definition["properties"]}
    _add_ranges(schema)
    return schema


def _add_ranges(node: Any) -> None:
    if isinstance(node, dict):
        low_high = INT_RANGES.get(node.get("format", "")) if node.get("type") == "integer" else None
        if low_high is not None:
            node["minimum"], node["maximum"] = low_high
        for value in node.values():
            _add_ranges(value)
    elif isinstance(node, list):
        for value in node:
            _add_ranges(value)


@functools.cache
def _validator(definition: str) -> Any:
    import jsonschema  # imported on the first body: it is not needed to start

    schema = _schema()
    checker = jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    cls = jsonschema.validators.extend(jsonschema.Draft7Validator, type_checker=checker)
    return cls({"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]})


def _resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The definition a node refers to, and the Go type named on the referring node (if any)."""
    override = node.get("x-go-type", "")
    while "$ref" in node:
        node = _schema()["definitions"][node["$ref"].rsplit("/", 1)[1]]
        override = override or node.get("x-go-type", "")
    return node, override


def _go_type(node: dict[str, Any]) -> str:
    node, named = _resolve(node)
    if named:
        return named
    kind = node.get("type")
    if kind == "string":
        return "string"
    if kind == "boolean":
        return "bool"
    if kind == "integer":
        return node.get("format", "int")
    if kind == "number":
        return "float64"
    if kind == "array":
        return "[]" + _go_type(node.get("items", {}))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map[string]" + _go_type(node["additionalProperties"])
    return "interface {}"


def _zero(node: dict[str, Any]) -> Any:
    """What Go's decoder leaves for a ``null`` element of a map or slice: the element type's zero."""
    kind = _resolve(node)[0].get("type")
    if isinstance(kind, list):
        kind = kind[0]
    return {"string": "", "boolean": False, "integer": 0, "number": 0, "array": [], "object": {}}.get(kind)


def _drop_nulls(node: dict[str, Any], value: Any) -> Any:
    """Go's ``null``: a struct field keeps its zero value (the key is dropped), a map value or slice
    element becomes its type's zero value."""
    node = _resolve(node)[0]
    if isinstance(value, dict):
        properties = node.get("properties")
        if properties is not None:
            for key in [k for k, v in value.items() if v is None]:
                del value[key]
            for key, item in value.items():
                if key in properties:
                    value[key] = _drop_nulls(properties[key], item)
        elif isinstance(node.get("additionalProperties"), dict):
            element = node["additionalProperties"]
            for key, item in value.items():
                value[key] = _zero(element) if item is None else _drop_nulls(element, item)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        element = node["items"]
        value[:] = [_zero(element) if item is None else _drop_nulls(element, item) for item in value]
    return value


def _json_word(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return _JSON_WORDS.get(type(value), "value")


def _number_text(value: Any) -> str:
    return value.text if isinstance(value, _Number) else str(value)


def _message(definition: str, error: Any) -> str:
    """Go's UnmarshalTypeError text for one schema error: the innermost struct, the field path (struct
    fields only, as Go's errorContext) and the Go type of the value that did not fit."""
    root: dict[str, Any] = {"$ref": f"#/definitions/{definition}"}
    node = root
    struct = ""
    fields: list[str] = []
    for key in error.absolute_path:
        here, _ = _resolve(node)
        if isinstance(key, int) and isinstance(here.get("items"), dict):
            node = here["items"]
        elif isinstance(key, str) and key in here.get("properties", {}):
            struct = here.get("title", struct)
            fields.append(key)
            node = here["properties"][key]
        elif isinstance(here.get("additionalProperties"), dict):
            node = here["additionalProperties"]
        else:
            break
    instance = error.instance
    is_number = isinstance(instance, (int, float)) and not isinstance(instance, bool)
    wants_integer = _resolve(node)[0].get("type") == "integer"
    if is_number and (error.validator in ("minimum", "maximum") or wants_integer):
        value = f"number {_number_text(instance)}"  # Go names the literal that did not fit
    else:
        value = _json_word(instance)
    go_type = _go_type(node)
    if not fields:
        return f"json: cannot unmarshal {value} into Go value of type {go_type}"
    return f"json: cannot unmarshal {value} into Go struct field {struct}.{'.'.join(fields)} of type {go_type}"


def _document_order(instance: Any, path: Any) -> list[int]:
    """An error's position in the document, so the first one Go's decoder would meet is reported."""
    order: list[int] = []
    for key in path:
        if isinstance(instance, dict):
            keys = list(instance)
            order.append(keys.index(key) if key in instance else len(keys))
            instance = instance.get(key)
        elif isinstance(instance, list) and isinstance(key, int):
            order.append(key)
            instance = instance[key] if key < len(instance) else None
        else:
            break
    return order


def check(definition: str, value: Any) -> Any:
    """``value`` with Go's null rules applied, after checking it against ``definition``.

    :raises InvalidParameter: the first value Go's decoder would refuse, in its words.
    """
    value = _drop_nulls({"$ref": f"#/definitions/{definition}"}, value)
    errors = list(_validator(definition).iter_errors(value))
    if errors:
        first = min(errors, key=lambda e: _document_order(value, e.absolute_path))
        raise InvalidParameter(_message(definition, first))
    return value
