"""daemon.json and command-line flags, as dockerd 20.10 reads them.

The schema (:mod:`engine.config_schema`) lists every key with its type, default and flags; core's
keys are in :mod:`engine.config_options`, plugins add theirs through the ``engine_add_config``
hook. Loading follows moby's ``loadDaemonCliConfig``/``MergeDaemonConfigurations``, messages included:

1. the file's keys must each name a flag or a named option ("the following directives don't match
   any configuration option: ..."); objects other than the map-valued keys are flattened first;
2. no key may come from both a flag and the file ("the following directives are specified both as
   a flag and in the configuration file: hosts: (from flag: [...], from file: [...])"), except
   ``runtimes``, which are merged;
3. values are decoded as Go's encoding/json would (``json: cannot unmarshal ...``) and validated,
   first the file alone, then the file merged with the flags;
4. a zero value in the file ("", 0, []) leaves the flag's value, or its default, in place;
5. daemon labels must not give one key two values.

The result is a frozen :class:`DaemonConfig`. :func:`reload` is SIGHUP's re-read (moby
``config.Reload`` + ``daemon.Reload``): only reloadable keys change, a bad file changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine import hosts as hosts_mod
from engine.config_cmdline import DEFAULT_CONFIG_FILE, CommandLine, parse_command_line
from engine.config_options import BUILTIN_RUNTIMES, LOG_LEVELS, core_schema
from engine.config_schema import (
    ANY,
    BOOL,
    INT,
    LIST,
    MAP,
    OBJECT,
    STR,
    ConfigSchema,
    Option,
    copy_value,
    decode_value,
    go_format,
    is_zero,
)
from engine.errors import ConfigError
from engine.shipped import install_hint, is_shipped

__all__ = [
    "ANY",
    "BOOL",
    "DEFAULT_CONFIG_FILE",
    "INT",
    "LIST",
    "MAP",
    "OBJECT",
    "STR",
    "CommandLine",
    "ConfigSchema",
    "DaemonConfig",
    "Option",
    "ReloadResult",
    "core_schema",
    "load",
    "merge",
    "parse_command_line",
    "read_config_file",
    "reload",
]

#: keys dockerd leaves out of its unknown-key check (their contents are free-form)
UNCHECKED_KEYS = frozenset({"features", "builder", "deprecated-key-path"})
#: object-valued keys dockerd does not flatten before its key checks
FLAT_KEYS = frozenset({"cluster-store-opts", "log-opts", "runtimes", "default-ulimits", "features", "builder"})
#: keys dockerd merges instead of refusing when given both as a flag and in the file
MERGED_KEYS = frozenset({"runtimes"})
#: flags that are not configuration keys; as flag names, dockerd accepts them as file keys
META_FLAG_NAMES = frozenset({"config-file", "validate", "version", "help"})

#: dockerd keys declared by a plugin distribution rather than by core: the hint when it is missing
PLUGIN_KEYS = {
    key: "engine-plugin-bridge"
    for key in (
        "bridge",
        "bip",
        "fixed-cidr",
        "fixed-cidr-v6",
        "default-gateway",
        "default-gateway-v6",
        "icc",
        "ip",
        "iptables",
        "ip6tables",
        "ip-forward",
        "ip-masq",
        "ipv6",
        "mtu",
        "userland-proxy",
        "userland-proxy-path",
    )
}

#: the reloadable keys whose absence from the file on SIGHUP resets them (moby daemon/reload.go)
_RESET_ON_RELOAD = ("max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts")
#: reloadable keys always taken from the file on SIGHUP, even when absent (then empty)
_ALWAYS_ON_RELOAD = ("features", "authorization-plugins")
#: reloadable keys only changed by a non-empty value in the file
_NON_EMPTY_ON_RELOAD = ("default-runtime", "default-ipc-mode", "default-cgroupns-mode")


@dataclass(frozen=True)
class DaemonConfig:
    """The effective configuration: every declared key, defaults filled in. Read-only.

    ``from_file`` are the keys the file set (dockerd's ``ValuesSet``); ``from_flags`` those set by flags.
    """

    values: Mapping[str, Any]
    config_file: Path | None = None
    from_flags: frozenset[str] = frozenset()
    from_file: frozenset[str] = frozenset()
    config_file_given: bool = False
    #: the command line's flag values, kept for the conflict checks of a SIGHUP reload
    flag_values: Mapping[str, Any] = field(default_factory=dict)
    flag_reprs: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def data_root(self) -> Path:
        return Path(self.values["data-root"])

    @property
    def exec_root(self) -> Path:
        return Path(self.values["exec-root"])

    def is_value_set(self, key: str) -> bool:
        """dockerd's ``IsValueSet``: the key was in the configuration file."""
        return key in self.from_file

    def storage_options(self) -> dict[str, str]:
        """``storage-opts`` as a dict, keys as written (``overlay2.size``)."""
        opts = {}
        for item in self.values.get("storage-opts", []):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"storage-opts: {item!r} must be key=value")
            opts[key.strip().lower()] = value.strip()
        return opts

    def unsupported_keys(self, schema: ConfigSchema) -> list[str]:
        """dockerd keys that are set here but that engine does not act on."""
        return sorted(k for k in self.from_file | self.from_flags if k in schema and not schema[k].supported)

    def as_json(self) -> dict[str, Any]:
        return {k: copy_value(v) for k, v in self.values.items()}


# ---- the file ---------------------------------------------------------------------------------------


def go_json_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Go's encoding/json SyntaxError wording for where Python's decoder stopped (daemon.json here,
    the API's request bodies in engine.api.bodies)."""
    if exc.pos >= len(text.rstrip()):
        return "unexpected EOF"
    char = text[exc.pos]
    shown = char if char.isprintable() else repr(char)[1:-1]
    context = {
        "Extra data": "after top-level value",
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Expecting ',' delimiter": "after object key:value pair"
        if _innermost_open(text, exc.pos) == "{"
        else "after array element",
    }.get(exc.msg, "in string literal" if "control character" in exc.msg or "escape" in exc.msg else "")
    return f"invalid character '{shown}' {context}".rstrip()


def _innermost_open(doc: str, pos: int) -> str:
    """The bracket (``{`` or ``[``) enclosing ``pos``, skipping strings."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def read_config_file(path: Path, required: bool) -> dict[str, Any] | None:
    """Read daemon.json. A missing file is ``None`` unless it was named with ``--config-file``.

    :raises ConfigError: unreadable, not JSON, or not an object; dockerd's message.
    """
    where = f"unable to configure the Docker daemon with file {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{where}: open {path}: no such file or directory") from None
        return None
    except PermissionError:
        raise ConfigError(f"{where}: open {path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: read {path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    stripped = text.lstrip()
    if not stripped:
        raise ConfigError(f"{where}: EOF")
    try:
        # Go's Decoder reads one value and ignores what follows it
        data, _ = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: {go_json_syntax_error(exc.doc, exc)}") from None
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}.get(type(data), "null")
        if data is None:
            return {}
        raise ConfigError(f"{where}: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    return data


def _flatten(file_values: Mapping[str, Any]) -> dict[str, Any]:
    """moby ``configValuesSet``: nested objects are flattened, except the map-valued keys."""
    flat: dict[str, Any] = {}
    for key, value in file_values.items():
        if isinstance(value, dict) and key not in FLAT_KEYS:
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _accepted_keys(schema: ConfigSchema) -> set[str]:
    """Every flag name and every named option's key (dockerd's ``flags.Lookup`` + NamedOption)."""
    keys = set(META_FLAG_NAMES)
    for option in schema.options():
        if option.flag_name:
            keys.add(option.flag_name)
        keys.add(option.key)
    return keys


def _check_keys(
    schema: ConfigSchema, flat: Mapping[str, Any], flag_values: Mapping[str, Any], flag_reprs: Mapping[str, str]
) -> None:
    accepted = _accepted_keys(schema)
    unknown = sorted(k for k in flat if k not in accepted and k not in UNCHECKED_KEYS)
    if unknown:
        message = f"the following directives don't match any configuration option: {', '.join(unknown)}"
        hints = sorted({PLUGIN_KEYS[k] for k in unknown if k in PLUGIN_KEYS})
        for dist in hints:
            keys = ", ".join(k for k in unknown if PLUGIN_KEYS.get(k) == dist)
            if is_shipped(dist):
                message += f" ({keys}: provided by {dist}, which is not installed; {install_hint(dist)})"
            else:
                message += f" ({keys}: would be provided by {dist}, which is not available yet)"
        raise ConfigError(message)
    conflicts = []
    for option in sorted((schema[k] for k in flag_values), key=lambda o: o.flag_name or o.key):
        if option.key in flat and option.key not in MERGED_KEYS:
            shown = flag_reprs.get(option.key, go_format(flag_values[option.key]))
            conflicts.append(f"{option.key}: (from flag: {shown}, from file: {go_format(flat[option.key])})")
    if conflicts:
        raise ConfigError(
            "the following directives are specified both as a flag and in the configuration file: "
            + ", ".join(conflicts)
        )


def _decode_file(schema: ConfigSchema, file_values: Mapping[str, Any]) -> dict[str, Any]:
    """The file's values for declared keys, decoded and type-checked as Go would."""
    decoded: dict[str, Any] = {}
    for key, raw in file_values.items():
        if key not in schema:
            continue  # accepted flag names (``host``) and unchecked keys: dockerd decodes nothing from them
        try:
            decoded[key] = decode_value(schema[key], raw)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if decoded.get("graph"):
        if decoded.get("data-root"):
            raise ConfigError('cannot specify both "graph" and "data-root" config file options')
        decoded["data-root"] = decoded["graph"]
    return decoded


def _file_config(
    schema: ConfigSchema,
    file_values: Mapping[str, Any],
    flag_values: Mapping[str, Any],
    flag_reprs: Mapping[str, str],
    where: str,
) -> tuple[dict[str, Any], set[str]]:
    """The file's decoded values and the (flattened) keys it sets, after dockerd's unknown-key and
    flag-conflict checks; errors are prefixed with ``where`` (which file)."""
    flat = _flatten(file_values)
    try:
        _check_keys(schema, flat, flag_values, flag_reprs)
        return _decode_file(schema, file_values), set(flat)
    except ConfigError as exc:
        raise ConfigError(where + exc.message) from None


def _validate(schema: ConfigSchema, values: dict[str, Any], keys: Iterable[str] | None = None) -> None:
    """dockerd's ``Validate`` over ``keys`` of ``values`` (all keys when None); normalises in place."""
    wanted = set(values if keys is None else keys)
    for option in schema.options():
        if option.validate is not None and option.key in wanted and option.key in values:
            try:
                values[option.key] = option.validate(values[option.key])
            except (ValueError, TypeError) as exc:
                raise ConfigError(str(exc)) from None
    for check in schema.checks:
        try:
            check(values)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def conflict_free_labels(labels: list[str]) -> list[str]:
    """moby ``GetConflictFreeLabels``: one value per key; repeats of the same pair collapse."""
    seen: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep:
            continue
        if key in seen and seen[key] != value:
            raise ConfigError(f"conflict labels for {key}={value} and {key}={seen[key]}")
        seen[key] = value
    return [f"{k}={v}" for k, v in seen.items()]


def docker_cert_path() -> Path:
    """Where default TLS files live: ``$DOCKER_CERT_PATH``, else ``$DOCKER_CONFIG``, else ``~/.docker``."""
    for var in ("DOCKER_CERT_PATH", "DOCKER_CONFIG"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path.home() / ".docker"


def _finish_tls(values: dict[str, Any], from_file: set[str], flag_values: Mapping[str, Any]) -> None:
    """dockerd's TLS rules: ``tlsverify`` given anywhere turns TLS on; TLS on verifies clients unless
    ``tlsverify`` is false; default files in the cert path are used only when TLS is on by flag."""
    tls = values.get("tls")
    verify = values.get("tlsverify")
    if "tlsverify" in from_file or "tlsverify" in flag_values:
        tls = True
    if verify is None and tls is not None:
        verify = tls
    values["tls"] = bool(tls)
    values["tlsverify"] = bool(tls) and (verify is None or bool(verify))
    by_flag = bool(flag_values.get("tls")) or "tlsverify" in flag_values
    if values["tls"] and by_flag:
        cert_dir = docker_cert_path()
        for key, name, must_exist in (
            ("tlscacert", "ca.pem", False),
            ("tlscert", "cert.pem", True),
            ("tlskey", "key.pem", True),
        ):
            if not values.get(key) and key not in flag_values and key not in from_file:
                path = cert_dir / name
                if not must_exist or path.exists():
                    values[key] = str(path)


def _finish_hosts(values: dict[str, Any]) -> None:
    """Resolve the listen addresses now, so a bad one stops start-up (and ``--validate``)."""
    resolved: list[str] = []
    for raw in values.get("hosts") or [""]:
        try:
            host = hosts_mod.parse_host(raw, default_to_tls=values.get("tls", False))
        except ValueError as exc:
            raise ConfigError(f"failed to load listeners: error parsing -H {raw}: {exc}") from None
        if host not in resolved:
            resolved.append(host)
    values["hosts"] = resolved


def _finish_exec_opts(values: dict[str, Any]) -> None:
    for opt in values.get("exec-opts") or []:
        key, _, value = opt.partition("=")
        if key.strip().lower() == "native.cgroupdriver":
            driver = value.strip()
            if driver == "none":
                raise ConfigError(
                    f"failed to start daemon: native.cgroupdriver option {driver} is internally used and "
                    "cannot be specified manually"
                )
            if driver not in ("cgroupfs", "systemd"):
                raise ConfigError(f"failed to start daemon: native.cgroupdriver option {driver} not supported")


def check_log_level(level: str) -> str:
    if level.lower() not in LOG_LEVELS:
        raise ConfigError(f"unable to parse logging level: {level}")
    return level.lower()


def merge(
    schema: ConfigSchema,
    file_values: Mapping[str, Any] | None,
    flag_values: Mapping[str, Any],
    config_file: Path | None = None,
    *,
    flag_reprs: Mapping[str, str] | None = None,
    config_file_given: bool = False,
) -> DaemonConfig:
    """Check, merge and validate the file (None: no file) and the flags over the defaults.

    :raises ConfigError: with dockerd's message naming the key.
    """
    flag_reprs = flag_reprs or {}
    if "graph" in flag_values and "data-root" in flag_values:
        raise ConfigError('cannot specify both "--graph" and "--data-root" option')
    where = f"unable to configure the Docker daemon with file {config_file}: "
    file_cfg: dict[str, Any] = {}
    from_file: set[str] = set()
    if file_values is not None:
        file_cfg, from_file = _file_config(schema, file_values, flag_values, flag_reprs, where)
        try:
            _validate(schema, file_cfg, file_cfg.keys())
        except ConfigError as exc:
            raise ConfigError(f"{where}configuration validation from file failed: {exc.message}") from None

    values = schema.defaults()
    values.update(copy_value(dict(flag_values)))
    if flag_values.get("graph"):
        values["data-root"] = flag_values["graph"]
    for key, value in file_cfg.items():
        if key in MERGED_KEYS and isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        elif not is_zero(value) or schema[key].type == BOOL:
            values[key] = value
    try:
        _validate(schema, values)
    except ConfigError as exc:
        if file_values is None:
            raise
        raise ConfigError(
            f"{where}merged configuration validation from file and command line flags failed: {exc.message}"
        ) from None
    values["labels"] = conflict_free_labels(values.get("labels") or [])
    values["log-level"] = check_log_level(values.get("log-level") or "info")
    _finish_tls(values, from_file, flag_values)
    _finish_hosts(values)
    _finish_exec_opts(values)
    return DaemonConfig(
        MappingProxyType(values),
        config_file,
        frozenset(flag_values),
        frozenset(from_file),
        config_file_given,
        MappingProxyType(dict(flag_values)),
        MappingProxyType(dict(flag_reprs)),
    )


def load(schema: ConfigSchema, cmdline: CommandLine) -> DaemonConfig:
    """Read the file named on the command line (or the default) and merge it with the flags."""
    file_values = read_config_file(cmdline.config_file, required=cmdline.config_file_given)
    return merge(
        schema,
        file_values,
        cmdline.flag_values,
        cmdline.config_file,
        flag_reprs=cmdline.flag_reprs,
        config_file_given=cmdline.config_file_given,
    )


# ---- SIGHUP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReloadResult:
    config: DaemonConfig
    #: the reloadable keys whose value changed, with their new values
    changed: dict[str, Any]
    #: the ``reload`` event's attributes, as dockerd sends them (``name`` is added by the daemon)
    attributes: dict[str, str]


def reload(schema: ConfigSchema, current: DaemonConfig) -> ReloadResult:
    """Re-read the configuration file, as dockerd does on SIGHUP.

    Only reloadable keys change. A reloadable key absent from the file keeps its value, except the
    ``max-concurrent-*``/``max-download-attempts`` counts (back to their defaults) and ``features``/
    ``authorization-plugins`` (emptied), as in moby daemon/reload.go.

    :raises ConfigError: the file is invalid; the caller keeps ``current``.
    """
    path = current.config_file or DEFAULT_CONFIG_FILE
    where = f"unable to configure the Docker daemon with file {path}: "
    raw = read_config_file(path, required=current.config_file_given)
    file_cfg: dict[str, Any] = {}
    from_file: set[str] = set()
    if raw is not None:
        file_cfg, from_file = _file_config(schema, raw, current.flag_values, current.flag_reprs, where)
    try:
        _validate(schema, file_cfg, file_cfg.keys())
    except ConfigError as exc:
        raise ConfigError(f"file configuration validation failed: {exc.message}") from None
    if "labels" in file_cfg:
        file_cfg["labels"] = conflict_free_labels(file_cfg["labels"])

    values = dict(current.values)
    for option in schema.options():
        if not option.reloadable:
            continue
        key = option.key
        if key in _NON_EMPTY_ON_RELOAD:
            if file_cfg.get(key):
                values[key] = file_cfg[key]
        elif key in file_cfg:
            values[key] = file_cfg[key]
        elif key in _RESET_ON_RELOAD or key in _ALWAYS_ON_RELOAD:
            values[key] = copy_value(option.default)
    changed = {o.key: values[o.key] for o in schema.options() if o.reloadable and values[o.key] != current.get(o.key)}
    config = DaemonConfig(
        MappingProxyType(values),
        path,
        current.from_flags,
        frozenset(from_file),
        current.config_file_given,
        current.flag_values,
        current.flag_reprs,
    )
    return ReloadResult(config, changed, reload_attributes(values))


def reload_attributes(values: Mapping[str, Any]) -> dict[str, str]:
    """The attributes of dockerd 20.10's daemon ``reload`` event (linux)."""

    def js(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    runtimes = {"runc": {"path": "runc"}, **{k: v for k, v in (values.get("runtimes") or {}).items()}}
    for name in BUILTIN_RUNTIMES:
        runtimes.setdefault(name, {"path": "runc"})
    features = values.get("features") or {}
    return {
        "runtimes": " ".join(f"{name}:{spec.get('path', '')}" for name, spec in sorted(runtimes.items())),
        "default-runtime": str(values.get("default-runtime", "runc")),
        "default-shm-size": str(values.get("default-shm-size", 64 << 20)),
        "default-ipc-mode": str(values.get("default-ipc-mode", "private")),
        "default-cgroupns-mode": str(values.get("default-cgroupns-mode", "host")),
        "debug": "true" if values.get("debug") else "false",
        "max-concurrent-downloads": str(values.get("max-concurrent-downloads", 3)),
        "max-concurrent-uploads": str(values.get("max-concurrent-uploads", 5)),
        "max-download-attempts": str(values.get("max-download-attempts", 5)),
        "shutdown-timeout": str(values.get("shutdown-timeout", 15)),
        "features": "map[" + " ".join(f"{k}:{go_format(features[k])}" for k in sorted(features)) + "]",
        "cluster-store": str(values.get("cluster-store", "")),
        "cluster-advertise": str(values.get("cluster-advertise", "")),
        "cluster-store-opts": js(values.get("cluster-store-opts")) if values.get("cluster-store-opts") else "null",
        "labels": js(list(values.get("labels") or [])),
        "allow-nondistributable-artifacts": js(list(values.get("allow-nondistributable-artifacts") or [])),
        "insecure-registries": js(list(values.get("insecure-registries") or [])),
        "registry-mirrors": js(list(values.get("registry-mirrors") or [])),
        "live-restore": "true" if values.get("live-restore") else "false",
    }
