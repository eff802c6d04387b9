"""engine: a Docker-compatible container daemon.

Plugin authors import :data:`hookimpl` from here to implement hooks declared in
:mod:`engine.hookspecs`, and subclass the driver ABCs in :mod:`engine.drivers`.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("engine-core")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

#: Bumped only when a driver ABC changes incompatibly; drivers declare the
#: version they were written against in their ``API_VERSION`` class attribute.
DRIVER_API_VERSION = 1

#: The marker plugin modules use: ``@hookimpl def engine_add_config(schema): ...``
hookimpl = pluggy.HookimplMarker("engine")

#: The Docker version and API versions engine speaks.
DOCKER_VERSION = "20.10.24"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

__all__ = ["API_VERSION", "DOCKER_VERSION", "DRIVER_API_VERSION", "MIN_API_VERSION", "__version__", "hookimpl"]
