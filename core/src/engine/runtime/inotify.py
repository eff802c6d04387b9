"""A minimal inotify binding (ctypes) and one shared watcher per event loop.

Linux allows only 128 inotify instances per user by default, so all spool readers of a loop share
one instance: ``watch_dir(path)`` returns an :class:`asyncio.Event` that is set whenever something
in that directory changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# the process's own symbols (libc's among them): ctypes.util.find_library runs `ldconfig -p` in a
# subprocess, which cost engined's start-up tens of milliseconds on a loaded machine
_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


class Inotify:
    """One inotify instance with watches; ``fileno()`` becomes readable on events.

    Readers only need "something changed", so events are drained and discarded.
    """

    def __init__(self) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd

    def watch(self, path: str | os.PathLike[str], mask: int) -> int:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
        return wd

    def unwatch(self, wd: int) -> None:
        _libc.inotify_rm_watch(self.fd, wd)

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def read_wds(self) -> set[int]:
        """The watch descriptors that had events (all pending events are consumed)."""
        wds: set[int] = set()
        try:
            while True:
                data = os.read(self.fd, 65536)
                if not data:
                    break
                pos = 0
                while pos + _EVENT.size <= len(data):
                    wd, _mask, _cookie, length = _EVENT.unpack_from(data, pos)
                    wds.add(wd)
                    pos += _EVENT.size + length
        except BlockingIOError:
            pass
        return wds

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DIR_EVENTS = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF


class DirectoryWatcher:
    """One inotify instance serving every waiter of an event loop; closed when the last watch goes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inotify = Inotify()
        self.waiters: dict[int, set[asyncio.Event]] = {}
        loop.add_reader(self.inotify.fd, self._on_readable)

    def add(self, path: str | os.PathLike[str]) -> tuple[int, asyncio.Event]:
        wd = self.inotify.watch(path, DIR_EVENTS)
        event = asyncio.Event()
        self.waiters.setdefault(wd, set()).add(event)
        return wd, event

    def remove(self, wd: int, event: asyncio.Event) -> None:
        events = self.waiters.get(wd)
        if events is not None:
            events.discard(event)
            if not events:
                del self.waiters[wd]
                self.inotify.unwatch(wd)  # the same directory watched again gets the same wd: no leak
        if not self.waiters:
            self.close()

    def close(self) -> None:
        if _watchers.get(self.loop) is self:
            del _watchers[self.loop]
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.inotify.fd)
        self.inotify.close()

    def _on_readable(self) -> None:
        wds = self.inotify.read_wds()
        if -1 in wds:  # IN_Q_OVERFLOW: events were dropped, wake everyone
            wds = set(self.waiters)
        for wd in wds:
            for event in self.waiters.get(wd, ()):
                event.set()


_watchers: dict[asyncio.AbstractEventLoop, DirectoryWatcher] = {}


def watch_dir(path: str | os.PathLike[str]) -> tuple[DirectoryWatcher, int, asyncio.Event]:
    """Watch a directory on the running loop's shared instance; undo with ``watcher.remove(wd, event)``."""
    loop = asyncio.get_running_loop()
    for stale in [w for other, w in _watchers.items() if other.is_closed()]:
        stale.close()  # the loop ended with watches never given back
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = DirectoryWatcher(loop)
    try:
        wd, event = watcher.add(path)
    except OSError:
        if not watcher.waiters:
            watcher.close()
        raise
    return watcher, wd, event
