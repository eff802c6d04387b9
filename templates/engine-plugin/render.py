#!/usr/bin/env python3
"""Render a new driver project: ``python render.py --kind storage|network|log NAME DEST``.

``NAME`` is the driver name users will write (``"storage-driver": "myfs"`` in daemon.json,
``docker network create -d mynet``, ``--log-driver mylog``). The project is ``common/`` with the
kind's directory laid over it, and every ``{{token}}`` in file names and contents is replaced:

- ``{{driver_name}}``: ``myfs`` (the entry-point name)
- ``{{dist_name}}``: ``engine-plugin-myfs`` (the distribution, ``pip install engine-plugin-myfs``)
- ``{{package}}``: ``engine_plugin_myfs`` (the import package)
- ``{{class_name}}``: ``MyfsStorageDriver`` (``MynetNetworkDriver``, ``MylogLogDriver``)
- ``{{kind}}``: ``storage``, ``network`` or ``log``
- ``{{entry_point_group}}``: ``engine.storage_drivers``, ``engine.network_drivers`` or ``engine.log_drivers``
- ``{{dependencies}}``: the project's runtime dependencies (engine-core, and pyroute2 for a network driver)

Only the standard library is used, so this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent
KINDS = {
    # kind: (entry-point group, class name suffix, runtime dependencies besides engine-core)
    "storage": ("engine.storage_drivers", "StorageDriver", ()),
    "network": ("engine.network_drivers", "NetworkDriver", ("pyroute2>=0.7",)),
    "log": ("engine.log_drivers", "LogDriver", ()),
}
#: a third-party driver pins the engine-core range it was written against (DRIVER_API_VERSION 1)
ENGINE_CORE = "engine-core>=0.1,<0.2"
NAME_RE = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")


def tokens(name: str, kind: str = "storage") -> dict[str, str]:
    if not NAME_RE.match(name):
        raise ValueError(f"invalid driver name {name!r}: use lower-case letters, digits, '-' or '_'")
    if kind not in KINDS:
        raise ValueError(f"unknown driver kind {kind!r}: choose one of {', '.join(KINDS)}")
    group, suffix, dependencies = KINDS[kind]
    words = re.split(r"[-_]", name)
    return {
        "{{driver_name}}": name,
        "{{dist_name}}": f"engine-plugin-{name.replace('_', '-')}",
        "{{package}}": f"engine_plugin_{name.replace('-', '_')}",
        "{{class_name}}": "".join(w.capitalize() for w in words) + suffix,
        "{{kind}}": kind,
        "{{entry_point_group}}": group,
        "{{dependencies}}": ", ".join(f'"{d}"' for d in (ENGINE_CORE, *dependencies)),
    }


def substitute(text: str, values: dict[str, str]) -> str:
    for token, value in values.items():
        text = text.replace(token, value)
    return text


def render(name: str, dest: Path, kind: str = "storage") -> Path:
    """Write the rendered project to ``dest`` (which must not exist yet) and return it."""
    values = tokens(name, kind)
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    for layer in (TEMPLATE / "common", TEMPLATE / kind):
        for source in sorted(layer.rglob("*")):
            relative = source.relative_to(layer)
            if "__pycache__" in relative.parts or source.is_dir():
                continue
            target = dest / substitute(str(relative), values)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(substitute(source.read_text(), values))
            shutil.copymode(source, target)
    return dest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="render.py", description="Render a new engine driver project from this template."
    )
    parser.add_argument("--kind", choices=sorted(KINDS), default="storage", help="the driver kind (default: storage)")
    parser.add_argument("name", help="the driver name users will write (lower-case letters, digits, '-', '_')")
    parser.add_argument("dest", type=Path, help="the project directory to create (must not exist)")
    args = parser.parse_args(argv)
    try:
        dest = render(args.name, args.dest, args.kind)
    except (ValueError, FileExistsError) as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    print(f"created the {args.kind} driver project {dest}")
    print(f"next: python -m pip install -e {dest}[test] && python -m pytest {dest}/tests")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
