"""The overlay driver against engine-testkit's network conformance suite.

The suite plays core on one host; the driver needs its cluster store, so an etcd runs on loopback
for this module (started and stopped by PID), and the VXLAN underlay is loopback too.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from overlay_testhosts import Etcd, skip_reason

from engine_testkit.network import NetworkDriverSuite, free_port

PORT = free_port()


@pytest.fixture(scope="module", autouse=True)
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    store = Etcd(Path(tmp_path_factory.mktemp("etcd")), None, "127.0.0.1", PORT).start()
    try:
        yield store
    finally:
        store.stop()


class TestOverlayConformance(NetworkDriverSuite):
    driver_name = "overlay"
    daemon_config = {"cluster-store": f"etcd://127.0.0.1:{PORT}", "cluster-advertise": "127.0.0.1:2376"}
