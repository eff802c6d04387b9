"""Filesystem operations on a container's root: image content into new volumes, and ``docker cp``.

Every path a client names is resolved inside the container's root
(:func:`engine.drivers.layers.resolve_in_root`), never on the host.
"""

from __future__ import annotations

import logging
import os
import posixpath
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from engine import archive
from engine.containers import mountutil
from engine.containers.model import BIND, VOLUME
from engine.drivers.layers import ArchiveError, resolve_in_root, tar_tree
from engine.errors import EngineError, NotFound

if TYPE_CHECKING:
    from engine.containers.model import Container
    from engine.containers.service import ContainerService

log = logging.getLogger(__name__)


def copy_image_content(rootfs: Path, destination: str, volume_path: Path) -> None:
    """dockerd's CopyImagePathContent: an empty volume gets the image's files at its mount point
    (contents, ownership and mode of the directory)."""
    try:
        source = resolve_in_root(rootfs, destination)
    except (OSError, ArchiveError):
        return
    if not source.is_dir():
        return
    try:
        if any(os.scandir(volume_path)):
            return
    except FileNotFoundError:
        return
    st = source.stat()
    if any(os.scandir(source)):
        # cp -a keeps owners, modes, times, xattrs, symlinks and hard links, without following links
        subprocess.run(["cp", "-a", f"{source}/.", f"{volume_path}/"], check=True, capture_output=True)
    os.chown(volume_path, st.st_uid, st.st_gid)
    os.chmod(volume_path, st.st_mode & 0o7777)


class ContainerFS:
    """The container's filesystem as its processes see it, on the host: the mounted RW layer with
    its volumes and binds mounted over it (as dockerd's archive operations do), for cp and export.
    Works for stopped containers too."""

    def __init__(self, service: ContainerService, container: Container, *, with_mounts: bool = True) -> None:
        self.service = service
        self.container = container
        self.with_mounts = with_mounts
        self.root: Path | None = None
        self._mounted: list[str] = []
        self.mount_destinations: list[str] = []

    def __enter__(self) -> ContainerFS:
        layers = self.service.daemon.images.layers
        self.root = Path(layers.mount_rw(self.container.id))
        try:
            if self.with_mounts:
                self._mount_volumes()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _sources(self) -> list[tuple[str, str, bool]]:
        out = []
        for mp in sorted(self.container.mount_points.values(), key=lambda m: m.destination):
            if mp.type == BIND and os.path.exists(mp.source):
                out.append((mp.destination, mp.source, mp.rw))
            elif mp.type == VOLUME:
                source = self.service.volume_path(mp)
                if source:
                    out.append((mp.destination, source, mp.rw))
        # the generated /etc files, as dockerd's setupMounts adds its NetworkMounts
        covered = {d for d, _, _ in out}
        for destination, source in (
            ("/etc/resolv.conf", self.container.resolv_conf_path),
            ("/etc/hostname", self.container.hostname_path),
            ("/etc/hosts", self.container.hosts_path),
        ):
            if source and destination not in covered and os.path.exists(source):
                out.append((destination, source, True))
        return out

    def _mount_volumes(self) -> None:
        assert self.root is not None
        for destination, source, rw in self._sources():
            try:
                target = resolve_in_root(self.root, destination)
            except (OSError, ArchiveError):
                continue
            if not target.exists():
                if os.path.isdir(source):
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
            mountutil.bind(source, str(target), readonly=not rw)
            self._mounted.append(str(target))
            self.mount_destinations.append(destination)

    def __exit__(self, *exc: object) -> None:
        for target in reversed(self._mounted):
            try:
                mountutil.unmount(target)
            except OSError as error:
                log.warning("unmounting %s: %s", target, error)
        self._mounted.clear()
        if self.root is not None:
            self.service.daemon.images.layers.unmount_rw(self.container.id)
            self.root = None

    def in_volume(self, path: str) -> bool:
        clean = posixpath.normpath("/" + path)
        return any(clean == d or clean.startswith(d.rstrip("/") + "/") for d in self.mount_destinations)


def not_found(path: str, container: Container) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container.bare_name}")


def stat(service: ContainerService, container: Container, path: str) -> dict[str, object]:
    with ContainerFS(service, container) as fs:
        assert fs.root is not None
        try:
            return archive.stat_path(fs.root, path).to_json()
        except FileNotFoundError:
            raise not_found(path, container) from None


class ArchiveHandle:
    """An open ``GET /containers/{id}/archive``: the stat (for the header) is known before the tar
    streams; ``write_to`` runs in a worker thread; ``close`` releases the mounts."""

    def __init__(self, service: ContainerService, container: Container, path: str) -> None:
        self.container = container
        self.path = path
        self.fs = ContainerFS(service, container)
        self.fs.__enter__()
        try:
            assert self.fs.root is not None
            self.stat = archive.stat_path(self.fs.root, path).to_json()
        except FileNotFoundError:
            self.fs.__exit__(None, None, None)
            raise not_found(path, container) from None
        except BaseException:
            self.fs.__exit__(None, None, None)
            raise

    def write_to(self, out: BinaryIO) -> None:
        assert self.fs.root is not None
        archive.tar_path(self.fs.root, self.path, out)

    def close(self) -> None:
        self.fs.__exit__(None, None, None)


def extract(
    service: ContainerService,
    container: Container,
    path: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool,
    copy_uid_gid: bool,
) -> None:
    with ContainerFS(service, container) as fs:
        assert fs.root is not None
        if container.host_config.get("ReadonlyRootfs") and not fs.in_volume(path):
            raise EngineError("container rootfs is marked read-only")
        chown = None
        if copy_uid_gid:
            from engine.runtime.users import resolve_user

            user = resolve_user(fs.root, container.config.get("User") or "")
            chown = (user.uid, user.gid)
        try:
            archive.extract_to(fs.root, path, stream, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown=chown)
        except FileNotFoundError:
            raise not_found(path, container) from None


def export(service: ContainerService, container: Container, out: BinaryIO) -> None:
    """``docker export``: the container's root filesystem (no volumes) as one tar."""
    with ContainerFS(service, container, with_mounts=False) as fs:
        assert fs.root is not None
        tar_tree(fs.root, out)
