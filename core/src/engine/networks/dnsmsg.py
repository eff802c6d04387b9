"""The little of the DNS wire format the embedded server needs (RFC 1035): one question in, answers out."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080


class DNSFormatError(ValueError):
    pass


@dataclass
class Question:
    id: int
    flags: int
    name: str  # lower case, without the trailing dot
    qtype: int
    qclass: int
    raw_question: bytes  # the question section as received (echoed back)


def _read_name(msg: bytes, offset: int) -> tuple[str, int]:
    labels = []
    jumped = False
    end = offset
    for _ in range(128):
        if offset >= len(msg):
            raise DNSFormatError("truncated name")
        length = msg[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 == 0xC0:  # compression pointer (not expected in questions, but legal)
            if offset + 1 >= len(msg):
                raise DNSFormatError("truncated pointer")
            if not jumped:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | msg[offset + 1]
            jumped = True
            continue
        label = msg[offset + 1 : offset + 1 + length]
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + length
    else:
        raise DNSFormatError("name too long")
    return ".".join(labels), (end if jumped else offset)


def parse_query(msg: bytes) -> Question:
    if len(msg) < 12:
        raise DNSFormatError("short header")
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount != 1 or flags & FLAG_QR:
        raise DNSFormatError("not a single question")
    name, offset = _read_name(msg, 12)
    if offset + 4 > len(msg):
        raise DNSFormatError("truncated question")
    qtype, qclass = struct.unpack("!HH", msg[offset : offset + 4])
    return Question(qid, flags, name.lower().rstrip("."), qtype, qclass, msg[12 : offset + 4])


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii", "replace")[:63]
            out += bytes([len(raw)]) + raw
    return out + b"\x00"


def response(q: Question, rcode: int, answers: list[tuple[int, bytes]], ttl: int = 600) -> bytes:
    """A reply to ``q``: answers are (type, rdata); every answer's name points at the question."""
    flags = FLAG_QR | FLAG_AA | FLAG_RA | (q.flags & FLAG_RD) | rcode
    header = struct.pack("!HHHHHH", q.id, flags, 1, len(answers), 0, 0)
    body = b""
    for rtype, rdata in answers:
        body += struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, ttl, len(rdata)) + rdata
    return header + q.raw_question + body


def a_record(ip: str) -> tuple[int, bytes]:
    return TYPE_A, ipaddress.IPv4Address(ip).packed


def aaaa_record(ip: str) -> tuple[int, bytes]:
    return TYPE_AAAA, ipaddress.IPv6Address(ip).packed


def ptr_record(name: str) -> tuple[int, bytes]:
    return TYPE_PTR, encode_name(name)


def ptr_to_ip(name: str) -> str | None:
    """``4.3.2.1.in-addr.arpa`` -> ``1.2.3.4``; None for anything else."""
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    if len(parts) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(parts))))
    except ValueError:
        return None


def build_query(name: str, qtype: int, qid: int = 0x1234) -> bytes:
    """A standard recursive query (used by tests and the forwarder's health checks)."""
    return struct.pack("!HHHHHH", qid, FLAG_RD, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def parse_answers(msg: bytes) -> tuple[int, list[tuple[int, str]]]:
    """(rcode, [(type, value)]) of a response, for tests and diagnostics."""
    if len(msg) < 12:
        raise DNSFormatError("short header")
    _, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    offset = 12
    for _ in range(qd):
        _, offset = _read_name(msg, offset)
        offset += 4
    out = []
    for _ in range(an):
        _, offset = _read_name(msg, offset)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[offset : offset + 10])
        offset += 10
        rdata = msg[offset : offset + rdlen]
        if rtype == TYPE_A:
            out.append((rtype, str(ipaddress.IPv4Address(rdata))))
        elif rtype == TYPE_AAAA:
            out.append((rtype, str(ipaddress.IPv6Address(rdata))))
        elif rtype == TYPE_PTR:
            out.append((rtype, _read_name(msg, offset)[0]))
        else:
            out.append((rtype, rdata.hex()))
        offset += rdlen
    return flags & 0xF, out
