"""engine.drivers.timefmt: the one RFC 3339 formatter/parser, in UTC and in the local zone."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from engine.drivers.timefmt import (
    ZERO_NS,
    ZERO_TIME,
    parse_rfc3339nano,
    parse_unix_timestamp,
    rfc3339,
    rfc3339nano,
    rfc3339nano_fixed,
)

NS = 1_000_000_000


@pytest.fixture
def berlin() -> Iterator[None]:
    """The process's zone set to UTC+1 (winter) for one test, then restored."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_utc_forms() -> None:
    assert rfc3339nano(0) == "1970-01-01T00:00:00Z"
    assert rfc3339nano(1 * NS + 500_000_000) == "1970-01-01T00:00:01.5Z"
    assert rfc3339nano_fixed(1 * NS + 500_000_000) == "1970-01-01T00:00:01.500000000Z"
    assert rfc3339(1 * NS + 999) == "1970-01-01T00:00:01Z"


def test_go_zero_time_round_trips() -> None:
    assert rfc3339nano(ZERO_NS) == ZERO_TIME
    assert parse_rfc3339nano(ZERO_TIME) == ZERO_NS


def test_local_zone_has_go_offsets(berlin: None) -> None:
    assert rfc3339nano(1 * NS + 500_000_000, local=True) == "1970-01-01T01:00:01.5+01:00"
    assert rfc3339(86_400 * NS, local=True) == "1970-01-02T01:00:00+01:00"


def test_local_zone_at_utc_is_z() -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        assert rfc3339nano(0, local=True) == "1970-01-01T00:00:00Z"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T01:00:01+01:00", 1 * NS),
        ("1970-01-01T00:00:00.0000000001Z", 0),  # Go keeps nine digits
        ("1970-01-01t00:00:02z", 2 * NS),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert parse_rfc3339nano(text) == ns


@pytest.mark.parametrize(
    "text", ["", "yesterday", "1970-01-01 00:00:00Z", "1970-01-01T00:00:00", "1970-01-01T00:00:00."]
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339nano(text)


def test_unix_timestamps() -> None:
    assert parse_unix_timestamp("12.5") == 12_500_000_000
    with pytest.raises(ValueError, match=re.escape('strconv.ParseInt: parsing "x": invalid syntax')):
        parse_unix_timestamp("x")
