"""``engine-rootlesskit-proxy``: the userland proxy of a rootless daemon, as dockerd's
rootlesskit-docker-proxy. It takes docker-proxy's arguments, asks RootlessKit to forward the host
port into the daemon's network namespace, then runs engine's own proxy there on loopback (where
RootlessKit's port driver delivers), and withdraws the forward when it is stopped."""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from engine_plugin_rootless import rootlesskit

REAL_PROXY = "engine-proxy"
READY_FD = 3


def _real_proxy() -> str:
    beside = Path(sys.argv[0]).with_name(REAL_PROXY)
    if beside.exists():
        return str(beside)
    return shutil.which(REAL_PROXY) or REAL_PROXY


def _report(message: str) -> None:
    """docker-proxy's readiness protocol: fd 3, when the daemon passed one, gets ``0`` or ``1`` and
    the error, then is closed."""
    try:
        os.write(READY_FD, message.encode())
        os.close(READY_FD)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine-rootlesskit-proxy", allow_abbrev=False)
    parser.add_argument("-proto", "--proto", default="tcp", choices=("tcp", "udp"))
    parser.add_argument("-container-ip", "--container-ip", required=True)
    parser.add_argument("-container-port", "--container-port", type=int, required=True)
    parser.add_argument("-host-ip", "--host-ip", default="0.0.0.0")
    parser.add_argument("-host-port", "--host-port", type=int, required=True)
    args = parser.parse_args(argv)
    v6 = ipaddress.ip_address(args.host_ip or "0.0.0.0").version == 6
    child_ip = "::1" if v6 else "127.0.0.1"
    try:
        port_id: int | None = rootlesskit.add_port(
            args.proto, args.host_ip or "0.0.0.0", args.host_port, child_ip, args.host_port
        )
    except rootlesskit.RootlessKitError as exc:
        if not v6:
            print(exc, file=sys.stderr)
            _report(f"1\nerror while calling PortManager.AddPort(): {exc.reason}")
            return 1
        port_id = None  # RootlessKit's network may have no IPv6: the IPv4 forward still serves
    child = subprocess.Popen(
        [
            _real_proxy(),
            "-proto", args.proto,
            "-host-ip", child_ip,
            "-host-port", str(args.host_port),
            "-container-ip", args.container_ip,
            "-container-port", str(args.container_port),
        ]
    )  # fmt: skip

    _report("0\n")

    def stop(*_: object) -> None:
        child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        code = child.wait()
    finally:
        if port_id is not None:
            try:
                rootlesskit.remove_port(port_id)
            except rootlesskit.RootlessKitError as exc:
                print(exc, file=sys.stderr)
    return 0 if code in (0, -signal.SIGTERM) else code


if __name__ == "__main__":
    sys.exit(main())
