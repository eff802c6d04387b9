"""{{driver_name}}: a {{kind}} driver for engine (installed as {{dist_name}})."""

from {{package}}.driver import {{class_name}}

__all__ = ["{{class_name}}"]
