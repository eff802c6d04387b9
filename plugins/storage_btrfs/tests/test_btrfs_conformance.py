from pathlib import Path

import pytest

from engine_testkit.storage import StorageDriverSuite


class TestBtrfs(StorageDriverSuite):
    driver_name = "btrfs"

    @pytest.fixture
    def home(self, data_root: Path) -> Path:  # the suite's home, on the loop-mounted btrfs
        return data_root / "btrfs"
