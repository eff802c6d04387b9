"""aufs mount options as dockerd 19.03 builds them, and its special names.

One rw branch (the layer's ``diff``) and its parents' ``diff`` dirs as ``ro+wh`` branches, nearest
first. mount(2) takes one page of options, so branches that do not fit are added afterwards with
``MS_REMOUNT`` and ``append:<dir>=ro+wh``, one per call. dockerd keeps 54 bytes (plus ``,dirperm1``)
and the mount label's length free for the options that follow the branches.
"""

from __future__ import annotations

import os

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
XINO = "/dev/shm/aufs.xino"

#: what aufs itself keeps in a rw branch: never part of a layer's diff or changes
AUFS_META = (".wh..wh.aufs", ".wh..wh.orph", ".wh..wh.plnk")
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"


def format_mount_label(data: str, mount_label: str) -> str:
    """SELinux ``context=`` appended as dockerd's label.FormatMountLabel does."""
    if not mount_label:
        return data
    return f'{data},context="{mount_label}"' if data else f'context="{mount_label}"'


def mount_options(
    rw: str, ro: list[str], mount_label: str = "", dirperm1: bool = False, page_size: int = PAGE_SIZE
) -> tuple[str, list[str]]:
    """``(data for mount(2), [data for each MS_REMOUNT append])``."""
    offset = 54 + (len(",dirperm1") if dirperm1 else 0)
    room = page_size - len(mount_label) - offset
    branches = f"br:{rw}=rw"
    index = 0
    for layer in ro:
        piece = f":{layer}=ro+wh"
        if len(branches) + len(piece) > room:
            break
        branches += piece
        index += 1
    options = f"dio,xino={XINO}" + (",dirperm1" if dirperm1 else "")
    data = format_mount_label(f"{branches},{options}", mount_label)
    appends = [format_mount_label(f"append:{layer}=ro+wh", mount_label) for layer in ro[index:]]
    return data, appends


def is_aufs_meta(name: str) -> bool:
    """``.wh..wh.*`` entries except the opaque marker: aufs' own bookkeeping (dockerd's exclude list)."""
    return name.startswith(WHITEOUT_META_PREFIX) and name != WHITEOUT_OPAQUE


def whiteout_name(name: str) -> str:
    """The whiteout that hides ``name`` in a branch below."""
    return WHITEOUT_PREFIX + name


def whited_out(name: str) -> str | None:
    """The name a ``.wh.<name>`` entry hides; None for anything else (including aufs' meta entries)."""
    if not name.startswith(WHITEOUT_PREFIX) or name.startswith(WHITEOUT_META_PREFIX):
        return None
    return name[len(WHITEOUT_PREFIX) :]
