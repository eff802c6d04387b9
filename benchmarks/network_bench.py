"""Network benchmarks: every installed network driver at driver level, plus end to end against
each daemon given with --docker-host (engine and, side by side, a dockerd the integrator runs).

    .venv/bin/python benchmarks/network_bench.py [--repeat 10] [--docker-host unix:///run/engine.sock ...]

The end-to-end part needs a busybox image (with nc and dd) on each daemon.
"""

import sys

from engine_testkit.network_bench import main

if __name__ == "__main__":
    sys.exit(main())
