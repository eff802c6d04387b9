"""The tag store (``repositories.json``): every tag and digest reference of the local images.

The store keeps dockerd's on-disk shape: ``{"Repositories": {familiar-name: {familiar-ref: image-id}}}``.
The reference grammar is :mod:`engine.reference` (shared with the registry client); its names are
re-exported here because every caller of the tag store parses references too.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.drivers.records import read_json, write_json
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.reference import (
    Reference,
    ReferenceError,
    familiar_match,
    is_digest,
    parse_any,
    parse_normalized_named,
    short_id,
)

__all__ = [
    "Reference",
    "ReferenceError",
    "TagStore",
    "familiar_match",
    "is_digest",
    "parse_any",
    "parse_normalized_named",
    "short_id",
]


class TagStore:
    """``repositories.json``: every tag and digest reference, one lock, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._repos: dict[str, dict[str, str]] = {}
        self._by_id: dict[str, dict[str, Reference]] = {}
        if path.exists():
            data = read_json(path) or {}
            for repo in (data.get("Repositories") or {}).values():
                for ref_text, image_id in (repo or {}).items():
                    try:
                        ref = parse_normalized_named(ref_text)
                    except ReferenceError:
                        continue
                    self._insert(ref, image_id)

    def _insert(self, ref: Reference, image_id: str) -> None:
        self._repos.setdefault(ref.familiar_name, {})[ref.familiar] = image_id
        self._by_id.setdefault(image_id, {})[ref.familiar] = ref

    def _save(self) -> None:
        write_json(self.path, {"Repositories": self._repos})

    def add(self, ref: Reference, image_id: str, force: bool = True) -> None:
        """AddTag/AddDigest: a bare name is ``:latest``; an existing tag moves when ``force``."""
        ref = ref.tag_name_only()
        if ref.familiar_name == "sha256":
            raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
        with self._lock:
            old = self._repos.get(ref.familiar_name, {}).get(ref.familiar)
            if old == image_id:
                return
            if old is not None:
                if ref.canonical:
                    raise Conflict(f"Cannot overwrite digest {ref.digest}")
                if not force:
                    raise Conflict(
                        f"Conflict: Tag {ref.familiar} is already set to image {old}, "
                        "if you want to replace it, please use the -f option"
                    )
                self._by_id.get(old, {}).pop(ref.familiar, None)
                if not self._by_id.get(old):
                    self._by_id.pop(old, None)
            self._insert(ref, image_id)
            self._save()

    def delete(self, ref: Reference) -> bool:
        ref = ref.tag_name_only()
        with self._lock:
            repo = self._repos.get(ref.familiar_name)
            if repo is None or ref.familiar not in repo:
                return False
            image_id = repo.pop(ref.familiar)
            if not repo:
                del self._repos[ref.familiar_name]
            refs = self._by_id.get(image_id, {})
            refs.pop(ref.familiar, None)
            if not refs:
                self._by_id.pop(image_id, None)
            self._save()
            return True

    def get(self, ref: Reference) -> str:
        """The image ID a reference points at; NotFound ``reference does not exist``."""
        ref = ref.tag_name_only()
        with self._lock:
            image_id = self._repos.get(ref.familiar_name, {}).get(ref.familiar)
        if image_id is None:
            raise NotFound("reference does not exist")
        return image_id

    def references(self, image_id: str) -> list[Reference]:
        """Every reference to an image, sorted like dockerd (by the full string)."""
        with self._lock:
            refs = list(self._by_id.get(image_id, {}).values())
        return sorted(refs, key=str)

    def references_by_name(self, ref: Reference) -> list[tuple[Reference, str]]:
        with self._lock:
            repo = dict(self._repos.get(ref.familiar_name, {}))
        out = [(parse_normalized_named(text), image_id) for text, image_id in repo.items()]
        return sorted(out, key=lambda pair: str(pair[0]))

    def all(self) -> dict[str, list[Reference]]:
        with self._lock:
            return {image_id: list(refs.values()) for image_id, refs in self._by_id.items()}
