"""Core's daemon.json keys, with dockerd 20.10's flags, defaults, checks and messages.

Each key keeps dockerd's meaning (moby daemon/config, cmd/dockerd/config*.go). Keys engine
accepts so that a dockerd daemon.json stays valid, but does not act on, are ``supported=False``
(a warning at start-up). The bridge driver's keys (``bip``, ``iptables``, ``mtu``...) are declared
by the bridge plugin through ``engine_add_config``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine import hosts, rootless
from engine.config_schema import BOOL, INT, LIST, MAP, OBJECT, STR, ConfigSchema, Option, type_error
from engine.drivers.cluster import parse_cluster
from engine.drivers.strconv import parse_int
from engine.drivers.units import parse_size
from engine.rootless import ROOTLESSKIT

# ---- value checks (the messages are dockerd's) -------------------------------------------------------


def validate_ip(value: str) -> str:
    """opts.ValidateIPAddress: returns the canonical form."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value} is not an ip address") from None


_DOMAIN_RE = re.compile(
    r"^(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$"
)


def validate_dns_search(value: str) -> str:
    value = value.strip(" ")
    if value == ".":
        return value
    match = _DOMAIN_RE.match(value) if re.search(r"[a-zA-Z]", value) else None
    if match is None or len(match.group(1)) >= 255:
        raise ValueError(f"{value} is not a valid domain")
    return match.group(1)


_RESERVED_LABEL_PREFIXES = ("com.docker.", "io.docker.", "org.dockerproject.")


def validate_label(value: str) -> str:
    if "=" not in value:
        raise ValueError(f"bad attribute format: {value}")
    if value.lower().startswith(_RESERVED_LABEL_PREFIXES):
        raise ValueError(
            f"label {value} is not allowed: the namespaces com.docker.*, io.docker.*, and "
            "org.dockerproject.* are reserved for internal use"
        )
    return value


def validate_index_name(value: str) -> str:
    if value == "index.docker.io":
        value = "docker.io"
    if value.startswith("-") or value.endswith("-"):
        raise ValueError(f"invalid index name ({value}). Cannot begin or end with a hyphen")
    return value


def validate_mirror(value: str) -> str:
    try:
        uri = urlsplit(value)
    except ValueError:
        raise ValueError(f'invalid mirror: "{value}" is not a valid URI') from None
    if uri.scheme not in ("http", "https"):
        raise ValueError(f'invalid mirror: unsupported scheme "{uri.scheme}" in "{value}"')
    if uri.path not in ("", "/") or uri.query or uri.fragment:
        raise ValueError(f'invalid mirror: path, query, or fragment at end of the URI "{value}"')
    if uri.username is not None:
        raise ValueError(f'invalid mirror: username/password not allowed in URI "{value}"')
    return value.rstrip("/") + "/"


def validate_generic_resource(value: str) -> str:
    if "=" not in value:
        raise ValueError(f"invalid node-generic-resource format `{value}` expected `name=value`")
    return value


def each(check: Any) -> Any:
    """A list validator from an item validator."""

    def validate(values: list[str]) -> list[str]:
        return [check(v) for v in values]

    return validate


def at_least(minimum: int, what: str) -> Any:
    def validate(value: int) -> int:
        if value < minimum:
            raise ValueError(f"invalid {what}: {value}")
        return value

    return validate


#: logrus level names (ParseLevel is case-insensitive)
#: daemon.json ``log-format``: engine.daemonlog writes logrus text or JSON lines
LOG_FORMATS = ("text", "json")


def validate_log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"unknown log format: {value}")
    return value


LOG_LEVELS = ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace")


def ipc_mode(value: str) -> str:
    hint = 'use "shareable" or "private"'
    valid = value in ("", "none", "private", "shareable", "host") or value.startswith("container:")
    if not valid:
        raise ValueError(f"default IPC mode setting ({value}) is invalid; {hint}")
    if value not in ("", "private", "shareable"):
        raise ValueError(f'IPC mode "{value}" is not supported as default value; {hint}')
    return value


def cgroupns_mode(value: str) -> str:
    if value not in ("", "host", "private"):
        raise ValueError(f'default cgroup namespace mode ({value}) is invalid; use "host" or "private"')
    return value


STOCK_RUNTIME = "runc"
BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


def runtimes_reserved(value: dict[str, Any]) -> dict[str, Any]:
    if STOCK_RUNTIME in value:
        raise ValueError(f"runtime name '{STOCK_RUNTIME}' is reserved")
    return value


def split_listen_address(addr: str) -> tuple[str, int]:
    """``host:port`` as Go's net.Listen takes it (``:9323`` is every interface, ``[::1]:9323`` IPv6).

    :raises ValueError: with Go's wording.
    """
    if addr.startswith("["):
        host, sep, port = addr[1:].partition("]:")
    else:
        host, sep, port = addr.rpartition(":")
        if sep and ":" in host:
            raise ValueError(f"listen tcp: address {addr}: too many colons in address")
    if not sep:
        raise ValueError(f"listen tcp: address {addr}: missing port in address")
    if not port.isdigit():  # Go looks a non-numeric port up as a service name (none here)
        raise ValueError(f"listen tcp: address tcp/{port}: unknown port")
    if int(port) > 65535:
        raise ValueError(f"listen tcp: address {port}: invalid port")
    return host, int(port)


def validate_metrics_addr(value: str) -> str:
    if value:
        split_listen_address(value)
    return value


def decode_shm_size(raw: Any) -> int:
    """opts.MemBytes.UnmarshalJSON: only a quoted size is accepted."""
    if not isinstance(raw, str):
        import json

        raise ValueError(f'invalid size: "{json.dumps(raw)}"')
    return parse_size(raw)


# ---- repeatable flags: one argument at a time -----------------------------------------------------


def append_item(check: Any = None) -> Any:
    def apply(current: list[str], arg: str) -> list[str]:
        return [*current, check(arg) if check else arg]

    return apply


def map_item(current: dict[str, str], arg: str) -> dict[str, str]:
    """MapOpts.Set: ``k=v``, or ``k`` for an empty value."""
    key, _, value = arg.partition("=")
    return {**current, key: value}


def runtime_item(current: dict[str, Any], arg: str) -> dict[str, Any]:
    name, sep, path = arg.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise ValueError(f"invalid runtime argument: {arg}")
    name = name.lower()
    if name == STOCK_RUNTIME:
        raise ValueError(f"runtime name '{STOCK_RUNTIME}' is reserved")
    if name in current:
        raise ValueError(f"runtime '{name}' was already defined")
    return {**current, name: {"path": path}}


ULIMIT_NAMES = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)


def parse_ulimit(arg: str) -> dict[str, Any]:
    """go-units ParseUlimit: ``name=soft[:hard]``."""
    name, sep, limits = arg.partition("=")
    if not sep:
        raise ValueError(f"invalid ulimit argument: {arg}")
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`")
    hard_text = parts[1] if len(parts) == 2 else parts[0]
    soft, hard = parse_int(parts[0], 10), parse_int(hard_text, 10)
    if hard != -1 and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def ulimit_item(current: dict[str, Any], arg: str) -> dict[str, Any]:
    limit = parse_ulimit(arg)
    return {**current, limit["Name"]: limit}


def pool_item(current: list[dict[str, Any]], arg: str) -> list[dict[str, Any]]:
    """PoolsOpt.Set: ``base=10.10.0.0/16,size=24`` (CSV fields)."""
    pool: dict[str, Any] = {"base": "", "size": 0}
    for field in arg.split(","):
        key, sep, value = field.partition("=")
        if not sep:
            raise ValueError(f"invalid field '{field}' must be a key=value pair")
        key, value = key.lower(), value.lower()
        if key == "base":
            pool["base"] = value
        elif key == "size":
            try:
                pool["size"] = int(value)
            except ValueError:
                raise ValueError(
                    f'invalid size value: "{value}" (must be integer): strconv.Atoi: parsing "{value}": invalid syntax'
                ) from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    return [*current, pool]


def ip_flag(current: str, arg: str) -> str:
    """opts.IPOpt.Set."""
    try:
        return str(ipaddress.ip_address(arg))
    except ValueError:
        raise ValueError(f"{arg} is not an ip address") from None


def shm_flag(current: int, arg: str) -> int:
    return parse_size(arg)


# ---- custom JSON decoding -----------------------------------------------------------------------


def decode_runtimes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise type_error("runtimes", raw, "map[string]types.Runtime")
    out: dict[str, Any] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise type_error("runtimes", spec, "types.Runtime")
        path = spec.get("path", "")
        args = spec.get("runtimeArgs") or []
        if not isinstance(path, str):
            raise type_error("runtimes.path", path, "string")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise type_error("runtimes.runtimeArgs", args, "[]string")
        out[name] = {"path": path, **({"runtimeArgs": list(args)} if args else {})}
    return out


def decode_ulimits(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise type_error("default-ulimits", raw, "map[string]*units.Ulimit")
    out = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise type_error("default-ulimits", spec, "units.Ulimit")
        fields = {k.lower(): v for k, v in spec.items()}  # Go matches JSON keys case-insensitively
        limit = {"Name": fields.get("name", ""), "Hard": fields.get("hard", 0), "Soft": fields.get("soft", 0)}
        if not isinstance(limit["Name"], str):
            raise type_error("default-ulimits.Name", limit["Name"], "string")
        for k in ("Hard", "Soft"):
            if isinstance(limit[k], bool) or not isinstance(limit[k], int):
                raise type_error(f"default-ulimits.{k}", limit[k], "int64")
        out[name] = limit
    return out


def decode_features(raw: Any) -> dict[str, bool]:
    if not isinstance(raw, dict):
        raise type_error("features", raw, "map[string]bool")
    for value in raw.values():
        if not isinstance(value, bool):
            raise type_error("features", value, "bool")
    return dict(raw)


def decode_pools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ValueError(
            f"json: cannot unmarshal {type(raw).__name__} into Go value of type []*ipamutils.NetworkToSplit"
        )
    pools = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("json: cannot unmarshal into Go value of type ipamutils.NetworkToSplit")
        fields = {k.lower(): v for k, v in item.items()}
        base, size = fields.get("base", ""), fields.get("size", 0)
        if not isinstance(base, str) or isinstance(size, bool) or not isinstance(size, int):
            raise ValueError("json: cannot unmarshal into Go value of type ipamutils.NetworkToSplit")
        pools.append({"base": base, "size": size})
    return pools


def validate_pools(pools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for pool in pools:
        try:
            net = ipaddress.ip_network(pool["base"], strict=False)
        except ValueError:
            raise ValueError(f"invalid base pool {pool['base']!r}") from None
        if not net.prefixlen <= pool["size"] <= net.max_prefixlen:
            raise ValueError(f"invalid pools size: {pool['size']}")
    return pools


def decode_ip(key: str) -> Any:
    def decode(raw: Any) -> str:
        if not isinstance(raw, str):
            raise type_error(key, raw, "net.IP")
        if raw == "":
            return ""
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise ValueError(f"invalid IP address: {raw}") from None

    return decode


def _default_cgroupns_mode() -> str:
    return "private" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "host"


# ---- the core schema --------------------------------------------------------------------------------


def _core_options() -> list[Option]:
    opt = Option
    return [
        # daemon and API
        opt("hosts", LIST, [], ("--host", "-H"), "Daemon socket(s) to connect to", flag_value=append_item(hosts.validate_host)),
        # under RootlessKit: the per-user defaults (rootless mode, as dockerd's getDefaultPaths)
        opt("group", STR, "" if ROOTLESSKIT else "engine", ("--group", "-G"), "Group for the unix socket"),
        opt("data-root", STR, str(rootless.data_root()) if ROOTLESSKIT else "/var/lib/engine", ("--data-root",),
          "Root directory of persistent engine state"),
        opt("graph", STR, "", ("--graph", "-g"), "Root of the engine runtime (deprecated: use data-root)"),
        opt("exec-root", STR, str(rootless.exec_root()) if ROOTLESSKIT else "/run/engine", ("--exec-root",),
          "Root directory for execution state files"),
        opt("pidfile", STR, str(rootless.pidfile()) if ROOTLESSKIT else "/run/engine.pid", ("--pidfile", "-p"),
          "Path to use for daemon PID file"),
        opt("debug", BOOL, False, ("--debug", "-D"), "Enable debug mode", reloadable=True),
        opt("log-level", STR, "info", ("--log-level", "-l"), 'Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")'),
        opt("raw-logs", BOOL, False, ("--raw-logs",), "Full timestamps without ANSI coloring"),
        opt("log-format", STR, "text", ("--log-format",), 'Set the logging format ("text"|"json")',
          validate=validate_log_format),
        opt("labels", LIST, [], ("--label",), "Set key=value labels to the daemon", reloadable=True,
          validate=each(validate_label), flag_value=append_item(validate_label)),
        opt("experimental", BOOL, False, ("--experimental",), "Enable experimental features"),
        opt("features", OBJECT, {}, (), "Feature flags", reloadable=True, decode=decode_features, go_type="map[string]bool"),
        opt("builder", OBJECT, {}, (), "BuildKit garbage collection (BuildKit is not available)", supported=False),
        opt("api-cors-header", STR, "", ("--api-cors-header",), "Set CORS headers in the Engine API"),
        opt("tls", BOOL, None, ("--tls",), "Use TLS; implied by --tlsverify"),
        opt("tlsverify", BOOL, None, ("--tlsverify",), "Use TLS and verify the remote"),
        opt("tlscacert", STR, "", ("--tlscacert",), "Trust certs signed only by this CA"),
        opt("tlscert", STR, "", ("--tlscert",), "Path to TLS certificate file"),
        opt("tlskey", STR, "", ("--tlskey",), "Path to TLS key file"),
        opt("authorization-plugins", LIST, [], ("--authorization-plugin",), "Authorization plugins to load",
          reloadable=True, flag_value=append_item()),
        opt("shutdown-timeout", INT, 15, ("--shutdown-timeout",), "Set the default shutdown timeout", reloadable=True),
        opt("max-concurrent-downloads", INT, 3, ("--max-concurrent-downloads",),
          "Set the max concurrent downloads for each pull", reloadable=True,
          validate=at_least(0, "max concurrent downloads")),
        opt("max-concurrent-uploads", INT, 5, ("--max-concurrent-uploads",),
          "Set the max concurrent uploads for each push", reloadable=True,
          validate=at_least(0, "max concurrent uploads")),
        opt("max-download-attempts", INT, 5, ("--max-download-attempts",),
          "Set the max download attempts for each pull", reloadable=True,
          validate=at_least(1, "max download attempts")),
        opt("insecure-registries", LIST, [], ("--insecure-registry",), "Enable insecure registry communication",
          reloadable=True, validate=each(validate_index_name), flag_value=append_item(validate_index_name)),
        opt("registry-mirrors", LIST, [], ("--registry-mirror",), "Preferred Docker registry mirror",
          reloadable=True, validate=each(validate_mirror), flag_value=append_item(validate_mirror)),
        opt("allow-nondistributable-artifacts", LIST, [], ("--allow-nondistributable-artifacts",),
          "Allow push of nondistributable artifacts to registry", reloadable=True,
          validate=each(validate_index_name), flag_value=append_item(validate_index_name)),
        # storage
        opt("storage-driver", STR, "", ("--storage-driver", "-s"), "Storage driver to use"),
        opt("storage-opts", LIST, [], ("--storage-opt",), "Storage driver options", flag_value=append_item()),
        # logging
        opt("log-driver", STR, "json-file", ("--log-driver",), "Default driver for container logs"),
        opt("log-opts", MAP, {}, ("--log-opt",), "Default log driver options for containers", flag_value=map_item),
        # runtime and container defaults
        opt("runtimes", OBJECT, {}, ("--add-runtime",), "Register an additional OCI compatible runtime",
          reloadable=True, decode=decode_runtimes, validate=runtimes_reserved, flag_value=runtime_item,
          go_type="map[string]types.Runtime"),
        opt("default-runtime", STR, "runc", ("--default-runtime",), "Default OCI runtime for containers", reloadable=True),
        opt("exec-opts", LIST, [], ("--exec-opt",), "Runtime execution options", flag_value=append_item()),
        opt("cgroup-parent", STR, "", ("--cgroup-parent",), "Set parent cgroup for all containers"),
        opt("live-restore", BOOL, False, ("--live-restore",),
          "Enable live restore of engine when containers are still running", reloadable=True),
        opt("default-shm-size", INT, 64 << 20, ("--default-shm-size",), "Default shm size for containers",
          reloadable=True, decode=decode_shm_size, flag_value=shm_flag, go_type="opts.MemBytes"),
        opt("default-ulimits", OBJECT, {}, ("--default-ulimit",), "Default ulimits for containers",
          decode=decode_ulimits, flag_value=ulimit_item, go_type="map[string]*units.Ulimit"),
        opt("default-ipc-mode", STR, "private", ("--default-ipc-mode",),
          'Default mode for containers ipc ("shareable" | "private")', reloadable=True, validate=ipc_mode),
        opt("default-cgroupns-mode", STR, _default_cgroupns_mode(), ("--default-cgroupns-mode",),
          'Default mode for containers cgroup namespace ("host" | "private")', reloadable=True,
          validate=cgroupns_mode),
        opt("init", BOOL, False, ("--init",), "Run an init in the container to forward signals and reap processes"),
        opt("init-path", STR, "", ("--init-path",), "Path to the docker-init binary"),
        opt("oom-score-adjust", INT, 0, ("--oom-score-adjust",), "Set the oom_score_adj for the daemon"),
        opt("cpu-rt-period", INT, 0, ("--cpu-rt-period",),
          "Limit the CPU real-time period in microseconds for the parent cgroup for all containers", go_type="int64"),
        opt("cpu-rt-runtime", INT, 0, ("--cpu-rt-runtime",),
          "Limit the CPU real-time runtime in microseconds for the parent cgroup for all containers", go_type="int64"),
        # security (security plugins read these)
        opt("no-new-privileges", BOOL, False, ("--no-new-privileges",), "Set no-new-privileges by default for new containers"),
        opt("seccomp-profile", STR, "", ("--seccomp-profile",), "Path to seccomp profile"),
        opt("selinux-enabled", BOOL, False, ("--selinux-enabled",), "Enable selinux support", supported=False),
        opt("userns-remap", STR, "", ("--userns-remap",), "User/Group setting for user namespaces"),
        opt("rootless", BOOL, ROOTLESSKIT, ("--rootless",), "Enable rootless mode; typically used with RootlessKit"),
        # network: what every driver shares (the bridge plugin declares the bridge's own keys)
        opt("dns", LIST, [], ("--dns",), "DNS server to use", validate=each(validate_ip), flag_value=append_item(validate_ip)),
        opt("dns-opts", LIST, [], ("--dns-opt",), "DNS options to use", flag_value=append_item()),
        opt("dns-search", LIST, [], ("--dns-search",), "DNS search domains to use",
          validate=each(validate_dns_search), flag_value=append_item(validate_dns_search)),
        opt("host-gateway-ip", STR, "", ("--host-gateway-ip",),
          "IP address that the special 'host-gateway' string in --add-host resolves to", decode=decode_ip("host-gateway-ip"),
          flag_value=ip_flag, go_type="net.IP"),
        opt("default-address-pools", OBJECT, [], ("--default-address-pool",),
          "Default address pools for node specific local networks", decode=decode_pools, validate=validate_pools,
          flag_value=pool_item, go_type="opts.PoolsOpt"),
        # dockerd keys engine accepts but does not act on
        opt("metrics-addr", STR, "", ("--metrics-addr",), "Set default address and port to serve the metrics api on",
          validate=validate_metrics_addr),
        opt("network-diagnostic-port", INT, 0, ("--network-diagnostic-port",), "TCP port number of the network diagnostic server",
          supported=False),
        opt("network-control-plane-mtu", INT, 1500, ("--network-control-plane-mtu",), "Network Control plane MTU",
          supported=False),
        opt("swarm-default-advertise-addr", STR, "", ("--swarm-default-advertise-addr",),
          "Set default address or interface for swarm advertised address", supported=False),
        opt("node-generic-resources", LIST, [], ("--node-generic-resource",), "Advertise user-defined resource",
          validate=each(validate_generic_resource), flag_value=append_item(validate_generic_resource), supported=False),
        opt("containerd", STR, "", ("--containerd",), "containerd grpc address", supported=False),
        opt("containerd-namespace", STR, "moby", ("--containerd-namespace",), "Containerd namespace to use", supported=False),
        opt("containerd-plugins-namespace", STR, "plugins.moby", ("--containerd-plugins-namespace",),
          "Containerd namespace to use for plugins", supported=False),
        opt("cri-containerd", BOOL, False, ("--cri-containerd",), "start containerd with cri", supported=False),
        # the cluster store of global-scope networks (overlay): checked together by _check_cluster,
        # read by drivers through engine.drivers.cluster.parse_cluster
        opt("cluster-store", STR, "", ("--cluster-store",), "URL of the distributed storage backend: etcd://host:port[,host:port][/path] (overlay networks)"),
        opt("cluster-store-opts", MAP, {}, ("--cluster-store-opt",), "Set cluster store options: kv.cacertfile, kv.certfile, kv.keyfile (TLS to etcd)",
          flag_value=map_item),
        opt("cluster-advertise", STR, "", ("--cluster-advertise",), "Address or interface name to advertise, with a port: <ip|interface>:<port>"),
    ]  # fmt: skip


def _check_default_runtime(values: dict[str, Any]) -> None:
    name = values.get("default-runtime") or ""
    if name and name not in BUILTIN_RUNTIMES and name not in (values.get("runtimes") or {}):
        raise ValueError(f"specified default runtime '{name}' does not exist")


def _check_cluster(values: dict[str, Any]) -> None:
    parse_cluster(values)


def core_schema() -> ConfigSchema:
    schema = ConfigSchema(_core_options())
    schema.add_check(_check_default_runtime)
    schema.add_check(_check_cluster)
    return schema
