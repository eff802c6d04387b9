"""One registry (and optionally one repository on it), over HTTP/1.1 with Basic or Bearer auth.

Each request opens its own connection (loopback registries make that cheap, and it keeps threads
independent). A 401 answer's ``WWW-Authenticate`` challenge is met once: Basic sends the
credentials, Bearer fetches a token for the repository scope from the realm and retries.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import IO, Any

from engine.distribution import errors
from engine.distribution.auth import AuthConfig, Challenge, parse_challenges
from engine.distribution.endpoint import is_insecure

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
MAX_MANIFEST_BYTES = 4 << 20
USER_AGENT = "docker/20.10.24 go/go1.19.7 (engine)"

MEDIA_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = (MEDIA_SCHEMA2, MEDIA_LIST, MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: http.client.HTTPResponse
    url: str
    _conn: http.client.HTTPConnection = field(repr=False)

    def read(self, limit: int = -1) -> bytes:
        return self.body.read() if limit < 0 else self.body.read(limit)

    def close(self) -> None:
        self.body.close()
        self._conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Registry:
    """A registry host with its scheme settled and the credentials to use on it."""

    def __init__(
        self,
        host: str,
        auth: AuthConfig,
        insecure_registries: list[str] | tuple[str, ...] = (),
        scheme: str = "",
    ) -> None:
        self.host = host
        self.auth = auth
        self.insecure = is_insecure(host, insecure_registries)
        self.scheme = scheme or "https"
        self._fixed_scheme = bool(scheme)  # a mirror's URL says which
        self._settled = False
        self._authorization: dict[str, str] = {}  # scope -> Authorization header value
        self._lock = threading.Lock()
        self._settle_lock = threading.Lock()

    # -- endpoints -------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def settle(self) -> Response:
        """GET /v2/ (dockerd's ping): HTTPS, then plain HTTP if the registry is insecure; returns the answer
        (the caller closes it). A transport failure on every endpoint raises the last one's error."""
        try:
            response = self._send("GET", self.url("/v2/"), {}, None)
        except errors.TransportError:
            if not self.insecure or self._fixed_scheme:
                raise
            self.scheme = "http"
            response = self._send("GET", self.url("/v2/"), {}, None)
        self._settled = True
        return response

    # -- requests --------------------------------------------------------------------------------------

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            context = ssl.create_default_context()
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(netloc, timeout=CONNECT_TIMEOUT_S, context=context)
        return http.client.HTTPConnection(netloc, timeout=CONNECT_TIMEOUT_S)

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | IO[bytes] | None, redirects: int = 5
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        conn = self._connection(parts.scheme, parts.netloc)
        conn.blocksize = 1 << 16
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": USER_AGENT, **headers}
        try:
            conn.request(method, target, body=body, headers=all_headers)
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise errors.transport_error(method, url, parts.netloc, exc) from None
        response = Response(raw.status, raw.headers, raw, url, conn)
        if raw.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and redirects > 0:
            location = urllib.parse.urljoin(url, raw.headers.get("Location", ""))
            response.close()
            if urllib.parse.urlsplit(location).netloc != parts.netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            return self._send(method, location, headers, None, redirects - 1)
        return response

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str = "",
        headers: dict[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """A request with auth; an answer outside ``ok`` raises its RegistryError (the body read and closed)."""
        with self._settle_lock:  # upload/download threads share the registry: probe the scheme once
            if not self._settled:
                self.settle().close()
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        sent = dict(headers or {})
        with self._lock:
            known = self._authorization.get(scope)
        if known:
            sent["Authorization"] = known
        start = body.tell() if body is not None and hasattr(body, "tell") else None
        response = self._send(method, url, sent, body)
        if response.status == 401 and not known:
            challenge = _first_challenge(response)
            response.read()
            response.close()
            value = self._authorize(challenge, scope, method, url) if challenge else None
            if value:
                with self._lock:
                    self._authorization[scope] = value
                sent["Authorization"] = value
                if start is not None:
                    body.seek(start)  # type: ignore[union-attr]
                response = self._send(method, url, sent, body)
            else:
                raise errors.from_response(401, b"")
        if response.status not in ok:
            data = response.read(1 << 20) if method != "HEAD" else b""
            response.close()
            raise errors.from_response(response.status, data)
        return response

    def _authorize(self, challenge: Challenge, scope: str, method: str, url: str) -> str:
        if challenge.scheme == "basic":
            if not self.auth.username:
                raise errors.TransportError(f'{method.capitalize()} "{url}": no basic auth credentials')
            return self.auth.basic_header()
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scope)
        return ""

    def _token(self, challenge: Challenge, scope: str) -> str:
        """The token server's answer (distribution's token auth spec): GET realm?service=&scope=."""
        if self.auth.registry_token:
            return self.auth.registry_token
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise errors.TransportError(f"invalid token auth challenge realm: {realm!r}")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        for one in scope.split(" "):
            if one:
                query.append(("scope", one))
        if not scope and challenge.params.get("scope"):
            query.append(("scope", challenge.params["scope"]))
        if self.auth.username:
            query += [("account", self.auth.username)]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self.auth.username:
            headers["Authorization"] = self.auth.basic_header()
        with self._send("GET", url, headers, None) as response:
            data = response.read(1 << 20)
            if response.status != 200:
                raise errors.from_response(response.status, data)
        try:
            answer = json.loads(data)
        except ValueError:
            raise errors.TransportError(f"malformed token response from {realm}") from None
        token = answer.get("token") or answer.get("access_token") or ""
        if not token:
            raise errors.TransportError("authorization server did not include a token in the response")
        return str(token)


def _first_challenge(response: Response) -> Challenge | None:
    for value in response.headers.get_all("WWW-Authenticate") or []:
        for challenge in parse_challenges(value):
            if challenge.scheme in ("basic", "bearer"):
                return challenge
    return None


class Repository:
    """One repository path (``test/busybox``) on a registry: manifests, blobs and uploads."""

    def __init__(self, registry: Registry, path: str, actions: str = "pull") -> None:
        self.registry = registry
        self.path = path
        self.scope = f"repository:{path}:{actions}"

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """The manifest bytes, their media type and their digest (checked when ``reference`` is one)."""
        with self.registry.request(
            "GET",
            f"/v2/{self.path}/manifests/{reference}",
            scope=self.scope,
            headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
        ) as response:
            data = response.read(MAX_MANIFEST_BYTES + 1)
            content_type = (response.headers.get("Content-Type") or "").partition(";")[0].strip()
        if len(data) > MAX_MANIFEST_BYTES:
            raise errors.TransportError(f"manifest too big: {reference}")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise errors.TransportError(f"manifest verification failed for digest {reference}")
        try:
            media = json.loads(data).get("mediaType") or content_type
        except (ValueError, AttributeError):
            media = content_type
        return data, str(media), digest

    def open_blob(self, digest: str) -> Response:
        return self.registry.request("GET", f"/v2/{self.path}/blobs/{digest}", scope=self.scope)

    def blob_size(self, digest: str) -> int | None:
        """HEAD: the blob's size if the repository has it, else None."""
        try:
            with self.registry.request(
                "HEAD", f"/v2/{self.path}/blobs/{digest}", scope=self.scope, ok=(200, 404)
            ) as response:
                if response.status != 200:
                    return None
                return int(response.headers.get("Content-Length") or 0)
        except errors.RegistryError as exc:
            if exc.http_status == 404:
                return None
            raise

    def mount(self, digest: str, source_path: str) -> str | None:
        """Cross-repository mount; None when mounted, else an upload URL the registry started instead."""
        scope = f"{self.scope} repository:{source_path}:pull"
        query = urllib.parse.urlencode({"mount": digest, "from": source_path})
        with self.registry.request(
            "POST", f"/v2/{self.path}/blobs/uploads/?{query}", scope=scope, ok=(201, 202), body=b""
        ) as response:
            if response.status == 201:
                return None
            return urllib.parse.urljoin(response.url, response.headers.get("Location", ""))

    def start_upload(self) -> str:
        with self.registry.request(
            "POST", f"/v2/{self.path}/blobs/uploads/", scope=self.scope, ok=(202,), body=b""
        ) as response:
            return urllib.parse.urljoin(response.url, response.headers.get("Location", ""))

    def finish_upload(self, location: str, digest: str, body: bytes | IO[bytes], size: int) -> None:
        """A monolithic upload: one PUT with the whole blob and its digest."""
        url = location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        self.registry.request("PUT", url, scope=self.scope, headers=headers, body=body, ok=(201, 204)).close()

    def put_manifest(self, tag: str, data: bytes, media_type: str) -> None:
        self.registry.request(
            "PUT",
            f"/v2/{self.path}/manifests/{tag}",
            scope=self.scope,
            headers={"Content-Type": media_type},
            body=data,
            ok=(201, 202),
        ).close()

    def tags(self) -> list[str]:
        with self.registry.request("GET", f"/v2/{self.path}/tags/list", scope=self.scope) as response:
            data: dict[str, Any] = json.loads(response.read(MAX_MANIFEST_BYTES) or b"{}")
        return [str(t) for t in data.get("tags") or []]
