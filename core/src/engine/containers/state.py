"""A container's run state (moby's container.State) and the waiters of ``POST /containers/{id}/wait``.

Transitions happen under the container's lock; waiters are ``concurrent.futures.Future`` objects
so threads and the event loop (``asyncio.wrap_future``) can both wait on them.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any

from engine.containers.timefmt import human_duration, now_ns, parse_rfc3339, rfc3339nano

#: the ``condition`` values of the wait endpoint
NOT_RUNNING, NEXT_EXIT, REMOVED = "not-running", "next-exit", "removed"
WAIT_CONDITIONS = (NOT_RUNNING, NEXT_EXIT, REMOVED)

HEALTH_STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK = "starting", "healthy", "unhealthy", "none"
HEALTH_LOG_MAX = 5  # dockerd keeps the last five probe results


@dataclass
class WaitResult:
    exit_code: int
    error: str = ""


@dataclass
class Health:
    status: str = HEALTH_STARTING
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": list(self.log)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Health | None:
        if not data:
            return None
        return cls(data.get("Status", HEALTH_STARTING), data.get("FailingStreak", 0), list(data.get("Log") or []))

    def add_result(self, result: dict[str, Any]) -> None:
        self.log.append(result)
        del self.log[:-HEALTH_LOG_MAX]


@dataclass
class State:
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    removal_in_progress: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: int = 0  # ns since the epoch; 0 is Go's zero time
    finished_at: int = 0
    health: Health | None = None
    _stop_waiters: list[concurrent.futures.Future[WaitResult]] = field(default_factory=list, repr=False)
    _remove_waiters: list[concurrent.futures.Future[WaitResult]] = field(default_factory=list, repr=False)
    _waiters_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- what ps and inspect show ---------------------------------------------------------------------

    def status(self) -> str:
        """``State.Status``: created, running, paused, restarting, removing, exited or dead."""
        if self.running:
            if self.paused:
                return "paused"
            if self.restarting:
                return "restarting"
            return "running"
        if self.removal_in_progress:
            return "removing"
        if self.dead:
            return "dead"
        if self.started_at == 0:
            return "created"
        return "exited"

    def human(self, now: int | None = None) -> str:
        """ps's Status column: "Up 3 seconds (healthy)", "Exited (3) 2 minutes ago", "Created"..."""
        now = now or now_ns()
        if self.running:
            if self.paused:
                return f"Up {human_duration((now - self.started_at) / 1e9)} (Paused)"
            if self.restarting:
                return f"Restarting ({self.exit_code}) {human_duration((now - self.finished_at) / 1e9)} ago"
            health = ""
            if self.health is not None:
                health = {
                    HEALTH_STARTING: " (health: starting)",
                    HEALTHY: " (healthy)",
                    UNHEALTHY: " (unhealthy)",
                }.get(self.health.status, "")
            return f"Up {human_duration((now - self.started_at) / 1e9)}{health}"
        if self.removal_in_progress:
            return "Removal In Progress"
        if self.dead:
            return "Dead"
        if self.started_at == 0:
            return "Created"
        if self.finished_at == 0:
            return ""
        return f"Exited ({self.exit_code}) {human_duration((now - self.finished_at) / 1e9)} ago"

    def to_inspect(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "Status": self.status(),
            "Running": self.running,
            "Paused": self.paused,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "Dead": self.dead,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339nano(self.started_at),
            "FinishedAt": rfc3339nano(self.finished_at),
        }
        if self.health is not None:
            data["Health"] = self.health.to_json()
        return data

    # -- on disk (config.v2.json "State") -------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "Running": self.running,
            "Paused": self.paused,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "RemovalInProgress": self.removal_in_progress,
            "Dead": self.dead,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339nano(self.started_at),
            "FinishedAt": rfc3339nano(self.finished_at),
            "Health": self.health.to_json() if self.health else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        return cls(
            running=bool(data.get("Running")),
            paused=bool(data.get("Paused")),
            restarting=bool(data.get("Restarting")),
            oom_killed=bool(data.get("OOMKilled")),
            removal_in_progress=bool(data.get("RemovalInProgress")),
            dead=bool(data.get("Dead")),
            pid=int(data.get("Pid") or 0),
            exit_code=int(data.get("ExitCode") or 0),
            error=data.get("Error") or "",
            started_at=parse_rfc3339(data.get("StartedAt", "")),
            finished_at=parse_rfc3339(data.get("FinishedAt", "")),
            health=Health.from_json(data.get("Health")),
        )

    # -- transitions (callers hold the container's lock) ----------------------------------------------

    def set_running(self, pid: int, started_at: int | None = None) -> None:
        self.running, self.paused, self.restarting, self.dead = True, False, False, False
        self.oom_killed = False
        self.error = ""
        self.pid = pid
        self.exit_code = 0
        self.started_at = started_at or now_ns()

    def set_stopped(
        self, exit_code: int, *, oom_killed: bool = False, finished_at: int | None = None, notify: bool = True
    ) -> None:
        """``notify=False`` lets the caller publish its events first, then :meth:`notify_stop`."""
        self.running, self.paused, self.restarting = False, False, False
        self.pid = 0
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.finished_at = finished_at or now_ns()
        if notify:
            self.notify_stop()

    def set_restarting(self, exit_code: int, *, oom_killed: bool = False, notify: bool = True) -> None:
        """Counted as running (so rm/stop treat it as live), as dockerd does."""
        self.running, self.restarting, self.paused = True, True, False
        self.pid = 0
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.finished_at = now_ns()
        if notify:
            self.notify_stop()

    def set_removed(self) -> None:
        with self._waiters_lock:
            waiters, self._remove_waiters = self._remove_waiters, []
            stop_waiters, self._stop_waiters = self._stop_waiters, []
        result = WaitResult(self.exit_code, self.error)
        for fut in waiters + stop_waiters:
            if not fut.done():
                fut.set_result(result)

    def notify_stop(self) -> None:
        with self._waiters_lock:
            waiters, self._stop_waiters = self._stop_waiters, []
        result = WaitResult(self.exit_code, self.error)
        for fut in waiters:
            if not fut.done():
                fut.set_result(result)

    # -- waiting --------------------------------------------------------------------------------------

    def wait(self, condition: str) -> concurrent.futures.Future[WaitResult]:
        """A future resolved per dockerd's State.Wait: ``not-running`` at once unless running;
        ``next-exit`` at the next stop; ``removed`` at removal. Removal resolves every waiter."""
        fut: concurrent.futures.Future[WaitResult] = concurrent.futures.Future()
        if condition == NOT_RUNNING and not self.running:
            fut.set_result(WaitResult(self.exit_code, self.error))
            return fut
        with self._waiters_lock:
            if condition == REMOVED:
                self._remove_waiters.append(fut)
            else:
                self._stop_waiters.append(fut)
        return fut

    def cancel_wait(self, fut: concurrent.futures.Future[WaitResult]) -> None:
        with self._waiters_lock:
            for waiters in (self._stop_waiters, self._remove_waiters):
                if fut in waiters:
                    waiters.remove(fut)
