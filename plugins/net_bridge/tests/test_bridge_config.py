"""The bridge plugin's daemon.json keys: declared through engine_add_config, checked as dockerd does."""

from __future__ import annotations

from typing import Any

import pytest

from engine.config import core_schema, merge
from engine.errors import ConfigError
from engine.plugins import make_plugin_manager


def load(values: dict[str, Any]) -> Any:
    pm = make_plugin_manager()
    schema = core_schema()
    pm.hook.engine_add_config.call_historic(kwargs={"schema": schema})
    return merge(schema, values, {})


def test_defaults_as_dockerd() -> None:
    cfg = load({})
    assert cfg["bridge"] == "" and cfg["bip"] == "" and cfg["mtu"] == 0 and cfg["ip"] == "0.0.0.0"
    assert cfg["icc"] and cfg["iptables"] and cfg["ip-forward"] and cfg["ip-masq"] and cfg["userland-proxy"]
    assert not cfg["ipv6"] and not cfg["ip6tables"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bridge": "br0", "bip": "10.1.0.1/24"}, "You specified -b & --bip, mutually exclusive options"),
        ({"icc": False, "iptables": False}, "ICC=false uses iptables to function"),
        ({"bip": "10.1.0.1"}, "invalid CIDR address: 10.1.0.1"),
        ({"default-gateway": "nope"}, "invalid IP address: nope"),
        ({"mtu": -5}, "invalid MTU: -5"),
        ({"icc": "yes"}, "icc"),
    ],
)
def test_bad_settings_stop_startup(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(values)
