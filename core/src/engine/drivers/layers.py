"""Layer tars: safe extraction, deterministic writing, whiteouts (the driver SDK's tar helpers).

Extraction never writes outside its target. Every entry's parent directory is resolved *inside* the
target as if it were ``/`` (``openat2(RESOLVE_IN_ROOT)``; a userspace walk where the kernel lacks it),
and the final component is always created or changed through that directory's fd without following
symlinks. Names are cleaned as Docker does: a leading ``/`` is stripped, ``..`` that would climb above
the target is refused (:class:`BreakoutError`), hardlink targets must lie inside the target, and
relative symlinks that climb above it are refused (moby's "invalid symlink" check).

Whiteouts (files named ``.wh.<name>`` and the opaque marker ``.wh..wh..opq``) go through a pluggable
:class:`WhiteoutHandler`:

* :data:`DELETE_WHITEOUTS` (vfs, naive diff): ``.wh.name`` removes ``name``; the opaque marker empties
  its directory of everything this layer did not put there.
* :class:`OverlayWhiteouts` (overlay2 ``diff`` dirs): a whiteout becomes a char device 0:0 and the
  opaque marker the xattr ``trusted.overlay.opaque=y`` (``user.overlay.opaque`` with ``userxattr``).
* ``None`` (``docker cp``): ``.wh.`` files are ordinary files.

Public API (all blocking: call from a worker thread):

* :func:`apply_layer(target, stream, whiteouts=DELETE_WHITEOUTS, id_map=IDENTITY) -> int`: extract a
  layer tar (gzip/bzip2/xz/zstd detected by magic); returns the sum of the entries' sizes (moby's
  ApplyLayer size). The input is read to its end (so a caller hashing it sees every byte).
* :func:`decompress(stream)`: a reader of the uncompressed bytes of a possibly compressed stream.
* :class:`TarWriter`: writes entries (PAX for xattrs/long names, hardlinks as link entries, whiteouts
  in tar form), no record padding; :func:`tar_tree` (a whole directory, sorted, depth first) and
  :func:`tar_changes` (a change list for the naive diff; deletions become ``.wh.`` entries).
* :func:`resolve_in_root`, :func:`open_in_root`: paths resolved as if a directory were ``/`` (the
  safe-path primitives extraction and ``docker cp`` share).
"""

from __future__ import annotations

import bz2
import ctypes
import errno
import functools
import gzip
import logging
import lzma
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from engine.drivers.storage import IDENTITY, Change, ChangeKind, IdMap
from engine.errors import InvalidParameter, SystemError

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
#: xattrs that describe overlayfs internals; never copied into or out of a tar
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_CHUNK = 1 << 20
_O_CLOEXEC = os.O_CLOEXEC
_MAX_LINKS = 255


class ArchiveError(SystemError):
    """A tar stream could not be applied or written."""


class BreakoutError(ArchiveError):
    """A tar entry would reach outside its target (moby's breakoutError)."""


class NotADirectory(InvalidParameter):
    def __init__(self) -> None:
        super().__init__("extraction point is not a directory")


# -- decompression ----------------------------------------------------------------------------------


class _Prefixed:
    """A reader that first returns ``head`` (bytes already read to sniff the format), then ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._rest.read(n - len(data)) or b""
            return data
        return self._rest.read(n)

    def readable(self) -> bool:
        return True


class _ZstdReader:
    """zstd through the ``zstd`` command (Python 3.11 has no zstd module); a thread feeds its stdin."""

    def __init__(self, src: _Prefixed) -> None:
        zstd = shutil.which("zstd")
        if not zstd:
            raise ArchiveError("zstd-compressed archive, but the zstd command is not installed")
        self._proc = subprocess.Popen([zstd, "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._feeder = threading.Thread(target=self._feed, args=(src,), daemon=True)
        self._feeder.start()

    def _feed(self, src: _Prefixed) -> None:
        assert self._proc.stdin is not None
        try:
            while chunk := src.read(_CHUNK):
                self._proc.stdin.write(chunk)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def read(self, n: int = -1) -> bytes:
        assert self._proc.stdout is not None
        if self._proc.stdout.closed:
            return b""  # read again after the end (tar readers do): close() closed the pipe
        data = self._proc.stdout.read(n)
        if not data:
            self.close()
        return data

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdout is not None
            self._proc.stdout.close()
            self._proc.wait()
        self._feeder.join()
        if self._proc.returncode not in (0, None, -13):  # -13: we closed its stdout early
            raise ArchiveError(f"zstd: decompression failed (exit {self._proc.returncode})")


def decompress(stream: BinaryIO) -> BinaryIO:
    """Return a reader of ``stream``'s uncompressed bytes (gzip, bzip2, xz, zstd by magic; else as is)."""
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    src = _Prefixed(head, stream)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src)  # type: ignore[arg-type,return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(src)  # type: ignore[arg-type,return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return _ZstdReader(src)  # type: ignore[return-value]
    return src  # type: ignore[return-value]


def _drain(stream: BinaryIO) -> None:
    while stream.read(_CHUNK):
        pass


# -- names and in-root resolution -------------------------------------------------------------------


def clean_name(name: str) -> str:
    """A tar entry name cleaned as Docker does: relative, no ``.``/empty parts, ``..`` folded.

    A leading ``/`` is stripped (``..`` directly under it stays at the top, as ``filepath.Clean``
    does); a relative name whose ``..`` climbs above the top raises :class:`BreakoutError`.
    Returns ``""`` for the top directory itself.
    """
    absolute = name.startswith("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            elif not absolute:
                raise BreakoutError(f"{name!r} is outside of the extraction directory")
            continue
        parts.append(part)
    return "/".join(parts)


def _clean_inside(name: str, what: str) -> str:
    """Like :func:`clean_name`, but ``..`` above the top is refused even for absolute names."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BreakoutError(f"{what} {name!r} is outside of the extraction directory")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def resolve_in_root(root: Path | str, path: str, follow_final: bool = True) -> Path:
    """The host path of ``path`` inside ``root``, every symlink resolved as if ``root`` were ``/``.

    Absolute symlink targets restart at ``root``; ``..`` never climbs above it. Components that do not
    exist are kept as they are. ``follow_final=False`` leaves a final symlink unresolved.
    """
    root = Path(os.path.abspath(root))
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()  # a stack: the next component is last
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if not pending and not follow_final:
            resolved.append(part)
            break
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return root.joinpath(*resolved)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_openat2_ok: bool | None = None


def _openat2_in_root(root_fd: int, rel: str, flags: int) -> int:
    global _openat2_ok
    how = _OpenHow(flags | _O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    while True:
        fd = _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(root_fd),
            ctypes.c_char_p(os.fsencode(rel)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err == errno.EINTR or err == errno.EAGAIN:
            continue
        if err in (errno.ENOSYS, errno.EPERM) and _openat2_ok is None:  # old kernel or seccomp
            _openat2_ok = False
        raise OSError(err, os.strerror(err), rel)


def open_in_root(root_fd: int, root: Path, rel: str, flags: int = os.O_PATH | os.O_DIRECTORY) -> int:
    """Open ``rel`` below the directory ``root_fd`` (= ``root``), symlinks resolved inside it."""
    if not rel:
        return os.open(".", flags | _O_CLOEXEC, dir_fd=root_fd)
    if _openat2_ok is not False:
        try:
            fd = _openat2_in_root(root_fd, rel, flags)
        except OSError:
            if _openat2_ok is not False:
                raise
        else:
            return fd
    # Fallback without openat2: resolve in userspace, then refuse a final symlink.
    resolved = resolve_in_root(root, rel)
    return os.open(resolved, flags | os.O_NOFOLLOW | _O_CLOEXEC)


# -- extraction ---------------------------------------------------------------------------------------


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


# -- writing ------------------------------------------------------------------------------------------


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
