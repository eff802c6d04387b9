"""engined's own log lines: logrus' text and JSON formats, RFC 3339 times with fraction and zone."""

from __future__ import annotations

import io
import json
import logging
import re
import time

import pytest

from engine import daemonlog
from engine.api.request_log import go_duration

RFC3339_FIXED = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)"


def record(msg: str, level: int = logging.INFO, fields: dict | None = None, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord("engined", level, __file__, 1, msg, (), exc_info)
    if fields is not None:
        rec.fields = fields
    return rec


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_is_logrus_key_value():
    rec = record('say "hi"', logging.WARNING, {"path": "/v1.41/info", "status": 200, "note": "two words"})
    line = daemonlog.TextFormatter().format(rec)
    assert re.fullmatch(
        rf'time="{RFC3339_FIXED}" level=warning msg="say \\"hi\\"" note="two words" path=/v1.41/info status=200', line
    ), line


def test_text_keeps_an_exception_on_one_line():
    line = daemonlog.TextFormatter().format(record("failed", logging.ERROR, exc=True))
    assert "\n" not in line and "RuntimeError: boom" in line and line.startswith("time=")


def test_json_lines_for_log_shippers():
    rec = record("GET /_ping 200", logging.DEBUG, {"method": "GET", "status": 200, "msg": "clash"})
    line = daemonlog.JSONFormatter().format(rec)
    entry = json.loads(line)
    assert list(entry) == sorted(entry)  # Go's map order
    assert entry["level"] == "debug" and entry["msg"] == "GET /_ping 200" and entry["method"] == "GET"
    assert entry["status"] == 200 and entry["fields.msg"] == "clash"
    assert re.fullmatch(RFC3339_FIXED, entry["time"])


def test_time_has_nine_fraction_digits_and_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert daemonlog.rfc3339_fixed(1_800_000_000.25) == "2027-01-15T08:00:00.250000000Z"
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        assert daemonlog.rfc3339_fixed(1_800_000_000.5) == "2027-01-15T09:00:00.500000000+01:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_terminal_gets_colours_unless_raw_logs():
    assert isinstance(daemonlog.make_formatter("text", stream=_Tty()), daemonlog.ColourFormatter)
    assert isinstance(daemonlog.make_formatter("text", raw=True, stream=_Tty()), daemonlog.TextFormatter)
    assert isinstance(daemonlog.make_formatter("text", stream=io.StringIO()), daemonlog.TextFormatter)
    assert isinstance(daemonlog.make_formatter("json", stream=_Tty()), daemonlog.JSONFormatter)
    line = daemonlog.ColourFormatter(start=time.time()).format(record("hello", fields={"a": 1}))
    assert line.startswith("\x1b[36mINFO\x1b[0m[0000] hello") and line.endswith("\x1b[36ma\x1b[0m=1")


def test_setup_writes_the_chosen_format_at_the_chosen_level():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        daemonlog.setup("warn", "json", stream=stream)
        logging.getLogger("engine.x").info("hidden")
        logging.getLogger("engine.x").warning("shown", extra={"fields": {"k": "v"}})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["shown"]
    assert json.loads(lines[0])["k"] == "v"


def test_unknown_format_is_refused():
    from engine.config_options import LOG_FORMATS, validate_log_format

    assert set(LOG_FORMATS) == set(daemonlog.FORMATS)
    assert validate_log_format("json") == "json"
    with pytest.raises(ValueError, match="unknown log format: xml"):
        validate_log_format("xml")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.000012, "12µs"), (0.0012345, "1.234ms"), (0.25, "250ms"), (1.5, "1.5s")]
)
def test_request_durations_read_as_go_prints_them(seconds, text):
    assert go_duration(seconds) == text
