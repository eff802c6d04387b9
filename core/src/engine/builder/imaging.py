"""Images as dockerd's classic builder writes them, and its build cache.

A step's image has the parent's layers plus the step's diff (none: ``empty_layer`` history), the
new run config as ``config`` and the step's cache key as ``container_config`` (its Cmd is the RUN
command, or ``/bin/sh -c #(nop) ...`` for metadata and COPY/ADD steps); ``created_by`` is that Cmd.
The cache: a child of the current image whose ``container_config`` equals the step's.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from typing import IO, Any

from engine import DOCKER_VERSION
from engine.images import gojson
from engine.images.commit import create_child_image
from engine.images.configs import ARCH
from engine.images.local import LocalImages
from engine.images.store import Image

#: the container.Config fields the cache compares (dockerd's compare() and a few more, to be safe)
CACHE_FIELDS = (
    "Cmd",
    "Entrypoint",
    "Env",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "User",
    "WorkingDir",
    "Shell",
    "OnBuild",
    "StopSignal",
    "Healthcheck",
    "OpenStdin",
    "Tty",
    "AttachStdout",
    "AttachStderr",
)


def create_image(
    images: LocalImages,
    parent: Image | None,
    config: dict[str, Any],
    container_config: dict[str, Any],
    *,
    diff: Callable[[IO[bytes]], None] | None = None,
    author: str = "",
    container_id: str = "",
) -> str:
    """Store a step's image: ``diff(out)`` writes the layer tar (None: no layer change)."""
    if diff is None:
        return create_child_image(
            images,
            parent,
            None,
            config=config,
            container_config=container_config,
            container_id=container_id,
            author=author,
        )
    with tempfile.TemporaryFile(dir=images.tmp) as spool:
        diff(spool)
        spool.seek(0)
        return create_child_image(
            images,
            parent,
            spool,
            config=config,
            container_config=container_config,
            container_id=container_id,
            author=author,
        )


def _cache_key(cfg: dict[str, Any]) -> dict[str, Any]:
    normalized = gojson.config(cfg)
    return {k: normalized.get(k) for k in CACHE_FIELDS}


def find_cached(images: LocalImages, parent_id: str, container_config: dict[str, Any]) -> str | None:
    """dockerd's getLocalCachedImage: the newest child of ``parent_id`` (for ``FROM scratch``: of no
    image) whose container config matches."""
    want = _cache_key(container_config)
    best: Image | None = None
    for image_id in images.store.children(parent_id) if parent_id else _orphans(images):
        with contextlib.suppress(Exception):
            image = images.store.get(image_id)
            cc = image.config_json.get("container_config")
            if not isinstance(cc, dict) or cc.get("OpenStdin"):
                continue
            if _cache_key(cc) == want and (best is None or image.created_ns > best.created_ns):
                best = image
    return best.id if best is not None else None


def _orphans(images: LocalImages) -> list[str]:
    return [image_id for image_id, image in images.store.all().items() if not image.parent]


# -- --cache-from (dockerd's image/cache ImageCache) ---------------------------------------------------


class SourceCache:
    """``--cache-from`` images as cache sources: a step is reused when a source's history continues
    the current image's with this step's command (images loaded with ``docker load`` have no parent
    links, so their history is what matches). Local cache hits count only inside a source's chain."""

    def __init__(self, images: LocalImages, sources: list[Image]) -> None:
        self.images = images
        self.sources = sources

    def lookup(self, parent_id: str, container_config: dict[str, Any]) -> str | None:
        local = find_cached(self.images, parent_id, container_config)
        if local is not None and any(self._has_ancestor(s.id, local) for s in self.sources):
            return local
        parent = self.images.store.get(parent_id) if parent_id else None
        depth = len(parent.config_json.get("history") or []) if parent is not None else 0
        created_by = " ".join(container_config.get("Cmd") or [])
        for target in self.sources:
            history = target.config_json.get("history") or []
            if not _continues(target, parent) or len(history) <= depth:
                continue
            if history[depth].get("created_by", "") != created_by:
                continue
            if len(history) - 1 == depth:  # the source itself is this step's image
                if parent is not None:
                    self.images.store.set_parent(target.id, parent.id)
                return target.id
            self.sources = [target]  # stay on one source from here on (dockerd does too)
            return self._restore(parent, target, depth, container_config)
        return None

    def _has_ancestor(self, image_id: str, ancestor: str) -> bool:
        seen = set()
        current = self.images.store.get(image_id).parent if self.images.store.exists(image_id) else ""
        while current and current not in seen:
            if current == ancestor:
                return True
            seen.add(current)
            current = self.images.store.get(current).parent if self.images.store.exists(current) else ""
        return False

    def _restore(self, parent: Image | None, target: Image, depth: int, container_config: dict[str, Any]) -> str:
        """An image for the source's history entry ``depth`` on top of ``parent``."""
        history = list(parent.config_json.get("history") or []) if parent is not None else []
        diff_ids = list(parent.diff_ids) if parent is not None else []
        entry = (target.config_json.get("history") or [])[depth]
        history.append(entry)
        if not entry.get("empty_layer"):
            index = sum(1 for h in (target.config_json.get("history") or [])[:depth] if not h.get("empty_layer"))
            diff_ids.append(target.diff_ids[index])
        fields: dict[str, Any] = {
            "architecture": target.config_json.get("architecture") or ARCH,
            "author": target.config_json.get("author", ""),
            "config": gojson.config(container_config),
            "container_config": gojson.config({}),
            "created": entry.get("created") or gojson.now(),
            "docker_version": DOCKER_VERSION,
            "history": history,
            "os": target.config_json.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        image, _ = self.images.store.create(gojson.image_config_bytes(fields))
        if parent is not None:
            self.images.store.set_parent(image.id, parent.id)
        return image.id


def _continues(target: Image, parent: Image | None) -> bool:
    """dockerd's isValidParent: ``target``'s history and layers start with all of ``parent``'s."""
    target_history = target.config_json.get("history") or []
    if not target_history:
        return False
    if parent is None:
        return True
    parent_history = parent.config_json.get("history") or []
    if not parent_history and not parent.diff_ids:
        return True
    if len(parent_history) >= len(target_history) or len(parent.diff_ids) > len(target.diff_ids):
        return False
    return target_history[: len(parent_history)] == parent_history and list(
        target.diff_ids[: len(parent.diff_ids)]
    ) == list(parent.diff_ids)
