"""``engined-rootless-setup``: the one-command setup of rootless engine, as
dockerd-rootless-setuptool.sh: ``check`` the prerequisites, ``install`` a systemd user unit (or,
without systemd --user, print how to start the daemon), ``uninstall`` it."""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from engine_plugin_rootless.run import SetupError

UNIT_NAME = "engine.service"

UNIT = """[Unit]
Description=engine Application Container Engine (Rootless)

[Service]
Environment=PATH={path}
ExecStart={engined_rootless}
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
Type=simple
KillMode=mixed

[Install]
WantedBy=default.target
"""


def _subid_ranges(path: Path, user: str, uid: int) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [line for line in lines if line.split(":")[0] in (user, str(uid))]


def problems() -> list[str]:
    """What stops rootless engine here, each with its fix (empty: ready)."""
    found = []
    uid = os.geteuid()
    if uid == 0:
        return ["run engined-rootless-setup as the non-root user that will run engine"]
    user = pwd.getpwuid(uid).pw_name
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if not runtime_dir or not os.path.isdir(runtime_dir):
        found.append(f"XDG_RUNTIME_DIR is not set to an existing directory (e.g. /run/user/{uid})")
    for tool, package in (("rootlesskit", "rootlesskit"), ("slirp4netns", "slirp4netns"), ("newuidmap", "uidmap")):
        if shutil.which(tool) is None and not Path("/usr/bin", tool).exists():
            found.append(f"{tool} is missing: apt-get install {package}")
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        if not _subid_ranges(path, user, uid):
            found.append(
                f"no range for {user} in {path}: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
            )
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        found.append("/dev/net/tun is not accessible (slirp4netns needs it): chmod 0666 /dev/net/tun")
    return found


def _has_systemd_user() -> bool:
    if shutil.which("systemctl") is None:
        return False
    return subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True).returncode == 0


def _engined_rootless() -> str:
    beside = Path(sys.argv[0]).resolve().with_name("engined-rootless") if sys.argv and sys.argv[0] else None
    if beside is not None and beside.exists():
        return str(beside)
    return shutil.which("engined-rootless") or "engined-rootless"


def unit_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def install() -> int:
    found = problems()
    if found:
        print("engined-rootless-setup: cannot install rootless engine:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    socket = f"unix://{os.environ['XDG_RUNTIME_DIR']}/engine.sock"
    if _has_systemd_user():
        unit = unit_path()
        unit.parent.mkdir(parents=True, exist_ok=True)
        path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
        unit.write_text(UNIT.format(path=path, engined_rootless=_engined_rootless()))
        for args in (["daemon-reload"], ["enable", "--now", UNIT_NAME]):
            subprocess.run(["systemctl", "--user", *args], check=True)
        print(f"Installed {unit} and started it (systemctl --user status {UNIT_NAME}).")
        print(
            "To start it at boot without logging in: sudo loginctl enable-linger " + pwd.getpwuid(os.geteuid()).pw_name
        )
    else:
        print("systemd --user is not running here: start the daemon yourself with")
        print(f"  {_engined_rootless()}")
    print("and point the docker CLI at it:")
    print(f"  export DOCKER_HOST={socket}")
    return 0


def uninstall() -> int:
    unit = unit_path()
    if unit.exists():
        if _has_systemd_user():
            subprocess.run(["systemctl", "--user", "disable", "--now", UNIT_NAME], check=False)
        unit.unlink()
        if _has_systemd_user():
            subprocess.run(["systemctl", "--user", "daemon-reload"], check=False)
        print(f"Removed {unit}.")
    print("The data stays in ~/.local/share/engine; remove it with `rootlesskit rm -rf ~/.local/share/engine`.")
    return 0


def check() -> int:
    found = problems()
    for problem in found:
        print(f"  - {problem}")
    if not found:
        print("rootless engine can run here")
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engined-rootless-setup", description=__doc__)
    parser.add_argument("command", choices=("install", "uninstall", "check"))
    args = parser.parse_args(argv)
    try:
        return {"install": install, "uninstall": uninstall, "check": check}[args.command]()
    except SetupError as exc:
        print(f"engined-rootless-setup: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
