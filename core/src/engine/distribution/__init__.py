"""The registry v2 client: pull, push and login against a Docker registry (distribution spec).

- :mod:`.auth`: AuthConfig (X-Registry-Auth, ``POST /auth`` bodies) and WWW-Authenticate challenges.
- :mod:`.endpoint`: which registries are insecure (plain HTTP allowed) and the base URL to use.
- :mod:`.client`: one repository on one registry: manifests, blobs, uploads, with Basic/Bearer auth.
- :mod:`.errors`: registry error bodies and transport failures, worded as dockerd shows them.
- :mod:`.metadata`: which compressed blob digests a layer's diff ID is known under (dockerd's v2 metadata).
- :mod:`.pull`, :mod:`.push`, :mod:`.login`: the operations, with dockerd's progress messages.
- :mod:`.target`: the Protocol of the local image store pull writes to and push reads from.

Everything here blocks: the image service calls it from worker threads.
"""
