"""Driver registries: names users write, the distribution to install, explicit-only drivers, driver API
versions, and a compliance sweep over every installed driver entry point."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from _fakedist import forget_modules, make_dist

from engine import registry
from engine import shipped as shipped_mod
from engine.drivers import DRIVER_API_VERSION
from engine.errors import DriverAPIMismatch, DriverError, DriverNotInstalled, DriverRemoved
from engine.shipped import install_hint
from engine.storage import PRIORITY

ENGINED = Path(sys.executable).with_name("engined")
KINDS = (registry.STORAGE, registry.NETWORK, registry.LOG)

FAKE_STORAGE = """
from engine.drivers import DRIVER_API_VERSION
from engine.builtin.vfs import VfsStorageDriver


class FakeDevmapper(VfsStorageDriver):
    name = "devicemapper"


class OldDriver(VfsStorageDriver):
    name = "old"
    API_VERSION = DRIVER_API_VERSION + 41


class NotADriver:
    name = "notadriver"
    API_VERSION = DRIVER_API_VERSION
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    make_dist(
        site,
        "engine-plugin-fakes",
        {
            "engine.storage_drivers": {
                "devicemapper": "fake_engine_storage:FakeDevmapper",
                "old": "fake_engine_storage:OldDriver",
                "notadriver": "fake_engine_storage:NotADriver",
                "dup": "fake_engine_storage:FakeDevmapper",
            }
        },
        {"fake_engine_storage.py": FAKE_STORAGE},
    )
    make_dist(site, "engine-plugin-dup", {"engine.storage_drivers": {"dup": "fake_engine_storage:FakeDevmapper"}})
    yield site
    forget_modules("fake_engine_")


def test_builtins_are_installed():
    assert "vfs" in registry.DriverRegistry(registry.STORAGE).names()
    assert "none" in registry.DriverRegistry(registry.LOG).names()


@pytest.mark.parametrize(
    ("kind", "name", "distribution"),
    [(registry.STORAGE, "devicemapper", "engine-plugin-devicemapper"), (registry.LOG, "syslog", "engine-plugin-syslog"),
     (registry.NETWORK, "overlay", "engine-plugin-overlay")],
)  # fmt: skip
def test_a_name_nobody_installed_names_the_distribution(kind, name, distribution):
    reg = registry.DriverRegistry(kind)
    if reg.is_installed(name):
        pytest.skip(f"{distribution} is installed here")
    with pytest.raises(DriverNotInstalled) as info:
        reg.load(name)
    assert f"{kind.kind} driver '{name}' is not installed; {install_hint(distribution)}" in str(info.value)
    assert info.value.distribution == distribution


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped", "still-to-come"])
def test_the_hint_sends_users_only_to_a_distribution_that_exists(monkeypatch, shipped):
    reg = registry.DriverRegistry(registry.STORAGE)
    if reg.is_installed("devicemapper"):
        pytest.skip("engine-plugin-devicemapper is installed here")
    others = shipped_mod.SHIPPED - {"engine-plugin-devicemapper"}
    monkeypatch.setattr(shipped_mod, "SHIPPED", others | {"engine-plugin-devicemapper"} if shipped else others)
    with pytest.raises(DriverNotInstalled) as info:
        reg.load("devicemapper")
    if shipped:
        assert (
            "is not installed; install engine-plugin-devicemapper from engine's source tree: "
            "`pip install ./plugins/storage_devmapper`"
        ) in info.value.message
    else:
        assert "pip install" not in info.value.message
        assert "it would come from engine-plugin-devicemapper, which is not available yet" in info.value.message


def test_unknown_name_has_no_distribution_hint():
    with pytest.raises(DriverNotInstalled) as info:
        registry.DriverRegistry(registry.STORAGE).load("floppy")
    assert "pip install" not in info.value.message and "installed: " in info.value.message


def test_explicit_only_drivers_are_never_auto_picked(site):
    reg = registry.DriverRegistry(registry.STORAGE)
    if "engine-plugin-devicemapper" in {d.metadata["Name"] for d in importlib.metadata.distributions()}:
        pytest.skip("the real engine-plugin-devicemapper is installed: the fake would be a duplicate")
    with pytest.raises(DriverRemoved, match="devicemapper is deprecated"):
        reg.load("devicemapper", explicit=False)
    assert reg.load("devicemapper", explicit=True).__name__ == "FakeDevmapper"
    assert "aufs" not in PRIORITY and "devicemapper" not in PRIORITY


def test_driver_api_version_mismatch(site):
    with pytest.raises(
        DriverAPIMismatch, match=f"targets driver API {DRIVER_API_VERSION + 41}, engine has {DRIVER_API_VERSION}"
    ):
        registry.DriverRegistry(registry.STORAGE).load("old")


def test_a_class_that_is_not_a_driver_is_refused(site):
    with pytest.raises(DriverError, match="is not a StorageDriver subclass"):
        registry.DriverRegistry(registry.STORAGE).load("notadriver")


def test_one_name_from_two_distributions_is_refused(site):
    with pytest.raises(
        DriverError, match="provided by more than one distribution: engine-plugin-dup, engine-plugin-fakes"
    ):
        registry.DriverRegistry(registry.STORAGE).load("dup")


def run_validate(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "daemon.json"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    return subprocess.run(
        [str(ENGINED), "--config-file", str(path), "--validate"], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("config", "distribution"),
    [('{"storage-driver": "devicemapper", "log-driver": "none"}', "engine-plugin-devicemapper"),
     ('{"log-driver": "syslog"}', "engine-plugin-syslog")],
)  # fmt: skip
def test_engined_refuses_to_start_with_a_driver_nobody_installed(tmp_path, config, distribution):
    name = distribution.removeprefix("engine-plugin-")
    kind = registry.STORAGE if "storage" in config else registry.LOG
    if registry.DriverRegistry(kind).is_installed(name):
        pytest.skip(f"{distribution} is installed here")
    proc = run_validate(tmp_path, config)
    assert proc.returncode == 1
    assert f"is not installed; {install_hint(distribution)}" in proc.stderr


# ---- compliance sweep (cinder's driver compliance check) ------------------------------------------------


def installed(kind: registry.DriverKind) -> list[str]:
    return [ep.name for ep in entry_points(group=kind.group)]


def test_every_group_has_drivers():
    assert sum(len(installed(kind)) for kind in KINDS) > 0
    assert installed(registry.STORAGE) and installed(registry.LOG)


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_driver_names_are_unique(kind):
    names = installed(kind)
    assert len(names) == len(set(names)), f"duplicate {kind.group} names: {sorted(names)}"


SWEEP = [(kind, name) for kind in KINDS for name in sorted(set(installed(kind)))]


@pytest.mark.parametrize(("kind", "name"), SWEEP, ids=[f"{k.kind}:{n}" for k, n in SWEEP])
def test_installed_driver_complies(kind, name):
    cls = registry.DriverRegistry(kind).load(name)  # subclass of the ABC and API_VERSION, checked on load
    assert issubclass(cls, kind.base_class())
    assert cls.API_VERSION == DRIVER_API_VERSION
    assert getattr(cls, "name", name) == name, f"{cls.__name__}.name must be the entry-point name"
    assert not inspect.isabstract(cls), f"{cls.__name__} leaves abstract methods: {sorted(cls.__abstractmethods__)}"
    validate = cls.validate_options
    assert callable(validate)
    if inspect.ismethod(validate):  # a classmethod: must accept no options at all
        validate({})
