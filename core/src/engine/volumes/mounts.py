"""mount(2)/umount2(2) with moby/sys/mount's option parsing, for volumes created with driver options.

``o=size=64m,uid=1000,ro`` is split as moby does: names of mount flags (``ro``, ``nosuid``, ``bind``...)
become MS_* flags, everything else is passed to the filesystem as data.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from engine.drivers import libc

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

#: name -> (clears the flag, flag), as moby/sys/mount's flag table
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID),
    "nosuid": (False, MS_NOSUID),
    "dev": (True, MS_NODEV),
    "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC),
    "noexec": (False, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME),
    "noatime": (False, MS_NOATIME),
    "diratime": (True, MS_NODIRATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
    "unbindable": (False, MS_UNBINDABLE),
    "runbindable": (False, MS_UNBINDABLE | MS_REC),
    "private": (False, MS_PRIVATE),
    "rprivate": (False, MS_PRIVATE | MS_REC),
    "shared": (False, MS_SHARED),
    "rshared": (False, MS_SHARED | MS_REC),
    "slave": (False, MS_SLAVE),
    "rslave": (False, MS_SLAVE | MS_REC),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
}
_PROPAGATION = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE


class MountError(OSError):
    """A failed mount; str() is moby's ``mount <source>:<target>, flags: 0x.., data: ..: <errno text>``."""

    def __str__(self) -> str:
        return str(self.strerror)


def parse_options(options: str) -> tuple[int, str]:
    """Split ``o=`` into MS_* flags and the filesystem's data string."""
    flags, data = 0, []
    for opt in options.split(","):
        if not opt:
            continue
        known = _FLAGS.get(opt)
        if known is None:
            data.append(opt)
            continue
        clear, flag = known
        flags = flags & ~flag if clear else flags | flag
    return flags, ",".join(data)


def _errno_text(err: int) -> str:
    text = os.strerror(err)
    return text[0].lower() + text[1:] if text else f"errno {err}"


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    err = libc.mount(source, target, fstype, flags, data)
    if err:
        where = f"{source}:{target}" if source else target
        text = f"mount {where}"
        if flags:
            text += f", flags: {flags:#x}"
        if data:
            text += f", data: {data}"
        raise MountError(err, f"{text}: {_errno_text(err)}")


def mount(device: str, target: Path, fstype: str, options: str) -> None:
    """moby's ``mount.Mount``: the mount, then a propagation change, then a read-only remount of a bind."""
    flags, data = parse_options(options)
    base = flags & ~_PROPAGATION
    if not (flags & MS_REMOUNT) or data:
        _mount(device, str(target), fstype, base, data)
    if flags & _PROPAGATION:
        _mount("", str(target), "", flags & (_PROPAGATION | MS_REC), "")
    if base & (MS_BIND | MS_RDONLY) == MS_BIND | MS_RDONLY:
        _mount("", str(target), "", base | MS_REMOUNT, "")


def unmount(target: Path) -> None:
    """Lazily unmount ``target``; not being mounted is not an error."""
    err = libc.umount2(target, MNT_DETACH)
    if err not in (0, errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point; ENOENT: gone
        raise MountError(err, f"unmount {target}: {_errno_text(err)}")


def is_mountpoint(path: Path) -> bool:
    """Whether something is mounted exactly at ``path`` (per /proc/self/mountinfo)."""
    want = str(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            if mountpoint == want:
                return True
    return False
