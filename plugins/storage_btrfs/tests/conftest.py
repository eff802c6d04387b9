"""A real btrfs for every test of this plugin: a sparse file on a loop device, mkfs.btrfs, mounted.

One filesystem per module (mkfs and mount take ~0.05 s, but loop devices are a shared resource);
each test gets its own data-root directory on it. Teardown unmounts it and detaches the loop device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_testkit.backends import BackendUnavailable, btrfs_loop


@pytest.fixture(scope="module")
def btrfs_mount() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (loop device, mount)")
    try:
        with btrfs_loop() as mnt:
            yield mnt
    except BackendUnavailable as exc:
        pytest.skip(f"no btrfs here: {exc}")


@pytest.fixture
def data_root(btrfs_mount: Path, request: pytest.FixtureRequest) -> Path:
    root = btrfs_mount / request.node.name.replace("/", "_")[:60]
    root.mkdir()
    return root
