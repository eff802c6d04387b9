"""engined's own log, formatted as dockerd's logrus does.

- ``text`` (default): ``time="2026-12-08T01:02:03.123456000Z" level=info msg="..." key=value``, the
  time in RFC 3339 with nine fraction digits and the zone (moby's ``RFC3339NanoFixed``, local time).
  On a terminal, without ``--raw-logs``, logrus colours it instead: ``INFO[0003] msg  key=value``
  (seconds since start); ``raw-logs`` keeps the plain form with full timestamps there too.
- ``json`` (daemon.json ``log-format``, as dockerd 25): one object per line for log shippers,
  ``{"level":"info","msg":"...","time":"..."}`` plus the record's fields, keys sorted as Go does.

Structured fields ride on a record as ``extra={"fields": {...}}`` (logrus ``WithFields``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

from engine.drivers.timefmt import rfc3339nano_fixed

TEXT, JSON = "text", "json"
FORMATS = (TEXT, JSON)

#: logrus level names -> logging levels
LOG_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}
_LEVEL_NAMES = {
    logging.CRITICAL: "fatal",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}
#: logrus' terminal colours per level
_COLOURS = {"debug": 37, "info": 36, "warning": 33, "error": 31, "fatal": 31}
#: logrus quotes a text value unless every character is one of these
_BARE = re.compile(r"[A-Za-z0-9\-._/@^+]+")


def rfc3339_fixed(seconds: float) -> str:
    """``2026-12-08T01:02:03.123456000+01:00`` (``Z`` in UTC): a record's time (float seconds, to
    the microsecond) in the local zone with nine fraction digits, by engine.drivers.timefmt."""
    whole = int(seconds)
    return rfc3339nano_fixed(whole * 1_000_000_000 + round((seconds - whole) * 1e6) * 1000, local=True)


def level_name(record: logging.LogRecord) -> str:
    return _LEVEL_NAMES.get(record.levelno, record.levelname.lower())


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _message(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    msg = record.getMessage()
    if record.exc_info:
        msg += "\n" + formatter.formatException(record.exc_info)
    return msg


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if _BARE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class TextFormatter(logging.Formatter):
    """logrus' TextFormatter without colours: ``time="..." level=... msg="..." key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        msg = _message(self, record).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        line = f'time="{rfc3339_fixed(record.created)}" level={level_name(record)} msg="{msg}"'
        for key, value in sorted(fields_of(record).items()):
            line += f" {key}={_text_value(value)}"
        return line


class ColourFormatter(logging.Formatter):
    """logrus' TextFormatter on a terminal: ``\\x1b[36mINFO\\x1b[0m[0003] msg    key=value``."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self.start = time.time() if start is None else start

    def format(self, record: logging.LogRecord) -> str:
        level = level_name(record)
        colour = _COLOURS.get(level, 36)
        elapsed = int(record.created - self.start)
        line = f"\x1b[{colour}m{level.upper()[:4]}\x1b[0m[{elapsed:04d}] {_message(self, record):<44} "
        for key, value in sorted(fields_of(record).items()):
            line += f" \x1b[{colour}m{key}\x1b[0m={_text_value(value)}"
        return line.rstrip()


class JSONFormatter(logging.Formatter):
    """logrus' JSONFormatter: one object per line, keys sorted, fields beside level/msg/time."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {}
        for key, value in fields_of(record).items():
            # logrus keeps a field that collides with a standard key as fields.<key>
            entry[f"fields.{key}" if key in ("level", "msg", "time") else key] = value
        entry.update(level=level_name(record), msg=_message(self, record), time=rfc3339_fixed(record.created))
        return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)


def make_formatter(fmt: str = TEXT, *, raw: bool = False, stream: TextIO | None = None) -> logging.Formatter:
    if fmt == JSON:
        return JSONFormatter()
    stream = sys.stderr if stream is None else stream
    if not raw and stream.isatty():
        return ColourFormatter()
    return TextFormatter()


def setup(level: str, fmt: str = TEXT, *, raw: bool = False, stream: TextIO | None = None) -> None:
    """Send every record to ``stream`` (stderr) in ``fmt`` at ``level``."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(fmt, raw=raw, stream=stream))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # aiohttp's own access log is noise; engine.api.requests logs each request at debug instead
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LOG_LEVELS.get(level.lower(), logging.INFO))
