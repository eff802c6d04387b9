"""Core's hook implementations (registered through the ``engine.plugins`` entry point ``core-builtins``)."""

from __future__ import annotations

from engine.config import ConfigSchema
from engine.drivers import hookimpl


@hookimpl
def engine_add_config(schema: ConfigSchema) -> None:
    """Core's keys are in :func:`engine.config.core_schema`; nothing more to declare here."""
