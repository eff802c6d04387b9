"""engine-plugin-userns-remap: dockerd's ``userns-remap`` (container root is a subuid on the host)."""
