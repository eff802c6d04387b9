"""Fixtures of the syslog driver's tests: one real rsyslogd per module (see rsyslog_server)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rsyslog_server import Rsyslog, start_rsyslog


@pytest.fixture(scope="module")
def rsyslog() -> Iterator[Rsyslog]:
    server = start_rsyslog()
    yield server
    server.stop()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (the formats use local time, as dockerd)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
