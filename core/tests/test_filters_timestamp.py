"""engine.filters.timestamp_ns: the one reader of prune ``until`` values (moby's GetTimestamp)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from engine.errors import InvalidParameter
from engine.filters import timestamp_ns

NS = 1_000_000_000
NOW = 1_700_000_000 * NS


@pytest.fixture
def utc_plus_one() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT-1"  # POSIX sign: UTC+1
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("10m", NOW - 600 * NS),
        ("1h30m", NOW - 5400 * NS),
        ("0", 0),
        ("1700000000", 1_700_000_000 * NS),
        ("1700000000.25", 1_700_000_000 * NS + NS // 4),
        ("2023-11-14T22:13:20Z", 1_700_000_000 * NS),
        ("2023-11-14T23:13:20.5+01:00", 1_700_000_000 * NS + NS // 2),
    ],
)
def test_values(value: str, ns: int) -> None:
    assert timestamp_ns(value, NOW) == ns


def test_times_without_zone_are_local(utc_plus_one: None) -> None:
    assert timestamp_ns("2023-11-14T23:13:20", NOW) == 1_700_000_000 * NS
    assert timestamp_ns("2023-11-14T23", NOW) == (1_700_000_000 - 800) * NS
    assert timestamp_ns("2023-11-15", NOW) == (1_700_000_000 + 2800) * NS  # 2023-11-14T23:00:00Z


@pytest.mark.parametrize("value", ["garbage", "2023-13-01", "-5", "10x"])
def test_refused_with_mobys_wording(value: str) -> None:
    with pytest.raises(InvalidParameter, match=f'^failed to parse value as time or duration: "{value}"$'):
        timestamp_ns(value, NOW)
