"""engine: a Docker-compatible container daemon.

Plugin authors import only the driver SDK, :mod:`engine.drivers` (its ``hookimpl`` marker
implements the hooks declared in :mod:`engine.hookspecs`), and :mod:`engine.errors`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("engine-core")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

# the driver SDK's version and hook marker, re-exported for core's own modules
from engine.drivers import DRIVER_API_VERSION, hookimpl

#: The Docker version and API versions engine speaks.
DOCKER_VERSION = "20.10.24"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

__all__ = ["API_VERSION", "DOCKER_VERSION", "DRIVER_API_VERSION", "MIN_API_VERSION", "__version__", "hookimpl"]
