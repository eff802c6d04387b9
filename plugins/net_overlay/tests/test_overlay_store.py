"""The cluster state against a real etcd on loopback: allocations racing from two engines, TLS."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_plugin_overlay.etcd import Etcd as EtcdClient
from engine_plugin_overlay.store import ClusterState
from overlay_testhosts import Etcd, skip_reason

from engine.drivers.cluster import parse_cluster
from engine.errors import Forbidden, Unavailable
from engine_testkit.network import free_port


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    store = Etcd(Path(tmp_path_factory.mktemp("etcd")), None, "127.0.0.1", free_port()).start()
    try:
        yield store
    finally:
        store.stop()


def state(store: str, name: str) -> ClusterState:
    """A cluster state as one engine has it (its own client and connections); no threads started."""
    made = ClusterState(parse_cluster({"cluster-store": store}), name)
    made.me = name
    return made


def race(count: int, fn) -> list[object]:
    """Run ``fn(i)`` in ``count`` threads released at the same instant; results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_engines_allocating_at_once_never_share_an_address(etcd: Etcd) -> None:
    engines = [state(etcd.store, "e1"), state(etcd.store, "e2")]
    subnet = ipaddress.IPv4Network("10.218.0.0/27")  # 30 hosts: the race runs the pool dry
    got = race(40, lambda i: engines[i % 2].take_address("net-race", subnet, "", "", f"ep{i}", False))
    addresses = [a for a in got if isinstance(a, ipaddress.IPv4Address)]
    failures = [e for e in got if isinstance(e, Exception)]
    assert len(addresses) == 30 and len(set(addresses)) == 30
    assert len(failures) == 10 and all("No available addresses" in str(e) for e in failures)
    engines[0].release_addresses("net-race")


def test_vnis_and_subnets_are_taken_once_across_engines(etcd: Etcd) -> None:
    engines = [state(etcd.store, "e1"), state(etcd.store, "e2")]
    vnis = race(10, lambda i: engines[i % 2].take_vni(f"net{i}"))
    assert len(set(vnis)) == 10 and all(isinstance(v, int) and v >= 4096 for v in vnis)
    subnets = race(6, lambda i: engines[i % 2].take_subnet(f"net{i}", ""))
    assert len(set(subnets)) == 6
    same = race(2, lambda i: engines[i].take_subnet(f"mine{i}", "10.219.0.0/24"))
    assert sorted(type(r).__name__ for r in same) == ["Forbidden", "str"]
    for vni in vnis:
        engines[0].release_vni(vni)
    engines[0].release_subnets([*subnets, "10.219.0.0/24"])


def test_a_static_address_is_refused_to_the_second_engine(etcd: Etcd) -> None:
    one, two = state(etcd.store, "e1"), state(etcd.store, "e2")
    subnet = ipaddress.IPv4Network("10.218.1.0/24")
    assert str(one.take_address("net-static", subnet, "", "10.218.1.9", "a", False)) == "10.218.1.9"
    with pytest.raises(Forbidden, match="Address already in use"):
        two.take_address("net-static", subnet, "", "10.218.1.9", "b", False)
    one.release_addresses("net-static")


def test_unreachable_store_names_itself() -> None:
    store = f"etcd://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match=re.escape(f"cluster store {store} is unreachable")):
        state(store, "e1").require()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def test_tls_to_the_store_with_cluster_store_opts(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    ca, server, client = tmp_path / "ca", tmp_path / "server", tmp_path / "client"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", f"{ca}.key", "-out", f"{ca}.pem")  # fmt: skip
    for who, extra in ((server, "subjectAltName=IP:127.0.0.1"), (client, "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who.name}", "-keyout", f"{who}.key",
                 "-out", f"{who}.csr")  # fmt: skip
        (tmp_path / f"{who.name}.ext").write_text(extra + "\n")
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                 "-days", "1", "-extfile", str(tmp_path / f"{who.name}.ext"), "-out", f"{who}.pem")  # fmt: skip
    port = free_port()
    tls = Etcd(tmp_path, None, "127.0.0.1", port)
    tls.url = f"https://127.0.0.1:{port}"
    tls.extra = ["--cert-file", f"{server}.pem", "--key-file", f"{server}.key",
                 "--client-cert-auth", "--trusted-ca-file", f"{ca}.pem"]  # fmt: skip
    tls.health = ["--cacert", f"{ca}.pem", "--cert", f"{client}.pem", "--key", f"{client}.key"]
    tls.start()
    try:
        opts = {"kv.cacertfile": f"{ca}.pem", "kv.certfile": f"{client}.pem", "kv.keyfile": f"{client}.key"}
        cluster = parse_cluster({"cluster-store": f"etcd://127.0.0.1:{port}", "cluster-store-opts": opts})
        client_ok = EtcdClient(cluster)
        client_ok.put("/tls/k", "v")
        assert client_ok.get("/tls/k").value == b"v"
        # without a client certificate the store refuses us, and the error names it
        no_cert = parse_cluster(
            {"cluster-store": f"etcd://127.0.0.1:{port}", "cluster-store-opts": {"kv.cacertfile": f"{ca}.pem"}}
        )
        with pytest.raises(Unavailable, match=re.escape("cluster store etcd://127.0.0.1")):
            EtcdClient(no_cert).get("/tls/k")
    finally:
        tls.stop()
