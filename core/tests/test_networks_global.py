"""The controller's side of global-scope network drivers (the SDK's assign_subnets / global_networks /
peers / allocates_addresses), with two controllers sharing one in-memory store.

The driver here is a stand-in (named as such): an in-memory dict plays the cluster store, so that
core's contract is tested without etcd; engine-plugin-overlay's tests run the real thing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_networks_controller import make_daemon

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.network import (
    Capability,
    EndpointInterface,
    JoinInfo,
    NetworkDriver,
    NetworkSpec,
    Peer,
    SandboxInfo,
)
from engine.errors import NotFound
from engine.networks import NetworkController
from engine.networks.model import Endpoint
from engine.subsystems import network_controller

pytestmark = pytest.mark.privileged


class InMemoryClusterDriver(NetworkDriver):
    """Stand-in for a global-scope driver: ``store`` is shared by every instance (no data path)."""

    name = "fakeglobal"
    API_VERSION = DRIVER_API_VERSION
    capability = Capability("global", "global")
    allocates_addresses = True
    store: dict[str, Any] = {}

    def assign_subnets(self, network_id: str, subnets: list[str]) -> list[str]:
        return [s or "10.230.0.0/24" for s in subnets]

    def create_network(self, spec: NetworkSpec) -> None:
        self.store.setdefault("networks", {})[spec.network_id] = dict(spec.record)

    def delete_network(self, network_id: str) -> None:
        self.store.get("networks", {}).pop(network_id, None)

    def global_networks(self) -> list[Mapping[str, Any]] | None:
        return list(self.store.get("networks", {}).values())

    def create_endpoint(
        self, network_id: str, endpoint_id: str, iface: EndpointInterface, options: Mapping[str, Any]
    ) -> None:
        taken = self.store.setdefault("addresses", set())
        address = next(a for a in ipaddress.IPv4Network("10.230.0.0/24").hosts() if a.packed[-1] > 1 and a not in taken)
        taken.add(address)
        iface.address = ipaddress.IPv4Interface(f"{address}/24")
        self.store.setdefault("peers", {})[endpoint_id] = (network_id, options["container_name"], str(address), self)

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        self.store.get("peers", {}).pop(endpoint_id, None)

    def join(self, network_id: str, endpoint_id: str, sandbox: SandboxInfo) -> JoinInfo:
        return JoinInfo(interface_name=sandbox.ifname)

    def leave(self, network_id: str, endpoint_id: str) -> None:
        pass

    def peers(self, network_id: str) -> list[Peer]:
        return [
            Peer(name, ip)
            for nid, name, ip, owner in self.store.get("peers", {}).values()
            if nid == network_id and owner is not self
        ]


@pytest.fixture
def pair(tmp_path: Path):
    InMemoryClusterDriver.store = {}
    controllers = []
    for name in ("a", "b"):
        ctl = network_controller(make_daemon(tmp_path / name))
        ctl.start()
        drv = InMemoryClusterDriver(ctl.driver("null").context)
        ctl._drivers[InMemoryClusterDriver.name] = drv  # as driver() would after loading the entry point
        controllers.append(ctl)
    yield controllers
    for ctl in controllers:
        ctl.stop()


def test_a_global_network_shows_on_every_controller_and_goes_everywhere(pair: list[NetworkController]) -> None:
    a, b = pair
    net = a.create_network("g1", "fakeglobal", attachable=True)
    assert net.scope == "global" and net.ipam_config[0]["subnet"] == "10.230.0.0/24"
    assert not (a.root / "networks" / f"{net.id}.json").exists()  # the store's, not this engine's
    seen = b.get("g1")
    assert seen.id == net.id and seen.scope == "global" and seen.attachable
    assert last_network_event(b) == ("create", net.id)  # b's /events tell of a's network
    assert [n.name for n in b.list() if n.scope == "global"] == ["g1"]
    # an endpoint of the other engine is a peer here (what the embedded DNS answers)
    InMemoryClusterDriver.store["peers"] = {"e9": (net.id, "c9", "10.230.0.9", a._drivers["fakeglobal"])}
    assert b.peers(net.id) == [Peer("c9", "10.230.0.9")] and a.peers(net.id) == []
    InMemoryClusterDriver.store["peers"] = {}
    a.remove("g1")
    assert [n.name for n in b.list() if n.scope == "global"] == []
    assert last_network_event(b) == ("destroy", net.id)


def last_network_event(ctl: NetworkController) -> tuple[str, str]:
    events = [(e["Action"], e["Actor"]["ID"]) for e in ctl.events.history() if e["Type"] == "network"]
    return events[-1]


def test_shutdown_never_deletes_a_global_network(pair: list[NetworkController]) -> None:
    a, b = pair
    a.create_network("g2", "fakeglobal")
    a.stop()
    assert b.get("g2").scope == "global"
    a.start()


def test_a_global_network_with_a_local_container_stays_until_it_leaves(pair: list[NetworkController]) -> None:
    a, b = pair
    net = a.create_network("g3", "fakeglobal")
    b.sync_global()
    b.endpoints["e1"] = Endpoint(id="e1", network_id=net.id, container_id="c1", name="c1")
    InMemoryClusterDriver.store["networks"].pop(net.id)
    assert b.get("g3").id == net.id  # a container here still uses it
    del b.endpoints["e1"]
    with pytest.raises(NotFound):
        b.get("g3")
