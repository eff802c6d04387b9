"""docs/daemon-json.md is generated from the configuration schema and must be current."""

from __future__ import annotations

from pathlib import Path

from engine import config_doc
from engine.cli import build_schema
from engine.config_schema import ConfigSchema, Option
from engine.plugins import make_plugin_manager

DOC = Path(__file__).resolve().parents[2] / config_doc.DOC_PATH


def test_the_reference_is_up_to_date():
    schema = build_schema(make_plugin_manager())  # every plugin of the repository (make install)
    assert DOC.read_text() == config_doc.render(schema), "docs/daemon-json.md is stale: run scripts/gen-daemon-json-doc"


def test_a_row_has_flags_type_default_reload_and_meaning():
    schema = ConfigSchema(
        [
            Option("shm", "int", 64 << 20, ("--shm",), "Shm size", reloadable=True, go_type="opts.MemBytes"),
            Option("pipe", "string", "a|b", (), "Either a|b", supported=False),
            Option("third", "bool", True, ("--third",), "Not ours", owner="engine-plugin-elsewhere"),
        ]
    )
    text = config_doc.render(schema)
    assert '| `shm` | `--shm` | string (a size: `"64m"`, `"1g"`) | `64MiB` | yes | Shm size |' in text
    assert "| `pipe` | (file only) | string | `a\\|b` |  | Either a\\|b (*accepted, not implemented*) |" in text
    assert "third" not in text  # a distribution engine does not ship: left out
