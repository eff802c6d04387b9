"""xfs project quotas for ``overlay2.size`` / ``--storage-opt size`` (moby's projectquota).

Each layer directory that gets a quota is given its own project id (inherited by everything created
below it) and a block limit on that project. quotactl(2) wants a block device of the filesystem, so
one is made in the home (``backingFsBlockDev``, as dockerd does). The filesystem must be mounted
with ``pquota`` (or ``prjquota``); :meth:`ProjectQuota.probe` fails otherwise.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import struct
import threading
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.quotactl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]

FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200
_FSXATTR = struct.Struct("=IIII I8x")  # xflags, extsize, nextents, projid, cowextsize, pad

Q_XSETQLIM = (ord("X") << 8) + 4
Q_XGETQUOTA = (ord("X") << 8) + 3
PRJQUOTA = 2
FS_DQUOT_VERSION = 1
FS_PROJ_QUOTA = 2
FS_DQ_BSOFT = 1 << 2
FS_DQ_BHARD = 1 << 3


class _DiskQuota(ctypes.Structure):
    """struct fs_disk_quota (linux/dqblk_xfs.h)."""

    _fields_ = [
        ("d_version", ctypes.c_int8),
        ("d_flags", ctypes.c_int8),
        ("d_fieldmask", ctypes.c_uint16),
        ("d_id", ctypes.c_uint32),
        ("d_blk_hardlimit", ctypes.c_uint64),
        ("d_blk_softlimit", ctypes.c_uint64),
        ("d_ino_hardlimit", ctypes.c_uint64),
        ("d_ino_softlimit", ctypes.c_uint64),
        ("d_bcount", ctypes.c_uint64),
        ("d_icount", ctypes.c_uint64),
        ("d_itimer", ctypes.c_int32),
        ("d_btimer", ctypes.c_int32),
        ("d_iwarns", ctypes.c_uint16),
        ("d_bwarns", ctypes.c_uint16),
        ("d_itimer_hi", ctypes.c_int8),
        ("d_btimer_hi", ctypes.c_int8),
        ("d_rtbtimer_hi", ctypes.c_int8),
        ("d_padding2", ctypes.c_int8),
        ("d_rtb_hardlimit", ctypes.c_uint64),
        ("d_rtb_softlimit", ctypes.c_uint64),
        ("d_rtbcount", ctypes.c_uint64),
        ("d_rtbtimer", ctypes.c_int32),
        ("d_rtbwarns", ctypes.c_uint16),
        ("d_padding3", ctypes.c_int16),
        ("d_padding4", ctypes.c_char * 8),
    ]


def _qcmd(cmd: int, kind: int) -> int:
    return (cmd << 8) | (kind & 0xFF)


def get_project_id(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(_FSXATTR.size))
    finally:
        os.close(fd)
    return _FSXATTR.unpack(buf)[3]


def set_project_id(path: Path, project_id: int) -> None:
    """Give ``path`` (a directory) the project id, inherited by what is created below it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        xflags, extsize, nextents, _, cow = _FSXATTR.unpack(fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(_FSXATTR.size)))
        fcntl.ioctl(
            fd, FS_IOC_FSSETXATTR, _FSXATTR.pack(xflags | FS_XFLAG_PROJINHERIT, extsize, nextents, project_id, cow)
        )
    finally:
        os.close(fd)


class ProjectQuota:
    """Project ids and block limits for directories below ``home`` (one xfs filesystem)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.device = home / "backingFsBlockDev"
        self._lock = threading.Lock()
        self._next = 0
        self._assigned: dict[Path, int] = {}

    def probe(self) -> None:
        """Make the block device node, check quotas are on, and find the first free project id.

        :raises OSError: the filesystem has no project quota accounting (not mounted with pquota).
        """
        st = os.stat(self.home)
        try:
            current = os.stat(self.device)
            if not stat.S_ISBLK(current.st_mode) or current.st_rdev != st.st_dev:
                self.device.unlink()
                raise FileNotFoundError
        except FileNotFoundError:
            os.mknod(self.device, stat.S_IFBLK | 0o600, st.st_dev)
        base = get_project_id(self.home)
        self._set_limit(base + 1, 0)  # fails unless project quotas are enforced
        highest = base + 1
        for entry in os.scandir(self.home):
            if entry.is_dir(follow_symlinks=False):
                highest = max(highest, get_project_id(Path(entry.path)))
        self._next = highest + 1

    def set_quota(self, directory: Path, size: int) -> None:
        """Limit what ``directory`` (and everything later created below it) may hold to ``size`` bytes."""
        with self._lock:
            project_id = self._assigned.get(directory)
            if project_id is None:
                project_id = self._next
                self._next += 1
                set_project_id(directory, project_id)
                self._assigned[directory] = project_id
        self._set_limit(project_id, size)

    def _set_limit(self, project_id: int, size: int) -> None:
        quota = _DiskQuota(
            d_version=FS_DQUOT_VERSION,
            d_id=project_id,
            d_flags=FS_PROJ_QUOTA,
            d_fieldmask=FS_DQ_BHARD | FS_DQ_BSOFT,
            d_blk_hardlimit=size // 512,
            d_blk_softlimit=size // 512,
        )
        cmd = _qcmd(Q_XSETQLIM, PRJQUOTA)
        if _libc.quotactl(cmd, os.fsencode(self.device), project_id, ctypes.byref(quota)) != 0:
            err = ctypes.get_errno()
            raise OSError(
                err, f"failed to set quota limit for projid {project_id} on {self.device}: {os.strerror(err)}"
            )
