"""The dual-logging cache (in front of a driver that cannot read back) against the log reader suite."""

from engine_testkit.logs import LogReaderSuite


class TestCacheReader(LogReaderSuite):
    driver_name = "none"
    cache = True
    rotation_options = {"cache-max-size": "10k", "cache-max-file": "5"}
