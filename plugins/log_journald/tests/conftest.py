"""Fixtures of the journald driver's tests: a real systemd-journald per module (journald_server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_plugin_journald.driver import JournaldLogDriver
from journald_server import Journald, start_journald


@pytest.fixture(scope="module")
def journald() -> Iterator[Journald]:
    server = start_journald()
    yield server
    server.stop()


@pytest.fixture
def journald_driver(journald: Journald, monkeypatch: pytest.MonkeyPatch) -> type[JournaldLogDriver]:
    """The driver class, aimed at the test journald through /proc/<pid>/root."""
    monkeypatch.setattr(JournaldLogDriver, "socket_path", journald.socket)
    monkeypatch.setattr(JournaldLogDriver, "journal_dir", journald.journal_dir)
    monkeypatch.setattr(JournaldLogDriver, "varlink_path", journald.varlink)
    return JournaldLogDriver
