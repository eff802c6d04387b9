"""Run a real ``engined`` for tests: own temp socket, data-root, exec-root and pidfile.

The daemon is stopped by its PID (SIGTERM, then SIGKILL) and nothing it mounted under its
temp dirs may remain afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENGINED = Path(sys.executable).with_name("engined")


def local_nameserver() -> str:
    """An IPv4 address of this host that is not loopback: DNS queries sent there stay on the machine.

    Only a route lookup (no traffic): the source address of the default route, else the first
    global address of any interface. Test daemons must never forward DNS to the host's real resolvers.
    """
    out = subprocess.run(["ip", "-j", "-4", "route", "get", "192.0.2.1"], capture_output=True, text=True)
    try:
        return json.loads(out.stdout)[0]["prefsrc"]
    except (ValueError, LookupError):
        pass
    out = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True)
    for link in json.loads(out.stdout or "[]"):
        for addr in link.get("addr_info", []):
            return addr["local"]
    raise RuntimeError("no non-loopback IPv4 address on this host for the test resolv.conf")


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4].replace("\\040", " ")
            if mountpoint.startswith(prefix) or mountpoint == prefix[:-1]:
                found.append(mountpoint)
    return found


class EngineDaemon:
    """One engined process. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        root: Path | None = None,
        config: dict[str, Any] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="engine-test-", dir="/tmp"))
        self.owns_root = root is None
        self.socket = self.root / "engine.sock"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "engine.pid"
        self.config_file = self.root / "daemon.json"
        self.log_file = self.root / "engined.log"
        self.config = dict(config or {})
        self.args = list(args or [])
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        if "ENGINE_RESOLV_CONF" not in self.env:
            # containers get a copy of this instead of the host's resolv.conf, and the embedded DNS
            # forwards to it: a host-local address, so no test ever sends a query off the machine
            self.root.mkdir(parents=True, exist_ok=True)
            self.resolv_conf = self.root / "resolv.conf"
            self.resolv_conf.write_text(f"nameserver {local_nameserver()}\n")
            self.env["ENGINE_RESOLV_CONF"] = str(self.resolv_conf)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def command(self) -> list[str]:
        cmd = [str(ENGINED), "--config-file", str(self.config_file)]
        base = {
            "hosts": [self.host],
            "data-root": str(self.data_root),
            "exec-root": str(self.exec_root),
            "pidfile": str(self.pidfile),
        }
        for key, value in base.items():
            if key not in self.config and not any(a.startswith(f"--{key}") for a in self.args):
                self.config[key] = value
        return cmd + self.args

    def start(self, timeout: float = 30.0) -> EngineDaemon:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        self.config_file.write_text(json.dumps(self.config))
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engined exited with {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists() and self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"engined did not come up in {timeout}s:\n{self.log()}")

    def _ping(self) -> bool:
        import socket

        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        """Remove the temp root; unmount anything left first, and remove the daemon's default bridge
        and firewall table if they outlived it (a daemon killed or stopped with live containers),
        and report it."""
        leftovers = mounts_under(self.root)
        for mountpoint in sorted(leftovers, reverse=True):
            subprocess.run(["umount", "-l", mountpoint], check=False)
        if self.proc is None or self.proc.poll() is not None:
            leftovers += self._remove_host_objects()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if leftovers:
            raise AssertionError(f"engined left these behind: {leftovers}")

    def _remove_host_objects(self) -> list[str]:
        """The host-global objects named after this daemon's exec-root (engine.networks.controller's
        instance name): its default bridge and its nftables table."""
        from engine.networks.controller import instance_name

        instance = instance_name(Path(self.config.get("exec-root", self.exec_root)))
        try:
            from engine_plugin_bridge.driver import default_bridge_name
        except ImportError:  # no bridge driver installed: no default bridge either
            bridge = ""
        else:
            bridge = default_bridge_name(instance)
        found = []
        if bridge and Path(f"/sys/class/net/{bridge}").exists():
            subprocess.run(["ip", "link", "delete", bridge], check=False)
            found.append(f"bridge {bridge}")
        nft = shutil.which("nft")
        if nft and subprocess.run([nft, "list", "table", "ip", instance], capture_output=True).returncode == 0:
            subprocess.run([nft, "delete", "table", "ip", instance], check=False)
            found.append(f"nftables table ip {instance}")
        return found

    def __enter__(self) -> EngineDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()
