"""The overlay2 storage driver (placeholder: the storage work fills this in)."""
