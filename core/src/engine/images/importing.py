"""``docker import`` (``POST /images/create?fromSrc=``): a tar from stdin or a URL becomes a
one-layer image."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO

from engine.errors import Forbidden, InvalidParameter, NotFound, SystemError, Unauthorized
from engine.images import changes as change_rules
from engine.images.configs import imported_image_config
from engine.images.local import LocalImages
from engine.images.references import parse_normalized_named
from engine.images.streams import Emit, ProgressReader


def import_image(
    images: LocalImages,
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
    """Import ``src`` (``-``: ``stream``; else a URL, ``http://`` when it names no scheme); returns the image ID."""
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
        source = ProgressReader(response, int(response.headers.get("Content-Length") or -1), emit, "Importing")  # type: ignore[assignment]
    message = message or f"Imported from {src}"
    try:
        layer = images.register_layer(source)
    finally:
        if response is not None:
            response.close()
    try:
        raw = imported_image_config(layer.diff_id, config, comment=message, os_name=os_name)
        image, _ = images.store.create(raw)
    finally:
        images.release_layer(layer.chain_id)
    if new_ref is not None:
        images.tag_reference(image.id, new_ref)
    images.event("import", image.id, image.id)
    emit({"status": image.id})
    return image.id
