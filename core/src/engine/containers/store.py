"""The container store: in-memory indexes (ID, name, ID prefix) over ``<data-root>/containers/<id>/``.

On disk each container is dockerd's pair ``config.v2.json`` + ``hostconfig.json``, replaced by
rename so a daemon killed at any instant leaves the old or the new file. Creation is journaled:
``.creating`` (written before any side effect, removed last) marks a container whose create did
not finish; start-up rolls those back (see :meth:`ContainerStore.load`). Only the finished
``config.v2.json`` is fsynced (as dockerd's AtomicWriteFile): the page cache survives a killed
daemon, so the journal and run-state updates need renames, not flushes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.containers.model import Container
from engine.drivers.records import fsync_dir, sweep_temp, temp_name, write_atomic
from engine.errors import Conflict, InvalidParameter, NotFound

log = logging.getLogger(__name__)

CREATING = ".creating"


def write_replace(path: Path, data: str) -> None:
    """Replace ``path`` by rename without fsync: enough for a daemon killed at any instant (the page
    cache survives it); used for frequent run-state updates on the start/stop hot path."""
    tmp = temp_name(path)
    try:
        with open(tmp, "w") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a temp file behind for ever
        raise


def name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


class ContainerStore:
    def __init__(self, root: Path, traverse_gid: int = 0) -> None:
        self.root = root  # <data-root>/containers
        # userns-remap: the remapped root's group may traverse (0710) to the files runc mounts
        self.traverse_gid = traverse_gid
        self._by_id: dict[str, Container] = {}
        self._names: dict[str, str] = {}  # "/name" -> container ID
        self._lock = threading.Lock()  # guards the indexes only

    # -- names ----------------------------------------------------------------------------------------

    def reserve_name(self, name: str, container_id: str) -> None:
        with self._lock:
            owner = self._names.get(name)
            if owner is not None and owner != container_id:
                raise name_conflict(name, owner)
            self._names[name] = container_id

    def release_name(self, name: str, container_id: str | None = None) -> None:
        with self._lock:
            if container_id is None or self._names.get(name) == container_id:
                self._names.pop(name, None)

    def name_owner(self, name: str) -> str | None:
        with self._lock:
            return self._names.get(name if name.startswith("/") else "/" + name)

    # -- index ----------------------------------------------------------------------------------------

    def add(self, container: Container) -> None:
        with self._lock:
            self._by_id[container.id] = container
            self._names[container.name] = container.id

    def discard(self, container: Container) -> None:
        with self._lock:
            self._by_id.pop(container.id, None)
            if self._names.get(container.name) == container.id:
                del self._names[container.name]

    def get(self, ref: str) -> Container:
        """Full ID, then exact name, then unique ID prefix (dockerd's GetContainer)."""
        with self._lock:
            found = self._by_id.get(ref)
            if found is not None:
                return found
            if ref:
                owner = self._names.get(ref if ref.startswith("/") else "/" + ref)
                if owner is not None and owner in self._by_id:
                    return self._by_id[owner]
                matches = [c for cid, c in self._by_id.items() if cid.startswith(ref)]
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    raise InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def find(self, ref: str) -> Container | None:
        try:
            return self.get(ref)
        except (NotFound, InvalidParameter):
            return None

    def all(self) -> list[Container]:
        with self._lock:
            return list(self._by_id.values())

    def __iter__(self) -> Iterator[Container]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)

    # -- disk -----------------------------------------------------------------------------------------

    def dir_of(self, container_id: str) -> Path:
        return self.root / container_id

    def begin_create(self, container_id: str, journal: dict[str, Any]) -> Path:
        """Make the container's directory with its ``.creating`` journal before any side effect."""
        path = self.dir_of(container_id)
        path.mkdir(mode=0o710)
        if self.traverse_gid:
            os.chown(path, 0, self.traverse_gid)
        write_replace(path / CREATING, json.dumps(journal))
        return path

    def commit_create(self, container: Container) -> None:
        """Write the config files, then drop the journal: from here on the container exists."""
        write_replace(container.host_config_path, json.dumps(container.host_config, separators=(",", ":")))
        write_atomic(container.config_path, json.dumps(container.to_json(), separators=(",", ":")))
        (container.root / CREATING).unlink()
        fsync_dir(self.root)

    def save(self, container: Container, *, durable: bool = False) -> None:
        """Write hostconfig.json then config.v2.json (each replaced atomically)."""
        write = write_atomic if durable else write_replace
        write(container.host_config_path, json.dumps(container.host_config, separators=(",", ":")))
        write(container.config_path, json.dumps(container.to_json(), separators=(",", ":")))

    def save_state(self, container: Container) -> None:
        """Only config.v2.json (state, restart count, network settings): the hot-path checkpoint."""
        write_replace(container.config_path, json.dumps(container.to_json(), separators=(",", ":")))

    def delete_dir(self, container_id: str) -> None:
        path = self.dir_of(container_id)
        shutil.rmtree(path, ignore_errors=True)

    def load(self) -> tuple[list[Container], list[tuple[str, dict[str, Any]]]]:
        """Read every container directory. Returns the containers and the half-created ones
        (``(id, journal)``, journal ``{}`` when unreadable) for the caller to roll back."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o710)
        if self.traverse_gid:
            os.chown(self.root, 0, self.traverse_gid)
        containers: list[Container] = []
        unfinished: list[tuple[str, dict[str, Any]]] = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            for tmp in sweep_temp(path):  # a write a kill -9 interrupted
                log.info("removed the temp file %s a crash left behind", tmp)
            journal_path = path / CREATING
            if journal_path.exists() or not (path / "config.v2.json").exists():
                try:
                    journal = json.loads(journal_path.read_text())
                except (OSError, ValueError):
                    journal = {}
                unfinished.append((entry.name, journal))
                continue
            try:
                data = json.loads((path / "config.v2.json").read_text())
                try:
                    host_config = json.loads((path / "hostconfig.json").read_text())
                except (OSError, ValueError):
                    host_config = {}
                container = Container.from_json(data, host_config, path)
            except (OSError, ValueError, KeyError) as exc:
                log.error("cannot load container %s: %s", entry.name, exc)
                continue
            if container.id != entry.name:
                log.error("container directory %s holds container %s; skipped", entry.name, container.id)
                continue
            containers.append(container)
        for container in containers:
            self.add(container)
        return containers, unfinished
