"""engine-plugin-rootless: engined as an ordinary user under RootlessKit, as dockerd's rootless mode."""
