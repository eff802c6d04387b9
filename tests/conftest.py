"""End-to-end fixtures: one engined per session (own socket, data-root, exec-root), the docker CLI,
docker-py, and a busybox image built offline from Debian's busybox-static."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

STORAGE_DRIVER = os.environ.get("ENGINE_TEST_STORAGE_DRIVER", "overlay2")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/" in str(item.fspath) and "/core/" not in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineDaemon]:
    config = {
        "storage-driver": STORAGE_DRIVER,
        "log-level": "debug",
        # a second OCI runtime (runc again, with global arguments) for --runtime tests
        "runtimes": {"runc-debug": {"path": "runc", "runtimeArgs": ["--debug"]}},
    }
    daemon = EngineDaemon(config=config)
    daemon.start()
    yield daemon
    code = daemon.stop()
    daemon.cleanup()
    assert code == 0, daemon.log()


@pytest.fixture(scope="session")
def docker(engine: EngineDaemon, tmp_path_factory: pytest.TempPathFactory) -> DockerCLI:
    return DockerCLI(engine.host, config_dir=tmp_path_factory.mktemp("docker-config"))


@pytest.fixture(scope="session")
def busybox_tar() -> bytes:
    return busybox_rootfs_tar()


@pytest.fixture(scope="session")
def busybox(docker: DockerCLI, busybox_tar: bytes) -> str:
    """``busybox:latest`` imported into the session's engined."""
    docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_tar)
    return "busybox:latest"


@pytest.fixture(scope="session")
def api(engine: EngineDaemon):
    import docker as docker_py

    client = docker_py.DockerClient(base_url=engine.host, version="1.41", timeout=120)
    yield client
    client.close()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A fresh container name, prefixed with the test module's NAME_PREFIX so leftovers tell where they came from."""
    return request.module.NAME_PREFIX + uuid.uuid4().hex[:10]


@pytest.fixture
def cleanup(docker: DockerCLI) -> Iterator[list[str]]:
    """Names of the containers a test made: removed after it, with their anonymous volumes."""
    names: list[str] = []
    yield names
    if names:
        docker.run("rm", "-f", "-v", *names)
