"""The pytest plugin entry point of engine-testkit: the drivers' conformance fixtures and suites."""

import pytest

# ---- network drivers ---------------------------------------------------------------------------------
# A driver's conformance file: `class TestMine(NetworkDriverSuite): driver_name = "mine"`, imported from
# engine_testkit.network (not here: it loads the netns helpers, which every pytest run need not pay for).
# ---- storage drivers -----------------------------------------------------------------------------------
# A driver's conformance file: `class TestMine(StorageDriverSuite): driver_name = "mine"`; its benchmarks
# run once as a smoke test with `class TestMineBench(StorageDriverBench): driver_name = "mine"`.
from engine_testkit.storage import StorageDriverSuite
from engine_testkit.storage_bench import StorageDriverBench

__all__ = ["StorageDriverBench", "StorageDriverSuite"]


def pytest_configure(config: pytest.Config) -> None:
    # the suites mark cases needing root; registered here for projects that install the kit alone
    config.addinivalue_line("markers", "privileged: needs root and real kernel features (mounts, namespaces)")


# ---- log drivers ---------------------------------------------------------------------------------------
# A reader-capable driver's conformance file (moby's loggertest cases):
# `class TestMine(LogReaderSuite): driver_name = "mine"` (with `rotation_options = {"max-size": "10k", ...}`)

from engine_testkit.logs import LogReaderSuite  # noqa: E402

__all__ += ["LogReaderSuite"]


@pytest.fixture
def log_info(tmp_path):  # type: ignore[no-untyped-def]
    """A ``LogInfo`` for a made-up container logging into ``tmp_path`` (no options; give some with
    ``dataclasses.replace(log_info, config={...})``)."""
    from engine_testkit.logs import make_log_info

    return make_log_info(tmp_path)
