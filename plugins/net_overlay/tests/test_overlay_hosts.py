"""Overlay networks across engines on network-namespace test hosts sharing one etcd (see conftest)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from overlay_testhosts import HostEngine, engine_config

pytestmark = [pytest.mark.privileged, pytest.mark.e2e]


def eventually(check: Callable[[], Any], what: str, deadline_s: float = 20) -> Any:
    """Poll until ``check()`` is truthy (the other engines learn through the store's watch)."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


def inspect_net(engine: HostEngine, name: str) -> dict[str, Any] | None:
    res = engine.docker.run("network", "inspect", name)
    return json.loads(res.stdout)[0] if res.returncode == 0 else None


def container_ip(engine: HostEngine, name: str, network: str) -> str:
    data = json.loads(engine.docker("inspect", name).stdout)[0]
    return data["NetworkSettings"]["Networks"][network]["IPAddress"]


def test_network_created_on_one_engine_is_seen_by_the_other(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    one.docker(
        "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.216.1.0/24",
        "--ip-range", "10.216.1.128/25", "--gateway", "10.216.1.1", "ov1",
    )  # fmt: skip
    seen = eventually(lambda: inspect_net(two, "ov1"), "ov1 on the second engine")
    mine = inspect_net(one, "ov1")
    assert seen["Id"] == mine["Id"] and seen["Scope"] == "global" and seen["Driver"] == "overlay"
    assert seen["Attachable"] is True
    assert seen["IPAM"]["Config"] == [
        {"Subnet": "10.216.1.0/24", "IPRange": "10.216.1.128/25", "Gateway": "10.216.1.1"}
    ]
    assert "com.docker.network.driver.overlay.vxlanid_list" in seen["Options"]
    assert "ov1" in two.docker("network", "ls", "--filter", "scope=global", "--format", "{{.Name}}").lines()


def test_containers_on_two_hosts_reach_each_other_by_ip_and_name(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    eventually(lambda: inspect_net(two, "ov1"), "ov1 on the second engine")
    one.docker("run", "-d", "--name", "a1", "--network", "ov1", "busybox", "sleep", "600")
    two.docker("run", "-d", "--name", "b1", "--network", "ov1", "busybox", "sleep", "600")
    ip_a, ip_b = container_ip(one, "a1", "ov1"), container_ip(two, "b1", "ov1")
    assert ip_a != ip_b
    for address in (ip_a, ip_b):
        assert ipaddress.ip_address(address) in ipaddress.ip_network("10.216.1.128/25")
    two.docker("exec", "b1", "ping", "-c", "1", "-W", "3", ip_a)
    one.docker("exec", "a1", "ping", "-c", "1", "-W", "3", ip_b)
    # the embedded DNS of each engine answers the other engine's container
    out = two.docker("exec", "b1", "nslookup", "a1").out
    assert ip_a in out
    two.docker("exec", "b1", "ping", "-c", "1", "-W", "3", "a1")
    one.docker("exec", "a1", "ping", "-c", "1", "-W", "3", "b1")


def test_a_restarted_engine_knows_the_cluster_networks_from_the_store(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    two.stop()  # its containers stop with it (no live-restore); its lease is revoked
    eventually(lambda: one.docker.run("exec", "a1", "nslookup", "b1").returncode != 0, "b1 withdrawn")
    two.start()
    assert inspect_net(two, "ov1") is not None  # never stored locally: learnt from etcd at start
    two.docker("start", "b1")
    two.docker("exec", "b1", "ping", "-c", "1", "-W", "3", container_ip(one, "a1", "ov1"))
    eventually(lambda: one.docker.run("exec", "a1", "ping", "-c", "1", "-W", "3", "b1").returncode == 0, "b1 again")


def test_static_ip_is_refused_when_another_host_holds_it(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    ip_a = container_ip(one, "a1", "ov1")
    res = two.docker.fails("run", "-d", "--name", "b2", "--network", "ov1", "--ip", ip_a, "busybox", "sleep", "60")
    assert "Address already in use" in res.stderr
    two.docker.run("rm", "-f", "b2")


def test_two_engines_starting_containers_at_once_never_share_an_address(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    runs = [
        (engine, f"p{n}{i}", engine.docker.popen("run", "-d", "--name", f"p{n}{i}", "--network", "ov1", "busybox",
                                                 "sleep", "600", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i in range(4)
        for n, engine in ((1, one), (2, two))
    ]  # fmt: skip
    try:
        for _, _, proc in runs:
            assert proc.wait(120) == 0
        addresses = [container_ip(engine, name, "ov1") for engine, name, _ in runs]
        assert len(set(addresses)) == len(addresses), addresses
    finally:
        for engine, name, _ in runs:
            engine.docker.run("rm", "-f", name)


def test_internal_network(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    one.docker("network", "create", "-d", "overlay", "--internal", "ovint")
    seen = eventually(lambda: inspect_net(two, "ovint"), "ovint on the second engine")
    assert seen["Internal"] is True
    subnet = seen["IPAM"]["Config"][0]["Subnet"]
    assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network("10.215.0.0/16"))
    two.docker("run", "-d", "--name", "i2", "--network", "ovint", "busybox", "sleep", "600")
    one.docker("run", "-d", "--name", "i1", "--network", "ovint", "busybox", "sleep", "600")
    one.docker("exec", "i1", "ping", "-c", "1", "-W", "3", "i2")
    assert "default" not in two.docker("exec", "i2", "ip", "route").out
    for engine, name in ((one, "i1"), (two, "i2")):
        engine.docker("rm", "-f", name)


def test_network_removed_on_one_host_disappears_on_all(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    eventually(lambda: inspect_net(two, "ovint"), "ovint on the second engine")
    # endpoints left everywhere: the removal is refused while another host uses the network
    two.docker("run", "-d", "--name", "r2", "--network", "ovint", "busybox", "sleep", "600")
    res = one.docker.fails("network", "rm", "ovint")
    assert "active endpoints" in res.stderr
    two.docker("rm", "-f", "r2")
    eventually(lambda: one.docker.run("network", "rm", "ovint").returncode == 0, "ovint removed on the first engine")
    eventually(lambda: inspect_net(two, "ovint") is None, "ovint gone from the second engine")


def test_encrypted_is_refused_not_sent_in_plaintext(cluster: dict[str, Any]) -> None:
    one, _ = cluster["engines"]
    res = one.docker.fails("network", "create", "-d", "overlay", "--opt", "encrypted", "ovenc")
    assert "encrypted is not supported" in res.stderr and "plaintext" in res.stderr
    assert inspect_net(one, "ovenc") is None


def test_engine_with_unreachable_store_starts_and_refuses_overlay_work(cluster: dict[str, Any]) -> None:
    hosts = cluster["hosts"]
    store = "etcd://198.18.0.99:2379"  # nothing there
    engine = HostEngine(hosts.hosts[2], root=cluster["root"] / "nostore", config=engine_config(store, "eth0"))
    try:
        engine.start()
        res = engine.docker.fails("network", "create", "-d", "overlay", "ovx")
        assert store in res.stderr and "unreachable" in res.stderr
        # local networks are served as usual
        engine.docker("network", "create", "-d", "bridge", "--subnet", "10.217.0.0/24", "loc")
        names = engine.docker("network", "ls", "--format", "{{.Name}}").lines()
        assert {"none", "host", "loc"} <= set(names) and "ovx" not in names
        engine.docker("network", "rm", "loc")
    finally:
        engine.stop()
        engine.cleanup()


def test_store_outage_keeps_traffic_refuses_overlay_work_and_reconnects(cluster: dict[str, Any]) -> None:
    one, two = cluster["engines"]
    etcd = cluster["etcd"]
    ip_b = container_ip(two, "b1", "ov1")
    etcd.stop()
    try:
        res = one.docker.fails("network", "create", "-d", "overlay", "ovback")
        assert etcd.store in res.stderr
        # the data path does not depend on the store, and neither do local listings
        one.docker("exec", "a1", "ping", "-c", "1", "-W", "3", ip_b)
        assert "ov1" in one.docker("network", "ls", "--format", "{{.Name}}").lines()
    finally:
        etcd.start()
    # the engine reconnects by itself: overlay work succeeds again and reaches the other engine
    eventually(lambda: one.docker.run("network", "create", "-d", "overlay", "ovback").returncode == 0, "reconnect")
    eventually(lambda: inspect_net(two, "ovback"), "ovback on the second engine")
    one.docker("network", "rm", "ovback")
    eventually(lambda: inspect_net(two, "ovback") is None, "ovback gone from the second engine")


def test_endpoints_of_a_dead_engine_expire(cluster: dict[str, Any]) -> None:
    one, _ = cluster["engines"]
    hosts = cluster["hosts"]
    third = HostEngine(
        hosts.hosts[2], root=cluster["root"] / "third", config=engine_config(cluster["etcd"].store, "eth0")
    )
    try:
        third.start()
        third.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=_busybox())
        eventually(lambda: inspect_net(third, "ov1"), "ov1 on the third engine")
        third.docker("run", "-d", "--name", "c3", "--network", "ov1", "busybox", "sleep", "600")
        eventually(
            lambda: "c3" in one.docker.run("exec", "a1", "nslookup", "c3").stdout, "c3 known on the first engine"
        )
        third.kill()  # no goodbye: only the lease expiry removes its endpoint from the store
        eventually(lambda: one.docker.run("exec", "a1", "nslookup", "c3").returncode != 0, "c3 expired", 40)
        third.start()  # the same data-root: the container is restored and removed properly
        third.docker("rm", "-f", "c3")
    finally:
        third.stop()
        third.cleanup()


def _busybox() -> bytes:
    from engine_testkit.busybox import busybox_rootfs_tar

    return busybox_rootfs_tar()
