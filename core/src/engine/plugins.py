"""The pluggy plugin manager: hook specs, built-in plugins, entry-point plugins, tracing.

Plugins are modules (or objects) with ``@engine.drivers.hookimpl`` functions, published under the
``engine.plugins`` entry-point group. Built-ins come in through engine-core's own entry points,
so they are loaded exactly like third-party plugins, and, as pytest's built-ins, are loaded even
when autoloading is off.

Environment switches (as pytest's and datasette's):

- ``ENGINE_DISABLE_PLUGIN_AUTOLOAD=1``: load no ``engine.plugins`` entry points but engine-core's.
- ``ENGINE_PLUGINS=a,b``: load only these third-party entry-point names (an allow-list).
- ``ENGINE_BLOCKED_PLUGINS=a,b``: never load these (built-ins included).
- ``ENGINE_TRACE_HOOKS=1``: log every hook call and its result at debug level.

A plugin that implements a hook engine does not declare stops start-up (``check_pending``).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import EntryPoint

import pluggy

from engine import entrypoints, hookspecs

log = logging.getLogger(__name__)

PLUGIN_GROUP = "engine.plugins"
CORE_DISTRIBUTION = "engine-core"


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _is_builtin(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name == CORE_DISTRIBUTION


def plugin_entry_points() -> list[EntryPoint]:
    """The ``engine.plugins`` entry points the environment switches let through, built-ins first."""
    blocked = _names_from_env("ENGINE_BLOCKED_PLUGINS") or set()
    allowed = _names_from_env("ENGINE_PLUGINS")
    autoload = not os.environ.get("ENGINE_DISABLE_PLUGIN_AUTOLOAD")
    chosen: list[EntryPoint] = []
    for ep in sorted(entrypoints.group(PLUGIN_GROUP), key=lambda e: (not _is_builtin(e), e.name)):
        if ep.name in blocked or any(c.name == ep.name for c in chosen):
            continue
        if not _is_builtin(ep) and (not autoload or (allowed is not None and ep.name not in allowed)):
            continue
        chosen.append(ep)
    return chosen


def make_plugin_manager(extra_plugins: list[object] | None = None) -> pluggy.PluginManager:
    """Build the manager: specs, entry-point plugins (filtered by env), then ``extra_plugins``.

    :raises pluggy.PluginValidationError: a plugin implements a hook that has no spec, or
        cannot be imported.
    """
    pm = pluggy.PluginManager("engine")
    pm.add_hookspecs(hookspecs)
    for name in _names_from_env("ENGINE_BLOCKED_PLUGINS") or set():
        pm.set_blocked(name)
    if os.environ.get("ENGINE_TRACE_HOOKS"):
        pm.trace.root.setwriter(lambda message: log.debug("hook: %s", message.rstrip()))
        pm.enable_tracing()
    for ep in plugin_entry_points():
        try:
            plugin = ep.load()
        except Exception as exc:
            raise pluggy.PluginValidationError(
                ep, f"plugin {ep.name!r} ({ep.value}) could not be loaded: {exc.__class__.__name__}: {exc}"
            ) from exc
        pm.register(plugin, name=ep.name)
    for plugin in extra_plugins or []:
        pm.register(plugin)
    pm.check_pending()
    return pm


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """The names of the registered hook plugins, for ``GET /info`` and diagnostics."""
    return sorted(name for name, plugin in pm.list_name_plugin() if name and plugin is not None)
