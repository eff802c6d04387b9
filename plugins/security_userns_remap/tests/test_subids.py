"""userns-remap's parsing and range arithmetic (no user is created here; the e2e test
tests/test_userns_remap.py makes dockerd's dockremap user and removes it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_plugin_userns_remap import subids

from engine.drivers.storage import IdMapping
from engine.errors import ConfigError


def test_default_is_dockremap():
    assert subids.parse_remap("default") == ("dockremap", "dockremap")


def test_numeric_ids_are_names():
    assert subids.parse_remap("0:0") == ("root", "root")
    assert subids.parse_remap("root") == ("root", "root")


@pytest.mark.parametrize("value", [":x", "a:b:c"])
def test_bad_specification(value: str):
    with pytest.raises(ConfigError, match="Invalid user/group specification in --userns-remap"):
        subids.parse_remap(value)


def test_unknown_user():
    with pytest.raises(ConfigError, match="not found"):
        subids.parse_remap("no-such-user-here")


def test_root_turns_remapping_off():
    assert subids.resolve("root") is None


def test_ranges_of_a_name(tmp_path: Path):
    f = tmp_path / "subuid"
    f.write_text("alice:200000:65536\nbob:100000:65536\nalice:100000:10\n# junk\n")
    assert subids.read_ranges(f, "alice") == [(100000, 10), (200000, 65536)]
    assert subids.read_ranges(tmp_path / "missing", "alice") == []


def test_next_free_range_skips_taken_ones():
    assert subids.next_free_range([]) == 100000
    assert subids.next_free_range([(100000, 65536)]) == 165536
    assert subids.next_free_range([(100000, 65536), (165536, 65536)]) == 231072
    assert subids.next_free_range([(300000, 65536)]) == 100000


def test_several_ranges_give_consecutive_container_ids():
    assert subids.to_mappings([(100000, 10), (200000, 5)]) == (
        IdMapping(container_id=0, host_id=100000, size=10),
        IdMapping(container_id=10, host_id=200000, size=5),
    )
