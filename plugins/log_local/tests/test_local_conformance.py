"""local against the log reader conformance suite (moby's loggertest.Reader cases)."""

from engine_testkit.logs import LogReaderSuite


class TestLocalReader(LogReaderSuite):
    driver_name = "local"
    rotation_options = {"max-size": "10k", "max-file": "5"}
