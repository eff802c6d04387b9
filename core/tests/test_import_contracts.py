"""The import-linter contracts of the root pyproject.toml cover all of engine and every plugin.

The plugin contract is a forbidden-list (import-linter has no "only these" contract), so a new
top-level module of engine would silently be allowed to plugins: these tests fail until it is
listed. ``lint-imports`` itself runs first in ``make test``.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import engine

ROOT = Path(__file__).resolve().parents[2]
#: what a plugin may import of engine: the driver SDK and the errors
PUBLIC = {"engine.drivers", "engine.errors"}


def _importlinter() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _contract(contract_id: str) -> dict[str, Any]:
    return next(c for c in _importlinter()["contracts"] if c.get("id") == contract_id)


def _engine_top_level() -> set[str]:
    return {f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__)}


def _plugin_packages() -> set[str]:
    return {p.name for p in ROOT.glob("plugins/*/src/*") if (p / "__init__.py").exists()}


def test_every_plugin_package_is_analysed_and_bound() -> None:
    plugins = _plugin_packages()
    assert plugins, "no plugin packages found under plugins/*/src"
    assert plugins <= set(_importlinter()["root_packages"])
    assert set(_contract("plugins-sdk-only")["source_modules"]) == plugins


def test_plugin_contract_forbids_every_engine_module_but_the_sdk() -> None:
    expected = _engine_top_level() - PUBLIC
    assert set(_contract("plugins-sdk-only")["forbidden_modules"]) == expected


def test_sdk_contract_forbids_every_engine_module_but_the_sdk() -> None:
    contract = _contract("sdk-self-contained")
    assert contract["source_modules"] == ["engine.drivers"]
    assert set(contract["forbidden_modules"]) == _engine_top_level() - PUBLIC


def test_plugins_do_not_import_the_engine_package_itself() -> None:
    """``from engine import hookimpl`` reaches engine's root package, which the forbidden-list
    contract cannot name without forbidding the SDK below it: the SDK's own names are the way."""
    import grimp

    plugins = sorted(_plugin_packages())
    graph = grimp.build_graph("engine", *plugins, cache_dir=None)
    offenders = [
        module
        for plugin in plugins
        for module in sorted(graph.find_descendants(plugin) | {plugin})
        if "engine" in graph.find_modules_directly_imported_by(module)
    ]
    assert not offenders, f"import engine.drivers (or engine.errors) instead of engine in: {offenders}"
