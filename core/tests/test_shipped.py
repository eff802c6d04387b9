"""engine.shipped.SHIPPED is exactly the set of distributions this repository builds, so hints name
only distributions that exist (and a new plugin directory is added to it in the same change)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from engine.shipped import SHIPPED, install_hint

REPO = Path(__file__).resolve().parents[2]


def repository_distributions() -> set[str]:
    projects = [REPO / "core", REPO / "testkit", *sorted((REPO / "plugins").iterdir())]
    return {tomllib.loads((p / "pyproject.toml").read_text())["project"]["name"] for p in projects}


def test_shipped_is_what_the_repository_builds():
    assert repository_distributions() == SHIPPED, "update engine/shipped.py's SHIPPED"


def test_hints():
    assert install_hint("engine-plugin-overlay2") == "install it with `pip install engine-plugin-overlay2`"
    assert install_hint("engine-plugin-floppy") == "it would come from engine-plugin-floppy, which is not available yet"
    assert install_hint(None) == ""
