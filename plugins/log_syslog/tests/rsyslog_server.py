"""A real rsyslogd for the tests: its own config, pidfile and work dir under a temp dir; listening on
127.0.0.1 (udp and tcp on one free port, TLS with gtls on two more), on a unix datagram socket
(imuxsock, not the system socket) and a unix stream socket (imptcp). Every message is written to
``raw.log`` as ``INPUT RAWMSG`` with ``%rawmsg%``, the bytes as received (rsyslog drops the
trailing newline). Stopped by the pid in its pidfile; the temp dir is removed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def free_port() -> int:
    """A port free for both tcp and udp on 127.0.0.1."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def make_certs(directory: Path) -> dict[str, Path]:
    """A test CA, a server certificate for IP 127.0.0.1 and a client certificate, made with openssl."""
    d = directory
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=engine test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "subjectAltName=DNS:engine-test-client\nextendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        run("req", *ec, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    return {n: d / f"{n}.pem" for n in ("ca", "server", "server-key", "client", "client-key")}


@dataclass
class Rsyslog:
    root: Path
    port: int  # udp and tcp
    tls_port: int  # tcp+tls, anonymous clients
    tls_auth_port: int  # tcp+tls, clients must show a certificate signed by the test CA
    dgram: Path  # unixgram (imuxsock)
    stream: Path  # unix stream (imptcp)
    certs: dict[str, Path]
    pid: int = 0

    @property
    def raw_log(self) -> Path:
        return self.root / "raw.log"

    def config(self) -> str:
        w, c = self.root, self.certs
        return f"""
global(workDirectory="{w}/work" defaultNetstreamDriverCAFile="{c["ca"]}"
       defaultNetstreamDriverCertFile="{c["server"]}" defaultNetstreamDriverKeyFile="{c["server-key"]}")
$RepeatedMsgReduction off
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{self.port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{self.port}")
input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" name="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{self.tls_auth_port}" name="tlsauth"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{self.dgram}" CreatePath="on")
module(load="imptcp")
input(type="imptcp" path="{self.stream}" unlink="on")
template(name="raw" type="string" string="%inputname% %rawmsg%\\n")
*.* action(type="omfile" file="{w}/raw.log" template="raw" flushOnTXEnd="on" asyncWriting="off")
"""

    def start(self) -> Rsyslog:
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        conf = self.root / "rsyslog.conf"
        conf.write_text(self.config())
        subprocess.run([RSYSLOGD, "-N1", "-f", conf], check=True, capture_output=True)
        pidfile = self.root / "rsyslogd.pid"
        with open(self.root / "rsyslogd.err", "ab") as err:  # forks; the pid is in the pidfile
            subprocess.run([RSYSLOGD, "-f", conf, "-i", pidfile], check=True, stderr=err)
        for _ in range(200):
            if self.stream.exists() and self.dgram.exists() and pidfile.exists() and pidfile.read_text().strip():
                self.pid = int(pidfile.read_text())
                if self._listening():
                    return self
            time.sleep(0.05)
        raise RuntimeError("rsyslogd did not come up")

    def _listening(self) -> bool:
        for port in (self.port, self.tls_port, self.tls_auth_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(400):
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        shutil.rmtree(self.root, ignore_errors=True)

    def lines(self) -> list[str]:
        try:
            return self.raw_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, marker: str, count: int, timeout: float = 10.0) -> list[str]:
        """The lines containing ``marker``, waiting until there are ``count`` of them (or the timeout:
        then the test's assertion on them fails)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines() if marker in line]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


def start_rsyslog() -> Rsyslog:
    root = Path(tempfile.mkdtemp(prefix="rsl-", dir="/tmp"))  # short: unix socket paths
    certs = make_certs(root)
    ports = {free_port() for _ in range(3)}
    while len(ports) < 3:
        ports.add(free_port())
    port, tls_port, tls_auth_port = sorted(ports)
    server = Rsyslog(root, port, tls_port, tls_auth_port, root / "dgram.sock", root / "stream.sock", certs)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
