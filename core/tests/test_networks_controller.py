"""NetworkController with the none and host drivers: predefined networks, sandboxes, persistence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine.config import core_schema, merge
from engine.daemon import Daemon
from engine.drivers import netns
from engine.errors import Conflict, Forbidden, InvalidParameter, NotFound
from engine.networks import NetworkController
from engine.plugins import make_plugin_manager

pytestmark = pytest.mark.privileged


def make_daemon(tmp_path: Path, **config: Any) -> Daemon:
    pm = make_plugin_manager()
    schema = core_schema()
    pm.hook.engine_add_config.call_historic(kwargs={"schema": schema})
    values = {"data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec"), **config}
    if "bridge" in schema:  # the bridge plugin is installed: keep these tests to none and host
        values.setdefault("bridge", "none")
    daemon = Daemon(merge(schema, values, {}), pm, schema)
    daemon.data_root.mkdir(parents=True, exist_ok=True)
    daemon.exec_root.mkdir(parents=True, exist_ok=True)
    return daemon


@pytest.fixture
def controller(tmp_path: Path):
    ctl = NetworkController(make_daemon(tmp_path))
    ctl.start()
    yield ctl
    for cid in list(ctl.sandboxes):
        ctl.teardown_sandbox(cid)
    ctl.stop()
    assert ctl.leftovers() == []


def links_in(path: str) -> list[str]:
    from pyroute2 import IPRoute

    def names() -> list[str]:
        with IPRoute() as ipr:
            return sorted(link.get("ifname") for link in ipr.get_links())

    return netns.run_in(path, names)


def test_predefined_networks(controller: NetworkController) -> None:
    names = {n.name: n.driver for n in controller.list()}
    assert names == {"host": "host", "none": "null"}
    none = controller.inspect(controller.get("none"))
    assert none["IPAM"] == {"Driver": "default", "Options": None, "Config": []}
    assert none["Scope"] == "local" and none["Containers"] == {}


def test_predefined_networks_survive_restart(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    first = NetworkController(daemon)
    first.start()
    ids = {n.name: n.id for n in first.list()}
    first.stop()
    second = NetworkController(daemon)
    second.start()
    assert {n.name: n.id for n in second.list()} == ids
    second.stop()


def test_none_sandbox_has_only_lo(controller: NetworkController) -> None:
    cid = "a" * 64
    sb = controller.setup_sandbox(cid, "/c1", {"Hostname": "c1host"}, {"NetworkMode": "none"}, None)
    assert sb.netns_path and Path(sb.netns_path).exists()
    assert netns.is_mounted(Path(sb.netns_path))
    assert links_in(sb.netns_path) == ["lo"]
    nets = sb.network_settings["Networks"]
    assert list(nets) == ["none"]
    assert nets["none"]["NetworkID"] == controller.get("none").id
    assert nets["none"]["EndpointID"] and nets["none"]["IPAddress"] == ""
    assert sb.network_settings["SandboxKey"] == sb.netns_path
    assert sb.hostname == "c1host\n"
    assert sb.hosts.startswith("127.0.0.1\tlocalhost\n")
    assert "nameserver 127." not in sb.resolv_conf
    assert controller.sandbox_of(cid).netns_path == sb.netns_path
    # a second setup is the same sandbox
    assert controller.setup_sandbox(cid, "/c1", {}, {"NetworkMode": "none"}).netns_path == sb.netns_path
    controller.teardown_sandbox(cid)
    assert not Path(sb.netns_path).exists()
    assert controller.sandbox_of(cid) is None
    controller.teardown_sandbox(cid)  # idempotent


def test_host_sandbox_uses_host_namespace(controller: NetworkController) -> None:
    cid = "b" * 64
    warnings = controller.validate_container({}, {"NetworkMode": "host", "PortBindings": {"80/tcp": [{}]}}, None)
    assert warnings == ["Published ports are discarded when using host network mode"]
    sb = controller.setup_sandbox(cid, "c2", {}, {"NetworkMode": "host", "ExtraHosts": ["foo:10.1.2.3"]})
    assert sb.netns_path is None
    assert sb.network_settings["Networks"]["host"]["NetworkID"] == controller.get("host").id
    assert sb.network_settings["Ports"] == {}
    assert sb.hosts.endswith("10.1.2.3\tfoo\n")
    assert sb.hostname == os.uname().nodename + "\n"
    controller.teardown_sandbox(cid)


def test_container_mode_shares_sandbox(controller: NetworkController) -> None:
    a, b = "c" * 64, "d" * 64
    first = controller.setup_sandbox(a, "a", {}, {"NetworkMode": "none"})
    second = controller.setup_sandbox(b, "b", {}, {"NetworkMode": f"container:{a}"})
    assert second.netns_path == first.netns_path
    assert second.network_settings["Networks"] == {}
    controller.teardown_sandbox(b)
    assert Path(first.netns_path).exists()  # the owner's namespace stays
    controller.teardown_sandbox(a)
    assert not Path(first.netns_path).exists()
    with pytest.raises(Conflict):
        controller.setup_sandbox(b, "b", {}, {"NetworkMode": f"container:{a}"})


def test_errors(controller: NetworkController) -> None:
    with pytest.raises(NotFound, match="network nope not found"):
        controller.setup_sandbox("e" * 64, "e", {}, {"NetworkMode": "nope"})
    with pytest.raises(Forbidden, match="pre-defined network"):
        controller.remove("none")
    with pytest.raises(Forbidden):
        controller.create_network("mine", "host")
    with pytest.raises(NotFound, match='plugin "nope" not found'):
        controller.create_network("mine", "nope")
    with pytest.raises(InvalidParameter, match="user defined networks only"):
        controller.validate_container(
            {}, {"NetworkMode": "none"}, {"EndpointsConfig": {"none": {"IPAMConfig": {"IPv4Address": "10.0.0.5"}}}}
        )
    assert controller.sandboxes == {}


def test_stale_sandbox_removed_at_start(tmp_path: Path) -> None:
    """A kill -9 leaves the namespace file and the record; the next start removes both."""
    daemon = make_daemon(tmp_path)
    first = NetworkController(daemon)
    first.start()
    sb = first.setup_sandbox("f" * 64, "f", {}, {"NetworkMode": "none"})
    # no stop(): as after kill -9
    second = NetworkController(daemon)
    second.start()
    assert second.sandbox_of("f" * 64) is None
    assert not Path(sb.netns_path).exists()
    second.stop()
    assert second.leftovers() == []


def test_orphaned_pool_released_at_start(tmp_path: Path) -> None:
    """A crash between reserving a network's pool and saving the network must not block the subnet forever."""
    daemon = make_daemon(tmp_path)
    ctl = NetworkController(daemon)
    ctl.start()
    ctl.ipam.request_pool("f" * 64 + "-0", "10.215.9.0/24")  # as a create cut short would leave it
    ctl.stop()
    again = NetworkController(daemon)
    again.start()
    assert again.ipam.get_pool("f" * 64 + "-0") is None
    again.stop()
