"""engine-plugin-none: the ``null`` network driver behind the predefined ``none`` network."""
