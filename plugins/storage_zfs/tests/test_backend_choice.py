"""Which path talks to zfs. Here (zfs-fuse, no libzfs_core) the real choice is the command, and the
reason shows in docker info. The pyzfs path cannot run on this host: its selection and its calls are
shown with a stand-in ``libzfs_core`` module (a mock, named so), recording what would be called."""

from __future__ import annotations

import sys
import types

import pytest
from engine_plugin_zfs import zfs


def test_the_command_path_runs_here_and_says_why() -> None:
    backend = zfs.choose_backend("anypool")
    assert type(backend) is zfs.CommandBackend
    assert backend.describe().startswith("zfs command (")
    assert "pyzfs not importable" in backend.describe() or "libzfs_core not working" in backend.describe()


class FakeLibzfsCore(types.ModuleType):
    """MOCK of pyzfs' libzfs_core: records calls; no zfs is touched."""

    def __init__(self, pool_exists: bool = True) -> None:
        super().__init__("libzfs_core")
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
        self.pool_exists = pool_exists

    def __getattr__(self, name: str) -> object:
        if not name.startswith("lzc_"):
            raise AttributeError(name)

        def call(*args: object, **kwargs: object) -> object:
            self.calls.append((name, args, kwargs))
            return self.pool_exists if name == "lzc_exists" else None

        return call


def test_pyzfs_is_chosen_when_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLibzfsCore()
    monkeypatch.setitem(sys.modules, "libzfs_core", fake)
    backend = zfs.choose_backend("tank")
    assert isinstance(backend, zfs.PyzfsBackend) and backend.describe() == "libzfs_core (pyzfs)"
    backend.create("tank/a", {"mountpoint": "none", "quota": "1024"})
    backend.snapshot("tank/a@b")
    backend.clone("tank/a@b", "tank/b", {"mountpoint": "none"})
    backend.destroy_later("tank/a@b")
    backend.destroy("tank/b")
    assert [(name, args) for name, args, _ in fake.calls] == [
        ("lzc_exists", (b"tank",)),
        ("lzc_create", (b"tank/a",)),
        ("lzc_snapshot", ([b"tank/a@b"],)),
        ("lzc_clone", (b"tank/b", b"tank/a@b", {b"mountpoint": b"none"})),
        ("lzc_destroy_snaps", ([b"tank/a@b"],)),
        ("lzc_destroy", (b"tank/b",)),
    ]
    assert fake.calls[1][2] == {"props": {b"mountpoint": b"none", b"quota": 1024}}
    assert fake.calls[4][2] == {"defer": True}


def test_pyzfs_that_does_not_see_the_pool_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "libzfs_core", FakeLibzfsCore(pool_exists=False))
    backend = zfs.choose_backend("tank")
    assert type(backend) is zfs.CommandBackend
    assert "libzfs_core does not see pool tank" in backend.describe()
