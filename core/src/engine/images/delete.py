"""``docker rmi`` (``DELETE /images/{name}``): untagging, deleting, and dockerd's conflict rules.

A name untags (and deletes the image once nothing else names it); an ID deletes the image with
its references. Conflicts are hard (a child image, a running container: never forced) or soft
(another reference, a stopped container: ``force`` overrides). Parents left untagged and unused
go too unless ``noprune``.
"""

from __future__ import annotations

from engine.drivers.locks import KeyedLocks
from engine.errors import Conflict
from engine.images.local import LocalImages, no_such_image
from engine.images.references import Reference, parse_any, parse_normalized_named, short_id

CONFLICT_CHILD, CONFLICT_RUNNING, CONFLICT_REFERENCE, CONFLICT_STOPPED = 1, 2, 4, 8
CONFLICT_HARD = CONFLICT_CHILD | CONFLICT_RUNNING
CONFLICT_SOFT = CONFLICT_REFERENCE | CONFLICT_STOPPED


class ImageDeleteConflict(Conflict):
    def __init__(self, image_id: str, message: str, hard: bool, used: bool = False) -> None:
        force = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {short_id(image_id)} ({force}) - {message}")
        self.hard, self.used = hard, used


class ImageRemover:
    """Deletes images one at a time per image ID (a lock each; child before parent)."""

    def __init__(self, images: LocalImages) -> None:
        self.images = images
        self._image_locks = KeyedLocks()

    def delete(self, name: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """``DELETE /images/{name}``: untag, or delete the image (and untagged parents unless ``noprune``)."""
        image_id = self.images.resolve(name).id
        with self._image_locks(image_id):
            if not self.images.store.exists(image_id):  # removed while we waited
                raise no_such_image(parse_any(name))
            return self._delete(name, image_id, force, prune)

    def _delete(self, name: str, image_id: str, force: bool, prune: bool) -> list[dict[str, str]]:
        records: list[dict[str, str]] = []
        repo_refs = self.images.tags.references(image_id)
        removed_ref = False
        if not _is_id_prefix(image_id, name):
            if not force and _single_reference(repo_refs):
                users = self.images.users(image_id)
                if users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name}" (must force) - '
                        f"container {users[0][0][:12]} is using its referenced image {short_id(image_id)}"
                    )
            parsed = parse_normalized_named(name).tag_name_only()
            self.images.tags.delete(parsed)
            records.append({"Untagged": parsed.familiar})
            self.images.event("untag", image_id, image_id)
            repo_refs = self.images.tags.references(image_id)
            if not parsed.canonical and not any(r.digest is None and r.name == parsed.name for r in repo_refs):
                remaining = []
                for ref in repo_refs:
                    if ref.digest is not None and ref.name == parsed.name:
                        self.images.tags.delete(ref)
                        records.append({"Untagged": ref.familiar})
                    else:
                        remaining.append(ref)
                repo_refs = remaining
            if repo_refs:
                return records
            removed_ref = True
        elif _single_reference(repo_refs):
            mask = CONFLICT_HARD
            if not force:
                mask |= CONFLICT_SOFT & ~CONFLICT_REFERENCE
            conflict = self._conflict(image_id, mask)
            if conflict is not None:
                raise conflict
            for ref in repo_refs:
                self.images.tags.delete(ref)
                records.append({"Untagged": ref.tag_name_only().familiar})
                self.images.event("untag", image_id, image_id)
        self._delete_helper(image_id, records, force, prune, quiet=removed_ref)
        return records

    def _conflict(self, image_id: str, mask: int) -> ImageDeleteConflict | None:
        if mask & CONFLICT_CHILD and self.images.store.children(image_id):
            return ImageDeleteConflict(image_id, "image has dependent child images", hard=True)
        users = self.images.users(image_id) if mask & (CONFLICT_RUNNING | CONFLICT_STOPPED) else []
        if mask & CONFLICT_RUNNING:
            running = [cid for cid, is_running in users if is_running]
            if running:
                return ImageDeleteConflict(
                    image_id, f"image is being used by running container {running[0][:12]}", hard=True, used=True
                )
        if mask & CONFLICT_REFERENCE and self.images.tags.references(image_id):
            return ImageDeleteConflict(image_id, "image is referenced in multiple repositories", hard=False)
        if mask & CONFLICT_STOPPED:
            stopped = [cid for cid, is_running in users if not is_running]
            if stopped:
                return ImageDeleteConflict(
                    image_id, f"image is being used by stopped container {stopped[0][:12]}", hard=False, used=True
                )
        return None

    def _delete_helper(
        self, image_id: str, records: list[dict[str, str]], force: bool, prune: bool, quiet: bool
    ) -> None:
        mask = CONFLICT_HARD | (0 if force else CONFLICT_SOFT)
        conflict = self._conflict(image_id, mask)
        if conflict is not None:
            dangling = not self.images.tags.references(image_id)
            if quiet and (not dangling or conflict.used):
                return
            raise conflict
        image = self.images.store.get(image_id)
        parent = image.parent
        for ref in self.images.tags.references(image_id):
            self.images.tags.delete(ref)
            records.append({"Untagged": ref.tag_name_only().familiar})
            self.images.event("untag", image_id, image_id)
        removed_layers = self.images.store.delete(image_id)
        # dockerd logs it after the image is gone, so without the image's labels
        self.images.event("delete", image_id, image_id)
        records.append({"Deleted": image_id})
        records.extend({"Deleted": chain} for chain in removed_layers)
        for chain in removed_layers:
            self.images.layer_removed(chain)
        if prune and parent:
            with self._image_locks(parent):  # child before parent: the only nesting order, so no deadlock
                if self.images.store.exists(parent):
                    self._delete_helper(parent, records, False, True, True)


# -- helpers ----------------------------------------------------------------------------------------------------


def _is_id_prefix(image_id: str, candidate: str) -> bool:
    return image_id.startswith(candidate) or image_id.partition(":")[2].startswith(candidate)


def _single_reference(refs: list[Reference]) -> bool:
    """dockerd's isSingleReference: one tag (plus digests of the same repository), or digests of one repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    single = None
    canonical_names = set()
    for ref in refs:
        if ref.digest is not None:
            canonical_names.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical_names) == 1 and single.name in canonical_names
