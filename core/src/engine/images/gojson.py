"""JSON exactly as dockerd (Go's encoding/json) writes it, where bytes matter.

Image IDs are sha256 of config bytes and legacy v1 IDs are sha256 of re-marshalled configs,
so the configs engine writes (import, commit) and the v1 JSON it saves must match Go's
output byte for byte: struct field order, ``omitempty`` rules, HTML-escaped ``<>&``,
RFC 3339 times with trailing zeros of the fraction dropped.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from engine.drivers.timefmt import ZERO_NS, ZERO_TIME, parse_rfc3339nano, rfc3339nano

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def dumps(obj: Any) -> str:
    """Go's json.Marshal: compact, UTF-8, with ``<``, ``>``, ``&`` escaped (they only occur in strings)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)


def dumps_bytes(obj: Any) -> bytes:
    return dumps(obj).encode()


# -- times ------------------------------------------------------------------------------------------

_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def now() -> str:
    return rfc3339nano(time.time_ns())


def parse_time(text: str | None) -> int:
    """RFC 3339 -> unix nanoseconds (UTC); a missing or bad time is Go's zero time."""
    if not text:
        return ZERO_NS
    try:
        return parse_rfc3339nano(text)
    except ValueError:
        return ZERO_NS


def unix_seconds(text: str | None) -> int:
    """Go's ``t.Unix()`` for an RFC 3339 string (floor division, as Go does)."""
    return parse_time(text) // 1_000_000_000


def normalize_time(text: str | None) -> str:
    """Re-marshal a time as Go would after parsing it: keep the offset, trim the fraction's zeros."""
    if not text:
        return ZERO_TIME
    m = _TIME_RE.match(text)
    if m is None:
        return text
    base = text[: m.start(7) - 1] if m.group(7) is not None else text[: m.start(8)]
    frac = (m.group(7) or "")[:9].rstrip("0")
    zone = m.group(8)
    if zone in ("z", "Z", "+00:00"):
        zone = "Z"
    base = base[:10] + "T" + base[11:]
    return base + ("." + frac if frac else "") + zone


# -- container.Config ---------------------------------------------------------------------------------

# (field, kind, omitempty) in Go's struct order (api/types/container.Config, 20.10)
_CONFIG_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("Hostname", "str", False),
    ("Domainname", "str", False),
    ("User", "str", False),
    ("AttachStdin", "bool", False),
    ("AttachStdout", "bool", False),
    ("AttachStderr", "bool", False),
    ("ExposedPorts", "set", True),
    ("Tty", "bool", False),
    ("OpenStdin", "bool", False),
    ("StdinOnce", "bool", False),
    ("Env", "list", False),
    ("Cmd", "strslice", False),
    ("Healthcheck", "health", True),
    ("ArgsEscaped", "bool", True),
    ("Image", "str", False),
    ("Volumes", "set", False),
    ("WorkingDir", "str", False),
    ("Entrypoint", "strslice", False),
    ("NetworkDisabled", "bool", True),
    ("MacAddress", "str", True),
    ("OnBuild", "list", False),
    ("Labels", "map", False),
    ("StopSignal", "str", True),
    ("StopTimeout", "int_ptr", True),
    ("Shell", "strslice", True),
)

_HEALTH_FIELDS = (("Test", "list"), ("Interval", "int"), ("Timeout", "int"), ("StartPeriod", "int"), ("Retries", "int"))


def _empty(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value == ""
        or (value == 0 and not isinstance(value, bool))
        or value in ([], {})
    )


def _coerce(kind: str, value: Any) -> Any:
    if kind == "str":
        return value if isinstance(value, str) else ""
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
    if kind == "int_ptr":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "list":
        return [str(v) for v in value] if isinstance(value, list) else None
    if kind == "strslice":
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, list) else None
    if kind == "set":
        return {str(k): {} for k in sorted(value)} if isinstance(value, dict) else None
    if kind == "map":
        return {str(k): str(v) for k, v in sorted(value.items())} if isinstance(value, dict) else None
    if kind == "health":
        if not isinstance(value, dict):
            return None
        out: dict[str, Any] = {}
        for name, sub in _HEALTH_FIELDS:
            coerced = _coerce(sub, value.get(name))
            if not _empty(coerced):
                out[name] = coerced
        return out
    raise ValueError(kind)


def config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """A container.Config as Go marshals it (struct order, omitempty); missing fields take zero values."""
    cfg = cfg or {}
    out: dict[str, Any] = {}
    for name, kind, omitempty in _CONFIG_FIELDS:
        value = _coerce(kind, cfg.get(name))
        if omitempty and _empty(value):
            continue
        out[name] = value
    return out


def config_or_none(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``*container.Config``: JSON null stays null."""
    return None if cfg is None else config(cfg)


# -- image configs --------------------------------------------------------------------------------------

# V1Image (image/image.go, 20.10): (json key, kind, omitempty)
_V1_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("id", "str", True),
    ("parent", "str", True),
    ("comment", "str", True),
    ("created", "time", False),
    ("container", "str", True),
    ("container_config", "config", False),
    ("docker_version", "str", True),
    ("author", "str", True),
    ("config", "config_ptr", True),
    ("architecture", "str", True),
    ("variant", "str", True),
    ("os", "str", True),
    ("Size", "int", True),
)


def v1_image(image_config: dict[str, Any], **override: Any) -> dict[str, Any]:
    """The V1Image embedded in an image config, as Go re-marshals it (``parent`` is the image's own
    field and so never part of the V1Image). ``override`` sets fields (id, parent, created, os)."""
    src = {k: v for k, v in image_config.items() if k not in ("parent", "id")}
    src.update(override)
    out: dict[str, Any] = {}
    for key, kind, omitempty in _V1_FIELDS:
        value = src.get(key)
        if kind == "time":
            value = normalize_time(value) if isinstance(value, str) else ZERO_TIME
        elif kind == "config":
            value = config(value if isinstance(value, dict) else None)
        elif kind == "config_ptr":
            value = config(value) if isinstance(value, dict) else None
        else:
            value = _coerce(kind, value)
        if omitempty and _empty(value):
            continue
        out[key] = value
    return out


def history_entry(
    created: str, *, author: str = "", created_by: str = "", comment: str = "", empty_layer: bool = False
) -> dict[str, Any]:
    """One image.History entry in Go's field order with its omitempty rules."""
    entry: dict[str, Any] = {"created": created}
    if author:
        entry["author"] = author
    if created_by:
        entry["created_by"] = created_by
    if comment:
        entry["comment"] = comment
    if empty_layer:
        entry["empty_layer"] = True
    return entry


def image_config_bytes(fields: dict[str, Any]) -> bytes:
    """An image config as dockerd writes it: top-level keys sorted (Image.MarshalJSON), nested
    values already in Go order; empty optional fields are left out."""
    out = {k: v for k, v in fields.items() if not (_empty(v) and k not in ("created", "container_config"))}
    return dumps_bytes(dict(sorted(out.items())))
