"""Hook specifications for engine plugins, invoked by the daemon and by built-in plugins.

Hooks are called with keyword arguments, so an implementation may accept any subset of
the parameters. Drivers are *not* hooks: a driver is one named, stateful object loaded
from its entry point (see :mod:`engine.registry`). Hooks are for the many participants
around them: config declarations, observers, policy checks and spec shaping.

Naming: ``engine_<subsystem>_<event>``. ``historic`` is used only for registration and
configuration hooks, ``firstresult`` only for "resolve X" hooks.

Core calls every hook through the typed facade :class:`engine.hooks.Hooks` (one method per spec
here); a spec nothing calls is removed. Lifecycle hooks see a :class:`engine.hooks.DaemonContext`,
not the daemon object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from engine.config import ConfigSchema, DaemonConfig
    from engine.drivers.storage import IdMap
    from engine.hooks import ContainerContext, DaemonContext

hookspec = pluggy.HookspecMarker("engine")


# ---- configuration (historic: plugins registered late are still called) ---------------------------


@hookspec(historic=True)
def engine_add_config(schema: ConfigSchema) -> None:
    """Declare the daemon.json keys a plugin owns.

    :param schema: call ``schema.add(key, type_, default=..., help=..., reloadable=...)``
        for each key; unknown keys in daemon.json are rejected unless some plugin declared them.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


# ---- lifecycle -------------------------------------------------------------------------------------


@hookspec
def engine_daemon_started(daemon: DaemonContext) -> None:
    """The daemon finished start-up and is serving the API.

    :param daemon: the running daemon as a :class:`engine.hooks.DaemonContext` (id, name,
        data_root, exec_root, config, storage_driver).
    :returns: nothing; the return value is ignored.
    """


@hookspec
def engine_daemon_stopping(daemon: DaemonContext) -> None:
    """The daemon is about to shut down; called before subsystems stop (in reverse order).

    :param daemon: the running daemon as a :class:`engine.hooks.DaemonContext`.
    :returns: nothing; the return value is ignored.
    """


@hookspec
def engine_daemon_reloaded(daemon: DaemonContext, config: DaemonConfig, changed: dict[str, Any]) -> None:
    """SIGHUP applied a new configuration.

    :param daemon: the running daemon as a :class:`engine.hooks.DaemonContext` (its ``config`` is
        the new one too).
    :param config: the configuration now in effect.
    :param changed: the reloadable keys whose value changed, with their new values.
    :returns: nothing; the return value is ignored.
    """


# ---- storage ---------------------------------------------------------------------------------------


@hookspec
def engine_storage_layer_created(driver_name: str, chain_id: str, diff_id: str, size: int) -> None:
    """A read-only image layer was registered in the layer store.

    :param driver_name: the storage driver holding the layer.
    :param chain_id: the layer's chain ID (``sha256:...``).
    :param diff_id: the digest of the layer's uncompressed tar.
    :param size: the layer's own size in bytes.
    :returns: nothing; the return value is ignored.
    """


@hookspec
def engine_storage_layer_removed(driver_name: str, chain_id: str) -> None:
    """A read-only image layer was released and removed from the storage driver.

    :param driver_name: the storage driver that held the layer.
    :param chain_id: the removed layer's chain ID.
    :returns: nothing; the return value is ignored.
    """


# ---- network ---------------------------------------------------------------------------------------


@hookspec
def engine_network_created(network: dict[str, Any]) -> None:
    """A network was created.

    :param network: the network as ``GET /networks/{id}`` shows it.
    :returns: nothing; the return value is ignored.
    """


@hookspec
def engine_network_endpoint_joined(network_id: str, container_id: str, endpoint: dict[str, Any]) -> None:
    """A container's endpoint joined a network (its interface is up in the sandbox).

    :param network_id: the network's ID.
    :param container_id: the container's ID.
    :param endpoint: the endpoint settings as inspect shows them under ``NetworkSettings.Networks``.
    :returns: nothing; the return value is ignored.
    """


@hookspec
def engine_network_endpoint_left(network_id: str, container_id: str) -> None:
    """A container's endpoint left a network.

    :param network_id: the network's ID.
    :param container_id: the container's ID.
    :returns: nothing; the return value is ignored.
    """


# ---- volumes ---------------------------------------------------------------------------------------


@hookspec
def engine_volume_created(name: str, driver: str, mountpoint: str, labels: dict[str, str]) -> None:
    """A volume was created (``docker volume create``, or an anonymous volume for a container).

    :param name: the volume's name (64 hex digits for an anonymous volume).
    :param driver: the volume driver (``local``).
    :param mountpoint: where the volume's data lives on the host.
    :param labels: the volume's labels.
    :returns: nothing; the return value is ignored.
    """


@hookspec
def engine_volume_removed(name: str, driver: str) -> None:
    """A volume was removed and its data deleted.

    :param name: the volume's name.
    :param driver: the volume driver (``local``).
    :returns: nothing; the return value is ignored.
    """


# ---- logging ---------------------------------------------------------------------------------------


@hookspec
def engine_log_message(container_id: str, source: str, line: bytes, timestamp: float) -> None:
    """Tee of every log message the copier hands to a container's log driver.

    Called on the daemon's copier path: implementations must be fast and must not block.

    :param container_id: the container that wrote the line.
    :param source: ``"stdout"`` or ``"stderr"``.
    :param line: the raw bytes of the line, newline included when there was one.
    :param timestamp: seconds since the epoch when the daemon read the line.
    :returns: nothing; the return value is ignored.
    """


# ---- security --------------------------------------------------------------------------------------


@hookspec
def engine_security_container_spec(container: ContainerContext, spec: dict[str, Any]) -> None:
    """Shape the OCI runtime spec of a container before it is created.

    Seccomp, capabilities, user namespaces and no-new-privileges are applied here by
    security plugins; each implementation edits ``spec`` in place.

    :param container: the container as a :class:`engine.hooks.ContainerContext` (id, name,
        image_id, config, host_config).
    :param spec: the OCI runtime spec (``config.json`` as a dict).
    :returns: nothing; the return value is ignored.
    """


@hookspec(firstresult=True)
def engine_security_resolve_id_map(config: DaemonConfig) -> IdMap | None:
    """Resolve the daemon's user-namespace remapping (``userns-remap``) once, at start-up.

    *firstresult*: the first non-None map wins. Core then keeps a data-root subdirectory per
    mapping (``<data-root>/<uid>.<gid>``), hands the map to the storage driver (layers are unpacked
    with shifted ownership) and owns volumes, bind-mount sources and ``docker cp`` content by it.

    :param config: the daemon configuration in effect.
    :returns: an :class:`engine.drivers.storage.IdMap`, or ``None`` when there is no remapping.
    """


@hookspec
def engine_security_container_create(container: ContainerContext) -> str | None:
    """Check a container's configuration before it is created; any refusal wins.

    :param container: the container about to be created, as a :class:`engine.hooks.ContainerContext`
        (its ``id`` is still empty).
    :returns: ``None`` to accept, or the message that refuses the container (HTTP 400).
    """


@hookspec
def engine_authorize_request(user: str, method: str, uri: str, headers: dict[str, str], body: bytes) -> str | None:
    """Authorize an API request before its handler runs. Every implementation is asked and any deny wins.

    :param user: the authenticated user (TLS client certificate CN), or ``""``.
    :param method: the HTTP method.
    :param uri: the request URI, path and query.
    :param headers: the request headers.
    :param body: the request body when it is JSON and small, else ``b""``.
    :returns: ``None`` to allow, or a message that denies the request (HTTP 403).
    """


# ---- containers ------------------------------------------------------------------------------------


@hookspec
def engine_container_event(container_id: str, action: str, attributes: dict[str, str]) -> None:
    """A container lifecycle event (create, start, die, destroy, ...) was emitted.

    :param container_id: the container's ID.
    :param action: the Docker event action.
    :param attributes: the event's ``Actor.Attributes``.
    :returns: nothing; the return value is ignored.
    """
