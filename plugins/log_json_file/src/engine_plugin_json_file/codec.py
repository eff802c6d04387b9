"""dockerd's json-file line format, byte for byte.

One JSON object per line, keys in this order::

    {"log":"hello\\n","stream":"stdout","attrs":{"tag":"x"},"time":"2026-01-02T03:04:05.123456789Z"}

- ``log``: the line with its newline (a piece of a long line that is not the last piece has
  none), escaped as moby's jsonlog writer does: ``\\"``, ``\\\\``, ``\\n``, ``\\r``, other control
  characters (tab included) and ``<``, ``>``, ``&``, U+2028, U+2029 as ``\\u00XX``; invalid UTF-8
  bytes become U+FFFD one byte at a time. Omitted when empty.
- ``attrs``: only when there are extra attributes (labels, env, tag), Go's ``json.Marshal`` of a
  map (sorted keys, HTML-safe escaping).
- ``time``: Go's RFC3339Nano in UTC.
"""

from __future__ import annotations

import codecs
import json
import json.scanner
import re
from collections.abc import Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from engine.drivers.log import LogMessage, PartialMeta
from engine.drivers.timefmt import parse_rfc3339nano, rfc3339nano


def _go_invalid_utf8(error: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune consumes one byte of an invalid sequence: one U+FFFD per byte
    assert isinstance(error, UnicodeDecodeError)
    return "\ufffd", error.start + 1


codecs.register_error("engine-go-utf8", _go_invalid_utf8)

# Python's JSON string escaping differs from moby's writer only for these characters
_NEEDS_FIX = re.compile("[\t\b\f<>&\u2028\u2029]")
# in Python's output: an escaped backslash (kept as is, so that the "t" of "\\t" is not taken
# for an escape), the short escapes Go writes in \u form, and the HTML-sensitive characters
_FIX = re.compile(r"\\\\|\\[tbf]|[<>&\u2028\u2029]")
_LOG_FIXES = {
    "\\\\": "\\\\",
    "\\t": "\\u0009",
    "\\b": "\\u0008",
    "\\f": "\\u000c",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
# Go's encoding/json (attrs) keeps \t short
_ATTR_FIXES = {**_LOG_FIXES, "\\t": "\\t"}


# printable ASCII that both JSON and moby's writer keep as is (no ", \\, <, >, &): a line made only
# of these is its own JSON string, with no decoding, escaping or encoding (most log lines)
_PLAIN = re.compile(rb"[ !#-%'-;=?-\[\]-~]*")


def _fix(text: str, table: dict[str, str]) -> str:
    return _FIX.sub(lambda m: table[m.group(0)], text)


def go_json_string(raw: bytes) -> str:
    """``raw`` as moby's jsonlog writes a JSON string (quotes included)."""
    text = raw.decode("utf-8", "engine-go-utf8")
    encoded = encode_basestring(text)
    if _NEEDS_FIX.search(text):
        encoded = _fix(encoded, _LOG_FIXES)
    return encoded


def go_json_attrs(attrs: dict[str, str]) -> str:
    """Go's ``json.Marshal(map[string]string)``."""
    encoded = json.dumps(attrs, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if _NEEDS_FIX.search(encoded):
        encoded = _fix(encoded, _ATTR_FIXES)
    return encoded


_scan = json.scanner.make_scanner(json.JSONDecoder())  # the C scanner, without json.loads' checks


class JsonLineCodec:
    """Encodes messages of one container (its extra attributes are fixed) and decodes any line."""

    def __init__(self, attrs: dict[str, str] | None = None) -> None:
        self._attrs_part = f'"attrs":{go_json_attrs(attrs)},' if attrs else ""

    def encode(self, message: LogMessage) -> bytes:
        return self.encode_many((message,))[0]

    def encode_many(self, messages: Sequence[LogMessage]) -> list[bytes]:
        """One line per message; the hot path of the driver, hence written out in one loop."""
        out: list[bytes] = []
        append = out.append
        attrs = self._attrs_part
        second, prefix = -1, ""
        plain = _PLAIN.fullmatch
        for message in messages:
            line = message.line
            partial = message.partial
            newline = partial is None or partial.last
            head_bytes = None
            if line and plain(line):  # nothing to decode or escape
                head_bytes = b'{"log":"' + line + (b'\\n",' if newline else b'",')
                head = ""
            else:
                if newline:
                    line += b"\n"
                if line:
                    text = line.decode("utf-8", "engine-go-utf8")
                    log = encode_basestring(text)
                    if (
                        "\t" in text
                        or "<" in text
                        or ">" in text
                        or "&" in text
                        or "\b" in text
                        or "\f" in text
                        or "\u2028" in text
                        or "\u2029" in text
                    ):
                        log = _fix(log, _LOG_FIXES)
                    head = '{"log":' + log + ","
                else:
                    head = "{"
            ns = message.timestamp_ns or int(message.timestamp * 1e9)
            sec, frac = divmod(ns, 1_000_000_000)
            if sec != second:  # RFC3339Nano, the date part computed once per second
                second, prefix = sec, rfc3339nano(sec * 1_000_000_000)[:-1]
            stamp = f"{prefix}.{frac:09d}".rstrip("0") if frac else prefix
            tail = f'{head}"stream":"{message.source}",{attrs}"time":"{stamp}Z"}}\n'.encode()
            append(tail if head_bytes is None else head_bytes + tail)
        return out

    def decode(self, line: bytes) -> LogMessage:
        try:
            entry, _ = _scan(line.decode("utf-8", "replace"), 0)
            ts = parse_rfc3339nano(entry["time"])
            text: str = entry.get("log", "")
            data = text.encode("utf-8", "replace")
        except (KeyError, TypeError, AttributeError, StopIteration) as exc:
            raise ValueError(f"not a json-file log line: {exc!r}") from None
        if data.endswith(b"\n"):
            data, partial = data[:-1], None
        else:
            partial = PartialMeta("", 0, False)
        attrs = entry.get("attrs") or {}
        return LogMessage(data, entry.get("stream", ""), ts / 1e9, ts, partial, attrs)
