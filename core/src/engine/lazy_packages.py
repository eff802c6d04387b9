"""Import the parts of a heavy package engined uses without running the package's ``__init__``.

aiohttp's ``__init__`` imports its whole HTTP client, whose connector builds two TLS client
contexts at import time (each loads the system CA bundle); pyroute2's imports every netlink
family, IPDB and NDB. engined only needs aiohttp's server and pyroute2's ``IPRoute``: together
these ``__init__`` files were ~40% of its start-up.

``defer_package_init(name)`` registers the package in ``sys.modules`` without executing its
``__init__``. Submodules import as usual (``from aiohttp import web``, ``from pyroute2.iproute
import IPRoute``). The first access to any other attribute of the package (``aiohttp.ClientSession``,
``from pyroute2 import IPRoute``) runs the real ``__init__`` at that moment, so code that needs it
still works; it only pays for it when it does.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from typing import Any


def defer_package_init(name: str, **preset: Any) -> bool:
    """Defer ``name``'s ``__init__`` (see the module doc). ``preset``: attributes the package's own
    submodules take from it (aiohttp's ``http`` does ``from . import __version__``).

    Returns False, changing nothing, when the package is already imported or is not a package."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(preset)
    lock = threading.RLock()
    state = {"initialised": False}

    def run_init() -> None:
        with lock:
            if state["initialised"]:
                return
            state["initialised"] = True
            module.__dict__.pop("__getattr__", None)
            spec.loader.exec_module(module)  # type: ignore[union-attr]

    def __getattr__(attr: str) -> Any:  # the module-level hook of PEP 562
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        if not state["initialised"] and importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")
        run_init()
        return getattr(module, attr)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = module
    return True


def defer_heavy_packages() -> None:
    """engined's own process, before anything imports them (``engine.cli.main``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        aiohttp_version = version("aiohttp")
    except PackageNotFoundError:
        aiohttp_version = None
    if aiohttp_version is not None:
        defer_package_init("aiohttp", __version__=aiohttp_version)
    defer_package_init("pyroute2")
