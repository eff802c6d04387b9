"""overlay2's native diff: the upper (``diff``) directory *is* the layer's change set.

Whiteouts there are char devices 0:0 and opaque directories carry ``<prefix>opaque=y``; the tar
form converts them (:mod:`engine.archive`). :func:`overlay_changes` is moby's OverlayChanges: walk
the upper dir, report whiteouts and opaque directories as deleted, entries found in a lower layer
as modified (directories only when their own size, mode or mtime differ), everything else as added,
and the parent directory of an addition or deletion as modified.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from engine.drivers.layers import walk_tree
from engine.drivers.naive_diff import same_mtime
from engine.drivers.storage import Change, ChangeKind


def _is_deleted(host: str, st: os.stat_result, opaque_xattr: str) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    if stat.S_ISDIR(st.st_mode):
        try:
            return os.getxattr(host, opaque_xattr, follow_symlinks=False) == b"y"
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
    return False


def overlay_changes(lowers: list[str], upper: Path, opaque_xattr: str = "trusted.overlay.opaque") -> list[Change]:
    """The changes an overlay upper dir holds over ``lowers`` (top first), in walk order."""
    changes: list[Change] = []
    changed_dirs: set[str] = set()
    for host, rel, st in walk_tree(os.fspath(upper)):
        path = "/" + rel
        if _is_deleted(host, st, opaque_xattr):
            kind = ChangeKind.DELETE
        else:
            kind = ChangeKind.ADD
            unchanged_dir = False
            for layer in lowers:
                try:
                    below = os.lstat(layer + path)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if (
                    stat.S_ISDIR(below.st_mode)
                    and stat.S_ISDIR(st.st_mode)
                    and below.st_size == st.st_size
                    and below.st_mode == st.st_mode
                    and same_mtime(below, st)
                ):
                    unchanged_dir = True  # only there because something below it changed
                kind = ChangeKind.MODIFY
                break
            if unchanged_dir:
                continue
        if stat.S_ISDIR(st.st_mode):
            changed_dirs.add(path)
        if kind != ChangeKind.MODIFY:
            parent = os.path.dirname(path)
            if parent != "/" and parent not in changed_dirs:
                changes.append(Change(parent, ChangeKind.MODIFY))
                changed_dirs.add(parent)
        changes.append(Change(path, kind))
    return changes


def dir_size(path: Path) -> int:
    """Bytes of the non-directories below ``path``, each inode once (moby's directory.Size)."""
    size = 0
    seen: set[int] = set()
    for _, _, st in walk_tree(os.fspath(path)):
        if stat.S_ISDIR(st.st_mode) or st.st_size == 0 or st.st_ino in seen:
            continue
        seen.add(st.st_ino)
        size += st.st_size
    return size
