"""The image store: image configs by ID, their parent links and last-tag times.

Layout (dockerd's), under ``<data-root>/image/<driver>/imagedb/``:
``content/sha256/<id>`` holds the config JSON bytes exactly as received (the image ID is their
sha256) and ``metadata/sha256/<id>/{parent,lastUpdated}`` the local facts. Each image holds a
reference on its top layer in the layer store.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.chainid import chain_ids
from engine.drivers.records import write_atomic
from engine.drivers.timefmt import ZERO_TIME
from engine.errors import InvalidParameter, NotFound
from engine.images import gojson
from engine.images.layers import LayerStore


@dataclass
class Image:
    id: str  # "sha256:<hex>"
    raw: bytes
    config_json: dict[str, Any]
    parent: str = ""  # local parent image ID (build/commit/load), "" if none
    last_updated: str = ""
    diff_ids: list[str] = field(default_factory=list)
    chain_ids: list[str] = field(default_factory=list)
    repo_tags: list[str] = field(default_factory=list)  # filled by the service when asked

    @property
    def config(self) -> dict[str, Any]:
        """The container config the image runs with (``config``), never None."""
        return self.config_json.get("config") or {}

    @property
    def top_layer(self) -> str | None:
        return self.chain_ids[-1] if self.chain_ids else None

    @property
    def created(self) -> str:
        return self.config_json.get("created") or ZERO_TIME

    @property
    def created_ns(self) -> int:
        return gojson.parse_time(self.config_json.get("created"))

    @property
    def os(self) -> str:
        return self.config_json.get("os") or "linux"

    @property
    def labels(self) -> dict[str, str]:
        return self.config.get("Labels") or {}

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.config_json.get("history") or []


def image_id_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def parse_config(raw: bytes) -> dict[str, Any]:
    """Check an image config enough to hold it: JSON object, rootfs of type ``layers``."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"invalid image JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidParameter("invalid image JSON: not an object")
    rootfs = data.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidParameter("invalid image JSON, no RootFS key")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidParameter("invalid image JSON: bad rootfs.diff_ids")
    return data


class ImageStore:
    def __init__(self, root: Path, layers: LayerStore) -> None:
        self.root = root
        self.layers = layers
        self._content = root / "content" / "sha256"
        self._metadata = root / "metadata" / "sha256"
        self._content.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._metadata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        self._images: dict[str, Image] = {}
        self._sorted_hex: list[str] = []
        self._load()

    def _load(self) -> None:
        for path in sorted(self._content.iterdir()):
            if path.name.startswith("."):
                continue
            raw = path.read_bytes()
            image_id = "sha256:" + path.name
            if image_id_of(raw) != image_id:
                continue  # corrupt: dockerd skips it too
            try:
                image = self._make(image_id, raw)
                if image.top_layer:
                    self.layers.acquire(image.top_layer)
            except Exception:
                continue
            self._images[image_id] = image
        self._sorted_hex = sorted(i.partition(":")[2] for i in self._images)

    def _make(self, image_id: str, raw: bytes) -> Image:
        data = parse_config(raw)
        diff_ids = list(data["rootfs"].get("diff_ids") or [])
        meta = self._metadata / image_id.partition(":")[2]
        return Image(
            id=image_id,
            raw=raw,
            config_json=data,
            parent=_read(meta / "parent"),
            last_updated=_read(meta / "lastUpdated"),
            diff_ids=diff_ids,
            chain_ids=chain_ids(diff_ids),
        )

    # -- queries ------------------------------------------------------------------------------------------

    def get(self, image_id: str) -> Image:
        with self._lock:
            image = self._images.get(image_id)
        if image is None:
            raise NotFound(f"No such image: {image_id}")
        return image

    def exists(self, image_id: str) -> bool:
        with self._lock:
            return image_id in self._images

    def all(self) -> dict[str, Image]:
        with self._lock:
            return dict(self._images)

    def children(self, image_id: str) -> list[str]:
        with self._lock:
            return [i.id for i in self._images.values() if i.parent == image_id]

    def heads(self) -> dict[str, Image]:
        """Images no other image names as its parent."""
        with self._lock:
            parents = {i.parent for i in self._images.values() if i.parent}
            return {k: v for k, v in self._images.items() if k not in parents}

    class Ambiguous(NotFound):
        pass

    def search(self, term: str) -> str:
        """An ID or unique ID prefix (with or without ``sha256:``) -> the image ID (digestset.Lookup)."""
        prefix = term[7:] if term.startswith("sha256:") else term
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            raise NotFound(f"No such image: {term}")
        with self._lock:
            hexes = self._sorted_hex
            i = bisect.bisect_left(hexes, prefix)
            if i == len(hexes) or not hexes[i].startswith(prefix):
                raise NotFound(f"No such image: {term}")
            if hexes[i] != prefix and i + 1 < len(hexes) and hexes[i + 1].startswith(prefix):
                raise ImageStore.Ambiguous("ambiguous digest string")
            return "sha256:" + hexes[i]

    # -- changes --------------------------------------------------------------------------------------------

    def create(self, raw: bytes) -> tuple[Image, bool]:
        """Store a config (its layers must exist); returns the image and whether it is new."""
        image_id = image_id_of(raw)
        with self._lock:
            existing = self._images.get(image_id)
            if existing is not None:
                return existing, False
            image = self._make(image_id, raw)
            if image.top_layer:
                try:
                    self.layers.acquire(image.top_layer)
                except NotFound:
                    raise InvalidParameter(f"failed to get layer {image.top_layer}: layer does not exist") from None
            try:
                write_atomic(self._content / image_id.partition(":")[2], raw)
            except BaseException:
                if image.top_layer:
                    self.layers.release(image.top_layer)
                raise
            self._images[image_id] = image
            bisect.insort(self._sorted_hex, image_id.partition(":")[2])
            return image, True

    def delete(self, image_id: str) -> list[str]:
        """Remove an image; returns the chain IDs of the layers that went with it."""
        with self._lock:
            image = self._images.pop(image_id, None)
            if image is None:
                raise NotFound(f"No such image: {image_id}")
            hexid = image_id.partition(":")[2]
            idx = bisect.bisect_left(self._sorted_hex, hexid)
            if idx < len(self._sorted_hex) and self._sorted_hex[idx] == hexid:
                del self._sorted_hex[idx]
            for child in self._images.values():
                if child.parent == image_id:
                    child.parent = ""
            (self._content / hexid).unlink(missing_ok=True)
            shutil.rmtree(self._metadata / hexid, ignore_errors=True)
        return self.layers.release(image.top_layer) if image.top_layer else []

    def set_parent(self, image_id: str, parent: str) -> None:
        with self._lock:
            image = self.get(image_id)
            self._write_meta(image_id, "parent", parent)
            image.parent = parent

    def set_last_updated(self, image_id: str) -> None:
        with self._lock:
            image = self.get(image_id)
            stamp = gojson.now()
            self._write_meta(image_id, "lastUpdated", stamp)
            image.last_updated = stamp

    def _write_meta(self, image_id: str, key: str, value: str) -> None:
        meta = self._metadata / image_id.partition(":")[2]
        meta.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(meta / key, value)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
