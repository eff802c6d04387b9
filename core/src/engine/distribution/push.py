"""``docker push`` to a v2 registry, with dockerd 20.10's progress messages.

Each layer goes up as a gzip of its tar, made deterministically (gzip mtime 0, no name, fixed level,
the tar rebuilt byte for byte from its tar-split record) so pushing the same image twice gives the
same blob and manifest digests. Before compressing, blobs this layer is already known under
(:mod:`.metadata`) are checked on the target repository (HEAD: "Layer already exists") or mounted
from another repository on the same registry ("Mounted from ..."). Then the config, then a schema2
manifest, whose digest becomes a ``name@digest`` reference of the image.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.distribution import errors
from engine.distribution.auth import AuthConfig
from engine.distribution.client import MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_SCHEMA2, Registry, Repository
from engine.distribution.metadata import BlobSource, V2Metadata
from engine.distribution.progress import Emit, MeteredReader, Progress
from engine.distribution.target import ImageTarget, StoredImage
from engine.errors import Conflict
from engine.reference import Reference

GZIP_LEVEL = 6
UPLOAD_ATTEMPTS = 5


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    size: int
    digest: str

    def json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


class _HashingWriter:
    """Counts and hashes what is written through it (the compressed blob)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha.update(chunk)
        self.size += len(chunk)
        self.out.write(chunk)
        return len(chunk)

    def flush(self) -> None:
        self.out.flush()


def manifest_bytes(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """A schema2 manifest as dockerd marshals it (MarshalIndent with three spaces)."""
    body = {
        "schemaVersion": 2,
        "mediaType": MEDIA_SCHEMA2,
        "config": config.json(),
        "layers": [layer.json() for layer in layers],
    }
    return json.dumps(body, indent=3).encode()


class Pusher:
    def __init__(
        self,
        images: ImageTarget,
        metadata_dir: Path,
        auth: AuthConfig,
        emit: Emit | None,
        *,
        insecure_registries: list[str],
        concurrency: int,
    ) -> None:
        self.images = images
        self.auth = auth
        self.progress = Progress(emit)
        self.insecure_registries = insecure_registries
        self.concurrency = max(1, concurrency)
        self.metadata = V2Metadata(metadata_dir)

    def push(self, name: Reference, tags: list[tuple[Reference, str]]) -> None:
        """Push each ``(tagged reference, image id)`` of one repository."""
        self.progress.message("", f"The push refers to repository [{name.name}]")
        registry = Registry(name.domain, self.auth, self.insecure_registries)
        repo = Repository(registry, name.path, "pull,push")
        for ref, image_id in tags:
            self._push_one(repo, ref, self.images.image(image_id))

    def _push_one(self, repo: Repository, ref: Reference, image: StoredImage) -> None:
        diff_ids, chains = list(image.diff_ids), list(image.chain_ids)
        shorts = [d.partition(":")[2][:12] for d in diff_ids]
        for short in shorts:
            self.progress.update(short, "Preparing")
        for i, short in enumerate(shorts):
            if i >= self.concurrency:
                self.progress.update(short, "Waiting")
        work = self.images.work_dir / f"push-{secrets.token_hex(8)}"
        work.mkdir(mode=0o700)
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push") as pool:
                futures = [
                    pool.submit(self._push_layer, repo, diff, chain, short, work)
                    for diff, chain, short in zip(diff_ids, chains, shorts, strict=True)
                ]
                layers = [f.result() for f in futures]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        config = Descriptor(MEDIA_CONFIG, len(image.raw), image.id)
        if repo.blob_size(image.id) is None:
            self._upload(repo, None, lambda: io.BytesIO(image.raw), image.id, len(image.raw), "")
        manifest = manifest_bytes(config, layers)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        tag = ref.tag or "latest"
        repo.put_manifest(tag, manifest, MEDIA_SCHEMA2)
        try:
            self.images.add_reference(Reference(ref.domain, ref.path, None, digest), image.id)
        except Conflict:
            pass
        self.progress.message("", f"{tag}: digest: {digest} size: {len(manifest)}")
        self.progress.send({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}})
        self.images.event("push", ref)

    # -- one layer ------------------------------------------------------------------------------------------

    def _push_layer(self, repo: Repository, diff_id: str, chain: str, short: str, work: Path) -> Descriptor:
        here = repo.registry.host + "/" + repo.path
        known = [s for s in self.metadata.sources(diff_id) if s.host == repo.registry.host]
        for source in known:
            size = repo.blob_size(source.digest)
            if size is not None:
                self.progress.update(short, "Layer already exists")
                self.metadata.add(diff_id, BlobSource(source.digest, here))
                return Descriptor(MEDIA_LAYER_GZIP, size, source.digest)
        location: str | None = None
        for source in known:
            if source.path == repo.path:
                continue
            try:
                location = repo.mount(source.digest, source.path)
            except errors.RegistryError:
                continue
            if location is None:
                size = repo.blob_size(source.digest)
                if size is not None:
                    self.progress.update(short, f"Mounted from {source.path}")
                    self.metadata.add(diff_id, BlobSource(source.digest, here))
                    return Descriptor(MEDIA_LAYER_GZIP, size, source.digest)
            break  # a 202: the registry opened an upload for us instead
        path, digest, size = self._compress(chain, work)
        if repo.blob_size(digest) is not None:
            self.progress.update(short, "Layer already exists")
        else:
            self._upload(repo, location, functools.partial(path.open, "rb"), digest, size, short)
            self.progress.update(short, "Pushed")
        self.metadata.add(diff_id, BlobSource(digest, here))
        return Descriptor(MEDIA_LAYER_GZIP, size, digest)

    def _upload(
        self,
        repo: Repository,
        location: str | None,
        source: Callable[[], IO[bytes]],
        digest: str,
        size: int,
        short: str,
    ) -> None:
        """One monolithic upload, retried as dockerd does (5 attempts, "Retrying in N seconds"); progress
        under the layer's ``short`` ID (none for the config)."""
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                if location is None:
                    location = repo.start_upload()
                with source() as blob:
                    body: Any = MeteredReader(blob, self.progress.meter(short, "Pushing", size)) if short else blob
                    repo.finish_upload(location, digest, body, size)
                return
            except (errors.TransportError, errors.RegistryError) as exc:
                if attempt == UPLOAD_ATTEMPTS or (isinstance(exc, errors.RegistryError) and exc.http_status < 500):
                    raise
                location = None  # a failed upload session is not resumed: start another
                for left in range(attempt, 0, -1):
                    if short:
                        self.progress.update(short, f"Retrying in {left} second{'s' if left > 1 else ''}")
                    time.sleep(1)

    def _compress(self, chain: str, work: Path) -> tuple[Path, str, int]:
        path = work / chain.partition(":")[2]
        with open(path, "wb") as out:
            hashing = _HashingWriter(out)
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, compresslevel=GZIP_LEVEL, mtime=0) as gz:  # type: ignore[arg-type]
                self.images.export_layer(chain, gz)  # type: ignore[arg-type]
        return path, "sha256:" + hashing.sha.hexdigest(), hashing.size
