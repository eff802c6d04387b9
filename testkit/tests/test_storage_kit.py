"""The storage kit itself: drivers load by entry-point name, unsupported hosts skip with the
driver's reason, and engine-bench prints one table."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from engine_testkit import bench_cli
from engine_testkit.daemon import mounts_under
from engine_testkit.storage import load_driver
from engine_testkit.storage_bench import StorageDriverBench

pytestmark = [pytest.mark.privileged, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)")]


def test_unsupported_host_skips_with_the_reason(tmp_path: Path) -> None:
    from engine_plugin_overlay2 import mounts

    for sub in ("lower", "upper", "work", "merged"):
        (tmp_path / sub).mkdir()
    data = f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work"
    mounts.mount("overlay", tmp_path / "merged", "overlay", 0, data)
    try:
        with pytest.raises(
            pytest.skip.Exception, match="overlay2 is not supported here: 'overlay2' is not supported over overlayfs"
        ):
            load_driver("overlay2", tmp_path / "merged" / "overlay2")
    finally:
        mounts.unmount(tmp_path / "merged")
    assert not mounts_under(tmp_path)


def test_unknown_driver_names_the_distribution(tmp_path: Path) -> None:
    from engine.errors import DriverNotInstalled
    from engine.registry import STORAGE, DriverRegistry
    from engine.shipped import install_hint

    missing = [n for n in STORAGE.distributions if not DriverRegistry(STORAGE).is_installed(n)]
    if not missing:
        pytest.skip("every storage driver engine publishes is installed here")
    name = missing[0]
    distribution = STORAGE.distributions[name]
    with pytest.raises(DriverNotInstalled, match=re.escape(install_hint(distribution))):
        load_driver(name, tmp_path / name)


def test_engine_bench_prints_one_table() -> None:
    bench = StorageDriverBench()
    bench.diff_sizes, bench.apply_files, bench.deep_layers = ((2, 3),), 4, 2  # type: ignore[misc]
    bench.start_files = 4  # type: ignore[misc]
    log = io.StringIO()
    table = bench_cli.storage_table(["vfs", "overlay2"], repeat=2, files=3, log=log, bench=bench)
    lines = table.splitlines()
    assert lines[0].split() == ["case", "vfs", "median", "/", "p90", "(ms)", "overlay2", "median", "/", "p90", "(ms)"]
    cases = [line.split()[0] for line in lines[2:] if not line.startswith("(")]
    assert cases == [
        "exists",
        "get-empty",
        "diff-base",
        "diff-2/3",
        "diff-apply-4",
        "deep-layer-diff-2",
        "deep-layer-read-2",
        "container-start-4",
    ]
    assert "storage driver vfs" in log.getvalue()


def test_engine_bench_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_cli.main(["storage", "--help"])
    assert "--driver" in capsys.readouterr().out
