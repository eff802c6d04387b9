"""engine-plugin-host: the ``host`` network driver (containers share the daemon's network namespace)."""
