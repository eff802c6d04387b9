"""Generic diffs for drivers with no native way: compare a layer's mounted tree with its parent's.

(Placeholder: the storage work fills this in.)
"""

from __future__ import annotations

from typing import BinaryIO

from engine.drivers.storage import Change


class NaiveDiffMixin:
    def diff(self, id: str, parent: str | None, out: BinaryIO) -> None:
        raise NotImplementedError

    def changes(self, id: str, parent: str | None) -> list[Change]:
        raise NotImplementedError

    def apply_diff(self, id: str, parent: str | None, diff: BinaryIO) -> int:
        raise NotImplementedError

    def diff_size(self, id: str, parent: str | None) -> int:
        raise NotImplementedError
