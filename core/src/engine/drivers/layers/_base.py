"""Names and errors shared by the layer tar modules."""

from __future__ import annotations

import os

from engine.errors import InvalidParameter, SystemError

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
#: xattrs that describe overlayfs internals; never copied into or out of a tar
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_CHUNK = 1 << 20
_O_CLOEXEC = os.O_CLOEXEC
_MAX_LINKS = 255


class ArchiveError(SystemError):
    """A tar stream could not be applied or written."""


class BreakoutError(ArchiveError):
    """A tar entry would reach outside its target (moby's breakoutError)."""


class NotADirectory(InvalidParameter):
    def __init__(self) -> None:
        super().__init__("extraction point is not a directory")
