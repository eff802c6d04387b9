"""The network conformance suite is usable by a third-party driver: it needs nothing of engine but the
public driver SDK (and engine-core's entry-point loader)."""

from __future__ import annotations

import subprocess
import sys

#: what of engine the suite may load: the SDK, its errors, and the registry that loads drivers by name
# the registry (engine-core's loader by entry-point name) names the distribution of a missing driver: engine.shipped
ALLOWED = ("engine.drivers", "engine.errors", "engine.registry", "engine.entrypoints", "engine.shipped")


def test_the_network_suite_imports_only_the_public_sdk() -> None:
    code = (
        "import sys, engine_testkit.network, engine_testkit.network_bench\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('engine.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = proc.stdout.split()
    assert "engine.drivers.network" in loaded and "engine.drivers.netns" in loaded
    assert [m for m in loaded if not m.startswith(ALLOWED)] == []
