"""The layer tar record: what passes through is untouched, and reassembly is byte-exact."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.images import tarsplit


def make_tar(fmt: int, extra_tail: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:

        def add(name: str, data: bytes | None = None, **kw: object) -> None:
            info = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("dir", type=tarfile.DIRTYPE, mode=0o755)
        add("dir/small", b"tiny\n", mode=0o644, mtime=1700000000)
        add("dir/block", b"x" * 512)
        add("dir/big", bytes(range(256)) * 4099)
        add("dir/" + "long" * 40 + "/name", b"long name payload")  # needs a long-name record
        add("dir/hard", type=tarfile.LNKTYPE, linkname="dir/small")
        add("dir/sym", type=tarfile.SYMTYPE, linkname="../etc/passwd")
        add("dir/.wh.gone", b"", mode=0o600)
        add("dir/.wh..wh..opq", b"")
        add("dir/empty", b"")
        add("dir/ünïcode", b"utf8 name", pax_headers={"comment": "x"} if fmt == tarfile.PAX_FORMAT else {})
    return buf.getvalue() + extra_tail


def extract(data: bytes, root: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.name.endswith("/name"):
                (root / member.name).parent.mkdir(parents=True, exist_ok=True)
            if member.issym():
                continue
            tar.extract(member, root)


@pytest.mark.parametrize(
    "fmt,tail",
    [(tarfile.PAX_FORMAT, b""), (tarfile.GNU_FORMAT, b""), (tarfile.USTAR_FORMAT, b""), (tarfile.PAX_FORMAT, b"junk")],
)
def test_record_and_reassemble_is_byte_exact(tmp_path: Path, fmt: int, tail: bytes) -> None:
    if fmt == tarfile.USTAR_FORMAT:
        data = b""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for i in range(3):
                info = tarfile.TarInfo(f"f{i}")
                payload = b"%d" % i * (i * 300 + 1)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        data = buf.getvalue()
    else:
        data = make_tar(fmt, tail)
    record = tmp_path / "record.gz"
    with open(record, "wb") as rec:
        recorder = tarsplit.TarRecorder(io.BytesIO(data), rec)
        # a consumer that reads in odd-sized pieces and stops early (like tarfile at the end blocks)
        consumed = b""
        while len(consumed) < len(data) // 2:
            consumed += recorder.read(777)
        diff_id, total = recorder.finish()
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert total == len(data)
    root = tmp_path / "root"
    root.mkdir()
    extract(data, root)
    out = io.BytesIO()
    assert tarsplit.reassemble(record, root, out) == len(data)
    assert out.getvalue() == data
    assert tarsplit.tar_size(record) == len(data)
    # the record holds no payloads: it stays small next to the big file
    assert record.stat().st_size < 4096


def test_changed_file_is_detected(tmp_path: Path) -> None:
    data = make_tar(tarfile.PAX_FORMAT)
    record = tmp_path / "record.gz"
    with open(record, "wb") as rec:
        recorder = tarsplit.TarRecorder(io.BytesIO(data), rec)
        recorder.finish()
    root = tmp_path / "root"
    root.mkdir()
    extract(data, root)
    (root / "dir" / "small").write_bytes(b"TINY\n")
    with pytest.raises(tarsplit.TarSplitError, match="changed"):
        tarsplit.reassemble(record, root, io.BytesIO())


def test_reading_stays_inside_the_layer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "x.so").write_text("inside")
    (tmp_path / "secret").write_text("secret")
    (root / "out").symlink_to(tmp_path)  # absolute: means <root><tmp_path> inside the layer
    (root / "lib").symlink_to("/usr/lib")
    (root / "file-link").symlink_to("usr/lib/x.so")
    with pytest.raises(OSError):
        tarsplit.open_in_root(root, b"out/secret")
    with pytest.raises(OSError):
        tarsplit.open_in_root(root, b"../secret")
    with pytest.raises(OSError):
        tarsplit.open_in_root(root, b"file-link")  # the entry itself was a regular file
    # a file extracted through a symlinked directory is read where the layer has it
    with os.fdopen(tarsplit.open_in_root(root, b"lib/x.so"), "rb") as f:
        assert f.read() == b"inside"
