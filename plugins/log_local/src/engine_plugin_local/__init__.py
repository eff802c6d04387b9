"""engine's local log driver (``--log-driver local``): dockerd's compact file format."""

from engine_plugin_local.driver import LocalLogDriver

__all__ = ["LocalLogDriver"]
