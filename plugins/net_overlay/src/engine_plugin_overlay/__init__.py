"""engine-plugin-overlay: the ``overlay`` network driver (VXLAN between engines sharing an etcd cluster store)."""
