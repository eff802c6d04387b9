"""A real, standalone systemd-journald for the tests, in a private mount namespace (see
BACKENDS.md, journald): tmpfs on /run/systemd, /run/log and /var/log/journal inside that namespace
only, so nothing reaches the host's journal or files. The namespace ends with journald, which is
stopped by its PID.

Test code reaches it through ``/proc/<pid>/root`` (paths resolved in journald's mount namespace);
an engined under test runs inside the namespace (``nsenter --mount=/proc/<pid>/ns/mnt``)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

JOURNALD = "/lib/systemd/systemd-journald"  # never with arguments: the first one names a journal namespace
SETUP = (
    "mount -t tmpfs -o mode=755 tmpfs /run/systemd && "
    "mount -t tmpfs -o mode=755 tmpfs /run/log && "
    "mount -t tmpfs -o mode=2755 tmpfs /var/log/journal && "
    f"exec {JOURNALD}"
)


@dataclass
class Journald:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def root(self) -> str:
        return f"/proc/{self.pid}/root"

    @property
    def socket(self) -> str:
        return f"{self.root}/run/systemd/journal/socket"

    @property
    def varlink(self) -> str:
        return f"{self.root}/run/systemd/journal/io.systemd.journal"

    @property
    def journal_dir(self) -> str:
        return f"{self.root}/run/log/journal"

    @property
    def mount_ns(self) -> str:
        return f"/proc/{self.pid}/ns/mnt"

    def nsenter(self) -> list[str]:
        """The command prefix that runs a program inside journald's mount namespace."""
        return ["nsenter", f"--mount={self.mount_ns}"]

    def journalctl(self, *args: str) -> str:
        """``journalctl -D /run/log/journal`` inside the namespace (after a ``--sync``)."""
        subprocess.run([*self.nsenter(), "journalctl", "--sync"], check=True, capture_output=True)
        cmd = [*self.nsenter(), "journalctl", "-D", "/run/log/journal", "--no-pager", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.unlink(missing_ok=True)


def start_journald() -> Journald:
    for path in ("/run/systemd", "/run/log", "/var/log/journal"):
        if not os.path.isdir(path):  # a mount point is needed; creating it would touch the host
            raise RuntimeError(f"{path} is missing: cannot mount the test journald's tmpfs there")
    fd, log = tempfile.mkstemp(prefix="engine-journald-", suffix=".log")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", SETUP], stdout=fd, stderr=fd, stdin=subprocess.DEVNULL
    )
    os.close(fd)
    server = Journald(proc, Path(log))
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"journald exited: {server.log.read_text(errors='replace')}")
        if os.path.exists(server.socket) and os.path.exists(server.varlink):
            return server
        time.sleep(0.025)
    server.stop()
    raise RuntimeError("journald did not come up")
