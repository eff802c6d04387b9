"""Image configs the daemon writes itself: an imported tarball's, and a child of an image (commit,
the builder). Byte for byte as dockerd marshals them (:mod:`engine.images.gojson`)."""

from __future__ import annotations

import platform
from typing import Any

from engine import DOCKER_VERSION
from engine.images import gojson
from engine.images.layers import EMPTY_LAYER_DIFF_ID
from engine.images.store import Image

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
#: this host's architecture as Go (and so image configs and manifests) spell it
ARCH = GO_ARCH.get(platform.machine(), platform.machine())


def imported_image_config(diff_id: str, config: dict[str, Any], *, comment: str, os_name: str) -> bytes:
    """The config of a one-layer image made from a tarball (``docker import``)."""
    created = gojson.now()
    return gojson.image_config_bytes(
        {
            "architecture": ARCH,
            "comment": comment,
            "config": gojson.config(config),
            "container_config": gojson.config({}),
            "created": created,
            "docker_version": DOCKER_VERSION,
            "history": [gojson.history_entry(created, comment=comment)],
            "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )


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
