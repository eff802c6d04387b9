"""``engined --help``: dockerd's (pflag's) two aligned columns, value types and defaults."""

from __future__ import annotations

import re

from engine.cli import build_schema
from engine.config_cmdline import usage
from engine.plugins import make_plugin_manager


def options_of(text: str) -> list[str]:
    return text.split("Options:\n", 1)[1].splitlines()


def test_columns_are_aligned_three_spaces_after_the_longest_flag():
    rows = options_of(usage(build_schema(make_plugin_manager())))
    columns = {re.match(r"^(\s+(-\w, )?--\S+( \S+)?\s+)\S", row).end() - 1 for row in rows}
    assert len(columns) == 1, columns
    longest = max(len(re.match(r"^\s+(-\w, )?--\S+( [a-z-]+)?", row).group(0)) for row in rows)
    assert columns == {longest + 3}


def test_types_and_defaults_as_pflag_prints_them():
    text = usage(build_schema(make_plugin_manager()))
    rows = {re.search(r"--(\S+)", row).group(1): row for row in options_of(text)}
    assert rows["data-root"].rstrip().endswith('Root directory of persistent engine state (default "/var/lib/engine")')
    assert rows["max-concurrent-downloads"].endswith("(default 3)")
    assert re.match(r"\s+--default-shm-size bytes\s+.*\(default 64MiB\)$", rows["default-shm-size"])
    assert re.match(r"\s+--add-runtime runtime\s+", rows["add-runtime"])
    assert rows["config-file"].endswith('(default "/etc/engine/daemon.json")')
    assert rows["log-format"].endswith('(default "text")')
    # zero values are not shown: false, "", 0, empty lists
    for name in ("debug", "storage-driver", "label", "mtu"):
        if name in rows:
            assert "(default" not in rows[name], rows[name]
    assert rows["debug"].startswith("  -D, --debug   ")
