"""The log reader suite follows the one subclass convention of the three suites (``driver_name``,
``driver_options``, plus its own ``rotation_options``); the older class-argument spelling maps onto it."""

from __future__ import annotations

from engine_testkit.logs import LogReaderSuite


def test_attributes_are_the_convention() -> None:
    class Mine(LogReaderSuite):
        driver_name = "json-file"
        driver_options = {"tag": "x"}
        rotation_options = {"max-size": "10k", "max-file": "5"}

    suite = Mine()
    assert suite.driver_class().name == "json-file"
    assert (suite.driver, suite.options, suite.rotation) == ("json-file", {"tag": "x"}, Mine.rotation_options)


def test_the_older_class_arguments_set_the_same_attributes() -> None:
    class Old(LogReaderSuite, driver="json-file", options={"tag": "x"}, rotation={"max-size": "10k"}): ...

    assert (Old.driver_name, Old.driver_options, Old.rotation_options) == (
        "json-file",
        {"tag": "x"},
        {"max-size": "10k"},
    )
