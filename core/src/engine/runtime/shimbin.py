"""Finding (or building) the engine-shim binary.

``make install`` builds it next to the venv's python (``.venv/bin/engine-shim``). When that is missing
or older than the C source, the daemon builds it into ``<exec-root>/bin`` with gcc, once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from engine.errors import EngineError

SOURCE = Path(__file__).parent / "shim" / "engine-shim.c"
NAME = "engine-shim"
_lock = threading.Lock()


class ShimUnavailable(EngineError):
    """No shim binary and none can be built (500)."""


def _fresh(binary: Path) -> bool:
    try:
        return binary.stat().st_mtime >= SOURCE.stat().st_mtime
    except FileNotFoundError:
        return False


def compile_shim(out: Path) -> Path:
    """Build the shim: static when libc.a is installed (smallest RSS, no dynamic loader), else dynamic."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ShimUnavailable(f"{NAME} is not built and no C compiler is installed (run `make install`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    base = [gcc, "-O2", "-Wall", "-o", str(tmp), str(SOURCE)]
    for extra in (["-static", "-s"], ["-s"]):
        proc = subprocess.run(base + extra, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            os.replace(tmp, out)
            return out
    raise ShimUnavailable(f"building {NAME} failed: {proc.stderr.strip()}")


def find_shim(build_dir: Path | None = None) -> Path:
    """``$ENGINE_SHIM``, else the binary next to ``sys.executable``, else one on PATH, when not older than
    the source; else build into ``build_dir``."""
    env = os.environ.get("ENGINE_SHIM")
    if env:
        return Path(env)
    candidates = [Path(sys.executable).parent / NAME]
    on_path = shutil.which(NAME)
    if on_path:
        candidates.append(Path(on_path))
    for cand in candidates:
        if os.access(cand, os.X_OK) and (_fresh(cand) or not SOURCE.exists()):
            return cand
    if build_dir is None:
        raise ShimUnavailable(f"{NAME} not found next to {sys.executable} (run `make install`)")
    with _lock:
        target = build_dir / NAME
        if os.access(target, os.X_OK) and _fresh(target):
            return target
        return compile_shim(target)
