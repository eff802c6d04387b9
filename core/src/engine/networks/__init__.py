"""Networking: the NetworkController (``daemon.networks``), IPAM, sandboxes, embedded DNS.

The container-facing contract::

    sandbox = daemon.networks.setup_sandbox(container_id, name, config, host_config, networking_config)
    sandbox.netns_path, sandbox.network_settings, sandbox.hosts, sandbox.resolv_conf, sandbox.hostname
    daemon.networks.teardown_sandbox(container_id)
"""

from engine.networks.controller import NetworkController
from engine.networks.sandboxes import Sandbox
from engine.networks.settings import initial_settings, stopped_settings

__all__ = ["NetworkController", "Sandbox", "initial_settings", "stopped_settings"]
