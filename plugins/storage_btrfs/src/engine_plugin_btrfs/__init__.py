"""engine-plugin-btrfs: the btrfs storage driver (entry point ``engine.storage_drivers: btrfs``)."""
