"""What engined's start-up is made of, and its floors, interleaved with dockerd's start-up (the machine is
shared: each round runs every step once, medians of the rounds):

    .venv/bin/python benchmarks/startup_floor.py [--rounds 5]

Steps: the venv's python doing nothing; python importing asyncio and aiohttp's server (engined's floor:
asyncio imports ssl, which initialises OpenSSL); ``engine.cli``; every module engined imports before it
answers; pyroute2's IPRoute alone (the bridge driver sets up the default bridge at start); engined from
exec to the first answered ``/_ping`` (overlay2, every plugin of the venv installed) and dockerd the same
way (benchmarks/hotpaths.py's start-up functions). Writes benchmarks/results/startup-<time>.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from hotpaths import startup_dockerd, startup_engine

RESULTS = Path(__file__).parent / "results"
DEFER = "from engine.lazy_packages import defer_heavy_packages as d; d(); "
SERVE_MODULES = (
    "engine.cli, engine.daemon, engine.api.app, engine.subsystems, engine.api.server, engine.containers.service, "
    "engine.runtime, engine_plugin_overlay2.driver, engine_plugin_bridge.driver, engine_plugin_json_file.driver"
)
STEPS = {
    "python -c pass": "pass",
    "import asyncio + aiohttp's server": DEFER + "import asyncio; from aiohttp import web",
    "import engine.cli": DEFER + "import engine.cli",
    "import every module engined needs to serve": DEFER + "import " + SERVE_MODULES,
    "import pyroute2.iproute alone": DEFER + "import pyroute2.iproute",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    samples: dict[str, list[float]] = {k: [] for k in [*STEPS, "engined to first /_ping", "dockerd to first /_ping"]}
    for _ in range(args.rounds):
        for key, code in STEPS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples[key].append((time.perf_counter() - start) * 1000)
        samples["engined to first /_ping"].append(startup_engine())
        samples["dockerd to first /_ping"].append(startup_dockerd())
    lines = [f"load average (1 min) {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end; {args.rounds} rounds"]
    width = max(len(k) for k in samples) + 2
    lines += [
        f"{k.ljust(width)}median {statistics.median(v):7.0f} ms   min {min(v):7.0f} ms" for k, v in samples.items()
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"startup-{time.strftime('%Y%m%d-%H%M%S')}.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
