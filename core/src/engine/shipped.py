"""Which distributions engine ships today, so that no message sends a user to one that does not exist.

The registries name a distribution for every driver Docker documents (``zfs`` -> engine-plugin-zfs),
but some of those are still to come. A hint to ``pip install`` names only a distribution in
:data:`SHIPPED`; for the others it says the driver is not available yet. core/tests/test_shipped.py
keeps the set equal to the repository's own distributions (core, testkit, plugins/*).
"""

from __future__ import annotations

#: the distributions this repository builds (its pyproject.toml files)
SHIPPED = frozenset(
    {
        "engine-core",
        "engine-testkit",
        "engine-plugin-aufs",
        "engine-plugin-bridge",
        "engine-plugin-btrfs",
        "engine-plugin-devicemapper",
        "engine-plugin-host",
        "engine-plugin-journald",
        "engine-plugin-json-file",
        "engine-plugin-local",
        "engine-plugin-none",
        "engine-plugin-overlay",
        "engine-plugin-overlay2",
        "engine-plugin-rootless",
        "engine-plugin-syslog",
        "engine-plugin-userns-remap",
        "engine-plugin-zfs",
    }
)


def is_shipped(distribution: str) -> bool:
    return distribution in SHIPPED


def install_hint(distribution: str | None) -> str:
    """What to tell a user who lacks ``distribution`` (empty when there is nothing to say)."""
    if not distribution:
        return ""
    if is_shipped(distribution):
        return f"install it with `pip install {distribution}`"
    return f"it would come from {distribution}, which is not available yet"
