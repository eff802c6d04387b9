"""Layer tars: safe extraction, deterministic writing, whiteouts (the driver SDK's tar helpers).

The implementation is split by concern into private modules (``_paths`` safe names and in-root
resolution, ``_compress``, ``_whiteouts``, ``_extract``, ``_write``); import the names from here.

Extraction never writes outside its target. Every entry's parent directory is resolved *inside* the
target as if it were ``/`` (``openat2(RESOLVE_IN_ROOT)``; a userspace walk where the kernel lacks it),
and the final component is always created or changed through that directory's fd without following
symlinks. Names are cleaned as Docker does: a leading ``/`` is stripped, ``..`` that would climb above
the target is refused (:class:`BreakoutError`), hardlink targets must lie inside the target, and
relative symlinks that climb above it are refused (moby's "invalid symlink" check).

Whiteouts (files named ``.wh.<name>`` and the opaque marker ``.wh..wh..opq``) go through a pluggable
:class:`WhiteoutHandler`:

* :data:`DELETE_WHITEOUTS` (vfs, naive diff): ``.wh.name`` removes ``name``; the opaque marker empties
  its directory of everything this layer did not put there.
* :class:`OverlayWhiteouts` (overlay2 ``diff`` dirs): a whiteout becomes a char device 0:0 and the
  opaque marker the xattr ``trusted.overlay.opaque=y`` (``user.overlay.opaque`` with ``userxattr``).
* ``None`` (``docker cp``): ``.wh.`` files are ordinary files.

Public API (all blocking: call from a worker thread):

* :func:`apply_layer(target, stream, whiteouts=DELETE_WHITEOUTS, id_map=IDENTITY) -> int`: extract a
  layer tar (gzip/bzip2/xz/zstd detected by magic); returns the sum of the entries' sizes (moby's
  ApplyLayer size). The input is read to its end (so a caller hashing it sees every byte).
* :func:`decompress(stream)`: a reader of the uncompressed bytes of a possibly compressed stream.
* :class:`TarWriter`: writes entries (PAX for xattrs/long names, hardlinks as link entries, whiteouts
  in tar form), no record padding; :func:`tar_tree` (a whole directory, sorted, depth first) and
  :func:`tar_changes` (a change list for the naive diff; deletions become ``.wh.`` entries).
* :class:`Extractor` and :func:`untar`: the extraction machinery itself, for tars that are not layers
  (build contexts, ``docker cp`` uploads).
* :func:`walk_tree` (a tree in tar order), :func:`read_xattr`, :func:`in_user_namespace`,
  :func:`member_xattrs`.
* :func:`clean_name`, :func:`resolve_in_root`, :func:`open_in_root`: paths resolved as if a directory
  were ``/`` (the safe-path primitives extraction and ``docker cp`` share).
"""

from engine.drivers.layers._base import (
    OVERLAY_XATTR_PREFIXES,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    ArchiveError,
    BreakoutError,
    NotADirectory,
)
from engine.drivers.layers._compress import decompress
from engine.drivers.layers._extract import Extractor, apply_layer, member_xattrs, untar
from engine.drivers.layers._paths import clean_name, open_in_root, resolve_in_root
from engine.drivers.layers._whiteouts import (
    DELETE_WHITEOUTS,
    DeleteWhiteouts,
    OverlayWhiteouts,
    WhiteoutHandler,
    in_user_namespace,
)
from engine.drivers.layers._write import TarWriter, read_xattr, tar_changes, tar_tree, walk_tree

__all__ = [
    "DELETE_WHITEOUTS",
    "OVERLAY_XATTR_PREFIXES",
    "WHITEOUT_META_PREFIX",
    "WHITEOUT_OPAQUE",
    "WHITEOUT_PREFIX",
    "ArchiveError",
    "BreakoutError",
    "DeleteWhiteouts",
    "Extractor",
    "NotADirectory",
    "OverlayWhiteouts",
    "TarWriter",
    "WhiteoutHandler",
    "apply_layer",
    "clean_name",
    "decompress",
    "in_user_namespace",
    "member_xattrs",
    "open_in_root",
    "read_xattr",
    "resolve_in_root",
    "tar_changes",
    "tar_tree",
    "untar",
    "walk_tree",
]
