"""The image service (``daemon.images``): dockerd 20.10's image operations over the stores.

Import, list, inspect, tag, remove, history, save, load, prune and commit, with dockerd's
answers, error texts and events. Everything here blocks: routes call it from worker threads.
Streaming operations take an ``emit(message)`` callback for their JSON progress messages.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import secrets
import shutil
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from engine import DOCKER_VERSION
from engine.distribution.auth import AuthConfig
from engine.distribution.progress import progress_bar
from engine.drivers.locks import KeyedLocks
from engine.drivers.timefmt import ZERO_TIME
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound, SystemError, Unauthorized
from engine.filters import Filters, timestamp_ns
from engine.images import changes as change_rules
from engine.images import gojson, tarball
from engine.images.layers import EMPTY_LAYER_DIFF_ID, LayerStore
from engine.images.references import Reference, TagStore, parse_any, parse_normalized_named, short_id
from engine.images.store import Image, ImageStore

if TYPE_CHECKING:
    from engine.daemon import Daemon

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
#: container ids using an image; entries may be ``(id, running)`` for dockerd's running/stopped wording
UsageCheck = Callable[[str], list[Any]]

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
ARCH = GO_ARCH.get(platform.machine(), platform.machine())

LIST_FILTERS = ("before", "dangling", "label", "reference", "since")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")

CONFLICT_CHILD, CONFLICT_RUNNING, CONFLICT_REFERENCE, CONFLICT_STOPPED = 1, 2, 4, 8
CONFLICT_HARD = CONFLICT_CHILD | CONFLICT_RUNNING
CONFLICT_SOFT = CONFLICT_REFERENCE | CONFLICT_STOPPED


class ImageDeleteConflict(Conflict):
    def __init__(self, image_id: str, message: str, hard: bool, used: bool = False) -> None:
        force = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {short_id(image_id)} ({force}) - {message}")
        self.hard, self.used = hard, used


def no_such_image(ref: Reference | str) -> NotFound:
    """dockerd's ErrImageDoesNotExist text: a named reference shows with its tag (``x:latest``)."""
    if isinstance(ref, Reference):
        return NotFound(f"No such image: {ref.tag_name_only().familiar}")
    return NotFound(f"No such image: {ref}")


def child_image_config(
    parent: Image | None,
    diff_id: str | None,
    *,
    config: dict[str, Any],
    container_config: dict[str, Any],
    container_id: str = "",
    author: str = "",
    comment: str = "",
) -> bytes:
    """The config of ``parent`` plus one step (dockerd's image.NewChildImage), for commit and the
    builder: the step's layer ``diff_id`` (None or the empty layer: an ``empty_layer`` history entry),
    the new ``config``, and ``container_config`` whose Cmd is the history's ``created_by``."""
    empty = diff_id is None or diff_id == EMPTY_LAYER_DIFF_ID
    created = gojson.now()
    parent_cfg = parent.config_json if parent else {}
    diff_ids = list(parent.diff_ids) if parent else []
    if not empty:
        diff_ids.append(diff_id)
    history = [
        *(parent_cfg.get("history") or []),
        gojson.history_entry(
            created,
            author=author,
            created_by=" ".join(container_config.get("Cmd") or []),
            comment=comment,
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
    for key in ("variant", "os.version", "os.features"):
        if parent_cfg.get(key):
            fields[key] = parent_cfg[key]
    return gojson.image_config_bytes(fields)


class ImageService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        driver = daemon.storage
        assert driver is not None, "the storage driver starts before the image service"
        self.root = daemon.data_root / "image" / driver.name
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tmp = self.root / "tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        self.layers = LayerStore(self.root / "layerdb", driver)
        self.store = ImageStore(self.root / "imagedb", self.layers)
        self.tags = TagStore(self.root / "repositories.json")
        self.layers.garbage_collect()
        self._usage_check: UsageCheck | None = None
        self._prune_lock = threading.Lock()
        self._image_locks = KeyedLocks()

    # -- wiring ----------------------------------------------------------------------------------------------

    def set_usage_check(self, fn: UsageCheck) -> None:
        """The containers subsystem registers ``fn(image_id) -> [container_id | (container_id, running)]``."""
        self._usage_check = fn

    def _users(self, image_id: str) -> list[tuple[str, bool]]:
        if self._usage_check is None:
            return []
        out = []
        for entry in self._usage_check(image_id) or []:
            if isinstance(entry, tuple):
                out.append((str(entry[0]), bool(entry[1])))
            else:
                out.append((str(entry), False))
        return out

    def _event(self, action: str, image_id: str, name: str, extra: dict[str, str] | None = None) -> None:
        attributes: dict[str, str] = {}
        if self.store.exists(image_id):
            attributes.update(self.store.get(image_id).labels)
        attributes.update(extra or {})
        if name:
            attributes["name"] = name
        self.daemon.events.publish("image", action, image_id, attributes)

    # -- lookup -------------------------------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> Image:
        """dockerd's GetImage: a tag or digest reference, a full ID, or a unique ID prefix."""
        ref = parse_any(ref_or_id)
        if isinstance(ref, str):
            if self.store.exists(ref):
                return self._with_tags(self.store.get(ref))
            raise NotFound(f"No such image: {ref}")
        try:
            image_id = self.tags.get(ref)
            if self.store.exists(image_id):
                return self._with_tags(self.store.get(image_id))
        except NotFound:
            pass
        try:
            return self._with_tags(self.store.get(self.store.search(ref_or_id)))
        except NotFound:
            raise no_such_image(ref) from None

    def _with_tags(self, image: Image) -> Image:
        image.repo_tags = [r.familiar for r in self.tags.references(image.id) if r.tag is not None]
        return image

    def get(self, ref_or_id: str) -> Image:
        return self.resolve(ref_or_id)

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve(ref_or_id)
        except (NotFound, InvalidParameter):
            return False
        return True

    def _repo_lists(self, image_id: str) -> tuple[list[str], list[str]]:
        tags, digests = [], []
        for ref in self.tags.references(image_id):
            if ref.digest is not None:
                digests.append(ref.familiar)
            elif ref.tag is not None:
                tags.append(ref.familiar)
        return tags, digests

    # -- import -----------------------------------------------------------------------------------------------------

    def import_image(
        self,
        src: str,
        stream: BinaryIO | None,
        *,
        repo: str = "",
        tag: str = "",
        message: str = "",
        changes: list[str] | None = None,
        os_name: str = "",
        emit: Emit | None = None,
    ) -> str:
        """``POST /images/create?fromSrc=``: a tar (stdin or URL) becomes a one-layer image."""
        emit = emit or (lambda m: None)
        os_name = os_name or "linux"
        new_ref = None
        if repo:
            new_ref = parse_normalized_named(repo)
            if new_ref.canonical:
                raise InvalidParameter("cannot import digest reference")
            if tag:
                new_ref = new_ref.with_tag(tag)
        config = change_rules.apply({}, changes or [])
        response = None
        if src == "-":
            if stream is None:
                raise InvalidParameter("no data to import")
            source: BinaryIO = stream
        else:
            url = src if "://" in src else "http://" + src
            parsed = urllib.parse.urlparse(url)
            if parsed.scheme not in ("http", "https"):
                raise InvalidParameter(f"unsupported URL scheme: {parsed.scheme}")
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except urllib.error.HTTPError as exc:
                body = exc.read().strip().decode(errors="replace")
                message = f"failed to GET {url} with status {exc.code} {exc.reason}: {body}"
                errors = {404: NotFound, 400: InvalidParameter, 401: Unauthorized, 403: Forbidden}
                raise errors.get(exc.code, SystemError)(message) from None
            except OSError as exc:
                raise InvalidParameter(f"Get {url!r}: {exc}") from None
            emit({"status": f"Downloading from {url}"})
            source = _ProgressReader(response, int(response.headers.get("Content-Length") or -1), emit, "Importing")
        message = message or f"Imported from {src}"
        try:
            layer = self.layers.register(source)
        finally:
            if response is not None:
                response.close()
        self._layer_created(layer.chain_id)
        try:
            created = gojson.now()
            raw = gojson.image_config_bytes(
                {
                    "architecture": ARCH,
                    "comment": message,
                    "config": gojson.config(config),
                    "container_config": gojson.config({}),
                    "created": created,
                    "docker_version": DOCKER_VERSION,
                    "history": [gojson.history_entry(created, comment=message)],
                    "os": os_name,
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                }
            )
            image, _ = self.store.create(raw)
        finally:
            for chain in self.layers.release(layer.chain_id):
                self._layer_removed(chain)
        if new_ref is not None:
            self.tag_reference(image.id, new_ref)
        self._event("import", image.id, image.id)
        emit({"status": image.id})
        return image.id

    # -- tags ------------------------------------------------------------------------------------------------------

    def tag(self, name: str, repo: str, tag: str = "") -> str:
        """``POST /images/{name}/tag``; returns the familiar reference."""
        image = self.resolve(name)
        new_ref = parse_normalized_named(repo)
        if tag:
            new_ref = new_ref.trim().with_tag(tag)
        self.tag_reference(image.id, new_ref)
        return new_ref.tag_name_only().familiar

    def tag_reference(self, image_id: str, ref: Reference) -> None:
        if ref.canonical:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        self.tags.add(ref, image_id, force=True)
        self.store.set_last_updated(image_id)
        self._event("tag", image_id, ref.tag_name_only().familiar)

    # -- list and inspect ---------------------------------------------------------------------------------------

    def list_images(
        self, filters: Filters | None = None, all: bool = False, extra: bool = False
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
            before = self.resolve(value)
        for value in filters.get("since"):
            since = self.resolve(value)
        selected = self.store.heads() if dangling_only else self.store.all()
        summaries: list[tuple[Image, dict[str, Any]]] = []
        for image_id, image in selected.items():
            if before is not None and image.created_ns >= before.created_ns:
                continue
            if since is not None and image.created_ns <= since.created_ns:
                continue
            if "label" in filters and not filters.match_labels(image.labels):
                continue
            try:
                size = self.layers.size(image.top_layer)
            except NotFound:
                continue
            summary = self._summary(image, size)
            tags: list[str] | None = None
            digests: list[str] | None = None
            for ref in self.tags.references(image_id):
                if "reference" in filters:
                    from engine.images.references import familiar_match

                    if not any(familiar_match(p, ref) for p in filters.get("reference")):
                        continue
                if ref.digest is not None:
                    digests = [*(digests or []), ref.familiar]
                if ref.tag is not None:
                    tags = [*(tags or []), ref.familiar]
            if digests is None and tags is None:
                if all or not self.store.children(image_id):
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
            self._add_extra(summaries)
        summaries.sort(key=lambda pair: pair[0].created_ns, reverse=True)
        return [s for _, s in summaries]

    def _summary(self, image: Image, size: int) -> dict[str, Any]:
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

    def _add_extra(self, summaries: list[tuple[Image, dict[str, Any]]]) -> None:
        refs: dict[str, int] = {}
        for image, summary in summaries:
            summary["Containers"] = len(self._users(image.id))
            for chain in image.chain_ids:
                refs[chain] = refs.get(chain, 0) + 1
        for image, summary in summaries:
            shared = 0
            for chain in image.chain_ids:
                if refs.get(chain, 0) > 1:
                    shared += self.layers.get(chain).size
            summary["SharedSize"] = shared

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /images/{name}/json`` (dockerd's LookupImage)."""
        try:
            image = self.resolve(name)
        except NotFound as exc:
            raise NotFound(f"no such image: {name}: {exc.message}") from None
        tags, digests = self._repo_lists(image.id)
        size, metadata = 0, {}
        if image.top_layer:
            size = self.layers.size(image.top_layer)
            metadata = self.layers.metadata(image.top_layer)
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
        out["GraphDriver"] = {"Data": metadata or None, "Name": self.layers.driver.name}
        rootfs: dict[str, Any] = {"Type": "layers"}
        if image.diff_ids:
            rootfs["Layers"] = list(image.diff_ids)
        out["RootFS"] = rootfs
        out["Metadata"] = {"LastTagTime": image.last_updated or ZERO_TIME}
        return out

    def history(self, name: str) -> list[dict[str, Any]]:
        """``GET /images/{name}/history``: newest first; IDs only where a local image is known."""
        image = self.resolve(name)
        items: list[dict[str, Any]] = []
        layer_index = 0
        for entry in image.history:
            size = 0
            if not entry.get("empty_layer"):
                if layer_index >= len(image.chain_ids):
                    raise InvalidParameter("too many non-empty layers in History section")
                size = self.layers.get(image.chain_ids[layer_index]).size
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
            tags = [r.familiar for r in self.tags.references(current.id) if r.tag is not None]
            item["Tags"] = tags or None
            parent = current.parent
            current = self.store.get(parent) if parent and self.store.exists(parent) else None
        return items

    # -- remove -------------------------------------------------------------------------------------------------

    def delete(self, name: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """``DELETE /images/{name}``: untag, or delete the image (and untagged parents unless ``noprune``)."""
        image_id = self.resolve(name).id
        with self._image_locks(image_id):
            if not self.store.exists(image_id):  # removed while we waited
                raise no_such_image(parse_any(name))
            return self._delete(name, image_id, force, prune)

    def _delete(self, name: str, image_id: str, force: bool, prune: bool) -> list[dict[str, str]]:
        records: list[dict[str, str]] = []
        repo_refs = self.tags.references(image_id)
        removed_ref = False
        if not _is_id_prefix(image_id, name):
            if not force and _single_reference(repo_refs):
                users = self._users(image_id)
                if users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name}" (must force) - '
                        f"container {users[0][0][:12]} is using its referenced image {short_id(image_id)}"
                    )
            parsed = parse_normalized_named(name).tag_name_only()
            self.tags.delete(parsed)
            records.append({"Untagged": parsed.familiar})
            self._event("untag", image_id, image_id)
            repo_refs = self.tags.references(image_id)
            if not parsed.canonical and not any(r.digest is None and r.name == parsed.name for r in repo_refs):
                remaining = []
                for ref in repo_refs:
                    if ref.digest is not None and ref.name == parsed.name:
                        self.tags.delete(ref)
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
                self.tags.delete(ref)
                records.append({"Untagged": ref.tag_name_only().familiar})
                self._event("untag", image_id, image_id)
        self._delete_helper(image_id, records, force, prune, quiet=removed_ref)
        return records

    def _conflict(self, image_id: str, mask: int) -> ImageDeleteConflict | None:
        if mask & CONFLICT_CHILD and self.store.children(image_id):
            return ImageDeleteConflict(image_id, "image has dependent child images", hard=True)
        users = self._users(image_id) if mask & (CONFLICT_RUNNING | CONFLICT_STOPPED) else []
        if mask & CONFLICT_RUNNING:
            running = [cid for cid, is_running in users if is_running]
            if running:
                return ImageDeleteConflict(
                    image_id, f"image is being used by running container {running[0][:12]}", hard=True, used=True
                )
        if mask & CONFLICT_REFERENCE and self.tags.references(image_id):
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
            dangling = not self.tags.references(image_id)
            if quiet and (not dangling or conflict.used):
                return
            raise conflict
        image = self.store.get(image_id)
        parent = image.parent
        for ref in self.tags.references(image_id):
            self.tags.delete(ref)
            records.append({"Untagged": ref.tag_name_only().familiar})
            self._event("untag", image_id, image_id)
        removed_layers = self.store.delete(image_id)
        # dockerd logs it after the image is gone, so without the image's labels
        self.daemon.events.publish("image", "delete", image_id, {"name": image_id})
        records.append({"Deleted": image_id})
        records.extend({"Deleted": chain} for chain in removed_layers)
        for chain in removed_layers:
            self._layer_removed(chain)
        if prune and parent:
            with self._image_locks(parent):  # child before parent: the only nesting order, so no deadlock
                if self.store.exists(parent):
                    self._delete_helper(parent, records, False, True, True)

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
        candidates = self.store.heads() if dangling_only else self.store.all()
        sizes = {chain: layer.size for chain, layer in self.layers.all().items()}
        top: list[str] = []
        for image_id, image in candidates.items():
            if not self.tags.references(image_id) and self.store.children(image_id):
                continue
            if until is not None and image.created_ns > until:
                continue
            if not filters.match_labels(image.labels):
                continue
            top.append(image_id)
        deleted: list[dict[str, str]] = []
        for image_id in top:
            if not self.store.exists(image_id):
                continue
            refs = self.tags.references(image_id)
            try:
                if refs:
                    if dangling_only and any(r.tag is not None for r in refs):
                        continue
                    for ref in refs:
                        with contextlib.suppress(NotFound):
                            deleted += self.delete(str(ref), force=False, prune=True)
                else:
                    deleted += self.delete(image_id.partition(":")[2], force=False, prune=True)
            except Conflict:
                continue
            except EngineError as exc:
                log.warning("failed to prune image %s: %s", image_id, exc.message)
        reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        self.daemon.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- save and load -------------------------------------------------------------------------------------------

    def save_plan(self, names: list[str]) -> list[tarball.SaveImage]:
        """Resolve ``docker save`` names (dockerd's parseNames); errors surface before any byte is sent."""
        plan: dict[str, tarball.SaveImage] = {}

        def add(image_id: str, ref: Reference | None) -> None:
            if image_id not in plan:
                image = self.store.get(image_id)
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
                if not self.store.exists(ref):
                    raise no_such_image(ref)
                add(ref, None)
                continue
            if ref.familiar_name == "sha256":
                add(self.store.search(name), None)
                continue
            if ref.name_only:
                assocs = self.tags.references_by_name(ref)
                for assoc_ref, image_id in assocs:
                    add(image_id, assoc_ref)
                if not assocs:
                    add(self.store.search(name), None)
                continue
            add(self.tags.get(ref), ref)
        held: list[str] = []
        try:
            for image in plan.values():
                if image.chain_ids:
                    self.layers.acquire(image.chain_ids[-1])
                    held.append(image.chain_ids[-1])
        except BaseException:
            self._release_all(held)
            raise
        return list(plan.values())

    def save(self, plan: list[tarball.SaveImage], out: IO[bytes]) -> None:
        """``GET /images/get``: write the docker-archive of a resolved plan, then release the layer
        references :meth:`save_plan` took (so a concurrent rmi cannot pull layers from under the save)."""
        try:
            tarball.write_archive(plan, out, self.layers)
        finally:
            self.release_plan(plan)
        for image in plan:
            self._event("save", image.id, image.id)

    def release_plan(self, plan: list[tarball.SaveImage]) -> None:
        self._release_all([image.chain_ids[-1] for image in plan if image.chain_ids])

    def _release_all(self, chains: list[str]) -> None:
        for chain in chains:
            for removed in self.layers.release(chain):
                self._layer_removed(removed)

    def load(self, stream: BinaryIO, emit: Emit, quiet: bool = True) -> list[str]:
        """``POST /images/load``: a docker-archive or an OCI layout; returns the loaded image IDs."""
        work = self.tmp / f"load-{secrets.token_hex(8)}"
        try:
            archive = tarball.unpack(stream, work)
            images = tarball.read_archive(archive, ARCH)
            loaded: list[str] = []
            parent_links: list[tuple[str, str]] = []
            for item in images:
                image_id = self._load_one(archive, item, emit, quiet)
                loaded.append(image_id)
                if item.parent:
                    parent_links.append((image_id, item.parent))
            for image_id, parent in parent_links:
                if parent in loaded and parent != image_id and self.store.exists(parent):
                    self.store.set_parent(image_id, parent)
            return loaded
        finally:
            tarball.cleanup(work)

    def _load_one(self, archive: tarball.Unpacked, item: tarball.ArchiveImage, emit: Emit, quiet: bool) -> str:
        from engine.images.store import parse_config

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
                from engine.images.layers import chain_id as make_chain

                chain = make_chain(parent, diff_id)
                if self.layers.exists(chain):
                    self.layers.acquire(chain)
                    held.append(chain)
                else:
                    size = archive.size(path)
                    blob_digest = item.layer_digests[i] if i < len(item.layer_digests) else None
                    with archive.open(path) as f:
                        hashing = _HashingReader(f)
                        reader: BinaryIO = hashing  # type: ignore[assignment]
                        if not quiet:
                            reader = _ProgressReader(
                                hashing, size, emit, "Loading layer", diff_id.partition(":")[2][:12]
                            )  # type: ignore[assignment]
                        layer = self.layers.register(reader, parent)
                        hashing.drain()
                    held.append(layer.chain_id)
                    self._layer_created(layer.chain_id)
                    if blob_digest and hashing.digest() != blob_digest:
                        raise InvalidParameter(f"layer blob {blob_digest} does not match its digest")
                    if layer.diff_id != diff_id:
                        raise InvalidParameter(
                            f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"'
                        )
                parent = chain
            image, _ = self.store.create(item.config)
        finally:
            for chain in held:
                self.layers.release(chain)
        tagged = 0
        for text in item.tags:
            try:
                ref = parse_normalized_named(text)
            except InvalidParameter:
                raise InvalidParameter(f'invalid tag "{text}"') from None
            if ref.tag is None or ref.canonical:
                raise InvalidParameter(f'invalid tag "{text}"')
            try:
                previous = self.tags.get(ref)
            except NotFound:
                previous = None
            if previous is not None and previous != image.id:
                emit(
                    {
                        "stream": f"The image {ref.familiar} already exists, renaming the old one with ID "
                        f"{previous} to empty string\n"
                    }
                )
            self.tags.add(ref, image.id, force=True)  # no tag event, no LastTagTime: as dockerd's load
            emit({"stream": f"Loaded image: {ref.familiar}\n"})
            tagged += 1
        self._event("load", image.id, image.id)
        if tagged == 0:
            emit({"stream": f"Loaded image ID: {image.id}\n"})
        return image.id

    # -- commit -------------------------------------------------------------------------------------------------

    def commit(
        self,
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
        parent = self.store.get(parent_image_id) if parent_image_id else None
        parent_chain = parent.top_layer if parent else None
        reader = _PipeFromWriter(lambda out: self.layers.rw_diff(container_id, out))
        try:
            layer = self.layers.register(reader, parent_chain)
        finally:
            reader.close()
        try:
            self._layer_created(layer.chain_id)
            image_config = child_image_config(
                parent,
                layer.diff_id,
                config=new_config,
                container_config=container_config,
                container_id=container_id,
                author=author,
                comment=comment,
            )
            image, _ = self.store.create(image_config)
        finally:
            for chain in self.layers.release(layer.chain_id):
                self._layer_removed(chain)
        if parent_image_id:
            self.store.set_parent(image.id, parent_image_id)
        if new_ref is not None:
            self.tag_reference(image.id, new_ref)
        return image.id

    # -- pull / push / login (engine.distribution) -------------------------------------------------------------

    def _registry_options(self) -> dict[str, Any]:
        config = self.daemon.config
        return {"insecure_registries": list(config.get("insecure-registries") or [])}

    def pull(
        self,
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

        config = self.daemon.config
        mirrors = list(config.get("registry-mirrors") or []) if ref.domain == "docker.io" else []
        puller = Puller(
            self,
            auth or AuthConfig(),
            Platform.parse(platform, ARCH),
            emit,
            concurrency=int(config.get("max-concurrent-downloads") or 3),
            attempts=int(config.get("max-download-attempts") or 5),
            **self._registry_options(),
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

    def push(self, name: str, tag: str = "", *, auth: AuthConfig | None = None, emit: Emit | None = None) -> None:
        """``POST /images/{name}/push``: one tag, or every local tag of the repository when ``tag`` is empty."""
        ref = parse_normalized_named(name)
        if tag:
            ref = ref.with_tag(tag)
        if ref.tag is not None:
            try:
                tags = [(ref, self.tags.get(ref))]
            except NotFound:
                raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") from None
        else:
            tags = [(r, image_id) for r, image_id in self.tags.references_by_name(ref) if r.tag is not None]
            if not tags:
                raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        if ref.domain == "docker.io":
            (emit or (lambda _m: None))({"status": f"The push refers to repository [{ref.name}]"})
            raise SystemError(
                'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host'
            )
        from engine.distribution.push import Pusher

        config = self.daemon.config
        pusher = Pusher(
            self,
            auth or AuthConfig(),
            emit,
            concurrency=int(config.get("max-concurrent-uploads") or 5),
            **self._registry_options(),
        )
        pusher.push(ref.trim(), tags)

    def login(self, auth: AuthConfig) -> str:
        """``POST /auth``: "Login Succeeded" or dockerd's error."""
        from engine.distribution.login import login

        return login(auth, self._registry_options()["insecure_registries"])

    # -- system ---------------------------------------------------------------------------------------------------------

    def info_fields(self) -> dict[str, Any]:
        return {"Images": len(self.store.all())}

    def disk_usage(self) -> dict[str, Any]:
        images = self.list_images(extra=True)
        counted: dict[str, int] = {}
        for image in self.store.all().values():
            if not self.tags.references(image.id) and self.store.children(image.id):
                continue
            for chain in image.chain_ids:
                counted[chain] = 1
        layers = self.layers.all()
        return {"LayersSize": sum(layers[c].size for c in counted if c in layers), "Images": images}

    def _layer_created(self, chain: str) -> None:
        with contextlib.suppress(Exception):
            layer = self.layers.get(chain)
            self.daemon.pm.hook.engine_storage_layer_created(
                driver_name=self.layers.driver.name, chain_id=chain, diff_id=layer.diff_id, size=layer.size
            )

    def _layer_removed(self, chain: str) -> None:
        with contextlib.suppress(Exception):
            self.daemon.pm.hook.engine_storage_layer_removed(driver_name=self.layers.driver.name, chain_id=chain)

    def stop(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- helpers -----------------------------------------------------------------------------------------------------------


def is_digest(text: str) -> bool:
    from engine.images.references import is_digest as check

    return check(text)


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


class _HashingReader:
    """sha256 of everything read through it (an OCI layer blob's digest, compressed as stored)."""

    def __init__(self, source: BinaryIO) -> None:
        import hashlib

        self.source = source
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self._sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


class _ProgressReader:
    """Reports ``progressDetail`` messages while a stream is read (import from URL, load)."""

    def __init__(self, source: Any, total: int, emit: Emit, action: str, id: str = "") -> None:
        self.source, self.total, self.emit, self.action, self.id = source, total, emit, action, id
        self.current = 0
        self._last = 0.0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.current += len(data)
        now = time.monotonic()
        if not data or now - self._last > 0.1:
            self._last = now
            message: dict[str, Any] = {
                "status": self.action,
                "progressDetail": {"current": self.current, **({"total": self.total} if self.total > 0 else {})},
                "progress": progress_bar(self.current, self.total),
            }
            if self.id:
                message["id"] = self.id
            self.emit(message)
        return data

    def readable(self) -> bool:
        return True


class _PipeFromWriter:
    """A readable stream fed by ``produce(out)`` running in its own thread (diff -> register)."""

    def __init__(self, produce: Callable[[IO[bytes]], None]) -> None:
        import os

        r, w = os.pipe()
        self._reader = os.fdopen(r, "rb", buffering=1 << 16)
        self._error: BaseException | None = None

        def run() -> None:
            try:
                with os.fdopen(w, "wb", buffering=1 << 16) as out:
                    produce(out)
            except BaseException as exc:  # surfaced to the reader at EOF
                self._error = exc

        self._thread = threading.Thread(target=run, name="rw-diff", daemon=True)
        self._thread.start()

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        if not data:
            self._thread.join()
            if self._error is not None:
                raise self._error
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._reader.close()
        self._thread.join(timeout=60)
