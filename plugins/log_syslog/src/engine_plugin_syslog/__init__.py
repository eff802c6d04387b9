"""engine's syslog log driver (``--log-driver syslog``)."""

from engine_plugin_syslog.driver import SyslogLogDriver

__all__ = ["SyslogLogDriver"]
