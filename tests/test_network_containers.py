"""Containers on networks, end to end through the docker CLI, with real traffic between the host and
containers these tests start. One engined for the module (its own default bridge, nftables table,
and a resolv.conf source pointing at a DNS server of the test's own, so no query leaves the host);
after it stops, nothing of it may remain: bridges, veths, the table, namespaces, proxies.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.networks.controller import instance_name
from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon
from engine_testkit.network import free_port, free_subnet, host_address, host_links, http_get
from engine_testkit.network_core import TinyDNS

IMAGE = "busybox:latest"


def proxy_pids(data_root: Path) -> list[int]:
    """Proxies the bridge driver recorded and that still run (by pid and start time)."""
    from engine_plugin_bridge.ports import proxy_alive

    alive = []
    for state in (data_root / "network" / "drivers" / "bridge" / "endpoints").glob("*.json"):
        for proxy in json.loads(state.read_text()).get("proxies", []):
            if proxy_alive(proxy["pid"], proxy["start_time"]):
                alive.append(proxy["pid"])
    return alive


@pytest.fixture(scope="module")
def upstream() -> Iterator[TinyDNS]:
    dns = TinyDNS(f"127.213.{secrets.randbelow(250) + 1}.53", "10.99.99.99")
    yield dns
    dns.close()


@pytest.fixture(scope="module")
def netd(upstream: TinyDNS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineDaemon]:
    resolv = tmp_path_factory.mktemp("resolv") / "resolv.conf"
    resolv.write_text(f"search example.test\nnameserver {upstream.sock.getsockname()[0]}\nnameserver 127.0.0.53\n")
    daemon = EngineDaemon(config={"storage-driver": "overlay2"}, env={"ENGINE_RESOLV_CONF": str(resolv)})
    daemon.start()
    table = instance_name(daemon.exec_root)
    yield daemon
    assert daemon.stop() == 0, daemon.log()
    assert proxy_pids(daemon.data_root) == []
    known = [p.stem for p in (daemon.data_root / "network" / "networks").glob("*.json")]
    netns_left = list((daemon.exec_root / "netns").glob("*"))
    daemon.cleanup()
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0
    assert host_links(("eng-" + table[-8:],)) == []
    assert host_links(tuple(f"br-{i[:12]}" for i in known)) == []
    assert netns_left == []


@pytest.fixture(scope="module")
def dk(netd: EngineDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerCLI]:
    cli = DockerCLI(netd.host, config_dir=tmp_path_factory.mktemp("docker-config"))
    cli("import", "-c", 'CMD ["sh"]', "-", IMAGE, input=busybox_rootfs_tar())
    yield cli
    leftovers = cli.run("ps", "-aq").stdout.split()
    if leftovers:
        cli.run("rm", "-f", *leftovers)
    for net in cli.run("network", "ls", "-q", "--filter", "type=custom").stdout.split():
        cli.run("network", "rm", net)


@pytest.fixture
def cleanup(dk: DockerCLI) -> Iterator[list[str]]:
    """Names of containers and networks a test made, removed after it (containers first)."""
    made: list[str] = []
    yield made
    containers = [m for m in made if not m.startswith("net:")]
    if containers:
        dk.run("rm", "-f", *containers)
    for m in made:
        if m.startswith("net:"):
            dk.run("network", "rm", m[4:])


def network(dk: DockerCLI, cleanup: list[str], *args: str) -> str:
    name = f"tn-{secrets.token_hex(3)}"
    if not any(a.startswith("--subnet") for a in args):
        args = ("--subnet", free_subnet(), *args)
    dk("network", "create", *args, name)
    cleanup.append(f"net:{name}")
    return name


def start(dk: DockerCLI, cleanup: list[str], *args: str, cmd: tuple[str, ...] = ("sleep", "300")) -> str:
    name = f"tc-{secrets.token_hex(3)}"
    dk("run", "-d", "--name", name, *args, IMAGE, *cmd)
    cleanup.append(name)
    return name


def inspect(dk: DockerCLI, name: str) -> dict:
    return json.loads(dk("inspect", name).stdout)[0]


def ip_on(dk: DockerCLI, name: str, net: str) -> str:
    return inspect(dk, name)["NetworkSettings"]["Networks"][net]["IPAddress"]


def sh(dk: DockerCLI, name: str, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return dk.run("exec", name, "sh", "-c", script, **kwargs)


# ---- default bridge, none, host, container: ----------------------------------------------------------


def test_default_bridge_container(dk: DockerCLI, cleanup: list[str]) -> None:
    c = start(dk, cleanup, "--hostname", "box", "--add-host", "gw:host-gateway", "--add-host", "db:10.1.2.3")
    ns = inspect(dk, c)["NetworkSettings"]
    bridge = json.loads(dk("network", "inspect", "bridge").stdout)[0]
    gateway = bridge["IPAM"]["Config"][0]["Gateway"]
    assert ns["Gateway"] == gateway and ns["IPAddress"] and ns["Networks"]["bridge"]["NetworkID"] == bridge["Id"]
    assert ns["SandboxKey"].startswith(str(Path(dk.host[7:]).parent / "exec" / "netns"))
    hosts = sh(dk, c, "cat /etc/hosts").stdout
    assert hosts.startswith("127.0.0.1\tlocalhost\n")
    assert f"{gateway}\tgw\n" in hosts and "10.1.2.3\tdb\n" in hosts and hosts.endswith(f"{ns['IPAddress']}\tbox\n")
    resolv = sh(dk, c, "cat /etc/resolv.conf").stdout
    assert "nameserver 127." not in resolv and "search example.test" in resolv
    assert sh(dk, c, "hostname").out == "box"
    assert f"default via {gateway}" in sh(dk, c, "ip route").stdout
    assert bridge["Containers"][inspect(dk, c)["Id"]]["IPv4Address"] == f"{ns['IPAddress']}/{ns['IPPrefixLen']}"
    assert subprocess.run(["busybox", "ping", "-c", "1", "-W", "2", ns["IPAddress"]]).returncode == 0


def test_none_host_and_container_modes(dk: DockerCLI, cleanup: list[str]) -> None:
    links = dk("run", "--rm", "--network", "none", IMAGE, "ip", "-o", "link").lines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    host = dk.run("run", "--rm", "--network", "host", "-p", "9999:80", IMAGE, "ip", "-o", "link")
    assert host.returncode == 0 and "eth0" in host.stdout
    assert "Published ports are discarded when using host network mode" in host.stderr
    owner = start(dk, cleanup)
    shared = dk("run", "--rm", "--network", f"container:{owner}", IMAGE, "ip", "-o", "-4", "addr").stdout
    assert ip_on(dk, owner, "bridge") in shared
    err = dk.fails("run", "--rm", "--network", "nope-net", IMAGE, "true").stderr
    assert "network nope-net not found" in err


# ---- user-defined networks: names, isolation, connect ------------------------------------------------


def test_names_aliases_links_and_forwarding(dk: DockerCLI, cleanup: list[str], upstream: TinyDNS) -> None:
    net = network(dk, cleanup)
    web = start(dk, cleanup, "--network", net, "--network-alias", "front")
    client = start(dk, cleanup, "--network", net, "--link", f"{web}:db")
    web_ip = ip_on(dk, web, net)
    assert sh(dk, client, "cat /etc/resolv.conf").stdout == (
        "search example.test\nnameserver 127.0.0.11\noptions ndots:0\n"
    )
    for name in (web, "front", "db", f"{web}.{net}", inspect(dk, web)["Id"][:12]):
        out = sh(dk, client, f"ping -c 1 -W 2 {name}")
        assert out.returncode == 0 and f"({web_ip})" in out.stdout, (name, out.stdout, out.stderr)
    assert f"name = {web}.{net}" in sh(dk, client, f"nslookup {web_ip}").stdout
    assert "10.99.99.99" in sh(dk, client, "nslookup outside.test").stdout
    assert "outside.test" in upstream.queries
    aliases = inspect(dk, web)["NetworkSettings"]["Networks"][net]["Aliases"]
    assert aliases == ["front", inspect(dk, web)["Id"][:12]]


def test_isolation_two_networks_connect_disconnect(dk: DockerCLI, cleanup: list[str]) -> None:
    one, two = network(dk, cleanup), network(dk, cleanup)
    a = start(dk, cleanup, "--network", one)
    b = start(dk, cleanup, "--network", two)
    b_ip = ip_on(dk, b, two)
    assert sh(dk, a, f"ping -c 1 -W 1 {b_ip}").returncode != 0, "networks must be isolated"
    subnet = json.loads(dk("network", "inspect", two).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
    fixed = subnet.rsplit(".", 1)[0] + ".77"
    dk("network", "connect", "--ip", fixed, "--alias", "second", two, a)
    assert ip_on(dk, a, two) == fixed
    assert "eth1" in sh(dk, a, "ip -o link").stdout
    assert sh(dk, a, f"ping -c 1 -W 2 {b_ip}").returncode == 0
    assert sh(dk, b, "ping -c 1 -W 2 second").returncode == 0
    assert f"{fixed}\t" in sh(dk, a, "cat /etc/hosts").stdout  # hosts rewritten in place
    err = dk.fails("network", "rm", two).stderr
    assert f"error while removing network: network {two} id" in err and "has active endpoints" in err
    dk("network", "disconnect", two, a)
    assert set(inspect(dk, a)["NetworkSettings"]["Networks"]) == {one}
    assert sh(dk, a, f"ping -c 1 -W 1 {b_ip}").returncode != 0


def test_internal_and_icc_false(dk: DockerCLI, cleanup: list[str]) -> None:
    internal = network(dk, cleanup, "--internal")
    quiet = network(dk, cleanup, "-o", "com.docker.network.bridge.enable_icc=false")
    outside = start(dk, cleanup)
    a, b = start(dk, cleanup, "--network", internal), start(dk, cleanup, "--network", internal)
    assert sh(dk, a, f"ping -c 1 -W 2 {b}").returncode == 0
    assert "default" not in sh(dk, a, "ip route").stdout
    assert sh(dk, a, f"ping -c 1 -W 1 {ip_on(dk, outside, 'bridge')}").returncode != 0
    c, d = start(dk, cleanup, "--network", quiet), start(dk, cleanup, "--network", quiet)
    assert sh(dk, c, f"ping -c 1 -W 1 {ip_on(dk, d, quiet)}").returncode != 0
    assert subprocess.run(["busybox", "ping", "-c", "1", "-W", "2", ip_on(dk, d, quiet)]).returncode == 0


# ---- published ports -----------------------------------------------------------------------------------


def test_published_ports(dk: DockerCLI, cleanup: list[str]) -> None:
    port = free_port()
    web = start(
        dk, cleanup, "-p", f"{port}:80", "-P", "--expose", "81",
        cmd=("sh", "-c", "mkdir -p /www && echo served > /www/index.html && httpd -f -p 80 -h /www"),
    )  # fmt: skip
    for address in ("127.0.0.1", host_address()):
        assert http_get(address, port) == "served\n", address
    ports = dk("port", web).lines()
    assert f"80/tcp -> 0.0.0.0:{port}" in ports
    assert any(line.startswith("81/tcp -> 0.0.0.0:") for line in ports)
    shown = inspect(dk, web)
    assert shown["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert {"HostIp": "0.0.0.0", "HostPort": str(port)} in shown["NetworkSettings"]["Ports"]["80/tcp"]
    assert f"0.0.0.0:{port}->80/tcp" in dk("ps", "--filter", f"name={web}", "--format", "{{.Ports}}").out
    # the same host port again: dockerd's error, and the second container is left created, not half-wired
    second = f"tc-{secrets.token_hex(3)}"
    cleanup.append(second)
    err = dk.fails("run", "-d", "--name", second, "-p", f"{port}:80", IMAGE, "sleep", "300").stderr
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in err
    assert inspect(dk, second)["State"]["Running"] is False
    assert http_get("127.0.0.1", port) == "served\n"


def test_network_events(dk: DockerCLI, cleanup: list[str]) -> None:
    since = str(time.time() - 1)
    net = network(dk, cleanup)
    c = start(dk, cleanup, "--network", net)
    cid = inspect(dk, c)["Id"]
    dk("rm", "-f", c)
    events = dk(
        "events", "--since", since, "--until", str(time.time() + 1), "--filter", "type=network",
        "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}",
    ).lines()  # fmt: skip
    assert f"create {net} " in [e[: len(f"create {net} ")] for e in events]
    assert f"connect {net} {cid}" in events and f"disconnect {net} {cid}" in events


def test_default_bridge_links_and_dns_flags(dk: DockerCLI, cleanup: list[str]) -> None:
    web = start(dk, cleanup, "--hostname", "webhost")
    client = start(
        dk, cleanup, "--link", f"{web}:db", "--dns", "10.9.9.9", "--dns-search", "a.test", "--dns-option", "ndots:2"
    )
    hosts = sh(dk, client, "cat /etc/hosts").stdout
    assert f"{ip_on(dk, web, 'bridge')}\tdb webhost {web}\n" in hosts
    assert sh(dk, client, "cat /etc/resolv.conf").stdout == "search a.test\nnameserver 10.9.9.9\noptions ndots:2\n"
    assert sh(dk, client, "ping -c 1 -W 2 db").returncode == 0


def test_connect_created_container_joins_at_start(dk: DockerCLI, cleanup: list[str]) -> None:
    one, two = network(dk, cleanup), network(dk, cleanup)
    name = f"tc-{secrets.token_hex(3)}"
    dk("create", "--name", name, "--network", one, IMAGE, "sleep", "300")
    cleanup.append(name)
    dk("network", "connect", "--alias", "late", two, name)
    dk("start", name)
    networks = inspect(dk, name)["NetworkSettings"]["Networks"]
    assert set(networks) == {one, two} and networks[two]["IPAddress"]
    peer = start(dk, cleanup, "--network", two)
    assert sh(dk, peer, "ping -c 1 -W 2 late").returncode == 0
