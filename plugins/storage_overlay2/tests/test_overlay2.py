"""overlay2 beyond the conformance suite: moby's on-disk layout, read-only committed layers, host
checks, options, native whiteouts, and recovery from a killed daemon's mounts."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_plugin_overlay2 import mounts
from engine_plugin_overlay2.driver import Overlay2StorageDriver

from engine.drivers.storage import CreateOpts
from engine.errors import ConfigError, IncompatibleFS, InvalidParameter
from engine_testkit.daemon import mounts_under

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)"),
]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "overlay2"
    yield home
    for mountpoint in reversed(mounts_under(tmp_path)):
        mounts.unmount(mountpoint)
    assert not mounts_under(tmp_path)


@pytest.fixture
def driver(home: Path) -> Iterator[Overlay2StorageDriver]:
    drv = Overlay2StorageDriver.init(home, {})
    yield drv
    drv.cleanup()


def test_layout_matches_moby(driver: Overlay2StorageDriver, home: Path) -> None:
    driver.create("base", None)
    driver.create("mid", "base")
    driver.create_read_write("top", "mid")
    links = {layer: (home / layer / "link").read_text() for layer in ("base", "mid", "top")}
    for layer, link in links.items():
        assert re.fullmatch(r"[A-Z2-7]{26}", link)
        assert os.readlink(home / "l" / link) == f"../{layer}/diff"
    assert not (home / "base" / "lower").exists() and not (home / "base" / "work").exists()
    assert (home / "mid" / "lower").read_text() == f"l/{links['base']}"
    assert (home / "top" / "lower").read_text() == f"l/{links['mid']}:l/{links['base']}"
    assert (home / "base" / "committed").exists() and (home / "mid" / "committed").exists()
    assert not (home / "top" / "committed").exists()
    assert stat.S_IMODE((home / "top").stat().st_mode) == 0o701
    assert stat.S_IMODE((home / "top" / "work").stat().st_mode) == 0o700
    assert driver.metadata("top") == {
        "LowerDir": f"{home}/mid/diff:{home}/base/diff",
        "MergedDir": f"{home}/top/merged",
        "UpperDir": f"{home}/top/diff",
        "WorkDir": f"{home}/top/work",
    }
    assert "LowerDir" not in driver.metadata("base")
    for layer in ("top", "mid", "base"):
        driver.remove(layer)
    assert os.listdir(home) == ["l"] and os.listdir(home / "l") == []


def test_base_layers_are_not_mounted(driver: Overlay2StorageDriver, home: Path) -> None:
    driver.create("base", None)
    assert driver.get("base") == home / "base" / "diff"
    assert not mounts_under(home)
    driver.put("base")


def test_committed_layers_mount_read_only(driver: Overlay2StorageDriver) -> None:
    driver.create("base", None)
    driver.create("mid", "base")
    root = driver.get("mid")
    (root / "f").write_text("written while mid was the top")
    driver.put("mid")
    driver.create_read_write("container", "mid")  # mid gets its "committed" marker now
    root = driver.get("mid")
    try:
        assert (root / "f").read_text() == "written while mid was the top"
        with pytest.raises(OSError) as info:
            (root / "g").write_text("no")
        assert info.value.errno == errno.EROFS
    finally:
        driver.put("mid")


def test_deep_stack_mounts_with_short_links(driver: Overlay2StorageDriver, home: Path) -> None:
    parent = None
    for i in range(129):
        driver.create(f"layer-{i}", parent)
        parent = f"layer-{i}"
    with pytest.raises(InvalidParameter, match="max depth exceeded"):
        driver.create("too-deep", parent)
    cwd = os.getcwd()
    root = driver.get(parent)
    assert os.getcwd() == cwd  # the relative mount ran in a thread with its own cwd
    try:
        options = next(
            line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f"{parent}/merged" in line
        )
        assert "lowerdir=l/" in options  # 128 absolute paths would not fit in a page
        assert root.is_dir()
    finally:
        driver.put(parent)


def test_stale_mounts_of_a_killed_daemon_are_unmounted(home: Path) -> None:
    first = Overlay2StorageDriver.init(home, {})
    first.create("base", None)
    first.create_read_write("rw", "base")
    merged = first.get("rw")
    (merged / "kept").write_text("upper data survives")
    assert mounts.is_mounted(merged)
    # the daemon dies here: no put(), no cleanup(); the next one starts on the same home
    second = Overlay2StorageDriver.init(home, {})
    assert not mounts_under(home)
    root = second.get("rw")
    try:
        assert (root / "kept").read_text() == "upper data survives"
    finally:
        second.put("rw")
    second.remove("rw")
    second.remove("base")


def test_options_are_checked(home: Path) -> None:
    with pytest.raises(InvalidParameter, match="overlay2: unknown option nope"):
        Overlay2StorageDriver.init(home, {"nope": "1"})
    with pytest.raises(InvalidParameter, match="ParseBool"):
        Overlay2StorageDriver.init(home, {"override_kernel_check": "maybe"})
    with pytest.raises(ConfigError, match=r"only supported for backingFS XFS\. Found extfs"):
        Overlay2StorageDriver.init(home, {"size": "10G"})
    driver = Overlay2StorageDriver.init(home, {"override_kernel_check": "true"})
    driver.create("base", None)
    with pytest.raises(InvalidParameter, match="only supported for ReadWrite Layers"):
        driver.create("ro", "base", CreateOpts(storage_opt={"size": "1G"}))
    with pytest.raises(InvalidParameter, match="supported only for overlay over xfs with 'pquota'"):
        driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "1G"}))
    with pytest.raises(InvalidParameter, match="Unknown option foo"):
        driver.create_read_write("rw", "base", CreateOpts(storage_opt={"foo": "1"}))
    assert not driver.exists("rw") and not driver.exists("ro")
    driver.remove("base")


def test_status_as_dockerd_shows_it(driver: Overlay2StorageDriver) -> None:
    assert driver.status() == [
        ("Backing Filesystem", "extfs"),
        ("Supports d_type", "true"),
        ("Native Overlay Diff", "true"),
        ("userxattr", "false"),
    ]


def test_refuses_overlay_as_backing_filesystem(tmp_path: Path, home: Path) -> None:
    for sub in ("lower", "upper", "work", "merged"):
        (tmp_path / sub).mkdir()
    data = f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work"
    mounts.mount("overlay", tmp_path / "merged", "overlay", 0, data)
    try:
        with pytest.raises(IncompatibleFS, match="not supported over overlayfs"):
            Overlay2StorageDriver.init(tmp_path / "merged" / "overlay2", {})
    finally:
        mounts.unmount(tmp_path / "merged")


def test_runs_on_tmpfs(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    mounts.mount("tmpfs", tmp_path / "t", "tmpfs", 0, "size=16m")
    try:
        driver = Overlay2StorageDriver.init(tmp_path / "t" / "overlay2", {})
        assert ("Backing Filesystem", "tmpfs") in driver.status()
        driver.create("base", None)
        driver.create_read_write("rw", "base")
        (driver.get("rw") / "x").write_text("x")
        driver.put("rw")
        driver.cleanup()
    finally:
        mounts.unmount(tmp_path / "t")


def test_apply_diff_writes_overlay_whiteouts(driver: Overlay2StorageDriver, home: Path) -> None:
    driver.create("base", None)
    root = driver.get("base")
    (root / "dir").mkdir()
    (root / "dir" / "old").write_text("old")
    (root / "gone").write_text("gone")
    driver.put("base")
    driver.create("layer", "base")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in (".wh.gone", "dir/.wh..wh..opq", "dir/new"):
            tf.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    buf.seek(0)
    assert driver.apply_diff("layer", "base", buf) == 0
    diff = home / "layer" / "diff"
    whiteout = (diff / "gone").lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(diff / "dir", "trusted.overlay.opaque") == b"y"
    root = driver.get("layer")
    try:
        assert sorted(os.listdir(root)) == ["dir"]
        assert os.listdir(root / "dir") == ["new"]
    finally:
        driver.put("layer")


@pytest.fixture
def xfs(tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """A loop-mounted xfs (with project quotas when this kernel has xfs quota support)."""
    import shutil
    import subprocess

    if not shutil.which("mkfs.xfs"):
        pytest.skip("mkfs.xfs not installed (Debian package xfsprogs)")
    image, mnt = tmp_path / "xfs.img", tmp_path / "xfs"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(320 << 20)  # sparse; xfsprogs wants at least 300 MB
    subprocess.run(["mkfs.xfs", "-q", str(image)], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True)
    device = loop.stdout.strip()
    try:
        try:
            mounts.mount(device, mnt, "xfs", 0, "pquota")
            pquota = True
        except OSError:  # "quota support not available in this kernel"
            mounts.mount(device, mnt, "xfs", 0, "")
            pquota = False
        try:
            yield mnt, pquota
        finally:
            for mountpoint in reversed(mounts_under(mnt)):
                mounts.unmount(mountpoint)
            mounts.unmount(mnt)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


def test_xfs_backing_and_quota(xfs: tuple[Path, bool]) -> None:
    mnt, pquota = xfs
    home = mnt / "overlay2"
    if not pquota:
        with pytest.raises(ConfigError, match="Filesystem does not support Project Quota"):
            Overlay2StorageDriver.init(home, {"size": "10M"})
    driver = Overlay2StorageDriver.init(home, {})
    assert ("Backing Filesystem", "xfs") in driver.status()
    driver.create("base", None)
    if not pquota:
        with pytest.raises(InvalidParameter, match="'pquota'"):
            driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "5M"}))
        driver.remove("base")
        driver.cleanup()
        pytest.skip("this kernel has no xfs quota support: the limit itself is untested here")
    driver.create_read_write("rw", "base", CreateOpts(storage_opt={"size": "5M"}))
    root = driver.get("rw")
    try:
        (root / "small").write_bytes(os.urandom(2 << 20))
        with pytest.raises(OSError) as info:
            (root / "big").write_bytes(os.urandom(5 << 20))
        assert info.value.errno in (errno.EDQUOT, errno.ENOSPC)
    finally:
        driver.put("rw")
    driver.remove("rw")
    driver.remove("base")
    driver.cleanup()


def test_project_ids_on_xfs(xfs: tuple[Path, bool]) -> None:
    from engine_plugin_overlay2.quota import get_project_id, set_project_id

    mnt, _ = xfs
    (mnt / "d").mkdir()
    set_project_id(mnt / "d", 4242)
    (mnt / "d" / "child").mkdir()
    assert get_project_id(mnt / "d") == 4242
    assert get_project_id(mnt / "d" / "child") == 4242  # inherited


def test_native_diff_probe_detects_redirect_dir(tmp_path: Path) -> None:
    from engine_plugin_overlay2 import checks

    assert checks.probe_native_diff(tmp_path, checks.index_off(), "trusted.overlay.") is None
    problem = checks.probe_native_diff(tmp_path, checks.index_off() + "redirect_dir=on,", "trusted.overlay.")
    assert problem == "kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled"
    assert os.listdir(tmp_path) == [] and not mounts_under(tmp_path)


def test_naive_diff_when_native_is_unsafe(driver: Overlay2StorageDriver) -> None:
    driver.native_diff_problem = "kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled"  # as the probe would say
    assert ("Native Overlay Diff", "false") in driver.status()
    driver.create("base", None)
    root = driver.get("base")
    (root / "old").write_text("old")
    driver.put("base")
    driver.create("upper", "base")
    root = driver.get("upper")
    (root / "old").unlink()
    (root / "new").write_text("new")
    driver.put("upper")
    assert [(c.path, c.kind.name) for c in driver.changes("upper", "base")] == [("/new", "ADD"), ("/old", "DELETE")]
    buf = io.BytesIO()
    driver.diff("upper", "base", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        assert [m.name for m in tf] == ["new", ".wh.old"]
    assert not mounts_under(driver.home)


@pytest.mark.parametrize(
    ("fact", "error", "message"),
    [
        ("overlay_in_kernel", "PrerequisitesNotMet", "'overlay' not found as a supported filesystem"),
        ("supports_dtype", "IncompatibleFS", "without d_type support"),
    ],
)
def test_host_checks_simulated(
    home: Path, monkeypatch: pytest.MonkeyPatch, fact: str, error: str, message: str
) -> None:
    """Hosts without overlay or d_type cannot be made here: the host fact is simulated (named so)."""
    from engine_plugin_overlay2 import checks

    import engine.errors

    monkeypatch.setattr(checks, fact, lambda *args: False)
    with pytest.raises(getattr(engine.errors, error), match=message):
        Overlay2StorageDriver.init(home, {})


def test_multiple_lowers_probe_failure_simulated(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel refusing two lower dirs is simulated by failing the probe's mount(2) (named so)."""
    from engine.errors import PrerequisitesNotMet

    real_mount = mounts.mount

    def refuse_two_lowers(source: str, target: str | Path, fstype: str, flags: int = 0, data: str = "") -> None:
        if "lower2:" in data:
            raise OSError(errno.EINVAL, "Invalid argument")
        real_mount(source, target, fstype, flags, data)

    monkeypatch.setattr(mounts, "mount", refuse_two_lowers)
    with pytest.raises(PrerequisitesNotMet, match="multiple lower dirs"):
        Overlay2StorageDriver.init(home, {})
    assert not [p for p in home.iterdir() if p.name.startswith("engine-probe-")]


def test_concurrent_get_put_keeps_count(driver: Overlay2StorageDriver, home: Path) -> None:
    import threading

    driver.create("base", None)
    driver.create_read_write("rw", "base")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                root = driver.get("rw")
                assert root.is_dir() and mounts.is_mounted(root)
                driver.put("rw")
        except BaseException as exc:
            errors.append(exc)

    first = driver.get("rw")  # held throughout: the mount must never go away under the workers
    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert mounts.is_mounted(first)
    driver.put("rw")
    assert not mounts_under(home)
