"""The naive diff (moby's ChangesDirs/ExportChanges/ApplyLayer semantics) over two real trees."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from engine.drivers.naive_diff import changes_dirs, changes_size
from engine.drivers.storage import Change, ChangeKind

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")

A, C, D = ChangeKind.ADD, ChangeKind.MODIFY, ChangeKind.DELETE


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old"
    (old / "etc" / "conf.d").mkdir(parents=True)
    (old / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (old / "etc" / "conf.d" / "a.conf").write_text("a")
    (old / "bin").mkdir()
    (old / "bin" / "sh").write_text("#!")
    os.symlink("sh", old / "bin" / "ash")
    (old / "var").mkdir()
    (old / "file-then-dir").write_text("f")
    new = tmp_path / "new"
    shutil.copytree(old, new, symlinks=True, copy_function=shutil.copy2)
    for d in ("etc", "etc/conf.d", "bin", "var", ""):  # copytree sets dir times before filling them
        st = os.stat(old / d)
        os.utime(new / d, ns=(st.st_atime_ns, st.st_mtime_ns))
    return old, new


def test_identical_trees_have_no_changes(trees: tuple[Path, Path]) -> None:
    assert changes_dirs(trees[1], trees[0]) == []


def test_changes_as_moby_reports_them(trees: tuple[Path, Path]) -> None:
    old, new = trees
    (new / "etc" / "passwd").write_text("changed content\n")
    (new / "var" / "new").write_text("n")
    shutil.rmtree(new / "etc" / "conf.d")
    os.chmod(new / "bin" / "sh", 0o700)
    os.unlink(new / "file-then-dir")
    (new / "file-then-dir").mkdir()
    (new / "file-then-dir" / "inside").write_text("i")
    os.utime(new / "var", (0, 0))  # directory times alone are no change
    assert changes_dirs(new, old) == [
        Change("/bin", C),
        Change("/bin/sh", C),
        Change("/etc", C),
        Change("/etc/conf.d", D),
        Change("/etc/passwd", C),
        Change("/file-then-dir", C),
        Change("/file-then-dir/inside", A),
        Change("/var", C),
        Change("/var/new", A),
    ]
    assert changes_size(new, changes_dirs(new, old)) == len("changed content\n") + 2 + 1 + 1


def test_metadata_only_changes(trees: tuple[Path, Path]) -> None:
    old, new = trees
    os.chown(new / "etc", 1000, 1000)
    st = os.lstat(new / "bin" / "ash")
    os.unlink(new / "bin" / "ash")
    os.symlink("zz", new / "bin" / "ash")  # same length, same time: only the target differs
    os.utime(new / "bin" / "ash", ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.utime(new / "bin", ns=(os.stat(old / "bin").st_atime_ns, os.stat(old / "bin").st_mtime_ns))
    os.setxattr(new / "bin" / "sh", "security.capability", b"\x01\x00\x00\x02" + bytes(16))
    assert changes_dirs(new, old) == [Change("/bin", C), Change("/bin/ash", C), Change("/bin/sh", C), Change("/etc", C)]


def test_no_parent_means_everything_added(trees: tuple[Path, Path]) -> None:
    _, new = trees
    changes = changes_dirs(new, None)
    assert all(c.kind == A for c in changes)
    assert [c.path for c in changes][:3] == ["/bin", "/bin/ash", "/bin/sh"]


def test_vfs_diff_tar_has_whiteouts(tmp_path: Path) -> None:
    from engine.builtin.vfs import VfsStorageDriver

    driver = VfsStorageDriver.init(tmp_path / "vfs", {})
    driver.create("base", None)
    base = driver.get("base")
    (base / "a").write_text("a")
    (base / "d").mkdir()
    (base / "d" / "x").write_text("x")
    driver.put("base")
    driver.create_read_write("rw", "base")
    rw = driver.get("rw")
    os.unlink(rw / "a")
    (rw / "d" / "y").write_text("yy")
    out = io.BytesIO()
    driver.diff("rw", "base", out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        assert [(m.name, m.size) for m in tf] == [(".wh.a", 0), ("d", 0), ("d/y", 2)]
    assert driver.diff_size("rw", "base") == 2
    driver.put("rw")
    for layer in ("rw", "base"):
        driver.remove(layer)
    assert os.listdir(tmp_path / "vfs" / "dir") == []
