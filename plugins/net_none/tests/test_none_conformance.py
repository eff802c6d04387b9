"""The null driver against engine-testkit's network conformance suite."""

from engine_testkit.network import NetworkDriverSuite


class TestNoneConformance(NetworkDriverSuite):
    driver_name = "null"
