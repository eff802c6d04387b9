"""The HTTP/1.1 edges of the API socket, made to behave as dockerd's Go net/http does.

aiohttp's defaults differ from Go's in ways clients notice:

- header lines: Go reads a header block up to 1 MB (``http.DefaultMaxHeaderBytes``); X-Registry-Config
  carries every stored credential in one line, so aiohttp's 8190 bytes refuse real clients;
- a client that half-closes mid-body (``shutdown(SHUT_WR)``) is told "unexpected EOF" by Go; aiohttp
  closes the transport at the EOF and the client never gets an answer;
- a chunk size longer than 16 hex digits is "http chunk length too large" in Go; aiohttp takes any
  length and waits for that many bytes;
- a malformed chunk is a 400 and the connection is closed.

aiohttp's pure-Python parser is used (engine.api.server): these are small subclasses of it, installed
in aiohttp's modules by :func:`install`.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp.http_parser
import aiohttp.web_protocol
import aiohttp.web_server
from aiohttp.http_exceptions import TransferEncodingError

#: Go's http.DefaultMaxHeaderBytes: the longest header line (and request line) accepted
MAX_HEADER_BYTES = (1 << 20) + 4096  # with the slack net/http adds

#: Go's chunked reader refuses a chunk size of more than 16 hex digits (it would not fit 64 bits)
_CHUNK_SIZE_LINE = re.compile(rb"[ \t]*([0-9A-Fa-f]{17,})")


class PayloadParser(aiohttp.http_parser.HttpPayloadParser):
    """aiohttp's body parser with Go's bound on the chunk size line."""

    def feed_data(self, chunk: bytes, *args: Any, **kwargs: Any) -> Any:
        if (
            self._type == aiohttp.http_parser.ParseState.PARSE_CHUNKED
            and self._chunk == aiohttp.http_parser.ChunkState.PARSE_CHUNKED_SIZE
        ):
            line = (self._chunk_tail + chunk)[:64]
            if _CHUNK_SIZE_LINE.match(line):
                exc = TransferEncodingError("http chunk length too large")
                aiohttp.http_parser.set_exception(self.payload, exc)
                raise exc
        return super().feed_data(chunk, *args, **kwargs)


class RequestHandler(aiohttp.web_protocol.RequestHandler):
    """aiohttp's connection handler, answering a request whose client stopped sending mid-body."""

    def eof_received(self) -> bool | None:
        parser = self._parser
        body = getattr(parser, "_payload_parser", None)
        if body is None or body.done:
            # no body arriving: the client is gone (as Go's background read sees it, which cancels the
            # request: an interrupted build stops); the transport closes itself
            return None
        try:
            parser.feed_eof()  # type: ignore[union-attr]
        except Exception as exc:  # the body was cut short: the handler's read fails with "unexpected EOF"
            aiohttp.http_parser.set_exception(body.payload, UnexpectedEOF("unexpected EOF"), exc)
        self.keep_alive(False)  # answer, then close: no further request can come on this connection
        return True  # keep the write side open for the answer


class UnexpectedEOF(Exception):
    """A request body that ended before its declared length (Go's io.ErrUnexpectedEOF)."""


def install() -> None:
    """Use the pure-Python request parser with the classes above.

    aiohttp's C parser only honours "Upgrade: websocket"; the Python parser also honours "Upgrade: tcp",
    which Docker's attach/exec hijack uses (stdin bytes sent right behind the request headers would
    otherwise be parsed as a new request and lost).
    """
    aiohttp.http_parser.HttpPayloadParser = PayloadParser  # type: ignore[misc]
    aiohttp.web_protocol.HttpRequestParser = aiohttp.http_parser.HttpRequestParserPy  # type: ignore[misc]
    aiohttp.web_server.RequestHandler = RequestHandler  # type: ignore[misc]


def server_options() -> dict[str, Any]:
    """The AppRunner keyword arguments that set the limits above."""
    return {"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES}
