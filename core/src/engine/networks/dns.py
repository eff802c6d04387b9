"""The embedded DNS server (127.0.0.11) of containers on user-defined networks.

For each such sandbox, a UDP socket and a TCP listener are created *inside* the container's
network namespace (a short-lived thread does setns, binds 127.0.0.11 on random ports, and
ends), and an nftables table in that namespace DNATs 127.0.0.11:53 to those ports, as
dockerd's DOCKER_OUTPUT chain does. The sockets are served by one background asyncio loop of
the daemon's. Names answered: container names, network aliases (incl. the short ID), --link
aliases, and ``<name>.<network>``, for A and PTR, only within the networks the asking
container is on. Everything else is forwarded to the upstream servers (the host's
resolv.conf, or --dns) from the daemon's own namespace, so even a host resolver on loopback
works.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.drivers import netns
from engine.networks import dnsmsg
from engine.networks.etcfiles import RESOLVER_IP

if TYPE_CHECKING:
    from engine.networks.controller import NetworkController
    from engine.networks.model import SandboxRecord

log = logging.getLogger(__name__)

TTL = 600
FORWARD_TIMEOUT = 2.0
NFT_TABLE = "engine-dns"


@dataclass
class _Served:
    container_id: str
    udp: socket.socket
    tcp: socket.socket
    handles: list[Any] = field(default_factory=list)


def _bind_inside() -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((RESOLVER_IP, 0))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((RESOLVER_IP, 0))
        tcp.listen(64)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


def _nft_rules(udp_port: int, tcp_port: int) -> str:
    t = f"ip {NFT_TABLE}"
    return (
        f"add table {t}\n"
        f"flush table {t}\n"
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}\n"
        f"add rule {t} output ip daddr {RESOLVER_IP} udp dport 53 dnat to {RESOLVER_IP}:{udp_port}\n"
        f"add rule {t} output ip daddr {RESOLVER_IP} tcp dport 53 dnat to {RESOLVER_IP}:{tcp_port}\n"
    )


def _install_rules(key: str, udp_port: int, tcp_port: int) -> None:
    def inside() -> None:
        proc = subprocess.run(["nft", "-f", "-"], input=_nft_rules(udp_port, tcp_port), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"nft in sandbox failed: {proc.stderr.strip()}")

    netns.run_in(key, inside)


class EmbeddedDNS:
    def __init__(self, controller: NetworkController) -> None:
        self.ctl = controller
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="embedded-dns", daemon=True)
        self._thread.start()
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()

    # ---- sandboxes -------------------------------------------------------------------------------

    def attach(self, sb: SandboxRecord) -> None:
        """Serve 127.0.0.11 in the sandbox (again, after a restart: new sockets, rules replaced)."""
        if not sb.key:
            return
        self.detach(sb)
        udp, tcp = netns.run_in(sb.key, _bind_inside)
        try:
            _install_rules(sb.key, udp.getsockname()[1], tcp.getsockname()[1])
            served = _Served(sb.container_id, udp, tcp)
            asyncio.run_coroutine_threadsafe(self._serve(served), self.loop).result(10)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        with self._lock:
            self._served[sb.container_id] = served

    def detach(self, sb: SandboxRecord) -> None:
        with self._lock:
            served = self._served.pop(sb.container_id, None)
        if served is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(served), self.loop).result(10)

    def stop(self) -> None:
        with self._lock:
            served = list(self._served.values())
            self._served.clear()
        for s in served:
            try:
                asyncio.run_coroutine_threadsafe(self._close(s), self.loop).result(10)
            except Exception:
                log.exception("closing the embedded DNS of %s failed", s.container_id[:12])
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _serve(self, served: _Served) -> None:
        loop = asyncio.get_running_loop()
        cid = served.container_id
        transport, _ = await loop.create_datagram_endpoint(lambda: _UDPServer(self, cid), sock=served.udp)
        server = await asyncio.start_server(lambda r, w: self._tcp_client(cid, r, w), sock=served.tcp)
        served.handles = [transport, server]

    async def _close(self, served: _Served) -> None:
        for handle in served.handles:
            handle.close()
        for handle in served.handles:
            if isinstance(handle, asyncio.base_events.Server):
                await handle.wait_closed()
        served.udp.close()
        served.tcp.close()

    async def _tcp_client(self, cid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                msg = await reader.readexactly(int.from_bytes(head, "big"))
                reply = await self.answer(cid, msg)
                if reply:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    # ---- answering -------------------------------------------------------------------------------

    async def answer(self, cid: str, msg: bytes) -> bytes | None:
        try:
            q = dnsmsg.parse_query(msg)
        except dnsmsg.DNSFormatError:
            return None
        local = self.lookup(cid, q.name, q.qtype)
        if local is not None:
            return dnsmsg.response(q, dnsmsg.RCODE_NOERROR, local, TTL)
        return await self.forward(cid, q, msg)

    def lookup(self, cid: str, name: str, qtype: int) -> list[tuple[int, bytes]] | None:
        """Local answers for ``name``, or None when it is not a name engine knows (forward it)."""
        if qtype == dnsmsg.TYPE_PTR:
            ip = dnsmsg.ptr_to_ip(name)
            if ip is None:
                return None
            for rec_name, rec_ip, net_name, _ in self._records(cid):
                if rec_ip == ip:
                    return [dnsmsg.ptr_record(f"{rec_name}.{net_name}")]
            return None
        if qtype not in (dnsmsg.TYPE_A, dnsmsg.TYPE_AAAA):
            return None
        found = False
        answers: list[tuple[int, bytes]] = []
        for rec_name, ip4, _, ip6 in self._records(cid, with_aliases=True):
            if rec_name != name:
                continue
            found = True
            if qtype == dnsmsg.TYPE_A and ip4 and dnsmsg.a_record(ip4) not in answers:
                answers.append(dnsmsg.a_record(ip4))
            if qtype == dnsmsg.TYPE_AAAA and ip6 and dnsmsg.aaaa_record(ip6) not in answers:
                answers.append(dnsmsg.aaaa_record(ip6))
        return answers if found else None

    def _records(self, cid: str, with_aliases: bool = False) -> Iterable[tuple[str, str, str, str]]:
        """(name, ipv4, network name, ipv6) for every container sharing a user-defined network with ``cid``."""
        ctl = self.ctl
        sb = ctl.sandboxes.get(cid)
        if sb is None:
            return
        endpoints = list(ctl.endpoints.values())
        for net_id in list(sb.endpoints):
            net = ctl.networks.get(net_id)
            if net is None or net.predefined:
                continue
            mine = ctl.endpoints.get(sb.endpoint_ids.get(net_id, ""))
            members = [ep for ep in endpoints if ep.network_id == net_id]
            by_name = {ep.name: ep for ep in members}
            for ep in members:
                ip4 = str(ipaddress.ip_interface(ep.ipv4).ip) if ep.ipv4 else ""
                ip6 = str(ipaddress.ip_interface(ep.ipv6).ip) if ep.ipv6 else ""
                names = [ep.name]
                if with_aliases:
                    names += ep.aliases
                for n in names:
                    yield n.lower(), ip4, net.name, ip6
                    if with_aliases:
                        yield f"{n}.{net.name}".lower(), ip4, net.name, ip6
            # endpoints of a global-scope network on other engines (from the driver's cluster store)
            for peer in ctl.peers(net_id):
                for n in [peer.name, *(peer.aliases if with_aliases else ())]:
                    yield n.lower(), peer.ipv4, net.name, ""
                    if with_aliases:
                        yield f"{n}.{net.name}".lower(), peer.ipv4, net.name, ""
            # --link target:alias on a user-defined network: the alias resolves for the linking container only
            for link in mine.links if mine and with_aliases else []:
                target, _, alias = link.partition(":")
                other = by_name.get(target.lstrip("/"))
                if other is not None and other.ipv4:
                    yield (alias or target).lower(), str(ipaddress.ip_interface(other.ipv4).ip), net.name, ""

    async def forward(self, cid: str, q: dnsmsg.Question, msg: bytes) -> bytes:
        sb = self.ctl.sandboxes.get(cid)
        servers = list(sb.upstream_dns) if sb is not None else []
        loop = asyncio.get_running_loop()
        for server in servers:
            try:
                family = socket.AF_INET6 if ":" in server else socket.AF_INET
                transport, proto = await loop.create_datagram_endpoint(
                    _Forward, remote_addr=(server, 53), family=family
                )
            except OSError:
                continue
            try:
                transport.sendto(msg)
                return await asyncio.wait_for(proto.reply, FORWARD_TIMEOUT)
            except (TimeoutError, OSError):
                continue
            finally:
                transport.close()
        return dnsmsg.response(q, dnsmsg.RCODE_SERVFAIL, [])


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, dns: EmbeddedDNS, cid: str) -> None:
        self.dns = dns
        self.cid = cid
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.Task[None]] = set()  # keep tasks referenced until done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.dns.answer(self.cid, data)
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class _Forward(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)
