"""Generic diffs for drivers with no native way: compare a layer's mounted tree with its parent's.

This is moby's NaiveDiffDriver. :func:`changes_dirs` walks both trees (moby's ``ChangesDirs``): an
entry is *modified* when its mode, owner, rdev, ``security.capability`` or (not for directories)
size, mtime or symlink target differ; a directory with changes below it is reported modified too
(``docker diff`` shows ``C /etc`` for a new ``/etc/foo``), and a deleted directory is one change,
not one per file. ``diff`` tars the changed entries with deletions as ``.wh.`` whiteouts;
``apply_diff`` extracts a layer tar into the mounted layer with whiteouts as deletions.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from engine.drivers import layers
from engine.drivers.storage import IDENTITY, Change, ChangeKind, IdMap

if TYPE_CHECKING:
    from engine.drivers.storage import StorageDriver

    _Base = StorageDriver
else:
    _Base = object

__all__ = ["NaiveDiffMixin", "changes_dirs", "changes_size", "entry_differs", "same_mtime"]

_CAPABILITY = "security.capability"


def same_mtime(a: os.stat_result, b: os.stat_result) -> bool:
    """Equal mtimes; a side without nanoseconds (a tar round trip) matches on seconds."""
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == 0 or nb == 0 or na == nb)


def entry_differs(old_path: str, old: os.stat_result, new_path: str, new: os.stat_result) -> bool:
    """moby's statDifferent plus the capability xattr and the symlink target."""
    if old.st_mode != new.st_mode or old.st_uid != new.st_uid or old.st_gid != new.st_gid or old.st_rdev != new.st_rdev:
        return True
    # Directory size and mtime are no measure of change (moby#9874).
    if not stat.S_ISDIR(new.st_mode) and (old.st_size != new.st_size or not same_mtime(old, new)):
        return True
    if stat.S_ISLNK(new.st_mode) and os.readlink(old_path) != os.readlink(new_path):
        return True
    if not stat.S_ISREG(new.st_mode):
        return False
    return layers.read_xattr(old_path, _CAPABILITY) != layers.read_xattr(new_path, _CAPABILITY)


def _listing(path: str) -> dict[str, tuple[str, os.stat_result]]:
    out = {}
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return out
    for name in names:
        child = os.path.join(path, name)
        try:
            out[name] = (child, os.lstat(child))
        except FileNotFoundError:
            continue
    return out


def changes_dirs(new_root: Path, old_root: Path | None) -> list[Change]:
    """The changes that turn ``old_root`` into ``new_root`` (``None``: everything is added), by path."""
    changes: list[Change] = []

    def walk(rel: str, new_dir: str, old_dir: str | None, marked: bool) -> None:
        start = len(changes)
        old_children = _listing(old_dir) if old_dir is not None else {}
        for name, (new_path, new_st) in sorted(_listing(new_dir).items()):
            child = f"{rel}/{name}"
            old = old_children.pop(name, None)
            child_marked = False
            if old is None:
                changes.append(Change(child, ChangeKind.ADD))
                child_marked = True
            elif entry_differs(old[0], old[1], new_path, new_st):
                changes.append(Change(child, ChangeKind.MODIFY))
                child_marked = True
            if stat.S_ISDIR(new_st.st_mode):
                old_sub = old[0] if old is not None and stat.S_ISDIR(old[1].st_mode) else None
                walk(child, new_path, old_sub, child_marked)
        for name in old_children:
            changes.append(Change(f"{rel}/{name}", ChangeKind.DELETE))
        # A directory with changes inside is itself reported, before them (moby: to keep its metadata).
        if len(changes) > start and rel and not marked:
            changes.insert(start, Change(rel, ChangeKind.MODIFY))

    walk("", os.fspath(new_root), os.fspath(old_root) if old_root is not None else None, True)
    changes.sort(key=lambda c: os.fsencode(c.path))
    return changes


def changes_size(root: Path, changes: list[Change]) -> int:
    """Bytes of the added and modified non-directories (hardlinked inodes counted once)."""
    size = 0
    seen: set[tuple[int, int]] = set()
    for change in changes:
        if change.kind == ChangeKind.DELETE:
            continue
        try:
            st = os.lstat(os.path.join(root, change.path.lstrip("/")))
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        size += st.st_size
    return size


class NaiveDiffMixin(_Base):
    """``diff``/``changes``/``apply_diff``/``diff_size`` from ``get``/``put`` alone.

    Mix in before :class:`~engine.drivers.storage.StorageDriver`. Uses ``self.id_map``.
    """

    id_map: IdMap = IDENTITY

    def _naive_changes(self, layer_fs: Path, parent: str | None) -> list[Change]:
        if not parent:
            with tempfile.TemporaryDirectory(prefix="engine-empty-") as empty:
                return changes_dirs(layer_fs, Path(empty))
        parent_fs = self.get(parent)
        try:
            return changes_dirs(layer_fs, parent_fs)
        finally:
            self.put(parent)

    def diff(self, id: str, parent: str | None, out: BinaryIO) -> None:
        layer_fs = self.get(id)
        try:
            if not parent:
                layers.tar_tree(layer_fs, out, id_map=self.id_map)
                return
            layers.tar_changes(layer_fs, self._naive_changes(layer_fs, parent), out, self.id_map)
        finally:
            self.put(id)

    def changes(self, id: str, parent: str | None) -> list[Change]:
        layer_fs = self.get(id)
        try:
            return self._naive_changes(layer_fs, parent)
        finally:
            self.put(id)

    def apply_diff(self, id: str, parent: str | None, diff: BinaryIO) -> int:
        layer_fs = self.get(id)
        try:
            return layers.apply_layer(layer_fs, diff, layers.DELETE_WHITEOUTS, self.id_map)
        finally:
            self.put(id)

    def diff_size(self, id: str, parent: str | None) -> int:
        layer_fs = self.get(id)
        try:
            return changes_size(layer_fs, self._naive_changes(layer_fs, parent))
        finally:
            self.put(id)
