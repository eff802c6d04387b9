"""``engined-rootless``: start engined as the current (unprivileged) user inside RootlessKit, as
dockerd-rootless.sh does: a user namespace from the user's subordinate ids (newuidmap), a network
namespace with slirp4netns, writable copies of /etc and /run, and ports forwarded by RootlessKit's
builtin driver. Arguments are passed on to engined."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: the network and port drivers, as dockerd-rootless.sh's defaults (slirp4netns, builtin)
ROOTLESSKIT_FLAGS = (
    "--net=slirp4netns",
    "--mtu=65520",
    "--slirp4netns-sandbox=auto",
    "--slirp4netns-seccomp=auto",
    "--disable-host-loopback",
    "--port-driver=builtin",
    "--copy-up=/etc",
    "--copy-up=/run",
    "--propagation=rslave",
)
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class SetupError(RuntimeError):
    pass


def engined_path() -> str:
    beside = Path(sys.argv[0]).resolve().with_name("engined") if sys.argv and sys.argv[0] else None
    if beside is not None and beside.exists():
        return str(beside)
    found = Path(sys.executable).with_name("engined")
    return str(found) if found.exists() else shutil.which("engined") or "engined"


def command(engined_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The rootlesskit command line and environment that start engined rootless."""
    if os.geteuid() == 0:
        raise SetupError("engined-rootless must be run as a non-root user (as dockerd-rootless.sh)")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if not runtime_dir:
        raise SetupError("XDG_RUNTIME_DIR needs to be set (e.g. /run/user/$(id -u))")
    rootlesskit = shutil.which("rootlesskit")
    if rootlesskit is None:
        raise SetupError("rootlesskit needs to be installed (Debian: apt-get install rootlesskit)")
    env = dict(os.environ)
    path = env.get("PATH", "").split(":")
    env["PATH"] = ":".join([p for p in path if p] + [p for p in SYSTEM_PATH if p not in path])
    state_dir = os.path.join(runtime_dir, "engine-rootlesskit")
    argv = [rootlesskit, f"--state-dir={state_dir}", *ROOTLESSKIT_FLAGS, engined_path(), *engined_args]
    return argv, env


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cmd, env = command(args)
    except SetupError as exc:
        print(f"engined-rootless: {exc}", file=sys.stderr)
        return 1
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
