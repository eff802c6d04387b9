"""The storage driver conformance suite: moby's graphtest cases plus what layers must carry.

A driver's conformance file is one subclass::

    from engine_testkit.storage import StorageDriverSuite

    class TestOverlay2(StorageDriverSuite):
        driver_name = "overlay2"

The driver is loaded by its entry-point name through :mod:`engine.registry` (which proves the
packaging) and initialised in a fresh home per test. A host that cannot run it
(``DriverNotSupported``) skips every case with the driver's reason. Cases that need root are marked
``privileged`` and skip without it. After each test nothing may remain mounted under the home.

Class attributes tune the suite: ``driver_options`` (storage-opts without the driver prefix),
``deep_layers`` (128, as moby runs overlay2), ``diff_files`` and ``changes_files``.
"""

from __future__ import annotations

import io
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from engine.drivers.storage import ChangeKind, CreateOpts, StorageDriver, SupportsQuota
from engine.errors import DriverNotSupported, EngineError
from engine.registry import STORAGE, DriverRegistry
from engine_testkit.daemon import mounts_under
from engine_testkit.storage_tree import (
    add_many_files,
    add_many_layers,
    change_many_files,
    check_many_files,
    check_many_layers,
    snapshot,
    write_file,
)

privileged = pytest.mark.privileged


def load_driver(name: str, home: Path, options: dict[str, str] | None = None) -> StorageDriver:
    """Load ``name`` from its entry point and initialise it in ``home``; skips when unsupported."""
    cls = DriverRegistry[StorageDriver](STORAGE).load(name)
    try:
        return cls.init(home, options or {})
    except DriverNotSupported as exc:
        pytest.skip(f"storage driver {name} is not supported here: {exc}")


class StorageDriverSuite:
    """Subclass with ``driver_name`` set; pytest collects every ``test_*`` below for that driver."""

    driver_name: ClassVar[str] = ""
    driver_options: ClassVar[dict[str, str]] = {}
    deep_layers: ClassVar[int] = 128
    diff_files: ClassVar[int] = 50
    changes_files: ClassVar[int] = 20

    # -- fixtures ----------------------------------------------------------------------------------

    @pytest.fixture
    def home(self, tmp_path: Path) -> Path:
        return tmp_path / self.driver_name

    @pytest.fixture
    def driver(self, request: pytest.FixtureRequest, home: Path) -> Iterator[StorageDriver]:
        if not self.driver_name:
            pytest.skip("StorageDriverSuite: set driver_name in the subclass")
        if request.node.get_closest_marker("privileged") and os.geteuid() != 0:
            pytest.skip("needs root")
        drv = load_driver(self.driver_name, home, dict(self.driver_options))
        try:
            yield drv
            leaked = mounts_under(home)
            assert not leaked, f"still mounted after the test: {leaked}"
        finally:
            drv.cleanup()
            assert not mounts_under(home), "cleanup() left mounts behind"

    # -- graphtest ---------------------------------------------------------------------------------

    @privileged
    def test_create_empty(self, driver: StorageDriver) -> None:
        driver.create("empty", None)
        assert driver.exists("empty")
        root = driver.get("empty")
        try:
            st = root.stat()
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
            assert (st.st_uid, st.st_gid) == driver.id_map.root()
            assert os.listdir(root) == []
        finally:
            driver.put("empty")
        driver.remove("empty")
        assert not driver.exists("empty")

    @staticmethod
    def create_base(driver: StorageDriver, name: str) -> None:
        driver.create_read_write(name, None)
        root = driver.get(name)
        try:
            subdir = root / "a subdir"
            subdir.mkdir()
            os.chmod(subdir, 0o705 | stat.S_ISVTX)
            os.lchown(subdir, 1, 2)
            write_file(root / "a file", b"Some data", 0o222 | stat.S_ISUID)
        finally:
            driver.put(name)

    @staticmethod
    def verify_base(driver: StorageDriver, name: str) -> None:
        root = driver.get(name)
        try:
            st = (root / "a subdir").lstat()
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o705 | stat.S_ISVTX
            assert (st.st_uid, st.st_gid) == (1, 2)
            st = (root / "a file").lstat()
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o222 | stat.S_ISUID
            assert (st.st_uid, st.st_gid) == (0, 0)
            assert (root / "a file").read_bytes() == b"Some data"
            assert sorted(os.listdir(root)) == ["a file", "a subdir"]
        finally:
            driver.put(name)

    @privileged
    def test_create_existing_layer_fails(self, driver: StorageDriver) -> None:
        self.create_base(driver, "base")
        with pytest.raises(EngineError):
            driver.create("base", None)
        with pytest.raises(EngineError):
            driver.create_read_write("base", None)
        self.verify_base(driver, "base")  # untouched
        driver.remove("base")

    @privileged
    def test_create_base(self, driver: StorageDriver) -> None:
        self.create_base(driver, "base")
        self.verify_base(driver, "base")
        driver.remove("base")

    @privileged
    def test_create_snap(self, driver: StorageDriver) -> None:
        self.create_base(driver, "base")
        driver.create("snap", "base")
        self.verify_base(driver, "snap")
        self.verify_base(driver, "base")
        driver.remove("snap")
        driver.remove("base")

    @privileged
    def test_deep_layer_read(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        root = driver.get("base")
        write_file(root / "testfile.txt", b"test content")
        driver.put("base")
        layers = add_many_layers(driver, "base", self.deep_layers)
        check_many_layers(driver, layers[-1], self.deep_layers)
        root = driver.get(layers[-1])
        try:
            assert (root / "testfile.txt").read_bytes() == b"test content"
        finally:
            driver.put(layers[-1])
        for layer in reversed(layers):
            driver.remove(layer)
        driver.remove("base")

    @privileged
    def test_diff_apply(self, driver: StorageDriver) -> None:
        count = self.diff_files
        driver.create("base", None)
        add_many_files(driver, "base", count, 3)
        root = driver.get("base")
        write_file(root / "file-remove.txt", b"This file should get removed in upper!")
        (root / "var" / "lib").mkdir(parents=True)
        driver.put("base")

        driver.create("upper", "base")
        add_many_files(driver, "upper", count, 6)
        root = driver.get("upper")
        (root / "file-remove.txt").unlink()
        os.rmdir(root / "var" / "lib")
        driver.put("upper")
        diff_size = driver.diff_size("upper", "base")

        driver.create("diff", "base")
        root = driver.get("diff")
        assert (root / "file-remove.txt").exists()
        driver.put("diff")
        tar = io.BytesIO()
        driver.diff("upper", "base", tar)
        tar.seek(0)
        applied = driver.apply_diff("diff", "base", tar)
        assert applied == diff_size == count * 64

        root = driver.get("diff")
        try:
            assert not (root / "file-remove.txt").exists()
            assert not (root / "var" / "lib").exists()
        finally:
            driver.put("diff")
        check_many_files(driver, "diff", count, 6)
        self._assert_same_tree(driver, "upper", "diff")
        for layer in ("diff", "upper", "base"):
            driver.remove(layer)

    @privileged
    def test_changes(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        add_many_files(driver, "base", self.changes_files, 3)
        driver.create("upper", "base")
        expected = change_many_files(driver, "upper", self.changes_files, 6)
        changes = driver.changes("upper", "base")
        assert sorted(changes) == sorted(expected)
        for layer in ("upper", "base"):
            driver.remove(layer)

    @privileged
    def test_set_quota(self, driver: StorageDriver) -> None:
        if not isinstance(driver, SupportsQuota):
            pytest.skip(f"{self.driver_name} does not implement per-layer quotas (storage-opt size)")
        self.create_base(driver, "base")
        try:
            driver.create_read_write("quota", "base", CreateOpts(storage_opt={"size": "5M"}))
        except EngineError as exc:
            pytest.skip(f"quota not supported on this backing filesystem: {exc}")
        root = driver.get("quota")
        try:
            (root / "smallfile").write_bytes(os.urandom(2 << 20))
            with pytest.raises(OSError) as info:
                (root / "bigfile").write_bytes(os.urandom(5 << 20))
            assert info.value.errno in (122, 28)  # EDQUOT, ENOSPC
        finally:
            driver.put("quota")
        driver.remove("quota")
        driver.remove("base")

    # -- what layers must carry through diff/apply ---------------------------------------------------

    def _assert_same_tree(self, driver: StorageDriver, a: str, b: str) -> None:
        root_a = driver.get(a)
        try:
            root_b = driver.get(b)
            try:
                assert snapshot(root_b) == snapshot(root_a)
            finally:
                driver.put(b)
        finally:
            driver.put(a)

    def _round_trip(
        self,
        driver: StorageDriver,
        populate: Callable[[Path], None],
        *,
        parent_content: Callable[[Path], None] | None = None,
    ) -> None:
        """base (optionally filled) -> upper (``populate``d) -> diff/apply into a fresh child of base:
        the applied layer must equal upper. (Sizes are compared in test_diff_apply only: like moby's,
        the naive apply size counts tar entry sizes, where symlinks have none.)"""
        driver.create("base", None)
        if parent_content:
            root = driver.get("base")
            parent_content(root)
            driver.put("base")
        driver.create("upper", "base")
        root = driver.get("upper")
        try:
            populate(root)
        finally:
            driver.put("upper")
        tar = io.BytesIO()
        driver.diff("upper", "base", tar)
        driver.create("applied", "base")
        tar.seek(0)
        driver.apply_diff("applied", "base", tar)
        self._assert_same_tree(driver, "upper", "applied")
        for layer in ("applied", "upper", "base"):
            driver.remove(layer)

    @privileged
    def test_hardlinks_survive(self, driver: StorageDriver) -> None:
        def populate(root: Path) -> None:
            write_file(root / "a", b"shared", 0o644)
            (root / "dir").mkdir()
            os.link(root / "a", root / "dir" / "b")
            os.link(root / "a", root / "c")

        self._round_trip(driver, populate)

    @privileged
    def test_hardlink_to_lower_file_keeps_content(self, driver: StorageDriver) -> None:
        """A link to a file of a lower layer: the naive diff (as moby's) can only carry a copy."""
        driver.create("base", None)
        root = driver.get("base")
        write_file(root / "orig", b"from below", 0o640)
        driver.put("base")
        driver.create("upper", "base")
        root = driver.get("upper")
        os.link(root / "orig", root / "again")
        driver.put("upper")
        tar = io.BytesIO()
        driver.diff("upper", "base", tar)
        driver.create("applied", "base")
        tar.seek(0)
        driver.apply_diff("applied", "base", tar)
        root = driver.get("applied")
        try:
            for name in ("orig", "again"):
                assert (root / name).read_bytes() == b"from below"
                assert stat.S_IMODE((root / name).stat().st_mode) == 0o640
        finally:
            driver.put("applied")
        for layer in ("applied", "upper", "base"):
            driver.remove(layer)

    @privileged
    def test_symlinks_survive(self, driver: StorageDriver) -> None:
        def populate(root: Path) -> None:
            (root / "dir").mkdir()
            os.symlink("dir", root / "rel")
            os.symlink("/etc/passwd", root / "abs")
            os.symlink("../nowhere", root / "dir" / "dangling")
            os.lchown(root / "rel", 7, 8)

        self._round_trip(driver, populate)

    @privileged
    def test_xattrs_survive(self, driver: StorageDriver) -> None:
        def populate(root: Path) -> None:
            write_file(root / "file", b"x", 0o644)
            (root / "dir").mkdir()
            os.setxattr(root / "file", "user.comment", b"hello")
            os.setxattr(root / "file", "trusted.binary", b"\x00\x01\xff")
            os.setxattr(root / "dir", "trusted.dir", b"yes")
            os.setxattr(root / "file", "security.capability", b"\x01\x00\x00\x02" + bytes(16))

        self._round_trip(driver, populate)

    @privileged
    def test_device_nodes_survive(self, driver: StorageDriver) -> None:
        def populate(root: Path) -> None:
            os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            os.mknod(root / "loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
            os.chmod(root / "null", 0o666)
            os.lchown(root / "loop9", 0, 6)

        self._round_trip(driver, populate)

    @privileged
    def test_fifos_survive_and_sockets_are_skipped(self, driver: StorageDriver) -> None:
        sockets: list[socket.socket] = []

        def populate(root: Path) -> None:
            os.mkfifo(root / "fifo", 0o640)
            os.chmod(root / "fifo", 0o640)
            sock = socket.socket(socket.AF_UNIX)
            # through the directory's fd: a driver's home can be deeper than AF_UNIX's 108 bytes
            dirfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.bind(f"/proc/self/fd/{dirfd}/sock")
            finally:
                os.close(dirfd)
            sockets.append(sock)

        try:
            driver.create("base", None)
            driver.create("upper", "base")
            root = driver.get("upper")
            populate(root)
            driver.put("upper")
            driver.create("snap", "upper")  # a snapshot keeps the socket: only tar cannot hold one
            root = driver.get("snap")
            try:
                assert stat.S_ISSOCK((root / "sock").lstat().st_mode)
            finally:
                driver.put("snap")
            driver.create("applied", "base")
            tar = io.BytesIO()
            driver.diff("upper", "base", tar)
            tar.seek(0)
            driver.apply_diff("applied", "base", tar)
            root = driver.get("applied")
            try:
                assert stat.S_ISFIFO((root / "fifo").lstat().st_mode)
                assert stat.S_IMODE((root / "fifo").lstat().st_mode) == 0o640
                assert not (root / "sock").exists()  # Docker's tar skips sockets
            finally:
                driver.put("applied")
        finally:
            for sock in sockets:
                sock.close()
        for layer in ("applied", "snap", "upper", "base"):
            driver.remove(layer)

    @privileged
    def test_permissions_and_ownership_survive(self, driver: StorageDriver) -> None:
        def lower(root: Path) -> None:
            (root / "etc").mkdir(mode=0o755)
            write_file(root / "etc" / "shadow", b"secret", 0o640)
            write_file(root / "bin-tool", b"#!", 0o755)

        def populate(root: Path) -> None:
            os.chown(root / "etc" / "shadow", 0, 42)
            os.chmod(root / "bin-tool", 0o4711)
            (root / "home" / "user").mkdir(parents=True)
            os.chown(root / "home" / "user", 1000, 1000)
            os.chmod(root / "home" / "user", 0o700)
            (root / "tmp").mkdir()
            os.chmod(root / "tmp", 0o1777)
            write_file(root / "home" / "user" / "setgid", b"g", 0o2755)
            os.chown(root / "home" / "user" / "setgid", 1000, 50)
            os.chmod(root / "home" / "user" / "setgid", 0o2755)

        self._round_trip(driver, populate, parent_content=lower)

    @privileged
    def test_whiteouts_and_opaque_dirs_survive(self, driver: StorageDriver) -> None:
        def lower(root: Path) -> None:
            (root / "keep").mkdir()
            (root / "opaque" / "sub").mkdir(parents=True)
            write_file(root / "opaque" / "old", b"old", 0o644)
            write_file(root / "gone", b"gone", 0o644)
            (root / "gonedir" / "deep").mkdir(parents=True)

        def populate(root: Path) -> None:
            (root / "gone").unlink()
            for sub in ("deep", ""):
                os.rmdir(root / "gonedir" / sub)
            for name in ("old", "sub"):
                path = root / "opaque" / name
                path.unlink() if name == "old" else path.rmdir()
            os.rmdir(root / "opaque")
            (root / "opaque").mkdir()
            write_file(root / "opaque" / "new", b"new", 0o644)

        self._round_trip(driver, populate, parent_content=lower)

    @privileged
    def test_full_diff_of_a_base_layer(self, driver: StorageDriver) -> None:
        self.create_base(driver, "base")
        tar = io.BytesIO()
        driver.diff("base", None, tar)
        driver.create("copy", None)
        tar.seek(0)
        assert driver.apply_diff("copy", None, tar) == len(b"Some data") == driver.diff_size("base", None)
        self.verify_base(driver, "copy")
        assert [c.kind for c in driver.changes("copy", None)] == [ChangeKind.ADD, ChangeKind.ADD]
        driver.remove("copy")
        driver.remove("base")

    @privileged
    def test_changes_against_a_grandparent(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        add_many_files(driver, "base", 5, 1)
        driver.create("middle", "base")
        root = driver.get("middle")
        write_file(root / "mid", b"m")
        driver.put("middle")
        driver.create("top", "middle")
        root = driver.get("top")
        write_file(root / "top", b"t")
        (root / "directory-0" / "file-1").unlink()
        driver.put("top")
        changes = {(c.path, c.kind) for c in driver.changes("top", "base")}
        assert changes == {
            ("/mid", ChangeKind.ADD),
            ("/top", ChangeKind.ADD),
            ("/directory-0", ChangeKind.MODIFY),
            ("/directory-0/file-1", ChangeKind.DELETE),
        }
        for layer in ("top", "middle", "base"):
            driver.remove(layer)

    @privileged
    def test_get_put_nest(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        driver.create_read_write("rw", "base")
        first = driver.get("rw")
        second = driver.get("rw")
        assert first == second
        write_file(first / "f", b"1")
        driver.put("rw")
        assert (second / "f").read_bytes() == b"1"  # still there: one reference left
        driver.put("rw")
        root = driver.get("rw")
        try:
            assert (root / "f").read_bytes() == b"1"
        finally:
            driver.put("rw")
        driver.remove("rw")
        driver.remove("base")
        assert not driver.exists("rw")

    @privileged
    def test_remove_while_mounted_leaves_nothing(self, driver: StorageDriver, home: Path) -> None:
        driver.create("base", None)
        driver.create_read_write("rw", "base")
        driver.get("rw")
        driver.remove("rw")  # a crashed container's layer: remove must still clean up
        driver.remove("base")
        assert not mounts_under(home)
        assert not driver.exists("rw") and not driver.exists("base")

    def test_status_and_metadata(self, driver: StorageDriver) -> None:
        status = driver.status()
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in status)
        driver.create("base", None)
        assert isinstance(driver.metadata("base"), dict)
        driver.remove("base")
        driver.remove("base")  # removing a missing layer is not an error
