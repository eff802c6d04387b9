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
from engine.images.layers import EMPTY_LAYER_DIFF_ID
from engine.images.service import ARCH, ImageService
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
    images: ImageService,
    parent: Image | None,
    config: dict[str, Any],
    container_config: dict[str, Any],
    *,
    diff: Callable[[IO[bytes]], None] | None = None,
    author: str = "",
    container_id: str = "",
) -> str:
    """Store a step's image: ``diff(out)`` writes the layer tar (None: no layer change)."""
    parent_chain = parent.top_layer if parent else None
    layer = None
    if diff is not None:
        with tempfile.TemporaryFile(dir=images.tmp) as spool:
            diff(spool)
            spool.seek(0)
            layer = images.layers.register(spool, parent_chain)
    try:
        if layer is not None:
            images._layer_created(layer.chain_id)  # the storage hook, as commit/load fire it
        empty = layer is None or layer.diff_id == EMPTY_LAYER_DIFF_ID
        created = gojson.now()
        parent_cfg = parent.config_json if parent else {}
        diff_ids = list(parent.diff_ids) if parent else []
        if not empty:
            assert layer is not None
            diff_ids.append(layer.diff_id)
        history = [
            *(parent_cfg.get("history") or []),
            gojson.history_entry(
                created,
                author=author,
                created_by=" ".join(container_config.get("Cmd") or []),
                empty_layer=empty,
            ),
        ]
        fields: dict[str, Any] = {
            "architecture": parent_cfg.get("architecture") or ARCH,
            "author": author,
            "config": gojson.config(config),
            "container": container_id,
            "container_config": gojson.config(container_config),
            "created": created,
            "docker_version": DOCKER_VERSION,
            "history": history,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if parent_cfg.get("variant"):
            fields["variant"] = parent_cfg["variant"]
        image, _ = images.store.create(gojson.image_config_bytes(fields))
    finally:
        if layer is not None:
            for chain in images.layers.release(layer.chain_id):
                images._layer_removed(chain)
    if parent is not None:
        images.store.set_parent(image.id, parent.id)
    return image.id


def _cache_key(cfg: dict[str, Any]) -> dict[str, Any]:
    normalized = gojson.config(cfg)
    return {k: normalized.get(k) for k in CACHE_FIELDS}


def find_cached(images: ImageService, parent_id: str, container_config: dict[str, Any]) -> str | None:
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


def _orphans(images: ImageService) -> list[str]:
    return [image_id for image_id, image in images.store.all().items() if not image.parent]
