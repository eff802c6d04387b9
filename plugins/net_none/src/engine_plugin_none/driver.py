"""The ``null`` driver: a container on ``none`` gets its own network namespace with only ``lo``.

Core creates the namespace (and brings ``lo`` up); there is no interface, address or route to
add, so every data-path method is a no-op. Only the one predefined ``none`` network exists.
"""

from __future__ import annotations

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.network import NoDataPathNetworkDriver


class NullNetworkDriver(NoDataPathNetworkDriver):
    name = "null"
    API_VERSION = DRIVER_API_VERSION
