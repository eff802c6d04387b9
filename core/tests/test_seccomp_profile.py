"""engine's default seccomp profile resolves exactly as dockerd 20.10's does.

data/dockerd-seccomp-resolved.json holds what dockerd 20.10.24 wrote into the OCI config.json (the
resolved ``linux.seccomp``) on x86_64 for the default capabilities and with CAP_SYS_ADMIN added; engine's
data file, resolved for the same capabilities, must allow, refuse and filter the same syscalls."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidParameter
from engine.runtime import seccomp

REFERENCE = json.loads((Path(__file__).parent / "data" / "dockerd-seccomp-resolved.json").read_text())["cases"]


def rules(profile: dict[str, Any]) -> set[tuple[str, str, str, int | None]]:
    """(syscall, action, args, errno) for every name: how rules are grouped does not matter."""
    out = set()
    for rule in profile["syscalls"]:
        args = [{k: v for k, v in a.items() if k != "valueTwo" or v} for a in rule.get("args") or []]
        for name in rule["names"]:
            out.add((name, rule["action"], json.dumps(args, sort_keys=True), rule.get("errnoRet")))
    return out


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the reference was recorded on x86_64")
@pytest.mark.skipif(seccomp.kernel_version() < (4, 8), reason="the reference kernel allows ptrace (>= 4.8)")
@pytest.mark.parametrize("flags", list(REFERENCE))
def test_resolves_as_dockerd(flags: str) -> None:
    ref = REFERENCE[flags]
    ours = seccomp.to_oci(seccomp.default_profile(), ref["capabilities"])
    assert ours is not None
    assert ours["defaultAction"] == ref["seccomp"]["defaultAction"]
    assert ours["architectures"] == ref["seccomp"]["architectures"]
    assert rules(ours) == rules(ref["seccomp"])


def test_includes_and_excludes_use_the_native_arch_only() -> None:
    """As dockerd (runtime.GOARCH): on amd64 a rule for "x86" or "x32" alone does not apply."""
    goarch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [goarch]}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["not-" + goarch]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": [goarch]}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "1.0"}},
            {"names": ["e"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_X", "CAP_Y"]}},
            {"names": ["f"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_X", "CAP_Z"]}},
        ],
    }
    resolved = seccomp.to_oci(profile, ["CAP_X"])
    assert resolved is not None
    assert [r["names"] for r in resolved["syscalls"]] == [["a"]]
    assert [r["names"] for r in seccomp.to_oci(profile, ["CAP_X", "CAP_Y"])["syscalls"]] == [["a"], ["e"]]  # type: ignore[index]
    assert [r["names"] for r in seccomp.to_oci(profile, [])["syscalls"]] == [["a"], ["f"]]  # type: ignore[index]


def test_profile_errors_as_dockerd() -> None:
    assert seccomp.to_oci({"syscalls": []}, []) is None  # no defaultAction: no filter at all
    with pytest.raises(InvalidParameter, match="'architectures' and 'archMap' were specified"):
        seccomp.to_oci({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x"], "archMap": [{}]}, [])
    with pytest.raises(InvalidParameter, match="'name' and 'names' were specified"):
        seccomp.to_oci({"defaultAction": "A", "syscalls": [{"name": "a", "names": ["b"], "action": "A"}]}, [])
    with pytest.raises(InvalidParameter, match=re.escape('invalid kernel version: "abc", expected "<kernel>.<major>"')):
        seccomp.to_oci({"defaultAction": "A", "syscalls": [{"names": ["a"], "action": "A",
                                                              "includes": {"minKernel": "abc"}}]}, [])  # fmt: skip
