"""The build context: the uploaded tar extracted into a private directory, and the sources that
COPY/ADD take from it (or from another stage's or image's root filesystem).

Every source path is resolved inside its root: ``..`` cannot climb out (dockerd's "forbidden
path outside the build context"), intermediate symlinks resolve as if the root were ``/``, and a
final symlink is copied as a link, never followed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine import archive
from engine.builder import ignore
from engine.drivers import layers
from engine.errors import InvalidParameter, SystemError

DEFAULT_DOCKERFILE = "Dockerfile"


class BuildError(Exception):
    """A build step failed: reported in-band as ``{"errorDetail": ...}`` (with ``code`` when set)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


#: the largest body taken as a bare Dockerfile; anything bigger that is not a tar is refused at once
MAX_BARE_DOCKERFILE = 1 << 20


def extract(stream: BinaryIO, target: Path) -> None:
    """The request body (tar, gzip/bzip2/xz tar, or a bare Dockerfile) into ``target``, read as a
    stream: what is held in memory is bounded whatever the body is.

    :raises InvalidParameter: a body that is neither a tar nor a short text ("invalid tar header").
    """
    raw = layers.decompress(stream)
    head = _read_full(raw, 512)
    if len(head) < 512 or head[257:262] != b"ustar":
        # not a tar: dockerd's clients only send tars, but a short bare Dockerfile is harmless to accept
        data = head + _read_full(raw, MAX_BARE_DOCKERFILE + 1 - len(head))
        if len(data) > MAX_BARE_DOCKERFILE or b"\0" in data:
            raise InvalidParameter("failed to read the build context: archive/tar: invalid tar header")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidParameter("failed to read the build context: archive/tar: invalid tar header") from None
        (target / DEFAULT_DOCKERFILE).write_bytes(data)
        return
    layers.untar(target, _Rejoined(head, raw))


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes (fewer only at the end of the stream); decompressors may return short reads."""
    chunks: list[bytes] = []
    while size > 0:
        chunk = stream.read(min(size, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class _Rejoined(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if self.head:
            if size < 0:
                data, self.head = self.head, b""
                return data + self.rest.read()
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


def read_dockerfile(context: Path, name: str) -> tuple[str, str]:
    """(relative path, text) of the Dockerfile; dockerd's errors for a missing or empty one."""
    name = name or DEFAULT_DOCKERFILE
    rel = posixpath.normpath(name).lstrip("/")
    path = layers.resolve_in_root(context, rel)
    if not path.is_file() and name == DEFAULT_DOCKERFILE:
        lower = layers.resolve_in_root(context, "dockerfile")
        if lower.is_file():
            path, rel = lower, "dockerfile"
    if not path.is_file():
        raise SystemError(f"Cannot locate specified Dockerfile: {name}")
    text = path.read_text(errors="replace").removeprefix("\ufeff")  # a UTF-8 BOM is dropped, as dockerd
    if not text.strip():
        raise InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    return rel, text


def apply_dockerignore(context: Path, dockerfile: str) -> None:
    """Drop what ``.dockerignore`` excludes; the Dockerfile and .dockerignore themselves go only
    when they are excluded too, after the Dockerfile was read (dockerd's removeDockerfile)."""
    path = context / ".dockerignore"
    if not path.is_file() or path.is_symlink():
        return
    ignore.apply(context, ignore.read_patterns(path.read_text(errors="replace")))


# -- sources ---------------------------------------------------------------------------------------------


def has_wildcards(path: str) -> bool:
    return any(c in path for c in "*?[")


@dataclass
class Source:
    root: Path  # the root the source lives in (context dir or a mounted rootfs)
    rel: str  # path relative to root ("" = the root itself)
    path: Path  # host path (final component not followed)
    is_dir: bool
    from_wildcard: bool = False


def resolve_sources(root: Path, orig: str, *, allow_wildcards: bool, what: str, is_context: bool) -> list[Source]:
    cleaned = orig
    if cleaned.startswith("/") and len(cleaned) > 1:
        cleaned = cleaned[1:]
    while cleaned.startswith("./"):
        cleaned = cleaned[2:]
    norm = posixpath.normpath(cleaned) if cleaned else "."
    if norm == ".." or norm.startswith("../"):
        raise BuildError(f"{what} failed: forbidden path outside the build context: {orig} ()")
    if allow_wildcards and has_wildcards(norm):
        found = []
        for top, dirs, files in os.walk(root):
            dirs.sort()
            rel_top = os.path.relpath(top, root)
            for name in sorted(dirs + files):
                rel = name if rel_top == "." else f"{rel_top}/{name}"
                if fnmatch.fnmatchcase(rel, norm) and rel.count("/") == norm.count("/"):
                    path = Path(top) / name
                    found.append(Source(root, rel, path, path.is_dir() and not path.is_symlink(), True))
        if not found:
            raise BuildError(f"{what} failed: no source files were specified")
        return found
    rel = "" if norm == "." else norm
    path = layers.resolve_in_root(root, rel, follow_final=False) if rel else root
    if not os.path.lexists(path):
        if is_context:
            raise BuildError(
                f"{what} failed: file not found in build context or excluded by .dockerignore: "
                f"stat {norm}: file does not exist"
            )
        raise BuildError(f"{what} failed: stat {rel or '/'}: file does not exist")
    is_dir = path.is_dir() and not path.is_symlink()
    return [Source(root, rel, path, is_dir)]


def content_hash(sources: list[Source]) -> str:
    """The cache key part for COPY/ADD: ``file:``/``dir:``/``multi:`` + sha256 of names, modes and
    contents (times left out, as tarsum does, so a touched file keeps the cache)."""
    digests = []
    for source in sources:
        h = hashlib.sha256()
        for rel, full in _walk_source(source):
            st = os.lstat(full)
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{st.st_mode & 0o7777}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(full).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\0")
        digests.append(("dir:" if source.is_dir else "file:") + h.hexdigest())
    if len(digests) == 1:
        return digests[0]
    return "multi:" + hashlib.sha256(",".join(digests).encode()).hexdigest()


def _walk_source(source: Source) -> list[tuple[str, str]]:
    if not source.is_dir:
        return [(os.path.basename(source.path), str(source.path))]
    out = []
    for top, dirs, files in os.walk(source.path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(top, name)
            out.append((os.path.relpath(full, source.path), full))
    return out


# -- copying into a layer ------------------------------------------------------------------------------------


def is_local_archive(path: Path) -> bool:
    """ADD extracts local tar archives (plain or compressed), recognised by content."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            raw = layers.decompress(f)
            head = raw.read(512)
    except (OSError, EOFError, ValueError):
        return False
    return len(head) == 512 and head[257:262] == b"ustar"


def copy_source(
    layer_root: Path,
    source: Source,
    dest: str,
    dest_is_dir: bool,
    chown: tuple[int, int],
    extract_archive: bool = False,
) -> None:
    """Copy one source into ``layer_root`` at ``dest`` (an absolute container path) as dockerd's
    performCopyForInfo: a directory's contents go into dest; a file goes to dest, or into it when
    dest is a directory (trailing ``/`` or an existing directory); ADD extracts local archives."""
    if source.is_dir or extract_archive:
        target_dir = dest
        base = ""
    else:
        existing = layers.resolve_in_root(layer_root, dest)
        if dest_is_dir or dest.endswith("/") or (existing.is_dir() and not existing.is_symlink()):
            target_dir = dest
            base = os.path.basename(source.path)
        else:
            target_dir = posixpath.dirname(dest.rstrip("/")) or "/"
            base = posixpath.basename(dest.rstrip("/"))
    made = mkdir_in_root(layer_root, target_dir, chown if source.is_dir else (0, 0))
    if extract_archive:
        with open(source.path, "rb") as f:
            archive.extract_to(layer_root, target_dir, f)  # owners from the archive, as dockerd
        return
    with tempfile.TemporaryFile() as spool:
        _tar_source(source, base, spool)
        spool.seek(0)
        archive.extract_to(layer_root, target_dir, spool, chown=chown)
    if made and source.is_dir:
        os.chown(layers.resolve_in_root(layer_root, target_dir), *chown)


def mkdir_in_root(root: Path, path: str, owner: tuple[int, int]) -> bool:
    """mkdir -p inside root (symlinks resolved in root); returns whether the last one was made."""
    current = "/"
    made = False
    for part in [p for p in path.split("/") if p]:
        current = posixpath.join(current, part)
        host = layers.resolve_in_root(root, current)
        if host.is_dir():
            made = False
            continue
        if os.path.lexists(host):
            raise BuildError(f"failed to copy files: mkdir {current}: not a directory")
        os.mkdir(host, 0o755)
        os.chown(host, *owner)
        made = True
    return made


def _tar_source(source: Source, base: str, spool: BinaryIO) -> None:
    """A tar of the source: the file under ``base``, or a directory's contents at the top. Links are
    archived as links (tarfile never dereferences here)."""
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tf:
        if source.is_dir:
            for name in sorted(os.listdir(source.path)):
                tf.add(str(source.path / name), arcname=name, recursive=True)
        else:
            tf.add(str(source.path), arcname=base, recursive=False)
