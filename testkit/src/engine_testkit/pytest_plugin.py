"""The pytest plugin entry point of engine-testkit (placeholder)."""
