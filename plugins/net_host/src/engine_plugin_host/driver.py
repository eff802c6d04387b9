"""The ``host`` driver: containers run in the daemon's own network namespace.

Nothing is created: no namespace (``needs_sandbox = False``), no interface, no address. Ports
are not published (the container's ports already are the host's); core warns about ``-p`` at
create, as dockerd does. Only the one predefined ``host`` network exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import DRIVER_API_VERSION
from engine.drivers.network import EndpointInterface, JoinInfo, NetworkDriver, NetworkSpec, PortBinding, SandboxInfo


class HostNetworkDriver(NetworkDriver):
    name = "host"
    API_VERSION = DRIVER_API_VERSION
    uses_ipam = False
    user_creatable = False
    needs_sandbox = False
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

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, ports: list[PortBinding]
    ) -> list[PortBinding]:
        return []  # -p is ignored on the host network (dockerd warns at create)
