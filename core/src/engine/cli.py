"""``engined``: parse dockerd's flags and daemon.json, then run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pluggy

from engine import DOCKER_VERSION, __version__
from engine.config import ConfigSchema, DaemonConfig, core_schema, load, parse_command_line
from engine.errors import ConfigError, DriverError, EngineError
from engine.plugins import make_plugin_manager

log = logging.getLogger("engined")


class _LogfmtFormatter(logging.Formatter):
    """dockerd's text log format: time="..." level=info msg="..."."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', '\\"')
        if record.exc_info:
            msg += "\\n" + self.formatException(record.exc_info).replace("\n", "\\n")
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        return f'time="{self.formatTime(record, "%Y-%m-%dT%H:%M:%S")}" level={level} msg="{msg}"'


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        {
            "debug": logging.DEBUG,
            "info": logging.INFO,
            "warn": logging.WARNING,
            "error": logging.ERROR,
            "fatal": logging.CRITICAL,
        }[level]
    )
    # aiohttp's access log is noise at info level
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def build_schema(pm: pluggy.PluginManager) -> ConfigSchema:
    schema = core_schema()
    pm.hook.engine_add_config.call_historic(kwargs={"schema": schema})
    return schema


def check_drivers_installed(config: DaemonConfig) -> None:
    """Named drivers must be installed: catch it at start-up, naming the distribution."""
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


async def _run(config: DaemonConfig, pm: pluggy.PluginManager, schema: ConfigSchema) -> int:
    from engine.daemon import Daemon

    daemon = Daemon(config, pm, schema)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    try:
        await daemon.start()
    except (EngineError, OSError) as exc:
        log.critical("failed to start daemon: %s", getattr(exc, "message", exc))
        await daemon.stop()
        return 1
    await stopping.wait()
    log.info("processing signal, shutting down")
    await daemon.stop()
    log.info("daemon shut down")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging("info")
    try:
        pm = make_plugin_manager()
        schema = build_schema(pm)
        cmdline = parse_command_line(schema, argv)
        if cmdline.version:
            print(f"engine version {__version__} (Docker API compatible with {DOCKER_VERSION})")
            return 0
        config = load(schema, cmdline)
        check_drivers_installed(config)
    except (EngineError, pluggy.PluginValidationError) as exc:
        message = getattr(exc, "message", str(exc))
        if argv and "--validate" in argv:
            print(message, file=sys.stderr)
        else:
            log.critical("%s", message)
        return 1
    if cmdline.validate_only:
        print("configuration OK")
        return 0
    setup_logging("debug" if config["debug"] else config["log-level"])
    if os.geteuid() != 0:
        log.critical("engined needs to be started with root privileges")
        return 1
    pidfile = Path(config["pidfile"])
    try:
        _check_pidfile(pidfile)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(str(os.getpid()))
    except (ConfigError, OSError) as exc:
        log.critical("%s", getattr(exc, "message", exc))
        return 1
    try:
        return asyncio.run(_run(config, pm, schema))
    except DriverError as exc:
        log.critical("%s", exc.message)
        return 1
    finally:
        try:
            if pidfile.read_text().strip() == str(os.getpid()):
                pidfile.unlink()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
