"""``engined``: parse dockerd's flags and daemon.json, then run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from engine import DOCKER_VERSION, __version__, daemonlog
from engine.config import ConfigSchema, DaemonConfig, core_schema, load, parse_command_line
from engine.config_cmdline import usage
from engine.errors import ConfigError, DriverError, EngineError
from engine.hooks import Hooks
from engine.lazy_packages import defer_heavy_packages
from engine.plugins import make_plugin_manager
from engine.rootlock import lock_roots
from engine.sdnotify import Notifier

if TYPE_CHECKING:
    from engine.daemon import Daemon
    from engine.metrics import MetricsServer

log = logging.getLogger("engined")


#: threads for the API's blocking work (asyncio's default is cpus + 4)
API_THREADS = 64


def build_schema(pm: pluggy.PluginManager) -> ConfigSchema:
    schema = core_schema()
    Hooks(pm).add_config(schema)
    return schema


def check_drivers_installed(config: DaemonConfig) -> None:
    """Named drivers must be installed: catch it before anything starts, naming the distribution."""
    from engine import registry

    if config["storage-driver"]:
        registry.DriverRegistry(registry.STORAGE).load(config["storage-driver"])
    log_cls = registry.DriverRegistry(registry.LOG).load(config["log-driver"])
    log_cls.validate_options(dict(config["log-opts"]))


def _check_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    if pid != os.getpid() and Path(f"/proc/{pid}").exists():
        raise ConfigError(f"pid file found, ensure engined is not running or delete {path}")


def fail(message: str) -> int:
    """dockerd prints a start-up error as is on stderr and exits 1."""
    print(message, file=sys.stderr, flush=True)
    return 1


def _metrics_server(daemon: Daemon) -> MetricsServer | None:
    """engine.metrics' server when ``metrics-addr`` is set (prometheus_client is imported only then)."""
    if not daemon.config["metrics-addr"]:
        return None
    from engine.metrics import MetricsServer

    return MetricsServer(daemon)


async def _run(config: DaemonConfig, pm: pluggy.PluginManager, schema: ConfigSchema) -> int:
    from engine.daemon import Daemon

    daemon = Daemon(config, pm, schema)
    loop = asyncio.get_running_loop()
    # the API runs blocking work (runtime calls, disk, waits on a container's lock) in threads;
    # asyncio's default of cpus + 4 threads lets a handful of slow requests starve the rest
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(API_THREADS, thread_name_prefix="engine"))
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    systemd = Notifier()  # sd_notify: a no-op unless started by systemd with Type=notify
    loop.add_signal_handler(signal.SIGHUP, systemd.around_reload, daemon.reload)
    metrics = _metrics_server(daemon)
    try:
        if metrics is not None:
            await metrics.start()  # first, as dockerd: the API's first requests are measured too
        await daemon.start()
    except (EngineError, OSError) as exc:
        await daemon.stop()
        if metrics is not None:
            await metrics.stop()
        return fail(getattr(exc, "message", None) or f"failed to start daemon: {exc}")
    if metrics is not None:
        metrics.daemon_started()
    systemd.ready()
    systemd.start_watchdog(loop)
    await stopping.wait()
    log.info("Processing signal 'terminated'")
    systemd.stopping()
    await daemon.stop()
    if metrics is not None:
        await metrics.stop()
    log.info("Daemon shutdown complete")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    defer_heavy_packages()  # before anything imports aiohttp or pyroute2
    daemonlog.setup("info")
    try:
        pm = make_plugin_manager()
        schema = build_schema(pm)
    except pluggy.PluginValidationError as exc:
        return fail(f"failed to load plugins: {exc}")
    except EngineError as exc:
        return fail(exc.message)
    try:
        cmdline = parse_command_line(schema, argv)
    except ConfigError as exc:
        return fail(exc.message)
    if cmdline.help:
        print(usage(schema), end="")
        return 0
    if cmdline.version:
        print(f"Docker version {DOCKER_VERSION}, build engine-{__version__}")
        return 0
    try:
        config = load(schema, cmdline)
    except ConfigError as exc:
        return fail(exc.message)
    for key in config.unsupported_keys(schema):
        log.warning("the %s option is accepted for compatibility but engine does not implement it", key)
    try:
        check_drivers_installed(config)
    except DriverError as exc:
        return fail(f"failed to start daemon: {exc.message}")
    try:
        from engine.api.server import tls_context  # without importing aiohttp

        tls_context(config)
    except ConfigError as exc:
        return fail(f"failed to create API server: {exc.message}")
    if cmdline.validate_only:
        # as dockerd 23's --validate (20.10 has none): on stderr, exit 0
        print("configuration OK", file=sys.stderr)
        return 0
    daemonlog.setup("debug" if config["debug"] else config["log-level"], config["log-format"], raw=config["raw-logs"])
    if os.geteuid() != 0:
        return fail("engined needs to be started with root privileges")
    try:  # before the pidfile: a second daemon on the same roots names the first one's pid
        root_locks = lock_roots(config.data_root, config.exec_root)
    except ConfigError as exc:
        return fail(f"failed to start daemon: {exc.message}")
    pidfile = Path(config["pidfile"])
    try:
        _check_pidfile(pidfile)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(str(os.getpid()))
    except ConfigError as exc:
        return fail(f"failed to start daemon: {exc.message}")
    except OSError as exc:
        return fail(f"failed to start daemon: {exc}")
    try:
        return asyncio.run(_run(config, pm, schema))
    finally:
        root_locks.release()
        try:
            if pidfile.read_text().strip() == str(os.getpid()):
                pidfile.unlink()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
