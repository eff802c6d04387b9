"""Linux capabilities as dockerd 20.10 applies them (--cap-add, --cap-drop, ALL, --privileged)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from engine.errors import InvalidParameter

#: by capability number (linux/capability.h)
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

#: moby's default set (oci.DefaultCapabilities), in its order
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL = "ALL"


@cache
def all_capabilities() -> tuple[str, ...]:
    """Every capability this kernel has (up to /proc/sys/kernel/cap_last_cap) that the daemon itself
    may pass on (its bounding set): a privileged container cannot get more than its runtime holds,
    and asking for more fails the start ("unable to apply caps")."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(CAPABILITIES) - 1
    bounding = (1 << (last + 1)) - 1
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                bounding = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return tuple(cap for bit, cap in enumerate(CAPABILITIES[: last + 1]) if bounding >> bit & 1)


def normalize(names: list[str] | None) -> list[str]:
    """Upper-case, ``CAP_`` prefix added, ``ALL`` kept; InvalidParameter for an unknown name
    (dockerd: ``unknown capability: "CAP_FOO"``)."""
    out: list[str] = []
    for name in names or []:
        cap = name.strip().upper()
        if cap == ALL:
            out.append(ALL)
            continue
        if not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap not in CAPABILITIES:
            raise InvalidParameter(f'unknown capability: "{cap}"')
        if cap not in out:
            out.append(cap)
    return out


def tweak(add: list[str] | None, drop: list[str] | None, privileged: bool = False) -> list[str]:
    """The container's capability set: privileged -> all; ALL in add -> all minus drops; ALL in
    drop -> only the adds; else the defaults minus drops plus adds."""
    if privileged:
        return list(all_capabilities())
    adds, drops = normalize(add), normalize(drop)
    if not adds and not drops:
        return list(DEFAULT_CAPABILITIES)
    if ALL in adds:
        return [c for c in all_capabilities() if c not in drops]
    if ALL in drops:
        return [c for c in adds if c != ALL]
    caps = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    return caps + [c for c in adds if c not in caps]
