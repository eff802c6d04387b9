"""Reference parsing and normalisation as distribution/reference does it, and the tag store on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound
from engine.images.references import Reference, TagStore, familiar_match, parse_any, parse_normalized_named


@pytest.mark.parametrize(
    "text,full,familiar",
    [
        ("busybox", "docker.io/library/busybox", "busybox"),
        ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox", "busybox"),
        ("user/app:v1.2-rc", "docker.io/user/app:v1.2-rc", "user/app:v1.2-rc"),
        ("localhost/app", "localhost/app", "localhost/app"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
        ("my.registry.io/x__y.z-w", "my.registry.io/x__y.z-w", "my.registry.io/x__y.z-w"),
        (
            "busybox@sha256:" + "a" * 64,
            "docker.io/library/busybox@sha256:" + "a" * 64,
            "busybox@sha256:" + "a" * 64,
        ),
    ],
)
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = parse_normalized_named(text)
    assert str(ref) == full
    assert ref.familiar == familiar


def test_bare_name_means_latest() -> None:
    a = parse_normalized_named("busybox").tag_name_only()
    assert a == parse_normalized_named("busybox:latest") == parse_normalized_named("docker.io/library/busybox:latest")


@pytest.mark.parametrize(
    "text,message",
    [
        ("Busybox", "invalid reference format: repository name must be lowercase"),
        ("busy box", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        ("-busybox", "invalid reference format"),
        ("a" * 64, "invalid repository name (" + "a" * 64 + "), cannot specify 64-byte hexadecimal strings"),
        ("x/" + "a" * 260, "repository name must not be more than 255 characters"),
        ("busybox@sha256:abc", "invalid reference format"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_normalized_named(text)
    assert info.value.message == message
    assert info.value.status == 400


def test_parse_any_ids() -> None:
    assert parse_any("a" * 64) == "sha256:" + "a" * 64
    assert parse_any("sha256:" + "b" * 64) == "sha256:" + "b" * 64
    assert isinstance(parse_any("abc"), Reference)


def test_tag_validation() -> None:
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        parse_normalized_named("busybox").with_tag("-bad")


def test_familiar_match() -> None:
    ref = parse_normalized_named("docker.io/library/busybox:latest")
    assert familiar_match("busybox", ref)
    assert familiar_match("busy*", ref)
    assert familiar_match("busybox:lat*", ref)
    assert not familiar_match("bus", ref)
    assert not familiar_match("*", parse_normalized_named("user/app:1"))


def test_tag_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "repositories.json"
    store = TagStore(path)
    image = "sha256:" + "1" * 64
    other = "sha256:" + "2" * 64
    store.add(parse_normalized_named("busybox"), image)
    store.add(parse_normalized_named("localhost:5000/x:1"), image)
    assert json.loads(path.read_text()) == {
        "Repositories": {"busybox": {"busybox:latest": image}, "localhost:5000/x": {"localhost:5000/x:1": image}}
    }
    assert [r.familiar for r in TagStore(path).references(image)] == ["busybox:latest", "localhost:5000/x:1"]
    with pytest.raises(Conflict, match="is already set to image"):
        store.add(parse_normalized_named("busybox:latest"), other, force=False)
    store.add(parse_normalized_named("busybox:latest"), other)
    assert store.get(parse_normalized_named("busybox")) == other
    assert [r.familiar for r in store.references(image)] == ["localhost:5000/x:1"]
    assert store.delete(parse_normalized_named("localhost:5000/x:1"))
    assert store.references(image) == []
    with pytest.raises(NotFound, match="reference does not exist"):
        store.get(parse_normalized_named("localhost:5000/x:1"))
    assert json.loads(path.read_text()) == {"Repositories": {"busybox": {"busybox:latest": other}}}


def test_no_catastrophic_backtracking() -> None:
    import time

    for text in ("a" * 200 + "!", "x/" + "a1" * 120 + "@sha256:abc", "a-" * 120 + "!", "a." * 120 + "/b!"):
        start = time.monotonic()
        with pytest.raises(InvalidParameter):
            parse_normalized_named(text)
        assert time.monotonic() - start < 0.1, text
