"""docker volume create/ls/inspect/rm/prune through the real docker CLI and docker-py."""

from __future__ import annotations

import json
import time
import uuid

import pytest


@pytest.fixture
def tag() -> str:
    """A label value unique to one test, so filters and prunes never touch other tests' volumes."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def cleanup(docker):
    names: list[str] = []
    yield names
    if names:
        docker.run("volume", "rm", "-f", *names)


def test_create_inspect_rm(docker, tag, cleanup):
    name = f"vol-{tag}"
    cleanup.append(name)
    assert docker("volume", "create", "--label", f"test={tag}", "--label", "role=data", name).out == name
    [info] = json.loads(docker("volume", "inspect", name).stdout)
    assert info["Name"] == name and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"test": tag, "role": "data"}
    assert info["Mountpoint"].endswith(f"/volumes/{name}/_data")
    assert time.time() - time.mktime(time.strptime(info["CreatedAt"][:19], "%Y-%m-%dT%H:%M:%S")) < 3600 * 24
    assert docker("volume", "inspect", "--format", '{{.Driver}} {{index .Labels "role"}}', name).out == "local data"
    assert docker("volume", "rm", name).out == name
    missing = docker.fails("volume", "inspect", name)
    assert "no such volume" in missing.stderr.lower()


def test_anonymous_volume_has_a_64_hex_name(docker, cleanup):
    name = docker("volume", "create").out
    cleanup.append(name)
    assert len(name) == 64 and int(name, 16) >= 0


def test_errors_have_dockerds_words(docker, tag):
    result = docker.fails("volume", "rm", f"nope-{tag}")
    assert f"Error response from daemon: get nope-{tag}: no such volume" in result.stderr
    assert docker("volume", "rm", "-f", f"nope-{tag}").returncode == 0
    result = docker.fails("volume", "create", "-o", "bogus=1", f"bad-{tag}")
    assert f'create bad-{tag}: invalid option: "bogus"' in result.stderr
    result = docker.fails("volume", "create", "x")
    assert "create x: volume name is too short, names should be at least two alphanumeric characters" in result.stderr
    result = docker.fails("volume", "create", "-d", "convoy", f"plug-{tag}")
    assert f'create plug-{tag}: error looking up volume plugin convoy: plugin "convoy" not found' in result.stderr


def test_ls_filters_and_format(docker, tag, cleanup):
    for name, labels in ((f"a-{tag}", ["env=prod"]), (f"b-{tag}", ["env=dev"]), (f"c-{tag}", [])):
        cleanup.append(name)
        docker("volume", "create", "--label", f"test={tag}", *[a for label in labels for a in ("--label", label)], name)
    ls = docker("volume", "ls", "-q", "--filter", f"label=test={tag}")
    assert sorted(ls.lines()) == [f"a-{tag}", f"b-{tag}", f"c-{tag}"]
    assert docker("volume", "ls", "-q", "-f", f"label=test={tag}", "-f", "label=env=prod").lines() == [f"a-{tag}"]
    assert docker("volume", "ls", "-q", "-f", f"name=b-{tag}").lines() == [f"b-{tag}"]
    assert docker("volume", "ls", "-q", "-f", f"name=^c-{tag}$", "-f", "dangling=true").lines() == [f"c-{tag}"]
    table = docker("volume", "ls", "-f", f"label=test={tag}", "--format", '{{.Name}}\t{{.Driver}}\t{{.Label "env"}}')
    assert sorted(table.lines()) == [f"a-{tag}\tlocal\tprod", f"b-{tag}\tlocal\tdev", f"c-{tag}\tlocal\t"]
    rows = [json.loads(line) for line in docker("volume", "ls", "-f", f"name=a-{tag}", "--format", "json").lines()]
    assert rows[0]["Name"] == f"a-{tag}" and rows[0]["Scope"] == "local"
    result = docker.fails("volume", "ls", "-f", "until=1h")
    assert "Invalid filter 'until'" in result.stderr


def test_prune_with_label_filters(docker, tag, cleanup):
    keep, drop = f"keep-{tag}", f"drop-{tag}"
    cleanup.extend([keep, drop])
    docker("volume", "create", "--label", f"test={tag}", "--label", "keep=yes", keep)
    docker("volume", "create", "--label", f"test={tag}", drop)
    result = docker("volume", "prune", "-f", "--filter", f"label=test={tag}", "--filter", "label!=keep")
    assert drop in result.stdout and keep not in result.stdout
    assert "Total reclaimed space" in result.stdout
    assert docker("volume", "ls", "-q", "-f", f"label=test={tag}").lines() == [keep]


def test_prune_reports_space_reclaimed(api, tag):
    volume = api.volumes.create(f"space-{tag}", labels={"test": tag})
    report = api.volumes.prune(filters={"label": f"test={tag}"})
    assert report["VolumesDeleted"] == [volume.name]
    assert report["SpaceReclaimed"] == 0


def test_driver_options_are_kept(docker, tag, cleanup):
    name = f"tmp-{tag}"
    cleanup.append(name)
    docker("volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=16m", name)
    [info] = json.loads(docker("volume", "inspect", name).stdout)
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=16m"}


def test_docker_py_volume_api(api, tag):
    volume = api.volumes.create(f"py-{tag}", driver="local", labels={"test": tag})
    try:
        assert volume.attrs["Labels"] == {"test": tag}
        assert [v.name for v in api.volumes.list(filters={"label": f"test={tag}"})] == [volume.name]
        assert api.volumes.get(volume.name).attrs["Mountpoint"] == volume.attrs["Mountpoint"]
    finally:
        volume.remove()
    import docker as docker_py

    with pytest.raises(docker_py.errors.NotFound):
        api.volumes.get(volume.name)


def test_events_create_and_destroy(docker, tag):
    since = time.time()
    name = f"ev-{tag}"
    docker("volume", "create", name)
    docker("volume", "rm", name)
    until = time.time() + 0.5
    out = docker(
        "system", "events", "--since", f"{since:.9f}", "--until", f"{until:.9f}",
        "--filter", "type=volume", "--filter", f"volume={name}", "--format", "{{json .}}",
    )  # fmt: skip
    events = [json.loads(line) for line in out.lines()]
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("volume", "create", name),
        ("volume", "destroy", name),
    ]
    assert events[0]["Actor"]["Attributes"] == {"driver": "local"}


def test_system_df_lists_volumes(docker, tag, cleanup):
    name = f"df-{tag}"
    cleanup.append(name)
    docker("volume", "create", name)
    out = docker("system", "df", "-v", "--format", "{{json .}}").stdout
    data = json.loads(out)
    rows = {v["Name"]: v for v in data["Volumes"]}
    assert name in rows and rows[name]["Links"] == "0"
