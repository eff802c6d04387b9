"""What pull and push need of the local image store: :class:`ImageTarget`, a Protocol.

The registry client sits below the image service: it never imports :mod:`engine.images`. The image
service hands it an object with these methods (``engine.images.registry.RegistryImages``).
Layers are named by chain ID (:mod:`engine.chainid`), images by their config digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, BinaryIO, Protocol, runtime_checkable

from engine.reference import Reference


class StoredLayer(Protocol):
    chain_id: str
    diff_id: str


class StoredImage(Protocol):
    id: str  # the config digest
    raw: bytes  # the config, byte for byte

    @property
    def diff_ids(self) -> Sequence[str]: ...

    @property
    def chain_ids(self) -> Sequence[str]: ...


@runtime_checkable
class ImageTarget(Protocol):
    """The local image store as pull writes to it and push reads from it. Blocking, thread-safe."""

    #: where a pull or push makes its scratch directory for blobs (and removes it when done)
    work_dir: Path

    def has_image(self, image_id: str) -> bool: ...

    def image(self, image_id: str) -> StoredImage:
        """:raises NotFound: no such image."""
        ...

    def create_image(self, config: bytes) -> None:
        """Store an image config; the layers it names must be held."""
        ...

    def has_layer(self, chain_id: str) -> bool: ...

    def hold_layer(self, chain_id: str) -> None:
        """Take a reference on a layer that exists (so it cannot go while the pull runs)."""
        ...

    def register_layer(self, stream: BinaryIO, parent: str | None) -> StoredLayer:
        """Store a layer from its (possibly compressed) tar; the caller holds a reference to it.
        Then either :meth:`announce_layer` (it checked out) or :meth:`discard_layer` (it did not)."""
        ...

    def announce_layer(self, chain_id: str) -> None:
        """Tell the storage hooks about a layer this pull registered and checked."""
        ...

    def discard_layer(self, chain_id: str) -> None:
        """Drop a registered layer that failed its check, unannounced."""
        ...

    def release_layer(self, chain_id: str) -> None:
        """Drop a reference taken by :meth:`hold_layer` or :meth:`register_layer`; layers this
        removes are announced to the storage hooks."""
        ...

    def export_layer(self, chain_id: str, out: IO[bytes]) -> None:
        """Write the layer's tar, byte for byte as it was registered."""
        ...

    def image_of(self, ref: Reference) -> str | None:
        """The image a tag or digest reference points at, or None."""
        ...

    def add_reference(self, ref: Reference, image_id: str) -> None:
        """Point a tag (moving it) or a digest reference at an image; no tag event (as dockerd's pull).

        :raises Conflict: the digest reference points at another image.
        """
        ...

    def event(self, action: str, ref: Reference) -> None:
        """Publish an image event (``pull``, ``push``) named by the reference."""
        ...
