"""journald against the log reader conformance suite (moby's loggertest.Reader cases), with a real
systemd-journald (conftest's ``journald`` fixture)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_plugin_journald.driver import JournaldLogDriver

from engine.drivers.log import LogInfo
from engine_testkit.logs import LogReaderSuite


class TestJournaldReader(LogReaderSuite):
    driver_name = "journald"
    time_precision_ns = 1000  # journald keeps microseconds
    salt = ""

    @pytest.fixture(autouse=True)
    def _journal(self, journald_driver: type[JournaldLogDriver]) -> Iterator[None]:
        # one journal serves the whole module: container ids are made unique per test, the same
        # for every driver instance a test makes of one container
        self.salt = uuid.uuid4().hex
        yield

    def make_info(self, log_dir: Path, container_id: str, options: dict[str, str]) -> LogInfo:
        unique = hashlib.sha256((self.salt + container_id).encode()).hexdigest()
        return super().make_info(log_dir, unique, options)
