"""engine-testkit: conformance suites and benchmarks for engine drivers."""
