from pathlib import Path

import pytest

from engine_testkit.storage_bench import StorageDriverBench


class TestBtrfsBench(StorageDriverBench):
    driver_name = "btrfs"

    @pytest.fixture(autouse=True)
    def _bench_tmp(self, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENGINE_BENCH_TMP", str(data_root))  # temp homes on the btrfs
