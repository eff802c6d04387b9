"""The host driver against engine-testkit's network conformance suite."""

from engine_testkit.network import NetworkDriverSuite


class TestHostConformance(NetworkDriverSuite):
    driver_name = "host"
