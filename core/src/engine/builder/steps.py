"""The classic builder: stages and instruction dispatch, as dockerd 20.10's builder/dockerfile.

Runs in a worker thread. Output goes through :class:`Output` (``{"stream": ...}`` messages);
RUN containers run on the event loop (:mod:`engine.builder.run`). Each step that changes the
image makes a new image whose parent is the previous one; metadata steps commit a created (never
started) container, COPY/ADD write into a fresh read-write layer, RUN commits its container.
"""

from __future__ import annotations

import contextlib
import copy
import json
import posixpath
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.builder import context as ctx
from engine.builder import dockerfile, healthcheck, imaging
from engine.builder.context import BuildError
from engine.builder.shell import Lexer, env_map
from engine.drivers.layers import ArchiveError
from engine.errors import EngineError, InvalidParameter, NotFound
from engine.images.local import LocalImages

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: ARGs every build accepts without a declaration; kept out of the history and the cache key
BUILTIN_ARGS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)


class Output(Protocol):
    def stdout(self, text: str) -> None: ...
    def aux(self, data: dict[str, Any]) -> None: ...
    def run_container(self, container_id: str) -> tuple[int, str]: ...


@dataclass
class BuildOptions:
    dockerfile: str = ctx.DEFAULT_DOCKERFILE
    tags: list[Any] = field(default_factory=list)  # parsed references
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    rm: bool = True
    force_rm: bool = False
    pull: bool = False
    target: str = ""
    host_config: dict[str, Any] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)


@dataclass
class Stage:
    index: int
    name: str
    source: str  # the FROM line, for "Step n/m"
    instructions: list[dockerfile.Instruction]
    image: Any = None  # engine.images.store.Image, None for scratch
    image_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    maintainer: str = ""
    cmd_set: bool = False
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared in this stage


class Builder:
    def __init__(self, daemon: Any, options: BuildOptions, context_dir: Path, out: Output) -> None:
        self.daemon = daemon
        self.images = daemon.images  # resolve and pull
        #: the stores step images go to (the image subsystem's public surface)
        self.local: LocalImages = daemon.images.local
        self.containers = daemon.containers
        self.options = options
        self.context = context_dir
        self.out = out
        self.lexer = Lexer()
        self.meta_args: dict[str, str | None] = {}
        self.referenced: set[str] = set()
        self.stages: list[Stage] = []
        self.step_containers: list[tuple[str, bool]] = []  # (id, is a bare scratch layer)
        self.cache_busted = False
        #: set when the client went away: the build stops at the next step (RUN is killed)
        self.cancelled = threading.Event()
        self._plan: tuple[list[dockerfile.Instruction], list[Stage]] = ([], [])
        self.source_cache: imaging.SourceCache | None = None

    # -- the build -------------------------------------------------------------------------------

    def prepare(self) -> dockerfile.Dockerfile:
        """Everything that fails before any output (dockerd answers those with an HTTP error)."""
        rel, text = ctx.read_dockerfile(self.context, self.options.dockerfile)
        parsed = dockerfile.parse(text)
        dockerfile.validate(parsed)
        ctx.apply_dockerignore(self.context, rel)
        self.lexer = Lexer(parsed.escape)
        if not parsed.instructions:
            raise InvalidParameter(f"the Dockerfile ({self.options.dockerfile}) cannot be empty")
        self._plan = self._split(parsed)
        if self.options.cache_from:
            sources = []
            for ref in self.options.cache_from:
                try:
                    sources.append(self.images.resolve(ref))
                except (NotFound, InvalidParameter):
                    continue  # dockerd only logs a warning for a cache source it does not have
            self.source_cache = imaging.SourceCache(self.local, sources)
        return parsed

    def build(self, parsed: dockerfile.Dockerfile) -> str:
        meta, stages = self._plan
        total = len(meta) + len(stages) + sum(len(s.instructions) for s in stages)
        step = 1
        for ins in meta:
            self._step(step, total, ins.original)
            step += 1
            self._meta_arg(ins)
        final: Stage | None = None
        for stage in stages:
            self._check_cancelled()
            if stage.name and any(s.name == stage.name for s in self.stages):
                raise BuildError(f"{stage.name} stage name already used")
            self._step(step, total, stage.source)
            step += 1
            self._from(stage)
            self.out.stdout(f" ---> {_short(stage.image_id)}\n")
            for ins in stage.instructions:
                self._step(step, total, ins.original)
                step += 1
                self._dispatch(stage, ins)
                self.out.stdout(f" ---> {_short(stage.image_id)}\n")
            if stage.image_id:
                self.out.aux({"ID": stage.image_id})
            self.stages.append(stage)
            final = stage
        unused = sorted(k for k in self.options.build_args if k not in self.referenced and k not in BUILTIN_ARGS)
        if unused:
            self.out.stdout(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if final is None or not final.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return final.image_id

    def _step(self, number: int, total: int, text: str) -> None:
        # two writes, as dockerd's printCommand: the step text, then its newline
        self.out.stdout(f"Step {number}/{total} : {text}")
        self.out.stdout("\n")

    def _split(self, parsed: dockerfile.Dockerfile) -> tuple[list[dockerfile.Instruction], list[Stage]]:
        meta: list[dockerfile.Instruction] = []
        stages: list[Stage] = []
        for ins in parsed.instructions:
            if ins.name == "from":
                words = ins.rest.split()
                name = ""
                if len(words) == 3 and words[1].lower() == "as":
                    name = words[2].lower()
                elif len(words) != 1:
                    raise dockerfile.ParseError("FROM requires either one or three arguments")
                stages.append(Stage(len(stages), name, ins.original, []))
            elif not stages:
                if ins.name != "arg":
                    raise InvalidParameter("no build stage in current context")
                meta.append(ins)
            else:
                stages[-1].instructions.append(ins)
        if not stages:
            raise InvalidParameter("no build stage in current context")
        if self.options.labels:
            # dockerd appends the --label values as one LABEL instruction at the end of the file
            text = "LABEL " + " ".join(f"{json.dumps(k)}='{v}'" for k, v in sorted(self.options.labels.items()))
            stages[-1].instructions.append(dockerfile.parse(text).instructions[0])
        if self.options.target:
            index = next((s.index for s in stages if s.name == self.options.target.lower()), None)
            if index is None:
                raise NotFound(f"failed to reach build target {self.options.target} in Dockerfile")
            stages = stages[: index + 1]
        return meta, stages

    # -- ARG -----------------------------------------------------------------------------------------

    def _arg_defs(self, ins: dockerfile.Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        if not ins.rest:
            raise BuildError("ARG requires exactly one argument")
        out = []
        for token in dockerfile.split_pairs(ins.rest, self.lexer.escape):
            key, has_value, value = token.partition("=")
            out.append((key, self.lexer.word(value, env) if has_value else None))
        return out

    def _meta_arg(self, ins: dockerfile.Instruction) -> None:
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        for key, default in self._arg_defs(ins, env):
            given = self.options.build_args.get(key)
            self.meta_args[key] = given if given is not None else default
            self.referenced.add(key)

    def _expansion(self, stage: Stage) -> dict[str, str]:
        env = {k: v for k, v in stage.args.items() if v is not None}
        for key in BUILTIN_ARGS:
            if key not in stage.args and self.options.build_args.get(key) is not None:
                env[key] = self.options.build_args[key]  # type: ignore[assignment]
        env.update(env_map(stage.config.get("Env")))
        return env

    def _run_args(self, stage: Stage) -> tuple[list[str], list[str]]:
        """(env for the RUN container, the part of it recorded in the cache key/history)."""
        env_keys = set(env_map(stage.config.get("Env")))
        all_args: list[str] = []
        recorded: list[str] = []
        for key, value in stage.args.items():
            if value is not None and key not in env_keys:
                all_args.append(f"{key}={value}")
                recorded.append(f"{key}={value}")
        for key in BUILTIN_ARGS:
            value = self.options.build_args.get(key)
            if key not in stage.args and value is not None and key not in env_keys:
                all_args.append(f"{key}={value}")
        return all_args, sorted(recorded)

    # -- FROM -----------------------------------------------------------------------------------

    def _from(self, stage: Stage) -> None:
        self.cache_busted = False
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        words = stage.source.split(None, 1)[1].split() if " " in stage.source else []
        while words and words[0].startswith("--"):
            words.pop(0)
        ref = self.lexer.word(words[0], env) if words else ""
        if not ref:
            raise BuildError("base name (" + (words[0] if words else "") + ") should not be blank")
        previous = next((s for s in self.stages if s.name and s.name == ref.lower()), None)
        if previous is not None:
            image = self.local.store.get(previous.image_id) if previous.image_id else None
        elif ref.lower() == "scratch":
            image = None
        else:
            image = self._base_image(ref)
        stage.image = image
        stage.image_id = image.id if image is not None else ""
        stage.config = copy.deepcopy(image.config) if image is not None else {}
        stage.config["Image"] = stage.image_id
        # dockerd's beginStage: a default PATH unless the image sets one; never a stdin
        env = list(stage.config.get("Env") or [])
        if not any(item.partition("=")[0] == "PATH" for item in env):
            stage.config["Env"] = [*env, "PATH=" + DEFAULT_PATH]
        stage.config["OpenStdin"] = False
        stage.config["StdinOnce"] = False
        triggers = list(stage.config.get("OnBuild") or [])
        stage.config["OnBuild"] = None
        if triggers:
            self.out.stdout(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                parsed = dockerfile.parse(trigger).instructions
                if parsed:
                    self._dispatch(stage, parsed[0])

    def _base_image(self, ref: str) -> Any:
        try:
            return self.images.resolve(ref)
        except NotFound:
            pass
        try:
            self.images.pull(ref)  # no registry here: gives dockerd's "pull access denied" error
        except EngineError as exc:
            raise BuildError(str(exc.args[0] if exc.args else exc)) from None
        return self.images.resolve(ref)

    # -- dispatch ---------------------------------------------------------------------------------

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise BuildError("build cancelled")

    def _dispatch(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        self._check_cancelled()
        ok = False
        try:
            handler: Callable[[Stage, dockerfile.Instruction], None] = getattr(self, "_do_" + ins.name)
            handler(stage, ins)
            ok = True
        except EngineError as exc:
            raise BuildError(str(exc.args[0] if exc.args else exc)) from None
        finally:
            # a cancelled build's containers go too (dockerd kills and removes the running one)
            if self.options.force_rm or (self.options.rm and ok) or self.cancelled.is_set():
                self._remove_step_containers()
            else:
                # failed containers stay for inspection (dockerd); a bare scratch layer is nobody's to inspect
                for container_id, bare in self.step_containers:
                    if bare:
                        with contextlib.suppress(Exception):
                            self.local.layers.remove_rw_layer(container_id)
                self.step_containers.clear()
        stage.config["Image"] = stage.image_id

    def _remove_step_containers(self) -> None:
        for container_id, bare in self.step_containers:
            self.out.stdout(f"Removing intermediate container {container_id[:12]}\n")
            try:
                if bare:
                    self.local.layers.remove_rw_layer(container_id)
                else:
                    self.containers.remove(container_id, force=True, volumes=True)
            except Exception as exc:  # dockerd reports and goes on
                self.out.stdout(f"Error removing intermediate container {container_id[:12]}: {exc}\n")
        self.step_containers.clear()

    # -- committing --------------------------------------------------------------------------------

    def _shell(self, stage: Stage) -> list[str]:
        return list(stage.config.get("Shell") or DEFAULT_SHELL)

    def _probe(self, stage: Stage, container_config: dict[str, Any]) -> bool:
        if self.options.no_cache or self.cache_busted:
            return False
        if self.source_cache is not None:
            cached = self.source_cache.lookup(stage.image_id, container_config)
        else:
            cached = imaging.find_cached(self.local, stage.image_id, container_config)
        if cached is None:
            self.cache_busted = True
            return False
        self.out.stdout(" ---> Using cache\n")
        stage.image_id = cached
        stage.image = self.local.store.get(cached)
        return True

    def _create(self, stage: Stage, config: dict[str, Any]) -> str:
        """A build container (created, not started) from the current image; a bare read-write layer
        for ``FROM scratch``, which has no image to create a container from."""
        if stage.image is None:
            container_id = secrets.token_hex(32)
            self.local.layers.create_rw_layer(container_id, None)
            self.step_containers.append((container_id, True))
        else:
            body = copy.deepcopy(config)
            body["Image"] = stage.image_id
            body["HostConfig"] = copy.deepcopy(self.options.host_config)
            container_id, warnings = self.containers.create(None, body)
            self.step_containers.append((container_id, False))
            for warning in warnings or []:
                self.out.stdout(f" ---> [Warning] {warning}\n")
        self.out.stdout(f" ---> Running in {container_id[:12]}\n")
        return container_id

    def _commit_container(self, stage: Stage, container_id: str, container_config: dict[str, Any]) -> None:
        bare = any(cid == container_id and is_bare for cid, is_bare in self.step_containers)
        image_id = imaging.create_image(
            self.local,
            stage.image,
            copy.deepcopy(stage.config),
            container_config,
            diff=lambda out: self.local.layers.rw_diff(container_id, out),
            author=stage.maintainer,
            container_id="" if bare else container_id,
        )
        stage.image_id = image_id
        stage.image = self.local.store.get(image_id)

    def _commit(self, stage: Stage, comment: str, *, joined: bool = False) -> None:
        """dockerd's commit of a metadata step: Cmd ``<shell> "#(nop) " <comment>`` (``joined``:
        one ``"#(nop) <comment>"`` word, as WORKDIR and COPY use)."""
        container_config = copy.deepcopy(stage.config)
        nop = ["#(nop) " + comment] if joined else ["#(nop) ", comment]
        container_config["Cmd"] = self._shell(stage) + nop
        if self._probe(stage, container_config):
            return
        container_id = self._create(stage, container_config)
        self._commit_container(stage, container_id, container_config)

    # -- metadata instructions ------------------------------------------------------------------------

    def _do_env(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        env = self._expansion(stage)
        pairs = [
            (self.lexer.word(k, env), self.lexer.word(v, env)) for k, v in dockerfile.key_values(ins, self.lexer.escape)
        ]
        current = list(stage.config.get("Env") or [])
        for key, value in pairs:
            if not key:
                raise BuildError("ENV names can not be blank")
            item = f"{key}={value}"
            for i, existing in enumerate(current):
                if existing.partition("=")[0] == key:
                    current[i] = item
                    break
            else:
                current.append(item)
        stage.config["Env"] = current
        self._commit(stage, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_label(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        env = self._expansion(stage)
        pairs = [
            (self.lexer.word(k, env), self.lexer.word(v, env)) for k, v in dockerfile.key_values(ins, self.lexer.escape)
        ]
        labels = dict(stage.config.get("Labels") or {})
        for key, value in pairs:
            if not key:
                raise BuildError("LABEL names can not be blank")
            labels[key] = value
        stage.config["Labels"] = labels
        self._commit(stage, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_maintainer(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        if not ins.rest:
            raise BuildError("MAINTAINER requires exactly one argument")
        stage.maintainer = ins.rest
        self._commit(stage, "MAINTAINER " + ins.rest)

    def _do_arg(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        parts = []
        for key, default in self._arg_defs(ins, self._expansion(stage)):
            given = self.options.build_args.get(key)
            if given is not None:
                value: str | None = given
            elif default is not None:
                value = default
            else:
                value = self.meta_args.get(key)
            stage.args[key] = value
            self.referenced.add(key)
            parts.append(key if default is None else f"{key}={default}")
        self._commit(stage, "ARG " + " ".join(parts))

    def _cmd_line(self, stage: Stage, ins: dockerfile.Instruction) -> list[str]:
        if ins.json_args is not None:
            return list(ins.json_args)
        return [*self._shell(stage), ins.rest]

    def _do_cmd(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        cmd = self._cmd_line(stage, ins)
        stage.config["Cmd"] = cmd
        stage.config["ArgsEscaped"] = False
        if cmd:
            stage.cmd_set = True
        self._commit(stage, "CMD " + _go_quote_list(cmd))

    def _do_entrypoint(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        entrypoint = self._cmd_line(stage, ins) if (ins.json_args is not None or ins.rest) else []
        stage.config["Entrypoint"] = entrypoint or None
        if not stage.cmd_set:
            stage.config["Cmd"] = None
        self._commit(stage, "ENTRYPOINT " + _go_quote_list(entrypoint))

    def _do_expose(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        words = self.lexer.words(ins.rest, self._expansion(stage))
        if not words:
            raise BuildError("EXPOSE requires at least one argument")
        ports = dict(stage.config.get("ExposedPorts") or {})
        for word in words:
            for port in _port_keys(word):
                ports[port] = {}
        stage.config["ExposedPorts"] = ports
        self._commit(stage, "EXPOSE " + " ".join(words))

    def _do_user(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        user = self.lexer.word(ins.rest, self._expansion(stage))
        if not user:
            raise BuildError("USER requires exactly one argument")
        stage.config["User"] = user
        self._commit(stage, "USER " + user)

    def _do_volume(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        env = self._expansion(stage)
        if ins.json_args is not None:
            volumes = [self.lexer.word(v, env) for v in ins.json_args]
        else:
            volumes = self.lexer.words(ins.rest, env)
        if not volumes:
            raise BuildError("VOLUME requires at least one argument")
        current = dict(stage.config.get("Volumes") or {})
        for volume in volumes:
            volume = volume.strip()
            if not volume:
                raise BuildError("VOLUME specified can not be an empty string")
            current[volume] = {}
        stage.config["Volumes"] = current
        self._commit(stage, "VOLUME [" + " ".join(volumes) + "]")

    def _do_stopsignal(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        from engine.containers import signals

        value = self.lexer.word(ins.rest, self._expansion(stage))
        try:
            signals.parse(value)
        except Exception:
            raise BuildError(f"Invalid signal: {value}") from None
        stage.config["StopSignal"] = value
        self._commit(stage, "STOPSIGNAL " + value)

    def _do_shell(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        if ins.json_args is None:
            raise BuildError("SHELL requires the arguments to be in JSON form")
        if not ins.json_args:
            raise BuildError("SHELL requires at least one argument")
        stage.config["Shell"] = list(ins.json_args)
        self._commit(stage, "SHELL [" + " ".join(ins.json_args) + "]")

    def _do_onbuild(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        trigger = ins.rest
        first = trigger.split(None, 1)[0].upper() if trigger else ""
        if not first:
            raise BuildError("ONBUILD requires at least one argument")
        if first == "ONBUILD":
            raise BuildError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if first in ("FROM", "MAINTAINER"):
            raise BuildError(f"{first} isn't allowed as an ONBUILD trigger")
        dockerfile.parse(trigger)  # an unknown instruction fails now, not in the child build
        stage.config["OnBuild"] = [*(stage.config.get("OnBuild") or []), trigger]
        self._commit(stage, "ONBUILD " + trigger)

    def _do_healthcheck(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        words = ins.rest.split(None, 1)
        if not words:
            raise BuildError("HEALTHCHECK requires an argument")
        kind = words[0].upper()
        if kind == "NONE":
            if len(words) > 1 or ins.flags:
                raise BuildError("HEALTHCHECK NONE takes no arguments")
            health: dict[str, Any] = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = words[1] if len(words) > 1 else ""
            try:
                parsed = json.loads(rest) if rest.startswith("[") else None
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
                test = ["CMD", *parsed]
            else:
                test = ["CMD-SHELL", rest]
            if not rest:
                raise BuildError("Missing command after HEALTHCHECK CMD")
            retries = ins.flags.get("retries", "")
            try:
                retry_count = int(retries) if retries else 0
            except ValueError:
                raise BuildError(f'strconv.ParseInt: parsing "{retries}": invalid syntax') from None
            if retries and retry_count < 1:
                raise BuildError(f"--retries must be at least 1 (not {retry_count})")
            previous = (stage.config.get("Healthcheck") or {}).get("Test") or []
            if previous and previous[0] != "NONE":
                self.out.stdout(f"Note: overriding previous HEALTHCHECK: [{' '.join(previous)}]\n")
            health = {
                "Test": test,
                "Interval": healthcheck.flag_duration(ins.flags, "interval"),
                "Timeout": healthcheck.flag_duration(ins.flags, "timeout"),
                "StartPeriod": healthcheck.flag_duration(ins.flags, "start-period"),
                "Retries": retry_count,
            }
        else:
            raise BuildError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        stage.config["Healthcheck"] = health
        self._commit(stage, healthcheck.commit_message(health))

    def _do_workdir(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        path = self.lexer.word(ins.rest, self._expansion(stage))
        if not path:
            raise BuildError("WORKDIR requires exactly one argument")
        current = stage.config.get("WorkingDir") or "/"
        workdir = posixpath.normpath(path if path.startswith("/") else posixpath.join("/", current, path))
        stage.config["WorkingDir"] = workdir
        container_config = copy.deepcopy(stage.config)
        container_config["Cmd"] = [*self._shell(stage), "#(nop) WORKDIR " + workdir]
        if self._probe(stage, container_config):
            return
        container_id = self._create(stage, container_config)
        # dockerd's ContainerCreateWorkdir: the directory exists in the image from this step on
        layers = self.local.layers
        root = Path(layers.mount_rw(container_id))
        try:
            ctx.mkdir_in_root(root, workdir, (0, 0))
        except BuildError:
            pass  # a non-directory there: dockerd leaves it to the container start to complain
        finally:
            layers.unmount_rw(container_id)
        self._commit_container(stage, container_id, container_config)

    # -- RUN --------------------------------------------------------------------------------------------

    def _do_run(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        cmd = self._cmd_line(stage, ins)
        run_args, recorded = self._run_args(stage)
        save_cmd = cmd
        if run_args:
            save_cmd = [f"|{len(recorded)}", *recorded, *cmd]
        probe_config = copy.deepcopy(stage.config)
        probe_config["Cmd"] = save_cmd
        probe_config["ArgsEscaped"] = False
        if save_cmd:
            probe_config["Entrypoint"] = None
        if self._probe(stage, probe_config):
            return
        if stage.image is None:
            raise BuildError(
                "OCI runtime create failed: runc create failed: unable to start container process: "
                f'exec: "{cmd[0]}": stat {cmd[0]}: no such file or directory: unknown'
            )
        run_config = copy.deepcopy(stage.config)
        # dockerd runs with Entrypoint [""] (no entrypoint); the whole command as the entrypoint
        # gives the same argv without relying on how create treats [""]
        run_config["Entrypoint"] = cmd
        run_config["Cmd"] = None
        run_config["ArgsEscaped"] = False
        run_config["Env"] = [*(stage.config.get("Env") or []), *run_args]
        run_config["Healthcheck"] = {"Test": ["NONE"]}  # not the image's: create would merge it back
        container_id = self._create(stage, run_config)
        code, error = self.out.run_container(container_id)
        self._check_cancelled()
        if code != 0:
            message = f"The command '{' '.join(cmd)}' returned a non-zero code: {code}"
            if error:
                message += f": {error}"
            raise BuildError(message, code)
        self._commit_container(stage, container_id, probe_config)

    # -- COPY / ADD ----------------------------------------------------------------------------------

    def _do_copy(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        self._copy(stage, ins, "COPY")

    def _do_add(self, stage: Stage, ins: dockerfile.Instruction) -> None:
        self._copy(stage, ins, "ADD")

    def _copy(self, stage: Stage, ins: dockerfile.Instruction, what: str) -> None:
        env = self._expansion(stage)
        raw = ins.json_args if ins.json_args is not None else ins.rest.split()
        args = [self.lexer.word(word, env) for word in raw]
        if len(args) < 2:
            raise BuildError(f"{what} requires at least two arguments")
        sources, dest = args[:-1], args[-1]
        chown = ins.flags.get("chown", "")
        if chown:
            chown = self.lexer.word(chown, env)
        with self._source_root(ins.flags.get("from", ""), env) as (root, is_context):
            infos: list[ctx.Source] = []
            for src in sources:
                if what == "ADD" and (src.startswith("http://") or src.startswith("https://")):
                    raise BuildError(
                        f"ADD failed: remote URL sources are not supported by engine (no network access): {src}"
                    )
                infos += ctx.resolve_sources(root, src, allow_wildcards=True, what=what, is_context=is_context)
            if len(infos) > 1 and not dest.endswith("/"):
                raise BuildError(
                    f"When using {what} with more than one source file, the destination must be a directory and end with a /"
                )
            comment = f"{what} {'--chown=' + chown if chown else ''}{ctx.content_hash(infos)} in {dest} "
            container_config = copy.deepcopy(stage.config)
            container_config["Cmd"] = [*self._shell(stage), "#(nop) " + comment]
            if self._probe(stage, container_config):
                return
            workdir = stage.config.get("WorkingDir") or "/"
            abs_dest = dest
            if not dest.startswith("/"):
                abs_dest = posixpath.join("/", workdir, dest)
                if dest.endswith("/") or dest in (".", "./"):
                    abs_dest = abs_dest.rstrip("/") + "/"
            self._write_layer(stage, infos, abs_dest, chown, container_config, extract=what == "ADD")

    @contextmanager
    def _source_root(self, ref: str, env: dict[str, str]) -> Iterator[tuple[Path, bool]]:
        """The context, or (``--from``) an earlier stage's or an image's root filesystem, mounted
        through a temporary read-write layer that is removed afterwards."""
        if not ref:
            yield self.context, True
            return
        ref = self.lexer.word(ref, env)
        image = None
        stage = next((s for s in self.stages if s.name == ref.lower()), None)
        if stage is None and ref.isdigit():
            index = int(ref)
            if index >= len(self.stages):
                raise BuildError(f"invalid from flag value {ref}: refers to current build stage")
            stage = self.stages[index]
        if stage is not None:
            image = self.local.store.get(stage.image_id) if stage.image_id else None
        else:
            image = self._base_image(ref)
        if image is None or not image.top_layer:
            with tempfile.TemporaryDirectory(dir=self.local.tmp) as empty:
                yield Path(empty), False
            return
        layer_id = secrets.token_hex(32)
        layers = self.local.layers
        layers.create_rw_layer(layer_id, image.top_layer)
        try:
            yield Path(layers.mount_rw(layer_id)), False
        finally:
            layers.remove_rw_layer(layer_id)

    def _write_layer(
        self,
        stage: Stage,
        infos: list[ctx.Source],
        dest: str,
        chown: str,
        container_config: dict[str, Any],
        extract: bool,
    ) -> None:
        layers = self.local.layers
        layer_id = secrets.token_hex(32)
        layers.create_rw_layer(layer_id, stage.image.top_layer if stage.image is not None else None)
        try:
            root = Path(layers.mount_rw(layer_id))
            try:
                owner = self._chown(root, chown) if chown else (0, 0)
                for info in infos:
                    archive_source = extract and ctx.is_local_archive(info.path)
                    try:
                        ctx.copy_source(root, info, dest, len(infos) > 1, owner, extract_archive=archive_source)
                    except (OSError, ArchiveError) as exc:
                        raise BuildError(f"failed to copy files: {exc}") from None
            finally:
                layers.unmount_rw(layer_id)
            image_id = imaging.create_image(
                self.local,
                stage.image,
                copy.deepcopy(stage.config),
                container_config,
                diff=lambda out: layers.rw_diff(layer_id, out),
                author=stage.maintainer,
            )
        finally:
            layers.remove_rw_layer(layer_id)
        stage.image_id = image_id
        stage.image = self.local.store.get(image_id)

    def _chown(self, root: Path, spec: str) -> tuple[int, int]:
        from engine.runtime.users import resolve_user

        try:
            user = resolve_user(root, spec)
        except Exception as exc:
            raise BuildError(f"unable to convert uid/gid chown string to host mapping: {exc}") from None
        return user.uid, user.gid


def _short(image_id: str) -> str:
    return image_id.partition(":")[2][:12] if image_id else ""


def _go_quote_list(items: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def _port_keys(spec: str) -> list[str]:
    """EXPOSE's nat.ParsePortSpecs, for ``port[/proto]`` and ``start-end[/proto]``."""
    port, _, proto = spec.rpartition(":")[2].partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise BuildError(f"invalid proto: {proto}")
    start, _, end = port.partition("-")
    try:
        first = int(start)
        last = int(end) if end else first
    except ValueError:
        raise BuildError(f"Invalid containerPort: {port}") from None
    if not (0 < first <= 65535 and first <= last <= 65535):
        raise BuildError(f"Invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(first, last + 1)]
