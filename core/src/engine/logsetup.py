"""engined's own log output: dockerd's logfmt lines on stderr, and the level (set at start and on reload)."""

from __future__ import annotations

import logging
import sys


class _LogfmtFormatter(logging.Formatter):
    """dockerd's text log format: time="..." level=info msg="..."."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', '\\"')
        if record.exc_info:
            msg += "\\n" + self.formatException(record.exc_info).replace("\n", "\\n")
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        return f'time="{self.formatTime(record, "%Y-%m-%dT%H:%M:%S")}" level={level} msg="{msg}"'


#: logrus level names -> logging levels
LOG_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_log_level(level)
    # aiohttp's access log is noise at info level
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def set_log_level(level: str) -> None:
    logging.getLogger().setLevel(LOG_LEVELS.get(level.lower(), logging.INFO))
