"""The layer store over real storage drivers: one-pass register, byte-exact export, refcounts, RW layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import registry
from engine.drivers.storage import ChangeKind, StorageDriver
from engine.errors import DriverError, NotFound
from engine.images.layers import EMPTY_LAYER_DIFF_ID, LayerStore, chain_id

pytestmark = pytest.mark.privileged


def _driver(name: str, home: Path) -> StorageDriver:
    try:
        cls = registry.DriverRegistry(registry.STORAGE).load(name, explicit=True)
        return cls.init(home, {})
    except (DriverError, NotImplementedError) as exc:  # not supported here, or not installed yet
        pytest.skip(f"{name} not usable here: {exc}")


@pytest.fixture(params=["vfs", "overlay2"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LayerStore]:
    driver = _driver(request.param, tmp_path / request.param)
    layers = LayerStore(tmp_path / "layerdb", driver)
    try:
        yield layers
    finally:
        driver.cleanup()


def layer_tar(entries: list[tuple[str, str, bytes | str]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """(name, kind, data-or-linkname); kinds: dir, file, hard, sym."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "file":
                assert isinstance(data, bytes)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.LNKTYPE if kind == "hard" else tarfile.SYMTYPE
                info.linkname = str(data)
                tar.addfile(info)
    return buf.getvalue()


BASE = layer_tar(
    [
        ("etc", "dir", b""),
        ("etc/passwd", "file", b"root:x:0:0::/root:/bin/sh\n"),
        ("bin", "dir", b""),
        ("bin/tool", "file", os.urandom(70000)),
        ("bin/alias", "hard", "bin/tool"),
        ("bin/sym", "sym", "tool"),
        ("gone", "dir", b""),
        ("gone/file", "file", b"bye"),
    ]
)
UPPER = layer_tar(
    [
        ("etc", "dir", b""),
        ("etc/hello", "file", b"hello\n"),
        ("bin", "dir", b""),
        ("bin/.wh.sym", "file", b""),
        ("gone", "dir", b""),
        ("gone/.wh..wh..opq", "file", b""),
        ("gone/new", "file", b"new"),
    ]
)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def export(store: LayerStore, chain: str) -> bytes:
    out = io.BytesIO()
    assert store.export(chain, out) == store.tar_size(chain)
    return out.getvalue()


def test_register_hashes_and_reproduces_exactly(store: LayerStore) -> None:
    base = store.register(io.BytesIO(gzip.compress(BASE)))
    assert base.diff_id == sha(BASE) == base.chain_id
    upper = store.register(io.BytesIO(lzma.compress(UPPER)), base.chain_id)
    assert upper.diff_id == sha(UPPER)
    assert upper.chain_id == chain_id(base.chain_id, upper.diff_id)
    assert export(store, base.chain_id) == BASE
    assert export(store, upper.chain_id) == UPPER  # whiteouts and opaque markers included
    root = store.driver.get(upper.cache_id)
    try:
        assert (root / "etc" / "hello").read_text() == "hello\n"
        assert not (root / "bin" / "sym").exists() and not (root / "bin" / "sym").is_symlink()
        assert sorted(os.listdir(root / "gone")) == ["new"]
        assert os.stat(root / "bin" / "alias").st_ino == os.stat(root / "bin" / "tool").st_ino
    finally:
        store.driver.put(upper.cache_id)
    assert store.size(upper.chain_id) == base.size + upper.size


def test_same_chain_registered_twice_reuses_the_layer(store: LayerStore) -> None:
    first = store.register(io.BytesIO(BASE))
    second = store.register(io.BytesIO(gzip.compress(BASE)))
    assert second is first and first.refs == 2
    driver_dirs = set(os.listdir(store.driver.home / ("dir" if store.driver.name == "vfs" else "")))
    assert first.cache_id in driver_dirs
    assert not any(name.startswith("write-set") for name in os.listdir(store.root / "tmp"))


def test_release_removes_only_unreferenced_layers_and_leaves_nothing(store: LayerStore, tmp_path: Path) -> None:
    before = _tree(store.driver.home)
    base = store.register(io.BytesIO(BASE))
    upper = store.register(io.BytesIO(UPPER), base.chain_id)
    assert store.release(base.chain_id) == []  # the child still holds it
    assert store.exists(base.chain_id)
    assert store.release(upper.chain_id) == [upper.chain_id, base.chain_id]
    assert not store.exists(base.chain_id)
    assert os.listdir(store.root / "sha256") == []
    assert _tree(store.driver.home) == before
    with pytest.raises(NotFound):
        store.acquire(base.chain_id)


def test_reload_rebuilds_references(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE))
    upper = store.register(io.BytesIO(UPPER), base.chain_id)
    again = LayerStore(store.root, store.driver)
    assert again.get(upper.chain_id).diff_id == upper.diff_id
    assert again.get(base.chain_id).refs == 1  # the child's reference
    assert again.garbage_collect() == [upper.chain_id, base.chain_id]  # nothing else held them


def test_rw_layer_lifecycle(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE))

    def init(path: Path) -> None:
        (path / "etc" / "hostname").write_text("placeholder\n")

    cid = "c" * 64
    store.create_rw_layer(cid, base.chain_id, init)
    assert (store.root / "mounts" / cid / "parent").read_text() == base.chain_id
    root = store.mount_rw(cid)
    assert store.mount_rw(cid) == root
    assert (root / "etc" / "hostname").read_text() == "placeholder\n"
    (root / "etc" / "new").write_text("added")
    (root / "gone" / "file").unlink()
    changes = {(c.path, c.kind) for c in store.rw_changes(cid)}
    assert ("/etc/new", ChangeKind.ADD) in changes
    assert ("/gone/file", ChangeKind.DELETE) in changes
    assert not any(path == "/etc/hostname" for path, _ in changes)  # init files are not the container's
    out = io.BytesIO()
    store.rw_diff(cid, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = set(tar.getnames())
    assert {"etc/new", "gone/.wh.file"} <= names
    size_rw, size_rootfs = store.rw_size(cid)
    assert size_rw >= len("added")
    assert size_rootfs == base.size + size_rw
    # a commit of that diff is a normal layer on the image's chain
    committed = store.register(io.BytesIO(out.getvalue()), base.chain_id)
    assert committed.diff_id != EMPTY_LAYER_DIFF_ID
    store.unmount_rw(cid)
    store.unmount_rw(cid)
    store.remove_rw_layer(cid)
    assert not (store.root / "mounts" / cid).exists()
    assert store.release(committed.chain_id) == [committed.chain_id]
    assert store.release(base.chain_id) == [base.chain_id]
    assert os.listdir(store.root / "sha256") == []


def _tree(home: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), home)
            out.add(rel)
    return out


def test_driver_layers_a_crash_orphaned_are_reclaimed_at_start_up(store: LayerStore, tmp_path: Path) -> None:
    """A daemon killed between the driver's create and the layer record (or between retiring a record
    and the driver's remove) leaves a driver layer no record names: the next start-up removes it."""
    kept = store.register(io.BytesIO(layer_tar([("a", "file", b"1")])))
    driver = store.driver
    # a register cut short: the staged record names the driver layer, the driver made it
    staged = store.root / "tmp" / "write-set-crash"
    staged.mkdir()
    (staged / "cache-id").write_text("c" * 64)
    driver.create("c" * 64, None)
    # an RW layer creation cut short after the driver made both layers
    mount = store.root / "tmp" / "mount-crash"
    mount.mkdir()
    (mount / "mount-id").write_text("d" * 64)
    (mount / "init-id").write_text("d" * 64 + "-init")
    driver.create_read_write("d" * 64 + "-init", kept.cache_id, None)
    driver.create_read_write("d" * 64, "d" * 64 + "-init", None)
    # a record naming a live layer is never touched
    (store.root / "tmp" / "remove-live").mkdir()
    (store.root / "tmp" / "remove-live" / "cache-id").write_text(kept.cache_id)

    again = LayerStore(store.root, driver)

    assert not driver.exists("c" * 64)
    assert not driver.exists("d" * 64)
    assert not driver.exists("d" * 64 + "-init")
    assert driver.exists(kept.cache_id)
    assert again.exists(kept.chain_id)
    assert list((store.root / "tmp").iterdir()) == []


def test_removing_a_layer_retires_its_record_first(store: LayerStore) -> None:
    layer = store.register(io.BytesIO(layer_tar([("a", "file", b"1")])))
    store.create_rw_layer("ctr", layer.chain_id)
    rw = store._rw_layer("ctr")
    store.remove_rw_layer("ctr")
    assert not store.driver.exists(rw.mount_id)
    assert store.release(layer.chain_id) == [layer.chain_id]
    assert not store.driver.exists(layer.cache_id)
    assert list((store.root / "tmp").iterdir()) == []
    assert list((store.root / "sha256").iterdir()) == []
