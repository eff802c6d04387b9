"""The remapped user: ``userns-remap`` parsed as dockerd does, its /etc/subuid and /etc/subgid
ranges read, and dockerd's ``dockremap`` user created for ``default``."""

from __future__ import annotations

import grp
import pwd
import subprocess
from pathlib import Path

from engine.drivers.storage import IdMap, IdMapping
from engine.errors import ConfigError

DEFAULT_USER = "dockremap"
#: dockerd's: the first subordinate id it hands out, and the size of each range
RANGE_START = 100000
RANGE_SIZE = 65536
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")


def parse_remap(value: str) -> tuple[str, str]:
    """``user[:group]`` (names or numeric ids) -> (user name, group name), as dockerd's parseRemappedRoot."""
    user, _, group = value.partition(":")
    if not user or value.count(":") > 1:
        raise ConfigError(f"Invalid user/group specification in --userns-remap: {value!r}")
    if value == "default":
        return DEFAULT_USER, DEFAULT_USER
    try:
        user = pwd.getpwuid(int(user)).pw_name if user.isdigit() else pwd.getpwnam(user).pw_name
    except KeyError:
        raise ConfigError(f"Can't create ID mappings: user {user!r} not found") from None
    if not group:
        return user, user
    try:
        group = grp.getgrgid(int(group)).gr_name if group.isdigit() else grp.getgrnam(group).gr_name
    except KeyError:
        raise ConfigError(f"Can't create ID mappings: group {group!r} not found") from None
    return user, group


def read_ranges(path: Path, name: str) -> list[tuple[int, int]]:
    """``name``'s (start, size) ranges in a subuid/subgid file, sorted by start."""
    ranges = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] == name and fields[1].isdigit() and fields[2].isdigit():
            ranges.append((int(fields[1]), int(fields[2])))
    return sorted(ranges)


def _all_ranges(path: Path) -> list[tuple[int, int]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            out.append((int(fields[1]), int(fields[2])))
    return sorted(out)


def next_free_range(taken: list[tuple[int, int]], size: int = RANGE_SIZE) -> int:
    """The first start >= 100000 where ``size`` ids overlap none of ``taken`` (dockerd's findNextRangeStart)."""
    start = RANGE_START
    for first, length in sorted(taken):
        if first < start + size and start < first + length:
            start = first + length
    return start


def ensure_default_user() -> None:
    """dockerd's ``default``: the ``dockremap`` system user and group, each with a 65536-id
    subordinate range if it has none (``useradd``/``usermod`` from Debian's passwd)."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        _run(["useradd", "--system", "--shell", "/bin/false", "--user-group", DEFAULT_USER])
    if not read_ranges(SUBUID, DEFAULT_USER):
        start = next_free_range(_all_ranges(SUBUID))
        _run(["usermod", "--add-subuids", f"{start}-{start + RANGE_SIZE - 1}", DEFAULT_USER])
    if not read_ranges(SUBGID, DEFAULT_USER):
        start = next_free_range(_all_ranges(SUBGID))
        _run(["usermod", "--add-subgids", f"{start}-{start + RANGE_SIZE - 1}", DEFAULT_USER])


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigError(f"Can't create ID mappings: {argv[0]} not found (install Debian's passwd)") from None
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"Can't create ID mappings: {' '.join(argv)}: {exc.stderr.strip()}") from None


def to_mappings(ranges: list[tuple[int, int]]) -> tuple[IdMapping, ...]:
    """Ranges sorted by host start, given consecutive container ids from 0 (dockerd's createIDMap)."""
    out, container_id = [], 0
    for start, size in ranges:
        out.append(IdMapping(container_id=container_id, host_id=start, size=size))
        container_id += size
    return tuple(out)


def resolve(value: str) -> IdMap | None:
    """The id map of a ``userns-remap`` value; ``None`` for root (remapping root to itself is off)."""
    user, group = parse_remap(value)
    if user == "root":
        return None
    if value == "default":
        ensure_default_user()
    uids, gids = read_ranges(SUBUID, user), read_ranges(SUBGID, group)
    if not uids:
        raise ConfigError(f"Can't create ID mappings: No subuid ranges found for user {user!r}")
    if not gids:
        raise ConfigError(f"Can't create ID mappings: No subgid ranges found for group {group!r}")
    return IdMap(uids=to_mappings(uids), gids=to_mappings(gids))
