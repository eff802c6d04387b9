"""``--change`` rules (dockerd's BuildFromConfig + commit merge) and Go-exact image JSON."""

from __future__ import annotations

import pytest

from engine.errors import InvalidParameter
from engine.images import changes, gojson


def test_instructions_apply_like_dockerd() -> None:
    cfg = changes.apply(
        {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        [
            'CMD ["echo", "hi"]',
            'ENV A=1 B="two words"',
            "ENV C $A-${B:-x}",
            "EXPOSE 80 53/udp 8000-8001",
            'LABEL org.x="a b" other=$A',
            "USER nobody",
            "VOLUME /data /cache",
            "WORKDIR /srv",
            "WORKDIR app",
            "ONBUILD RUN make",
            "HEALTHCHECK --interval=5s --retries=2 CMD true",
        ],
    )
    assert cfg["Cmd"] == ["echo", "hi"]
    assert cfg["Env"] == ["PATH=/bin", "A=1", "B=two words", "C=1-two words"]
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert cfg["Labels"] == {"org.x": "a b", "other": "1"}
    assert cfg["User"] == "nobody"
    assert set(cfg["Volumes"]) == {"/data", "/cache"}
    assert cfg["WorkingDir"] == "/srv/app"
    assert cfg["OnBuild"] == ["RUN make"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}


def test_shell_form_and_entrypoint_resets_cmd() -> None:
    cfg = changes.apply({"Cmd": ["sh"]}, ["ENTRYPOINT top -b"])
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "top -b"]
    assert cfg["Cmd"] is None
    cfg = changes.apply({}, ["CMD echo $HOME", 'ENTRYPOINT ["/init"]'])
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo $HOME"] and cfg["Entrypoint"] == ["/init"]


@pytest.mark.parametrize(
    "change,message",
    [("RUN ls", "run is not a valid change command"), ("FROM x", "from is not a valid change command")],
)
def test_invalid_changes(change: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        changes.apply({}, [change])
    assert info.value.message == message


def test_commit_merge_keeps_container_settings() -> None:
    container = {"Env": ["A=1", "B=2"], "Cmd": ["sh"], "Labels": {"x": "1"}, "WorkingDir": "/w", "User": "u"}
    merged = changes.merge(changes.apply(container, ["ENV B=3", "LABEL y=2"]), container)
    assert merged["Env"] == ["A=1", "B=3"]
    assert merged["Labels"] == {"x": "1", "y": "2"}
    assert merged["Cmd"] == ["sh"] and merged["WorkingDir"] == "/w" and merged["User"] == "u"


def test_go_json_matches_dockerd_bytes() -> None:
    # the config dockerd wrote for `docker import` of tests/data/dockerd/tiny-dockerd.tar
    created = "2026-11-28T21:35:13.548823315Z"
    raw = gojson.image_config_bytes(
        {
            "architecture": "amd64",
            "comment": "Imported from -",
            "config": gojson.config({}),
            "container_config": gojson.config({}),
            "created": created,
            "docker_version": "20.10.24+dfsg1",
            "history": [gojson.history_entry(created, comment="Imported from -")],
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:a1afec19b6bc8a4ecea7dbd4b9cad033dd95c3c99190c5ecbcff06f9f50896f3"],
            },
        }
    )
    import hashlib

    assert "sha256:" + hashlib.sha256(raw).hexdigest() == (
        "sha256:ee14ad9a44bf4d6ea30f73a2940cd66b37e01cf66222cfd39b8767b430dbee0f"
    )
    assert gojson.dumps({"s": "a > b && c < d"}) == '{"s":"a \\u003e b \\u0026\\u0026 c \\u003c d"}'


@pytest.mark.parametrize(
    "text,normal",
    [
        ("2024-01-02T03:04:05.120000000Z", "2024-01-02T03:04:05.12Z"),
        ("2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.5+02:00", "2024-01-02T03:04:05.5+02:00"),
    ],
)
def test_times(text: str, normal: str) -> None:
    assert gojson.normalize_time(text) == normal
    assert gojson.unix_seconds("1970-01-01T00:00:01.5Z") == 1
    assert gojson.unix_seconds("1970-01-01T02:00:00+02:00") == 0
