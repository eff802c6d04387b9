"""What a SIGKILL leaves behind is reclaimed at the next start-up, and logged (issue 14, item 5): driver
layers no layer record names (an `rm` cut between retiring the record and the driver's remove), exec-root
directories of removed containers. The harness that kills engined at random instants under load is
scripts/crash_harness.py (`make crash`); this module checks the reclaiming itself, deterministically."""

from __future__ import annotations

import json
import shutil

from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

NAME_PREFIX = "rc-"


def test_orphans_a_kill_left_are_reclaimed_at_start_up(busybox_tar: bytes, tmp_path) -> None:
    daemon = EngineDaemon(config={"storage-driver": "overlay2"})
    try:
        daemon.start()
        docker = DockerCLI(daemon.host, config_dir=tmp_path / "docker-config")
        docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_tar)
        container_id = docker("create", "--network", "none", "busybox", "true").out
        layerdb = daemon.data_root / "image" / "overlay2" / "layerdb"
        mount_id = (layerdb / "mounts" / container_id / "mount-id").read_text().strip()
        assert (daemon.data_root / "overlay2" / mount_id).is_dir()
        daemon.kill()

        # `docker rm` killed after the layer record was retired and the container's directory removed,
        # before the driver removed its layers; and a start-up killed after making its exec-root dir
        (layerdb / "mounts" / container_id).rename(layerdb / "tmp" / "remove-crash")
        shutil.rmtree(daemon.data_root / "containers" / container_id)
        stray = daemon.exec_root / "containers" / container_id
        (stray / "spool").mkdir(parents=True)

        daemon.start()
        assert not (daemon.data_root / "overlay2" / mount_id).exists()
        assert not (daemon.data_root / "overlay2" / f"{mount_id}-init").exists()
        assert not stray.exists()
        log = daemon.log()
        assert f"reclaimed the storage driver's layer {mount_id}" in log
        assert f"removing the exec-root directory of removed container {container_id[:12]}" in log
        assert json.loads(docker("ps", "-aq", "--format", "{{json .ID}}").stdout or "null") is None
        docker("run", "--rm", "--network", "none", "busybox", "true")
    finally:
        daemon.stop()
        daemon.cleanup()
