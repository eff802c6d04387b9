"""engine.lazy_packages: a package whose __init__ is deferred still behaves like the real one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run(tmp_path: Path, code: str) -> str:
    """In a fresh interpreter (sys.modules of this one already holds the real packages)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    """A package whose __init__ is expensive: it records that it ran and imports a heavy submodule."""
    root = tmp_path / "heavypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "import sys\n__version__ = '1.0'\nsys.modules.setdefault('_init_runs', []).append(1)\n"
        "from .heavy import Heavy\nfrom . import light\nTOP = 'top'\n"
    )
    (root / "heavy.py").write_text("class Heavy: pass\n")
    (root / "light.py").write_text("from . import __version__ as VERSION\nLIGHT = 'light'\n")
    return tmp_path


def test_submodules_import_without_running_init(pkg: Path) -> None:
    out = run(
        pkg,
        """
        import sys
        from engine.lazy_packages import defer_package_init
        assert defer_package_init("heavypkg", __version__="1.0")
        from heavypkg import light
        from heavypkg.light import LIGHT
        print(light.VERSION, LIGHT, "_init_runs" in sys.modules, "heavypkg.heavy" in sys.modules)
        """,
    )
    assert out.split() == ["1.0", "light", "False", "False"]


def test_other_attributes_run_the_real_init_once(pkg: Path) -> None:
    out = run(
        pkg,
        """
        import sys
        from engine.lazy_packages import defer_package_init
        defer_package_init("heavypkg")
        import heavypkg
        from heavypkg import Heavy
        print(Heavy.__name__, heavypkg.TOP, heavypkg.light.LIGHT, len(sys.modules["_init_runs"]))
        try:
            heavypkg.missing
        except AttributeError:
            print("AttributeError")
        """,
    )
    assert out.split() == ["Heavy", "top", "light", "1", "AttributeError"]


def test_already_imported_or_not_a_package_is_left_alone() -> None:
    from engine.lazy_packages import defer_package_init

    assert not defer_package_init("json")  # imported by now
    assert not defer_package_init("engine.lazy_packages")
    assert not defer_package_init("no_such_package_xyz")


def test_engined_process_serves_http_and_netlink_with_deferred_packages(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        import sys
        from engine.lazy_packages import defer_heavy_packages
        defer_heavy_packages()
        from aiohttp import web
        from aiohttp.http import WSMsgType
        import aiohttp.http_parser, aiohttp.web_protocol
        from pyroute2.iproute import IPRoute
        with IPRoute() as ipr:
            assert ipr.link_lookup(ifname="lo")
        print("aiohttp.connector" in sys.modules, "pyroute2.ndb.main" in sys.modules)
        import aiohttp
        print(aiohttp.ClientSession.__name__, aiohttp.__version__ == aiohttp.http.__version__)
        """,
    )
    assert out.split() == ["False", "False", "ClientSession", "True"]
