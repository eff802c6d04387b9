"""engine.entrypoints: one scan per process, redone when a distribution is installed or removed."""

from __future__ import annotations

import importlib
import shutil
from importlib.metadata import entry_points

from _fakedist import make_dist

from engine import entrypoints

GROUP = "engine.test_entrypoints_cache"


def names() -> list[str]:
    return sorted(ep.name for ep in entrypoints.group(GROUP))


def test_same_as_importlib_and_scanned_once(monkeypatch) -> None:
    for group in ("engine.plugins", "engine.storage_drivers", "engine.log_drivers", "engine.network_drivers"):
        assert list(entrypoints.group(group)) == list(entry_points(group=group))
    scans = []
    real = entrypoints.entry_points
    monkeypatch.setattr(entrypoints, "entry_points", lambda: scans.append(1) or real())
    entrypoints.group("engine.plugins")
    entrypoints.group("engine.log_drivers")
    entrypoints.group("engine.no_such_group")
    assert scans == []  # nothing was installed since the scan above


def test_installed_and_removed_distributions_are_seen(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert names() == []
    info = make_dist(site, "engine-plugin-cachetest", {GROUP: {"first": "json:dumps"}})
    assert names() == ["first"]
    make_dist(site, "engine-plugin-cachetest2", {GROUP: {"second": "json:loads"}})
    assert names() == ["first", "second"]
    shutil.rmtree(info)
    importlib.invalidate_caches()  # importlib.metadata's own directory cache needs it as well
    assert names() == ["second"]
