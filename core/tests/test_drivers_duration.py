"""engine.drivers.duration: Go's time.ParseDuration and Duration.String, with Go's error text."""

from __future__ import annotations

import pytest

from engine.drivers.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("5s", 5_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("1.5s", 1_500_000_000),
        (".5ms", 500_000),
        ("-2m", -120_000_000_000),
        ("+3us", 3_000),
        ("3µs", 3_000),
        ("10ns", 10),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "-", "10", "1d", "s", "1h 2m", "1.2.3s"])
def test_parse_refuses_with_go_wording(text: str) -> None:
    with pytest.raises(ValueError, match=f'^time: invalid duration "{text}"$'):
        parse_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (500_000_000, "500ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (7_200_000_000_000, "2h0m0s"),
        (-30_000_000_000, "-30s"),
    ],
)
def test_format(ns: int, text: str) -> None:
    assert format_duration(ns) == text
