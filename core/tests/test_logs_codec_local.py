"""dockerd's ``local`` log format, byte for byte (moby's LogEntry protobuf, length-framed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from engine.drivers.log import LogMessage, PartialMeta
from engine.drivers.logcodec_local import LENGTH_FRAMING, LocalCodec, decode_entry, encode_entry, frame

NS = 1_700_000_000_123_456_789


def test_entry_bytes_are_protobuf_in_field_order() -> None:
    entry = encode_entry(LogMessage(b"hi", "stdout", NS / 1e9, NS))
    # 1: source "stdout"; 2: time_nano varint; 3: line "hi"; zero-valued partial omitted
    expected = b"\x0a\x06stdout" + b"\x10" + bytes.fromhex("95 9a 97 ec e3 9f e7 cb 17") + b"\x1a\x02hi"
    assert entry == expected
    assert frame(entry) == len(entry).to_bytes(4, "big") + entry + len(entry).to_bytes(4, "big")


def test_partial_metadata_is_a_nested_message() -> None:
    message = LogMessage(b"x" * 3, "stderr", NS / 1e9, NS, PartialMeta("ab", 2, True))
    entry = encode_entry(message)
    assert entry.endswith(b"\x20\x01" + b"\x2a\x08" + b"\x08\x01" + b"\x12\x02ab" + b"\x18\x02")
    back = decode_entry(entry)
    assert (back.line, back.source, back.time_ns, back.partial) == (b"xxx", "stderr", NS, PartialMeta("ab", 2, True))


@pytest.mark.parametrize(
    "message",
    [
        LogMessage(b"", "stdout", 0, 0),
        LogMessage(b"\x00\xff\n binary", "stderr", NS / 1e9, NS),
        LogMessage(b"y" * 16384, "stdout", NS / 1e9, NS, PartialMeta("id" * 32, 1, False)),
        LogMessage(b"before epoch", "stdout", -1.5, -1_500_000_000),
    ],
)
def test_round_trip(message: LogMessage) -> None:
    back = decode_entry(encode_entry(message))
    assert (back.line, back.source, back.time_ns) == (message.line, message.source, message.time_ns)
    assert (back.partial is None) == (message.partial is None)


def test_unknown_fields_are_skipped() -> None:
    """A newer dockerd writes ``repeated LogAttr attrs = 6``: older readers skip it."""
    attr = b"\x0a\x03key\x12\x05value"
    entry = encode_entry(LogMessage(b"hi", "stdout", NS / 1e9, NS)) + b"\x32" + bytes([len(attr)]) + attr
    assert decode_entry(entry).line == b"hi"


def test_framing_splits_whole_records_and_walks_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    codec = LocalCodec()
    data = b"".join(codec.encode_many([LogMessage(b"%d" % i, "stdout", NS / 1e9, NS + i) for i in range(5)]))
    records, used = LENGTH_FRAMING.split(data[:-3])  # the last record cut short
    assert [decode_entry(r).line for r in records] == [b"0", b"1", b"2", b"3"] and used < len(data) - 3
    path = tmp_path / "f"
    path.write_bytes(data)
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        start, found = LENGTH_FRAMING.tail_offset(fd, len(data), 2)
        assert found == 2 and [decode_entry(r).line for r in LENGTH_FRAMING.split(data[start:])[0]] == [b"3", b"4"]
        assert LENGTH_FRAMING.tail_offset(fd, len(data), 9) == (0, 5)
    finally:
        os.close(fd)
    with pytest.raises(ValueError):
        LENGTH_FRAMING.split(b"\x00\x00\x00\x02ab\x00\x00\x00\x03")


DOCKERD_FILES = Path(__file__).parent / "data" / "dockerd-local"


@pytest.mark.parametrize("name", ["container.log", "container.log.1.gz", "container-cached.log"])
def test_files_written_by_dockerd_decode_and_reencode_byte_for_byte(name: str) -> None:
    data = (DOCKERD_FILES / name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    records, used = LENGTH_FRAMING.split(data)
    assert used == len(data) and records
    for record in records:
        assert encode_entry(decode_entry(record)) == record
    messages = [decode_entry(r) for r in records]
    if name == "container-cached.log":
        assert [(m.source, m.line, m.partial) for m in messages] == [
            ("stdout", b"cached", None),
            ("stdout", b"two", None),
        ]
    elif name == "container.log":
        # the output ended without a newline: a partial piece that is not the last one
        (tail,) = messages
        assert tail.line == b"tail" and tail.partial is not None and not tail.partial.last
        assert tail.partial.ordinal == 1 and len(tail.partial.id) == 64
    else:
        (piece,) = messages  # the last piece of the 20000-byte line: 20000 - 16384 bytes
        assert piece.line == b"a" * 3616 and piece.partial is not None and piece.partial.last
        assert piece.partial.ordinal == 2


def test_rotated_files_get_dockerds_gzip_header(tmp_path: Path) -> None:
    """As Go's compress/gzip in dockerd: no mtime, OS "unknown", lastTime in the extra field."""
    from engine.drivers.logfile import LogFile, Rotation

    f = LogFile(tmp_path / "c.log", LocalCodec(), Rotation(max_size=100, max_files=2, compress=True))
    f.write([LogMessage(b"x" * 60, "stdout", NS / 1e9, NS + i) for i in range(3)])
    f.close()
    ours = (tmp_path / "c.log.1.gz").read_bytes()
    theirs = (DOCKERD_FILES / "container.log.1.gz").read_bytes()
    assert ours[:10] == theirs[:10] == bytes.fromhex("1f8b08040000000000ff")
