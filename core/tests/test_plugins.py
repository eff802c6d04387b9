"""The plugin manager with real ``engine.plugins`` entry points (a throwaway installed distribution)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest
from _fakedist import forget_modules, make_dist

from engine.cli import build_schema
from engine.plugins import make_plugin_manager, plugin_names

ENGINED = Path(sys.executable).with_name("engined")

AUDIT_PLUGIN = """
from engine.drivers import hookimpl

CALLS = []


@hookimpl
def engine_add_config(schema):
    schema.add("audit-log", "string", "", "Where to write the audit log", flags=("--audit-log",), owner="engine-plugin-audit")


@hookimpl
def engine_container_event(container_id, action):
    # a subset of the hook's parameters: hooks are called by keyword
    CALLS.append((container_id, action))
"""

BOGUS_PLUGIN = """
from engine.drivers import hookimpl


@hookimpl
def engine_bogus_hook(daemon):
    pass
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for var in ("ENGINE_DISABLE_PLUGIN_AUTOLOAD", "ENGINE_PLUGINS", "ENGINE_BLOCKED_PLUGINS", "ENGINE_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)
    yield site
    forget_modules("fake_engine_")


@pytest.fixture
def audit(site):
    make_dist(
        site,
        "engine-plugin-audit",
        {"engine.plugins": {"audit": "fake_engine_audit"}},
        {"fake_engine_audit.py": AUDIT_PLUGIN},
    )
    return site


def test_builtins_are_plugins_too():
    pm = make_plugin_manager()
    assert "core-builtins" in plugin_names(pm)


def test_entry_point_plugin_is_loaded_and_extends_the_schema(audit):
    pm = make_plugin_manager()
    assert {"audit", "core-builtins"} <= set(plugin_names(pm))
    schema = build_schema(pm)
    assert "audit-log" in schema and schema["audit-log"].owner == "engine-plugin-audit"
    pm.hook.engine_container_event(container_id="abc", action="start", attributes={})
    assert pm.get_plugin("audit").CALLS == [("abc", "start")]


def test_disable_autoload_keeps_only_builtins(audit, monkeypatch):
    monkeypatch.setenv("ENGINE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert plugin_names(make_plugin_manager()) == ["core-builtins"]


def test_allow_list(audit, monkeypatch):
    monkeypatch.setenv("ENGINE_PLUGINS", "something-else")
    assert "audit" not in plugin_names(make_plugin_manager())
    monkeypatch.setenv("ENGINE_PLUGINS", "something-else, audit")
    assert "audit" in plugin_names(make_plugin_manager())


def test_block_list(audit, monkeypatch):
    monkeypatch.setenv("ENGINE_BLOCKED_PLUGINS", "audit")
    pm = make_plugin_manager()
    assert "audit" not in plugin_names(pm)
    assert pm.is_blocked("audit")
    assert "audit-log" not in build_schema(pm)


def test_trace_hooks_logs_every_call(audit, monkeypatch, caplog):
    monkeypatch.setenv("ENGINE_TRACE_HOOKS", "1")
    pm = make_plugin_manager()
    with caplog.at_level(logging.DEBUG, logger="engine.plugins"):
        pm.hook.engine_container_event(container_id="abc", action="die", attributes={})
    traced = "\n".join(r.getMessage() for r in caplog.records)
    assert "engine_container_event" in traced and "abc" in traced


def test_unknown_hook_fails(site):
    make_dist(
        site,
        "engine-plugin-bogus",
        {"engine.plugins": {"bogus": "fake_engine_bogus"}},
        {"fake_engine_bogus.py": BOGUS_PLUGIN},
    )
    with pytest.raises(pluggy.PluginValidationError, match="unknown hook 'engine_bogus_hook'"):
        make_plugin_manager()


def test_plugin_that_cannot_be_imported_fails_naming_it(site):
    make_dist(
        site,
        "engine-plugin-broken",
        {"engine.plugins": {"broken": "fake_engine_broken"}},
        {"fake_engine_broken.py": "import nonexistent_module_xyz\n"},
    )
    with pytest.raises(
        pluggy.PluginValidationError, match=r"plugin 'broken' .* could not be loaded: ModuleNotFoundError"
    ):
        make_plugin_manager()


def run_engined(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    environ["PYTHONPATH"] = str(site)
    environ.update(env or {})
    return subprocess.run([str(ENGINED), *args], capture_output=True, text=True, env=environ, timeout=60)


def test_unknown_hook_stops_engined_start_up(site, tmp_path):
    make_dist(
        site,
        "engine-plugin-bogus",
        {"engine.plugins": {"bogus": "fake_engine_bogus"}},
        {"fake_engine_bogus.py": BOGUS_PLUGIN},
    )
    config = tmp_path / "daemon.json"
    config.write_text('{"log-driver": "none"}')
    proc = run_engined(site, "--config-file", str(config), "--validate")
    assert proc.returncode == 1
    assert "failed to load plugins: unknown hook 'engine_bogus_hook' in plugin" in proc.stderr
    # the same installation starts once the plugin is blocked
    proc = run_engined(site, "--config-file", str(config), "--validate", env={"ENGINE_BLOCKED_PLUGINS": "bogus"})
    assert (proc.returncode, proc.stderr.strip()) == (0, "configuration OK")


def test_plugin_keys_work_in_daemon_json_and_as_flags(audit, tmp_path):
    config = tmp_path / "daemon.json"
    config.write_text('{"log-driver": "none", "audit-log": "/var/log/audit"}')
    proc = run_engined(audit, "--config-file", str(config), "--validate")
    assert (proc.returncode, proc.stderr.strip()) == (0, "configuration OK")
    proc = run_engined(audit, "--config-file", str(config), "--audit-log", "/x", "--validate")
    assert proc.returncode == 1
    assert "audit-log: (from flag: /x, from file: /var/log/audit)" in proc.stderr
    # without the plugin the key is unknown
    proc = run_engined(audit, "--config-file", str(config), "--validate", env={"ENGINE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode == 1
    assert "the following directives don't match any configuration option: audit-log" in proc.stderr
