"""The syslog driver against a real rsyslogd: every transport, format and the TLS options, checking
the exact bytes rsyslog received (``%rawmsg%``)."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from engine_plugin_syslog.driver import SyslogLogDriver
from rsyslog_server import Rsyslog

from engine.drivers.log import LogInfo, LogMessage, PartialMeta
from engine_testkit.logs import make_log_info

TS = 1795894200.123456  # 2026-11-28T19:30:00.123456Z
PID = os.getpid()
HOST = os.uname().nodename


def driver(tmp_path: Path, **options: str) -> tuple[SyslogLogDriver, str]:
    """A driver with a unique tag (to find its lines among the server's)."""
    tag = "t" + uuid.uuid4().hex[:10]
    options.setdefault("tag", tag)
    info: LogInfo = make_log_info(tmp_path, options)
    return SyslogLogDriver(info), tag


def send(d: SyslogLogDriver, *lines: tuple[str, bytes]) -> None:
    try:
        for source, line in lines:
            d.log(LogMessage(line, source, TS))
    finally:
        d.close()


@pytest.mark.parametrize("transport", ["udp", "tcp", "unix", "unixgram"])
def test_unix_format_over_each_transport(rsyslog: Rsyslog, tmp_path: Path, utc: None, transport: str) -> None:
    address = {
        "udp": f"udp://127.0.0.1:{rsyslog.port}",
        "tcp": f"tcp://127.0.0.1:{rsyslog.port}",
        "unix": f"unix://{rsyslog.stream}",
        "unixgram": f"unixgram://{rsyslog.dgram}",
    }[transport]
    d, tag = driver(tmp_path, **{"syslog-address": address})
    send(d, ("stdout", b"hello out"), ("stderr", b"hello err"), ("stdout", b""), ("stdout", b"last"))
    inputs = {"udp": "imudp", "tcp": "imtcp", "unix": "imptcp", "unixgram": "imuxsock"}
    got = rsyslog.wait_for(tag, 3)
    name = inputs[transport]
    assert got == [
        f"{name} <30>Nov 28 19:30:00 {tag}[{PID}]: hello out",
        f"{name} <27>Nov 28 19:30:00 {tag}[{PID}]: hello err",
        f"{name} <30>Nov 28 19:30:00 {tag}[{PID}]: last",
    ]  # the empty line was not sent


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("rfc3164", "<{pri}>Nov 28 19:30:00 {host} {tag}[{pid}]: {msg}"),
        ("rfc5424", "<{pri}>1 2026-11-28T19:30:00Z {host} {tag} {pid} {tag} - {msg}"),
        ("rfc5424micro", "<{pri}>1 2026-11-28T19:30:00.123456Z {host} {tag} {pid} {tag} - {msg}"),
    ],
)
def test_formats_and_facility_over_udp(rsyslog: Rsyslog, tmp_path: Path, utc: None, fmt: str, expected: str) -> None:
    d, tag = driver(
        tmp_path,
        **{"syslog-address": f"udp://127.0.0.1:{rsyslog.port}", "syslog-format": fmt, "syslog-facility": "local3"},
    )
    send(d, ("stdout", b"out line"), ("stderr", b"err line"))
    fields = {"host": HOST, "tag": tag, "pid": PID}
    assert rsyslog.wait_for(tag, 2) == [
        "imudp " + expected.format(pri=19 * 8 + 6, msg="out line", **fields),
        "imudp " + expected.format(pri=19 * 8 + 3, msg="err line", **fields),
    ]


def test_default_tag_is_the_short_id_and_templates_render(rsyslog: Rsyslog, tmp_path: Path, utc: None) -> None:
    cid = uuid.uuid4().hex * 2
    info = make_log_info(tmp_path, {"syslog-address": f"tcp://127.0.0.1:{rsyslog.port}"}, container_id=cid)
    send(SyslogLogDriver(info), ("stdout", b"default tag"))
    named = replace(info, config={**info.config, "tag": "{{.Name}}/{{.ImageName}}/{{upper .ID}}"})
    send(SyslogLogDriver(named), ("stdout", b"template tag"))
    assert rsyslog.wait_for(cid[:12], 1) == [f"imtcp <30>Nov 28 19:30:00 {cid[:12]}[{PID}]: default tag"]
    assert rsyslog.wait_for(cid[:12].upper(), 1) == [
        f"imtcp <30>Nov 28 19:30:00 {cid[:8]}/busybox/{cid[:12].upper()}[{PID}]: template tag"
    ]


def test_partial_messages_go_one_per_piece(rsyslog: Rsyslog, tmp_path: Path, utc: None) -> None:
    d, tag = driver(tmp_path, **{"syslog-address": f"tcp://127.0.0.1:{rsyslog.port}"})
    d.log(LogMessage(b"a" * 100, "stdout", TS, partial=PartialMeta("p", 1, False)))
    d.log(LogMessage(b"b" * 10, "stdout", TS, partial=PartialMeta("p", 2, True)))
    d.close()
    prefix = f"imtcp <30>Nov 28 19:30:00 {tag}[{PID}]: "
    assert rsyslog.wait_for(tag, 2) == [prefix + "a" * 100, prefix + "b" * 10]


@pytest.mark.parametrize("fmt", ["rfc5424", "rfc5424micro", "rfc3164"])
def test_tls_with_the_ca(rsyslog: Rsyslog, tmp_path: Path, utc: None, fmt: str) -> None:
    """rfc5424 over TLS is octet-counted, rfc3164 newline-framed: rsyslog takes both whole."""
    d, tag = driver(
        tmp_path,
        **{
            "syslog-address": f"tcp+tls://127.0.0.1:{rsyslog.tls_port}",
            "syslog-format": fmt,
            "syslog-tls-ca-cert": str(rsyslog.certs["ca"]),
        },
    )
    send(d, ("stdout", b"over tls"), ("stderr", b"second\tline"))
    got = rsyslog.wait_for(tag, 2)
    if fmt == "rfc3164":
        head = f"tls <{{}}>Nov 28 19:30:00 {HOST} {tag}[{PID}]: "
    else:
        micro = ".123456" if fmt == "rfc5424micro" else ""
        head = f"tls <{{}}>1 2026-11-28T19:30:00{micro}Z {HOST} {tag} {PID} {tag} - "
    assert got == [head.format(30) + "over tls", head.format(27) + "second#011line"]  # rsyslog escapes the tab


def test_tls_client_certificate(rsyslog: Rsyslog, tmp_path: Path, utc: None) -> None:
    """The listener that requires a client certificate signed by the test CA gets one."""
    d, tag = driver(
        tmp_path,
        **{
            "syslog-address": f"tcp+tls://127.0.0.1:{rsyslog.tls_auth_port}",
            "syslog-format": "rfc5424",
            "syslog-tls-ca-cert": str(rsyslog.certs["ca"]),
            "syslog-tls-cert": str(rsyslog.certs["client"]),
            "syslog-tls-key": str(rsyslog.certs["client-key"]),
        },
    )
    send(d, ("stdout", b"with a client cert"))
    assert rsyslog.wait_for(tag, 1) == [
        f"tlsauth <30>1 2026-11-28T19:30:00Z {HOST} {tag} {PID} {tag} - with a client cert"
    ]


def test_tls_skip_verify_and_verification_failure(rsyslog: Rsyslog, tmp_path: Path, utc: None) -> None:
    # the server certificate names 127.0.0.1, not localhost: verification fails (at the first message)
    d, _ = driver(
        tmp_path,
        **{"syslog-address": f"tcp+tls://localhost:{rsyslog.tls_port}", "syslog-tls-ca-cert": str(rsyslog.certs["ca"])},
    )
    with pytest.raises(OSError, match="certificate verify failed"):
        send(d, ("stdout", b"refused"))
    # without the CA, only skip-verify gets through (as dockerd: present means on, whatever the value)
    d, _ = driver(tmp_path, **{"syslog-address": f"tcp+tls://127.0.0.1:{rsyslog.tls_port}"})
    with pytest.raises(OSError, match="certificate verify failed"):
        send(d, ("stdout", b"refused"))
    d, tag = driver(
        tmp_path, **{"syslog-address": f"tcp+tls://localhost:{rsyslog.tls_port}", "syslog-tls-skip-verify": "false"}
    )
    send(d, ("stdout", b"unverified"))
    assert rsyslog.wait_for(tag, 1) == [f"tls <30>Nov 28 19:30:00 {tag}[{PID}]: unverified"]


def test_unreachable_server_fails_the_write(tmp_path: Path) -> None:
    from rsyslog_server import free_port

    d, _ = driver(tmp_path, **{"syslog-address": f"tcp://127.0.0.1:{free_port()}"})
    with pytest.raises(OSError, match=r"dial tcp 127\.0\.0\.1:\d+: connect: connection refused"):
        send(d, ("stdout", b"lost"))


def test_start_dials_the_server(tmp_path: Path) -> None:
    """start() (which the daemon calls before the container runs) fails as dockerd's constructor."""
    from rsyslog_server import free_port

    address = f"127.0.0.1:{free_port()}"
    d, _ = driver(tmp_path, **{"syslog-address": f"tcp://{address}"})
    with pytest.raises(OSError) as failed:
        d.start()
    assert str(failed.value) == f"dial tcp {address}: connect: connection refused"
    d.close()


def test_tcp_reconnects_after_the_server_dropped_the_connection(rsyslog: Rsyslog, tmp_path: Path, utc: None) -> None:
    """A write that fails is retried once on a new connection (srslog's writeAndRetry)."""
    d, tag = driver(tmp_path, **{"syslog-address": f"tcp://127.0.0.1:{rsyslog.port}"})
    d.log(LogMessage(b"before", "stdout", TS))
    assert len(rsyslog.wait_for(tag, 1)) == 1
    d._conn._sock.close()  # the connection breaks under the driver
    d.log(LogMessage(b"after", "stdout", TS))
    d.close()
    assert [line.rsplit(": ", 1)[1] for line in rsyslog.wait_for(tag, 2)] == ["before", "after"]


def test_local_syslog_when_no_address(
    rsyslog: Rsyslog, tmp_path: Path, utc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No syslog-address: the local syslog, a datagram socket first. This host has no /dev/log, so
    the local paths are pointed at the test rsyslog's unix sockets (the stream one listed first)."""
    from engine_plugin_syslog import writer

    monkeypatch.setattr(writer, "LOCAL_PATHS", (str(rsyslog.stream), str(rsyslog.dgram)))
    d, tag = driver(tmp_path)
    send(d, ("stdout", b"to the local syslog"))
    assert rsyslog.wait_for(tag, 1) == [f"imuxsock <30>Nov 28 19:30:00 {tag}[{PID}]: to the local syslog"]


def test_no_local_syslog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine_plugin_syslog import writer

    monkeypatch.setattr(writer, "LOCAL_PATHS", (str(tmp_path / "no-log"),))
    d, _ = driver(tmp_path)
    with pytest.raises(OSError, match="Unix syslog delivery error"):
        send(d, ("stdout", b"lost"))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_batches(rsyslog: Rsyslog, tmp_path: Path, utc: None, transport: str) -> None:
    """A batch from the copier: one datagram per message, or one write on a stream; empty lines dropped."""
    d, tag = driver(tmp_path, **{"syslog-address": f"{transport}://127.0.0.1:{rsyslog.port}"})
    lines = [b"line %d" % i for i in range(50)]
    d.log_many([LogMessage(line, "stdout", TS) for line in lines[:25]] + [LogMessage(b"", "stdout", TS)])
    d.log_many([LogMessage(line, "stderr", TS) for line in lines[25:]])
    d.close()
    name = {"udp": "imudp", "tcp": "imtcp"}[transport]
    expected = [f"{name} <30>Nov 28 19:30:00 {tag}[{PID}]: line {i}" for i in range(25)]
    expected += [f"{name} <27>Nov 28 19:30:00 {tag}[{PID}]: line {i}" for i in range(25, 50)]
    assert rsyslog.wait_for(tag, 50) == expected


def test_octet_counting_on_the_wire(tmp_path: Path, utc: None) -> None:
    """The bytes on a tcp+tls connection, seen by a small Python TLS receiver instead of rsyslog:
    rsyslog takes both framings, so what it logs cannot show which one came."""
    import socket
    import ssl
    import threading

    from rsyslog_server import make_certs

    certs = make_certs(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["server"], certs["server-key"])
    received: dict[str, bytes] = {}
    with socket.create_server(("127.0.0.1", 0)) as server:

        def receive() -> None:
            conn, _ = server.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
                received["data"] = data

        thread = threading.Thread(target=receive)
        thread.start()
        port = server.getsockname()[1]
        d, tag = driver(
            tmp_path,
            **{
                "syslog-address": f"tcp+tls://127.0.0.1:{port}",
                "syslog-format": "rfc5424",
                "syslog-tls-ca-cert": str(certs["ca"]),
            },
        )
        send(d, ("stdout", b"one"), ("stderr", b"two two"))
        thread.join(30)
    first = f"<30>1 2026-11-28T19:30:00Z {HOST} {tag} {PID} {tag} - one\n".encode()
    second = f"<27>1 2026-11-28T19:30:00Z {HOST} {tag} {PID} {tag} - two two\n".encode()
    assert received["data"] == b"%d %s%d %s" % (len(first), first, len(second), second)
