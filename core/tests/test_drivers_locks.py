"""engine.drivers.locks.KeyedLocks: per-key exclusion, re-entrant, no table growth, no order deadlock."""

from __future__ import annotations

import threading

from engine.drivers.locks import KeyedLocks


def test_same_key_excludes_other_threads_until_released() -> None:
    locks = KeyedLocks()
    inside = threading.Event()
    release = threading.Event()
    got_it = threading.Event()

    def holder() -> None:
        with locks("a"):
            inside.set()
            release.wait(10)

    def waiter() -> None:
        with locks("a"):
            got_it.set()

    t1 = threading.Thread(target=holder)
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=waiter)
    t2.start()
    with locks("b"):  # another key is free meanwhile
        pass
    assert not got_it.is_set()
    release.set()
    t1.join(10)
    t2.join(10)
    assert got_it.is_set()


def test_reentrant_and_dropped_when_unused() -> None:
    locks = KeyedLocks()
    with locks("a", "b"), locks("a"):
        assert set(locks._locks) == {"a", "b"}
    assert locks._locks == {}


def test_opposite_orders_do_not_deadlock() -> None:
    locks = KeyedLocks()
    done = []

    def run(keys: tuple[str, str]) -> None:
        for _ in range(200):
            with locks(*keys):
                pass
        done.append(keys)

    threads = [threading.Thread(target=run, args=(k,)) for k in (("x", "y"), ("y", "x"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(done) == 2
