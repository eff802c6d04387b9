"""json-file against the log reader conformance suite (moby's loggertest.Reader cases)."""

from engine_testkit.logs import LogReaderSuite


class TestJsonFileReader(LogReaderSuite):
    driver_name = "json-file"
    rotation_options = {"max-size": "10k", "max-file": "5"}
