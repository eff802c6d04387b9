"""syslog driver options and line formats, without a server: dockerd's wordings and layouts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from engine_plugin_syslog import formats
from engine_plugin_syslog.driver import SyslogLogDriver
from engine_plugin_syslog.options import parse_address, parse_facility

from engine.errors import InvalidParameter

# 2026-11-28T19:30:00.123456Z
TS = 1795894200.123456


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-size": "1m"}, "unknown log opt 'max-size' for syslog log driver"),
        ({"syslog-address": "localhost:514"}, "syslog-address should be in form proto://address, got localhost:514"),
        ({"syslog-address": "http://x"}, "syslog-address should be in form proto://address, got http://x"),
        ({"syslog-address": "unix:///nonexistent/sock"}, "stat /nonexistent/sock: no such file or directory"),
        ({"syslog-address": "udp://::1"}, "address ::1: too many colons in address"),
        ({"syslog-facility": "nope"}, "invalid syslog facility"),
        ({"syslog-facility": "24"}, "invalid syslog facility"),
        ({"syslog-format": "rfc9999"}, "Invalid syslog format"),
        ({"labels-regex": "("}, "error parsing regexp: missing ), unterminated subpattern at position 0: `(`"),
        ({"tag": "{{.Nope}}"}, "can't evaluate field Nope"),
        (
            {"syslog-address": "tcp+tls://127.0.0.1:1", "syslog-tls-ca-cert": "/nonexistent/ca.pem"},
            "Could not read CA certificate '/nonexistent/ca.pem': open /nonexistent/ca.pem: no such file or directory",
        ),
    ],
)
def test_bad_options_refused_with_dockerd_wording(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=None) as exc:
        SyslogLogDriver.validate_options(options)
    assert message in str(exc.value)


def test_good_options_accepted(tmp_path: Path) -> None:
    sock = tmp_path / "s"
    sock.touch()
    SyslogLogDriver.validate_options(
        {
            "syslog-address": f"unixgram://{sock}",
            "syslog-facility": "local7",
            "syslog-format": "rfc5424micro",
            "tag": "{{.Name}}/{{.ID}}",
            "labels": "a,b",
            "labels-regex": "^a",
            "env": "X",
            "env-regex": "^X",
            "mode": "non-blocking",
        }
    )


def test_address_parsing_as_dockerd(tmp_path: Path) -> None:
    assert parse_address("") == ("", "")
    assert parse_address("udp://127.0.0.1") == ("udp", "127.0.0.1:514")
    assert parse_address("tcp://127.0.0.1:1514") == ("tcp", "127.0.0.1:1514")
    assert parse_address("tcp+tls://[::1]") == ("tcp+tls", "[::1]:514")
    assert parse_address(f"unix://{tmp_path}") == ("unix", str(tmp_path))


def test_facilities() -> None:
    assert parse_facility("") == 3 << 3  # daemon
    assert parse_facility("kern") == 0
    assert parse_facility("authpriv") == 10 << 3
    assert parse_facility("local0") == 16 << 3
    assert parse_facility("23") == 23 << 3


def test_line_formats(utc: None) -> None:
    pid = os.getpid()
    line = b"hello"
    cases = {
        "": f"<30>Nov 28 19:30:00 tag[{pid}]: hello\n",
        "unix": f"<30>Nov 28 19:30:00 tag[{pid}]: hello\n",
        "rfc3164": f"<30>Nov 28 19:30:00 host tag[{pid}]: hello\n",
        "rfc5424": f"<30>1 2026-11-28T19:30:00Z host tag {pid} tag - hello\n",
        "rfc5424micro": f"<30>1 2026-11-28T19:30:00.123456Z host tag {pid} tag - hello\n",
    }
    for name, expected in cases.items():
        formatter, framer = formats.parse_format(name, "udp")
        assert formats.message(formatter, framer, 30, "host", "tag", TS, line) == expected.encode()
    # octet counting only for the rfc5424 formats over TLS
    formatter, framer = formats.parse_format("rfc5424", "tcp+tls")
    body = f"<30>1 2026-11-28T19:30:00Z host tag {pid} tag - hello\n".encode()
    assert formats.message(formatter, framer, 30, "host", "tag", TS, line) == b"%d %s" % (len(body), body)
    formatter, framer = formats.parse_format("rfc3164", "tcp+tls")
    assert framer is formats.no_framing


@pytest.mark.parametrize("name", sorted(formats.FORMATS))
@pytest.mark.parametrize("proto", ["tcp", "tcp+tls"])
def test_encoder_gives_the_bytes_of_message(name: str, proto: str) -> None:
    """The driver's header cache: the same bytes as building each message whole, across seconds,
    microseconds, priorities and more keys than it keeps."""
    formatter, framer = formats.parse_format(name, proto)
    encoder = formats.Encoder(formatter, framer, "host", "tag")
    for i in range(3 * formats.Encoder.MAX_CACHED):
        ts = TS + i * 0.3 + (i % 3) * 1e-6
        priority = 27 if i % 2 else 30
        for line in (b"hello", b"ends\n", b"x" * 100):
            expected = formats.message(formatter, framer, priority, "host", "tag", ts, line)
            assert encoder.encode(priority, ts, line) == expected


def test_stamp_pads_the_day_with_a_space(utc: None) -> None:
    assert formats.stamp(1788390000) == "Sep  2 23:00:00"  # 2026-09-02T23:00:00Z


def test_rfc3339_zone_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert formats.rfc3339(TS) == "2026-11-29T01:00:00+05:30"
        assert formats.rfc3339(TS, micro=True) == "2026-11-29T01:00:00.123456+05:30"
    finally:
        monkeypatch.undo()
        time.tzset()
