"""Route modules, one per resource; each has ``setup(router)``."""

from engine.api.routes import networks, system, unsupported

ROUTE_MODULES = [system, unsupported, networks]
