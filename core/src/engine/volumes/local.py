"""The ``local`` volume driver, as dockerd 20.10's (moby volume/local).

A volume ``<name>`` is the directory ``<root>/<name>/_data``; its metadata (labels, driver options,
the containers that reference it) is ``<root>/<name>/volume.json``, written atomically. Driver options
follow dockerd: ``type``, ``device`` and ``o`` describe a mount (``type`` and ``device`` go together,
``o`` needs both), made at the first mount of the volume and undone at the last unmount; ``size``
needs quota support, which engine does not have. A directory without ``volume.json`` (a crash right
after ``mkdir``, or a volume of an older daemon) is still a volume, as in dockerd.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.drivers.records import sweep_temp, write_json
from engine.drivers.timefmt import rfc3339
from engine.drivers.units import parse_size
from engine.errors import EngineError, InvalidParameter, SystemError, os_error_message
from engine.volumes import mounts

log = logging.getLogger(__name__)

DRIVER_NAME = "local"
DATA_DIR = "_data"
METADATA_FILE = "volume.json"
#: moby daemon/names RestrictedNamePattern
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
NAME_RE = re.compile(f"^{NAME_CHARS}+$")
VALID_OPTS = ("type", "o", "device", "size")
#: an option that needs others (moby's mandatoryOpts)
REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def validate_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not NAME_RE.match(name):
        raise InvalidParameter(
            f'"{name}" includes invalid characters for a local volume name, only "{NAME_CHARS}" are allowed. '
            "If you intended to pass a host directory, use absolute path"
        )


def validate_opts(opts: dict[str, str]) -> None:
    for opt in opts:
        if opt not in VALID_OPTS:
            raise InvalidParameter(f'invalid option: "{opt}"')
    for opt, required in REQUIRED_WITH.items():
        if opt in opts:
            for other in required:
                if other not in opts:
                    raise InvalidParameter(f'missing required option: "{other}"')
    if "size" in opts:
        try:
            size = parse_size(opts["size"])
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        if size > 0:
            raise InvalidParameter("quota size requested but no quota support")


@dataclass
class LocalVolume:
    """One volume's on-disk record and its live mount state (guarded by the service's per-volume lock)."""

    name: str
    path: Path  # <root>/<name>
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    anonymous: bool = False
    references: list[str] = field(default_factory=list)
    #: references holding a mount (volumes with driver options are mounted while this is non-empty)
    mounted_by: set[str] = field(default_factory=set)

    @property
    def mountpoint(self) -> Path:
        return self.path / DATA_DIR

    @property
    def needs_mount(self) -> bool:
        opts = self.options or {}
        return bool(opts.get("device") or opts.get("type"))

    def created_at(self) -> str:
        """The ``_data`` directory's ctime, as dockerd reports it."""
        try:
            return rfc3339(self.mountpoint.stat().st_ctime_ns, local=True)
        except OSError:
            return ""

    def save(self) -> None:
        write_json(
            self.path / METADATA_FILE,
            {
                "Name": self.name,
                "Driver": DRIVER_NAME,
                "Labels": self.labels,
                "Options": self.options,
                "Anonymous": self.anonymous,
                "References": self.references,
            },
        )

    @classmethod
    def load(cls, path: Path) -> LocalVolume:
        volume = cls(name=path.name, path=path)
        try:
            data: dict[str, Any] = json.loads((path / METADATA_FILE).read_text())
        except FileNotFoundError:
            return volume
        except (OSError, ValueError) as exc:
            log.warning("volume %s: unreadable metadata, ignoring it: %s", path.name, exc)
            return volume
        volume.labels = data.get("Labels")
        volume.options = data.get("Options")
        volume.anonymous = bool(data.get("Anonymous"))
        volume.references = list(data.get("References") or [])
        return volume

    # -- mounts -----------------------------------------------------------------------------------

    def mount(self, ref: str) -> Path:
        """Mount at the first reference that needs it (a no-op for volumes without driver options)."""
        if not self.needs_mount:
            return self.mountpoint
        if not self.mounted_by:
            opts = self.options or {}
            if not opts.get("device"):
                raise SystemError("missing device in volume options")
            try:
                mounts.mount(opts["device"], self.mountpoint, opts.get("type", ""), opts.get("o", ""))
            except mounts.MountError as exc:
                raise SystemError(f"failed to mount local volume: {exc}") from None
            log.debug("volume %s mounted", self.name)
        self.mounted_by.add(ref)
        return self.mountpoint

    def unmount(self, ref: str) -> None:
        """Unmount after the last reference that mounted it let go."""
        if ref not in self.mounted_by:
            return
        self.mounted_by.discard(ref)
        if not self.mounted_by:
            self.force_unmount()

    def force_unmount(self) -> None:
        self.mounted_by.clear()
        if self.needs_mount or mounts.is_mountpoint(self.mountpoint):
            try:
                mounts.unmount(self.mountpoint)
            except mounts.MountError as exc:
                raise SystemError(str(exc)) from None


class LocalDriver:
    """Creates and removes local volumes under ``root`` (``<data-root>/volumes``)."""

    name = DRIVER_NAME
    scope = "local"

    def __init__(self, root: Path, root_ids: tuple[int, int] = (0, 0)) -> None:
        self.root = root
        self.root_ids = root_ids  # owner of a new volume's _data: container root on the host

    def setup(self) -> dict[str, LocalVolume]:
        """Create the root and load every volume; undo mounts a crash left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o701)
        found = {}
        sweep_temp(self.root)  # left by a kill -9 mid-write
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir() or entry.is_symlink() or entry.name.startswith("."):
                continue
            sweep_temp(entry)
            volume = LocalVolume.load(entry)
            if volume.needs_mount or mounts.is_mountpoint(volume.mountpoint):
                volume.force_unmount()
            found[volume.name] = volume
        return found

    def create(
        self, name: str, opts: dict[str, str] | None, labels: dict[str, str] | None, anonymous: bool
    ) -> LocalVolume:
        validate_name(name)
        if opts:
            validate_opts(opts)
        path = self.root / name
        volume = LocalVolume(name=name, path=path, labels=labels, options=opts, anonymous=anonymous)
        try:
            path.mkdir(mode=0o701)
            (path / DATA_DIR).mkdir(mode=0o755)
            os.chmod(path / DATA_DIR, 0o755)  # not narrowed by the umask, as dockerd's MkdirAllAndChown
            if self.root_ids != (0, 0):
                os.chown(path / DATA_DIR, *self.root_ids)
            volume.save()
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise SystemError(
                f"error while creating volume data path '{path / DATA_DIR}': {os_error_message(exc)}"
            ) from None
        return volume

    def remove(self, volume: LocalVolume) -> None:
        if volume.mounted_by:
            raise SystemError("volume has active mounts")
        volume.force_unmount()
        real = Path(os.path.realpath(volume.mountpoint))
        if not str(real).startswith(str(self.root) + "/") or real == self.root:
            raise SystemError(f"Unable to remove a directory outside of the local volume root {self.root}: {real}")
        try:
            _remove_tree(volume.path)
        except OSError as exc:
            raise SystemError(f"error removing volume path '{volume.path}': {exc}") from None


def _remove_tree(path: Path) -> None:
    """rm -rf that refuses to cross into a mount left inside (it would delete someone else's data)."""
    dev = path.lstat().st_dev

    def onerror(func: Any, p: str, exc_info: Any) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return
        raise exc_info[1]

    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            st = os.lstat(os.path.join(dirpath, d))
            if stat.S_ISDIR(st.st_mode) and st.st_dev != dev:
                raise EngineError(f"{os.path.join(dirpath, d)} is a mount point")
    shutil.rmtree(path, onerror=onerror)


def directory_size(path: Path) -> int:
    """moby pkg/directory.Size: bytes of everything but directories, hard links counted once."""
    seen: set[int] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode) or st.st_size == 0 or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_size
    return total
