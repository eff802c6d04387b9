"""The journal fields of a container's entries, as dockerd 20.10's journald driver sets them."""

from __future__ import annotations

from engine.drivers.log import LogInfo, LogMessage
from engine.drivers.timefmt import rfc3339nano

PRIORITY_INFO, PRIORITY_ERR = 6, 3  # stdout, stderr

#: fields the driver sets itself: not shown as attributes by ``docker logs --details``
OWN_FIELDS = frozenset(
    {
        "MESSAGE",
        "MESSAGE_ID",
        "PRIORITY",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
        "ERRNO",
        "SYSLOG_FACILITY",
        "SYSLOG_IDENTIFIER",
        "SYSLOG_PID",
        "SYSLOG_TIMESTAMP",
        "CONTAINER_NAME",
        "CONTAINER_ID",
        "CONTAINER_ID_FULL",
        "CONTAINER_TAG",
        "CONTAINER_PARTIAL_MESSAGE",
        "CONTAINER_PARTIAL_ID",
        "CONTAINER_PARTIAL_ORDINAL",
        "CONTAINER_PARTIAL_LAST",
    }
)


def sanitize_key(key: str) -> str:
    """dockerd's ``sanitizeKeyMod`` for label and env names: lower case up, anything but A-Z and
    0-9 to ``_``, leading underscores dropped (journald refuses fields starting with one)."""
    out: list[str] = []
    for c in key:
        if "a" <= c <= "z":
            c = c.upper()
        elif not ("A" <= c <= "Z" or "0" <= c <= "9"):
            c = "_"
        if out or c != "_":
            out.append(c)
    return "".join(out)


def container_fields(info: LogInfo, tag: str) -> dict[str, str]:
    """The fields every entry of the container carries: its identity, the tag, and the
    attributes picked by ``labels``/``labels-regex``/``env``/``env-regex`` under sanitized names."""
    fields = {
        "CONTAINER_ID": info.short_id,
        "CONTAINER_ID_FULL": info.container_id,
        "CONTAINER_NAME": info.name,
        "CONTAINER_TAG": tag,
        "IMAGE_NAME": info.image_name,
        "SYSLOG_IDENTIFIER": tag,
    }
    for key, value in info.extra_attributes().items():
        if name := sanitize_key(key):
            fields[name] = value
    return fields


def entry_fields(message: LogMessage, fixed: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """PRIORITY and MESSAGE first (as go-systemd's ``journal.Send``), the container's fields, the
    time the container wrote the line as SYSLOG_TIMESTAMP (RFC 3339 with nanoseconds, as dockerd
    sends it since 23.0), and for a piece of a long line the CONTAINER_PARTIAL_* fields."""
    priority = b"3" if message.source == "stderr" else b"6"
    fields = [("PRIORITY", priority), ("MESSAGE", message.line), *fixed]
    if message.time_ns:
        fields.append(("SYSLOG_TIMESTAMP", rfc3339nano(message.time_ns).encode()))
    partial = message.partial
    if partial is not None:
        fields += [
            ("CONTAINER_PARTIAL_ID", partial.id.encode()),
            ("CONTAINER_PARTIAL_ORDINAL", str(partial.ordinal).encode()),
            ("CONTAINER_PARTIAL_LAST", b"true" if partial.last else b"false"),
        ]
        if not partial.last:
            fields.append(("CONTAINER_PARTIAL_MESSAGE", b"true"))
    return fields
