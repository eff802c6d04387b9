"""``docker save`` and ``docker load``: docker-archives out, docker-archives and OCI layouts in
(the formats are :mod:`engine.images.tarball`'s; this is what they do to the stores)."""

from __future__ import annotations

import secrets
from typing import IO, BinaryIO

from engine.chainid import chain_id as make_chain
from engine.errors import InvalidParameter, NotFound
from engine.images import tarball
from engine.images.configs import ARCH
from engine.images.local import LocalImages, no_such_image
from engine.images.references import Reference, parse_any, parse_normalized_named
from engine.images.store import parse_config
from engine.images.streams import Emit, HashingReader, ProgressReader


def save_plan(images: LocalImages, names: list[str]) -> list[tarball.SaveImage]:
    """Resolve ``docker save`` names (dockerd's parseNames); errors surface before any byte is sent."""
    plan: dict[str, tarball.SaveImage] = {}

    def add(image_id: str, ref: Reference | None) -> None:
        if image_id not in plan:
            image = images.store.get(image_id)
            plan[image_id] = tarball.SaveImage(
                image.id, image.raw, image.config_json, image.chain_ids, image.diff_ids, parent=image.parent
            )
        if ref is not None and not ref.canonical:
            ref = ref.tag_name_only()
            entry = (ref.familiar, ref.familiar_name, ref.tag or "latest")
            if entry not in plan[image_id].tags:
                plan[image_id].tags.append(entry)

    for name in names:
        ref = parse_any(name)
        if isinstance(ref, str):
            if not images.store.exists(ref):
                raise no_such_image(ref)
            add(ref, None)
            continue
        if ref.familiar_name == "sha256":
            add(images.store.search(name), None)
            continue
        if ref.name_only:
            assocs = images.tags.references_by_name(ref)
            for assoc_ref, image_id in assocs:
                add(image_id, assoc_ref)
            if not assocs:
                add(images.store.search(name), None)
            continue
        add(images.tags.get(ref), ref)
    held: list[str] = []
    try:
        for image in plan.values():
            if image.chain_ids:
                images.layers.acquire(image.chain_ids[-1])
                held.append(image.chain_ids[-1])
    except BaseException:
        _release_all(images, held)
        raise
    return list(plan.values())


def save(images: LocalImages, plan: list[tarball.SaveImage], out: IO[bytes]) -> None:
    """``GET /images/get``: write the docker-archive of a resolved plan, then release the layer
    references :meth:`save_plan` took (so a concurrent rmi cannot pull layers from under the save)."""
    try:
        tarball.write_archive(plan, out, images.layers)
    finally:
        release_plan(images, plan)
    for image in plan:
        images.event("save", image.id, image.id)


def release_plan(images: LocalImages, plan: list[tarball.SaveImage]) -> None:
    _release_all(images, [image.chain_ids[-1] for image in plan if image.chain_ids])


def _release_all(images: LocalImages, chains: list[str]) -> None:
    for chain in chains:
        images.release_layer(chain)


def load(images: LocalImages, stream: BinaryIO, emit: Emit, quiet: bool = True) -> list[str]:
    """``POST /images/load``: a docker-archive or an OCI layout; returns the loaded image IDs."""
    work = images.tmp / f"load-{secrets.token_hex(8)}"
    try:
        archive = tarball.unpack(stream, work)
        items = tarball.read_archive(archive, ARCH)
        loaded: list[str] = []
        parent_links: list[tuple[str, str]] = []
        for item in items:
            image_id = _load_one(images, archive, item, emit, quiet)
            loaded.append(image_id)
            if item.parent:
                parent_links.append((image_id, item.parent))
        for image_id, parent in parent_links:
            if parent in loaded and parent != image_id and images.store.exists(parent):
                images.store.set_parent(image_id, parent)
        return loaded
    finally:
        tarball.cleanup(work)


def _load_one(
    images: LocalImages, archive: tarball.Unpacked, item: tarball.ArchiveImage, emit: Emit, quiet: bool
) -> str:
    config = parse_config(item.config)
    os_name = config.get("os") or "linux"
    if os_name != "linux":
        raise InvalidParameter(f"cannot load {os_name} image on linux")
    diff_ids = list(config["rootfs"].get("diff_ids") or [])
    if len(diff_ids) != len(item.layers):
        raise InvalidParameter(
            f"invalid manifest, layers length mismatch: expected {len(item.layers)}, got {len(diff_ids)}"
        )
    held: list[str] = []
    try:
        parent: str | None = None
        for i, ((path, _media), diff_id) in enumerate(zip(item.layers, diff_ids, strict=True)):
            chain = make_chain(parent, diff_id)
            if images.layers.exists(chain):
                images.layers.acquire(chain)
                held.append(chain)
            else:
                size = archive.size(path)
                blob_digest = item.layer_digests[i] if i < len(item.layer_digests) else None
                with archive.open(path) as f:
                    hashing = HashingReader(f)
                    reader: BinaryIO = hashing  # type: ignore[assignment]
                    if not quiet:
                        reader = ProgressReader(hashing, size, emit, "Loading layer", diff_id.partition(":")[2][:12])  # type: ignore[assignment]
                    layer = images.layers.register(reader, parent)
                    hashing.drain()
                held.append(layer.chain_id)
                images.layer_created(layer.chain_id)
                if blob_digest and hashing.digest() != blob_digest:
                    raise InvalidParameter(f"layer blob {blob_digest} does not match its digest")
                if layer.diff_id != diff_id:
                    raise InvalidParameter(f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"')
            parent = chain
        image, _ = images.store.create(item.config)
    finally:
        for chain in held:
            images.layers.release(chain)
    tagged = 0
    for text in item.tags:
        try:
            ref = parse_normalized_named(text)
        except InvalidParameter:
            raise InvalidParameter(f'invalid tag "{text}"') from None
        if ref.tag is None or ref.canonical:
            raise InvalidParameter(f'invalid tag "{text}"')
        try:
            previous = images.tags.get(ref)
        except NotFound:
            previous = None
        if previous is not None and previous != image.id:
            emit(
                {
                    "stream": f"The image {ref.familiar} already exists, renaming the old one with ID "
                    f"{previous} to empty string\n"
                }
            )
        images.tags.add(ref, image.id, force=True)  # no tag event, no LastTagTime: as dockerd's load
        emit({"stream": f"Loaded image: {ref.familiar}\n"})
        tagged += 1
    images.event("load", image.id, image.id)
    if tagged == 0:
        emit({"stream": f"Loaded image ID: {image.id}\n"})
    return image.id
