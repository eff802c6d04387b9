"""aufs without an aufs kernel (this host: none in /proc/filesystems, CONFIG_MODULES off).

What runs for real here: the refusal at start-up, explicit-only loading through engine's registry,
option checks, the mount option strings (pure functions), and every operation that needs no aufs
mount, on real directories: dockerd's layout, the ``layers/`` parent files, removal, and the
diff/changes/apply/size of a branch with ``.wh.`` whiteouts and aufs' own ``.wh..wh.*`` entries.
For those the start-up host check is bypassed by constructing the driver directly (named so in each
test); mounting a layer with parents cannot run here and is shown to fail cleanly.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from engine_plugin_aufs import branches, host
from engine_plugin_aufs.driver import AufsStorageDriver

from engine.drivers import fsinfo
from engine.drivers.storage import IDENTITY, Change, ChangeKind, CreateOpts
from engine.errors import DriverRemoved, InvalidParameter, PrerequisitesNotMet, SystemError
from engine.registry import STORAGE, DriverRegistry

NO_AUFS = "aufs" not in fsinfo.kernel_filesystems()
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


@pytest.fixture
def driver(tmp_path: Path) -> AufsStorageDriver:
    """Host check bypassed (this kernel has no aufs): the driver on real directories, never mounting."""
    drv = AufsStorageDriver(tmp_path / "aufs", {}, IDENTITY)
    drv.setup_dirs()
    return drv


@pytest.mark.skipif(not NO_AUFS, reason="this kernel has aufs: the refusal cannot be shown")
def test_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(PrerequisitesNotMet, match="AUFS was not found in /proc/filesystems: this kernel has no aufs"):
        AufsStorageDriver.init(tmp_path / "aufs", {})
    assert not (tmp_path / "aufs").exists()


def test_aufs_problem_reads_proc_filesystems(tmp_path: Path) -> None:
    listing = tmp_path / "filesystems"
    listing.write_text("nodev\tsysfs\n\text4\nnodev\taufs\n")
    assert host.aufs_problem(str(listing)) == ""


def test_loads_only_when_named_explicitly() -> None:
    registry = DriverRegistry(STORAGE)
    with pytest.raises(DriverRemoved, match="aufs is deprecated"):
        registry.load("aufs", explicit=False)
    assert registry.load("aufs", explicit=True) is AufsStorageDriver


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"aufs: unknown option aufs\.mountopt"):
        AufsStorageDriver.init(tmp_path / "aufs", {"mountopt": "x"})


def test_mount_options_as_dockerd_builds_them() -> None:
    data, appends = branches.mount_options("/d/diff/c", ["/d/diff/b", "/d/diff/a"])
    assert data == "br:/d/diff/c=rw:/d/diff/b=ro+wh:/d/diff/a=ro+wh,dio,xino=/dev/shm/aufs.xino"
    assert appends == []
    data, _ = branches.mount_options("/d/diff/c", ["/d/diff/b"], mount_label="system_u:object_r:x:s0", dirperm1=True)
    assert (
        data == 'br:/d/diff/c=rw:/d/diff/b=ro+wh,dio,xino=/dev/shm/aufs.xino,dirperm1,context="system_u:object_r:x:s0"'
    )


def test_branches_past_a_page_are_appended() -> None:
    parents = [f"/var/lib/engine/aufs/diff/{i:064x}" for i in range(127)]
    data, appends = branches.mount_options("/var/lib/engine/aufs/diff/top", parents, page_size=4096)
    assert len(data) <= 4096 - 54 + len(",dio,xino=/dev/shm/aufs.xino")
    fitted = data.split(",")[0].count("=ro+wh")
    assert 0 < fitted < 127 and len(appends) == 127 - fitted
    assert appends[0] == f"append:{parents[fitted]}=ro+wh" and appends[-1] == f"append:{parents[-1]}=ro+wh"


def test_whiteout_names() -> None:
    assert branches.whiteout_name("gone") == ".wh.gone"
    assert branches.whited_out(".wh.gone") == "gone"
    assert branches.whited_out(".wh..wh..opq") is None and branches.whited_out("plain") is None
    for meta in (".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk"):
        assert branches.is_aufs_meta(meta)
    assert not branches.is_aufs_meta(".wh..wh..opq")


@needs_root
def test_layout_and_parent_files(driver: AufsStorageDriver) -> None:
    """Host check bypassed (no aufs kernel); nothing here mounts."""
    home = driver.home
    driver.create("a", None)
    driver.create("b", "a")
    driver.create_read_write("c", "b")
    assert sorted(os.listdir(home)) == ["diff", "layers", "mnt"]
    assert (home / "layers" / "a").read_text() == ""
    assert (home / "layers" / "c").read_text() == "b\na\n"
    assert sorted(os.listdir(home / "diff")) == sorted(os.listdir(home / "mnt")) == ["a", "b", "c"]
    assert driver.get("a") == home / "diff" / "a"  # a base layer is never mounted
    driver.put("a")
    with pytest.raises(InvalidParameter, match="--storage-opt is not supported for aufs"):
        driver.create_read_write("d", "c", CreateOpts(storage_opt={"size": "1G"}))
    assert dict(driver.status())["Dirs"] == "3"
    for layer in ("c", "b", "a"):
        driver.remove(layer)
    assert [os.listdir(home / sub) for sub in ("diff", "layers", "mnt")] == [[], [], []]


@needs_root
@pytest.mark.skipif(not NO_AUFS, reason="this kernel has aufs")
def test_mounting_a_child_fails_cleanly_without_aufs(driver: AufsStorageDriver) -> None:
    """Host check bypassed: the mount(2) of type aufs is really attempted and refused by this kernel."""
    driver.create("a", None)
    driver.create("b", "a")
    with pytest.raises(SystemError, match=r"aufs: mount target=.*/mnt/b data=br:.*/diff/b=rw:.*/diff/a=ro\+wh"):
        driver.get("b")
    driver.put("b")  # nothing was counted
    assert not host.mounted_under(driver.home)
    driver.remove("b")
    driver.remove("a")


def _branch_with_whiteouts(driver: AufsStorageDriver) -> None:
    """``a`` holds files; ``b`` (child of a) is written as an aufs rw branch would hold it."""
    driver.create("a", None)
    base = driver.get("a")
    (base / "etc").mkdir()
    (base / "etc" / "passwd").write_text("root")
    (base / "gone").write_text("gone")
    (base / "opaque").mkdir()
    (base / "opaque" / "old").write_text("old")
    driver.put("a")
    driver.create("b", "a")
    branch = driver.diff_dir("b")
    (branch / "etc").mkdir()
    (branch / "etc" / "passwd").write_text("root:x")
    st = (base / "etc").stat()  # aufs copies a directory up with its times
    os.utime(branch / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    (branch / "new").write_text("new")
    (branch / ".wh.gone").write_text("")
    (branch / "opaque").mkdir()
    (branch / "opaque" / ".wh..wh..opq").write_text("")
    (branch / "opaque" / "fresh").write_text("fresh")
    for meta in (".wh..wh.orph", ".wh..wh.plnk"):  # what aufs itself keeps in a rw branch
        (branch / meta).mkdir()
        (branch / meta / "x").write_text("aufs internal")
    (branch / ".wh..wh.aufs").write_text("")


@needs_root
def test_diff_is_the_branch_without_aufs_meta(driver: AufsStorageDriver) -> None:
    """Host check bypassed; the diff reads the branch directory, no mount involved."""
    _branch_with_whiteouts(driver)
    out = io.BytesIO()
    driver.diff("b", "a", out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        names = [m.name for m in tf]
    assert names == [
        ".wh.gone",
        "etc",
        "etc/passwd",
        "new",
        "opaque",
        "opaque/.wh..wh..opq",
        "opaque/fresh",
    ]
    # the size is the whole directory's, aufs' own files included, as dockerd's directory.Size counts
    assert driver.diff_size("b", "a") == len("root:x") + len("new") + len("fresh") + 2 * len("aufs internal")
    for layer in ("b", "a"):
        driver.remove(layer)


@needs_root
def test_changes_as_dockerd_lists_them(driver: AufsStorageDriver) -> None:
    """Host check bypassed; dockerd's archive.Changes over aufs branches."""
    _branch_with_whiteouts(driver)
    assert driver.changes("b", "a") == [
        Change("/etc/passwd", ChangeKind.MODIFY),
        Change("/gone", ChangeKind.DELETE),
        Change("/new", ChangeKind.ADD),
        Change("/opaque", ChangeKind.MODIFY),
        Change("/opaque/fresh", ChangeKind.ADD),
    ]
    for layer in ("b", "a"):
        driver.remove(layer)


@needs_root
def test_apply_diff_keeps_whiteouts_as_files(driver: AufsStorageDriver) -> None:
    """Host check bypassed; a layer tar extracted into a branch keeps aufs' whiteout form."""
    driver.create("a", None)
    driver.create("b", "a")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in ((".wh.gone", b""), ("dir/.wh..wh..opq", b""), ("dir/new", b"12345")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    assert driver.apply_diff("b", "a", buf) == 5
    branch = driver.diff_dir("b")
    assert sorted(os.listdir(branch)) == [".wh.gone", "dir"]
    assert sorted(os.listdir(branch / "dir")) == [".wh..wh..opq", "new"]
    assert [c.kind for c in driver.changes("b", "a")] == [ChangeKind.ADD, ChangeKind.ADD, ChangeKind.DELETE]
    for layer in ("b", "a"):
        driver.remove(layer)
