"""engine-plugin-overlay2: the overlay2 storage driver (kernel overlayfs)."""
