"""The driver author's guide (templates/engine-plugin/README.md) works as written: its ``sh`` blocks run
verbatim, in order, in one shell, from a copy of the checkout, with a HOME of their own and a fresh
virtualenv: three drivers rendered, installed, passing their own tests, benchmarked, and used by a
throw-away engined that runs a container with all three."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _author_env import REPO, author_env, copy_checkout

GUIDE = REPO / "templates" / "engine-plugin" / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def shell_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_guide_has_the_author_path_in_sh_blocks() -> None:
    script = "\n".join(shell_blocks(GUIDE.read_text()))
    for kind, name in (("storage", "myfs"), ("network", "mynet"), ("log", "mylog")):
        assert f"render.py --kind {kind} {name}" in script
        assert f'python -m pip install -q -e "$HOME/src/engine-plugin-{name}[test]"' in script
        assert f"python -m pytest -q ~/src/engine-plugin-{name}/tests" in script
    # the two traps of the old guide: a quoted ~ (never expanded) and a bare pytest
    assert "'~" not in script and not re.search(r"^\s*(sudo )?pytest\b", script, re.MULTILINE)


def _stop_engined(pidfile: Path) -> None:
    """If the script failed before stopping its engined: stop it (by its PID, which it wrote)."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.timeout(1800)
@pytest.mark.skipif(os.geteuid() != 0, reason="the guide runs as root (mounts, namespaces, engined)")
@pytest.mark.skipif(shutil.which("docker") is None, reason="the guide's last part needs the docker CLI")
@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="the guide's image is made from busybox-static")
def test_the_guide_runs_verbatim(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path / "engine")
    home = tmp_path / "home"
    env = author_env(home)
    script = "set -eux\n" + "\n".join(shell_blocks(GUIDE.read_text()))
    try:
        proc = subprocess.run(
            ["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=1500
        )
    finally:
        _stop_engined(home / "engine-try" / "engined.pid")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    summaries = re.findall(r"^(\d+) passed(?:, (\d+) skipped)? in ", proc.stdout, re.MULTILINE)
    assert len(summaries) == 3, proc.stdout  # one pytest run per driver, none failing
    assert "storage: myfs, logs: mylog" in proc.stdout
    assert "hello from mylog" in proc.stdout
    assert not (home / "engine-try" / "engined.pid").exists(), "engined did not stop"
