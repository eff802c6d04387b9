"""``metrics-addr``: Prometheus metrics as dockerd 20.10 serves them, scraped and parsed with
prometheus_client's own parser while the docker CLI drives containers, networks and a health check."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine_testkit.busybox import busybox_rootfs_tar
from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

LIGHT = {"storage-driver": "overlay2", "bridge": "none"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, list]:
    """Every sample by family name (the parser checks the exposition format)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list, sample_name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no {sample_name}{labels}"
    return sum(found)


@pytest.fixture(scope="module")
def metered():
    port = free_port()
    daemon = EngineDaemon(config={**LIGHT, "metrics-addr": f"127.0.0.1:{port}"})
    daemon.start()
    cli = DockerCLI(daemon.host)
    cli("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_rootfs_tar())
    yield daemon, cli, port
    assert daemon.stop() == 0
    daemon.cleanup()


def test_dockerd_families_after_container_network_and_health_actions(metered):
    _, cli, port = metered
    cli("create", "--name", "m1", "busybox", "echo", "hello")
    cli("start", "m1")
    cli("wait", "m1")
    cli("rm", "m1")
    cli("run", "-d", "--name", "mh", "--network", "none", "--health-cmd", "true", "--health-interval", "1s",
        "busybox", "sleep", "300")  # fmt: skip
    deadline = time.monotonic() + 60
    while cli("inspect", "-f", "{{.State.Health.Status}}", "mh").out != "healthy":
        assert time.monotonic() < deadline, "no health check ran"
        time.sleep(0.2)

    metrics = scrape(port)
    actions = metrics["engine_daemon_container_actions_seconds"]
    for action in ("create", "start", "delete"):
        assert value(actions, "engine_daemon_container_actions_seconds_count", action=action) >= 1
    assert value(metrics["engine_daemon_events"], "engine_daemon_events_total") >= 4
    assert value(metrics["engine_daemon_health_checks"], "engine_daemon_health_checks_total") >= 1
    assert value(metrics["engine_daemon_health_checks_failed"], "engine_daemon_health_checks_failed_total") == 0
    assert "engine_daemon_network_actions_seconds" in metrics
    info = metrics["engine_daemon_engine_info"][0]
    assert info.labels["daemon_id"] == json.loads(cli("info", "--format", "{{json .ID}}").out)
    assert info.labels["graphdriver"] == "overlay2" and info.labels["version"] == "20.10.24"
    assert value(metrics["engine_daemon_engine_cpus_cpus"], "engine_daemon_engine_cpus_cpus") >= 1
    latency = metrics["engine_api_request_duration_seconds"]
    assert (
        value(latency, "engine_api_request_duration_seconds_count", method="POST", route="/containers/{id}/start") >= 2
    )
    assert value(metrics["process_resident_memory_bytes"], "process_resident_memory_bytes") > 0
    # engine's own: storage driver operations and log driver deliveries
    storage = metrics["engine_storage_driver_operation_seconds"]
    for operation in ("create_read_write", "get", "put", "remove"):
        count = value(storage, "engine_storage_driver_operation_seconds_count", driver="overlay2", operation=operation)
        assert count >= 1, operation
    assert value(metrics["engine_log_messages"], "engine_log_messages_total", driver="json-file") >= 1
    log_ops = metrics["engine_log_driver_operation_seconds"]
    for operation in ("log_many", "close"):
        count = value(log_ops, "engine_log_driver_operation_seconds_count", driver="json-file", operation=operation)
        assert count >= 1, operation
    assert value(metrics["engine_log_bytes"], "engine_log_bytes_total", driver="json-file") >= len("hello\n")
    cli("rm", "-f", "mh")


def test_counts_agree_with_docker_info(metered):
    _, cli, port = metered
    cli("create", "--name", "stopped1", "--network", "none", "busybox", "true")
    cli("run", "-d", "--name", "running1", "--network", "none", "busybox", "sleep", "300")
    try:
        info = json.loads(cli("info", "--format", "{{json .}}").out)
        states = scrape(port)["engine_daemon_container_states_containers"]
        assert value(states, "engine_daemon_container_states_containers", state="running") == info["ContainersRunning"]
        assert value(states, "engine_daemon_container_states_containers", state="stopped") == info["ContainersStopped"]
        assert value(states, "engine_daemon_container_states_containers", state="paused") == info["ContainersPaused"]
        images = scrape(port)["engine_images_images"]
        assert value(images, "engine_images_images") == info["Images"] >= 1
    finally:
        cli("rm", "-f", "stopped1", "running1")


def test_network_actions(metered):
    _, cli, port = metered
    before = scrape(port).get("engine_daemon_network_actions_seconds", [])
    count = sum(s.value for s in before if s.name.endswith("_count") and s.labels["action"] in ("create", "delete"))
    if cli.run("network", "create", "--internal", "-d", "bridge", "mnet2").returncode != 0:
        pytest.skip("no bridge driver here")
    cli("network", "rm", "mnet2")
    metrics = scrape(port)
    after = metrics["engine_daemon_network_actions_seconds"]
    assert (
        sum(s.value for s in after if s.name.endswith("_count") and s.labels["action"] in ("create", "delete"))
        == count + 2
    )
    # the driver's own share of those actions
    driver_ops = metrics["engine_network_driver_operation_seconds"]
    for operation in ("create_network", "delete_network"):
        name = "engine_network_driver_operation_seconds_count"
        assert value(driver_ops, name, driver="bridge", operation=operation) >= 1, operation


def test_per_container_figures(metered):
    """cpu, memory (and its limit), block I/O and network of each running container, read at scrape
    time; traffic only between two containers on an internal network this test made."""
    _, cli, port = metered
    if cli.run("network", "create", "--internal", "-d", "bridge", "mnet3").returncode != 0:
        pytest.skip("no bridge driver here")
    try:
        cli("run", "-d", "--name", "mc1", "--network", "mnet3", "--memory", "64m", "busybox", "sleep", "300")
        cli("run", "-d", "--name", "mc2", "--network", "mnet3", "busybox", "sleep", "300")
        # some cpu time (a busy loop of 20000 rounds) and 3 pings to mc2 (over mnet3 only)
        cli("exec", "mc1", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ping -c 3 -W 5 mc2")
        ids = {n: cli("inspect", "-f", "{{.Id}}", n).out for n in ("mc1", "mc2")}
        metrics = scrape(port)

        assert value(metrics["engine_container_cpu_usage_seconds"], "engine_container_cpu_usage_seconds_total",
                     id=ids["mc1"], name="mc1") > 0  # fmt: skip
        user = value(metrics["engine_container_cpu_mode_seconds"], "engine_container_cpu_mode_seconds_total",
                     id=ids["mc1"], mode="user")  # fmt: skip
        system = value(metrics["engine_container_cpu_mode_seconds"], "engine_container_cpu_mode_seconds_total",
                       id=ids["mc1"], mode="system")  # fmt: skip
        assert user + system > 0
        memory = metrics["engine_container_memory_usage_bytes"]
        assert value(memory, "engine_container_memory_usage_bytes", id=ids["mc1"]) > 0
        limits = metrics["engine_container_memory_limit_bytes"]
        assert value(limits, "engine_container_memory_limit_bytes", id=ids["mc1"]) == 64 * 1024 * 1024
        info = json.loads(cli("info", "--format", "{{json .}}").out)
        assert value(limits, "engine_container_memory_limit_bytes", id=ids["mc2"]) == info["MemTotal"]
        blkio = metrics["engine_container_blkio_bytes"]
        assert {s.labels["op"] for s in blkio if s.labels["id"] == ids["mc1"]} == {"read", "write"}
        for name in ("mc1", "mc2"):  # 3 echo requests one way, 3 replies the other (and ARP)
            for family in ("receive", "transmit"):
                packets = value(metrics[f"engine_container_network_{family}_packets"],
                                f"engine_container_network_{family}_packets_total", id=ids[name], interface="eth0")  # fmt: skip
                assert packets >= 3, (name, family)
                octets = value(metrics[f"engine_container_network_{family}_bytes"],
                               f"engine_container_network_{family}_bytes_total", id=ids[name], interface="eth0")  # fmt: skip
                assert octets >= 3 * 84, (name, family)  # an ICMP echo of ping's default size is 84 bytes of IP
        assert not any(s.labels["interface"] == "lo" for s in metrics["engine_container_network_receive_bytes"])
        assert value(metrics["engine_container_metrics_omitted_containers"],
                     "engine_container_metrics_omitted_containers") == 0  # fmt: skip
        driver_ops = metrics["engine_network_driver_operation_seconds"]
        for operation in ("create_endpoint", "join"):  # the two containers joined mnet3
            name = "engine_network_driver_operation_seconds_count"
            assert value(driver_ops, name, driver="bridge", operation=operation) >= 2, operation
        cli("rm", "-f", "mc2")
        after = scrape(port)["engine_container_cpu_usage_seconds"]
        assert {s.labels["name"] for s in after} == {"mc1"}
    finally:
        cli.run("rm", "-f", "mc1", "mc2")
        cli.run("network", "rm", "mnet3")


def test_engine_info_agrees_with_docker_info(metered):
    """What engine_daemon_engine_info, _cpus and _memory say is what `docker info` says."""
    _, cli, port = metered
    info = json.loads(cli("info", "--format", "{{json .}}").out)
    metrics = scrape(port)
    (sample,) = metrics["engine_daemon_engine_info"]
    labels = sample.labels
    assert labels["daemon_id"] == info["ID"]
    assert labels["graphdriver"] == info["Driver"]
    assert labels["kernel"] == info["KernelVersion"]
    assert labels["os"] == info["OperatingSystem"]
    assert labels["os_type"] == info["OSType"]
    assert labels["os_version"] == info["OSVersion"]
    assert labels["architecture"] == info["Architecture"]
    assert labels["version"] == info["ServerVersion"]
    timings = metrics["engine_daemon_host_info_functions_seconds"]
    assert value(timings, "engine_daemon_host_info_functions_seconds_count", function="system_info") >= 1
    assert value(metrics["engine_daemon_engine_cpus_cpus"], "engine_daemon_engine_cpus_cpus") == info["NCPU"]
    assert value(metrics["engine_daemon_engine_memory_bytes"], "engine_daemon_engine_memory_bytes") == info["MemTotal"]


@pytest.mark.parametrize(
    ("addr", "error"),
    [
        ("127.0.0.1", "listen tcp: address 127.0.0.1: missing port in address"),
        ("127.0.0.1:metrics", "listen tcp: address tcp/metrics: unknown port"),
        ("127.0.0.1:70000", "listen tcp: address 70000: invalid port"),
        ("::1:9323", "listen tcp: address ::1:9323: too many colons in address"),
    ],
)
def test_a_bad_metrics_address_is_refused(tmp_path, addr, error):
    """--validate says what start-up would (Go's net.Listen wording); a good one validates."""
    import subprocess
    import sys
    from pathlib import Path

    engined = Path(sys.executable).with_name("engined")
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({**LIGHT, "metrics-addr": addr}))
    proc = subprocess.run([str(engined), "--config-file", str(config), "--validate"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert error in proc.stderr
    config.write_text(json.dumps({**LIGHT, "metrics-addr": "127.0.0.1:9323"}))
    proc = subprocess.run([str(engined), "--config-file", str(config), "--validate"], capture_output=True, text=True)
    assert proc.returncode == 0 and "configuration OK" in proc.stderr


def test_a_metrics_port_in_use_stops_start_up():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = EngineDaemon(config={**LIGHT, "metrics-addr": f"127.0.0.1:{port}"})
        try:
            with pytest.raises(RuntimeError, match="engined exited with 1"):
                daemon.start(timeout=20)
            assert (
                f"failed to start metrics server: listen tcp 127.0.0.1:{port}: bind: address already in use"
                in daemon.log()
            )
        finally:
            daemon.stop()
            daemon.cleanup()


def test_dockerd_builder_and_logger_families(metered, tmp_path):
    """builder_builds_triggered_total, builder_builds_failed_total{reason} and logger_* as dockerd
    names them: a good build, one with an unknown instruction, one whose RUN fails, a long line."""
    _, cli, port = metered

    def counts() -> tuple[float, dict[str, float], float, float]:
        metrics = scrape(port)
        failed = {s.labels["reason"]: s.value for s in metrics["builder_builds_failed"] if s.name.endswith("_total")}
        return (
            value(metrics["builder_builds_triggered"], "builder_builds_triggered_total"),
            failed,
            value(
                metrics["logger_log_entries_size_greater_than_buffer"],
                "logger_log_entries_size_greater_than_buffer_total",
            ),
            value(metrics["logger_log_write_operations_failed"], "logger_log_write_operations_failed_total"),
        )

    triggered, failed, partials, write_errors = counts()
    assert set(failed) >= {"unknown_instruction_error", "error_processing_commands_error", "build_canceled"}
    for name, dockerfile in (
        ("good", "FROM busybox:latest\nRUN true\n"),
        ("unknown", "FROM busybox:latest\nFROBNICATE x\n"),
        ("runfails", "FROM busybox:latest\nRUN exit 3\n"),
    ):
        context = tmp_path / name
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        cli.run("build", "-t", f"mbuild-{name}", str(context))
    # a line of 40000 bytes: cut into pieces of 16 KiB, 16 KiB and the rest (moby's copier buffer)
    cli("run", "--rm", "--network", "none", "busybox", "sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo")
    after = counts()
    cli.run("rmi", "mbuild-good")
    assert after[0] == triggered + 3
    assert after[1]["unknown_instruction_error"] == failed["unknown_instruction_error"] + 1
    assert after[1]["error_processing_commands_error"] == failed["error_processing_commands_error"] + 1
    assert sum(after[1].values()) == sum(failed.values()) + 2
    assert after[2] == partials + 3
    assert after[3] == write_errors == 0
