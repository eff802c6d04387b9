"""engine.hooks.Hooks is the one way core calls hooks: one typed method per hookspec (same
parameters), every method called somewhere in core, and no call through pluggy's relay elsewhere."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from engine import hookspecs
from engine.hooks import Hooks

SRC = Path(hookspecs.__file__).resolve().parent
SPECS = sorted(
    (name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "engine_spec")
)
# files still calling pm.hook.engine_* directly (none: everything goes through engine.hooks.Hooks)
NOT_YET_ON_THE_FACADE: set[str] = set()


def _sources() -> dict[str, str]:
    return {str(p.relative_to(SRC)): p.read_text() for p in SRC.rglob("*.py")}


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
def test_every_hookspec_has_a_typed_method(name, spec):
    method = getattr(Hooks, name.removeprefix("engine_"), None)
    assert method is not None, f"add Hooks.{name.removeprefix('engine_')}"
    params = list(inspect.signature(method).parameters)[1:]
    assert params == list(inspect.signature(spec).parameters)


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
def test_every_hookspec_is_called(name, spec):
    method = name.removeprefix("engine_")
    callers = [
        path
        for path, text in _sources().items()
        if path not in ("hooks.py", "hookspecs.py") and re.search(rf"\.{method}\b", text)
    ]
    leftover = [path for path, text in _sources().items() if f"hook.{name}(" in text]
    assert callers or leftover, f"nothing calls {name}: call Hooks.{method} or remove the spec"


def test_core_calls_hooks_only_through_the_facade():
    direct = sorted(
        path
        for path, text in _sources().items()
        if path != "hooks.py" and re.search(r"\.hook\.engine_\w+", text) and path not in NOT_YET_ON_THE_FACADE
    )
    assert direct == []


def test_the_spec_hook_sees_a_container_context_and_shapes_the_spec(tmp_path: Path) -> None:
    import pluggy

    from engine.drivers import hookimpl
    from engine.hooks import ContainerContext
    from engine.runtime import Runtime, SpecInputs

    seen: list[ContainerContext] = []

    class NoNewPrivileges:
        @hookimpl
        def engine_security_container_spec(self, container: ContainerContext, spec: dict) -> None:
            seen.append(container)
            spec["process"]["noNewPrivileges"] = True

    pm = pluggy.PluginManager("engine")
    pm.add_hookspecs(hookspecs)
    pm.register(NoNewPrivileges())
    runtime = Runtime(tmp_path / "exec", config={}, hooks=Hooks(pm))
    (tmp_path / "rootfs").mkdir()
    context = ContainerContext("c" * 64, "/web", "sha256:" + "1" * 64, {"Cmd": ["true"]}, {})
    spec = runtime.build_spec(
        context, context.config, context.host_config, SpecInputs(container_id=context.id, rootfs=tmp_path / "rootfs")
    )
    assert seen == [context]
    assert spec["process"]["noNewPrivileges"] is True


def _pm_with(*plugins: object):
    import pluggy

    pm = pluggy.PluginManager("engine")
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def test_a_refusal_of_the_create_check_is_a_400(tmp_path: Path) -> None:
    from engine.drivers import hookimpl
    from engine.errors import InvalidParameter
    from engine.hooks import ContainerContext
    from engine.runtime import Runtime

    class Accepts:
        @hookimpl
        def engine_security_container_create(self, container: ContainerContext) -> None:
            return None

    class RefusesPrivileged:
        @hookimpl
        def engine_security_container_create(self, container: ContainerContext) -> str | None:
            return "no privileged here" if container.host_config.get("Privileged") else None

    runtime = Runtime(tmp_path / "exec", config={}, hooks=Hooks(_pm_with(Accepts(), RefusesPrivileged())))
    runtime.check_container(ContainerContext("", "", "", {}, {}))
    with pytest.raises(InvalidParameter, match="no privileged here"):
        runtime.check_container(ContainerContext("", "", "", {}, {"Privileged": True}))


def test_the_id_map_is_resolved_by_the_first_plugin_that_answers() -> None:
    from engine.drivers import hookimpl
    from engine.drivers.storage import IdMap, IdMapping

    mapped = IdMap(uids=(IdMapping(0, 100000, 65536),), gids=(IdMapping(0, 100000, 65536),))

    class Resolves:
        @hookimpl
        def engine_security_resolve_id_map(self, config: object) -> IdMap:
            return mapped

    assert Hooks(_pm_with()).resolves_id_map() is False
    hooks = Hooks(_pm_with(Resolves()))
    assert hooks.resolves_id_map() is True
    assert hooks.security_resolve_id_map({}) == mapped
