"""engine-plugin-rootless without RootlessKit: the spec shaping, engined-rootless's command line
and the setup tool's checks (the e2e test tests/test_rootless.py runs the real thing as a user)."""

from __future__ import annotations

import pytest
from engine_plugin_rootless import hooks, run, setup, userns


def _spec() -> dict:
    return {
        "process": {"oomScoreAdj": -500},
        "linux": {"resources": {"memory": {"limit": 1}}, "cgroupsPath": "/engine/x"},
    }


def test_outside_a_user_namespace_nothing_changes(monkeypatch):
    monkeypatch.setattr(userns, "in_user_namespace", lambda: False)
    spec = _spec()
    hooks.engine_security_container_spec(container=None, spec=spec)
    assert spec == _spec()


def test_without_writable_cgroups_the_container_gets_none(monkeypatch):
    monkeypatch.setattr(userns, "in_user_namespace", lambda: True)
    monkeypatch.setattr(userns, "cgroups_writable", lambda: False)
    monkeypatch.setattr(userns, "current_oom_score_adj", lambda: 0)
    spec = _spec()
    hooks.engine_security_container_spec(container=None, spec=spec)
    assert "resources" not in spec["linux"] and "cgroupsPath" not in spec["linux"]
    assert spec["process"]["oomScoreAdj"] == 0  # only raised, never below the daemon's


def test_with_writable_cgroups_limits_stay(monkeypatch):
    monkeypatch.setattr(userns, "in_user_namespace", lambda: True)
    monkeypatch.setattr(userns, "cgroups_writable", lambda: True)
    monkeypatch.setattr(userns, "current_oom_score_adj", lambda: -1000)
    spec = _spec()
    hooks.engine_security_container_spec(container=None, spec=spec)
    assert spec == _spec()


def test_this_test_runs_in_the_host_user_namespace():
    assert userns.in_user_namespace() is False


def test_engined_rootless_command(monkeypatch):
    monkeypatch.setattr(run.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setattr(run.shutil, "which", lambda name: f"/usr/bin/{name}")
    argv, env = run.command(["--debug"])
    assert argv[0] == "/usr/bin/rootlesskit"
    assert "--state-dir=/run/user/1000/engine-rootlesskit" in argv
    assert "--net=slirp4netns" in argv and "--port-driver=builtin" in argv
    assert argv[-2].endswith("engined") and argv[-1] == "--debug"
    assert "/usr/sbin" in env["PATH"].split(":")  # nft and ip live there


def test_engined_rootless_needs_a_runtime_dir(monkeypatch):
    monkeypatch.setattr(run.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(run.SetupError, match="XDG_RUNTIME_DIR needs to be set"):
        run.command([])


def test_engined_rootless_refuses_root():
    with pytest.raises(run.SetupError, match="non-root user"):
        run.command([])


def test_setup_check_refuses_root(capsys):
    assert setup.main(["check"]) == 1
    assert "non-root user" in capsys.readouterr().out
