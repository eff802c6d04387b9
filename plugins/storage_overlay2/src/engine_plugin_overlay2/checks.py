"""Host checks overlay2 needs, as moby makes them: kernel overlay, the backing filesystem and its
``d_type``, multiple lower directories (probed by a real mount), and whether the native diff is safe.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path

from engine.drivers import fsinfo
from engine.errors import IncompatibleFS, PrerequisitesNotMet
from engine_plugin_overlay2 import mounts

#: moby refuses overlay2 over these
INCOMPATIBLE = ("aufs", "ecryptfs", "nfs", "overlayfs", "zfs")


def overlay_in_kernel() -> bool:
    return "overlay" in fsinfo.kernel_filesystems()


class _Dirent64(ctypes.Structure):
    _fields_ = [
        ("d_ino", ctypes.c_uint64),
        ("d_off", ctypes.c_int64),
        ("d_reclen", ctypes.c_ushort),
        ("d_type", ctypes.c_ubyte),
        ("d_name", ctypes.c_char * 256),
    ]


_libc = ctypes.CDLL(None, use_errno=True)  # opendir/readdir64 for the d_type probe
_libc.opendir.restype = ctypes.c_void_p
_libc.opendir.argtypes = [ctypes.c_char_p]
_libc.readdir64.restype = ctypes.POINTER(_Dirent64)
_libc.readdir64.argtypes = [ctypes.c_void_p]
_libc.closedir.argtypes = [ctypes.c_void_p]


def supports_dtype(path: Path) -> bool:
    """Whether readdir on ``path``'s filesystem fills ``d_type`` (xfs without ftype=1 does not)."""
    with tempfile.TemporaryDirectory(prefix="engine-dtype-", dir=path) as tmp:
        Path(tmp, "file").touch()
        handle = _libc.opendir(os.fsencode(tmp))
        if not handle:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), tmp)
        try:
            while entry := _libc.readdir64(handle):
                if entry.contents.d_name == b"file":
                    return entry.contents.d_type != 0  # DT_UNKNOWN
        finally:
            _libc.closedir(handle)
    return False


def index_off() -> str:
    """``index=off,`` when the kernel knows the option (moby passes it to avoid EBUSY on shared lowers)."""
    return "index=off," if os.path.exists("/sys/module/overlay/parameters/index") else ""


def check_host(home: Path) -> str:
    """Raise when overlay2 cannot run with ``home``; returns the backing filesystem's name."""
    if not overlay_in_kernel():
        raise PrerequisitesNotMet(
            "'overlay' not found as a supported filesystem on this host. "
            "Please ensure kernel is new enough and has overlay support loaded."
        )
    fs = fsinfo.fs_name(home)
    if fs in INCOMPATIBLE:
        raise IncompatibleFS(f"'overlay2' is not supported over {fs}")
    if not supports_dtype(home):
        hint = "Reformat the filesystem with ftype=1 to enable d_type support. " if fs == "xfs" else ""
        raise IncompatibleFS(
            f"overlay2: the backing {fs} filesystem is formatted without d_type support, which leads to "
            f"incorrect behavior. {hint}Backing filesystems without d_type support are not supported."
        )
    return fs


def _probe_dir(home: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"engine-probe-{name}-", dir=home))


def remove_probe_leftovers(home: Path) -> None:
    """Probe dirs a killed daemon left behind (their mounts are gone with the stale-mount sweep)."""
    for entry in home.glob("engine-probe-*"):
        shutil.rmtree(entry, ignore_errors=True)


def probe_multiple_lowers(home: Path, options: str) -> None:
    """Mount a two-lower overlay once (moby's supportsMultipleLowerDir)."""
    tmp = _probe_dir(home, "lowers")
    try:
        for sub in ("lower1", "lower2", "merged"):
            (tmp / sub).mkdir()
        try:
            mounts.mount("overlay", tmp / "merged", "overlay", 0, f"{options}lowerdir={tmp}/lower2:{tmp}/lower1")
        except OSError as exc:
            raise PrerequisitesNotMet(f"overlay2: kernel overlay does not support multiple lower dirs: {exc}") from None
        mounts.unmount(tmp / "merged")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def probe_native_diff(home: Path, options: str, xattr_prefix: str) -> str | None:
    """Why the native diff would be wrong here, or ``None`` when it is safe (moby's doesSupportNativeDiff):
    an opaque directory must not be copied up as opaque, and renaming a lower directory must not
    leave a ``redirect`` xattr (redirect_dir would make the upper dir a partial picture)."""
    if _sys_param("metacopy") == "Y":
        return "kernel overlay has metacopy enabled"
    tmp = _probe_dir(home, "diff")
    merged = tmp / "merged"
    try:
        for sub in ("l1/d", "l2", "l3", "work", "merged", "l1/d1"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        (tmp / "l1" / "d" / "f").touch()
        os.setxattr(tmp / "l1" / "d", xattr_prefix + "opaque", b"y")
        data = f"{options}lowerdir={tmp}/l2:{tmp}/l1,upperdir={tmp}/l3,workdir={tmp}/work"
        mounts.mount("overlay", merged, "overlay", 0, data)
        try:
            (merged / "d" / "f").write_bytes(b"")  # copies the opaque "d" up
            try:
                opaque = os.getxattr(tmp / "l3" / "d", xattr_prefix + "opaque")
            except OSError:
                opaque = b""
            if opaque == b"y":
                return "opaque flag erroneously copied up, consider update to kernel 4.8 or later to fix"
            try:
                os.rename(merged / "d1", merged / "d2")
            except OSError as exc:
                if exc.errno == 18:  # EXDEV: no redirect_dir, directories are not renamed in place
                    return None
                return f"failed to rename dir in merged directory: {exc}"
            try:
                os.getxattr(tmp / "l3" / "d2", xattr_prefix + "redirect")
            except OSError:
                return None
            return "kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled"
        finally:
            mounts.unmount(merged)
    except OSError as exc:
        return f"native diff probe failed: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sys_param(name: str) -> str:
    try:
        return Path("/sys/module/overlay/parameters", name).read_text().strip()
    except OSError:
        return ""
