"""``--user``/``--group-add`` resolved against the container's /etc/passwd and /etc/group, with runc's
rules and dockerd's messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.runtime import rootfs as rfs


class UserError(Exception):
    """A user or group that cannot be resolved (dockerd: start fails with this text)."""


@dataclass
class ExecUser:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


def _entries(text: str | None, min_fields: int) -> list[list[str]]:
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= min_fields:
            out.append(fields)
    return out


def _num(value: str) -> int | None:
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 0 else None


def resolve_user(root: Path, user: str, group_add: list[str] | None = None) -> ExecUser:
    """``user`` is ``name|uid[:group|gid]`` ("" = root). A numeric uid/gid missing from the files is
    used as is; a name must exist. Supplementary groups are the user's memberships (only when no
    group was given) plus ``group_add``."""
    passwd = _entries(rfs.read_file(root, "/etc/passwd"), 7)
    groups = _entries(rfs.read_file(root, "/etc/group"), 4)
    user_arg, _, group_arg = (user or "").partition(":")
    result = ExecUser()
    matched_name = ""
    if user_arg:
        uid_num = _num(user_arg)
        match = next((p for p in passwd if p[0] == user_arg or (uid_num is not None and _num(p[2]) == uid_num)), None)
        if match is not None:
            result.uid, result.gid = _num(match[2]) or 0, _num(match[3]) or 0
            result.home = match[5] or "/"
            result.name = matched_name = match[0]
        elif uid_num is not None:
            result.uid = uid_num
        else:
            raise UserError(f"unable to find user {user_arg}: no matching entries in passwd file")
    else:
        root_entry = next((p for p in passwd if _num(p[2]) == 0), None)
        if root_entry is not None:
            result.home, result.name, matched_name = root_entry[5] or "/", root_entry[0], root_entry[0]
            result.gid = _num(root_entry[3]) or 0
    if group_arg:
        gid_num = _num(group_arg)
        match = next((g for g in groups if g[0] == group_arg or (gid_num is not None and _num(g[2]) == gid_num)), None)
        if match is not None:
            result.gid = _num(match[2]) or 0
        elif gid_num is not None:
            result.gid = gid_num
        else:
            raise UserError(f"unable to find group {group_arg}: no matching entries in group file")
    elif matched_name:
        for g in groups:
            members = [m.strip() for m in g[3].split(",") if m.strip()]
            gid = _num(g[2])
            if matched_name in members and gid is not None and gid not in result.additional_gids:
                result.additional_gids.append(gid)
    for extra in group_add or []:
        gid_num = _num(extra)
        match = next((g for g in groups if g[0] == extra or (gid_num is not None and _num(g[2]) == gid_num)), None)
        if match is not None:
            gid = _num(match[2]) or 0
        elif gid_num is not None:
            gid = gid_num
        else:
            raise UserError(f"Unable to find group {extra}")
        if gid not in result.additional_gids:
            result.additional_gids.append(gid)
    return result
