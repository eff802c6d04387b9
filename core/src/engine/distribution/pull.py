"""``docker pull`` from a v2 registry, with dockerd 20.10's progress messages.

The manifest (schema2 or OCI; an index or manifest list is narrowed to the wanted platform) names a
config blob and compressed layer blobs. Layers whose chain ID the layer store already has are
"Already exists"; the others download concurrently (``max-concurrent-downloads``, retried
``max-download-attempts`` times), each checked against its digest, then are registered bottom-up
(each needs its parent) and checked against the config's diff IDs. The config digest is the image ID.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shutil
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.chainid import chain_ids
from engine.distribution import errors
from engine.distribution.auth import AuthConfig
from engine.distribution.client import (
    MEDIA_LIST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    MEDIA_SCHEMA2,
    Registry,
    Repository,
)
from engine.distribution.metadata import BlobSource, V2Metadata
from engine.distribution.progress import Emit, MeteredReader, Progress
from engine.distribution.target import ImageTarget
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from engine.reference import Reference

log = logging.getLogger(__name__)

CHUNK = 1 << 16
NOT_FOUND_CODES = ("DENIED", "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str, default_arch: str) -> Platform:
        if not text:
            return cls("linux", default_arch)
        parts = text.lower().split("/")
        if parts[0] != "linux":
            raise InvalidParameter(f'"{text}": operating system is not supported')
        arch = parts[1] if len(parts) > 1 and parts[1] else default_arch
        return cls("linux", arch, parts[2] if len(parts) > 2 else "")

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass
class LayerJob:
    digest: str
    size: int
    diff_id: str
    chain: str
    short: str
    exists: bool
    media_type: str = ""
    path: Path | None = None


def translate(exc: errors.RegistryError, ref: Reference) -> EngineError:
    """dockerd's translatePullError: denied / unknown manifest / unknown name are 404s with its wording."""
    if exc.code == "DENIED":
        return NotFound(
            f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
            f"'docker login': {exc.codes[0]}"
        )
    if exc.code == "MANIFEST_UNKNOWN":
        return NotFound(f"manifest for {ref.familiar} not found: {exc.codes[0]}")
    if exc.code == "NAME_UNKNOWN":
        return NotFound(f"repository {ref.familiar_name} not found: {exc.codes[0]}")
    return exc


class Puller:
    def __init__(
        self,
        images: ImageTarget,
        metadata_dir: Path,
        auth: AuthConfig,
        platform: Platform,
        emit: Emit | None,
        *,
        insecure_registries: list[str],
        concurrency: int,
        attempts: int,
    ) -> None:
        self.images = images
        self.auth = auth
        self.platform = platform
        self.progress = Progress(emit)
        self.insecure_registries = insecure_registries
        self.concurrency = max(1, concurrency)
        self.attempts = max(1, attempts)
        self.metadata = V2Metadata(metadata_dir)
        self.cancelled = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    # -- entry point ---------------------------------------------------------------------------------------

    def pull(self, ref: Reference, mirror: str = "") -> None:
        """Pull one tag or digest, or every tag of a bare name (``docker pull -a``); from ``mirror``
        (a ``registry-mirrors`` URL) instead of the reference's registry when given."""
        if mirror:
            parts = urllib.parse.urlsplit(mirror)
            registry = Registry(parts.netloc, self.auth, self.insecure_registries, scheme=parts.scheme)
        else:
            registry = Registry(ref.domain, self.auth, self.insecure_registries)
        repo = Repository(registry, ref.path)
        if ref.name_only:
            try:
                tags = repo.tags()
            except errors.RegistryError as exc:
                raise translate(exc, ref) from None
            changed = False
            for tag in tags:
                changed = self._pull_one(repo, ref.with_tag(tag)) or changed
            self._finish(ref, changed)
            return
        self._finish(ref, self._pull_one(repo, ref))

    def _finish(self, ref: Reference, changed: bool) -> None:
        if changed:
            self.progress.message("", f"Status: Downloaded newer image for {ref.familiar}")
        else:
            self.progress.message("", f"Status: Image is up to date for {ref.familiar}")

    # -- one manifest ----------------------------------------------------------------------------------------

    def _pull_one(self, repo: Repository, ref: Reference) -> bool:
        target = ref.digest or ref.tag or "latest"
        try:
            manifest, media, digest = repo.get_manifest(target)
            if media in (MEDIA_LIST, MEDIA_OCI_INDEX):
                child = self._select(json.loads(manifest))
                manifest, media, _ = repo.get_manifest(child)
        except errors.RegistryError as exc:
            raise translate(exc, ref) from None
        if media not in (MEDIA_SCHEMA2, MEDIA_OCI_MANIFEST):
            raise InvalidParameter(f"unsupported manifest media type and no default available: {media}")
        body = json.loads(manifest)
        self.progress.message(target, f"Pulling from {ref.path}")
        config_digest = str(body["config"]["digest"])
        image_id = config_digest
        if not self.images.has_image(image_id):
            self._fetch_image(repo, body, config_digest)
        changed = self._reference(ref, digest, image_id)
        self.progress.message("", f"Digest: {digest}")
        self.images.event("pull", ref)
        return changed

    def _select(self, index: dict[str, Any]) -> str:
        """The manifest for our platform in an index (variant only when asked for)."""
        want = self.platform
        for entry in index.get("manifests") or []:
            plat = entry.get("platform") or {}
            if plat.get("os") != want.os or plat.get("architecture") != want.architecture:
                continue
            if want.variant and plat.get("variant", "") != want.variant:
                continue
            return str(entry["digest"])
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")

    def _reference(self, ref: Reference, manifest_digest: str, image_id: str) -> bool:
        """Tag (when pulled by tag) and record ``name@digest``; True when a reference moved."""
        changed = False
        if ref.tag is not None and ref.digest is None:
            changed = self.images.image_of(ref) != image_id
            if changed:
                self.images.add_reference(ref, image_id)  # as dockerd's pull: no tag event, no LastTagTime
        digest_ref = Reference(ref.domain, ref.path, None, manifest_digest)
        if self.images.image_of(digest_ref) != image_id:
            try:
                self.images.add_reference(digest_ref, image_id)
            except Conflict:
                pass
            changed = changed or ref.digest is not None
        return changed

    # -- blobs -------------------------------------------------------------------------------------------------

    def _fetch_image(self, repo: Repository, manifest: dict[str, Any], config_digest: str) -> None:
        config = self._small_blob(repo, config_digest)
        data = json.loads(config)
        os_name = data.get("os") or "linux"
        if os_name != "linux":
            raise InvalidParameter(f"image operating system {os_name!r} cannot be used on this platform")
        diff_ids = [str(d) for d in (data.get("rootfs") or {}).get("diff_ids") or []]
        descriptors = [d for d in manifest.get("layers") or [] if not _foreign(d)]
        if len(diff_ids) != len(descriptors):
            raise InvalidParameter("layers from manifest don't match image configuration")
        chains = chain_ids(diff_ids)
        jobs = [
            LayerJob(
                str(d["digest"]),
                int(d.get("size") or 0),
                diff,
                chain,
                str(d["digest"]).partition(":")[2][:12],
                self.images.has_layer(chain),
                str(d.get("mediaType") or ""),
            )
            for d, diff, chain in zip(descriptors, diff_ids, chains, strict=True)
        ]
        self.cancelled.clear()
        work = self.images.work_dir / f"pull-{secrets.token_hex(8)}"
        work.mkdir(mode=0o700)
        held: list[str] = []
        try:
            futures = self._start_downloads(repo, jobs, work)
            parent: str | None = None
            for job in jobs:
                if job.exists or self.images.has_layer(job.chain):
                    self.images.hold_layer(job.chain)
                else:
                    futures[job.chain].result()
                    self._register(repo, job, parent)
                held.append(job.chain)
                parent = job.chain
            self.images.create_image(config)
        finally:
            self.cancelled.set()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            for chain in held:
                self.images.release_layer(chain)
            shutil.rmtree(work, ignore_errors=True)

    def _small_blob(self, repo: Repository, digest: str) -> bytes:
        for attempt in range(1, self.attempts + 1):
            try:
                with repo.open_blob(digest) as response:
                    data = response.read(16 << 20)
                break
            except (errors.TransportError, errors.RegistryError) as exc:
                if attempt == self.attempts or (isinstance(exc, errors.RegistryError) and exc.http_status < 500):
                    raise
                time.sleep(attempt * 0.5)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidParameter(f"image config verification failed for digest {digest}")
        return data

    def _start_downloads(self, repo: Repository, jobs: list[LayerJob], work: Path) -> dict[str, Future[None]]:
        pending = [j for j in jobs if not j.exists]
        for job in jobs:
            self.progress.update(job.short, "Already exists" if job.exists else "Pulling fs layer")
        futures: dict[str, Future[None]] = {}
        if not pending:
            return futures
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="pull")
        for i, job in enumerate(pending):
            if i >= self.concurrency:
                self.progress.update(job.short, "Waiting")
            job.path = work / job.chain.partition(":")[2]  # the same blob may sit at two depths
            futures[job.chain] = self._pool.submit(self._download, repo, job)
        return futures

    def _download(self, repo: Repository, job: LayerJob) -> None:
        assert job.path is not None
        for attempt in range(1, self.attempts + 1):
            if self.cancelled.is_set():
                raise EngineError("pull cancelled")
            try:
                self._download_once(repo, job)
                return
            except (errors.TransportError, errors.RegistryError, OSError, DigestMismatch) as exc:
                if attempt == self.attempts or (isinstance(exc, errors.RegistryError) and exc.http_status < 500):
                    raise
                delay = attempt
                log.info("download of %s failed (attempt %d): %s", job.digest, attempt, exc)
                for left in range(delay, 0, -1):
                    self.progress.update(job.short, f"Retrying in {left} second{'s' if left > 1 else ''}")
                    time.sleep(1)

    def _download_once(self, repo: Repository, job: LayerJob) -> None:
        assert job.path is not None
        sha = hashlib.sha256()
        with repo.open_blob(job.digest) as response, open(job.path, "wb") as out:
            total = int(response.headers.get("Content-Length") or job.size or 0)
            meter = self.progress.meter(job.short, "Downloading", total)
            while True:
                if self.cancelled.is_set():
                    raise EngineError("pull cancelled")
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
                out.write(chunk)
                meter.add(len(chunk))
            meter.add(0, final=True)
        self.progress.update(job.short, "Verifying Checksum")
        if "sha256:" + sha.hexdigest() != job.digest:
            raise DigestMismatch(f"filesystem layer verification failed for digest {job.digest}")
        self.progress.update(job.short, "Download complete")

    def _register(self, repo: Repository, job: LayerJob, parent: str | None) -> None:
        assert job.path is not None
        size = job.path.stat().st_size
        with open(job.path, "rb") as blob:
            reader = MeteredReader(blob, self.progress.meter(job.short, "Extracting", size))
            layer = self.images.register_layer(reader, parent)  # type: ignore[arg-type]
        if layer.diff_id != job.diff_id:
            self.images.discard_layer(layer.chain_id)
            raise InvalidParameter(f"layer {job.digest}: diff ID {layer.diff_id} does not match {job.diff_id}")
        self.images.announce_layer(layer.chain_id)  # register_layer() took the reference the caller holds
        if job.media_type.endswith("gzip"):  # push names every reused blob a gzip layer
            self.metadata.add(job.diff_id, BlobSource(job.digest, repo.registry.host + "/" + repo.path))
        self.progress.update(job.short, "Pull complete")


class DigestMismatch(EngineError):
    status = 500


def _foreign(descriptor: dict[str, Any]) -> bool:
    """Windows foreign layers are not pulled (and never on Linux images anyway)."""
    return "foreign" in str(descriptor.get("mediaType", ""))
