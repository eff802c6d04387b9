"""The ``null`` driver: a container on ``none`` gets its own network namespace with only ``lo``.

Core creates the namespace (and brings ``lo`` up); there is no interface, address or route to
add, so every data-path method is a no-op. Only the one predefined ``none`` network exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import DRIVER_API_VERSION
from engine.drivers.network import EndpointInterface, JoinInfo, NetworkDriver, NetworkSpec, SandboxInfo


class NullNetworkDriver(NetworkDriver):
    name = "null"
    API_VERSION = DRIVER_API_VERSION
    uses_ipam = False
    user_creatable = False
    exclusive = True

    def create_network(self, spec: NetworkSpec) -> None:
        pass

    def delete_network(self, network_id: str) -> None:
        pass

    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        pass

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        pass

    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        return JoinInfo()

    def leave(self, network_id: str, endpoint_id: str) -> None:
        pass
