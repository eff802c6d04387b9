"""The classic (non-BuildKit) image builder behind ``POST /build``.

- :mod:`.dockerfile`: Dockerfile parsing (directives, continuations, instructions, flags).
- :mod:`.shell`: Docker's word expansion (``$VAR``, ``${VAR:-x}``, quotes) for the instructions that allow it.
- :mod:`.ignore`: ``.dockerignore`` patterns.
- :mod:`.context`: the build context on disk, sources for COPY/ADD, their content hash.
- :mod:`.imaging`: image configs written as dockerd's builder does, and the build cache lookup.
- :mod:`.steps`: instruction dispatch (the build itself); :mod:`.run`: RUN containers.
"""
