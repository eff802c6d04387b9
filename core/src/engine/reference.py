"""Image references as Docker spells them (distribution/reference).

Grammar and normalisation: ``busybox`` is ``docker.io/library/busybox:latest``; a first path
component with a ``.`` or ``:`` (or ``localhost``) is a registry; ``name@sha256:...`` is a digest
(canonical) reference. Below the services: the image store (:mod:`engine.images`) and the registry
client (:mod:`engine.distribution`) both speak it, neither owns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidParameter

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
