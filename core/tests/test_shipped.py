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
    assert install_hint("engine-plugin-overlay2") == (
        "install engine-plugin-overlay2 from engine's source tree: `pip install ./plugins/storage_overlay2`"
    )
    assert install_hint("engine-plugin-floppy") == "it would come from engine-plugin-floppy, which is not available yet"
    assert install_hint(None) == ""


def test_the_readme_names_only_what_ships():
    """README's list of the repository's distributions is SHIPPED; every other distribution it names
    is in a driver table row marked *still to come*."""
    import re

    readme = (REPO / "README.md").read_text()
    start = readme.index("The distributions in this repository today are")
    listed = readme[start : readme.index("(`make install` installs them all", start)]
    assert set(re.findall(r"engine-(?:core|testkit|plugin-[a-z0-9-]+[a-z0-9])", listed)) == SHIPPED
    for line in readme.splitlines():
        for name in re.findall(r"engine-plugin-[a-z0-9-]+[a-z0-9]", line):
            assert name in SHIPPED or "still to come" in line, line
        if line.startswith("| ") and "still to come" in line:
            assert not any(name in SHIPPED for name in re.findall(r"engine-plugin-[a-z0-9-]+[a-z0-9]", line)), line
