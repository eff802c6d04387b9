"""Deterministic tar writing: a whole tree or a change list, PAX where ustar cannot say it."""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from engine.drivers.layers._base import _CHUNK, _O_CLOEXEC, OVERLAY_XATTR_PREFIXES, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from engine.drivers.layers._paths import _join
from engine.drivers.storage import IDENTITY, Change, ChangeKind, IdMap

log = logging.getLogger(__name__)


def _is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class TarWriter:
    """Writes tar entries to ``out`` (PAX where needed; no record padding after the end marker).

    Files sharing an inode become hardlink entries after the first. With ``overlay_whiteouts`` the
    overlay forms are converted: a char device 0:0 becomes ``.wh.<name>``, a directory carrying
    ``<prefix>opaque=y`` gets a ``.wh..wh..opq`` entry right after it.
    """

    def __init__(
        self,
        out: BinaryIO,
        id_map: IdMap = IDENTITY,
        *,
        overlay_whiteouts: bool = False,
        overlay_xattr_prefix: str = "trusted.overlay.",
    ) -> None:
        self.out = out
        self.id_map = id_map
        self.overlay_whiteouts = overlay_whiteouts
        self.opaque_xattr = overlay_xattr_prefix + "opaque"
        self._seen: dict[tuple[int, int], str] = {}

    def _ids(self, st: os.stat_result) -> tuple[int, int]:
        return self.id_map.to_container(st.st_uid, st.st_gid)

    def _emit(self, info: tarfile.TarInfo) -> None:
        fast = _ustar_header(info)
        self.out.write(fast if fast is not None else info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def add(self, path: str | Path, name: str, st: os.stat_result | None = None) -> None:
        """Add the file at host ``path`` as ``name`` (no recursion); sockets are skipped as Docker does."""
        path = os.fspath(path)
        st = st or os.lstat(path)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            log.debug("archive: skipping %s since it is a socket", path)
            return
        if self.overlay_whiteouts and _is_overlay_whiteout(st):
            self.add_whiteout(name, st)
            return
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = self._ids(st)
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        xattrs = self._xattrs(path)
        opaque = False
        if self.overlay_whiteouts and stat.S_ISDIR(mode):
            opaque = read_xattr(path, self.opaque_xattr) == b"y"
        data_size = 0
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            key = (st.st_dev, st.st_ino)
            first = self._seen.get(key) if st.st_nlink > 1 else None
            if first is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = first
            else:
                if st.st_nlink > 1:
                    self._seen[key] = name
                if stat.S_ISREG(mode):
                    info.type = tarfile.REGTYPE
                    info.size = data_size = st.st_size
                else:
                    info.type = (
                        tarfile.CHRTYPE
                        if stat.S_ISCHR(mode)
                        else tarfile.BLKTYPE
                        if stat.S_ISBLK(mode)
                        else tarfile.FIFOTYPE
                    )
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            log.debug("archive: skipping %s of unknown type %o", path, mode)
            return
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs}
        self._emit(info)
        if data_size:
            self._copy_data(path, data_size)
        if opaque:
            wo = tarfile.TarInfo(_join(name.rstrip("/"), WHITEOUT_OPAQUE))
            wo.mode = stat.S_IMODE(mode) & 0o777
            wo.uid, wo.gid = info.uid, info.gid
            wo.mtime = 0
            self._emit(wo)

    def add_whiteout(self, name: str, st: os.stat_result | None = None) -> None:
        """A ``.wh.<base>`` entry hiding ``name``."""
        parent, _, base = name.rstrip("/").rpartition("/")
        info = tarfile.TarInfo(_join(parent, WHITEOUT_PREFIX + base))
        info.type = tarfile.REGTYPE
        if st is not None:  # an overlay whiteout keeps its owner and time, as moby's converter does
            info.mode = 0o600
            info.uid, info.gid = self._ids(st)
            info.mtime = int(st.st_mtime)
        else:
            info.mode, info.mtime = 0, 0
        self._emit(info)

    def _xattrs(self, path: str) -> list[tuple[str, bytes]]:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EPERM):
                return []
            raise
        out = []
        for key in sorted(names):
            if key.startswith(OVERLAY_XATTR_PREFIXES):
                continue
            value = read_xattr(path, key)
            if value is not None:
                out.append((key, value))
        return out

    def _copy_data(self, path: str, size: int) -> None:
        """Exactly ``size`` bytes (a file that shrank meanwhile is padded with zeros)."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _O_CLOEXEC)
        left = size
        try:
            while left:
                chunk = os.read(fd, min(_CHUNK, left))
                if not chunk:
                    chunk = bytes(min(_CHUNK, left))
                self.out.write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        if size % tarfile.BLOCKSIZE:
            self.out.write(bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        """The end-of-archive marker (two zero blocks)."""
        self.out.write(bytes(2 * tarfile.BLOCKSIZE))


_USTAR_MAX = {"uid": 8**7, "gid": 8**7, "size": 8**11, "mtime": 8**11, "devmajor": 8**7, "devminor": 8**7}
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")


def _octal(value: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, value)


def _ustar_header(info: tarfile.TarInfo) -> bytes | None:
    """The header ``tobuf(PAX_FORMAT)`` would write, built directly when no PAX record is needed
    (short ASCII names, small numbers, no xattrs): tarfile's general path costs ~10x more."""
    if info.pax_headers or info.uname or info.gname:
        return None
    name = info.name + "/" if info.type == tarfile.DIRTYPE and not info.name.endswith("/") else info.name
    if len(name) > 100 or len(info.linkname) > 100 or not (name + info.linkname).isascii():
        return None
    if not all(0 <= getattr(info, key) < limit for key, limit in _USTAR_MAX.items()):
        return None
    if not isinstance(info.mtime, int):
        return None
    device = info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    header = _USTAR.pack(
        name.encode(),
        _octal(info.mode & 0o7777, 8),
        _octal(info.uid, 8),
        _octal(info.gid, 8),
        _octal(info.size, 12),
        _octal(info.mtime, 12),
        b"        ",
        info.type,
        info.linkname.encode(),
        tarfile.POSIX_MAGIC,
        b"",
        b"",
        _octal(info.devmajor, 8) if device else b"",
        _octal(info.devminor, 8) if device else b"",
        b"",
    )
    checksum = sum(header)
    return header[:148] + b"%06o\0 " % checksum + header[156:]


def read_xattr(path: str, key: str) -> bytes | None:
    """An extended attribute of ``path`` itself (a symlink is not followed); None when it is absent
    or the filesystem has none."""
    try:
        return os.getxattr(path, key, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM, errno.ENOENT):
            return None
        raise


def _sorted_names(path: str) -> list[str]:
    return sorted(os.listdir(path), key=os.fsencode)


def walk_tree(top: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """``(host path, name relative to top, lstat)`` below ``top``: sorted by name, depth first."""
    return _walk(top, "")


def _walk(path: str, prefix: str) -> Iterator[tuple[str, str, os.stat_result]]:
    for entry in _sorted_names(path):
        child = os.path.join(path, entry)
        try:
            st = os.lstat(child)
        except FileNotFoundError:
            continue
        rel = prefix + entry
        yield child, rel, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(child, rel + "/")


def tar_tree(
    top: Path,
    out: BinaryIO,
    *,
    id_map: IdMap = IDENTITY,
    overlay_whiteouts: bool = False,
    overlay_xattr_prefix: str = "trusted.overlay.",
    prefix: str = "",
    include_top: bool = False,
) -> None:
    """Tar everything below ``top`` into ``out`` (names relative to ``top``, under ``prefix``)."""
    writer = TarWriter(out, id_map, overlay_whiteouts=overlay_whiteouts, overlay_xattr_prefix=overlay_xattr_prefix)
    top_s = os.fspath(top)
    st = os.lstat(top_s)
    if include_top:
        writer.add(top_s, prefix or ".", st)
    if stat.S_ISDIR(st.st_mode):
        for path, rel, est in walk_tree(top_s):
            writer.add(path, _join(prefix, rel) if prefix else rel, est)
    writer.close()


def tar_changes(root: Path, changes: Iterable[Change], out: BinaryIO, id_map: IdMap = IDENTITY) -> None:
    """Tar the files ``changes`` name (no recursion); deletions become whiteouts (moby ExportChanges)."""
    writer = TarWriter(out, id_map)
    root_s = os.fspath(root)
    for change in sorted(changes, key=lambda c: os.fsencode(c.path)):
        name = change.path.lstrip("/")
        if change.kind == ChangeKind.DELETE:
            writer.add_whiteout(name)
            continue
        path = os.path.join(root_s, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # changed again while we were writing
        writer.add(path, name, st)
    writer.close()
