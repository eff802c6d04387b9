"""Containers end to end, the bookkeeping side: create validation, inspect and ps shapes against
dockerd 20.10's (tests/data/dockerd), names, rename, rm, prune, ps filters, wait."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "dockerd"


NAME_PREFIX = "ct-"  # of the container names the conftest fixture `name` makes


def keys_in_order(data: dict) -> list[str]:
    return list(data.keys())


def test_inspect_and_ps_have_dockerds_shape(docker, busybox, cleanup, name):
    """The reference container: create --network none -e A=1 -v /data --label x=y, then start it."""
    cleanup.append(name)
    docker(
        "create",
        "--name",
        name,
        "--network",
        "none",
        "-e",
        "A=1",
        "-v",
        "/data",
        "--label",
        "x=y",
        "busybox",
        "sh",
        "-c",
        "echo hi",
    )
    created = json.loads(docker("inspect", name).stdout)[0]
    ref = json.loads((DATA / "container-inspect-created.json").read_text())
    assert keys_in_order(created) == keys_in_order(ref)
    assert keys_in_order(created["State"]) == keys_in_order(ref["State"])
    assert keys_in_order(created["HostConfig"]) == keys_in_order(ref["HostConfig"])
    assert keys_in_order(created["Config"]) == keys_in_order(ref["Config"])
    assert keys_in_order(created["NetworkSettings"]) == keys_in_order(ref["NetworkSettings"])
    assert created["State"] == ref["State"]
    for key in (
        "Path",
        "Args",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "RestartCount",
        "Driver",
        "Platform",
        "ExecIDs",
    ):
        assert created[key] == ref[key], key
    assert created["Name"] == "/" + name
    assert created["Config"]["Hostname"] == created["Id"][:12]
    assert {k: v for k, v in created["Config"].items() if k != "Hostname"} == {
        k: v for k, v in ref["Config"].items() if k != "Hostname"
    }
    hc = {k: v for k, v in created["HostConfig"].items()}
    assert hc == ref["HostConfig"]
    mount = created["Mounts"][0]
    assert keys_in_order(mount) == keys_in_order(ref["Mounts"][0])
    assert mount["Destination"] == "/data" and mount["Type"] == "volume" and mount["Source"].endswith("/_data")
    assert set(created["GraphDriver"]["Data"]) == set(ref["GraphDriver"]["Data"])

    ps = json.loads(docker("ps", "-a", "--no-trunc", "--format", "{{json .}}", "--filter", f"name={name}").stdout)
    assert ps["Names"] == name and ps["Command"] == "\"sh -c 'echo hi'\"" and ps["Status"] == "Created"

    assert docker("start", "-a", name).stdout == "hi\n"
    exited = json.loads(docker("inspect", name).stdout)[0]
    ref_exited = json.loads((DATA / "container-inspect-exited.json").read_text())
    assert keys_in_order(exited["State"]) == keys_in_order(ref_exited["State"])
    assert exited["State"]["Status"] == "exited" and exited["State"]["ExitCode"] == 0
    assert exited["State"]["StartedAt"] <= exited["State"]["FinishedAt"]
    for key in ("ResolvConfPath", "HostnamePath", "HostsPath", "LogPath"):
        assert exited[key].startswith(str(Path(exited["ResolvConfPath"]).parent)), key
    assert exited["LogPath"].endswith(f"{exited['Id']}-json.log")


def test_list_api_shape(api, busybox, cleanup, name):
    cleanup.append(name)
    api.containers.create(
        busybox, ["sh", "-c", "echo hi"], name=name, labels={"x": "y"}, network_mode="none", volumes=["/data"]
    )
    items = [c for c in api.api.containers(all=True) if c["Names"] == ["/" + name]]
    ref = json.loads((DATA / "containers-json.json").read_text())[0]
    assert keys_in_order(items[0]) == keys_in_order(ref)
    assert items[0]["Image"] == busybox and items[0]["Labels"] == {"x": "y"} and items[0]["State"] == "created"
    assert items[0]["Mounts"][0]["Source"] == ""  # ps shows no source for volumes, as dockerd
    sized = next(c for c in api.api.containers(all=True, size=True) if c["Names"] == ["/" + name])
    assert sized.get("SizeRootFs", 0) > 0


def test_name_rules(docker, busybox, cleanup, name):
    cleanup.append(name)
    cid = docker("create", "--name", name, busybox, "true").out
    conflict = docker.fails("create", "--name", name, busybox, "true")
    assert (
        f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
        "You have to remove (or rename) that container to be able to reuse that name." in conflict.stderr
    )
    bad = docker.fails("create", "--name", "-bad", busybox, "true")
    assert "Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in bad.stderr
    generated = docker("create", busybox, "true").out
    cleanup.append(generated)
    gen_name = docker("inspect", "-f", "{{.Name}}", generated).out
    assert re.fullmatch(r"/[a-z]+_[a-z]+\d?", gen_name)
    # lookups: full ID, unique prefix, name
    assert docker("inspect", "-f", "{{.Id}}", cid[:8]).out == cid
    missing = docker.fails("inspect", "--type", "container", "nope-" + name)
    assert "No such container: nope-" + name in missing.stderr


def test_create_validation(api, busybox):
    import docker as docker_py

    def refused(match: str, **kwargs) -> None:
        with pytest.raises(docker_py.errors.APIError) as err:
            api.api.create_container(busybox, ["true"], **kwargs)
        assert match in str(err.value.explanation), err.value.explanation
        assert err.value.status_code == 400

    hc = api.api.create_host_config
    refused("invalid restart policy 'sometimes'", host_config=hc(restart_policy={"Name": "sometimes"}))
    refused(
        "maximum retry count cannot be used with restart policy 'always'",
        host_config=hc(restart_policy={"Name": "always", "MaximumRetryCount": 3}),
    )
    refused("Minimum memory limit allowed is 6MB", host_config=hc(mem_limit=1024))
    refused(
        "can't create 'AutoRemove' container with restart policy",
        host_config=hc(auto_remove=True, restart_policy={"Name": "always"}),
    )
    refused("the working directory 'rel' is invalid, it needs to be an absolute path", working_dir="rel")
    refused('unknown capability: "CAP_NOPE"', host_config=hc(cap_add=["NOPE"]))
    refused("Unknown runtime specified nope", host_config=hc(runtime="nope"))
    refused("Invalid signal: SIGNOPE", stop_signal="SIGNOPE")
    with pytest.raises(docker_py.errors.ImageNotFound) as err:  # the CLI's auto-pull depends on this 404
        api.api.create_container("nope:latest", ["true"])
    assert err.value.status_code == 404


def test_rename_rm_and_events(docker, busybox, cleanup, name, engine):
    cleanup.append(name + "-b")
    since = str(int(time.time()) - 1)
    docker("create", "--name", name, busybox, "sleep", "30")
    docker("rename", name, name + "-b")
    assert docker("inspect", "-f", "{{.Name}}", name + "-b").out == f"/{name}-b"
    docker("start", name + "-b")
    running = docker.fails("rm", name + "-b")
    assert "You cannot remove a running container" in running.stderr
    assert "Stop the container before attempting removal or force remove" in running.stderr
    docker("rm", "-f", name + "-b")
    assert docker.run("inspect", name + "-b").returncode != 0
    events = docker(
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ).lines()
    ours = [e for e in events if name in e]
    actions = [e.split()[0] for e in ours]
    assert actions[:2] == ["create", "rename"] and "start" in actions and actions[-1] == "destroy"
    assert actions.index("kill") < actions.index("die") < actions.index("destroy")


def test_rm_force_of_many_running_containers_at_once(docker, busybox, cleanup, name):
    """The CLI removes its arguments in parallel: more removals than the daemon has worker threads
    (each used to block one waiting for its container's exit, starving the exit handling)."""
    names = [f"{name}-{i}" for i in range(12)]
    cleanup.extend(names)
    for each in names:
        docker("run", "-d", "--name", each, "--network", "none", busybox, "sleep", "60")
    removed = docker.run("rm", "-f", *names)
    assert removed.returncode == 0, removed.stderr
    assert sorted(removed.lines()) == sorted(names)
    assert docker("ps", "-aq", "--filter", f"name={name}-").out == ""


def test_ps_filters_and_prune(docker, busybox, cleanup, name):
    a, b, c = name + "-a", name + "-b", name + "-c"
    cleanup.extend([a, b, c])
    assert docker.run("run", "--name", a, "--label", "role=x", busybox, "sh", "-c", "exit 3").returncode == 3
    docker("run", "-d", "--name", b, "--label", "role=y", busybox, "sleep", "30")
    docker("create", "--name", c, "--network", "none", "-v", "/data", busybox, "true")

    def ps(*args: str) -> list[str]:
        return docker("ps", "-a", "--format", "{{.Names}}", "--filter", f"name={name}", *args).lines()

    assert ps("--filter", "exited=3") == [a]
    assert ps("--filter", "status=running") == [b]
    assert ps("--filter", "status=created") == [c]
    assert ps("--filter", "label=role=y") == [b]
    assert ps("--filter", "label=role") == [b, a]
    assert ps("--filter", f"before={c}") == [b, a]
    assert ps("--filter", f"since={a}") == [c, b]
    assert ps("--filter", f"ancestor={busybox}") == [c, b, a]
    assert ps("--filter", "is-task=true") == []
    assert ps("--filter", "volume=/data") == [c]
    assert ps("--filter", "network=none") == [c]
    assert docker("ps", "--format", "{{.Names}}", "--filter", f"name={name}").lines() == [b]  # running only
    assert docker("ps", "-a", "-n", "1", "--format", "{{.Names}}").lines() == [c]
    assert docker("ps", "-aq", "--filter", f"name={a}").out == docker("inspect", "-f", "{{.Id}}", a).out[:12]
    bad = docker.fails("ps", "--filter", "status=nope")
    assert "Unrecognised filter value for status: nope" in bad.stderr
    assert "Invalid filter 'nope'" in docker.fails("ps", "--filter", "nope=1").stderr

    pruned = docker("container", "prune", "-f", "--filter", "label=role=x").stdout
    assert docker.run("inspect", a).returncode != 0 and "Deleted Containers:" in pruned
    assert docker.run("inspect", c).returncode == 0  # no label: kept


def test_wait_conditions(api, busybox, cleanup, name):
    cleanup.append(name)
    container = api.containers.create(busybox, ["sh", "-c", "sleep 0.3; exit 7"], name=name)
    # not-running on a container that never ran answers at once
    assert container.wait(condition="not-running", timeout=10) == {"Error": None, "StatusCode": 0}
    container.start()
    assert container.wait(condition="next-exit", timeout=20)["StatusCode"] == 7
    # the daemon flushes the 200 headers as soon as the waiter is registered (as dockerd): only then remove
    response = api.api._post(
        api.api._url("/containers/{0}/wait", container.id), params={"condition": "removed"}, stream=True, timeout=20
    )
    assert response.status_code == 200
    container.remove()
    cleanup.remove(name)
    assert response.json()["StatusCode"] == 7
