"""``POST /auth`` (docker login): check credentials against a registry's ``/v2/`` as dockerd's loginV2."""

from __future__ import annotations

from engine.distribution import errors
from engine.distribution.auth import AuthConfig
from engine.distribution.client import Registry
from engine.errors import SystemError, Unauthorized

DOCKER_HUB_NAMES = ("", "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def registry_host(server_address: str) -> str:
    """``https://host:port/v1/`` -> ``host:port`` (the CLI sends URLs or bare names)."""
    text = server_address.strip()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    return text.partition("/")[0]


def login(auth: AuthConfig, insecure_registries: list[str]) -> str:
    """Returns the status text; raises dockerd's errors. Docker Hub is not reachable from here: it fails
    at once with the resolver's error instead of waiting on a network that is not there."""
    host = registry_host(auth.server_address)
    if host in DOCKER_HUB_NAMES:
        raise SystemError('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host')
    registry = Registry(host, auth, insecure_registries)
    with registry.settle() as response:
        url = response.url
        status = response.status
        response.read()
    if status == 200:
        return "Login Succeeded"
    if status == 401:
        try:
            registry.request("GET", "/v2/").close()
            return "Login Succeeded"
        except errors.RegistryError as exc:
            status = exc.http_status
            if status != 401:
                raise
        except errors.TransportError as exc:
            raise Unauthorized(exc.message) from None
    raise Unauthorized(f"login attempt to {url} failed with status: {status} {errors.reason_phrase(status)}")
