"""RootlessKit's REST API (``$ROOTLESSKIT_STATE_DIR/api.sock``): expose a port of the child network
namespace on the host, and withdraw it."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any

API_SOCKET = "api.sock"


class RootlessKitError(RuntimeError):
    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message  #: RootlessKit's own message, when it gave one


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("rootlesskit", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def state_dir() -> str:
    directory = os.environ.get("ROOTLESSKIT_STATE_DIR", "")
    if not directory:
        raise RootlessKitError("$ROOTLESSKIT_STATE_DIR is not set: not running under RootlessKit")
    return directory


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    conn = _UnixConnection(os.path.join(state_dir(), API_SOCKET))
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except OSError as exc:
        raise RootlessKitError(f"RootlessKit API {method} {path}: {exc}") from None
    finally:
        conn.close()
    if response.status >= 300:
        raise RootlessKitError(
            f"RootlessKit API {method} {path}: {response.status} {data.decode(errors='replace').strip()}"
        )
    return json.loads(data) if data.strip() else None


def add_port(proto: str, parent_ip: str, parent_port: int, child_ip: str, child_port: int) -> int:
    """Forward ``parent_ip:parent_port`` on the host to ``child_ip:child_port`` in the child; returns its id."""
    spec = {
        "proto": proto,
        "parentIP": parent_ip,
        "parentPort": parent_port,
        "childIP": child_ip,
        "childPort": child_port,
    }
    status = _call("POST", "/v1/ports", spec)
    return int(status["id"])


def remove_port(port_id: int) -> None:
    _call("DELETE", f"/v1/ports/{port_id}")
