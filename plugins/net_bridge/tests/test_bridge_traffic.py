"""The bridge driver with real traffic between the host and namespaces these tests make.

Every test gets its own controller (own exec-root: own default bridge and nftables table
names) and ends with a leak check: no bridge, veth, namespace, table or proxy left.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError, Forbidden, InvalidParameter
from engine_testkit.network import (
    BUSYBOX,
    TCPEcho,
    free_port,
    free_subnet,
    host_address,
    in_sandbox,
    skip_reason,
    tcp_get,
)
from engine_testkit.network_core import TinyDNS, dismantle, make_controller

pytestmark = pytest.mark.privileged


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    made: list[Any] = []

    def factory(**config: Any) -> Any:
        ctl = make_controller(tmp_path / f"c{len(made)}", config)
        ctl.start()
        ctl.test_config = config  # what a restarted controller in the test is made with
        made.append(ctl)
        return ctl

    yield factory
    for ctl in made:
        dismantle(ctl)
        assert ctl.leftovers() == []
        assert not list(ctl.netns_dir.glob("*"))


def run(ctl: Any, network: str = "bridge", name: str = "", **host_config: Any) -> Any:
    cid = secrets.token_hex(32)
    config = host_config.pop("config", {})
    networking = host_config.pop("networking", None)
    return ctl.setup_sandbox(cid, name or f"c{cid[:6]}", config, {"NetworkMode": network, **host_config}, networking)


def ip_of(sb: Any, network: str) -> str:
    return sb.network_settings["Networks"][network]["IPAddress"]


def ping(sb: Any, ip: str) -> bool:
    return in_sandbox(sb.netns_path if sb else None, BUSYBOX, "ping", "-c", "1", "-W", "1", ip).returncode == 0


def new_net(ctl: Any, **kwargs: Any) -> Any:
    ipam = kwargs.pop("ipam", None) or {"Config": [{"Subnet": free_subnet()}]}
    return ctl.create_network(f"t-{secrets.token_hex(3)}", "bridge", ipam=ipam, **kwargs)


def restarted(ctl: Any) -> Any:
    """A new controller on ``ctl``'s directories (a daemon restart with live-restore); ``ctl`` forgets
    what it had, so the fixture's teardown leaves the adopted objects to the new one."""
    again = make_controller(ctl.root.parent.parent, ctl.test_config)
    again.start()
    ctl.sandboxes.clear()
    ctl.endpoints.clear()
    ctl.networks.clear()
    return again


# ---- default bridge -------------------------------------------------------------------------------


def test_default_bridge_shape(make: Callable[..., Any]) -> None:
    ctl = make()
    bridge = ctl.inspect(ctl.get("bridge"))
    opts = bridge["Options"]
    assert opts["com.docker.network.bridge.default_bridge"] == "true"
    assert opts["com.docker.network.bridge.name"].startswith("eng-")  # a test daemon's own name, never docker0
    assert opts["com.docker.network.driver.mtu"] == "1500"
    cfg = bridge["IPAM"]["Config"][0]
    assert cfg["Subnet"].startswith("10.213.") and cfg["Gateway"].endswith(".1")
    sb = run(ctl)
    ns = sb.network_settings
    assert ns["IPAddress"] and ns["Gateway"] == cfg["Gateway"] and ns["IPPrefixLen"] == 24
    octets = [int(x) for x in ns["IPAddress"].split(".")]
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{o:02x}" for o in octets)
    assert f"{ns['IPAddress']}\t{sb.container_id[:12]}" in sb.hosts
    assert "nameserver 127." not in sb.resolv_conf
    route = in_sandbox(sb.netns_path, "ip", "route").stdout
    assert f"default via {cfg['Gateway']} dev eth0" in route
    assert ping(None, ns["IPAddress"])


def test_bip_and_fixed_cidr(make: Callable[..., Any]) -> None:
    subnet = free_subnet()
    base = subnet.rsplit(".", 1)[0]
    ctl = make(bip=f"{base}.1/24", **{"fixed-cidr": f"{base}.128/25"})
    cfg = ctl.inspect(ctl.get("bridge"))["IPAM"]["Config"][0]
    assert cfg == {"Subnet": subnet, "IPRange": f"{base}.128/25", "Gateway": f"{base}.1"}
    assert ip_of(run(ctl), "bridge") == f"{base}.128"  # as libnetwork: the range starts at its first address


# ---- user-defined networks --------------------------------------------------------------------------


def test_user_network_options_and_static_ip(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    subnet = free_subnet()
    base = subnet.rsplit(".", 1)[0]
    name = f"tb{secrets.token_hex(3)}"
    net = ctl.create_network(
        "opts",
        "bridge",
        options={"com.docker.network.bridge.name": name, "com.docker.network.driver.mtu": "1400"},
        ipam={"Config": [{"Subnet": subnet, "IPRange": f"{base}.64/26", "Gateway": f"{base}.254",
                          "AuxiliaryAddresses": {"router": f"{base}.65"}}]},
    )  # fmt: skip
    assert Path(f"/sys/class/net/{name}").exists()
    assert Path(f"/sys/class/net/{name}/mtu").read_text().strip() == "1400"
    first = run(ctl, "opts")
    assert ip_of(first, "opts") == f"{base}.64"  # the range's first address is a host address of the subnet
    fixed = run(
        ctl, "opts", config={"MacAddress": "02:42:aa:bb:cc:dd"},
        networking={"EndpointsConfig": {"opts": {"IPAMConfig": {"IPv4Address": f"{base}.10"}}}},
    )  # fmt: skip
    settings = fixed.network_settings["Networks"]["opts"]
    assert settings["IPAddress"] == f"{base}.10" and settings["MacAddress"] == "02:42:aa:bb:cc:dd"
    assert settings["Gateway"] == f"{base}.254"
    assert settings["IPAMConfig"] == {"IPv4Address": f"{base}.10"}
    with pytest.raises(Forbidden, match="Address already in use"):
        run(ctl, "opts", networking={"EndpointsConfig": {"opts": {"IPAMConfig": {"IPv4Address": f"{base}.10"}}}})
    assert ping(first, f"{base}.10")
    assert "mtu 1400" in in_sandbox(first.netns_path, "ip", "link", "show", "eth0").stdout
    shown = ctl.inspect(net)
    assert {c["IPv4Address"] for c in shown["Containers"].values()} == {f"{base}.64/24", f"{base}.10/24"}


def test_static_ip_needs_user_subnet(make: Callable[..., Any]) -> None:
    ctl = make()
    auto = ctl.create_network(f"t-{secrets.token_hex(3)}", "bridge")
    with pytest.raises(InvalidParameter, match="user configured subnets"):
        run(ctl, auto.name, networking={"EndpointsConfig": {auto.name: {"IPAMConfig": {"IPv4Address": "10.1.1.1"}}}})
    with pytest.raises(InvalidParameter, match="user defined networks only"):
        run(ctl, "bridge", networking={"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "10.1.1.1"}}}})
    assert ctl.sandboxes == {}


def test_pool_overlap(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    subnet = free_subnet()
    new_net(ctl, ipam={"Config": [{"Subnet": subnet}]})
    with pytest.raises(Forbidden, match="Pool overlaps with other one on this address space"):
        new_net(ctl, ipam={"Config": [{"Subnet": subnet}]})


def test_isolation_between_networks_and_two_networks(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    one, two = new_net(ctl), new_net(ctl)
    a = run(ctl, one.name)
    b = run(ctl, two.name)
    assert not ping(a, ip_of(b, two.name)), "bridge networks must be isolated from each other"
    # a container on both networks reaches both
    c = run(ctl, one.name)
    settings = ctl.connect(two.name, c.container_id, {})
    assert set(settings["Networks"]) == {one.name, two.name}
    assert "eth1" in in_sandbox(c.netns_path, "ip", "-o", "link").stdout
    assert ping(c, ip_of(a, one.name)) and ping(c, ip_of(b, two.name))
    settings = ctl.disconnect(two.name, c.container_id)
    assert set(settings["Networks"]) == {one.name}
    assert not ping(c, ip_of(b, two.name))


def test_internal_network(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    internal = new_net(ctl, internal=True)
    other = new_net(ctl)
    a, b = run(ctl, internal.name), run(ctl, internal.name)
    c = run(ctl, other.name)
    assert a.network_settings["Networks"][internal.name]["Gateway"] == ""
    assert "default" not in in_sandbox(a.netns_path, "ip", "route").stdout
    assert ping(a, ip_of(b, internal.name))  # inside the network: fine
    assert not ping(a, ip_of(c, other.name))  # nothing leaves it
    assert not ping(c, ip_of(a, internal.name))  # nothing enters it


def test_icc_false(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    net = new_net(ctl, options={"com.docker.network.bridge.enable_icc": "false"})
    a, b = run(ctl, net.name), run(ctl, net.name)
    assert not ping(a, ip_of(b, net.name))
    assert ping(None, ip_of(b, net.name))  # the host still reaches them


# ---- published ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", [True, False], ids=["userland-proxy", "nat-only"])
def test_published_tcp_port(make: Callable[..., Any], proxy: bool) -> None:
    ctl = make(**{"userland-proxy": proxy})
    port = free_port()
    sb = run(ctl, PortBindings={"80/tcp": [{"HostPort": str(port)}]}, config={"ExposedPorts": {"80/tcp": {}}})
    bindings = sb.network_settings["Ports"]["80/tcp"]
    assert {"HostIp": "0.0.0.0", "HostPort": str(port)} in bindings
    for address in ("127.0.0.1", host_address()):
        server = TCPEcho(sb.netns_path, 80, f"hello {address}")
        try:
            assert tcp_get(None, address, port) == f"hello {address}\n"
        finally:
            server.stop()


def test_published_udp_port_range_and_dynamic(make: Callable[..., Any]) -> None:
    ctl = make()
    start = free_port()
    sb = run(
        ctl,
        PortBindings={"53/udp": [{"HostIp": "127.0.0.1", "HostPort": f"{start}-{start + 5}"}]},
        PublishAllPorts=True,
        config={"ExposedPorts": {"53/udp": {}, "8080/tcp": {}}},
    )
    ports = sb.network_settings["Ports"]
    host_port = int(ports["53/udp"][0]["HostPort"])
    assert ports["53/udp"][0]["HostIp"] == "127.0.0.1" and start <= host_port <= start + 5
    assert int(ports["8080/tcp"][0]["HostPort"]) >= 49153
    echo = (
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 53))\n"
        "while True:\n    data, peer = s.recvfrom(100)\n    s.sendto(b'udp-ok\\n', peer)\n"
    )
    server = subprocess.Popen(["nsenter", f"--net={sb.netns_path}", "/usr/bin/python3", "-c", echo])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            for _ in range(20):
                s.sendto(b"ping\n", ("127.0.0.1", host_port))
                try:
                    assert s.recv(100) == b"udp-ok\n"
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("no UDP answer through the published port")
    finally:
        server.kill()
        server.wait()


def test_port_already_allocated_leaves_nothing_half_wired(make: Callable[..., Any]) -> None:
    ctl = make()
    port = free_port()
    run(ctl, PortBindings={"80/tcp": [{"HostPort": str(port)}]})
    before = {str(p) for p in ctl.netns_dir.iterdir()}
    with pytest.raises(EngineError, match=rf"Bind for 0.0.0.0:{port} failed: port is already allocated") as info:
        run(ctl, name="second", PortBindings={"81/tcp": [{"HostPort": str(port)}]})
    assert info.value.message.startswith("driver failed programming external connectivity on endpoint second (")
    assert {str(p) for p in ctl.netns_dir.iterdir()} == before
    assert len(ctl.sandboxes) == 1 and len(ctl.endpoints) == 1
    # a port some other program holds: docker-proxy's message
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(EngineError, match=rf"listen tcp4 0.0.0.0:{taken}: bind: address already in use"):
            run(ctl, PortBindings={"80/tcp": [{"HostPort": str(taken)}]})
    assert len(ctl.sandboxes) == 1


def test_proxies_survive_restart(make: Callable[..., Any], tmp_path: Path) -> None:
    """live-restore: the engine-proxy keeps serving while the daemon is down and is re-adopted."""
    ctl = make()
    port = free_port()
    sb = run(ctl, PortBindings={"80/tcp": [{"HostPort": str(port)}]})
    holder = subprocess.Popen(["nsenter", f"--net={sb.netns_path}", BUSYBOX, "sleep", "60"])
    try:
        ctl.stop()
        server = TCPEcho(sb.netns_path, 80, "while-down")
        try:
            assert tcp_get(None, "127.0.0.1", port) == "while-down\n"
        finally:
            server.stop()
        again = restarted(ctl)
        try:
            assert again.sandbox_of(sb.container_id) is not None
            server = TCPEcho(sb.netns_path, 80, "after")
            try:
                assert tcp_get(None, "127.0.0.1", port) == "after\n"
            finally:
                server.stop()
        finally:
            again.teardown_sandbox(sb.container_id)
            again.stop()
            assert again.leftovers() == []
    finally:
        holder.kill()
        holder.wait()


# ---- embedded DNS --------------------------------------------------------------------------------


def nslookup(sb: Any, name: str) -> str:
    out = in_sandbox(sb.netns_path, BUSYBOX, "nslookup", name, "127.0.0.11")
    return out.stdout + out.stderr


def test_embedded_dns_names_aliases_links_and_forwarding(
    make: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream_ip = f"127.213.{secrets.randbelow(250) + 1}.53"
    upstream = TinyDNS(upstream_ip, "10.99.99.99")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"search example.test\nnameserver {upstream_ip}\n")
    monkeypatch.setenv("ENGINE_RESOLV_CONF", str(resolv))
    try:
        ctl = make(bridge="none")
        net = new_net(ctl)
        web = run(ctl, net.name, name="web", networking={"EndpointsConfig": {net.name: {"Aliases": ["front"]}}})
        client = run(ctl, net.name, name="client",
                     networking={"EndpointsConfig": {net.name: {"Links": ["web:db"]}}})  # fmt: skip
        assert client.resolv_conf == "search example.test\nnameserver 127.0.0.11\noptions ndots:0\n"
        web_ip = ip_of(web, net.name)
        for name in ("web", "front", f"web.{net.name}", web.container_id[:12], "db"):
            assert f"Address: {web_ip}" in nslookup(client, name), name
        ptr = nslookup(client, web_ip)
        assert f"name = web.{net.name}" in ptr
        assert "Address: 10.99.99.99" in nslookup(client, "elsewhere.test")
        assert "elsewhere.test" in upstream.queries
        # a container on another network is not visible
        other = run(ctl, new_net(ctl).name, name="hidden")
        assert "Address: 10.99.99.99" in nslookup(client, "hidden")  # not ours: forwarded
        assert other
    finally:
        upstream.close()


def test_user_chain_rules_come_first_and_survive(make: Callable[..., Any]) -> None:
    """Chain ``user`` (DOCKER-USER): evaluated before engine's rules, kept when engine re-renders its own."""
    ctl = make(bridge="none")
    net = new_net(ctl)
    a, b = run(ctl, net.name), run(ctl, net.name)
    table = ctl.instance
    target = ip_of(b, net.name)
    rule = ["nft", "add", "rule", "ip", table, "user", "ip", "daddr", target, "drop"]
    assert subprocess.run(rule).returncode == 0
    try:
        assert not ping(a, target)
        new_net(ctl)  # engine re-renders its chains: the user's rule stays
        assert not ping(a, target)
    finally:
        subprocess.run(["nft", "flush", "chain", "ip", table, "user"], check=True)
    assert ping(a, target)


def test_ipv6_network(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    import ipaddress

    v6 = str(ipaddress.ip_network(f"fd00:{secrets.token_hex(2)}:{secrets.token_hex(2)}::/64"))  # canonical
    net = ctl.create_network(
        f"t6-{secrets.token_hex(3)}", "bridge", enable_ipv6=True,
        ipam={"Config": [{"Subnet": free_subnet()}, {"Subnet": v6}]},
    )  # fmt: skip
    prefix = v6.split("::")[0]
    assert ctl.inspect(net)["IPAM"]["Config"][1] == {"Subnet": v6, "Gateway": f"{prefix}::1"}
    a, b = run(ctl, net.name), run(ctl, net.name)
    settings = a.network_settings["Networks"][net.name]
    assert settings["IPv6Gateway"] == f"{prefix}::1" and settings["GlobalIPv6PrefixLen"] == 64
    assert settings["GlobalIPv6Address"] == f"{prefix}::2"
    other = b.network_settings["Networks"][net.name]["GlobalIPv6Address"]
    assert f"{settings['GlobalIPv6Address']}\t" in a.hosts
    assert ping(a, other)  # no duplicate address detection delay


def test_legacy_links_open_exposed_ports_under_icc_false(make: Callable[..., Any]) -> None:
    ctl = make(icc=False)
    child = run(ctl, name="child", config={"ExposedPorts": {"7000/tcp": {}}})
    parent = run(ctl, name="parent", Links=["/child:/parent/db"])
    stranger = run(ctl, name="stranger")
    child_ip = ip_of(child, "bridge")
    assert f"{child_ip}\tdb {child.hostname.strip()} child\n" in parent.hosts
    server = TCPEcho(child.netns_path, 7000, "linked")
    try:
        assert tcp_get(parent.netns_path, child_ip, 7000) == "linked\n"
    finally:
        server.stop()
    server = TCPEcho(child.netns_path, 7000, "linked")
    try:
        assert tcp_get(stranger.netns_path, child_ip, 7000, timeout=1) == ""  # icc=false: no link, no way
    finally:
        server.stop()
    assert not ping(parent, child_ip)  # only the exposed port is opened


def test_legacy_link_rules_come_back_after_a_live_restore_restart(make: Callable[..., Any]) -> None:
    ctl = make(icc=False)
    child = run(ctl, name="child", config={"ExposedPorts": {"7000/tcp": {}}})
    parent = run(ctl, name="parent", Links=["/child:/parent/db"])
    child_ip = ip_of(child, "bridge")
    # processes in the namespaces: the restarted controller adopts sandboxes that are in use
    holders = [
        subprocess.Popen(["nsenter", f"--net={sb.netns_path}", BUSYBOX, "sleep", "60"]) for sb in (child, parent)
    ]
    try:
        ctl.stop()
        again = restarted(ctl)
        try:
            server = TCPEcho(child.netns_path, 7000, "still linked")
            try:
                assert tcp_get(parent.netns_path, child_ip, 7000) == "still linked\n"
            finally:
                server.stop()
        finally:
            for sb in (parent, child):
                again.teardown_sandbox(sb.container_id)
            again.stop()
            assert again.leftovers() == []
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_default_route_moves_when_its_network_is_disconnected(make: Callable[..., Any]) -> None:
    ctl = make(bridge="none")
    one, two = new_net(ctl), new_net(ctl)
    sb = run(ctl, one.name)
    ctl.connect(two.name, sb.container_id, {})
    gw_one = sb.network_settings["Networks"][one.name]["Gateway"]
    assert f"default via {gw_one} dev eth0" in in_sandbox(sb.netns_path, "ip", "route").stdout
    settings = ctl.disconnect(one.name, sb.container_id)
    gw_two = settings["Networks"][two.name]["Gateway"]
    assert f"default via {gw_two} dev eth1" in in_sandbox(sb.netns_path, "ip", "route").stdout


def test_bridge_of_unsaved_network_removed_at_start(make: Callable[..., Any], tmp_path: Path) -> None:
    """A crash between creating a network's bridge and saving the network: the next start removes the bridge."""
    ctl = make(bridge="none")
    name = f"tb{secrets.token_hex(3)}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        state = ctl.root / "drivers" / "bridge" / "networks"
        state.mkdir(parents=True, exist_ok=True)
        (state / f"{'e' * 64}.json").write_text(json.dumps({"bridge": name, "created_bridge": True}))
        ctl.stop()
        again = make_controller(ctl.root.parent.parent, ctl.test_config)
        again.start()
        again.stop()
        assert not Path(f"/sys/class/net/{name}").exists()
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
