"""Which distributions engine ships today, so that no message sends a user to one that does not exist.

The registries name a distribution for every driver Docker documents (``zfs`` -> engine-plugin-zfs),
but some of those are still to come. A hint names only a distribution in :data:`SHIPPED`,
with the directory of engine's source tree it installs from; for the others it says the driver is not available yet. core/tests/test_shipped.py
keeps the set equal to the repository's own distributions (core, testkit, plugins/*).
"""

from __future__ import annotations

#: where each distribution this repository builds lives in engine's source tree (its pyproject.toml):
#: none is published on a package index, so a hint names the directory to install from
SOURCES = {
    "engine-core": "core",
    "engine-plugin-aufs": "plugins/storage_aufs",
    "engine-plugin-bridge": "plugins/net_bridge",
    "engine-plugin-btrfs": "plugins/storage_btrfs",
    "engine-plugin-devicemapper": "plugins/storage_devmapper",
    "engine-plugin-host": "plugins/net_host",
    "engine-plugin-journald": "plugins/log_journald",
    "engine-plugin-json-file": "plugins/log_json_file",
    "engine-plugin-local": "plugins/log_local",
    "engine-plugin-none": "plugins/net_none",
    "engine-plugin-overlay": "plugins/net_overlay",
    "engine-plugin-overlay2": "plugins/storage_overlay2",
    "engine-plugin-rootless": "plugins/security_rootless",
    "engine-plugin-syslog": "plugins/log_syslog",
    "engine-plugin-userns-remap": "plugins/security_userns_remap",
    "engine-plugin-zfs": "plugins/storage_zfs",
    "engine-testkit": "testkit",
}
SHIPPED = frozenset(SOURCES)


def is_shipped(distribution: str) -> bool:
    return distribution in SHIPPED


def install_hint(distribution: str | None) -> str:
    """What to tell a user who lacks ``distribution`` (empty when there is nothing to say)."""
    if not distribution:
        return ""
    if is_shipped(distribution):
        return f"install {distribution} from engine's source tree: `pip install ./{SOURCES[distribution]}`"
    return f"it would come from {distribution}, which is not available yet"
