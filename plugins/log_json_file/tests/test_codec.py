"""json-file lines byte for byte as dockerd writes them."""

from __future__ import annotations

import json

import pytest
from engine_plugin_json_file.codec import JsonLineCodec, go_json_attrs, go_json_string

from engine.drivers.log import LogMessage, PartialMeta

T = 1_795_000_000_585_928_460  # a time whose nanoseconds end in a zero


def msg(line: bytes, source: str = "stdout", ns: int = T, partial: PartialMeta | None = None) -> LogMessage:
    return LogMessage(line, source, ns / 1e9, ns, partial)


def test_dockerd_line_shape() -> None:
    # as in tests/data/dockerd: a line, its stream, RFC3339Nano time with trailing zeros trimmed
    assert (
        JsonLineCodec().encode(msg(b"hi"))
        == b'{"log":"hi\\n","stream":"stdout","time":"2026-11-18T11:06:40.58592846Z"}\n'
    )
    assert JsonLineCodec().encode(msg(b"x", "stderr", 1_795_000_000_000_000_000)) == (
        b'{"log":"x\\n","stream":"stderr","time":"2026-11-18T11:06:40Z"}\n'
    )


def test_attrs_sit_between_stream_and_time_sorted_and_html_safe() -> None:
    codec = JsonLineCodec({"tag": "a<b>", "env": "x&y", "b\t": "\t"})
    assert codec.encode(msg(b"hi")) == (
        b'{"log":"hi\\n","stream":"stdout","attrs":{"b\\t":"\\t","env":"x\\u0026y","tag":"a\\u003cb\\u003e"},'
        b'"time":"2026-11-18T11:06:40.58592846Z"}\n'
    )


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b'say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
        (b"tab\there", '"tab\\u0009here"'),  # moby's jsonlog writer: \u0009, not \t
        (b"cr\r bell\x07 esc\x1b", '"cr\\r bell\\u0007 esc\\u001b"'),
        (b"<a href='x'>&</a>", "\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\""),
        ("line\u2028sep\u2029".encode(), '"line\\u2028sep\\u2029"'),
        ("héllo ✓ 𝄞".encode(), '"héllo ✓ 𝄞"'),
        (b"\x7f", '"\x7f"'),
        (b"back\\tslash-t", '"back\\\\tslash-t"'),  # a backslash before "t" is not a tab
        (b"\xff ok \xe2\x82 \xed\xa0\x80", '"\ufffd ok \ufffd\ufffd \ufffd\ufffd\ufffd"'),  # one U+FFFD per bad byte
    ],
)
def test_string_escaping_matches_moby(raw: bytes, encoded: str) -> None:
    assert go_json_string(raw) == encoded
    assert json.loads(encoded) == raw.decode("utf-8", "engine-go-utf8")  # valid JSON of the same text


def test_attrs_escaping_is_go_encoding_json() -> None:
    assert go_json_attrs({"k": "a\tb<"}) == '{"k":"a\\tb\\u003c"}'


def test_partial_pieces_have_no_newline_but_the_last() -> None:
    codec = JsonLineCodec()
    first = codec.encode(msg(b"abc", partial=PartialMeta("p", 1, False)))
    last = codec.encode(msg(b"def", partial=PartialMeta("p", 2, True)))
    assert json.loads(first)["log"] == "abc" and json.loads(last)["log"] == "def\n"


def test_decode_roundtrip() -> None:
    codec = JsonLineCodec({"tag": "t"})
    for original in (msg(b"plain"), msg(b"piece", "stderr", T + 1, PartialMeta("p", 1, False)), msg(b"")):
        back = codec.decode(codec.encode(original)[:-1])
        assert (back.source, back.with_newline(), back.time_ns, back.attrs) == (
            original.source,
            original.with_newline(),
            original.time_ns,
            {"tag": "t"},
        )


def test_decode_reads_dockerd_lines_with_offsets() -> None:
    back = JsonLineCodec().decode(b'{"log":"x\\n","stream":"stdout","time":"2026-11-28T22:35:21.5+01:00"}')
    assert back.line == b"x" and back.time_ns == 1_795_901_721_500_000_000


@pytest.mark.parametrize("garbage", [b"not json", b'{"log":"x"}', b"[1]", b'{"time":"yesterday"}'])
def test_decode_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        JsonLineCodec().decode(garbage)


def test_plain_ascii_fast_path_matches_the_escaping_path() -> None:
    """Lines of plain printable ASCII skip decoding and escaping: the bytes must be those of the
    general path (``go_json_string``), for every byte value next to plain text, whole lines and
    pieces of long lines alike."""
    codec = JsonLineCodec({"tag": "x"})
    lines = [bytes([b]) for b in range(256)] + [b"a" + bytes([b]) + b"z" for b in range(256)]
    lines += [b"plain text 123 [x] {y} ~!", b"x" * 5000, b"", b"with space ", b"'quote' = ;?@_`|"]
    for line in lines:
        for partial in (None, PartialMeta("p", 1, False), PartialMeta("p", 2, True)):
            [encoded] = codec.encode_many([LogMessage(line, "stdout", 1.5, 1_500_000_000, partial)])
            raw = line if partial is not None and not partial.last else line + b"\n"
            expected = ('{"log":' + go_json_string(raw) + ",") if raw else "{"
            tail = '"stream":"stdout","attrs":{"tag":"x"},"time":"1970-01-01T00:00:01.5Z"}\n'
            assert encoded == (expected + tail).encode(), (line, partial)
            json.loads(encoded)
