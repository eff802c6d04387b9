"""Diffs straight from a layer's aufs branch: whiteouts there already are ``.wh.`` files.

``tar_diff`` is dockerd's aufs Diff (a tar of the ``diff`` dir without aufs' own ``.wh..wh.*``
entries, the opaque marker kept); ``aufs_changes`` is dockerd's archive.Changes over aufs layers;
``dir_size`` is what dockerd's aufs reports as a layer's size.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from engine.drivers import layers
from engine.drivers.naive_diff import same_mtime
from engine.drivers.storage import IDENTITY, Change, ChangeKind, IdMap
from engine_plugin_aufs.branches import is_aufs_meta, whited_out


def walk_branch(top: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """``walk_tree`` of a branch without aufs' meta entries (nor what is below them)."""
    skipped: list[str] = []
    for path, rel, st in layers.walk_tree(os.fspath(top)):
        if any(rel.startswith(prefix) for prefix in skipped):
            continue
        if is_aufs_meta(os.path.basename(rel)):
            skipped.append(rel + "/")
            continue
        yield path, rel, st


def tar_diff(branch: Path, out: BinaryIO, id_map: IdMap = IDENTITY) -> None:
    writer = layers.TarWriter(out, id_map)
    for path, rel, st in walk_branch(branch):
        writer.add(path, rel, st)
    writer.close()


def aufs_changes(parents: list[Path], branch: Path) -> list[Change]:
    """Changes of ``branch`` over its parents' branches (nearest first), as dockerd lists them."""
    changes: list[Change] = []
    changed_dirs: set[str] = set()
    for _path, rel, st in walk_branch(branch):
        name = os.path.basename(rel)
        hidden = whited_out(name)
        path = "/" + rel
        if name == ".wh..wh..opq":
            continue
        if hidden is not None:
            change = Change(os.path.join(os.path.dirname(path), hidden), ChangeKind.DELETE)
        else:
            kind = ChangeKind.ADD
            for parent in parents:
                try:
                    below = os.stat(os.path.join(parent, rel))
                except FileNotFoundError:
                    continue
                same_dir = stat.S_ISDIR(below.st_mode) and stat.S_ISDIR(st.st_mode)
                if same_dir and below.st_size == st.st_size and below.st_mode == st.st_mode and same_mtime(below, st):
                    kind = None  # the same directory: it is only here because something below changed
                    break
                kind = ChangeKind.MODIFY
                break
            if kind is None:
                continue
            change = Change(path, kind)
        if stat.S_ISDIR(st.st_mode):
            changed_dirs.add(path)
        if change.kind in (ChangeKind.ADD, ChangeKind.DELETE):
            parent_dir = os.path.dirname(path)
            if parent_dir != "/" and parent_dir not in changed_dirs:
                changes.append(Change(parent_dir, ChangeKind.MODIFY))
                changed_dirs.add(parent_dir)
        changes.append(change)
    return sorted(set(changes), key=lambda c: os.fsencode(c.path))


def dir_size(top: Path) -> int:
    """Bytes of the non-directories below ``top``, hardlinked inodes once (moby's directory.Size)."""
    size, seen = 0, set()
    for _path, _rel, st in layers.walk_tree(os.fspath(top)):
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        size += st.st_size
    return size
