"""Network state across daemon restarts: kill -9 with live-restore, published ports kept serving by
engine-proxy while the daemon is down, networks and address allocations restored, nothing leaked."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

from engine.networks.controller import instance_name
from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon
from engine_testkit.network import free_port, free_subnet, http_get

IMAGE = "busybox:latest"


def test_kill_9_live_restore_keeps_ports_and_addresses(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.213.0.53\n")
    config = {"storage-driver": "overlay2", "live-restore": True}
    env = {"ENGINE_RESOLV_CONF": str(resolv)}
    daemon = EngineDaemon(root=tmp_path / "d", config=config, env=env)
    daemon.start()
    dk = DockerCLI(daemon.host, config_dir=tmp_path / "cli")
    table = instance_name(daemon.exec_root)
    port = free_port()
    net = f"rn-{secrets.token_hex(3)}"
    try:
        dk("import", "-c", 'CMD ["sh"]', "-", IMAGE, input=busybox_rootfs_tar())
        net_id = dk("network", "create", "--subnet", free_subnet(), net).out
        dk(
            "run", "-d", "--name", "web", "--network", net, "-p", f"{port}:80", IMAGE,
            "sh", "-c", "mkdir -p /www && echo alive > /www/index.html && httpd -f -p 80 -h /www",
        )  # fmt: skip
        first_ip = json.loads(dk("inspect", "web").stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert http_get("127.0.0.1", port) == "alive\n"

        daemon.kill()  # kill -9: no cleanup at all
        assert http_get("127.0.0.1", port, deadline_s=3) == "alive\n", (
            "the published port must keep working while the daemon is down"
        )

        daemon = EngineDaemon(root=tmp_path / "d", config=config, env=env)
        (tmp_path / "d" / "engine.pid").unlink(missing_ok=True)
        daemon.start()
        assert dk("network", "inspect", "-f", "{{.Id}}", net).out == net_id
        assert http_get("127.0.0.1", port) == "alive\n"
        dk("run", "-d", "--name", "second", "--network", net, IMAGE, "sleep", "300")
        second_ip = json.loads(dk("inspect", "second").stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert second_ip != first_ip, "an address still in use was handed out again"
        assert dk.run("exec", "second", "ping", "-c", "1", "-W", "2", "web").returncode == 0
        err = dk.fails("run", "-d", "--name", "third", "-p", f"{port}:80", IMAGE, "sleep", "300").stderr
        assert "port is already allocated" in err
    finally:
        dk.run("rm", "-f", "web", "second", "third")
        dk.run("network", "rm", net)
        code = daemon.stop()
        state = daemon.data_root / "network" / "drivers" / "bridge" / "endpoints"
        leftover_state = list(state.glob("*.json")) if state.exists() else []
        daemon.cleanup()
    assert code == 0
    assert leftover_state == []
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"eng-{table[-8:]}" not in links and f"br-{net_id[:12]}" not in links
