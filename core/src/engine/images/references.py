"""Image references as Docker spells them, and the tag store (``repositories.json``).

Grammar and normalisation follow distribution/reference: ``busybox`` is
``docker.io/library/busybox:latest``; a first path component with a ``.`` or ``:`` (or
``localhost``) is a registry; ``name@sha256:...`` is a digest (canonical) reference.
The store keeps dockerd's on-disk shape: ``{"Repositories": {familiar-name: {familiar-ref: image-id}}}``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.drivers.records import read_json, write_json
from engine.errors import Conflict, InvalidParameter, NotFound

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"  # distribution says [-]*; an empty separator only splits a run of [a-z0-9] (same language), and backtracking regexes blow up on it
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_ANCHORED_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_COMPONENT}(?:/{_COMPONENT})*)$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")

ERR_FORMAT = "invalid reference format"
ERR_LOWERCASE = "invalid reference format: repository name must be lowercase"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"


class ReferenceError(InvalidParameter):
    """A string is not a valid reference (HTTP 400 with distribution/reference's wording)."""


@dataclass(frozen=True)
class Reference:
    """A normalised named reference: ``domain/path`` plus an optional tag and/or digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short repository name users see, e.g. ``busybox`` or ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_PREFIX) :]
            return path
        return self.name

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def familiar(self) -> str:
        """The familiar string, e.g. ``busybox:latest`` or ``busybox@sha256:...``."""
        return self.familiar_name + self._suffix()

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    @property
    def canonical(self) -> bool:
        return self.digest is not None

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise ReferenceError("invalid tag format")
        return Reference(self.domain, self.path, tag, None)

    def tag_name_only(self) -> Reference:
        """dockerd's TagNameOnly: a bare name gets ``:latest``."""
        return Reference(self.domain, self.path, DEFAULT_TAG, None) if self.name_only else self

    def trim(self) -> Reference:
        return Reference(self.domain, self.path)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized_named(text: str) -> Reference:
    """ParseNormalizedNamed: a familiar or full reference; IDs and bad names are refused."""
    if _IDENTIFIER_RE.match(text):
        raise ReferenceError(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(text)
    tag_sep = remainder.find(":")
    repo_part = remainder[:tag_sep] if tag_sep > -1 else remainder
    at = repo_part.find("@")
    if at > -1:
        repo_part = repo_part[:at]
    if repo_part.lower() != repo_part:
        raise ReferenceError(ERR_LOWERCASE)
    return _parse(f"{domain}/{remainder}")


def _parse(text: str) -> Reference:
    m = _REFERENCE_RE.match(text)
    if m is None:
        if not text:
            raise ReferenceError("repository name must have at least one component")
        if _REFERENCE_RE.match(text.lower()):
            raise ReferenceError("repository name must be lowercase")
        raise ReferenceError(ERR_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(ERR_NAME_TOO_LONG)
    nm = _ANCHORED_NAME_RE.match(name)
    if nm is None:
        raise ReferenceError(ERR_FORMAT)
    domain, path = nm.group(1) or "", nm.group(2)
    if not domain:
        raise ReferenceError(ERR_FORMAT)
    if digest is not None and not _SHA256_RE.match(digest):
        if digest.startswith("sha256:"):
            raise ReferenceError("invalid checksum digest length")
        raise ReferenceError("unsupported digest algorithm")
    return Reference(domain, path, tag, digest)


def parse_any(text: str) -> Reference | str:
    """ParseAnyReference: a 64-hex ID or ``sha256:<64 hex>`` gives the digest string, else a Reference."""
    if _IDENTIFIER_RE.match(text):
        return "sha256:" + text
    if _SHA256_RE.match(text):
        return text
    return parse_normalized_named(text)


def familiar_match(pattern: str, ref: Reference) -> bool:
    """FamiliarMatch: shell-style ``pattern`` against the familiar string, or the familiar name."""
    import fnmatch

    def match(p: str, s: str) -> bool:
        # path.Match: '*' does not cross '/'
        regex = fnmatch.translate(p).replace(".*", "[^/]*")
        return re.match(regex, s) is not None

    return match(pattern, ref.familiar) or match(pattern, ref.familiar_name)


def is_digest(text: str) -> bool:
    return bool(_DIGEST_RE.match(text))


def short_id(image_id: str) -> str:
    """``sha256:abcdef...`` -> the 12-hex short form."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


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
