"""Which compressed blobs a layer is known under, per repository (dockerd's v2 metadata service).

A pull records ``diff ID -> (blob digest, source repository)``; a push reads it to skip or mount blobs
the registry already has without compressing the layer again, and records what it uploaded.
On disk as dockerd: ``<image root>/distribution/v2metadata-by-diffid/sha256/<hex>`` (a JSON list of
``{"Digest","SourceRepository","HMAC"}``) and ``diffid-by-digest/sha256/<hex>``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.drivers.records import write_atomic

MAX_ENTRIES = 50


@dataclass(frozen=True)
class BlobSource:
    digest: str
    repository: str  # the full name: 127.0.0.1:5000/test/busybox

    @property
    def host(self) -> str:
        return self.repository.partition("/")[0]

    @property
    def path(self) -> str:
        return self.repository.partition("/")[2]


class V2Metadata:
    def __init__(self, root: Path) -> None:
        self.by_diff = root / "v2metadata-by-diffid" / "sha256"
        self.by_digest = root / "diffid-by-digest" / "sha256"
        self._lock = threading.Lock()

    def sources(self, diff_id: str) -> list[BlobSource]:
        path = self.by_diff / diff_id.partition(":")[2]
        try:
            entries = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return []
        return [
            BlobSource(str(e.get("Digest")), str(e.get("SourceRepository")))
            for e in entries or []
            if isinstance(e, dict) and e.get("Digest") and e.get("SourceRepository")
        ]

    def add(self, diff_id: str, source: BlobSource) -> None:
        with self._lock:
            self.by_diff.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.by_digest.mkdir(parents=True, exist_ok=True, mode=0o700)
            entries = [s for s in self.sources(diff_id) if s != source] + [source]
            data = [{"Digest": s.digest, "SourceRepository": s.repository, "HMAC": ""} for s in entries]
            write_atomic(self.by_diff / diff_id.partition(":")[2], json.dumps(data[-MAX_ENTRIES:]))
            write_atomic(self.by_digest / source.digest.partition(":")[2], diff_id)
