"""Hook specs are the documented plugin API: every spec documents its parameters and result, and
docs/hooks.md lists every signature (datasette's test_plugin_hooks_are_documented)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from engine import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"

HOOKSPECS = sorted(
    (name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "engine_spec")
)


def signature(fn) -> str:
    return f"{fn.__name__}({', '.join(inspect.signature(fn).parameters)})"


def test_there_are_hookspecs():
    assert len(HOOKSPECS) >= 10


@pytest.mark.parametrize(("name", "fn"), HOOKSPECS, ids=[n for n, _ in HOOKSPECS])
def test_hookspec_is_documented_in_docs(name, fn):
    assert f"`{signature(fn)}`" in DOCS.read_text(), f"add `{signature(fn)}` to docs/hooks.md"


@pytest.mark.parametrize(("name", "fn"), HOOKSPECS, ids=[n for n, _ in HOOKSPECS])
def test_hookspec_docstring_has_params_and_returns(name, fn):
    doc = inspect.getdoc(fn) or ""
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name}: document :param {param}:"
    assert ":returns:" in doc, f"{name}: document :returns:"


@pytest.mark.parametrize(("name", "fn"), HOOKSPECS, ids=[n for n, _ in HOOKSPECS])
def test_hookspec_naming_and_options(name, fn):
    assert re.fullmatch(r"engine_[a-z]+(_[a-z]+)+", name)
    opts = fn.engine_spec
    if opts["historic"]:
        assert name in ("engine_add_config",), "historic is for registration/config hooks only"
    if opts["firstresult"]:
        assert "resolve" in name, "firstresult is for 'resolve X' hooks only"
    assert (
        "firstresult" in (inspect.getdoc(fn) or "")
        or "first non-None" in (inspect.getdoc(fn) or "")
        or not opts["firstresult"]
    )


def test_docs_list_no_hook_that_does_not_exist():
    names = {n for n, _ in HOOKSPECS}
    documented = set(re.findall(r"^### `(engine_[a-z_]+)\(", DOCS.read_text(), re.M))
    assert documented == names
