"""docker network create/ls/inspect/rm/prune through the real docker CLI and docker-py.

One engined for this module (so its network leftovers can be checked after it stops): its
own exec-root gives it its own default bridge and nftables table names.
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
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon
from engine_testkit.network import free_subnet, host_links

REFERENCE = Path(__file__).parent / "data" / "dockerd" / "networks.json"


def nft_table_exists(table: str) -> bool:
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def netd() -> Iterator[EngineDaemon]:
    daemon = EngineDaemon(config={"storage-driver": "vfs", "log-driver": "json-file"})
    daemon.start()
    table = instance_name(daemon.exec_root)
    yield daemon
    assert daemon.stop() == 0, daemon.log()
    known = [p.stem for p in (daemon.data_root / "network" / "networks").glob("*.json")]
    netns_left = list((daemon.exec_root / "netns").glob("*"))
    daemon.cleanup()
    assert not nft_table_exists(table), "the daemon's nftables table outlived it"
    assert host_links(("eng-" + table[-8:],)) == [], "the default bridge outlived the daemon"
    assert host_links(tuple(f"br-{i[:12]}" for i in known)) == [], "bridges outlived the daemon"
    assert netns_left == []


@pytest.fixture(scope="module")
def dk(netd: EngineDaemon, tmp_path_factory: pytest.TempPathFactory) -> DockerCLI:
    return DockerCLI(netd.host, config_dir=tmp_path_factory.mktemp("docker-config"))


def unique(prefix: str = "n") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_ls_shows_predefined_networks(dk: DockerCLI) -> None:
    rows = [line.split() for line in dk("network", "ls").lines()[1:]]
    by_name = {r[1]: (r[2], r[3]) for r in rows}
    assert by_name["bridge"] == ("bridge", "local")
    assert by_name["host"] == ("host", "local")
    assert by_name["none"] == ("null", "local")
    assert dk("network", "ls", "-q", "--no-trunc").lines()[0].__len__() == 64


def test_inspect_predefined_matches_dockerd_shape(dk: DockerCLI) -> None:
    reference = {n["Name"]: n for n in json.loads(REFERENCE.read_text())}
    for name in ("none", "host"):
        ours = json.loads(dk("network", "inspect", name).stdout)[0]
        ref = reference[name]
        assert list(ours) == list(ref)
        for key in ("Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable", "Ingress", "ConfigFrom",
                    "ConfigOnly", "Containers", "Options", "Labels"):  # fmt: skip
            assert ours[key] == ref[key], key
    bridge = json.loads(dk("network", "inspect", "bridge").stdout)[0]
    assert bridge["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    assert bridge["Options"]["com.docker.network.bridge.name"] != "docker0"


def test_create_inspect_rm(dk: DockerCLI, netd: EngineDaemon) -> None:
    name = unique()
    subnet = free_subnet()
    base = subnet.rsplit(".", 1)[0]
    net_id = dk(
        "network", "create", "--subnet", subnet, "--ip-range", f"{base}.128/25", "--gateway", f"{base}.254",
        "--aux-address", f"r1={base}.200", "--label", "team=net", "-o", "com.docker.network.driver.mtu=1400",
        "--attachable", "--internal", name,
    ).out  # fmt: skip
    assert len(net_id) == 64
    shown = json.loads(dk("network", "inspect", name).stdout)[0]
    assert shown["Id"] == net_id and shown["Name"] == name and shown["Driver"] == "bridge"
    assert shown["IPAM"] == {
        "Driver": "default",
        "Options": {},
        "Config": [{"Subnet": subnet, "IPRange": f"{base}.128/25", "Gateway": f"{base}.254",
                    "AuxiliaryAddresses": {"r1": f"{base}.200"}}],
    }  # fmt: skip
    assert shown["Internal"] and shown["Attachable"] and not shown["EnableIPv6"]
    assert shown["Labels"] == {"team": "net"}
    assert shown["Options"] == {"com.docker.network.driver.mtu": "1400"}
    assert Path(f"/sys/class/net/br-{net_id[:12]}/mtu").read_text().strip() == "1400"
    assert dk("network", "inspect", "-f", "{{.Name}}", net_id[:12]).out == name
    assert dk("network", "rm", name).out == name
    assert not Path(f"/sys/class/net/br-{net_id[:12]}").exists()
    assert f"network {name} not found" in dk.fails("network", "inspect", name).stderr


def test_errors_as_dockerd(dk: DockerCLI) -> None:
    name = unique()
    subnet = free_subnet()
    dk("network", "create", "--subnet", subnet, name)
    try:
        err = dk.fails("network", "create", name).stderr
        assert f"network with name {name} already exists" in err
        err = dk.fails("network", "create", "--subnet", subnet, unique()).stderr
        assert "Pool overlaps with other one on this address space" in err
        assert "bridge is a pre-defined network and cannot be removed" in dk.fails("network", "rm", "bridge").stderr
        assert 'plugin "nope" not found' in dk.fails("network", "create", "-d", "nope", unique()).stderr
        assert "network nope-x not found" in dk.fails("network", "rm", "nope-x").stderr
        assert "bridge is a pre-defined network and cannot be created" in dk.fails("network", "create", "bridge").stderr
        err = dk.fails("network", "create", "-d", "host", unique()).stderr
        assert 'only one instance of "host" network is allowed' in err
    finally:
        dk("network", "rm", name)


def test_ls_filters_and_format(dk: DockerCLI) -> None:
    a, b = unique("fa"), unique("fb")
    id_a = dk("network", "create", "--label", "color=red", a).out
    dk("network", "create", "--label", "color=blue", b)
    try:
        assert dk("network", "ls", "-q", "--no-trunc", "--filter", "label=color=red").lines() == [id_a]
        names = set(dk("network", "ls", "--format", "{{.Name}}", "--filter", "label=color").lines())
        assert names == {a, b}
        assert dk("network", "ls", "--format", "{{.Name}}", "--filter", f"name={a}").lines() == [a]
        assert dk("network", "ls", "--format", "{{.Name}}", "--filter", f"id={id_a[:10]}").lines() == [a]
        builtin = set(dk("network", "ls", "--format", "{{.Name}}", "--filter", "type=builtin").lines())
        assert builtin == {"bridge", "host", "none"}
        custom = set(dk("network", "ls", "--format", "{{.Name}}", "--filter", "type=custom").lines())
        assert {a, b} <= custom and not custom & builtin
        assert set(dk("network", "ls", "--format", "{{.Name}}", "--filter", "driver=null").lines()) == {"none"}
        dangling = set(dk("network", "ls", "--format", "{{.Name}}", "--filter", "dangling=true").lines())
        assert {a, b} <= dangling and "bridge" not in dangling
        fmt = dk("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}}", "-f", f"name={b}")
        assert fmt.lines() == [f"{b} bridge local false"]
        assert "invalid filter 'bogus'" in dk.fails("network", "ls", "--filter", "bogus=1").stderr.lower()
    finally:
        dk("network", "rm", a, b)


def test_prune_and_events(dk: DockerCLI) -> None:
    since = str(time.time() - 1)
    keep, gone = unique("keep"), unique("gone")
    dk("network", "create", "--label", "keep=yes", keep)
    gone_id = dk("network", "create", gone).out
    out = dk("network", "prune", "-f", "--filter", "label!=keep=yes").stdout
    assert gone in out and keep not in out
    names = dk("network", "ls", "--format", "{{.Name}}").lines()
    assert keep in names and gone not in names and "bridge" in names
    dk("network", "rm", keep)
    events = dk(
        "events", "--since", since, "--until", str(time.time() + 1), "--filter", "type=network",
        "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}",
    ).lines()  # fmt: skip
    assert f"create {gone_id} {gone} bridge" in events
    assert f"destroy {gone_id} {gone} bridge" in events
    assert any(line.split()[0] == "prune" for line in events)  # the network service's own prune event


def test_docker_py_networks(netd: EngineDaemon) -> None:
    import docker as docker_py

    client = docker_py.DockerClient(base_url=netd.host, version="1.41", timeout=60)
    try:
        name = unique("py")
        ipam = docker_py.types.IPAMConfig(pool_configs=[docker_py.types.IPAMPool(subnet=free_subnet())])
        net = client.networks.create(name, driver="bridge", ipam=ipam, labels={"a": "b"}, check_duplicate=True)
        assert net.name == name and net.attrs["Labels"] == {"a": "b"}
        assert name in [n.name for n in client.networks.list()]
        assert client.networks.get(net.id[:12]).id == net.id
        net.remove()
        with pytest.raises(docker_py.errors.NotFound):
            client.networks.get(name)
    finally:
        client.close()
