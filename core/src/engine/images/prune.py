"""``docker image prune`` (``POST /images/prune``): dangling images, or with ``dangling=false``
every image no container uses; one prune at a time."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from engine.filters import Filters, timestamp_ns
from engine.images.delete import ImageRemover
from engine.images.local import LocalImages

log = logging.getLogger(__name__)

PRUNE_FILTERS = ("dangling", "label", "label!", "until")


class ImagePruner:
    def __init__(self, images: LocalImages, remover: ImageRemover) -> None:
        self.images = images
        self.remover = remover
        self._prune_lock = threading.Lock()

    def prune(self, filters: Filters | None = None) -> dict[str, Any]:
        """``POST /images/prune``: dangling images, or with ``dangling=false`` every unused one."""
        filters = filters or Filters()
        for key in filters.values:
            if key not in PRUNE_FILTERS:
                raise InvalidParameter(f"Invalid filter '{key}'")
        if not self._prune_lock.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            return self._prune(filters)
        finally:
            self._prune_lock.release()

    def _prune(self, filters: Filters) -> dict[str, Any]:
        dangling_only = True
        if "dangling" in filters:
            values = {v.lower() for v in filters.get("dangling")}
            if values & {"false", "0"}:
                dangling_only = False
            elif not values & {"true", "1"}:
                raise InvalidParameter(f"Invalid filter 'dangling={','.join(sorted(filters.get('dangling')))}'")
        until = None
        for value in filters.get("until"):
            until = timestamp_ns(value)
        candidates = self.images.store.heads() if dangling_only else self.images.store.all()
        sizes = {chain: layer.size for chain, layer in self.images.layers.all().items()}
        top: list[str] = []
        for image_id, image in candidates.items():
            if not self.images.tags.references(image_id) and self.images.store.children(image_id):
                continue
            if until is not None and image.created_ns > until:
                continue
            if not filters.match_labels(image.labels):
                continue
            top.append(image_id)
        deleted: list[dict[str, str]] = []
        for image_id in top:
            if not self.images.store.exists(image_id):
                continue
            refs = self.images.tags.references(image_id)
            try:
                if refs:
                    if dangling_only and any(r.tag is not None for r in refs):
                        continue
                    for ref in refs:
                        with contextlib.suppress(NotFound):
                            deleted += self.remover.delete(str(ref), force=False, prune=True)
                else:
                    deleted += self.remover.delete(image_id.partition(":")[2], force=False, prune=True)
            except Conflict:
                continue
            except EngineError as exc:
                log.warning("failed to prune image %s: %s", image_id, exc.message)
        reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        self.images.event("prune", "", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
