"""The image service (``daemon.images``): dockerd 20.10's image operations, one facade for the API.

Each concern lives in its own module and works on :class:`~engine.images.local.LocalImages` (the
stores and their events and hooks), which is also the surface other services use
(``daemon.images.local``):

- :mod:`.importing`: ``docker import``
- :mod:`.listing`: list, inspect, history, ``system df``
- :mod:`.delete`: rmi and its conflict rules; :mod:`.prune`: image prune
- :mod:`.saveload`: save and load
- :mod:`.commit`: commit, and the child images the builder stores
- :mod:`.registry`: pull, push and login glue over :mod:`engine.distribution`

Everything here blocks: routes call it from worker threads. Streaming operations take an
``emit(message)`` callback for their JSON progress messages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from engine.distribution.auth import AuthConfig
from engine.errors import InvalidParameter, NotFound
from engine.filters import Filters
from engine.images import commit as committing
from engine.images import importing, listing, registry, saveload, tarball
from engine.images.delete import ImageRemover
from engine.images.layers import LayerStore
from engine.images.local import LocalImages, UsageCheck
from engine.images.prune import ImagePruner
from engine.images.references import Reference, TagStore, parse_normalized_named
from engine.images.store import Image, ImageStore
from engine.images.streams import Emit

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.drivers.storage import StorageDriver
    from engine.events import EventBus
    from engine.hooks import Hooks


class ImageService:
    def __init__(
        self,
        root: Path,
        driver: StorageDriver,
        *,
        config: Callable[[], DaemonConfig],
        events: EventBus,
        hooks: Hooks,
    ) -> None:
        """``root``: ``<data-root>/image/<driver>``; ``driver``: the running storage driver;
        ``config``: the daemon's configuration in effect, read at each pull, push and login (its
        registry keys are reloadable); ``hooks``: the typed hook facade (storage hooks)."""
        self._config = config
        self.local = LocalImages(root, driver, events, hooks)
        self._remover = ImageRemover(self.local)
        self._pruner = ImagePruner(self.local, self._remover)

    # the stores, for the containers subsystem (read-write layers) and tests
    @property
    def layers(self) -> LayerStore:
        return self.local.layers

    @property
    def store(self) -> ImageStore:
        return self.local.store

    @property
    def tags(self) -> TagStore:
        return self.local.tags

    @property
    def root(self) -> Path:
        return self.local.root

    @property
    def tmp(self) -> Path:
        return self.local.tmp

    def set_usage_check(self, fn: UsageCheck) -> None:
        """The containers subsystem registers ``fn(image_id) -> [container_id | (container_id, running)]``."""
        self.local.set_usage_check(fn)

    # -- lookup ----------------------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> Image:
        """dockerd's GetImage: a tag or digest reference, a full ID, or a unique ID prefix."""
        return self.local.resolve(ref_or_id)

    def get(self, ref_or_id: str) -> Image:
        return self.local.resolve(ref_or_id)

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.local.resolve(ref_or_id)
        except (NotFound, InvalidParameter):
            return False
        return True

    # -- tags --------------------------------------------------------------------------------------------

    def tag(self, name: str, repo: str, tag: str = "") -> str:
        """``POST /images/{name}/tag``; returns the familiar reference."""
        image = self.local.resolve(name)
        new_ref = parse_normalized_named(repo)
        if tag:
            new_ref = new_ref.trim().with_tag(tag)
        self.local.tag_reference(image.id, new_ref)
        return new_ref.tag_name_only().familiar

    def tag_reference(self, image_id: str, ref: Reference) -> None:
        self.local.tag_reference(image_id, ref)

    # -- operations ----------------------------------------------------------------------------------------

    def import_image(
        self,
        src: str,
        stream: BinaryIO | None,
        *,
        repo: str = "",
        tag: str = "",
        message: str = "",
        changes: list[str] | None = None,
        os_name: str = "",
        emit: Emit | None = None,
    ) -> str:
        """``POST /images/create?fromSrc=``: a tar (stdin or URL) becomes a one-layer image."""
        return importing.import_image(
            self.local,
            src,
            stream,
            repo=repo,
            tag=tag,
            message=message,
            changes=changes,
            os_name=os_name,
            emit=emit,
        )

    def list_images(
        self, filters: Filters | None = None, all: bool = False, extra: bool = False
    ) -> list[dict[str, Any]]:
        """``GET /images/json``; ``extra`` adds container counts and shared sizes (``system df``)."""
        return listing.list_images(self.local, filters, all, extra)

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /images/{name}/json`` (dockerd's LookupImage)."""
        return listing.inspect(self.local, name)

    def history(self, name: str) -> list[dict[str, Any]]:
        """``GET /images/{name}/history``: newest first; IDs only where a local image is known."""
        return listing.history(self.local, name)

    def delete(self, name: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """``DELETE /images/{name}``: untag, or delete the image (and untagged parents unless ``noprune``)."""
        return self._remover.delete(name, force, prune)

    def prune(self, filters: Filters | None = None) -> dict[str, Any]:
        """``POST /images/prune``: dangling images, or with ``dangling=false`` every unused one."""
        return self._pruner.prune(filters)

    def save_plan(self, names: list[str]) -> list[tarball.SaveImage]:
        """Resolve ``docker save`` names (dockerd's parseNames); errors surface before any byte is sent."""
        return saveload.save_plan(self.local, names)

    def save(self, plan: list[tarball.SaveImage], out: IO[bytes]) -> None:
        """``GET /images/get``: write the docker-archive of a resolved plan, then release its layers."""
        saveload.save(self.local, plan, out)

    def release_plan(self, plan: list[tarball.SaveImage]) -> None:
        saveload.release_plan(self.local, plan)

    def load(self, stream: BinaryIO, emit: Emit, quiet: bool = True) -> list[str]:
        """``POST /images/load``: a docker-archive or an OCI layout; returns the loaded image IDs."""
        return saveload.load(self.local, stream, emit, quiet)

    def commit(
        self,
        container_id: str,
        parent_image_id: str,
        container_config: dict[str, Any],
        *,
        repo: str = "",
        tag: str = "",
        comment: str = "",
        author: str = "",
        changes: list[str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """``POST /commit``: a new image from the container's read-write layer."""
        return committing.commit(
            self.local,
            container_id,
            parent_image_id,
            container_config,
            repo=repo,
            tag=tag,
            comment=comment,
            author=author,
            changes=changes,
            config=config,
        )

    # -- registries -------------------------------------------------------------------------------------

    def pull(
        self,
        image: str,
        tag: str = "",
        *,
        all_tags: bool = False,
        auth: AuthConfig | None = None,
        platform: str = "",
        emit: Emit | None = None,
    ) -> None:
        """``POST /images/create?fromImage=`` (see :func:`engine.images.registry.pull`)."""
        registry.pull(
            self.local, self._config(), image, tag, all_tags=all_tags, auth=auth, platform=platform, emit=emit
        )

    def push(self, name: str, tag: str = "", *, auth: AuthConfig | None = None, emit: Emit | None = None) -> None:
        """``POST /images/{name}/push``: one tag, or every local tag of the repository when ``tag`` is empty."""
        registry.push(self.local, self._config(), name, tag, auth=auth, emit=emit)

    def login(self, auth: AuthConfig) -> str:
        """``POST /auth``: "Login Succeeded" or dockerd's error."""
        return registry.login(self._config(), auth)

    # -- system --------------------------------------------------------------------------------------------

    def info_fields(self) -> dict[str, Any]:
        return {"Images": len(self.local.store.all())}

    def disk_usage(self) -> dict[str, Any]:
        return listing.disk_usage(self.local)

    def stop(self) -> None:
        self.local.stop()
