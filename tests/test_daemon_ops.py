"""Operating engined: one daemon per data-root and exec-root, systemd readiness, daemon logs."""

from __future__ import annotations

import pytest

from engine import registry
from engine_testkit.daemon import EngineDaemon

#: the lightest daemon that starts: vfs storage, no json-file logs, no default bridge
LIGHT = {"storage-driver": "vfs", "log-driver": "none"}
if registry.DriverRegistry(registry.NETWORK).is_installed("bridge"):
    LIGHT["bridge"] = "none"  # a key of engine-plugin-bridge


# ---- one daemon per root -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first():
    daemon = EngineDaemon(config=LIGHT)
    daemon.start()
    yield daemon
    assert daemon.stop() == 0
    daemon.cleanup()


@pytest.mark.parametrize("root", ["data-root", "exec-root"])
def test_a_second_daemon_on_the_same_root_refuses(first, root):
    shared = first.data_root if root == "data-root" else first.exec_root
    second = EngineDaemon(config={**LIGHT, root: str(shared)})
    try:
        with pytest.raises(RuntimeError, match="engined exited with 1"):
            second.start(timeout=20)
        assert (
            f"failed to start daemon: {root} {shared} is in use by another engined "
            f"(process with PID {first.proc.pid} is still running)"
        ) in second.log()
        assert not second.socket.exists()
    finally:
        second.stop()
        second.cleanup()
    # the first one is untouched and its lock file still names it
    assert first._ping()
    assert (shared / "engine.lock").read_text().strip() == str(first.proc.pid)


def test_the_lock_goes_with_the_daemon(tmp_path):
    """A killed daemon leaves no lock behind: the next one on the same roots starts."""
    config = {**LIGHT, "data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec")}
    daemon = EngineDaemon(config=config)
    try:
        daemon.start()
        daemon.kill()
        daemon.proc = None
        daemon.start()
        assert (tmp_path / "data" / "engine.lock").read_text().strip() == str(daemon.proc.pid)
    finally:
        daemon.stop()
        daemon.cleanup()
