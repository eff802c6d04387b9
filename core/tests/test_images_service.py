"""ImageService on a real vfs driver: commit from a container's RW layer, rmi rules, prune, restart."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from engine.builtin.vfs import VfsStorageDriver
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.events import EventBus
from engine.filters import Filters
from engine.images.service import ImageService


def rootfs(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_service(root: Path, hook: object = None) -> ImageService:
    driver = VfsStorageDriver.init(root / "vfs", {})
    # no registry here: the configuration is only read by pull, push and login
    return ImageService(
        root / "image" / driver.name,
        driver,
        config=lambda: pytest.fail("no test here reads the daemon configuration"),
        events=EventBus(),
        hooks=hook,  # type: ignore[arg-type]
    )


class RecordingHooks:
    """A stand-in for the Hooks facade that records the storage hooks (no plugin needed)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def storage_layer_created(self, *, driver_name: str, chain_id: str, diff_id: str, size: int) -> None:
        self.calls.append(("created", chain_id))

    def storage_layer_removed(self, *, driver_name: str, chain_id: str) -> None:
        self.calls.append(("removed", chain_id))


@pytest.fixture
def images(tmp_path: Path) -> ImageService:
    return make_service(tmp_path)


def test_import_then_commit_container_changes(images: ImageService) -> None:
    base = images.import_image("-", io.BytesIO(rootfs({"etc/os": b"x"})), repo="base", changes=['CMD ["sh"]'])
    image = images.resolve("base")
    assert image.id == base and image.config["Cmd"] == ["sh"] and image.repo_tags == ["base:latest"]
    cid = "a" * 64
    images.layers.create_rw_layer(cid, image.top_layer, lambda p: (p / "etc" / "hostname").write_text("h"))
    root = images.layers.mount_rw(cid)
    (root / "new").write_text("new")
    images.layers.unmount_rw(cid)
    container_config = {"Cmd": ["touch", "/new"], "Env": ["A=1"], "Image": "base"}
    new = images.commit(
        cid, base, container_config, repo="committed", tag="1", comment="why", author="me", changes=["ENV B=2"]
    )
    committed = images.resolve("committed:1")
    assert committed.id == new and committed.parent == base
    assert committed.config["Env"] == ["A=1", "B=2"]
    assert committed.config["Cmd"] == ["touch", "/new"]
    assert committed.config_json["author"] == "me" and committed.config_json["container"] == cid
    assert len(committed.diff_ids) == 2
    hist = images.history("committed:1")
    assert [h["CreatedBy"] for h in hist] == ["touch /new", ""]
    assert hist[0]["Comment"] == "why" and hist[0]["Size"] == 3 and hist[1]["Id"] == base
    # a container with no changes commits an empty layer, recorded as such
    fresh = "b" * 64
    images.layers.create_rw_layer(fresh, committed.top_layer)
    again = images.commit(fresh, new, container_config)
    assert images.resolve(again).diff_ids == committed.diff_ids
    assert images.resolve(again).history[-1]["empty_layer"] is True
    images.layers.remove_rw_layer(fresh)
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        images.commit(cid, base, container_config, changes=["RUN x"])
    images.layers.remove_rw_layer(cid)


def test_rmi_conflicts_and_parent_chains(images: ImageService) -> None:
    base = images.import_image("-", io.BytesIO(rootfs({"f": b"1"})), repo="img", tag="1")
    users: dict[str, list[tuple[str, bool]]] = {}
    images.set_usage_check(lambda image_id: users.get(image_id, []))
    users[base] = [("c" * 64, True)]
    with pytest.raises(Conflict) as info:
        images.delete("img:1")
    assert info.value.message == (
        f'conflict: unable to remove repository reference "img:1" (must force) - container cccccccccccc is using '
        f"its referenced image {base[7:19]}"
    )
    with pytest.raises(Conflict, match="image is being used by running container cccccccccccc"):
        images.delete(base[7:19], force=True)
    users[base] = [("d" * 64, False)]
    with pytest.raises(Conflict, match=r"\(must be forced\) - image is being used by stopped container dddddddddddd"):
        images.delete(base[7:19])
    # -f on the last tag: dockerd removes the image even though a stopped container uses it
    assert images.delete("img:1", force=True)[:2] == [{"Untagged": "img:1"}, {"Deleted": base}]
    users.clear()
    base = images.import_image("-", io.BytesIO(rootfs({"f": b"1"})))
    cid = "e" * 64
    images.layers.create_rw_layer(cid, images.resolve(base).top_layer)
    child = images.commit(cid, base, {"Cmd": ["x"]}, repo="child")
    images.layers.remove_rw_layer(cid)
    with pytest.raises(Conflict, match="image has dependent child images"):
        images.delete(base, force=True)
    records = images.delete("child", prune=False)
    assert records[:2] == [{"Untagged": "child:latest"}, {"Deleted": child}]
    assert images.store.exists(base)  # noprune keeps the untagged parent
    records = images.delete(base)
    assert {"Deleted": base} in records and not images.store.exists(base)
    assert images.store.all() == {} and images.layers.all() == {}


def test_ambiguous_and_missing_references(images: ImageService) -> None:
    with pytest.raises(NotFound) as info:
        images.resolve("nothing")
    assert info.value.message == "No such image: nothing:latest"
    with pytest.raises(NotFound, match="no such image: nothing: No such image: nothing:latest"):
        images.inspect("nothing")
    images.import_image("-", io.BytesIO(rootfs({"f": b"1"})), repo="something")
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        images.tag("something", "Bad")
    images.tag("something", "other", "2")
    assert images.resolve("other:2").repo_tags == ["other:2", "something:latest"]


def test_prune_and_restart_keep_state(tmp_path: Path) -> None:
    images = make_service(tmp_path)
    kept = images.import_image("-", io.BytesIO(rootfs({"k": b"k"})), repo="kept", changes=["LABEL a=1"])
    dangling = images.import_image("-", io.BytesIO(rootfs({"d": b"dd"})), changes=["LABEL a=1"])
    report = images.prune(Filters.parse(json.dumps({"label": ["a=1"]})))
    assert report["ImagesDeleted"][0] == {"Deleted": dangling}
    assert report["SpaceReclaimed"] == 2
    restarted = make_service(tmp_path)
    assert restarted.resolve("kept").id == kept
    assert list(restarted.store.all()) == [kept]
    assert restarted.list_images()[0]["RepoTags"] == ["kept:latest"]
    report = restarted.prune(Filters.parse(json.dumps({"dangling": ["false"]})))
    assert {"Untagged": "kept:latest"} in report["ImagesDeleted"]
    assert not any((tmp_path / "image" / "vfs" / "layerdb" / "sha256").iterdir())
    assert not any((tmp_path / "vfs" / "dir").iterdir())


def test_id_prefixes(images: ImageService) -> None:
    ids = [images.import_image("-", io.BytesIO(rootfs({"f": bytes([i])}))) for i in range(20)]
    for image_id in ids:
        hexid = image_id[7:]
        assert images.resolve(hexid[:12]).id == image_id
        assert images.resolve("sha256:" + hexid[:8]).id == image_id
        assert images.resolve(hexid).id == image_id
    # 20 IDs share some first hex digit: that prefix is ambiguous, which dockerd reports as not found
    first = [i[7] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    with pytest.raises(NotFound, match=f"No such image: {shared}:latest"):
        images.resolve(shared)


def test_child_images_and_storage_hooks_through_the_public_surface(tmp_path: Path) -> None:
    """What the builder uses (LocalImages, create_child_image) fires the storage hooks as commit does."""
    from engine.images.commit import create_child_image

    hooks = RecordingHooks()
    images = make_service(tmp_path, hooks)
    base = images.resolve(images.import_image("-", io.BytesIO(rootfs({"a": b"1"})), repo="base"))
    assert hooks.calls == [("created", base.top_layer)]
    local = images.local
    # no layer change: an empty_layer history entry, the same layers, no hook
    meta = create_child_image(local, base, None, config={"Env": ["A=1"]}, container_config={"Cmd": ["#(nop) ENV"]})
    child = images.resolve(meta)
    assert child.parent == base.id and child.diff_ids == base.diff_ids
    assert child.history[-1]["empty_layer"] is True and child.history[-1]["created_by"] == "#(nop) ENV"
    assert len(hooks.calls) == 1
    # a layer: registered on the parent's top layer and announced
    layered = images.resolve(
        create_child_image(local, child, io.BytesIO(rootfs({"b": b"2"})), config={}, container_config={"Cmd": ["x"]})
    )
    assert layered.parent == child.id and len(layered.diff_ids) == 2
    assert hooks.calls[-1] == ("created", layered.top_layer)
    # rmi of the chain tells the hooks of every layer that went
    images.delete(layered.id)
    images.delete("base")
    assert ("removed", layered.top_layer) in hooks.calls and ("removed", base.top_layer) in hooks.calls


def test_registry_view_is_the_distribution_target(images: ImageService) -> None:
    from engine.distribution.target import ImageTarget
    from engine.images.registry import RegistryImages
    from engine.reference import parse_normalized_named

    view = RegistryImages(images.local)
    assert isinstance(view, ImageTarget)
    image_id = images.import_image("-", io.BytesIO(rootfs({"f": b"1"})))
    ref = parse_normalized_named("localhost:5000/x:1")
    assert view.image_of(ref) is None
    view.add_reference(ref, image_id)  # as a pull does: no tag event
    assert view.image_of(ref) == image_id and images.resolve("localhost:5000/x:1").id == image_id
    assert view.has_image(image_id) and view.has_layer(view.image(image_id).chain_ids[-1])
