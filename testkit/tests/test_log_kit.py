"""The log reader suite follows the one subclass convention of the three suites (``driver_name``,
``driver_options``, plus its own ``rotation_options``, ``cache`` and ``time_precision_ns``)."""

from __future__ import annotations

from engine_testkit.logs import LogReaderSuite


def test_attributes_are_the_convention() -> None:
    class Mine(LogReaderSuite):
        driver_name = "json-file"
        driver_options = {"tag": "x"}
        rotation_options = {"max-size": "10k", "max-file": "5"}

    suite = Mine()
    assert suite.driver_class().name == "json-file"
    assert (suite.driver_name, suite.driver_options, suite.rotation_options) == (
        "json-file",
        {"tag": "x"},
        Mine.rotation_options,
    )
