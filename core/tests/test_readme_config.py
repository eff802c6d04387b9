"""README's Configuration section lists every daemon.json key core declares, and every driver name with
the distribution that provides it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import registry
from engine.config import core_schema

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def section() -> str:
    text = README.read_text()
    match = re.search(r"^## Configuration\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "README.md has no '## Configuration' section"
    return match.group(1)


@pytest.mark.parametrize("option", core_schema().options(), ids=lambda o: o.key)
def test_every_core_key_is_documented(section, option):
    row = re.search(rf"^\| `{re.escape(option.key)}` \| (.*?) \|", section, re.M)
    assert row, f"add `{option.key}` to README.md's Configuration table"
    for flag in option.flags:
        assert f"`{flag}`" in row.group(1), f"README: {option.key} is also set by {flag}"


@pytest.mark.parametrize(
    ("kind", "name", "distribution"),
    [(k.kind, n, d) for k in (registry.STORAGE, registry.NETWORK, registry.LOG) for n, d in k.distributions.items()],
)
def test_every_driver_name_has_its_distribution(section, kind, name, distribution):
    assert f"| {kind} | `{name}` | `{distribution}`" in section
