"""local against the log reader conformance suite (moby's loggertest.Reader cases)."""

from engine_testkit.logs import LogReaderSuite


class TestLocalReader(LogReaderSuite, driver="local", rotation={"max-size": "10k", "max-file": "5"}): ...
