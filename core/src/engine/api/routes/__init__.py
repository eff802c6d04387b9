"""Route modules, one per resource; each has ``setup(router)``."""

from engine.api.routes import build, containers, exec, images, logs, networks, system, unsupported, volumes

ROUTE_MODULES = [system, unsupported, networks, images, logs, containers, exec, volumes, build]
