"""File-tree helpers shared by the storage conformance suite and the storage benchmarks.

They follow moby's graphtest helpers (``addManyFiles``, ``changeManyFiles``, ``addManyLayers``...)
with deterministic content, and add :func:`snapshot`, which captures everything a layer round trip
must preserve (type, mode, owner, device, content or link target, xattrs, hardlink groups).
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path
from typing import Any

from engine.drivers.storage import Change, ChangeKind, StorageDriver

FILES_PER_DIR = 100


def random_content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_file(path: Path, data: bytes, mode: int = 0o755) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)  # explicit: the process umask is shared with other threads


def add_many_files(driver: StorageDriver, layer: str, count: int, seed: int) -> None:
    """``directory-<i>/file-<j>`` with 64 random bytes each (graphtest addManyFiles)."""
    root = driver.get(layer)
    try:
        for i in range(0, count, FILES_PER_DIR):
            directory = root / f"directory-{i}"
            directory.mkdir(mode=0o755, exist_ok=True)
            for j in range(min(FILES_PER_DIR, count - i)):
                write_file(directory / f"file-{j}", random_content(64, seed + i + j))
    finally:
        driver.put(layer)


def check_many_files(driver: StorageDriver, layer: str, count: int, seed: int) -> None:
    root = driver.get(layer)
    try:
        for i in range(0, count, FILES_PER_DIR):
            for j in range(min(FILES_PER_DIR, count - i)):
                path = root / f"directory-{i}" / f"file-{j}"
                assert path.read_bytes() == random_content(64, seed + i + j), f"{path}: wrong content"
    finally:
        driver.put(layer)


def change_many_files(driver: StorageDriver, layer: str, count: int, seed: int) -> list[Change]:
    """Update, add and remove files in turn; returns the changes the driver must report."""
    root = driver.get(layer)
    expected: list[Change] = []
    try:
        for i in range(0, count, FILES_PER_DIR):
            directory = f"/directory-{i}"
            (root / directory[1:]).mkdir(mode=0o755, exist_ok=True)
            for j in range(min(FILES_PER_DIR, count - i)):
                if j == 0:
                    expected.append(Change(directory, ChangeKind.MODIFY))
                kind = j % 3
                if kind == 0:
                    path = f"{directory}/file-{i + j}"
                    write_file(root / path[1:], random_content(64, seed + i + j))
                    expected.append(Change(path, ChangeKind.MODIFY))
                elif kind == 1:
                    path = f"{directory}/file-{seed}-{i + j}"
                    write_file(root / path[1:], random_content(64, seed + i + j))
                    expected.append(Change(path, ChangeKind.ADD))
                else:
                    path = f"{directory}/file-{i + j}"
                    (root / path[1:]).unlink()
                    expected.append(Change(path, ChangeKind.DELETE))
    finally:
        driver.put(layer)
    return expected


def add_layer_files(driver: StorageDriver, layer: str, parent: str, index: int) -> None:
    root = driver.get(layer)
    try:
        write_file(root / "top-id", layer.encode())
        layer_dir = root / f"layer-{index}"
        layer_dir.mkdir(mode=0o755)
        write_file(layer_dir / "layer-id", layer.encode())
        write_file(layer_dir / "parent-id", parent.encode())
    finally:
        driver.put(layer)


def add_many_layers(driver: StorageDriver, base: str, count: int) -> list[str]:
    """``count`` layers stacked on ``base``, each adding its own files; returns them bottom to top."""
    layers, parent = [], base
    for index in range(1, count + 1):
        layer = f"{base}-layer{index}"
        driver.create(layer, parent)
        add_layer_files(driver, layer, parent, index)
        layers.append(layer)
        parent = layer
    return layers


def check_many_layers(driver: StorageDriver, top: str, count: int) -> None:
    root = driver.get(top)
    try:
        assert (root / "top-id").read_bytes() == top.encode()
        layer = top
        for index in range(count, 0, -1):
            layer_dir = root / f"layer-{index}"
            assert (layer_dir / "layer-id").read_bytes() == layer.encode(), f"layer-{index}: wrong id"
            layer = (layer_dir / "parent-id").read_text()
    finally:
        driver.put(top)


# -- what a round trip must preserve -------------------------------------------------------------------


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {
        name: os.getxattr(path, name, follow_symlinks=False)
        for name in sorted(names)
        if not name.startswith(("trusted.overlay.", "user.overlay.", "security.selinux"))
    }


def snapshot(root: Path, *, times: bool = False) -> dict[str, Any]:
    """Everything observable below ``root``: per path its type and mode, owner, rdev, content or link
    target, xattrs (mtime in seconds with ``times``); hardlinked paths share a group number."""
    out: dict[str, Any] = {}
    inodes: dict[int, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            rel = os.path.relpath(path, root)
            content: bytes | str | None = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            link_group = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                link_group = inodes.setdefault(st.st_ino, len(inodes))
            entry = [st.st_mode, st.st_uid, st.st_gid, st.st_rdev, content, _xattrs(path), link_group]
            if times:
                entry.append(int(st.st_mtime))
            out[rel] = tuple(entry)
    return out
