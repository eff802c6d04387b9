"""A small etcd v3 client over etcd's JSON gateway (``/v3/kv/*``, ``/v3/lease/*``, ``/v3/watch``).

Why not a client library: the driver contract is blocking (engine calls drivers from worker
threads), and etcd's JSON gateway is etcd's own documented v3 API over plain HTTP(S), so
``http.client`` in threads is all it takes. etcd3gw (the maintained gateway client) wraps the
same endpoints but pulls in requests, futurist and pbr and runs its watches on threads anyway;
the python-etcd3 gRPC client is unmaintained and pins old protobuf. Only what the overlay driver
uses is here: get/range, put, delete, compare-and-swap transactions, leases and a watch.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.drivers.cluster import ClusterConfig
from engine.errors import Unavailable

log = logging.getLogger(__name__)

TIMEOUT = 5.0


class StoreUnavailable(Unavailable):
    """The cluster store cannot be reached (the message names it)."""


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass(frozen=True)
class Event:
    kind: str  # "PUT" or "DELETE"
    kv: KV


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(prefix: str) -> str:
    """etcd's range_end for "every key starting with prefix"."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def _kv(data: dict[str, Any]) -> KV:
    return KV(
        key=_unb64(data.get("key", "")).decode(),
        value=_unb64(data.get("value", "")),
        mod_revision=int(data.get("mod_revision", 0)),
        create_revision=int(data.get("create_revision", 0)),
        lease=int(data.get("lease", 0)),
    )


def put_op(key: str, value: bytes | str, lease: int = 0) -> dict[str, Any]:
    req: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        req["lease"] = str(lease)
    return {"request_put": req}


def delete_op(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": _b64(key)}}


def absent(key: str) -> dict[str, Any]:
    """Compare: the key does not exist (its create revision is 0)."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def value_is(key: str, value: str) -> dict[str, Any]:
    """Compare: the key holds ``value``."""
    return {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}


def unchanged(key: str, mod_revision: int) -> dict[str, Any]:
    """Compare: the key was not modified since ``mod_revision`` (compare-and-swap)."""
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}


class Etcd:
    """Blocking, thread-safe (one connection per call) client of one etcd cluster."""

    def __init__(self, cluster: ClusterConfig) -> None:
        self.cluster = cluster
        self._ssl: ssl.SSLContext | None = None
        if cluster.tls:
            ctx = ssl.create_default_context(cafile=cluster.cacert or None)
            if cluster.cert:
                ctx.load_cert_chain(cluster.cert, cluster.key)
            self._ssl = ctx
        self._preferred = 0
        self._lock = threading.Lock()
        self._watches: set[socket.socket] = set()
        self._closed = False  # close() ran: no new watch streams

    def _connect(self, index: int, timeout: float | None) -> http.client.HTTPConnection:
        host, port = self.cluster.endpoints[index]
        if self._ssl is not None:
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _open(self, path: str, body: dict[str, Any], timeout: float | None) -> tuple[http.client.HTTPConnection, Any]:
        """POST to the first member that answers (the last good one first)."""
        count = len(self.cluster.endpoints)
        errors = []
        for step in range(count):
            index = (self._preferred + step) % count
            conn = self._connect(index, timeout)
            try:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                errors.append(f"{self.cluster.endpoints[index][0]}:{self.cluster.endpoints[index][1]}: {exc}")
                continue
            self._preferred = index
            return conn, resp
        raise StoreUnavailable(f"cluster store {self.cluster.store} is unreachable: {'; '.join(errors)}")

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn, resp = self._open(path, body, TIMEOUT)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise StoreUnavailable(f"cluster store {self.cluster.store} is unreachable: {exc}") from None
        finally:
            conn.close()
        out = json.loads(data or b"{}")
        if resp.status != 200:
            raise StoreUnavailable(f"cluster store {self.cluster.store}: {path}: {out.get('error') or resp.status}")
        return out

    # ---- kv ----------------------------------------------------------------------------------------

    def get(self, key: str) -> KV | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def range(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under ``prefix`` and the store's revision at that instant."""
        out = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return [_kv(kv) for kv in out.get("kvs") or []], int(out.get("header", {}).get("revision", 0))

    def put(self, key: str, value: bytes | str, lease: int = 0) -> None:
        self.call("/v3/kv/put", put_op(key, value, lease)["request_put"])

    def delete(self, key: str, prefix: bool = False) -> int:
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        return int(self.call("/v3/kv/deleterange", body).get("deleted", 0))

    def txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]] | None = None
    ) -> bool:
        """An atomic transaction; True when every comparison held (and ``success`` ran)."""
        body = {"compare": compare, "success": success, "failure": failure or []}
        return bool(self.call("/v3/kv/txn", body).get("succeeded", False))

    # ---- leases ------------------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def keepalive(self, lease: int) -> int:
        """Refresh a lease once; returns its remaining TTL (0: it expired)."""
        conn, resp = self._open("/v3/lease/keepalive", {"ID": str(lease)}, TIMEOUT)
        try:
            line = resp.readline()
        except (OSError, http.client.HTTPException) as exc:
            raise StoreUnavailable(f"cluster store {self.cluster.store} is unreachable: {exc}") from None
        finally:
            conn.close()
        result = json.loads(line or b"{}").get("result") or {}
        return int(result.get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # ---- watch -------------------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> Iterator[Event]:
        """Events under ``prefix`` from ``start_revision`` on, until the stream ends or :meth:`close`.

        The stream blocks without a timeout (a read that timed out cannot be resumed); ``close``
        shuts the socket down from another thread to end it.
        """
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(prefix_end(prefix)),
                "start_revision": str(start_revision),
            }
        }
        conn, resp = self._open("/v3/watch", body, TIMEOUT)
        sock = conn.sock
        with self._lock:
            closed = self._closed
            if sock is not None and not closed:
                sock.settimeout(None)
                self._watches.add(sock)
        if closed:  # close() ran while this stream was being opened: it would never be ended
            conn.close()
            return
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                result = json.loads(line).get("result") or {}
                for ev in result.get("events") or []:
                    yield Event(ev.get("type", "PUT"), _kv(ev.get("kv") or {}))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise StoreUnavailable(f"cluster store {self.cluster.store}: watch ended: {exc}") from None
        finally:
            with self._lock:
                self._watches.discard(sock)
            conn.close()

    def close(self) -> None:
        """End every watch stream (and refuse new ones); plain calls keep working."""
        with self._lock:
            self._closed = True
            socks = list(self._watches)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
