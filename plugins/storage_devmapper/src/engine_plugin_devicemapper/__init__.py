"""engine-plugin-devicemapper: the devicemapper storage driver (entry point ``engine.storage_drivers:
devicemapper``; explicit-only, as dockerd deprecated it)."""
