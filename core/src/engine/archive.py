"""``docker cp``: stat, tar and extract container paths, resolved inside the container's root.

* :func:`resolve_container_path(root, path)` (moby's ``ResolvePath``: the directory part resolved, the
  last element kept unless the path ends in ``/`` or ``/.``);
* :func:`stat_path(root, path) -> PathStat` (``X-Docker-Container-Path-Stat``: ``PathStat.to_json()``);
* :func:`tar_path(root, path, out) -> PathStat` (``GET /containers/{id}/archive``: entries rebased to the
  requested name);
* :func:`extract_to(root, path, stream, no_overwrite_dir_non_dir=False, chown=None)`
  (``PUT /containers/{id}/archive``; ``chown=(uid, gid)`` for ``copyUIDGID``).

A missing path raises ``FileNotFoundError`` (the containers subsystem answers 404 "Could not find the
file ..."); extracting onto a non-directory raises ``NotADirectory`` ("extraction point is not a
directory"). The tar machinery underneath (safe paths, extraction, writing, compression, whiteouts)
is the driver SDK's :mod:`engine.drivers.layers`, which storage drivers use for their layers.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.drivers.layers import Extractor, NotADirectory, TarWriter, resolve_in_root, walk_tree
from engine.drivers.storage import IDENTITY, IdMap
from engine.drivers.timefmt import rfc3339nano

# Go's os.FileMode type bits, as the X-Docker-Container-Path-Stat header carries them
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """A stat mode as Go's ``os.FileMode`` (what ``docker cp`` and the API carry)."""
    mode = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    mode |= {
        stat.S_IFDIR: GO_MODE_DIR,
        stat.S_IFLNK: GO_MODE_SYMLINK,
        stat.S_IFBLK: GO_MODE_DEVICE,
        stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE,
        stat.S_IFIFO: GO_MODE_NAMED_PIPE,
        stat.S_IFSOCK: GO_MODE_SOCKET,
    }.get(fmt, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


@dataclass(frozen=True)
class PathStat:
    """``types.ContainerPathStat``: what ``docker cp`` learns about a path."""

    name: str
    size: int
    mode: int  # Go os.FileMode
    mtime_ns: int
    link_target: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": rfc3339nano(self.mtime_ns, local=True),
            "linkTarget": self.link_target,
        }


def _preserve_trailing(cleaned: str, original: str) -> str:
    """moby's PreserveTrailingDotOrSeparator."""
    if original.endswith("/.") and not cleaned.endswith("/."):
        return cleaned.rstrip("/") + "/."
    if original.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def _abs_container_path(path: str) -> str:
    return _preserve_trailing(os.path.normpath("/" + path).replace("//", "/"), path)


def _go_base(path: str) -> str:
    stripped = path.rstrip("/")
    return stripped.rpartition("/")[2] if stripped else "/"


def resolve_container_path(root: Path, path: str) -> tuple[str, str]:
    """moby's ``ResolvePath``: ``(host path, absolute container path)``.

    The directory part is resolved inside ``root``; the last element is kept as given, so a final
    symlink stays a symlink unless the path ends in ``/`` or ``/.``.
    """
    abs_path = _abs_container_path(path)
    dir_part, _, base = abs_path.rpartition("/")
    resolved_dir = resolve_in_root(root, dir_part + "/")
    return f"{resolved_dir}/{base}" if base else f"{resolved_dir}/", abs_path


def stat_path(root: Path, path: str) -> PathStat:
    """Stat a container path (``HEAD /containers/{id}/archive``); ``FileNotFoundError`` when missing."""
    resolved, abs_path = resolve_container_path(root, path)
    return _stat_resolved(root, resolved, abs_path)


def _stat_resolved(root: Path, resolved: str, abs_path: str) -> PathStat:
    st = os.lstat(resolved)
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        rel = os.path.relpath(resolve_in_root(root, abs_path), os.path.abspath(root))
        link_target = "/" if rel == "." else "/" + rel
    return PathStat(_go_base(abs_path), st.st_size, go_file_mode(st.st_mode), st.st_mtime_ns, link_target)


def tar_path(root: Path, path: str, out: BinaryIO, id_map: IdMap = IDENTITY) -> PathStat:
    """Tar one container path (``GET /containers/{id}/archive``), entries named after the requested
    base name as moby rebases them; returns the path's stat."""
    resolved, abs_path = resolve_container_path(root, path)
    st = _stat_resolved(root, resolved, abs_path)
    source = os.path.normpath(resolved)
    rebase = _go_base(abs_path)
    prefix = "" if rebase == "/" else rebase
    writer = TarWriter(out, id_map)
    top_st = os.lstat(source)
    writer.add(source, prefix or "/", top_st)
    if stat.S_ISDIR(top_st.st_mode):
        for host, rel, est in walk_tree(source):
            writer.add(host, f"{prefix}/{rel}", est)
    writer.close()
    return st


def extract_to(
    root: Path,
    path: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool = False,
    chown: tuple[int, int] | None = None,
    id_map: IdMap = IDENTITY,
) -> None:
    """Extract an uploaded tar into the container directory ``path`` (``PUT /containers/{id}/archive``).

    Everything stays inside ``root`` (symlinks resolve as if it were ``/``). ``chown`` gives every entry
    that host uid/gid (``copyUIDGID``); otherwise the tar's ids go through ``id_map``.
    """
    resolved = resolve_in_root(root, _abs_container_path(path))
    st = os.lstat(resolved)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectory()
    base = os.path.relpath(resolved, os.path.abspath(root))
    ex = Extractor(
        root,
        "" if base == "." else base,
        whiteouts=None,
        id_map=id_map,
        chown_to=chown,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        layer=False,
    )
    ex.extract(stream)
