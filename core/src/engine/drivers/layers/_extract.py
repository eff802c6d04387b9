"""Safe extraction of a tar stream into a directory (layers, build contexts, ``docker cp``)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from engine.drivers.layers._base import (
    _CHUNK,
    _O_CLOEXEC,
    OVERLAY_XATTR_PREFIXES,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    ArchiveError,
    BreakoutError,
)
from engine.drivers.layers._compress import _drain, decompress
from engine.drivers.layers._paths import _clean_inside, _join, clean_name, open_in_root
from engine.drivers.layers._whiteouts import DELETE_WHITEOUTS, WhiteoutHandler, in_user_namespace
from engine.drivers.storage import IDENTITY, IdMap

log = logging.getLogger(__name__)


def _pax_ns(member: tarfile.TarInfo, key: str, default: float) -> int:
    """A PAX time (``mtime``/``atime``) in nanoseconds without float rounding."""
    raw = member.pax_headers.get(key)
    if raw is None:
        return int(default * 1_000_000_000) if isinstance(default, float) else int(default) * 1_000_000_000
    sec, _, frac = raw.partition(".")
    neg = sec.startswith("-")
    ns = abs(int(sec or "0")) * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
    return -ns if neg else ns


def member_xattrs(member: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    """The xattrs a tar entry carries (``SCHILY.xattr.*``; ``LIBARCHIVE.xattr.*`` as bsdtar writes)."""
    import base64
    from urllib.parse import unquote

    for key, value in sorted(member.pax_headers.items()):
        if key.startswith("SCHILY.xattr."):
            name, data = key[len("SCHILY.xattr.") :], value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = unquote(key[len("LIBARCHIVE.xattr.") :])
            data = base64.b64decode(value + "=" * (-len(value) % 4))
        else:
            continue
        if not name.startswith(OVERLAY_XATTR_PREFIXES):
            yield name, data


class Extractor:
    """Extracts one tar stream below ``root/base`` (``base`` already resolved, relative to ``root``).

    ``root`` bounds every path resolution (it is ``/`` for symlinks); ``base`` is where names start.
    """

    def __init__(
        self,
        root: Path,
        base: str = "",
        *,
        whiteouts: WhiteoutHandler | None = DELETE_WHITEOUTS,
        id_map: IdMap = IDENTITY,
        chown: bool = True,
        chown_to: tuple[int, int] | None = None,
        no_overwrite_dir_non_dir: bool = False,
        layer: bool = True,
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.base = base
        self.whiteouts = whiteouts
        self.id_map = id_map
        self.chown = chown
        self.chown_to = chown_to
        self.no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        self.layer = layer
        self.root_ids = id_map.root()
        #: names (relative to base) this stream created, for opaque whiteouts
        self.unpacked: set[str] = set()
        self._dirs: list[tuple[str, int, int]] = []  # directory times, set last
        self._root_fd = -1
        self._cache: tuple[str, int] | None = None  # the last parent directory opened
        self._cache_valid = False

    # -- public --------------------------------------------------------------------------------------

    def extract(self, stream: BinaryIO) -> int:
        """Extract every entry of ``stream`` (compressed or not); returns the sum of entry sizes."""
        raw = decompress(stream)
        self._root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | _O_CLOEXEC)
        size = 0
        try:
            with tarfile.open(fileobj=raw, mode="r|", encoding="utf-8", errors="surrogateescape") as tf:  # type: ignore[call-overload]
                while (member := tf.next()) is not None:
                    tf.members.clear()  # a stream can hold millions of entries: keep no history
                    size += member.size
                    try:
                        self._entry(tf, member)
                    except OSError as exc:
                        raise ArchiveError(f"{member.name}: {exc.strerror or exc}") from exc
            self._set_dir_times()
            _drain(raw)
        except tarfile.ReadError as exc:
            if str(exc) != "empty file":  # no bytes at all: an empty archive, as Go's tar reader sees it
                raise ArchiveError(f"invalid tar stream: {exc}") from None
        except tarfile.TarError as exc:
            raise ArchiveError(f"invalid tar stream: {exc}") from None
        finally:
            self._drop_cache()
            os.close(self._root_fd)
        return size

    def owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        if self.chown_to is not None:
            return self.chown_to
        try:
            return self.id_map.to_host(member.uid, member.gid)
        except ValueError as exc:
            raise ArchiveError(f"{member.name}: {exc}") from None

    def remove(self, parent_fd: int, name: str) -> None:
        """Remove ``name`` (a whole tree for a directory) from the directory ``parent_fd``; missing is fine."""
        self._cache_valid = False  # the cached parent may have been below what goes now
        try:
            st = os.lstat(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)

    # -- entries -------------------------------------------------------------------------------------

    def _entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name)
        if not rel:  # the top directory itself
            if not m.isdir():
                raise ArchiveError(f"cannot replace the extraction directory with {m.name!r}")
            if self.layer:
                fd = self._parent("")
                self._apply_meta(fd, ".", m, is_dir=True)
                self._dirs.append(("", _pax_ns(m, "atime", m.mtime), _pax_ns(m, "mtime", m.mtime)))
            return
        parent_rel, _, name = rel.rpartition("/")
        if self.whiteouts is not None and name.startswith(WHITEOUT_META_PREFIX) and name != WHITEOUT_OPAQUE:
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never part of the content
        if self.whiteouts is not None and name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent_rel, name, m)
            return
        pfd = self._parent(parent_rel)

        try:
            existing = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if self.no_overwrite_dir_non_dir and is_dir and not m.isdir():
                raise ArchiveError(f"cannot overwrite directory {self._shown(rel)!r} with non-directory {m.name!r}")
            if self.no_overwrite_dir_non_dir and not is_dir and m.isdir():
                raise ArchiveError(f"cannot overwrite non-directory {self._shown(rel)!r} with directory {m.name!r}")
            if not (is_dir and m.isdir()):
                self.remove(pfd, name)
                pfd = self._parent(parent_rel)
                existing = None

        if m.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
            self._dirs.append((rel, _pax_ns(m, "atime", m.mtime), _pax_ns(m, "mtime", m.mtime)))
        elif m.isreg():
            self._write_file(tf, m, pfd, name)
        elif m.issym():
            self._check_symlink(parent_rel, m)
            os.symlink(m.linkname, name, dir_fd=pfd)
        elif m.islnk():
            self._link(m, pfd, name)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = os.makedev(m.devmajor, m.devminor) if kind != stat.S_IFIFO else 0
            try:
                os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
            except PermissionError:
                if kind == stat.S_IFIFO or not in_user_namespace():
                    raise
                log.debug("archive: skipping device %s inside a user namespace", m.name)  # as moby does
                return
        else:
            raise ArchiveError(f"unhandled tar header type {m.type!r} for {m.name!r}")
        self._apply_meta(pfd, name, m, is_dir=m.isdir())
        self.unpacked.add(rel)

    def _whiteout(self, parent_rel: str, name: str, m: tarfile.TarInfo) -> None:
        assert self.whiteouts is not None
        target = name[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            raise BreakoutError(f"invalid whiteout {m.name!r}")
        if getattr(self.whiteouts, "creates_parents", True):
            pfd = self._parent(parent_rel)
        else:
            try:
                pfd = self._parent(parent_rel, create=False)
            except (FileNotFoundError, NotADirectoryError):
                return  # nothing there to hide
        if name == WHITEOUT_OPAQUE:
            self.whiteouts.opaque(self, pfd, parent_rel, m)
        else:
            self.whiteouts.whiteout(self, pfd, parent_rel, target, m)

    def _shown(self, rel: str) -> str:
        return "/" + _join(self.base, rel)

    def _write_file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            src = tf.extractfile(m)
            if src is not None:
                while chunk := src.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _check_symlink(self, parent_rel: str, m: tarfile.TarInfo) -> None:
        """moby refuses relative symlinks that climb above the extraction directory."""
        if m.linkname.startswith("/"):
            return
        _clean_inside(_join(parent_rel, m.linkname) if parent_rel else m.linkname, "symlink target")

    def _link(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        target = _clean_inside(m.linkname, "hardlink target")
        if not target:
            raise BreakoutError(f"invalid hardlink {m.name!r} -> {m.linkname!r}")
        tparent, _, tname = target.rpartition("/")
        tfd = open_in_root(self._root_fd, self.root, _join(self.base, tparent))
        try:
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _apply_meta(self, pfd: int, name: str, m: tarfile.TarInfo, *, is_dir: bool) -> None:
        """Ownership, xattrs, mode, then times (chown first: it clears set-id bits)."""
        symlink = m.issym() or (m.islnk() and stat.S_ISLNK(os.lstat(name, dir_fd=pfd).st_mode))
        if self.chown:
            uid, gid = self.owner(m)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        for key, value in member_xattrs(m):
            try:
                os.setxattr(f"/proc/self/fd/{pfd}/{name}", key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                log.debug("xattr %s on %s not applied: %s", key, m.name, exc)
        if not symlink:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=pfd)
            try:
                os.chmod(f"/proc/self/fd/{fd}", m.mode & 0o7777)
            finally:
                os.close(fd)
        if not is_dir:
            times = (_pax_ns(m, "atime", m.mtime), _pax_ns(m, "mtime", m.mtime))
            os.utime(name, ns=times, dir_fd=pfd, follow_symlinks=False)

    def _set_dir_times(self) -> None:
        """Directory times last: creating entries inside a directory changes its mtime."""
        for rel, atime, mtime in self._dirs:
            parent_rel, _, name = rel.rpartition("/")
            try:
                fd = open_in_root(self._root_fd, self.root, _join(self.base, parent_rel))
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed by a later whiteout
            try:
                os.utime(name or ".", ns=(atime, mtime), dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)

    # -- parent directories ----------------------------------------------------------------------------

    def _parent(self, parent_rel: str, create: bool = True) -> int:
        """An O_PATH fd of the directory ``parent_rel`` (below base), missing directories created."""
        if self._cache is not None and self._cache_valid and self._cache[0] == parent_rel:
            return self._cache[1]
        self._drop_cache()
        if create:
            fd = self._open_or_create(parent_rel)
        else:
            fd = open_in_root(self._root_fd, self.root, _join(self.base, parent_rel))
        self._cache, self._cache_valid = (parent_rel, fd), True
        return fd

    def _drop_cache(self) -> None:
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def _open_or_create(self, parent_rel: str) -> int:
        full = _join(self.base, parent_rel)
        try:
            return open_in_root(self._root_fd, self.root, full)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise ArchiveError(f"{self._shown(parent_rel)}: not a directory") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ArchiveError(f"{self._shown(parent_rel)}: too many levels of symbolic links") from None
            raise
        # Create what is missing, one component at a time, each resolved inside the root again.
        cur = open_in_root(self._root_fd, self.root, self.base)
        done = self.base
        try:
            for part in parent_rel.split("/"):
                done = _join(done, part)
                try:
                    nxt = open_in_root(self._root_fd, self.root, done)
                except FileNotFoundError:
                    try:
                        os.mkdir(part, 0o755, dir_fd=cur)
                    except FileExistsError:  # a dangling symlink: moby's MkdirAll fails the same way
                        raise ArchiveError(f"/{done}: not a directory") from None
                    if self.chown:
                        os.chown(part, *self.root_ids, dir_fd=cur, follow_symlinks=False)
                    nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=cur)
                    os.chmod(f"/proc/self/fd/{nxt}", 0o755)
                except NotADirectoryError:
                    raise ArchiveError(f"/{done}: not a directory") from None
                os.close(cur)
                cur = nxt
        except BaseException:
            os.close(cur)
            raise
        return cur


def apply_layer(
    target: Path,
    stream: BinaryIO,
    whiteouts: WhiteoutHandler | None = DELETE_WHITEOUTS,
    id_map: IdMap = IDENTITY,
    chown: bool = True,
) -> int:
    """Extract a layer tar into ``target``; returns the sum of the entries' sizes (moby ApplyLayer)."""
    return Extractor(target, whiteouts=whiteouts, id_map=id_map, chown=chown, layer=True).extract(stream)


def untar(
    target: Path,
    stream: BinaryIO,
    *,
    id_map: IdMap = IDENTITY,
    no_overwrite_dir_non_dir: bool = False,
    chown_to: tuple[int, int] | None = None,
) -> int:
    """Extract a plain tar (no whiteout handling, the top entry skipped) into ``target``."""
    ex = Extractor(
        target,
        whiteouts=None,
        id_map=id_map,
        chown_to=chown_to,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        layer=False,
    )
    return ex.extract(stream)
