"""engine-plugin-zfs: the zfs storage driver (entry point ``engine.storage_drivers: zfs``)."""
