"""Seccomp for containers as dockerd 20.10 applies it.

Profiles come in Docker's format (``defaultAction``, ``archMap``, ``syscalls`` whose entries may carry
``includes``/``excludes`` on capabilities, architectures and kernel versions); we resolve those for
the container's capabilities and this host and hand runc an OCI ``linux.seccomp``. Selection:
``--privileged`` or ``--security-opt seccomp=unconfined`` -> none; ``seccomp=<profile JSON>`` (the CLI
sends the file's content) -> that profile; else daemon.json ``seccomp-profile`` (a path or
"unconfined"); else the default profile, the data file ``seccomp_default.json`` beside this module
(dockerd 20.10's rules: an allowlist; namespace-creating ``clone`` flags, mount, module loading, clock
setting, ... only with the capability that guards them).
"""

from __future__ import annotations

import json
import os
import platform
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import InvalidParameter

UNCONFINED = "unconfined"
DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")

#: the machine's seccomp architecture (what ``archMap`` entries are matched against)
_NATIVE = {
    "x86_64": "SCMP_ARCH_X86_64",
    "aarch64": "SCMP_ARCH_AARCH64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "mips64": "SCMP_ARCH_MIPS64",
    "riscv64": "SCMP_ARCH_RISCV64",
}
#: the machine's Go architecture name (what ``includes``/``excludes`` ``arches`` name, as runtime.GOARCH)
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}


@cache
def _default_text() -> str:
    return DEFAULT_PROFILE.read_text()


def default_profile() -> dict[str, Any]:
    """The default profile in Docker's format (with includes/excludes); a fresh copy each time."""
    profile = json.loads(_default_text())
    profile.pop("comment", None)
    return profile


@cache
def kernel_version() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


@cache
def supported() -> bool:
    """The kernel has seccomp filters (``Seccomp:`` in /proc/self/status)."""
    try:
        return "Seccomp:" in Path("/proc/self/status").read_text()
    except OSError:
        return False


DECODE_FAILED = "Decoding seccomp profile failed"


def _min_kernel(value: Any) -> tuple[int, int]:
    """``"<kernel>.<major>"`` as dockerd's KernelVersion parses it (a bad one fails the whole profile)."""
    major, dot, minor = str(value).partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise InvalidParameter(f'{DECODE_FAILED}: invalid kernel version: "{value}", expected "<kernel>.<major>"')
    return int(major), int(minor)


def _applies(rule: dict[str, Any], caps: set[str], goarch: str) -> bool:
    """dockerd's filter: excludes first (an arch, any one of the caps, a kernel at least), then
    includes (the arch, every cap, a kernel at least). Arches are compared with the native Go arch only."""
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if goarch in (exc.get("arches") or []):
        return False
    if set(exc.get("caps") or []) & caps:
        return False
    if exc.get("minKernel") and kernel_version() >= _min_kernel(exc["minKernel"]):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if not set(inc.get("caps") or []) <= caps:
        return False
    return not (inc.get("minKernel") and kernel_version() < _min_kernel(inc["minKernel"]))


def _architectures(profile: dict[str, Any]) -> list[str] | None:
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter(
            "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'"
        )
    if profile.get("architectures"):
        return list(profile["architectures"])
    native = _NATIVE.get(platform.machine())
    for entry in profile.get("archMap") or []:
        if native and entry.get("architecture") == native:
            return [native, *(entry.get("subArchitectures") or [])]
    return None  # libseccomp takes the native one


def to_oci(profile: dict[str, Any], capabilities: list[str]) -> dict[str, Any] | None:
    """A Docker-format profile resolved for the container's capabilities and this host -> OCI seccomp;
    None for a profile without ``defaultAction`` (dockerd treats it as no filter at all)."""
    if not profile.get("defaultAction"):
        return None
    machine = platform.machine()
    goarch = _GOARCH.get(machine, machine)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = _architectures(profile)
    if arches:
        out["architectures"] = arches
    caps = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, goarch):
            continue
        if rule.get("name") and rule.get("names"):
            raise InvalidParameter(
                "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
            )
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry: dict[str, Any] = {"names": list(names), "action": rule.get("action", "")}
        if rule.get("args"):
            entry["args"] = [
                {k: v for k, v in a.items() if k in ("index", "value", "valueTwo", "op")} for a in rule["args"]
            ]
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


def for_container(
    host_config: dict[str, Any], capabilities: list[str], daemon_profile: str = ""
) -> dict[str, Any] | None:
    """The OCI seccomp section for a container, or None (unconfined)."""
    if host_config.get("Privileged") or not supported():
        return None
    chosen: str | None = None
    for opt in host_config.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "seccomp":
            chosen = value
    if chosen is None:
        chosen = daemon_profile or ""
        if chosen and chosen != UNCONFINED:
            try:
                chosen = Path(chosen).read_text()
            except OSError as exc:
                raise InvalidParameter(f"opening seccomp profile ({chosen}) failed: {exc.strerror}") from None
    if chosen == UNCONFINED:
        return None
    if not chosen:
        return to_oci(default_profile(), capabilities)
    try:
        profile = json.loads(chosen)
    except ValueError as exc:
        raise InvalidParameter(f"{DECODE_FAILED}: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter(f"{DECODE_FAILED}: not a JSON object")
    return to_oci(profile, capabilities)
