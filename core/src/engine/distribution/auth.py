"""Credentials and auth challenges.

AuthConfig comes base64url-encoded in ``X-Registry-Auth`` (pull, push) or as the JSON body of
``POST /auth``. dockerd treats an undecodable header as no credentials, and so do we.
A registry asks for credentials with ``WWW-Authenticate: Basic realm=...`` (htpasswd) or
``Bearer realm=...,service=...,scope=...`` (a token server).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    @classmethod
    def from_json(cls, data: Any) -> AuthConfig:
        if not isinstance(data, dict):
            return cls()

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        username, password = text("username"), text("password")
        encoded = text("auth")
        if encoded and not username:
            # "auth" is base64(user:password), as in the CLI's config.json
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        return cls(username, password, text("identitytoken"), text("registrytoken"), text("serveraddress"))

    @classmethod
    def from_header(cls, header: str | None) -> AuthConfig:
        """``X-Registry-Auth``: base64url JSON; empty, ``{}`` or garbage mean no credentials."""
        if not header:
            return cls()
        padded = header.strip() + "=" * (-len(header.strip()) % 4)
        try:
            return cls.from_json(json.loads(base64.urlsafe_b64decode(padded)))
        except (binascii.Error, ValueError):
            return cls()

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic" or "bearer"
    params: dict[str, str]


_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """``WWW-Authenticate`` values: ``Scheme k="v", k2=v2`` (one challenge per header line here)."""
    out: list[Challenge] = []
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return out
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM_RE.finditer(rest)
    }
    params = {k: v.replace('\\"', '"') for k, v in params.items()}
    out.append(Challenge(scheme.lower(), params))
    return out
