"""The local images (``daemon.images.local``): the layer, image and tag stores under one root, and
what every change to them owes the rest of the daemon (image events, storage hooks).

This is the image subsystem's public surface for the other services: the builder stores its step
images through it, the registry glue (:mod:`engine.images.registry`) hands pull and push a view of
it, and each operation module (import, delete, save/load, commit ...) works on it.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.errors import InvalidParameter, NotFound
from engine.images.layers import Layer, LayerStore
from engine.images.references import Reference, TagStore, parse_any
from engine.images.store import Image, ImageStore

if TYPE_CHECKING:
    from engine.drivers.storage import StorageDriver
    from engine.events import EventBus
    from engine.hooks import Hooks

#: container ids using an image; entries may be ``(id, running)`` for dockerd's running/stopped wording
UsageCheck = Callable[[str], list[Any]]


def no_such_image(ref: Reference | str) -> NotFound:
    """dockerd's ErrImageDoesNotExist text: a named reference shows with its tag (``x:latest``)."""
    if isinstance(ref, Reference):
        return NotFound(f"No such image: {ref.tag_name_only().familiar}")
    return NotFound(f"No such image: {ref}")


class LocalImages:
    """The stores (``layers``, ``store``, ``tags``), a scratch directory (``tmp``) and their side effects.
    Blocking and thread-safe, as the stores are."""

    def __init__(self, root: Path, driver: StorageDriver, events: EventBus, hooks: Hooks) -> None:
        """``root`` is ``<data-root>/image/<driver>``; ``hooks`` is the daemon's typed hook facade."""
        self.events = events
        self.hooks = hooks
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        #: scratch space for loads, pulls, pushes and builds; emptied at start and stop
        self.tmp = self.root / "tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        self.layers = LayerStore(self.root / "layerdb", driver)
        self.store = ImageStore(self.root / "imagedb", self.layers)
        self.tags = TagStore(self.root / "repositories.json")
        self.layers.garbage_collect()
        self._usage_check: UsageCheck | None = None

    def stop(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- who uses an image ---------------------------------------------------------------------------

    def set_usage_check(self, fn: UsageCheck) -> None:
        """The containers subsystem registers ``fn(image_id) -> [container_id | (container_id, running)]``."""
        self._usage_check = fn

    def users(self, image_id: str) -> list[tuple[str, bool]]:
        """``(container id, running)`` of every container using the image."""
        if self._usage_check is None:
            return []
        out = []
        for entry in self._usage_check(image_id) or []:
            if isinstance(entry, tuple):
                out.append((str(entry[0]), bool(entry[1])))
            else:
                out.append((str(entry), False))
        return out

    # -- lookup ----------------------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> Image:
        """dockerd's GetImage: a tag or digest reference, a full ID, or a unique ID prefix."""
        ref = parse_any(ref_or_id)
        if isinstance(ref, str):
            if self.store.exists(ref):
                return self._with_tags(self.store.get(ref))
            raise NotFound(f"No such image: {ref}")
        try:
            image_id = self.tags.get(ref)
            if self.store.exists(image_id):
                return self._with_tags(self.store.get(image_id))
        except NotFound:
            pass
        try:
            return self._with_tags(self.store.get(self.store.search(ref_or_id)))
        except NotFound:
            raise no_such_image(ref) from None

    def _with_tags(self, image: Image) -> Image:
        image.repo_tags = [r.familiar for r in self.tags.references(image.id) if r.tag is not None]
        return image

    def repo_lists(self, image_id: str) -> tuple[list[str], list[str]]:
        """The familiar tags and digest references of an image."""
        tags, digests = [], []
        for ref in self.tags.references(image_id):
            if ref.digest is not None:
                digests.append(ref.familiar)
            elif ref.tag is not None:
                tags.append(ref.familiar)
        return tags, digests

    # -- changes -----------------------------------------------------------------------------------------

    def tag_reference(self, image_id: str, ref: Reference) -> None:
        """Point a tag at an image (moving it), with the ``tag`` event and LastTagTime."""
        if ref.canonical:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        self.tags.add(ref, image_id, force=True)
        self.store.set_last_updated(image_id)
        self.event("tag", image_id, ref.tag_name_only().familiar)

    def register_layer(self, stream: BinaryIO, parent: str | None = None) -> Layer:
        """Store a layer from its tar and tell the storage hooks; the caller holds a reference."""
        layer = self.layers.register(stream, parent)
        self.layer_created(layer.chain_id)
        return layer

    def release_layer(self, chain: str) -> None:
        """Drop a layer reference; the storage hooks hear of every layer that goes with it."""
        for removed in self.layers.release(chain):
            self.layer_removed(removed)

    # -- what the daemon hears ---------------------------------------------------------------------------

    def event(self, action: str, image_id: str, name: str, extra: dict[str, str] | None = None) -> None:
        """An ``image`` event with the image's labels (when it exists), ``extra`` and ``name``."""
        attributes: dict[str, str] = {}
        if self.store.exists(image_id):
            attributes.update(self.store.get(image_id).labels)
        attributes.update(extra or {})
        if name:
            attributes["name"] = name
        self.events.publish("image", action, image_id, attributes)

    def layer_created(self, chain: str) -> None:
        """The ``engine_storage_layer_created`` hook; a failing hook does not fail the operation."""
        with contextlib.suppress(Exception):
            layer = self.layers.get(chain)
            self.hooks.storage_layer_created(
                driver_name=self.layers.driver.name, chain_id=chain, diff_id=layer.diff_id, size=layer.size
            )

    def layer_removed(self, chain: str) -> None:
        """The ``engine_storage_layer_removed`` hook; a failing hook does not fail the operation."""
        with contextlib.suppress(Exception):
            self.hooks.storage_layer_removed(driver_name=self.layers.driver.name, chain_id=chain)
