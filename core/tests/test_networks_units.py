"""The pure parts of networking: the default IPAM, /etc/hosts and resolv.conf contents, DNS messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.networks import dnsmsg, etcfiles
from engine.networks.ipam import AddressInUse, DefaultIPAM, NoAvailableAddresses, PoolOverlap, split_pools

# ---- IPAM --------------------------------------------------------------------------------------------


def test_default_pools_skip_routed_and_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    from engine.networks import ipam as ipam_module

    monkeypatch.setattr(ipam_module, "host_routes_v4", lambda: [ipaddress.ip_network("10.213.0.0/24")])
    ipam = DefaultIPAM(tmp_path)
    assert str(ipam.request_pool("a").subnet) == "10.213.1.0/24"  # .0 is routed on the host
    assert str(ipam.request_pool("b").subnet) == "10.213.2.0/24"
    with pytest.raises(PoolOverlap, match="Pool overlaps with other one on this address space"):
        ipam.request_pool("c", "10.213.2.128/25")
    custom = DefaultIPAM(tmp_path / "custom", [{"base": "10.250.0.0/22", "size": 26}])
    assert str(custom.request_pool("x").subnet) == "10.250.0.0/26"
    assert len(split_pools([{"base": "10.250.0.0/22", "size": 26}])) == 16


def test_serial_allocation_and_release(tmp_path: Path) -> None:
    ipam = DefaultIPAM(tmp_path)
    ipam.request_pool("p", "192.168.77.0/29")
    assert str(ipam.request_address("p", owner="gateway")) == "192.168.77.1"
    got = [str(ipam.request_address("p", persist=False)) for _ in range(5)]
    assert got == [f"192.168.77.{i}" for i in range(2, 7)]  # never .0 or the broadcast .7
    with pytest.raises(NoAvailableAddresses):
        ipam.request_address("p")
    ipam.release_address("p", "192.168.77.3", persist=False)
    assert str(ipam.request_address("p")) == "192.168.77.3"
    with pytest.raises(AddressInUse, match="Address already in use"):
        ipam.request_address("p", "192.168.77.2")


def test_state_survives_restart_and_reconcile(tmp_path: Path) -> None:
    ipam = DefaultIPAM(tmp_path)
    ipam.request_pool("p", "10.77.0.0/24", "10.77.0.128/25")
    ipam.request_address("p", "10.77.0.1", owner="gateway")
    ipam.request_address("p", persist=False)  # an endpoint's: re-declared by the controller at start
    again = DefaultIPAM(tmp_path)
    pool = again.get_pool("p")
    assert pool is not None and str(pool.ip_range) == "10.77.0.128/25" and list(pool.allocated) == ["10.77.0.1"]
    stale = again.reconcile("p", {"10.77.0.1": "gateway", "10.77.0.128": "ep1"})
    assert stale == []
    assert str(again.request_address("p")) == "10.77.0.129"
    assert DefaultIPAM(tmp_path).get_pool("p").allocated == {"10.77.0.1": "gateway", "10.77.0.128": "ep1",
                                                             "10.77.0.129": ""}  # fmt: skip


# ---- /etc files -------------------------------------------------------------------------------------


def test_hosts_file_as_dockerd() -> None:
    extra = etcfiles.parse_extra_hosts(["db:10.0.0.9", "gw:host-gateway"], "10.213.0.1")
    text = etcfiles.build_hosts([("10.213.0.2", etcfiles.own_names("web", "example.com"))], extra)
    assert text == (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        "10.0.0.9\tdb\n10.213.0.1\tgw\n10.213.0.2\tweb.example.com web\n"
    )
    with pytest.raises(ValueError, match="invalid IP address in add-host"):
        etcfiles.validate_extra_hosts(["db:nope"], "10.213.0.1")


def test_resolv_conf_default_bridge_filters_localhost() -> None:
    host = etcfiles.ResolvConf.parse("search corp\nnameserver 127.0.0.53\nnameserver 10.1.1.1\noptions edns0\n")
    text, upstream = etcfiles.container_resolv_conf(host, etcfiles.DNSSettings([], [], []), embedded=False)
    assert text == "search corp\nnameserver 10.1.1.1\noptions edns0\n" and upstream == []
    only_local = etcfiles.ResolvConf.parse("nameserver 127.0.0.53\n")
    text, _ = etcfiles.container_resolv_conf(only_local, etcfiles.DNSSettings([], [], []), embedded=False)
    assert text == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_resolv_conf_embedded_and_flags() -> None:
    host = etcfiles.ResolvConf.parse("search corp\nnameserver 127.0.0.53\noptions edns0\n")
    text, upstream = etcfiles.container_resolv_conf(host, etcfiles.DNSSettings([], [], []), embedded=True)
    assert text == "search corp\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
    assert upstream == ["127.0.0.53"]  # forwarded from the daemon's namespace, where it is reachable
    flags = etcfiles.DNSSettings(["9.9.9.9"], ["a.test"], ["ndots:3"])
    text, upstream = etcfiles.container_resolv_conf(host, flags, embedded=True)
    assert text == "search a.test\nnameserver 127.0.0.11\noptions ndots:3\n" and upstream == ["9.9.9.9"]
    text, _ = etcfiles.container_resolv_conf(host, flags, embedded=False)
    assert text == "search a.test\nnameserver 9.9.9.9\noptions ndots:3\n"


# ---- DNS messages -----------------------------------------------------------------------------------


def test_dns_query_and_response_round_trip() -> None:
    q = dnsmsg.parse_query(dnsmsg.build_query("Web.MyNet", dnsmsg.TYPE_A, qid=7))
    assert (q.id, q.name, q.qtype) == (7, "web.mynet", dnsmsg.TYPE_A)
    reply = dnsmsg.response(q, dnsmsg.RCODE_NOERROR, [dnsmsg.a_record("10.0.0.2"), dnsmsg.a_record("10.0.0.3")])
    assert dnsmsg.parse_answers(reply) == (0, [(dnsmsg.TYPE_A, "10.0.0.2"), (dnsmsg.TYPE_A, "10.0.0.3")])
    ptr = dnsmsg.parse_query(dnsmsg.build_query("2.0.0.10.in-addr.arpa", dnsmsg.TYPE_PTR))
    assert dnsmsg.ptr_to_ip(ptr.name) == "10.0.0.2"
    reply = dnsmsg.response(ptr, 0, [dnsmsg.ptr_record("web.mynet")])
    assert dnsmsg.parse_answers(reply) == (0, [(dnsmsg.TYPE_PTR, "web.mynet")])
    with pytest.raises(dnsmsg.DNSFormatError):
        dnsmsg.parse_query(b"\x00\x01")
