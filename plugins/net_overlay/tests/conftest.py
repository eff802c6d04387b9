"""The ``cluster`` fixture: etcd and two engines on network-namespace test hosts (see overlay_testhosts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from overlay_testhosts import STORE_IP, Etcd, HostEngine, NetnsHosts, engine_config, skip_reason

from engine_testkit.busybox import busybox_rootfs_tar


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """etcd and two engines on two test hosts, busybox imported on both."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("overlay")
    hosts = NetnsHosts(3)
    etcd = Etcd(root, hosts.switch, STORE_IP)
    engines: list[HostEngine] = []
    try:
        etcd.start()
        for host in hosts.hosts[:2]:
            engine = HostEngine(host, root=root / host, config=engine_config(etcd.store, "eth0"))
            engines.append(engine)
            engine.start()
        tar = busybox_rootfs_tar()
        for engine in engines:
            engine.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=tar)
        yield {"hosts": hosts, "etcd": etcd, "engines": engines, "root": root}
    finally:
        problems = []
        for engine in engines:
            engine.docker.run("rm", "-f", *engine.docker.run("ps", "-aq").lines())
            engine.stop()
            left = [str(p) for p in (engine.exec_root / "overlay").glob("*")] if engine.exec_root.exists() else []
            problems += left
            try:
                engine.cleanup()
            except AssertionError as exc:
                problems.append(str(exc))
        etcd.stop()
        hosts.delete()
        problems += hosts.leftovers()
        assert not problems, f"left behind: {problems}"
