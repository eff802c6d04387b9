"""engine's journald log driver (``--log-driver journald``)."""

from engine_plugin_journald.driver import JournaldLogDriver

__all__ = ["JournaldLogDriver"]
