"""engine.archive: extraction never escapes its target; whiteouts in both forms; tar round trips; docker cp."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import archive
from engine.drivers import layers
from engine.drivers.layers import _paths, _write
from engine.drivers.storage import IdMap, IdMapping

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, trusted.* xattrs)")


# -- helpers ---------------------------------------------------------------------------------------------


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


def members(buf: io.BytesIO) -> list[tarfile.TarInfo]:
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        return tf.getmembers()


def snapshot(path: Path) -> dict[str, tuple[int, int, int, int, bytes | str | None]]:
    """Everything observable below ``path``: mode, owner, size, content or link target."""
    out: dict[str, tuple[int, int, int, int, bytes | str | None]] = {}
    for host, rel, st in layers.walk_tree(str(path)):
        content: bytes | str | None = None
        if stat.S_ISREG(st.st_mode):
            content = Path(host).read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(host)
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, content)
    return out


@pytest.fixture(params=["openat2", "userspace"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the safety cases with the kernel's RESOLVE_IN_ROOT and with the userspace fallback."""
    if request.param == "userspace":
        monkeypatch.setattr(_paths, "_openat2_ok", False)
    return request.param


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(target, sentinel): a target dir and a sibling dir that must never change."""
    target, sentinel = tmp_path / "target", tmp_path / "sentinel"
    target.mkdir()
    sentinel.mkdir()
    (sentinel / "secret").write_text("keep")
    before = snapshot(sentinel)
    yield target, sentinel
    assert snapshot(sentinel) == before, "something was written outside the target"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel", "target"]


# -- safety ------------------------------------------------------------------------------------------------


def test_dotdot_paths_are_refused(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, _ = sandbox
    for name in ("../sentinel/evil", "a/../../sentinel/evil", "./../evil"):
        with pytest.raises(layers.BreakoutError):
            layers.apply_layer(target, make_tar(entry(name, data=b"x")))
    assert list(target.iterdir()) == []


def test_absolute_paths_are_made_relative(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = sandbox
    layers.apply_layer(target, make_tar(entry(f"{sentinel}/evil", data=b"x"), entry("/../../top", data=b"y")))
    assert (target / str(sentinel).lstrip("/") / "evil").read_bytes() == b"x"
    assert (target / "top").read_bytes() == b"y"


def test_symlinked_parent_stays_inside(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = sandbox
    # a -> /etc: the link resolves inside the target, where nothing exists yet: refused
    tar = make_tar(entry("a", tarfile.SYMTYPE, linkname="/etc"), entry("a/engine-test-evil", data=b"x"))
    with pytest.raises(layers.ArchiveError, match="not a directory"):
        layers.apply_layer(target, tar)
    assert not Path("/etc/engine-test-evil").exists()
    # etc -> /etc resolves to itself inside the target
    tar = make_tar(entry("etc", tarfile.SYMTYPE, linkname="/etc"), entry("etc/engine-test-evil", data=b"x"))
    with pytest.raises(layers.ArchiveError, match="symbolic links"):
        layers.apply_layer(target, tar)
    assert not Path("/etc/engine-test-evil").exists()
    # once the link's target exists inside, writes through the link land there
    tar = make_tar(
        entry(str(sentinel), tarfile.DIRTYPE),
        entry("a", tarfile.SYMTYPE, linkname=str(sentinel)),
        entry("a/secret", data=b"overwritten"),
        entry("a/sub/deeper", data=b"made"),
    )
    layers.apply_layer(target, tar)
    inside = target / str(sentinel).lstrip("/")
    assert (inside / "secret").read_bytes() == b"overwritten"
    assert (inside / "sub" / "deeper").read_bytes() == b"made"
    assert (target / "a").is_symlink()


def test_symlink_loop_and_dotdot_symlinks_stay_inside(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, _ = sandbox
    tar = make_tar(
        entry("up", tarfile.SYMTYPE, linkname="/.."),  # absolute: allowed (joined under the target)
        entry("up/x", data=b"1"),
        entry("d", tarfile.DIRTYPE),
        entry("d/loop", tarfile.SYMTYPE, linkname="/d/loop"),
    )
    layers.apply_layer(target, tar)
    assert (target / "x").read_bytes() == b"1"
    with pytest.raises(layers.ArchiveError, match="symbolic links"):
        layers.apply_layer(target, make_tar(entry("d/loop/y", data=b"2")))


def test_relative_symlink_climbing_out_is_refused(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, _ = sandbox
    with pytest.raises(layers.BreakoutError, match="symlink"):
        layers.apply_layer(target, make_tar(entry("a/b", tarfile.SYMTYPE, linkname="../../sentinel")))


def test_hardlinks_outside_are_refused_or_contained(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = sandbox
    with pytest.raises(layers.BreakoutError):
        layers.apply_layer(target, make_tar(entry("h", tarfile.LNKTYPE, linkname="../sentinel/secret")))
    # an absolute link name means a file inside the target: missing there, so it fails
    with pytest.raises(layers.ArchiveError, match="No such file"):
        layers.apply_layer(target, make_tar(entry("h", tarfile.LNKTYPE, linkname=f"{sentinel}/secret")))
    # through a symlinked parent: still resolved inside the target
    tar = make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(sentinel)), entry("h2", tarfile.LNKTYPE, linkname="s/secret")
    )
    with pytest.raises(layers.ArchiveError, match="No such file"):
        layers.apply_layer(target, tar)
    assert os.stat(sentinel / "secret").st_nlink == 1


def test_symlink_then_file_replaces_the_symlink(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = sandbox
    tar = make_tar(
        entry("f", tarfile.SYMTYPE, linkname=str(sentinel / "secret")),
        entry("f", data=b"mine"),
        entry("d", tarfile.SYMTYPE, linkname=str(sentinel)),
        entry("d", tarfile.DIRTYPE, mode=0o700),
        entry("d/secret", data=b"inner"),
        entry("fifo", tarfile.SYMTYPE, linkname=str(sentinel / "secret")),
        entry("fifo", tarfile.FIFOTYPE),
    )
    layers.apply_layer(target, tar)
    assert (target / "f").read_bytes() == b"mine" and not (target / "f").is_symlink()
    assert (target / "d").is_dir() and not (target / "d").is_symlink()
    assert stat.S_IMODE((target / "d").stat().st_mode) == 0o700
    assert stat.S_ISFIFO((target / "fifo").lstat().st_mode)


def test_whiteouts_through_symlinks_stay_inside(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = sandbox
    tar = make_tar(entry("s", tarfile.SYMTYPE, linkname=str(sentinel)), entry("s/.wh.secret"), entry("s/.wh..wh..opq"))
    layers.apply_layer(target, tar)  # the link is dangling inside the target: nothing to hide
    inside = target / str(sentinel).lstrip("/")
    layers.apply_layer(target, make_tar(entry(f"{sentinel}/secret", data=b"inner"), entry(f"{sentinel}/other")))
    layers.apply_layer(target, make_tar(entry("s/.wh.secret")))
    assert os.listdir(inside) == ["other"]
    layers.apply_layer(target, make_tar(entry("s/.wh..wh..opq")))
    assert os.listdir(inside) == []
    with pytest.raises(layers.BreakoutError):
        layers.apply_layer(target, make_tar(entry(".wh..")))
    with pytest.raises(layers.BreakoutError):
        layers.apply_layer(target, make_tar(entry("x/.wh...")))


def test_extract_to_stays_inside_the_root(sandbox: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = sandbox
    os.symlink(str(sentinel), target / "link")
    with pytest.raises(FileNotFoundError):  # /link resolves to <root>/<sentinel path>, which is missing
        archive.extract_to(target, "/link", make_tar(entry("x", data=b"1")))
    (target / "tmp").mkdir()
    os.symlink("../../../..", target / "tmp" / "up")
    archive.extract_to(target, "/tmp/up", make_tar(entry("y", data=b"2")))
    assert (target / "y").read_bytes() == b"2"


# -- whiteouts --------------------------------------------------------------------------------------------


def _lower(target: Path) -> None:
    (target / "dir" / "sub").mkdir(parents=True)
    (target / "dir" / "old").write_text("old")
    (target / "dir" / "sub" / "deep").write_text("deep")
    (target / "gone").write_text("x")
    (target / "gonedir").mkdir()
    (target / "gonedir" / "f").write_text("x")
    (target / "keep").write_text("k")


def test_delete_whiteouts(tmp_path: Path) -> None:
    _lower(tmp_path)
    tar = make_tar(
        entry(".wh.gone"),
        entry(".wh.gonedir"),
        entry(".wh.missing"),
        entry("dir", tarfile.DIRTYPE),
        entry("dir/.wh..wh..opq"),
        entry("dir/new", data=b"new"),
        entry("dir/sub", tarfile.DIRTYPE),
        entry(".wh..wh.plnk", tarfile.DIRTYPE),  # aufs bookkeeping: skipped
    )
    size = layers.apply_layer(tmp_path, tar)
    assert size == 3
    assert sorted(os.listdir(tmp_path)) == ["dir", "keep"]
    assert sorted(os.listdir(tmp_path / "dir")) == ["new", "sub"]
    assert os.listdir(tmp_path / "dir" / "sub") == []  # opaque: lower content below kept dirs goes too


def test_overlay_whiteouts_round_trip(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    tar = make_tar(
        entry(".wh.gone", uid=7, gid=8),
        entry("dir", tarfile.DIRTYPE),
        entry("dir/.wh..wh..opq"),
        entry("dir/new", data=b"new"),
        entry("plain/.wh.x"),
    )
    layers.apply_layer(upper, tar, layers.OverlayWhiteouts())
    wh = os.lstat(upper / "gone")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0 and (wh.st_uid, wh.st_gid) == (7, 8)
    assert os.getxattr(upper / "dir", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(upper / "plain" / "x").st_mode)

    out = io.BytesIO()
    layers.tar_tree(upper, out, overlay_whiteouts=True)
    out.seek(0)
    names = [(m.name, m.type) for m in members(out)]
    assert names == [
        ("dir", tarfile.DIRTYPE),
        ("dir/.wh..wh..opq", tarfile.REGTYPE),
        ("dir/new", tarfile.REGTYPE),
        (".wh.gone", tarfile.REGTYPE),
        ("plain", tarfile.DIRTYPE),
        ("plain/.wh.x", tarfile.REGTYPE),
    ]
    out.seek(0)
    for m in members(out):
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in m.pax_headers)

    # the same tar applied in delete mode onto a lower removes what the overlay form hides
    lower = tmp_path / "lower"
    lower.mkdir()
    _lower(lower)
    out.seek(0)
    layers.apply_layer(lower, out)
    assert sorted(os.listdir(lower)) == ["dir", "gonedir", "keep", "plain"]
    assert os.listdir(lower / "dir") == ["new"]


def test_userxattr_opaque(tmp_path: Path) -> None:
    layers.apply_layer(tmp_path, make_tar(entry("d/.wh..wh..opq")), layers.OverlayWhiteouts("user.overlay.opaque"))
    assert os.getxattr(tmp_path / "d", "user.overlay.opaque") == b"y"
    out = io.BytesIO()
    layers.tar_tree(tmp_path, out, overlay_whiteouts=True, overlay_xattr_prefix="user.overlay.")
    out.seek(0)
    assert [m.name for m in members(out)] == ["d", "d/.wh..wh..opq"]


def test_whiteouts_are_plain_files_for_untar(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    layers.untar(tmp_path, make_tar(entry(".wh.x"), entry(".wh..wh..opq")))
    assert sorted(os.listdir(tmp_path)) == [".wh..wh..opq", ".wh.x", "x"]


# -- round trips ------------------------------------------------------------------------------------------


def _rich_tree(root: Path) -> None:
    (root / "dir" / "nested").mkdir(parents=True)
    os.chmod(root / "dir", 0o750)
    (root / "dir" / "file").write_bytes(b"data" * 1000)
    os.chmod(root / "dir" / "file", 0o4755)
    os.chown(root / "dir" / "file", 1000, 1001)
    os.link(root / "dir" / "file", root / "hardlink")
    os.symlink("dir/file", root / "symlink")
    os.symlink("/absolute/dangling", root / "dangling")
    os.mkfifo(root / "fifo", 0o640)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "blk", 0o600 | stat.S_IFBLK, os.makedev(7, 99))
    long = root / ("l" * 120) / ("m" * 200)
    long.mkdir(parents=True)
    (long / ("n" * 250)).write_text("long")
    (root / os.fsdecode(b"caf\xe9-latin1")).write_text("bytes name")
    (root / "dir" / "sticky").mkdir(mode=0o1777)
    os.chmod(root / "dir" / "sticky", 0o1777)
    os.setxattr(root / "dir" / "file", "user.note", b"hello")
    os.setxattr(root / "dir" / "file", "trusted.bin", b"\x00\xff\xfe")
    os.setxattr(root / "dir", "trusted.dir", b"d")
    os.setxattr(root / "symlink", "trusted.onlink", b"l", follow_symlinks=False)
    os.utime(root / "dir" / "file", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))


def _times(root: Path) -> dict[str, int]:
    return {rel: st.st_mtime_ns // 1_000_000_000 for _, rel, st in layers.walk_tree(str(root))}


def _xattrs(root: Path) -> dict[str, dict[str, bytes]]:
    out = {}
    for host, rel, _ in layers.walk_tree(str(root)):
        names = os.listxattr(host, follow_symlinks=False)
        out[rel] = {n: os.getxattr(host, n, follow_symlinks=False) for n in names}
    return out


def test_tree_round_trip(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    _rich_tree(src)
    out = io.BytesIO()
    layers.tar_tree(src, out)
    out.seek(0)
    by_name = {m.name: m for m in members(out)}
    assert by_name["hardlink"].islnk() and by_name["hardlink"].linkname == "dir/file"
    out.seek(0)
    size = layers.apply_layer(dst, out)
    assert size == 4000 + 4 + len("bytes name")
    assert snapshot(dst) == snapshot(src)
    assert _times(dst) == _times(src)
    assert _xattrs(dst) == _xattrs(src)
    assert os.stat(dst / "hardlink").st_ino == os.stat(dst / "dir" / "file").st_ino


def test_tar_is_deterministic(tmp_path: Path) -> None:
    _rich_tree(tmp_path)
    a, b = io.BytesIO(), io.BytesIO()
    layers.tar_tree(tmp_path, a)
    layers.tar_tree(tmp_path, b)
    assert a.getvalue() == b.getvalue()
    names = [m.name for m in members(a)]
    assert names.index("dir") < names.index("dir/file") < names.index("dir/nested")


def test_fast_headers_match_tarfile() -> None:
    """The direct ustar encoder writes what tarfile's PAX writer would, byte for byte."""
    rng = random.Random(7)
    checked = 0
    kinds = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE)
    for kind in kinds:
        for i in range(100):
            info = tarfile.TarInfo("d/" * rng.randint(0, 52) + f"f{i}")
            info.type, info.mode = kind, rng.randint(0, 0o7777)
            info.uid, info.gid = rng.randint(0, 70000), rng.choice([0, rng.randint(0, 1 << 22)])
            info.mtime = rng.choice([0, rng.randint(0, 1 << 34)])
            info.size = rng.randint(0, 1 << 36) if kind == tarfile.REGTYPE else 0
            info.linkname = "x/" * rng.randint(0, 52) if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = rng.randint(0, 255), rng.randint(0, 1 << 20)
            fast = _write._ustar_header(info)
            if fast is not None:
                checked += 1
                assert fast == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert checked > 200


@pytest.mark.parametrize("codec", ["gzip", "bzip2", "xz", "zstd"])
def test_compressed_input(tmp_path: Path, codec: str) -> None:
    raw = make_tar(entry("a/b", data=b"payload")).getvalue()
    if codec == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("zstd command not installed")
        data = subprocess.run(["zstd", "-c"], input=raw, capture_output=True, check=True).stdout
    else:
        data = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[codec](raw)
    assert layers.apply_layer(tmp_path, io.BytesIO(data)) == 7
    assert (tmp_path / "a" / "b").read_bytes() == b"payload"


def test_empty_and_broken_streams(tmp_path: Path) -> None:
    assert layers.apply_layer(tmp_path, io.BytesIO(b"")) == 0
    assert layers.apply_layer(tmp_path, io.BytesIO(bytes(1024))) == 0
    with pytest.raises(layers.ArchiveError, match="invalid tar stream"):
        layers.apply_layer(tmp_path, io.BytesIO(b"not a tar" * 100))
    truncated = make_tar(entry("f", data=b"x" * 5000)).getvalue()[:2048]
    with pytest.raises(layers.ArchiveError):
        layers.apply_layer(tmp_path, io.BytesIO(truncated))
    assert os.listdir(tmp_path) in ([], ["f"])


def test_input_is_read_to_the_end(tmp_path: Path) -> None:
    stream = io.BytesIO(make_tar(entry("f", data=b"1")).getvalue() + bytes(8192))
    layers.apply_layer(tmp_path, stream)
    assert stream.read() == b""


def test_id_mapping_both_ways(tmp_path: Path) -> None:
    id_map = IdMap(uids=(IdMapping(0, 100000, 65536),), gids=(IdMapping(0, 200000, 65536),))
    layers.apply_layer(
        tmp_path, make_tar(entry("f", data=b"1", uid=0, gid=5), entry("d/g", uid=1000, gid=1000)), id_map=id_map
    )
    assert (os.stat(tmp_path / "f").st_uid, os.stat(tmp_path / "f").st_gid) == (100000, 200005)
    assert os.stat(tmp_path / "d").st_uid == 100000  # implicit parents belong to the mapped root
    out = io.BytesIO()
    layers.tar_tree(tmp_path, out, id_map=id_map)
    out.seek(0)
    assert {m.name: (m.uid, m.gid) for m in members(out)} == {
        "d": (0, 0),
        "d/g": (1000, 1000),
        "f": (0, 5),
    }


def test_missing_parents_and_directory_times(tmp_path: Path) -> None:
    tar = make_tar(entry("p/q", tarfile.DIRTYPE, mtime=1_000_000), entry("p/q/f", data=b"x"), entry("x/y/z", data=b"1"))
    layers.apply_layer(tmp_path, tar)
    assert os.stat(tmp_path / "p" / "q").st_mtime == 1_000_000
    assert stat.S_IMODE(os.stat(tmp_path / "x" / "y").st_mode) == 0o755


# -- docker cp helpers ------------------------------------------------------------------------------------


def test_resolve_in_root(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    os.symlink("/usr/bin", tmp_path / "bin")
    os.symlink("../../../../../..", tmp_path / "usr" / "up")
    os.symlink("loop", tmp_path / "loop")
    assert layers.resolve_in_root(tmp_path, "/bin/sh") == tmp_path / "usr" / "bin" / "sh"
    assert layers.resolve_in_root(tmp_path, "bin", follow_final=False) == tmp_path / "bin"
    assert layers.resolve_in_root(tmp_path, "/usr/up/etc") == tmp_path / "etc"
    assert layers.resolve_in_root(tmp_path, "../../x") == tmp_path / "x"
    with pytest.raises(OSError, match="symbolic links"):
        layers.resolve_in_root(tmp_path, "/loop/x")


def test_stat_and_tar_path(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    os.symlink("/etc/hosts", tmp_path / "hosts-link")
    st = archive.stat_path(tmp_path, "etc/hosts")
    assert (st.name, st.size, st.mode, st.link_target) == ("hosts", 20, 0o644, "")
    link = archive.stat_path(tmp_path, "/hosts-link")
    assert link.link_target == "/etc/hosts" and link.mode & archive.GO_MODE_SYMLINK
    assert archive.stat_path(tmp_path, "/etc").to_json()["mode"] == archive.GO_MODE_DIR | 0o755
    assert archive.stat_path(tmp_path, "/").name == "/"
    with pytest.raises(FileNotFoundError):
        archive.stat_path(tmp_path, "/nope")

    def names(path: str) -> list[str]:
        out = io.BytesIO()
        archive.tar_path(tmp_path, path, out)
        out.seek(0)
        return [m.name for m in members(out)]

    assert names("/etc") == ["etc", "etc/hosts"]
    assert names("/etc/.") == [".", "./hosts"]
    assert names("/hosts-link") == ["hosts-link"]
    os.symlink("etc", tmp_path / "etc-link")
    assert names("/etc-link/") == ["etc-link", "etc-link/hosts"]


def test_extract_to_options(tmp_path: Path) -> None:
    (tmp_path / "dst" / "adir").mkdir(parents=True)
    (tmp_path / "dst" / "afile").write_text("x")
    with pytest.raises(layers.ArchiveError, match="cannot overwrite directory"):
        archive.extract_to(tmp_path, "/dst", make_tar(entry("adir", data=b"1")), no_overwrite_dir_non_dir=True)
    with pytest.raises(layers.ArchiveError, match="cannot overwrite non-directory"):
        archive.extract_to(tmp_path, "/dst", make_tar(entry("afile", tarfile.DIRTYPE)), no_overwrite_dir_non_dir=True)
    with pytest.raises(layers.NotADirectory):
        archive.extract_to(tmp_path, "/dst/afile", make_tar(entry("x")))
    archive.extract_to(
        tmp_path, "/dst", make_tar(entry("afile", tarfile.DIRTYPE), entry("new", data=b"n", uid=5)), chown=(1234, 4321)
    )
    assert (tmp_path / "dst" / "afile").is_dir()
    assert (os.stat(tmp_path / "dst" / "new").st_uid, os.stat(tmp_path / "dst" / "new").st_gid) == (1234, 4321)
