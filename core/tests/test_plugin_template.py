"""templates/engine-plugin renders into a driver project whose driver loads through a real entry point
and whose one-line conformance test runs against it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from _fakedist import forget_modules, make_dist

from engine.drivers import DRIVER_API_VERSION
from engine.drivers.storage import StorageDriver
from engine.registry import STORAGE, DriverRegistry

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "engine-plugin"


def load_render():
    spec = importlib.util.spec_from_file_location("engine_template_render", TEMPLATE / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The template rendered as ``testfs`` and installed: its dist-info on sys.path, its src importable."""
    dest = load_render().render("test-fs", tmp_path / "engine-plugin-test-fs")
    meta = tomllib.loads((dest / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    make_dist(site, meta["name"], meta["entry-points"], version=meta["version"])
    monkeypatch.syspath_prepend(str(dest / "src"))
    monkeypatch.syspath_prepend(str(site))
    yield dest, site
    forget_modules("engine_plugin_test_fs")


def test_render_substitutes_every_token(project):
    dest, _ = project
    files = [p for p in dest.rglob("*") if p.is_file()]
    assert {p.relative_to(dest).as_posix() for p in files} == {
        "README.md",
        "pyproject.toml",
        "src/engine_plugin_test_fs/__init__.py",
        "src/engine_plugin_test_fs/driver.py",
        "tests/test_conformance.py",
        "tests/test_bench.py",
    }
    for path in files:
        assert "{{" not in path.read_text(), path
    meta = tomllib.loads((dest / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "engine-plugin-test-fs"
    assert meta["entry-points"]["engine.storage_drivers"] == {
        "test-fs": "engine_plugin_test_fs.driver:TestFsStorageDriver"
    }
    assert "Framework :: Engine" in meta["classifiers"]


def test_rendered_driver_loads_through_its_entry_point(project):
    cls = DriverRegistry(STORAGE).load("test-fs")
    assert cls.__name__ == "TestFsStorageDriver" and cls.name == "test-fs"
    assert issubclass(cls, StorageDriver) and cls.API_VERSION == DRIVER_API_VERSION
    cls.validate_options({})
    assert "test-fs" in DriverRegistry(STORAGE).names()


def test_rendered_conformance_and_bench_modules_import(project):
    from engine_testkit.storage import StorageDriverSuite
    from engine_testkit.storage_bench import StorageDriverBench

    dest, _ = project
    for filename, base in (("test_conformance.py", StorageDriverSuite), ("test_bench.py", StorageDriverBench)):
        spec = importlib.util.spec_from_file_location(f"rendered_{filename[:-3]}", dest / "tests" / filename)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        [suite] = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, base) and v is not base]
        assert suite.driver_name == "test-fs"


@pytest.mark.skipif(os.geteuid() != 0, reason="the suite's layer cases need root")
def test_rendered_conformance_suite_passes(project):
    dest, site = project
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(dest / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cases = "create_empty or create_base or create_snap or diff_apply or changes or get_put_nest or status_and_metadata"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(dest / "tests" / "test_conformance.py"),
         "-k", cases],
        cwd=dest, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_render_refuses_bad_names_and_existing_directories(tmp_path):
    render = load_render()
    with pytest.raises(ValueError, match="invalid driver name"):
        render.render("My FS", tmp_path / "x")
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        render.render("ok", tmp_path / "exists")
