"""engine's json-file log driver (``--log-driver json-file``, dockerd's default)."""

from engine_plugin_json_file.driver import JsonFileLogDriver

__all__ = ["JsonFileLogDriver"]
