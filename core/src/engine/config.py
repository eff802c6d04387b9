"""daemon.json and command-line flags, as dockerd 20.10 reads them.

The schema is a list of :class:`Option`: a daemon.json key with its type, default, the
dockerd flags that set it, and whether SIGHUP may reload it. Core declares its own keys
here; plugins add theirs through the ``engine_add_config`` hook. The rules are dockerd's:

- an unknown key in the file stops start-up ("the following directives don't match any
  configuration option: ...");
- a key given both as a flag and in the file stops start-up ("the following directives are
  specified both as a flag and in the configuration file: ...");
- a value of the wrong type or out of range stops start-up, naming the key.

The result is a frozen :class:`DaemonConfig`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("/etc/engine/daemon.json")

Validator = Callable[[Any], Any]

# Types of values, as daemon.json carries them.
STR, BOOL, INT, LIST, MAP, OBJECT, ANY = "string", "bool", "int", "list", "map", "object", "any"


@dataclass(frozen=True)
class Option:
    """One configuration key.

    :param key: the daemon.json key (``storage-driver``).
    :param type: one of ``string``, ``bool``, ``int``, ``list`` (of strings), ``map`` (string to
        string), ``object`` (any JSON object), ``any``.
    :param flags: the dockerd flags that set it (``--storage-driver``, ``-s``); empty: file only.
    :param reloadable: SIGHUP may change it without a restart.
    :param validate: checks (and may normalise) a value; raises ``ValueError`` with the reason.
    :param flag_value: for ``list``/``map``/``object`` keys set by a repeatable flag, turns
        one flag argument into the element (e.g. ``--add-runtime name=path``).
    """

    key: str
    type: str
    default: Any = None
    flags: tuple[str, ...] = ()
    help: str = ""
    reloadable: bool = False
    validate: Validator | None = None
    flag_value: Callable[[str], Any] | None = None
    owner: str = "engine-core"


class ConfigSchema:
    """The set of keys engine accepts; passed to ``engine_add_config`` so plugins can add theirs."""

    def __init__(self, options: Iterable[Option] = ()) -> None:
        self._options: dict[str, Option] = {}
        for option in options:
            self.add_option(option)

    def add_option(self, option: Option) -> None:
        if option.key in self._options:
            raise ConfigError(
                f"configuration key {option.key!r} is declared twice "
                f"({self._options[option.key].owner} and {option.owner})"
            )
        self._options[option.key] = option

    def add(self, key: str, type_: str, default: Any = None, help: str = "", **kwargs: Any) -> None:
        """Declare a key (the plugin-facing shorthand for :meth:`add_option`)."""
        self.add_option(Option(key=key, type=type_, default=default, help=help, **kwargs))

    def __contains__(self, key: str) -> bool:
        return key in self._options

    def __getitem__(self, key: str) -> Option:
        return self._options[key]

    def options(self) -> list[Option]:
        return list(self._options.values())

    def defaults(self) -> dict[str, Any]:
        return {o.key: _copy(o.default) for o in self._options.values()}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


# ---- validators -------------------------------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


def one_of(*choices: str) -> Validator:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"invalid value {value!r}, must be one of {', '.join(choices)}")
        return value

    return check


def non_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"invalid value {value}, must be >= 0")
    return value


def absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path")
    return value


HOST_RE = re.compile(r"^(unix://.*|tcp://[^/]*|fd://.*)$")


def hosts(value: list[str]) -> list[str]:
    out = []
    for host in value:
        if host.startswith("/"):  # dockerd accepts a bare socket path
            host = "unix://" + host
        if not HOST_RE.match(host):
            raise ValueError(f"invalid listen address {host!r}")
        out.append(host)
    return out


def labels(value: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in value:
        if "=" not in item:
            raise ValueError(f"bad attribute format: {item}")
        k, v = item.split("=", 1)
        if k in seen and seen[k] != v:
            raise ValueError(f"label {k}={v} conflicts with {k}={seen[k]}")
        seen[k] = v
    return value


def ip_list(value: list[str]) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(f"{item} is not an ip address") from None
    return value


def size_string(value: str) -> str:
    parse_size(value)
    return value


SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.I)


def parse_size(value: str | int) -> int:
    """Parse Docker's human sizes ("64m", "1.5g", "1024"): binary multiples, as go-units RAMInBytes."""
    if isinstance(value, int):
        return value
    m = SIZE_RE.match(value.strip())
    if not m:
        raise ValueError(f"invalid size: {value!r}")
    num, unit = float(m.group(1)), m.group(2).lower()
    return int(num * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[unit])


def runtimes(value: dict[str, Any]) -> dict[str, Any]:
    for name, spec in value.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            raise ValueError(f'runtime {name!r} needs a "path"')
        if name == "runc" and spec.get("path") not in ("runc",):
            raise ValueError('runtime name "runc" is reserved')
    return value


def runtime_flag(arg: str) -> dict[str, Any]:
    name, _, path = arg.partition("=")
    if not name or not path:
        raise ValueError(f"runtime {arg!r} must be name=path")
    return {name: {"path": path}}


def key_value_flag(arg: str) -> dict[str, str]:
    key, sep, value = arg.partition("=")
    if not sep:
        raise ValueError(f"{arg!r} must be key=value")
    return {key: value}


def ulimit_flag(arg: str) -> dict[str, Any]:
    name, _, limits = arg.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise ValueError(f"invalid ulimit {arg!r}") from None
    return {name: {"Name": name, "Soft": s, "Hard": h}}


def address_pool_flag(arg: str) -> dict[str, Any]:
    pool: dict[str, Any] = {}
    for part in arg.split(","):
        k, _, v = part.partition("=")
        pool[k] = int(v) if k == "size" else v
    return pool


def address_pools(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for pool in value:
        if not isinstance(pool, dict) or "base" not in pool or "size" not in pool:
            raise ValueError('each pool needs "base" and "size"')
        net = ipaddress.ip_network(pool["base"], strict=False)
        if not isinstance(pool["size"], int) or not net.prefixlen <= pool["size"] <= net.max_prefixlen:
            raise ValueError(f"invalid pool size {pool['size']!r} for base {pool['base']}")
    return value


# ---- the core schema --------------------------------------------------------------------------------

_CORE_OPTIONS = [
    # daemon and API
    Option(
        "hosts", LIST, ["unix:///run/engine.sock"], ("-H", "--host"), "Daemon socket(s) to listen on", validate=hosts
    ),
    Option("group", STR, "engine", ("-G", "--group"), "Group for the unix socket"),
    Option("data-root", STR, "/var/lib/engine", ("--data-root",), "Root of persistent state", validate=absolute_path),
    Option("exec-root", STR, "/run/engine", ("--exec-root",), "Root of runtime state", validate=absolute_path),
    Option("pidfile", STR, "/run/engine.pid", ("-p", "--pidfile"), "Path of the daemon's pid file"),
    Option("debug", BOOL, False, ("-D", "--debug"), "Debug mode", reloadable=True),
    Option("log-level", STR, "info", ("-l", "--log-level"), "The daemon's log level", validate=one_of(*LOG_LEVELS)),
    Option("raw-logs", BOOL, False, ("--raw-logs",), "Plain log output"),
    Option("labels", LIST, [], ("--label",), "Daemon labels (key=value)", reloadable=True, validate=labels),
    Option("experimental", BOOL, False, ("--experimental",), "Experimental features"),
    Option("features", OBJECT, {}, (), "Feature flags", reloadable=True),
    Option("api-cors-header", STR, "", ("--api-cors-header",), "Access-Control-Allow-Origin value"),
    Option("tls", BOOL, False, ("--tls",), "Use TLS; implied by tlsverify"),
    Option("tlsverify", BOOL, False, ("--tlsverify",), "Use TLS and verify the client"),
    Option("tlscacert", STR, "", ("--tlscacert",), "Trust certs signed only by this CA"),
    Option("tlscert", STR, "", ("--tlscert",), "TLS certificate file"),
    Option("tlskey", STR, "", ("--tlskey",), "TLS key file"),
    Option(
        "shutdown-timeout",
        INT,
        15,
        ("--shutdown-timeout",),
        "Seconds to wait for containers at shutdown",
        reloadable=True,
        validate=non_negative,
    ),
    Option(
        "max-concurrent-downloads", INT, 3, ("--max-concurrent-downloads",), "", reloadable=True, validate=non_negative
    ),
    Option("max-concurrent-uploads", INT, 5, ("--max-concurrent-uploads",), "", reloadable=True, validate=non_negative),
    Option("max-download-attempts", INT, 5, ("--max-download-attempts",), "", reloadable=True, validate=non_negative),
    Option("insecure-registries", LIST, [], ("--insecure-registry",), "", reloadable=True),
    Option("registry-mirrors", LIST, [], ("--registry-mirror",), "", reloadable=True),
    Option("authorization-plugins", LIST, [], ("--authorization-plugin",), "", reloadable=True),
    # storage
    Option("storage-driver", STR, "", ("-s", "--storage-driver"), "Storage driver to use"),
    Option("storage-opts", LIST, [], ("--storage-opt",), "Storage driver options"),
    # logging
    Option("log-driver", STR, "json-file", ("--log-driver",), "Default log driver for containers"),
    Option("log-opts", MAP, {}, ("--log-opt",), "Default log driver options", flag_value=key_value_flag),
    # runtime and container defaults
    Option(
        "runtimes",
        OBJECT,
        {},
        ("--add-runtime",),
        "Extra OCI runtimes",
        reloadable=True,
        validate=runtimes,
        flag_value=runtime_flag,
    ),
    Option("default-runtime", STR, "runc", ("--default-runtime",), "Default OCI runtime", reloadable=True),
    Option("exec-opts", LIST, [], ("--exec-opt",), "Runtime execution options"),
    Option("cgroup-parent", STR, "", ("--cgroup-parent",), "Parent cgroup for containers"),
    Option(
        "live-restore",
        BOOL,
        False,
        ("--live-restore",),
        "Keep containers alive while the daemon is down",
        reloadable=True,
    ),
    Option(
        "default-shm-size",
        STR,
        "64M",
        ("--default-shm-size",),
        "Default /dev/shm size",
        reloadable=True,
        validate=size_string,
    ),
    Option("default-ulimits", OBJECT, {}, ("--default-ulimit",), "Default ulimits", flag_value=ulimit_flag),
    Option(
        "default-ipc-mode",
        STR,
        "private",
        ("--default-ipc-mode",),
        "",
        reloadable=True,
        validate=one_of("private", "shareable"),
    ),
    Option(
        "default-cgroupns-mode",
        STR,
        "host",
        ("--default-cgroupns-mode",),
        "",
        reloadable=True,
        validate=one_of("host", "private"),
    ),
    Option("init", BOOL, False, ("--init",), "Run an init inside containers"),
    Option("init-path", STR, "", ("--init-path",), "Path to the init binary"),
    Option("no-new-privileges", BOOL, False, ("--no-new-privileges",), "Default no_new_privs for containers"),
    Option("seccomp-profile", STR, "", ("--seccomp-profile",), "Path to a seccomp profile, or unconfined"),
    Option("selinux-enabled", BOOL, False, ("--selinux-enabled",), "SELinux support (not available)"),
    Option("userns-remap", STR, "", ("--userns-remap",), "User namespace remapping user[:group]"),
    Option("oom-score-adjust", INT, -500, ("--oom-score-adjust",), "The daemon's oom_score_adj"),
    Option("cpu-rt-period", INT, 0, ("--cpu-rt-period",), ""),
    Option("cpu-rt-runtime", INT, 0, ("--cpu-rt-runtime",), ""),
    # network: the keys every driver shares (the bridge plugin declares its own)
    Option("dns", LIST, [], ("--dns",), "DNS servers for containers", validate=ip_list),
    Option("dns-opts", LIST, [], ("--dns-opt",), "DNS options for containers"),
    Option("dns-search", LIST, [], ("--dns-search",), "DNS search domains for containers"),
    Option("host-gateway-ip", STR, "", ("--host-gateway-ip",), "IP for host-gateway in --add-host"),
]

#: Flags that are not configuration keys.
_META_FLAGS = ("--config-file", "--validate", "-v", "--version")


def core_schema() -> ConfigSchema:
    return ConfigSchema(_CORE_OPTIONS)


# ---- the result -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonConfig:
    """The effective configuration: every declared key, defaults filled in. Read-only."""

    values: Mapping[str, Any]
    config_file: Path | None = None
    from_flags: frozenset[str] = field(default_factory=frozenset)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def data_root(self) -> Path:
        return Path(self.values["data-root"])

    @property
    def exec_root(self) -> Path:
        return Path(self.values["exec-root"])

    def storage_options(self) -> dict[str, str]:
        """``storage-opts`` as a dict, keys as written (``overlay2.size``)."""
        opts = {}
        for item in self.values.get("storage-opts", []):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"storage-opts: {item!r} must be key=value")
            opts[key.strip().lower()] = value.strip()
        return opts

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items()}


# ---- loading ----------------------------------------------------------------------------------------


def _bool_flag(value: str) -> bool:
    if value.lower() in ("1", "true", "t", "yes"):
        return True
    if value.lower() in ("0", "false", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def build_arg_parser(schema: ConfigSchema) -> argparse.ArgumentParser:
    """dockerd's command line for every key in ``schema`` that has flags."""
    parser = argparse.ArgumentParser(
        prog="engined", description="engine: a Docker-compatible container daemon", allow_abbrev=False
    )
    parser.add_argument(
        "--config-file", default=None, help=f"daemon configuration file (default {DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument("--validate", action="store_true", help="validate the configuration and exit")
    parser.add_argument("-v", "--version", action="store_true", help="print version information and exit")
    for option in schema.options():
        if not option.flags:
            continue
        kwargs: dict[str, Any] = {"dest": option.key, "default": argparse.SUPPRESS, "help": option.help}
        if option.type == BOOL:
            # dockerd bool flags: --debug, --debug=true, --debug=false
            kwargs.update(nargs="?", const=True, type=_bool_flag, metavar="BOOL")
        elif option.type == INT:
            kwargs.update(type=int)
        elif option.type in (LIST, MAP, OBJECT):
            kwargs.update(action="append")
        parser.add_argument(*option.flags, **kwargs)
    return parser


def _type_check(option: Option, value: Any) -> Any:
    """Check a value's JSON type the way Go's json.Unmarshal into dockerd's struct would."""
    expected = {STR: str, BOOL: bool, INT: int, LIST: list, MAP: dict, OBJECT: (dict, list)}.get(option.type)
    if expected is not None and (not isinstance(value, expected) or (option.type == INT and isinstance(value, bool))):
        raise ConfigError(f"invalid value for {option.key!r}: expected {option.type}, got {json.dumps(value)}")
    if option.type == LIST and not all(isinstance(v, (str, dict)) for v in value):
        raise ConfigError(f"invalid value for {option.key!r}: expected a list of strings")
    if option.type == MAP and not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"invalid value for {option.key!r}: expected string values")
    return value


def _flag_values(option: Option, raw: Any) -> Any:
    """Turn argparse's value for a repeatable flag into the key's value."""
    if option.type == LIST:
        if option.flag_value:
            return [option.flag_value(v) for v in raw]
        return list(raw)
    if option.type in (MAP, OBJECT):
        merged: dict[str, Any] = {}
        items: list[Any] = []
        for arg in raw:
            element = option.flag_value(arg) if option.flag_value else key_value_flag(arg)
            if isinstance(element, dict) and option.key != "default-address-pools":
                merged.update(element)
            else:
                items.append(element)
        return items if items else merged
    return raw


def read_config_file(path: Path, required: bool) -> dict[str, Any]:
    """Read daemon.json; a missing default file is an empty config, a missing named file an error."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"unable to configure the daemon with file {path}: open {path}: no such file or directory"
            ) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"unable to configure the daemon with file {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"unable to configure the daemon with file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"unable to configure the daemon with file {path}: the top level must be a JSON object")
    return data


#: keys dockerd skips in its unknown-key check (their contents are free-form)
_UNCHECKED_KEYS = ("features", "builder", "deprecated-key-path")


def merge(
    schema: ConfigSchema,
    file_values: Mapping[str, Any],
    flag_values: Mapping[str, Any],
    config_file: Path | None = None,
) -> DaemonConfig:
    """Validate and merge the file and the flags (disjoint, as dockerd requires) over the defaults.

    :raises ConfigError: unknown keys, keys in both places, or invalid values; the message names them.
    """
    where = f" with file {config_file}" if config_file else ""
    unknown = sorted(k for k in file_values if k not in schema and k not in _UNCHECKED_KEYS)
    if unknown:
        raise ConfigError(
            f"unable to configure the daemon{where}: the following directives don't match "
            f"any configuration option: {', '.join(unknown)}"
        )
    conflicts = [
        f"{k}: (from flag: {_show(flag_values[k])}, from file: {_show(file_values[k])})"
        for k in sorted(flag_values)
        if k in file_values and k != "runtimes"
    ]
    if conflicts:
        raise ConfigError(
            f"unable to configure the daemon{where}: the following directives are specified "
            f"both as a flag and in the configuration file: {', '.join(conflicts)}"
        )
    values = schema.defaults()
    for source in (file_values, flag_values):
        for key, value in source.items():
            if key not in schema:
                values[key] = value
                continue
            option = schema[key]
            _type_check(option, value)
            if key == "runtimes" and key in values:
                value = {**values[key], **value}
            if option.validate is not None:
                try:
                    value = option.validate(value)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"invalid value for {key!r}: {exc}") from None
            values[key] = value
    _cross_checks(values)
    return DaemonConfig(MappingProxyType(values), config_file, frozenset(flag_values))


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, (dict, bool)) else str(value)


def _cross_checks(values: Mapping[str, Any]) -> None:
    """dockerd's verifyDaemonSettings checks that span keys."""
    if values.get("tlsverify") and not (values.get("tlscacert") and values.get("tlscert") and values.get("tlskey")):
        for key in ("tlscacert", "tlscert", "tlskey"):
            if not values.get(key):
                raise ConfigError(f"tlsverify needs {key!r}")
    default_runtime = values.get("default-runtime", "runc")
    if default_runtime != "runc" and default_runtime not in values.get("runtimes", {}):
        raise ConfigError(
            f"invalid value for 'default-runtime': runtime {default_runtime!r} is not configured (see 'runtimes')"
        )
    if values.get("bridge") and values.get("bip"):
        raise ConfigError("You specified -b & --bip, mutually exclusive options. Please specify only one")
    if values.get("icc") is False and values.get("iptables") is False:
        raise ConfigError(
            "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. "
            "Please set --icc or --iptables to true"
        )


@dataclass(frozen=True)
class CommandLine:
    config_file: Path
    config_file_given: bool
    validate_only: bool
    version: bool
    flag_values: Mapping[str, Any]


def parse_command_line(schema: ConfigSchema, argv: list[str]) -> CommandLine:
    parser = build_arg_parser(schema)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own message
        raise ConfigError("invalid command line") from exc
    raw = vars(ns)
    flag_values: dict[str, Any] = {}
    for option in schema.options():
        if option.key in raw:
            try:
                flag_values[option.key] = _flag_values(option, raw[option.key])
            except ValueError as exc:
                raise ConfigError(f"invalid value for flag of {option.key!r}: {exc}") from None
    given = raw["config_file"] is not None
    return CommandLine(
        config_file=Path(raw["config_file"]) if given else DEFAULT_CONFIG_FILE,
        config_file_given=given,
        validate_only=raw["validate"],
        version=raw["version"],
        flag_values=flag_values,
    )


def load(schema: ConfigSchema, cmdline: CommandLine) -> DaemonConfig:
    """Read the file named on the command line (or the default) and merge it with the flags."""
    file_values = read_config_file(cmdline.config_file, required=cmdline.config_file_given)
    return merge(schema, file_values, cmdline.flag_values, cmdline.config_file)


def reload(schema: ConfigSchema, current: DaemonConfig) -> tuple[DaemonConfig, dict[str, Any]]:
    """Re-read the file for SIGHUP. Only reloadable keys change; the others keep their running value.

    :returns: the new config and the reloadable keys whose value changed.
    :raises ConfigError: the file is invalid; the caller keeps ``current``.
    """
    path = current.config_file or DEFAULT_CONFIG_FILE
    file_values = read_config_file(path, required=False)
    flags = {k: current[k] for k in current.from_flags}
    fresh = merge(schema, file_values, flags, path)
    values = dict(current.values)
    changed: dict[str, Any] = {}
    for option in schema.options():
        if option.reloadable and fresh[option.key] != current.get(option.key):
            values[option.key] = fresh[option.key]
            changed[option.key] = fresh[option.key]
    return DaemonConfig(MappingProxyType(values), path, current.from_flags), changed
