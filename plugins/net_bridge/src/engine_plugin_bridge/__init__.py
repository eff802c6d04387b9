"""engine-plugin-bridge: the ``bridge`` network driver (the default ``bridge`` network and user-defined bridges)."""
