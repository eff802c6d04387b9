"""New images on top of others: ``docker commit`` (a container's read-write layer becomes a layer)
and the builder's step images share :func:`create_child_image`."""

from __future__ import annotations

from typing import Any, BinaryIO

from engine.errors import InvalidParameter
from engine.images import changes as change_rules
from engine.images.configs import child_image_config
from engine.images.local import LocalImages
from engine.images.references import parse_normalized_named
from engine.images.store import Image
from engine.images.streams import PipeFromWriter


def create_child_image(
    images: LocalImages,
    parent: Image | None,
    layer: BinaryIO | None,
    *,
    config: dict[str, Any],
    container_config: dict[str, Any],
    container_id: str = "",
    author: str = "",
    comment: str = "",
) -> str:
    """Store ``parent`` plus one step: ``layer`` is the step's layer tar (None: no layer change), the
    config is :func:`~engine.images.configs.child_image_config`'s. The new image is ``parent``'s
    child (the build cache and rmi follow that link). Returns the image ID."""
    registered = images.register_layer(layer, parent.top_layer if parent else None) if layer is not None else None
    try:
        image_config = child_image_config(
            parent,
            registered.diff_id if registered is not None else None,
            config=config,
            container_config=container_config,
            container_id=container_id,
            author=author,
            comment=comment,
        )
        image, _ = images.store.create(image_config)
    finally:
        if registered is not None:
            images.release_layer(registered.chain_id)
    if parent is not None:
        images.store.set_parent(image.id, parent.id)
    return image.id


def commit(
    images: LocalImages,
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
    """``POST /commit`` (the containers subsystem parses the request and pauses the container): a new image from the
    container's read-write layer. ``config`` is the request body's Config overrides, if any."""
    new_ref = None
    if repo:
        new_ref = parse_normalized_named(repo)
        if not new_ref.name_only:
            raise InvalidParameter(f"unexpected repository name: {repo}")
        if tag:
            new_ref = new_ref.with_tag(tag)
    user = config if config is not None else container_config
    new_config = change_rules.merge(change_rules.apply(user, changes or []), container_config)
    parent = images.store.get(parent_image_id) if parent_image_id else None
    reader = PipeFromWriter(lambda out: images.layers.rw_diff(container_id, out))
    try:
        image_id = create_child_image(
            images,
            parent,
            reader,  # type: ignore[arg-type]
            config=new_config,
            container_config=container_config,
            container_id=container_id,
            author=author,
            comment=comment,
        )
    finally:
        reader.close()
    if new_ref is not None:
        images.tag_reference(image_id, new_ref)
    return image_id
