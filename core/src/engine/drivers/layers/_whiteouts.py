"""Whiteouts: what a layer's ``.wh.`` entries do to an extraction target."""

from __future__ import annotations

import functools
import os
import stat
import tarfile
from typing import TYPE_CHECKING, Protocol

from engine.drivers.layers._base import _O_CLOEXEC
from engine.drivers.layers._paths import _join

if TYPE_CHECKING:
    from engine.drivers.layers._extract import Extractor


class WhiteoutHandler(Protocol):
    """What a layer's whiteout entries do to the extraction target."""

    #: create missing parent directories of a whiteout entry (False: such a whiteout is a no-op)
    creates_parents: bool

    def whiteout(self, ex: Extractor, parent_fd: int, parent_rel: str, name: str, member: tarfile.TarInfo) -> None:
        """``parent_rel/.wh.<name>`` was read: hide ``name``."""

    def opaque(self, ex: Extractor, dir_fd: int, dir_rel: str, member: tarfile.TarInfo) -> None:
        """``dir_rel/.wh..wh..opq`` was read: hide what lower layers hold in ``dir_rel``."""


class DeleteWhiteouts:
    """Whiteouts remove files: for drivers whose layer directory is a full copy (vfs, naive diff)."""

    creates_parents = False  # a whiteout in a directory that does not exist hides nothing

    def whiteout(self, ex: Extractor, parent_fd: int, parent_rel: str, name: str, member: tarfile.TarInfo) -> None:
        ex.remove(parent_fd, name)

    def opaque(self, ex: Extractor, dir_fd: int, dir_rel: str, member: tarfile.TarInfo) -> None:
        rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC, dir_fd=dir_fd)
        try:
            self._purge(ex, rfd, dir_rel)
        finally:
            os.close(rfd)

    def _purge(self, ex: Extractor, dfd: int, dir_rel: str) -> None:
        """Remove everything below ``dir_rel`` that this layer did not extract."""
        for name in os.listdir(dfd):
            rel = _join(dir_rel, name)
            if rel not in ex.unpacked:
                ex.remove(dfd, name)
                continue
            if stat.S_ISDIR(os.lstat(name, dir_fd=dfd).st_mode):
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=dfd)
                try:
                    self._purge(ex, sub, rel)
                finally:
                    os.close(sub)


class OverlayWhiteouts:
    """Whiteouts in overlayfs form, written into an overlay upper (``diff``) directory."""

    creates_parents = True

    def __init__(self, opaque_xattr: str = "trusted.overlay.opaque") -> None:
        self.opaque_xattr = opaque_xattr

    def whiteout(self, ex: Extractor, parent_fd: int, parent_rel: str, name: str, member: tarfile.TarInfo) -> None:
        ex.remove(parent_fd, name)
        os.mknod(name, stat.S_IFCHR, 0, dir_fd=parent_fd)
        uid, gid = ex.owner(member)
        if ex.chown:
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
        ex.unpacked.add(_join(parent_rel, name))

    def opaque(self, ex: Extractor, dir_fd: int, dir_rel: str, member: tarfile.TarInfo) -> None:
        os.setxattr(f"/proc/self/fd/{dir_fd}", self.opaque_xattr, b"y")


DELETE_WHITEOUTS = DeleteWhiteouts()


@functools.cache
def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace (its uid map is not the whole identity range): devices
    cannot be made there, and overlay needs ``userxattr``."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
