"""A third-party driver author's machine, for the template and guide tests: a fresh virtualenv outside
this repository, and an environment without anything of this test run in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: what an author's checkout needs for the guide: the two distributions and the template
CHECKOUT_PARTS = ("core", "testkit", "templates")
_BUILD_LITTER = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")


def author_env(home: Path) -> dict[str, str]:
    """The environment of a shell of the author: their own ``HOME``; none of this run's virtualenv,
    ``PYTHONPATH`` or pytest variables. pip keeps this machine's cache and index settings."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "PYTHON", "VIRTUAL_ENV", "COV_")) and k not in ("DOCKER_HOST",)
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env["HOME"] = str(home)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    home.mkdir(parents=True, exist_ok=True)
    return env


def copy_checkout(dest: Path) -> Path:
    """The parts of this repository an author's checkout has, without build litter."""
    for part in CHECKOUT_PARTS:
        shutil.copytree(REPO / part, dest / part, ignore=_BUILD_LITTER, symlinks=True)
    return dest


def make_venv(path: Path, env: dict[str, str]) -> Path:
    """A fresh virtualenv (no system site-packages) with this interpreter's version; returns its python."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True, env=env, capture_output=True, timeout=120)
    return path / "bin" / "python"


def pip_install(python: Path, *args: str, env: dict[str, str], cwd: Path | None = None) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
