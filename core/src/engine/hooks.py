"""The one way core calls plugin hooks: ``Hooks``, a typed facade over pluggy's hook relay (as tox's).

One method per hookspec in :mod:`engine.hookspecs`, with the spec's parameters as typed keywords,
so a call site cannot misspell a hook or pass a wrong argument name, and a reader finds every
caller of a hook by its method. Lifecycle hooks get a ``DaemonContext`` (what a plugin may know of
the daemon) and the spec hook a ``ContainerContext``, never the Daemon or the container model
themselves (neutron's ML2 drivers see a context, not the manager).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from engine.config import ConfigSchema, DaemonConfig
    from engine.drivers.storage import IdMap


@dataclass(frozen=True)
class DaemonContext:
    """What lifecycle hooks see of the running daemon."""

    id: str  #: the engine ID (``GET /info`` ``ID``)
    name: str  #: the host name (``GET /info`` ``Name``)
    data_root: Path
    exec_root: Path
    config: DaemonConfig  #: the configuration in effect
    storage_driver: str  #: the storage driver's name


@dataclass(frozen=True)
class ContainerContext:
    """What ``engine_security_container_spec`` sees of the container whose spec it shapes (the
    names are the container model's; ``config`` and ``host_config`` are Docker's, to read only)."""

    id: str
    name: str  #: with the leading "/"
    image_id: str
    config: dict[str, Any]
    host_config: dict[str, Any]


class Hooks:
    """Calls the hooks of the plugins registered with ``pm``; each method is one hookspec."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._relay = pm.hook

    # ---- configuration -------------------------------------------------------------------------

    def add_config(self, schema: ConfigSchema) -> None:
        self._relay.engine_add_config.call_historic(kwargs={"schema": schema})

    # ---- lifecycle -----------------------------------------------------------------------------

    def daemon_started(self, daemon: DaemonContext) -> None:
        self._relay.engine_daemon_started(daemon=daemon)

    def daemon_stopping(self, daemon: DaemonContext) -> None:
        self._relay.engine_daemon_stopping(daemon=daemon)

    def daemon_reloaded(self, daemon: DaemonContext, config: DaemonConfig, changed: dict[str, Any]) -> None:
        self._relay.engine_daemon_reloaded(daemon=daemon, config=config, changed=changed)

    # ---- storage -------------------------------------------------------------------------------

    def storage_layer_created(self, driver_name: str, chain_id: str, diff_id: str, size: int) -> None:
        self._relay.engine_storage_layer_created(driver_name=driver_name, chain_id=chain_id, diff_id=diff_id, size=size)

    def storage_layer_removed(self, driver_name: str, chain_id: str) -> None:
        self._relay.engine_storage_layer_removed(driver_name=driver_name, chain_id=chain_id)

    # ---- network -------------------------------------------------------------------------------

    def network_created(self, network: dict[str, Any]) -> None:
        self._relay.engine_network_created(network=network)

    def network_endpoint_joined(self, network_id: str, container_id: str, endpoint: dict[str, Any]) -> None:
        self._relay.engine_network_endpoint_joined(network_id=network_id, container_id=container_id, endpoint=endpoint)

    def network_endpoint_left(self, network_id: str, container_id: str) -> None:
        self._relay.engine_network_endpoint_left(network_id=network_id, container_id=container_id)

    # ---- volumes -------------------------------------------------------------------------------

    def volume_created(self, name: str, driver: str, mountpoint: str, labels: dict[str, str]) -> None:
        self._relay.engine_volume_created(name=name, driver=driver, mountpoint=mountpoint, labels=labels)

    def volume_removed(self, name: str, driver: str) -> None:
        self._relay.engine_volume_removed(name=name, driver=driver)

    # ---- logging -------------------------------------------------------------------------------

    def wants_log_messages(self) -> bool:
        """Whether any plugin tees log messages: the copier skips the per-message call otherwise."""
        return bool(self._relay.engine_log_message.get_hookimpls())

    def log_message(self, container_id: str, source: str, line: bytes, timestamp: float) -> None:
        self._relay.engine_log_message(container_id=container_id, source=source, line=line, timestamp=timestamp)

    # ---- security ------------------------------------------------------------------------------

    def security_container_spec(self, container: ContainerContext, spec: dict[str, Any]) -> None:
        self._relay.engine_security_container_spec(container=container, spec=spec)

    def resolves_id_map(self) -> bool:
        """Whether any plugin resolves ``userns-remap`` (else the key cannot be honoured)."""
        return bool(self._relay.engine_security_resolve_id_map.get_hookimpls())

    def security_resolve_id_map(self, config: DaemonConfig) -> IdMap | None:
        return self._relay.engine_security_resolve_id_map(config=config)

    def security_container_create(self, container: ContainerContext) -> str | None:
        """The first refusal of any implementation, or ``None``."""
        refusals = self._relay.engine_security_container_create(container=container)
        return next((r for r in refusals if r), None)

    def wants_authorization(self) -> bool:
        """Whether any plugin authorizes requests: the API reads the body for them only then."""
        return bool(self._relay.engine_authorize_request.get_hookimpls())

    def authorizers(self) -> list[str]:
        """The names of the in-process plugins that implement ``engine_authorize_request``."""
        return [impl.plugin_name for impl in self._relay.engine_authorize_request.get_hookimpls()]

    def authorize_request(
        self, user: str, method: str, uri: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, str] | None:
        """Ask every implementation in pluggy's calling order (last registered first); the first
        deny wins and is returned as ``(plugin name, message)``, as moby's authorization chain names
        the plugin that denied. Called one by one (not through the relay) to know which one denied."""
        args = {"user": user, "method": method, "uri": uri, "headers": headers, "body": body}
        for impl in reversed(self._relay.engine_authorize_request.get_hookimpls()):
            denial = impl.function(**{name: args[name] for name in impl.argnames})
            if denial:
                return impl.plugin_name, str(denial)
        return None

    # ---- containers ----------------------------------------------------------------------------

    def container_event(self, container_id: str, action: str, attributes: dict[str, str]) -> None:
        self._relay.engine_container_event(container_id=container_id, action=action, attributes=attributes)
