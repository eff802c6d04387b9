"""Container logging: the copier, the rotating log file, dual logging, and ``docker logs`` reading.

Entry points for other subsystems are in :mod:`engine.logs.container_logs` and re-exported here.
"""

from engine.logs.container_logs import (
    ContainerLogger,
    LogSource,
    create_driver,
    make_log_info,
    open_driver,
    open_reader,
    read_batches,
    start_logging,
    validate_log_config,
)
from engine.logs.copier import Copier

__all__ = [
    "ContainerLogger",
    "Copier",
    "LogSource",
    "create_driver",
    "make_log_info",
    "open_driver",
    "open_reader",
    "read_batches",
    "start_logging",
    "validate_log_config",
]
