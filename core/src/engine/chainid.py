"""Layer chain IDs (the image spec's ChainID): how a stack of layer diff IDs is named.

Below the services: the layer store keys its layers by them and the registry client uses them to
tell which pulled layers are already here.
"""

from __future__ import annotations

import hashlib


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)); the bottom layer's chain ID is its diff ID."""
    if not parent_chain:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of every layer of a stack, bottom first."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff))
    return out
