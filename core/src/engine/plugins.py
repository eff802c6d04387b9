"""The pluggy plugin manager: hook specs, built-in plugins, entry-point plugins, tracing.

Plugins are modules (or objects) with ``@engine.hookimpl`` functions, published under the
``engine.plugins`` entry-point group. Built-ins come in through core's own entry points, so
they are loaded exactly like third-party plugins.

Environment switches (as pytest's and datasette's):

- ``ENGINE_DISABLE_PLUGIN_AUTOLOAD=1``: load no ``engine.plugins`` entry points.
- ``ENGINE_PLUGINS=a,b``: load only these entry-point names.
- ``ENGINE_BLOCKED_PLUGINS=a,b``: never load these.
- ``ENGINE_TRACE_HOOKS=1``: log every hook call and its result at debug level.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

import pluggy

from engine import hookspecs

log = logging.getLogger(__name__)

PLUGIN_GROUP = "engine.plugins"


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def make_plugin_manager(extra_plugins: list[object] | None = None) -> pluggy.PluginManager:
    """Build the manager: specs, entry-point plugins (filtered by env), then ``extra_plugins``.

    :raises pluggy.PluginValidationError: a plugin implements a hook that has no spec.
    """
    pm = pluggy.PluginManager("engine")
    pm.add_hookspecs(hookspecs)
    blocked = _names_from_env("ENGINE_BLOCKED_PLUGINS") or set()
    for name in blocked:
        pm.set_blocked(name)
    if not os.environ.get("ENGINE_DISABLE_PLUGIN_AUTOLOAD"):
        allowed = _names_from_env("ENGINE_PLUGINS")
        for ep in entry_points(group=PLUGIN_GROUP):
            if (allowed is not None and ep.name not in allowed) or ep.name in blocked:
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            pm.register(ep.load(), name=ep.name)
    for plugin in extra_plugins or []:
        pm.register(plugin)
    pm.check_pending()
    if os.environ.get("ENGINE_TRACE_HOOKS"):
        pm.trace.root.setwriter(log.debug)
        pm.enable_tracing()
    return pm


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """The names of the registered hook plugins, for ``GET /info`` and diagnostics."""
    return sorted(name for name, _ in pm.list_name_plugin() if name)
