"""A real zfs for the tests of this plugin: zfs-fuse started for the module (stopped by its PID),
a pool on a sparse file, and per test a fresh dataset whose mount is the test's data-root."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_testkit.backends import BackendUnavailable, ZfsPool, zfs_dataset, zfs_pool


@pytest.fixture(scope="module")
def pool() -> Iterator[ZfsPool]:
    if os.geteuid() != 0:
        pytest.skip("needs root (zfs-fuse)")
    try:
        with zfs_pool() as made:
            yield made
    except BackendUnavailable as exc:
        pytest.skip(f"no zfs here: {exc}")


@pytest.fixture
def data_root(pool: ZfsPool, request: pytest.FixtureRequest) -> Iterator[Path]:
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    with zfs_dataset(pool, name) as mountpoint:
        yield mountpoint
