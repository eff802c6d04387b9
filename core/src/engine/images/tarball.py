"""Image archives: ``docker save`` output exactly as dockerd 20.10 writes it, and reading archives back.

Save writes, in Go's directory-walk order, one ``<v1id>/{VERSION,json,layer.tar}`` directory per
layer (a layer whose diff ID was already written becomes a symlink to the first copy), the
config as ``<image-id>.json``, ``manifest.json`` and ``repositories``. v1 IDs are dockerd's:
sha256 of the layer's V1Image JSON with ``layer_id`` (the chain ID) and ``parent`` (the previous
v1 ID) added, keys sorted. Layer tars come from the layer store byte for byte, so their sha256
are the diff IDs again.

Loading unpacks the archive into a private directory first (never following its symlinks
outside of it) and hands back what it holds: a docker-archive (``manifest.json``) or an OCI
image layout (``oci-layout`` + ``index.json``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from engine.drivers import layers
from engine.errors import InvalidParameter
from engine.images import gojson

BLOCK = 512


# -- writing ----------------------------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def ustar_header(name: str, mode: int, size: int, mtime: int, typeflag: bytes, linkname: str = "") -> bytes:
    """A header as Go's archive/tar writes it for dockerd's export (USTAR, root:root, type bits in mode)."""
    raw_name = name.encode()
    prefix = b""
    if len(raw_name) > 100:
        cut = raw_name.rfind(b"/", 0, 156)
        prefix, raw_name = raw_name[:cut], raw_name[cut + 1 :]
    header = bytearray(BLOCK)
    header[0:100] = raw_name.ljust(100, b"\0")
    header[100:108] = _octal(mode, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(max(mtime, 0), 12)
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[157:257] = linkname.encode().ljust(100, b"\0")
    header[257:265] = b"ustar\x0000"
    header[265:297] = b"root".ljust(32, b"\0")
    header[297:329] = b"root".ljust(32, b"\0")
    header[329:337] = _octal(0, 8)
    header[337:345] = _octal(0, 8)
    header[345:500] = prefix.ljust(155, b"\0")
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


class TarOut:
    """Streams tar members to ``out`` (no record padding: Go ends with two zero blocks)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def dir(self, name: str, mtime: int) -> None:
        self.out.write(ustar_header(name.rstrip("/") + "/", 0o40755, 0, mtime, b"5"))

    def file(self, name: str, data: bytes, mtime: int) -> None:
        self.out.write(ustar_header(name, 0o100644, len(data), mtime, b"0"))
        self.out.write(data)
        self.out.write(b"\0" * ((-len(data)) % BLOCK))

    def file_from(self, name: str, size: int, mtime: int, write_payload: Any) -> None:
        self.out.write(ustar_header(name, 0o100644, size, mtime, b"0"))
        written = write_payload(self.out)
        if written != size:
            raise InvalidParameter(f"{name}: wrote {written} bytes, expected {size}")
        self.out.write(b"\0" * ((-size) % BLOCK))

    def symlink(self, name: str, target: str, mtime: int) -> None:
        self.out.write(ustar_header(name, 0o120777, 0, mtime, b"2", target))

    def close(self) -> None:
        self.out.write(b"\0" * (2 * BLOCK))


def v1_id(v1_image: dict[str, Any], chain: str, parent: str) -> str:
    """dockerd's v1.CreateID: sha256 of the V1Image JSON plus layer_id and parent, keys sorted."""
    data = {k: v for k, v in v1_image.items() if k != "id"}
    data["layer_id"] = chain
    if parent:
        data["parent"] = parent
    return "sha256:" + hashlib.sha256(gojson.dumps_bytes(dict(sorted(data.items())))).hexdigest()


@dataclass
class SaveImage:
    """One image to save: its ID, raw config, layer chain IDs and the tags to name it by."""

    id: str
    raw: bytes
    config: dict[str, Any]
    chain_ids: list[str]
    diff_ids: list[str]
    tags: list[tuple[str, str, str]] = field(default_factory=list)  # (familiar ref, familiar name, tag)
    parent: str = ""


@dataclass
class _LayerDir:
    v1id: str
    chain: str
    json: bytes
    mtime: int
    link_to: str | None  # v1 id of the directory holding the same diff


def plan_layers(images: list[SaveImage]) -> tuple[dict[str, _LayerDir], dict[str, list[str]]]:
    """Every layer directory the archive holds and, per image, its v1 IDs in order."""
    dirs: dict[str, _LayerDir] = {}
    by_diff: dict[str, str] = {}
    per_image: dict[str, list[str]] = {}
    for image in images:
        if not image.diff_ids:
            raise InvalidParameter("empty export - not implemented")
        created = gojson.unix_seconds(image.config.get("created"))
        parent = ""
        ids: list[str] = []
        for i, (chain, diff) in enumerate(zip(image.chain_ids, image.diff_ids, strict=True)):
            top = i == len(image.diff_ids) - 1
            source = image.config if top else {"created": "1970-01-01T00:00:00Z"}
            vid = v1_id(gojson.v1_image(source), chain, parent)
            hexid = vid.partition(":")[2]
            if hexid not in dirs:
                override: dict[str, Any] = {"id": hexid, "os": image.config.get("os") or ""}
                if parent:
                    override["parent"] = parent.partition(":")[2]
                body = gojson.dumps_bytes(gojson.v1_image(source, **override))
                dirs[hexid] = _LayerDir(hexid, chain, body, created, by_diff.get(diff))
                by_diff.setdefault(diff, hexid)
            ids.append(hexid)
            parent = vid
        per_image[image.id] = ids
    return dirs, per_image


def write_archive(images: list[SaveImage], out: IO[bytes], layers: Any) -> None:
    """Write the docker-archive of ``images``; ``layers`` gives ``tar_size(chain)`` and ``export(chain, out)``."""
    dirs, per_image = plan_layers(images)
    saved = {image.id for image in images}
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        ids = per_image[image.id]
        repo_tags = [ref for ref, _, _ in image.tags] or None
        for _, name, tag in image.tags:
            repositories.setdefault(name, {})[tag] = ids[-1]
        item: dict[str, Any] = {
            "Config": image.id.partition(":")[2] + ".json",
            "RepoTags": repo_tags,
            "Layers": [f"{v}/layer.tar" for v in ids],
        }
        if image.parent and image.parent in saved and image.parent != image.id:
            item["Parent"] = image.parent
        manifest.append(item)

    members: list[tuple[str, Any]] = [(hexid + "/", d) for hexid, d in dirs.items()]
    members += [(image.id.partition(":")[2] + ".json", image) for image in images]
    tar = TarOut(out)
    for name, what in sorted(members, key=lambda m: m[0].rstrip("/")):
        if isinstance(what, _LayerDir):
            tar.dir(name, what.mtime)
            tar.file(name + "VERSION", b"1.0", what.mtime)
            tar.file(name + "json", what.json, what.mtime)
            if what.link_to is not None:
                tar.symlink(name + "layer.tar", f"../{what.link_to}/layer.tar", what.mtime)
            else:
                chain = what.chain
                tar.file_from(
                    name + "layer.tar", layers.tar_size(chain), what.mtime, lambda o, c=chain: layers.export(c, o)
                )
        else:
            tar.file(name, what.raw, gojson.unix_seconds(what.config.get("created")))
    tar.file("manifest.json", (gojson.dumps(manifest) + "\n").encode(), 0)
    if repositories:
        tar.file("repositories", (gojson.dumps(repositories) + "\n").encode(), 0)
    tar.close()


# -- reading ----------------------------------------------------------------------------------------------


class Unpacked:
    """An archive unpacked into ``root``: regular files and directories only; symlinks are kept aside and
    resolved by :meth:`open`, which refuses anything that would leave the archive."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.links: dict[str, str] = {}

    def _clean(self, name: str) -> str:
        clean = posixpath.normpath("/" + name).lstrip("/")
        if clean in ("", "."):
            return ""
        return clean

    def resolve(self, name: str) -> str:
        path = self._clean(name)
        for _ in range(40):
            parts = path.split("/")
            for i in range(len(parts)):
                head = "/".join(parts[: i + 1])
                if head in self.links:
                    target = self.links[head]
                    base = posixpath.dirname(head)
                    joined = posixpath.normpath(posixpath.join("/", base, target))
                    rest = "/".join(parts[i + 1 :])
                    path = self._clean(posixpath.join(joined, rest) if rest else joined)
                    break
            else:
                return path
        raise InvalidParameter(f"too many levels of symbolic links: {name}")

    def path(self, name: str) -> Path:
        rel = self.resolve(name)
        if not rel:
            raise InvalidParameter(f"invalid path in archive: {name}")
        return self.root / rel

    def exists(self, name: str) -> bool:
        try:
            return self.path(name).is_file()
        except InvalidParameter:
            return False

    def read(self, name: str) -> bytes:
        path = self.path(name)
        if not path.is_file() or path.is_symlink():
            raise InvalidParameter(f"open {name}: no such file or directory")
        return path.read_bytes()

    def open(self, name: str) -> BinaryIO:
        path = self.path(name)
        if not path.is_file() or path.is_symlink():
            raise InvalidParameter(f"open {name}: no such file or directory")
        return open(path, "rb")

    def size(self, name: str) -> int:
        path = self.path(name)
        if not path.is_file() or path.is_symlink():
            raise InvalidParameter(f"open {name}: no such file or directory")
        return path.stat().st_size


def unpack(stream: BinaryIO, root: Path) -> Unpacked:
    """Unpack an image archive (tar, possibly compressed) under ``root``."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    unpacked = Unpacked(root)
    try:
        tar = tarfile.open(fileobj=stream, mode="r|*", tarinfo=layers.BoundedTarInfo)  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise InvalidParameter(_tar_error(exc)) from None
    with tar:
        try:
            for member in tar:
                name = unpacked._clean(member.name)
                if not name:
                    continue
                if member.issym() or member.islnk():
                    unpacked.links[name] = member.linkname if member.issym() else "/" + member.linkname
                    continue
                target = root / name
                if any(part in unpacked.links for part in _prefixes(name)):
                    raise InvalidParameter(f"invalid archive: {member.name} is under a symlink")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True, mode=0o700)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    src = tar.extractfile(member)
                    assert src is not None
                    with open(target, "wb") as f:
                        shutil.copyfileobj(src, f, 1 << 20)
        except (tarfile.TarError, layers.HeaderTooLong) as exc:
            raise InvalidParameter(_tar_error(exc)) from None
    return unpacked


def _tar_error(exc: Exception) -> str:
    """Go's archive/tar words for what Python's tarfile refused (dockerd's answer to a bad archive)."""
    text = str(exc)
    if text in ("invalid header", "bad checksum", "empty header"):
        return "archive/tar: invalid tar header"
    if text in ("truncated header", "unexpected end of data"):
        return "unexpected EOF"
    return f"invalid archive: {text}"


def _prefixes(name: str) -> Iterator[str]:
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


@dataclass
class ArchiveImage:
    """One image an archive holds, in the order to load it."""

    config: bytes
    layers: list[tuple[str, str | None]]  # (member path, media type or None for docker-archive)
    tags: list[str]  # references as written in the archive
    parent: str = ""
    layer_digests: list[str | None] = field(default_factory=list)  # OCI blob digests to verify


def read_docker_archive(archive: Unpacked) -> list[ArchiveImage]:
    try:
        manifest = json.loads(archive.read("manifest.json"))
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"invalid manifest.json: {exc}") from None
    out = []
    for item in manifest or []:
        out.append(
            ArchiveImage(
                config=archive.read(item["Config"]),
                layers=[(path, None) for path in item.get("Layers") or []],
                tags=list(item.get("RepoTags") or []),
                parent=item.get("Parent") or "",
            )
        )
    return out


INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def _blob(archive: Unpacked, digest: str) -> bytes:
    alg, _, hexd = digest.partition(":")
    if alg != "sha256" or len(hexd) != 64:
        raise InvalidParameter(f"unsupported digest {digest}")
    data = archive.read(f"blobs/{alg}/{hexd}")
    if hashlib.sha256(data).hexdigest() != hexd:
        raise InvalidParameter(f"blob {digest} does not match its digest")
    return data


def _ref_name(annotations: dict[str, str]) -> str | None:
    full = annotations.get("io.containerd.image.name")
    if full:
        return full
    ref = annotations.get("org.opencontainers.image.ref.name")
    if ref and ("/" in ref or ":" in ref):
        return ref
    return None


def read_oci_layout(archive: Unpacked, arch: str) -> list[ArchiveImage]:
    """Images of an OCI image layout, named by their index annotations; indexes pick linux/<arch>."""
    try:
        index = json.loads(archive.read("index.json"))
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"invalid index.json: {exc}") from None
    images: dict[str, ArchiveImage] = {}
    order: list[str] = []

    def visit(desc: dict[str, Any], name: str | None, depth: int = 0) -> None:
        if depth > 4:
            raise InvalidParameter("OCI index nested too deeply")
        media = desc.get("mediaType", "")
        data = _blob(archive, desc["digest"])
        doc = json.loads(data)
        media = media or doc.get("mediaType", "")
        if media in INDEX_TYPES or "manifests" in doc:
            candidates = doc.get("manifests") or []
            chosen = [
                m
                for m in candidates
                if not m.get("platform")
                or (m["platform"].get("os") == "linux" and m["platform"].get("architecture") == arch)
            ]
            for sub in chosen[:1] or candidates[:1]:
                visit(sub, name or _ref_name(sub.get("annotations") or {}), depth + 1)
            return
        config = _blob(archive, doc["config"]["digest"])
        key = desc["digest"]
        if key not in images:
            layers = doc.get("layers") or []
            images[key] = ArchiveImage(
                config=config,
                layers=[
                    (f"blobs/sha256/{layer['digest'].partition(':')[2]}", layer.get("mediaType")) for layer in layers
                ],
                tags=[],
                layer_digests=[layer["digest"] for layer in layers],
            )
            order.append(key)
        if name and name not in images[key].tags:
            images[key].tags.append(name)

    for desc in index.get("manifests") or []:
        visit(desc, _ref_name(desc.get("annotations") or {}))
    return [images[k] for k in order]


def read_archive(archive: Unpacked, arch: str) -> list[ArchiveImage]:
    if archive.exists("manifest.json"):
        return read_docker_archive(archive)
    if archive.exists("index.json") and archive.exists("oci-layout"):
        return read_oci_layout(archive, arch)
    if archive.exists("repositories"):
        raise InvalidParameter("loading legacy (pre-1.10) image archives is not supported")
    raise InvalidParameter("open manifest.json: no such file or directory")


def cleanup(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
