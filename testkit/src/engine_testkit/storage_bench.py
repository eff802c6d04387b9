"""Storage driver benchmarks: moby's graphbench cases, timed per driver.

:class:`StorageDriverBench` runs the cases for one driver (loaded by entry-point name in a fresh
temp home) and returns their timings; ``engine-bench storage`` (:mod:`engine_testkit.bench_cli`)
prints them side by side. Subclassing it in a test module (``driver_name = "..."``) runs every case
once as a smoke test, so the benchmarks cannot rot.

Cases (times in milliseconds per operation):

* ``exists``: ``exists()`` of a layer.
* ``get-empty``: ``get()`` + ``put()`` of an empty layer on an empty base (a real mount on overlay2;
  moby's case uses a base layer, which overlay2 never mounts).
* ``diff-base``: tar of a base layer holding 3 files.
* ``diff-<b>/<t>``: tar of an upper layer with ``t`` files over a base with ``b`` (the diff against
  its parent, as the layer store asks for; moby's case asks for the full tree).
* ``diff-apply-<n>``: the diff of ``n`` changed files plus ``apply_diff`` of it into a fresh layer.
* ``deep-layer-diff-<n>`` / ``deep-layer-read-<n>``: full tar of / one read from the top of ``n``
  stacked layers.
* ``container-start-<n>``: a container start's storage work over an image of ``n`` files: the init
  layer created, mounted, written and released, the rw layer created on it and mounted.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.drivers.storage import StorageDriver
from engine.errors import DriverNotSupported
from engine.registry import STORAGE, DriverRegistry
from engine_testkit.daemon import mounts_under
from engine_testkit.storage_tree import add_many_files, add_many_layers, write_file


class Unsupported(Exception):
    """The driver cannot run on this host; the message says why."""


@contextmanager
def driver_home(
    name: str, options: dict[str, str] | None = None, tmp_root: Path | None = None
) -> Iterator[StorageDriver]:
    """A driver loaded by entry-point name in a temp home that is removed (and unmounted) afterwards.

    The home is made below ``tmp_root`` (else ``$ENGINE_BENCH_TMP``, else /tmp): btrfs and zfs need it
    on their own filesystem."""
    parent = tmp_root or os.environ.get("ENGINE_BENCH_TMP")
    tmp = Path(tempfile.mkdtemp(prefix=f"engine-bench-{name}-", dir=parent))
    try:
        cls = DriverRegistry[StorageDriver](STORAGE).load(name)
        try:
            driver = cls.init(tmp / name, options or {})
        except DriverNotSupported as exc:
            raise Unsupported(str(exc)) from None
        created = _track_created(driver)
        try:
            yield driver
        finally:
            # layers of drivers that keep them outside the home (zfs datasets) must go explicitly
            for layer in reversed(created):
                driver.remove(layer)
            driver.cleanup()
            leaked = mounts_under(tmp)
            if leaked:
                raise RuntimeError(f"{name}: left mounted: {leaked}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _track_created(driver: StorageDriver) -> list[str]:
    """Record the ids the cases create (in order), so that :func:`driver_home` can remove them."""
    created: list[str] = []
    for method in ("create", "create_read_write"):
        original = getattr(driver, method)

        def tracking(id: str, parent: str | None, opts: object = None, _original: Any = original) -> None:
            _original(id, parent, opts)
            created.append(id)

        setattr(driver, method, tracking)
    return created


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class StorageDriverBench:
    """graphbench for one driver. ``run()`` returns ``{case: [seconds per iteration, ...]}``."""

    driver_name: ClassVar[str] = ""
    driver_options: ClassVar[dict[str, str]] = {}
    #: (bottom, top) file counts of the diff-N cases; moby's are 10/10, 10/10000, 10000/10
    diff_sizes: ClassVar[tuple[tuple[int, int], ...]] = ((10, 10), (10, 1000))
    apply_files: ClassVar[int] = 100
    deep_layers: ClassVar[int] = 20
    #: files in the image of the container-start case
    start_files: ClassVar[int] = 1000

    def cases(self) -> list[tuple[str, Callable[[StorageDriver, int], list[float]]]]:
        out: list[tuple[str, Callable[[StorageDriver, int], list[float]]]] = [
            ("exists", self.bench_exists),
            ("get-empty", self.bench_get_empty),
            ("diff-base", self.bench_diff_base),
        ]
        for bottom, top in self.diff_sizes:
            out.append((f"diff-{bottom}/{top}", lambda d, r, b=bottom, t=top: self.bench_diff_n(d, r, b, t)))
        out.append((f"diff-apply-{self.apply_files}", self.bench_diff_apply))
        out.append((f"deep-layer-diff-{self.deep_layers}", self.bench_deep_layer_diff))
        out.append((f"deep-layer-read-{self.deep_layers}", self.bench_deep_layer_read))
        out.append((f"container-start-{self.start_files}", self.bench_container_start))
        return out

    def run(self, repeat: int = 5, name: str | None = None, tmp_root: Path | None = None) -> dict[str, list[float]]:
        """Every case, each in a fresh driver home; raises :class:`Unsupported` for hosts that can't."""
        results = {}
        for case, bench in self.cases():
            with driver_home(name or self.driver_name, dict(self.driver_options), tmp_root) as driver:
                results[case] = bench(driver, repeat)
        return results

    # -- cases -------------------------------------------------------------------------------------

    @staticmethod
    def _timed(repeat: int, body: Callable[[], object], setup: Callable[[], object] | None = None) -> list[float]:
        samples = []
        for _ in range(repeat):
            if setup is not None:
                setup()
            start = time.perf_counter()
            body()
            samples.append(time.perf_counter() - start)
        return samples

    def bench_exists(self, driver: StorageDriver, repeat: int) -> list[float]:
        driver.create("base", None)
        inner = 100  # one exists() is microseconds: time batches
        return [s / inner for s in self._timed(repeat, lambda: [driver.exists("base") for _ in range(inner)])]

    def bench_get_empty(self, driver: StorageDriver, repeat: int) -> list[float]:
        driver.create("base", None)
        driver.create_read_write("empty", "base")

        def body() -> None:
            driver.get("empty")
            driver.put("empty")

        return self._timed(repeat, body)

    def _diff(self, driver: StorageDriver, layer: str, parent: str | None) -> None:
        out = io.BytesIO()
        driver.diff(layer, parent, out)

    def bench_diff_base(self, driver: StorageDriver, repeat: int) -> list[float]:
        driver.create("base", None)
        root = driver.get("base")
        for i in range(3):
            write_file(root / f"file-{i}", os.urandom(64))
        driver.put("base")
        return self._timed(repeat, lambda: self._diff(driver, "base", None))

    def bench_diff_n(self, driver: StorageDriver, repeat: int, bottom: int, top: int) -> list[float]:
        driver.create("base", None)
        add_many_files(driver, "base", bottom, 3)
        driver.create("upper", "base")
        root = driver.get("upper")
        try:
            (root / "top").mkdir()
            for i in range(top):
                write_file(root / "top" / f"file-{i}", os.urandom(64))
        finally:
            driver.put("upper")
        return self._timed(repeat, lambda: self._diff(driver, "upper", "base"))

    def bench_diff_apply(self, driver: StorageDriver, repeat: int) -> list[float]:
        count = self.apply_files
        driver.create("base", None)
        add_many_files(driver, "base", count, 3)
        driver.create("upper", "base")
        add_many_files(driver, "upper", count, 6)
        targets = iter(range(repeat))
        current: list[str] = []

        def setup() -> None:
            layer = f"diff-{next(targets)}"
            driver.create(layer, "base")
            current[:] = [layer]

        def body() -> None:
            out = io.BytesIO()
            driver.diff("upper", "base", out)
            out.seek(0)
            driver.apply_diff(current[0], "base", out)

        return self._timed(repeat, body, setup)

    def _deep_stack(self, driver: StorageDriver) -> str:
        driver.create("base", None)
        root = driver.get("base")
        write_file(root / "testfile.txt", b"test content")
        driver.put("base")
        return add_many_layers(driver, "base", self.deep_layers)[-1]

    def bench_deep_layer_diff(self, driver: StorageDriver, repeat: int) -> list[float]:
        top = self._deep_stack(driver)
        return self._timed(repeat, lambda: self._diff(driver, top, None))

    def bench_deep_layer_read(self, driver: StorageDriver, repeat: int) -> list[float]:
        top = self._deep_stack(driver)

        def body() -> None:
            root = driver.get(top)
            try:
                assert (root / "testfile.txt").read_bytes() == b"test content"
            finally:
                driver.put(top)

        return self._timed(repeat, body)

    def bench_container_start(self, driver: StorageDriver, repeat: int) -> list[float]:
        """What a container start asks of storage: the init layer made, mounted and written (hostname),
        the container's rw layer made on it and mounted; over an image of ``start_files`` files."""
        driver.create("image", None)
        add_many_files(driver, "image", self.start_files, 1)
        numbers = iter(range(repeat))
        mounted: list[str] = []

        def body() -> None:
            i = next(numbers)
            init, rw = f"c{i}-init", f"c{i}"
            driver.create_read_write(init, "image")
            root = driver.get(init)
            (root / "etc").mkdir(exist_ok=True)
            write_file(root / "etc" / "hostname", b"c\n", 0o644)
            driver.put(init)
            driver.create_read_write(rw, init)
            driver.get(rw)
            mounted.append(rw)

        try:
            return self._timed(repeat, body)
        finally:
            for layer in mounted:
                driver.put(layer)

    # -- as a pytest smoke test ----------------------------------------------------------------------

    @pytest.mark.privileged
    def test_bench_cases_run(self) -> None:
        if not self.driver_name:
            pytest.skip("StorageDriverBench: set driver_name in the subclass")
        if os.geteuid() != 0:
            pytest.skip("needs root")
        quick = type(self)()  # small sizes: this proves the cases work, it measures nothing
        quick.diff_sizes, quick.apply_files, quick.deep_layers = ((2, 3),), 5, 3  # type: ignore[misc]
        quick.start_files = 5  # type: ignore[misc]
        try:
            results = quick.run(repeat=1)
        except Unsupported as exc:
            pytest.skip(f"storage driver {self.driver_name} is not supported here: {exc}")
        assert set(results) == {case for case, _ in quick.cases()}
        assert all(len(samples) == 1 and samples[0] >= 0 for samples in results.values())


def summarize(samples: list[float]) -> tuple[float, float]:
    """(median, p90) in milliseconds."""
    return statistics.median(samples) * 1000, percentile(samples, 0.9) * 1000
