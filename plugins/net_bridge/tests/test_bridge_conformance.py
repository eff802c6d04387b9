"""The bridge driver against engine-testkit's network conformance suite."""

from engine_testkit.network import NetworkDriverSuite


class TestBridgeConformance(NetworkDriverSuite):
    driver_name = "bridge"
