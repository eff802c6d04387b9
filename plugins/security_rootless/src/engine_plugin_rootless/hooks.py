"""Rootless containers' OCI specs, as dockerd's rootless specconv (ToRootless): without writable
cgroups (cgroup v1, no systemd delegation) a container gets no cgroup settings at all, and its OOM
score adjustment can only be raised (lowering it needs privileges the daemon lacks)."""

from __future__ import annotations

from typing import Any

from engine.drivers import hookimpl
from engine_plugin_rootless import userns


@hookimpl
def engine_security_container_spec(container: Any, spec: dict[str, Any]) -> None:
    if not userns.in_user_namespace():
        return
    linux = spec.setdefault("linux", {})
    if not userns.cgroups_writable():
        linux.pop("resources", None)
        linux.pop("cgroupsPath", None)
    process = spec.get("process") or {}
    floor = userns.current_oom_score_adj()
    if "oomScoreAdj" in process and process["oomScoreAdj"] < floor:
        process["oomScoreAdj"] = floor
