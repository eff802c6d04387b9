"""Core's own drivers and hook implementations, published through core's entry points like any plugin."""
