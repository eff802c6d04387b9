"""A minimal busybox root filesystem from Debian's busybox-static, for test images offline."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

PASSWD = b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def busybox_path() -> Path:
    found = shutil.which("busybox")
    path = Path(found) if found else BUSYBOX
    if not path.exists():
        raise FileNotFoundError("busybox not found: apt-get install busybox-static")
    return path


def applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(a for a in out.split() if a and a != "busybox")


def busybox_rootfs_tar(extra_files: dict[str, bytes] | None = None) -> bytes:
    """A tar of a busybox rootfs: /bin/busybox, relative applet links, /etc/passwd and group, empty dirs."""
    busybox = busybox_path()
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "dev", "etc", "proc", "sys", "root", "home", "var", "usr", "usr/bin"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", busybox.read_bytes(), 0o755)
        for applet in applets(busybox):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, now
            tar.addfile(info)
        add_file("etc/passwd", PASSWD)
        add_file("etc/group", GROUP)
        for name, data in (extra_files or {}).items():
            add_file(name, data)
    return buf.getvalue()
