"""Helpers for engine's own networking tests (controller, daemon and end-to-end), which drive a real
:class:`engine.networks.NetworkController` and so use engine's internals.

The driver conformance suite (:mod:`engine_testkit.network`) does not use this module: a third-party
network driver is tested through the public SDK alone.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any


def make_controller(root: Path, config: dict[str, Any] | None = None) -> Any:
    """A NetworkController wired as engine.subsystems wires it, from a real (unstarted) Daemon's
    configuration, registry, event bus and hooks, with its own data-root/exec-root."""
    from engine.config import core_schema, merge
    from engine.daemon import Daemon
    from engine.plugins import make_plugin_manager
    from engine.subsystems import network_controller

    pm = make_plugin_manager()
    schema = core_schema()
    pm.hook.engine_add_config.call_historic(kwargs={"schema": schema})
    values = {"data-root": str(root / "data"), "exec-root": str(root / "exec"), **(config or {})}
    daemon = Daemon(merge(schema, values, {}), pm, schema)
    daemon.data_root.mkdir(parents=True, exist_ok=True)
    daemon.exec_root.mkdir(parents=True, exist_ok=True)
    return network_controller(daemon)


def dismantle(ctl: Any) -> None:
    """Tear down every sandbox and user-defined network of a test's controller, then stop it (the
    test's leak check follows)."""
    for cid in list(ctl.sandboxes):
        ctl.teardown_sandbox(cid)
    for net in list(ctl.networks.values()):
        if not net.predefined:
            ctl.remove(net.id)
    ctl.stop()


class TinyDNS:
    """A DNS server of the test's own on a loopback address: answers every A query with one address
    and records the names asked (``queries``), so no test query leaves the host."""

    def __init__(self, address: str, answer: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.2)
        self.answer = answer
        self.queries: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from engine.networks import dnsmsg

        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            q = dnsmsg.parse_query(data)
            self.queries.append(q.name)
            self.sock.sendto(dnsmsg.response(q, 0, [dnsmsg.a_record(self.answer)]), peer)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()
