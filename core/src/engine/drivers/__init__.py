"""The public driver SDK: everything a storage, network or log driver imports from engine.

A driver (a plugin distribution, see docs/driver-sdk.md) imports only ``engine.drivers`` and its
submodules, plus :mod:`engine.errors`; nothing else of engine is a public contract. This package in
turn imports nothing of engine but :mod:`engine.errors`, so the SDK is the bottom layer of engine.

The ABCs live in :mod:`engine.drivers.storage`, :mod:`engine.drivers.network` and
:mod:`engine.drivers.log`; the helpers in the other submodules.
"""

import pluggy

#: The version of the driver contract (the ABCs and the helpers of this package). Bumped only on an
#: incompatible change; a driver declares the version it was written against in its ``API_VERSION``
#: class attribute, and the registry refuses a driver of another version (docs/driver-sdk.md).
DRIVER_API_VERSION = 1

#: The marker plugin modules use: ``@hookimpl def engine_add_config(schema): ...``
hookimpl = pluggy.HookimplMarker("engine")

__all__ = ["DRIVER_API_VERSION", "hookimpl"]
