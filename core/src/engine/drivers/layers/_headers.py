"""Tar headers read with Go's bound: a PAX or GNU long-name header over 1 MiB is refused.

Python's tarfile reads such a header into memory whole, whatever size it claims; Go's archive/tar (so
dockerd) refuses any over ``maxSpecialFileSize`` (1 MiB). Open streams with ``tarinfo=BoundedTarInfo``.
"""

from __future__ import annotations

import tarfile
from typing import Any

from engine.drivers.layers._base import ArchiveError

#: Go's archive/tar maxSpecialFileSize
MAX_SPECIAL_SIZE = 1 << 20
_SPECIAL = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}


class HeaderTooLong(ArchiveError):
    status = 400


class BoundedTarInfo(tarfile.TarInfo):
    def _proc_member(self, tarfile: Any) -> Any:
        if self.type in _SPECIAL and self.size > MAX_SPECIAL_SIZE:
            raise HeaderTooLong("archive/tar: header field too long")
        return super()._proc_member(tarfile)  # type: ignore[misc]
