from pathlib import Path

import pytest

from engine_testkit.storage import StorageDriverSuite


class TestZfs(StorageDriverSuite):
    driver_name = "zfs"

    @pytest.fixture
    def home(self, data_root: Path) -> Path:  # the suite's home, on the mount of a zfs-fuse dataset
        return data_root / "zfs"
