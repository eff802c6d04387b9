"""The json-file driver: options as dockerd checks them, the file on disk, rotation, tags and attrs."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import os
import time
from pathlib import Path

import pytest
from engine_plugin_json_file import JsonFileLogDriver

from engine.drivers.log import LogMessage, ReadConfig
from engine.errors import InvalidParameter
from engine.registry import LOG, DriverRegistry
from engine_testkit.logs import make_log_info


def lines(n: int, width: int = 50) -> list[LogMessage]:
    now = time.time_ns()
    return [LogMessage(b"%05d %s" % (i, b"j" * width), "stdout", (now + i) / 1e9, now + i) for i in range(n)]


def driver(tmp_path: Path, **options: str) -> JsonFileLogDriver:
    JsonFileLogDriver.validate_options(options)
    return JsonFileLogDriver(make_log_info(tmp_path, options))


def test_loaded_by_entry_point_name() -> None:
    assert DriverRegistry(LOG).load("json-file") is JsonFileLogDriver


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-sise": "1m"}, "unknown log opt 'max-sise' for json-file log driver"),
        ({"syslog-address": "udp://x"}, "unknown log opt 'syslog-address' for json-file log driver"),
        ({"max-size": "big"}, "invalid size: 'big'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-size": "1m", "max-file": "0"}, "max-file cannot be less than 1"),
        ({"max-file": "two"}, 'strconv.Atoi: parsing "two": invalid syntax'),
        ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        ({"compress": "true"}, "compress cannot be true when max-file is less than 2 or max-size is not set"),
        (
            {"compress": "true", "max-size": "1m"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (
            {"compress": "1", "max-file": "3"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"tag": "{{.Nope}}"}, "can't evaluate field Nope in type *logger.Info"),
        ({"tag": "{{.ID"}, "unclosed action"),
        ({"tag": "{{exec .ID}}"}, 'function "exec" not defined'),
        ({"labels-regex": "("}, "error parsing regexp"),
    ],
)
def test_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        JsonFileLogDriver.validate_options(options)
    assert message in err.value.message


def test_good_options() -> None:
    for options in (
        {},
        {"max-size": "10m", "max-file": "3", "compress": "true"},
        {"max-size": "1.5k", "max-file": "1", "compress": "false"},
        {"max-file": "5"},  # without max-size: accepted, never rotates (as dockerd)
        {"labels": "a,b", "labels-regex": "^com\\.", "env": "A", "env-regex": "^X", "tag": "{{.Name}}/{{.ID}}"},
        {"mode": "non-blocking", "max-buffer-size": "2m", "cache-disabled": "false"},  # built-in keys
    ):
        JsonFileLogDriver.validate_options(options)


def test_file_location_mode_and_lazy_creation(tmp_path: Path) -> None:
    d = driver(tmp_path)
    path = tmp_path / f"{'c0' * 32}-json.log"
    assert d.log_path == str(path)
    assert not path.exists()  # a driver made only to read creates nothing
    d.log(lines(1)[0])
    assert os.stat(path).st_mode & 0o777 == 0o640
    d.close()


def test_max_size_uses_decimal_units_and_rotates_to_numbered_files(tmp_path: Path) -> None:
    d = driver(tmp_path, **{"max-size": "1k", "max-file": "3"})
    d.log_many(lines(100))
    d.close()
    base = f"{'c0' * 32}-json.log"
    assert sorted(os.listdir(tmp_path)) == [base, base + ".1", base + ".2"]
    # rotation happens once a file has reached 1000 bytes (not 1024): one line past it at most
    assert 1000 <= os.path.getsize(tmp_path / (base + ".1")) < 1000 + 150


def test_compressed_files_are_gzip_and_readable(tmp_path: Path) -> None:
    d = driver(tmp_path, **{"max-size": "1k", "max-file": "3", "compress": "true"})
    written = lines(60)
    d.log_many(written)
    d.close()
    base = tmp_path / f"{'c0' * 32}-json.log"
    first = gzip.decompress(Path(f"{base}.2.gz").read_bytes()).splitlines()[0]
    assert json.loads(first)["stream"] == "stdout"

    async def read_back() -> list[LogMessage]:
        reader = JsonFileLogDriver(make_log_info(tmp_path, {"max-size": "1k", "max-file": "3", "compress": "true"}))
        return [m async for m in reader.read_logs(ReadConfig())]

    got = asyncio.run(read_back())
    assert [m.line for m in got] == [m.line for m in written[-len(got) :]] and len(got) < 60


def test_tag_and_extra_attributes(tmp_path: Path) -> None:
    info = dataclasses.replace(
        make_log_info(tmp_path, {"tag": "{{.ImageName}}/{{.Name}}/{{.ID}}/{{.DaemonName}}", "labels": "l", "env": "A"}),
        daemon_name="docker",
    )
    d = JsonFileLogDriver(info)
    d.log(lines(1)[0])
    d.close()
    entry = json.loads(Path(d.log_path).read_text())
    assert entry["attrs"] == {"A": "1", "l": "v", "tag": "busybox/c0c0c0c0/c0c0c0c0c0c0/docker"}
    assert list(entry) == ["log", "stream", "attrs", "time"]


def test_no_attrs_without_options(tmp_path: Path) -> None:
    d = driver(tmp_path)
    d.log(lines(1)[0])
    d.close()
    assert list(json.loads(Path(d.log_path).read_text())) == ["log", "stream", "time"]


def test_write_throughput(tmp_path: Path) -> None:
    """Batched writes without fsync: 100k lines in well under 3 s even on a shared CI core."""
    d = driver(tmp_path)
    batch = lines(1000, width=60)
    started = time.perf_counter()
    for _ in range(100):
        d.log_many(batch)
    elapsed = time.perf_counter() - started
    d.close()
    assert elapsed < 3.0, f"{100_000 / elapsed:.0f} lines/s"
