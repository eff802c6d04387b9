"""ImageService on a real vfs driver: commit from a container's RW layer, rmi rules, prune, restart."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

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


def make_service(root: Path) -> ImageService:
    driver = VfsStorageDriver.init(root / "vfs", {})
    # the smallest host an ImageService needs: the driver, the data-root, an event bus, a hook relay
    daemon = SimpleNamespace(storage=driver, data_root=root, events=EventBus(), pm=SimpleNamespace(hook=None))
    return ImageService(daemon)  # type: ignore[arg-type]


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
