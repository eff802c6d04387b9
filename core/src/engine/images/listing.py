"""Listing and inspecting images: ``GET /images/json`` (and ``system df``), ``GET /images/{name}/json``
and ``/history``, with dockerd's shapes and filters."""

from __future__ import annotations

from typing import Any

from engine.drivers.timefmt import ZERO_TIME
from engine.errors import InvalidParameter, NotFound
from engine.filters import Filters
from engine.images import gojson
from engine.images.local import LocalImages
from engine.images.references import familiar_match
from engine.images.store import Image

LIST_FILTERS = ("before", "dangling", "label", "reference", "since")


def list_images(
    images: LocalImages, filters: Filters | None = None, all: bool = False, extra: bool = False
) -> list[dict[str, Any]]:
    """``GET /images/json``; ``extra`` adds container counts and shared sizes (``system df``)."""
    filters = filters or Filters()
    for key in filters.values:
        if key not in LIST_FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    dangling = filters.bool_value("dangling") if "dangling" in filters else None
    dangling_only = dangling is True
    before = since = None
    for value in filters.get("before"):
        before = images.resolve(value)
    for value in filters.get("since"):
        since = images.resolve(value)
    selected = images.store.heads() if dangling_only else images.store.all()
    summaries: list[tuple[Image, dict[str, Any]]] = []
    for image_id, image in selected.items():
        if before is not None and image.created_ns >= before.created_ns:
            continue
        if since is not None and image.created_ns <= since.created_ns:
            continue
        if "label" in filters and not filters.match_labels(image.labels):
            continue
        try:
            size = images.layers.size(image.top_layer)
        except NotFound:
            continue
        summary = _summary(image, size)
        tags: list[str] | None = None
        digests: list[str] | None = None
        for ref in images.tags.references(image_id):
            if "reference" in filters and not any(familiar_match(p, ref) for p in filters.get("reference")):
                continue
            if ref.digest is not None:
                digests = [*(digests or []), ref.familiar]
            if ref.tag is not None:
                tags = [*(tags or []), ref.familiar]
        if digests is None and tags is None:
            if all or not images.store.children(image_id):
                if dangling is False or "reference" in filters:
                    continue
                digests, tags = ["<none>@<none>"], ["<none>:<none>"]
            else:
                continue
        elif dangling_only and tags:
            continue
        summary["RepoDigests"], summary["RepoTags"] = digests, tags
        summaries.append((image, summary))
    if extra:
        _add_extra(images, summaries)
    summaries.sort(key=lambda pair: pair[0].created_ns, reverse=True)
    return [s for _, s in summaries]


def _summary(image: Image, size: int) -> dict[str, Any]:
    return {
        "Containers": -1,
        "Created": image.created_ns // 1_000_000_000,
        "Id": image.id,
        "Labels": image.config.get("Labels") if image.config_json.get("config") is not None else None,
        "ParentId": image.parent,
        "RepoDigests": None,
        "RepoTags": None,
        "SharedSize": -1,
        "Size": size,
        "VirtualSize": size,
    }


def _add_extra(images: LocalImages, summaries: list[tuple[Image, dict[str, Any]]]) -> None:
    refs: dict[str, int] = {}
    for image, summary in summaries:
        summary["Containers"] = len(images.users(image.id))
        for chain in image.chain_ids:
            refs[chain] = refs.get(chain, 0) + 1
    for image, summary in summaries:
        shared = 0
        for chain in image.chain_ids:
            if refs.get(chain, 0) > 1:
                shared += images.layers.get(chain).size
        summary["SharedSize"] = shared


def inspect(images: LocalImages, name: str) -> dict[str, Any]:
    """``GET /images/{name}/json`` (dockerd's LookupImage)."""
    try:
        image = images.resolve(name)
    except NotFound as exc:
        raise NotFound(f"no such image: {name}: {exc.message}") from None
    tags, digests = images.repo_lists(image.id)
    size, metadata = 0, {}
    if image.top_layer:
        size = images.layers.size(image.top_layer)
        metadata = images.layers.metadata(image.top_layer)
    cfg = image.config_json
    comment = cfg.get("comment") or ""
    if not comment and image.history:
        comment = image.history[-1].get("comment") or ""
    out: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": image.parent,
        "Comment": comment,
        "Created": gojson.normalize_time(cfg.get("created")),
        "Container": cfg.get("container") or "",
        "ContainerConfig": gojson.config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version") or "",
        "Author": cfg.get("author") or "",
        "Config": gojson.config_or_none(cfg.get("config")),
        "Architecture": cfg.get("architecture") or "",
    }
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    out["Os"] = image.os
    if cfg.get("os.version"):
        out["OsVersion"] = cfg["os.version"]
    out["Size"] = size
    out["VirtualSize"] = size
    out["GraphDriver"] = {"Data": metadata or None, "Name": images.layers.driver.name}
    rootfs: dict[str, Any] = {"Type": "layers"}
    if image.diff_ids:
        rootfs["Layers"] = list(image.diff_ids)
    out["RootFS"] = rootfs
    out["Metadata"] = {"LastTagTime": image.last_updated or ZERO_TIME}
    return out


def history(images: LocalImages, name: str) -> list[dict[str, Any]]:
    """``GET /images/{name}/history``: newest first; IDs only where a local image is known."""
    image = images.resolve(name)
    items: list[dict[str, Any]] = []
    layer_index = 0
    for entry in image.history:
        size = 0
        if not entry.get("empty_layer"):
            if layer_index >= len(image.chain_ids):
                raise InvalidParameter("too many non-empty layers in History section")
            size = images.layers.get(image.chain_ids[layer_index]).size
            layer_index += 1
        items.insert(
            0,
            {
                "Comment": entry.get("comment") or "",
                "Created": gojson.unix_seconds(entry.get("created")),
                "CreatedBy": entry.get("created_by") or "",
                "Id": "<missing>",
                "Size": size,
                "Tags": None,
            },
        )
    current: Image | None = image
    for item in items:
        if current is None:
            break
        item["Id"] = current.id
        tags = [r.familiar for r in images.tags.references(current.id) if r.tag is not None]
        item["Tags"] = tags or None
        parent = current.parent
        current = images.store.get(parent) if parent and images.store.exists(parent) else None
    return items


def disk_usage(images: LocalImages) -> dict[str, Any]:
    """The images part of ``GET /system/df``: every image's summary, and the size of the layers they hold."""
    summaries = list_images(images, extra=True)
    counted: dict[str, int] = {}
    for image in images.store.all().values():
        if not images.tags.references(image.id) and images.store.children(image.id):
            continue
        for chain in image.chain_ids:
            counted[chain] = 1
    layers = images.layers.all()
    return {"LayersSize": sum(layers[c].size for c in counted if c in layers), "Images": summaries}
