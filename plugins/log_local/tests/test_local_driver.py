"""The local driver's files and options, as dockerd 20.10 writes and checks them."""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from pathlib import Path

import pytest
from engine_plugin_local.driver import LocalLogDriver, LocalOptions

from engine.drivers.log import LogMessage, PartialMeta, ReadConfig
from engine.drivers.logcodec_local import LENGTH_FRAMING, decode_entry
from engine.errors import InvalidParameter
from engine_testkit.logs import make_log_info


def driver(tmp_path: Path, **options: str) -> LocalLogDriver:
    LocalLogDriver.validate_options(options)
    return LocalLogDriver(make_log_info(tmp_path, options))


def records(path: Path) -> list[LogMessage]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    found, used = LENGTH_FRAMING.split(data)
    assert used == len(data)
    return [decode_entry(r) for r in found]


def test_file_layout_and_records(tmp_path: Path) -> None:
    d = driver(tmp_path)
    assert not (tmp_path / "local-logs").exists()  # nothing before the first output
    now = time.time_ns()
    d.log_many(
        [
            LogMessage(b"hello", "stdout", now / 1e9, now),
            LogMessage(b"x" * 16384, "stderr", now / 1e9, now + 1, PartialMeta("p" * 64, 1, False)),
        ]
    )
    d.close()
    assert d.log_path == ""  # as dockerd: the file is not an API
    log_dir = tmp_path / "local-logs"
    assert os.stat(log_dir).st_mode & 0o777 == 0o700
    assert os.listdir(log_dir) == ["container.log"]
    assert os.stat(log_dir / "container.log").st_mode & 0o777 == 0o640
    got = records(log_dir / "container.log")
    assert [(m.source, m.line, m.time_ns) for m in got] == [
        ("stdout", b"hello", now),
        ("stderr", b"x" * 16384, now + 1),
    ]
    assert got[1].partial == PartialMeta("p" * 64, 1, False) and got[0].partial is None


def test_defaults_rotate_at_20m_keep_5_and_compress() -> None:
    assert LocalOptions.parse({}) == LocalOptions(20 * 1024 * 1024, 5, True)


def test_rotated_files_are_gzipped_and_read_back(tmp_path: Path) -> None:
    d = driver(tmp_path, **{"max-size": "2k", "max-file": "3"})
    now = time.time_ns()
    d.log_many([LogMessage(b"line %04d %s" % (i, b"z" * 40), "stdout", now / 1e9, now + i) for i in range(300)])
    d.close()
    log_dir = tmp_path / "local-logs"
    assert sorted(os.listdir(log_dir)) == ["container.log", "container.log.1.gz", "container.log.2.gz"]
    kept = [
        m for name in ("container.log.2.gz", "container.log.1.gz", "container.log") for m in records(log_dir / name)
    ]
    reader = LocalLogDriver(make_log_info(tmp_path, {"max-size": "2k", "max-file": "3"}))

    async def read() -> list[LogMessage]:
        return [m async for m in reader.read_logs(ReadConfig())]

    got = asyncio.run(read())
    assert [m.line for m in got] == [m.line for m in kept] and got[-1].line.startswith(b"line 0299")


def test_compress_false_keeps_plain_files(tmp_path: Path) -> None:
    d = driver(tmp_path, **{"max-size": "1k", "max-file": "2", "compress": "false"})
    now = time.time_ns()
    d.log_many([LogMessage(b"%d" % i + b"y" * 50, "stdout", now / 1e9, now + i) for i in range(100)])
    d.close()
    assert sorted(os.listdir(tmp_path / "local-logs")) == ["container.log", "container.log.1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-size": "huge"}, "invalid value for max-size: huge: invalid size: 'huge'"),
        ({"max-file": "x"}, 'invalid value for max-file: x: strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": "-1", "compress": "false"}, "max file count cannot be less than 0"),
        ({"max-size": "-1"}, "invalid value for max-size: -1: invalid size: '-1'"),
        (
            {"compress": "maybe"},
            'error reading compress log option: strconv.ParseBool: parsing "maybe": invalid syntax',
        ),
        ({"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
        ({"labels": "a"}, "unknown log opt 'labels' for log driver local"),
    ],
)
def test_options_are_checked_with_dockerds_messages(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        LocalLogDriver.validate_options(options)
    assert str(err.value) == message


def test_builtin_options_are_accepted() -> None:
    LocalLogDriver.validate_options({"mode": "non-blocking", "max-buffer-size": "1m", "max-file": "1", "compress": "0"})
