"""The ``host`` driver: containers run in the daemon's own network namespace.

Nothing is created: no namespace (``needs_sandbox = False``), no interface, no address. Ports
are not published (the container's ports already are the host's; the base class publishes
nothing); core warns about ``-p`` at create, as dockerd does. Only the one predefined ``host``
network exists.
"""

from __future__ import annotations

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.network import NoDataPathNetworkDriver


class HostNetworkDriver(NoDataPathNetworkDriver):
    name = "host"
    API_VERSION = DRIVER_API_VERSION
    needs_sandbox = False
