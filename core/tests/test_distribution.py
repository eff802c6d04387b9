"""The registry client's pure parts: credentials, auth challenges, insecure registries, error wording."""

from __future__ import annotations

import base64
import json

import pytest

from engine.distribution.auth import AuthConfig, parse_challenges
from engine.distribution.endpoint import is_insecure
from engine.distribution.errors import from_response
from engine.distribution.push import Descriptor, manifest_bytes


def header(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize("value", [None, "", "e30=", "e30", "not base64!", header(["a list"])])
def test_empty_or_bad_registry_auth_means_no_credentials(value):
    assert AuthConfig.from_header(value).empty


def test_registry_auth_fields_and_the_auth_shorthand():
    full = AuthConfig.from_header(header({"username": "u", "password": "p?>", "serveraddress": "h:5000"}).rstrip("="))
    assert (full.username, full.password, full.server_address) == ("u", "p?>", "h:5000")
    short = AuthConfig.from_json({"auth": base64.b64encode(b"me:pa:ss").decode()})
    assert (short.username, short.password) == ("me", "pa:ss")
    assert short.basic_header() == "Basic " + base64.b64encode(b"me:pa:ss").decode()


def test_challenges():
    (bearer,) = parse_challenges(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry",
        "scope": "repository:a/b:pull,push",
    }
    (basic,) = parse_challenges('Basic realm="x y"')
    assert (basic.scheme, basic.params) == ("basic", {"realm": "x y"})


@pytest.mark.parametrize(
    "name,extra,insecure",
    [
        ("127.0.0.1:5000", [], True),
        ("127.1.2.3", [], True),
        ("localhost:5000", [], True),
        ("registry.example:5000", [], False),
        ("10.1.2.3:5000", [], False),
        ("10.1.2.3:5000", ["10.0.0.0/8"], True),
        ("registry.example:5000", ["registry.example:5000"], True),
        ("registry.example:443", ["registry.example"], True),
        ("[::1]:5000", [], False),
    ],
)
def test_insecure_registries(name, extra, insecure):
    assert is_insecure(name, extra) is insecure


def test_registry_errors_print_as_go_errcode():
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}'
    error = from_response(404, body)
    assert (error.code, error.message) == ("MANIFEST_UNKNOWN", "manifest unknown: manifest unknown")
    assert from_response(401, b"").message == "unauthorized: authentication required"
    assert from_response(502, b"<html>").message == "received unexpected HTTP status: 502 Bad Gateway"


def test_schema2_manifest_is_indented_as_dockerd():
    data = manifest_bytes(Descriptor("c", 2, "sha256:c"), [Descriptor("l", 3, "sha256:l")])
    assert data.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType": "application/vnd.docker.distribution')
    assert json.loads(data)["layers"] == [{"mediaType": "l", "size": 3, "digest": "sha256:l"}]


def test_https_to_a_plain_http_registry_and_refused_connections_are_worded_as_go():
    """A secure registry answering plain HTTP (here a loopback server with the insecure default turned off)."""
    import http.server
    import socket
    import threading

    from engine.distribution.client import Registry
    from engine.distribution.errors import TransportError

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        secure = Registry(host, AuthConfig())
        secure.insecure = False
        with pytest.raises(TransportError) as tls:
            secure.settle()
        assert tls.value.message == f'Get "https://{host}/v2/": http: server gave HTTP response to HTTPS client'
        insecure = Registry(host, AuthConfig())
        with insecure.settle() as answer:
            assert (insecure.scheme, answer.status) == ("http", 200)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TransportError) as refused:
        Registry(closed, AuthConfig()).settle()
    assert refused.value.message == f'Get "http://{closed}/v2/": dial tcp {closed}: connect: connection refused'


def test_the_registry_client_imports_nothing_of_the_image_service():
    """distribution sits below images: it writes pulls through its own ImageTarget Protocol."""
    import ast
    from pathlib import Path

    import engine.distribution

    for path in Path(engine.distribution.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n == "engine.images" or n.startswith("engine.images.") for n in names), path.name
