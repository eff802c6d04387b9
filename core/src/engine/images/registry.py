"""Pull, push and login glue: the daemon's registry settings, Docker Hub's special cases, and
:class:`RegistryImages`, the view of the local images that :mod:`engine.distribution` writes pulls
to and reads pushes from (its :class:`~engine.distribution.target.ImageTarget` Protocol)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from engine.distribution.auth import AuthConfig
from engine.errors import EngineError, NotFound, SystemError
from engine.images.configs import ARCH
from engine.images.layers import Layer
from engine.images.local import LocalImages
from engine.images.references import Reference, is_digest, parse_normalized_named
from engine.images.store import Image
from engine.images.streams import Emit

if TYPE_CHECKING:
    from engine.config import DaemonConfig

log = logging.getLogger(__name__)


class RegistryImages:
    """:class:`~engine.distribution.target.ImageTarget` over the local images."""

    def __init__(self, images: LocalImages) -> None:
        self.images = images
        self.work_dir: Path = images.tmp
        #: dockerd's v2 metadata (which blobs a layer is known under) lives beside the image stores
        self.metadata_dir: Path = images.root / "distribution"

    def has_image(self, image_id: str) -> bool:
        return self.images.store.exists(image_id)

    def image(self, image_id: str) -> Image:
        return self.images.store.get(image_id)

    def create_image(self, config: bytes) -> None:
        self.images.store.create(config)

    def has_layer(self, chain_id: str) -> bool:
        return self.images.layers.exists(chain_id)

    def hold_layer(self, chain_id: str) -> None:
        self.images.layers.acquire(chain_id)

    def register_layer(self, stream: BinaryIO, parent: str | None) -> Layer:
        return self.images.layers.register(stream, parent)

    def announce_layer(self, chain_id: str) -> None:
        self.images.layer_created(chain_id)

    def discard_layer(self, chain_id: str) -> None:
        self.images.layers.release(chain_id)

    def release_layer(self, chain_id: str) -> None:
        self.images.release_layer(chain_id)

    def export_layer(self, chain_id: str, out: IO[bytes]) -> None:
        self.images.layers.export(chain_id, out)

    def image_of(self, ref: Reference) -> str | None:
        try:
            return self.images.tags.get(ref)
        except NotFound:
            return None

    def add_reference(self, ref: Reference, image_id: str) -> None:
        self.images.tags.add(ref, image_id)

    def event(self, action: str, ref: Reference) -> None:
        self.images.event(action, ref.familiar, ref.familiar)


def _registry_options(config: DaemonConfig) -> dict[str, Any]:
    return {"insecure_registries": list(config.get("insecure-registries") or [])}


def pull(
    images: LocalImages,
    config: DaemonConfig,
    image: str,
    tag: str = "",
    *,
    all_tags: bool = False,
    auth: AuthConfig | None = None,
    platform: str = "",
    emit: Emit | None = None,
) -> None:
    """``POST /images/create?fromImage=``: a tag, a digest, or every tag of a bare name (``all_tags``; else
    a bare name is ``:latest``). Docker Hub is not reachable from here: its names go to the
    ``registry-mirrors`` only, and else fail at once with dockerd's "pull access denied"."""
    ref = parse_normalized_named(image)
    if tag:
        ref = Reference(ref.domain, ref.path, None, tag) if is_digest(tag) else ref.with_tag(tag)
    elif not all_tags:
        ref = ref.tag_name_only()
    from engine.distribution.pull import Platform, Puller  # http.client and ssl: loaded at the first pull

    mirrors = list(config.get("registry-mirrors") or []) if ref.domain == "docker.io" else []
    target = RegistryImages(images)
    puller = Puller(
        target,
        target.metadata_dir,
        auth or AuthConfig(),
        Platform.parse(platform, ARCH),
        emit,
        concurrency=int(config.get("max-concurrent-downloads") or 3),
        attempts=int(config.get("max-download-attempts") or 5),
        **_registry_options(config),
    )
    if ref.domain != "docker.io":
        puller.pull(ref)
        return
    for mirror in mirrors:
        try:
            puller.pull(ref, mirror=mirror)
            return
        except EngineError as exc:
            log.info("pull of %s from mirror %s failed: %s", ref, mirror, exc)
    raise NotFound(
        f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied"
    )


def push(
    images: LocalImages,
    config: DaemonConfig,
    name: str,
    tag: str = "",
    *,
    auth: AuthConfig | None = None,
    emit: Emit | None = None,
) -> None:
    """``POST /images/{name}/push``: one tag, or every local tag of the repository when ``tag`` is empty."""
    ref = parse_normalized_named(name)
    if tag:
        ref = ref.with_tag(tag)
    if ref.tag is not None:
        try:
            tags = [(ref, images.tags.get(ref))]
        except NotFound:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") from None
    else:
        tags = [(r, image_id) for r, image_id in images.tags.references_by_name(ref) if r.tag is not None]
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    if ref.domain == "docker.io":
        (emit or (lambda _m: None))({"status": f"The push refers to repository [{ref.name}]"})
        raise SystemError('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host')
    from engine.distribution.push import Pusher

    target = RegistryImages(images)
    pusher = Pusher(
        target,
        target.metadata_dir,
        auth or AuthConfig(),
        emit,
        concurrency=int(config.get("max-concurrent-uploads") or 5),
        **_registry_options(config),
    )
    pusher.push(ref.trim(), tags)


def login(config: DaemonConfig, auth: AuthConfig) -> str:
    """``POST /auth``: "Login Succeeded" or dockerd's error."""
    from engine.distribution.login import login as registry_login

    return registry_login(auth, _registry_options(config)["insecure_registries"])
