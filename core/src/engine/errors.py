"""Errors with their Docker API meaning.

Subsystems raise these; the API middleware turns them into Docker's error form
(``{"message": ...}`` with the matching HTTP status). Nothing below the API layer
knows about HTTP beyond the ``status`` class attribute.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class; ``status`` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(EngineError):
    status = 400


class Unauthorized(EngineError):
    status = 401


class Forbidden(EngineError):
    status = 403


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class NotModified(EngineError):
    """Docker answers 304 with an empty body (container already started/stopped)."""

    status = 304


class NotImplementedByEngine(EngineError):
    status = 501


class Unavailable(EngineError):
    status = 503


class SystemError(EngineError):
    status = 500


def os_error_message(exc: OSError) -> str:
    """An OSError in Go's os.PathError words: ``<path>: no space left on device`` (no ``[Errno 28]``)."""
    reason = (exc.strerror or str(exc)).lower()
    path = exc.filename2 or exc.filename
    return f"{path}: {reason}" if path else reason


# -- driver loading ---------------------------------------------------------------------------------


class DriverError(EngineError):
    """A driver could not be loaded or initialised."""


class DriverNotInstalled(DriverError):
    """No installed distribution provides the driver name."""

    def __init__(self, kind: str, name: str, distribution: str | None, available: list[str], hint: str = "") -> None:
        """``hint`` says how to get ``distribution`` (engine.shipped.install_hint: the registry knows)."""
        hint = f"; {hint}" if hint else ""
        have = ", ".join(sorted(available)) or "none"
        super().__init__(f"{kind} driver {name!r} is not installed{hint} (installed: {have})")
        self.kind, self.name, self.distribution = kind, name, distribution


class DriverRemoved(DriverError):
    """The driver name exists in Docker but is deprecated/removed and must be named explicitly."""


class DriverNotSupported(DriverError):
    """The driver cannot run on this host (moby's graphdriver.ErrNotSupported)."""


class PrerequisitesNotMet(DriverNotSupported):
    """A kernel feature, module or tool the driver needs is missing."""


class IncompatibleFS(DriverNotSupported):
    """The backing filesystem of the driver's home cannot host this driver."""


class DriverAPIMismatch(DriverError):
    """A driver was written against another DRIVER_API_VERSION."""


class ConfigError(EngineError):
    """daemon.json or the command line is invalid; start-up stops with this message."""
