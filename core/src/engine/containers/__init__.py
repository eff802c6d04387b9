"""Containers: the ``daemon.containers`` subsystem.

Modules, by job:

- ``service``: the facade (create, lookup, inspect, list, rename, remove, prune, wait) and the entry
  points the routes call; ``store``: the in-memory indexes and ``<data-root>/containers/<id>/`` on disk;
  ``model``/``state``: the container and its run state (and the waiters of ``wait``).
- ``create``/``mounts``/``names``/``signals``: request merging and validation with dockerd's texts.
- ``lifecycle``: start, the exit path, restart policies (``restart``), stop/kill/pause, daemon restore
  and shutdown; ``runspec``/``netadapter``/``logcopy``/``initlayer``: what a start gathers from the
  runtime, networking, logging and the layer store.
- ``attach``/``exec``/``health``/``stats``/``ops``/``archive_ops``: the interactive and inspection
  operations.
- ``views``/``listing``: dockerd's JSON shapes and ``ps`` selection; ``trace``: hot-path timings.
"""
