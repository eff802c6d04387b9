#!/usr/bin/env python3
"""Render this template into a new driver project: ``python render.py NAME DEST``.

``NAME`` is the driver name users write in daemon.json (``myfs``). Every ``{{token}}`` in file names
and file contents is replaced:

- ``{{driver_name}}``: ``myfs`` (the entry-point name)
- ``{{dist_name}}``: ``engine-plugin-myfs`` (the distribution, ``pip install engine-plugin-myfs``)
- ``{{package}}``: ``engine_plugin_myfs`` (the import package)
- ``{{class_name}}``: ``MyfsStorageDriver``

Only the standard library is used, so this runs before anything is installed.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent
SKIP = {"render.py", "__pycache__"}
NAME_RE = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")


def tokens(name: str) -> dict[str, str]:
    if not NAME_RE.match(name):
        raise ValueError(f"invalid driver name {name!r}: use lower-case letters, digits, '-' or '_'")
    words = re.split(r"[-_]", name)
    return {
        "{{driver_name}}": name,
        "{{dist_name}}": f"engine-plugin-{name.replace('_', '-')}",
        "{{package}}": f"engine_plugin_{name.replace('-', '_')}",
        "{{class_name}}": "".join(w.capitalize() for w in words) + "StorageDriver",
    }


def substitute(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def render(name: str, dest: Path) -> Path:
    """Write the rendered project to ``dest`` (which must not exist yet) and return it."""
    values = tokens(name)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    for source in sorted(TEMPLATE.rglob("*")):
        relative = source.relative_to(TEMPLATE)
        if SKIP & set(relative.parts):
            continue
        target = dest / substitute(str(relative), values)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(substitute(source.read_text(), values))
        shutil.copymode(source, target)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    try:
        dest = render(argv[0], Path(argv[1]))
    except (ValueError, FileExistsError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"created {dest}: pip install -e '{dest}[test]' && pytest {dest / 'tests'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
