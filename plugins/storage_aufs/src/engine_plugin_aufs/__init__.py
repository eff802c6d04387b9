"""engine-plugin-aufs: the aufs storage driver (entry point ``engine.storage_drivers: aufs``)."""
