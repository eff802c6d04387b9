"""README's Configuration section points to docs/daemon-json.md, which lists every daemon.json key core
declares (generated from the schema; core/tests/test_config_doc.py keeps it current), and lists every
driver name with the distribution that provides it, marking those still to come."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import registry
from engine.config import core_schema
from engine.shipped import is_shipped

README = Path(__file__).resolve().parents[2] / "README.md"
DAEMON_JSON_DOC = README.parent / "docs" / "daemon-json.md"


@pytest.fixture(scope="module")
def section() -> str:
    text = README.read_text()
    match = re.search(r"^## Configuration\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "README.md has no '## Configuration' section"
    return match.group(1)


def test_the_configuration_section_links_the_key_reference(section):
    assert "(docs/daemon-json.md)" in section


@pytest.mark.parametrize("option", core_schema().options(), ids=lambda o: o.key)
def test_every_core_key_is_documented(option):
    row = re.search(rf"^\| `{re.escape(option.key)}` \| (.*?) \|", DAEMON_JSON_DOC.read_text(), re.M)
    assert row, f"`{option.key}` is missing from docs/daemon-json.md: run scripts/gen-daemon-json-doc"
    for flag in option.flags:
        assert f"`{flag}`" in row.group(1), f"README: {option.key} is also set by {flag}"


@pytest.mark.parametrize(
    ("kind", "name", "distribution"),
    [(k.kind, n, d) for k in (registry.STORAGE, registry.NETWORK, registry.LOG) for n, d in k.distributions.items()],
)
def test_every_driver_name_has_its_distribution(section, kind, name, distribution):
    row = re.search(rf"^\| {kind} \| `{re.escape(name)}` \| `{re.escape(distribution)}`(.*)$", section, re.M)
    assert row, f"README: add the row for the {kind} driver {name}"
    # only distributions that exist are offered; the others are marked as still to come
    assert ("still to come" in row.group(1)) != is_shipped(distribution), row.group(0)
