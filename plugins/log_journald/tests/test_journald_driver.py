"""The journald driver against a real systemd-journald: the fields of each entry (read with
journalctl inside journald's namespace), big entries through a memfd, and ``docker logs`` read-back
(tail, since, until, follow) through python3-systemd."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from engine_plugin_journald.driver import JournaldLogDriver
from engine_plugin_journald.fields import sanitize_key
from engine_plugin_journald.protocol import JournalSocket, encode_field
from engine_plugin_journald.reader import synchronize
from journald_server import Journald

from engine.drivers.log import LogMessage, PartialMeta, ReadConfig
from engine.errors import InvalidParameter
from engine_testkit.logs import make_log_info


def new_driver(cls: type[JournaldLogDriver], tmp_path: Path, **options: str) -> JournaldLogDriver:
    cid = uuid.uuid4().hex * 2
    info = make_log_info(tmp_path, options, container_id=cid)
    info = replace(info, labels={"com.example.vendor": "ACME", "_hidden": "h", "other": "o"}, env=("MY-VAR=1", "B=2"))
    return cls(info)


def entries(journald: Journald, driver: JournaldLogDriver) -> list[dict[str, str]]:
    out = journald.journalctl("--all", "-o", "json", f"CONTAINER_ID_FULL={driver.info.container_id}")
    return [json.loads(line) for line in out.splitlines()]


def msg(line: bytes, source: str = "stdout", partial: PartialMeta | None = None) -> LogMessage:
    now = time.time_ns()
    return LogMessage(line, source, now / 1e9, now, partial)


def own(entry: dict[str, str]) -> dict[str, str]:
    """An entry without journald's trusted fields (``_PID``, ``__CURSOR``...)."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def test_entry_fields_as_dockerd(journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path) -> None:
    d = new_driver(journald_driver, tmp_path, labels="com.example.vendor,_hidden", env="MY-VAR")
    d.log(msg(b"to stdout"))
    d.log(msg(b"to stderr", "stderr"))
    d.close()
    cid = d.info.container_id
    base = {
        "CONTAINER_ID": cid[:12],
        "CONTAINER_ID_FULL": cid,
        "CONTAINER_NAME": cid[:8],
        "CONTAINER_TAG": cid[:12],
        "IMAGE_NAME": "busybox",
        "SYSLOG_IDENTIFIER": cid[:12],
        "COM_EXAMPLE_VENDOR": "ACME",  # label names sanitized as dockerd's sanitizeKeyMod
        "HIDDEN": "h",
        "MY_VAR": "1",
    }
    got = [own(e) for e in entries(journald, d)]
    stamps = [e.pop("SYSLOG_TIMESTAMP") for e in got]
    assert got == [
        {**base, "PRIORITY": "6", "MESSAGE": "to stdout"},
        {**base, "PRIORITY": "3", "MESSAGE": "to stderr"},
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", stamp) for stamp in stamps), stamps


def test_tag_template_and_regex_attributes(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    d = new_driver(
        journald_driver, tmp_path, tag="{{.ImageName}}/{{.Name}}", **{"labels-regex": "^oth", "env-regex": "^B$"}
    )
    d.log(msg(b"tagged"))
    d.close()
    [entry] = entries(journald, d)
    tag = f"busybox/{d.info.container_id[:8]}"
    assert (entry["CONTAINER_TAG"], entry["SYSLOG_IDENTIFIER"]) == (tag, tag)
    assert (entry["OTHER"], entry["B"]) == ("o", "2")
    assert "COM_EXAMPLE_VENDOR" not in entry


def test_partial_messages(journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path) -> None:
    d = new_driver(journald_driver, tmp_path)
    pieces = [b"a" * 16384, b"b" * 16384, b"c" * 10]
    for i, piece in enumerate(pieces, 1):
        d.log(msg(piece, partial=PartialMeta("pid1", i, i == len(pieces))))
    d.log(msg(b"whole"))
    d.close()
    got = [
        {k: v for k, v in e.items() if k.startswith("CONTAINER_PARTIAL") or k == "MESSAGE"}
        for e in entries(journald, d)
    ]
    assert got == [
        {
            "MESSAGE": "a" * 16384,
            "CONTAINER_PARTIAL_ID": "pid1",
            "CONTAINER_PARTIAL_ORDINAL": "1",
            "CONTAINER_PARTIAL_LAST": "false",
            "CONTAINER_PARTIAL_MESSAGE": "true",
        },
        {
            "MESSAGE": "b" * 16384,
            "CONTAINER_PARTIAL_ID": "pid1",
            "CONTAINER_PARTIAL_ORDINAL": "2",
            "CONTAINER_PARTIAL_LAST": "false",
            "CONTAINER_PARTIAL_MESSAGE": "true",
        },
        {
            "MESSAGE": "c" * 10,
            "CONTAINER_PARTIAL_ID": "pid1",
            "CONTAINER_PARTIAL_ORDINAL": "3",
            "CONTAINER_PARTIAL_LAST": "true",
        },
        {"MESSAGE": "whole"},
    ]


def test_big_entry_goes_through_a_memfd(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bigger than the 8 MiB send buffer: refused as a datagram, sent as a sealed memfd."""
    memfds = []
    real = JournalSocket._send_memfd
    monkeypatch.setattr(JournalSocket, "_send_memfd", lambda self, data: (memfds.append(len(data)), real(self, data)))
    d = new_driver(journald_driver, tmp_path)
    big = bytes(range(32, 127)) * (9 * 1024 * 1024 // 95)
    d.log(msg(big))
    d.close()
    out = journald.journalctl("-o", "cat", f"CONTAINER_ID_FULL={d.info.container_id}")
    assert out.encode() == big + b"\n"
    assert len(memfds) == 1 and memfds[0] > len(big)


def test_binary_safe_field_form() -> None:
    assert encode_field("MESSAGE", b"one") == b"MESSAGE=one\n"
    assert encode_field("MESSAGE", b"a\nb") == b"MESSAGE\n\x03\x00\x00\x00\x00\x00\x00\x00a\nb\n"


def test_multiline_value_arrives_whole(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    d = new_driver(journald_driver, tmp_path, labels="other")
    d = type(d)(replace(d.info, labels={"other": "two\nlines"}))
    d.log(msg(b"line with \x00 and \xff bytes"))
    d.close()
    [entry] = entries(journald, d)
    assert entry["OTHER"] == "two\nlines"
    assert bytes(entry["MESSAGE"]) == b"line with \x00 and \xff bytes"  # journalctl gives binary data as a byte list


def test_sanitize_key() -> None:
    assert sanitize_key("com.example.vendor") == "COM_EXAMPLE_VENDOR"
    assert sanitize_key("__x-y") == "X_Y"
    assert sanitize_key("a9Z") == "A9Z"
    assert sanitize_key("___") == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-size": "1m"}, "unknown log opt 'max-size' for journald log driver"),
        ({"syslog-address": "udp://x"}, "unknown log opt 'syslog-address' for journald log driver"),
        ({"env-regex": "["}, "error parsing regexp"),
        ({"tag": "{{.Nope}}"}, "can't evaluate field Nope"),
        ({"mode": "sometimes"}, "logger: logging mode not supported: sometimes"),
    ],
)
def test_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter) as exc:
        JournaldLogDriver.validate_options(options)
    assert message in str(exc.value)


# ---- reading back ---------------------------------------------------------------------------------------


async def collect(driver: JournaldLogDriver, config: ReadConfig) -> list[LogMessage]:
    return [m async for m in driver.read_logs(config)]


def written(journald: Journald, driver: JournaldLogDriver, lines: list[bytes]) -> list[int]:
    """Log ``lines`` (stderr for those starting with "e"), make journald store them; their times (ns)."""
    times = []
    for line in lines:
        m = msg(line, "stderr" if line.startswith(b"e") else "stdout")
        driver.log(m)
        times.append(m.time_ns)
    assert synchronize(journald.varlink)
    return times


def text(messages: list[LogMessage]) -> bytes:
    return b"".join(m.with_newline() for m in messages)


def test_read_all_tail_since_until(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    d = new_driver(journald_driver, tmp_path, labels="other")
    lines = [b"l1", b"e2", b"l3", b"l4", b"l5"]
    times = written(journald, d, lines)

    async def main() -> None:
        every = await collect(d, ReadConfig())
        assert text(every) == b"l1\ne2\nl3\nl4\nl5\n"
        assert [m.source for m in every] == ["stdout", "stderr", "stdout", "stdout", "stdout"]
        assert [m.time_ns for m in every] == times
        assert every[0].attrs == {"IMAGE_NAME": "busybox", "OTHER": "o"}  # for --details
        # the times are the container's (SYSLOG_TIMESTAMP), to the nanosecond, not journald's
        assert text(await collect(d, ReadConfig(tail=2))) == b"l4\nl5\n"
        assert text(await collect(d, ReadConfig(tail=0))) == b""
        assert text(await collect(d, ReadConfig(tail=100))) == b"l1\ne2\nl3\nl4\nl5\n"
        assert text(await collect(d, ReadConfig(since_ns=times[2]))) == b"l3\nl4\nl5\n"
        assert text(await collect(d, ReadConfig(until_ns=times[1]))) == b"l1\ne2\n"
        assert text(await collect(d, ReadConfig(since_ns=times[1], until_ns=times[3]))) == b"e2\nl3\nl4\n"
        assert text(await collect(d, ReadConfig(tail=1, until_ns=times[3]))) == b"l4\n"
        assert text(await collect(d, ReadConfig(tail=3, since_ns=times[3]))) == b"l4\nl5\n"

    asyncio.run(main())
    d.close()


def test_partial_pieces_read_back_as_one_line(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    d = new_driver(journald_driver, tmp_path)
    d.log(msg(b"x" * 16384, partial=PartialMeta("p", 1, False)))
    d.log(msg(b"yz", partial=PartialMeta("p", 2, True)))
    d.log(msg(b"next"))
    assert synchronize(journald.varlink)
    got = asyncio.run(collect(d, ReadConfig()))
    assert text(got) == b"x" * 16384 + b"yz\nnext\n"
    assert [m.partial for m in got] == [PartialMeta("p", 1, False), PartialMeta("p", 2, True), None]
    d.close()


def test_follow_until_the_logger_closes(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    d = new_driver(journald_driver, tmp_path)
    written(journald, d, [b"old1", b"old2"])

    async def main() -> tuple[bytes, bytes]:
        tail1 = d.read_logs(ReadConfig(tail=1, follow=True))
        tail0 = d.read_logs(ReadConfig(tail=0, follow=True))  # only what comes after this call

        async def read(it: object) -> bytes:
            return text([m async for m in it])  # type: ignore[attr-defined]

        readers = [asyncio.create_task(read(tail1)), asyncio.create_task(read(tail0))]
        await asyncio.sleep(0.3)  # the followers are waiting on the journal
        for line in (b"new1", b"new2", b"new3"):
            d.log(msg(line))
        d.close()  # the container stopped: followers end once they have everything
        a, b = await asyncio.wait_for(asyncio.gather(*readers), 30)
        return a, b

    assert asyncio.run(main()) == (b"old2\nnew1\nnew2\nnew3\n", b"new1\nnew2\nnew3\n")


def test_follower_stops_when_the_consumer_goes(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    d = new_driver(journald_driver, tmp_path)
    written(journald, d, [b"one"])

    async def main() -> list[bytes]:
        got = []
        it = d.read_logs(ReadConfig(follow=True))
        async for m in it:
            got.append(m.line)
            break
        await it.aclose()  # type: ignore[attr-defined]
        return got

    assert asyncio.run(main()) == [b"one"]
    d.close()


def test_no_journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JournaldLogDriver, "socket_path", str(tmp_path / "no-socket"))
    d = new_driver(JournaldLogDriver, tmp_path)
    with pytest.raises(OSError) as failed:
        d.start()  # what fails the container's start, as dockerd's driver constructor
    assert str(failed.value) == "journald is not enabled on this host"
    with pytest.raises(OSError, match="journald is not enabled on this host"):
        d.log(msg(b"lost"))
    d.close()


def test_start_finds_the_journal(journald_driver: type[JournaldLogDriver], tmp_path: Path) -> None:
    d = new_driver(journald_driver, tmp_path)
    d.start()
    d.close()


def test_follow_across_journal_rotation(
    journald_driver: type[JournaldLogDriver], journald: Journald, tmp_path: Path
) -> None:
    """journald starts new files (``journalctl --rotate``) while a follower reads: nothing is missed."""
    d = new_driver(journald_driver, tmp_path)
    written(journald, d, [b"before"])

    async def main() -> bytes:
        it = d.read_logs(ReadConfig(follow=True))
        got: list[LogMessage] = []

        async def read() -> None:
            async for m in it:
                got.append(m)

        reader = asyncio.create_task(read())
        while not got:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(
            subprocess.run, [*journald.nsenter(), "journalctl", "--rotate"], check=True, capture_output=True
        )
        for line in (b"after1", b"after2"):
            d.log(msg(line))
        d.close()
        await asyncio.wait_for(reader, 30)
        return text(got)

    assert asyncio.run(main()) == b"before\nafter1\nafter2\n"
