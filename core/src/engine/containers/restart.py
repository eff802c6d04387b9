"""Restart policies (no, always, unless-stopped, on-failure[:N]) with dockerd's back-off.

The delay starts at 100 ms and doubles after every restart up to one minute; a run of ten seconds
or more resets it (moby's restartmanager).
"""

from __future__ import annotations

import threading
from typing import Any

BACKOFF_MULTIPLIER = 2
DEFAULT_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # seconds of running that reset the back-off


class RestartManager:
    def __init__(self, policy: dict[str, Any], restart_count: int = 0) -> None:
        self.policy_name = (policy or {}).get("Name") or "no"
        self.max_retries = int((policy or {}).get("MaximumRetryCount") or 0)
        self.restart_count = restart_count
        self.delay = 0.0
        self.cancelled = False
        self._lock = threading.Lock()

    def set_policy(self, policy: dict[str, Any]) -> None:
        """``docker update --restart`` takes effect at the next exit."""
        with self._lock:
            self.policy_name = (policy or {}).get("Name") or "no"
            self.max_retries = int((policy or {}).get("MaximumRetryCount") or 0)

    @property
    def is_none(self) -> bool:
        return self.policy_name in ("", "no")

    def should_restart(self, exit_code: int, manually_stopped: bool, ran_for: float) -> float | None:
        """The delay before restarting, or None when the policy says no."""
        with self._lock:
            if self.is_none or self.cancelled:
                return None
            if ran_for >= RESET_AFTER:
                self.delay = 0.0
            if self.delay == 0.0:
                self.delay = DEFAULT_DELAY
            elif self.delay < MAX_DELAY:
                self.delay *= BACKOFF_MULTIPLIER
            self.delay = min(self.delay, MAX_DELAY)
            restart = False
            if self.policy_name == "always":
                restart = True
            elif self.policy_name == "unless-stopped":
                restart = not manually_stopped
            elif self.policy_name == "on-failure" and (self.max_retries == 0 or self.restart_count < self.max_retries):
                restart = exit_code != 0
            if not restart:
                return None
            self.restart_count += 1
            return self.delay

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
