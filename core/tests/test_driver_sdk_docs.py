"""docs/driver-sdk.md documents every public name of the driver SDK, and nothing that is gone.

The public names of a module of ``engine.drivers`` are its ``__all__``; private modules (``_x``)
are skipped. The reference has one ``## `engine.drivers.x``` section per module, and a name counts
as documented when an entry of its section starts with it (``- **`name(...``, ``**`NAME`**``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import engine.drivers

DOC = Path(__file__).resolve().parents[2] / "docs" / "driver-sdk.md"


def _sdk_modules() -> list[ModuleType]:
    names = ["engine.drivers"] + [
        m.name
        for m in pkgutil.walk_packages(engine.drivers.__path__, "engine.drivers.")
        if not any(part.startswith("_") for part in m.name.split("."))
    ]
    return [importlib.import_module(n) for n in names]


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^## `(engine\.drivers[\w.]*)`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _documented(section: str) -> set[str]:
    return set(re.findall(r"\*\*`([A-Za-z_]\w*)", section))


def test_every_sdk_module_declares_its_public_names() -> None:
    missing = [m.__name__ for m in _sdk_modules() if not hasattr(m, "__all__")]
    assert not missing, f"SDK modules without __all__: {missing}"


def test_every_public_name_is_documented() -> None:
    sections = _sections()
    problems = []
    for module in _sdk_modules():
        section = sections.get(module.__name__)
        if section is None:
            problems.append(f"{module.__name__}: no section in docs/driver-sdk.md")
            continue
        problems += [f"{module.__name__}.{n}" for n in sorted(set(module.__all__) - _documented(section))]
    assert not problems, f"undocumented in docs/driver-sdk.md: {problems}"


def test_the_reference_documents_nothing_that_is_not_public() -> None:
    modules = {m.__name__: m for m in _sdk_modules()}
    stale = [f"section {name}" for name in _sections() if name not in modules]
    for name, section in _sections().items():
        if name in modules:
            stale += [f"{name}.{n}" for n in sorted(_documented(section) - set(modules[name].__all__))]
    assert not stale, f"docs/driver-sdk.md documents what the SDK does not export: {stale}"
