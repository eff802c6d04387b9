"""GET /info's RegistryConfig from daemon.json, as dockerd's registry service config lays it out."""

from __future__ import annotations

from engine.api.info import registry_config


def test_insecure_registries_split_into_cidrs_and_indexes() -> None:
    config = {
        "registry-mirrors": ["http://127.0.0.1:5001"],
        "insecure-registries": ["10.1.0.0/16", "127.0.0.0/8", "myregistry.test:5000", "10.9.9.9"],
    }
    got = registry_config(config)
    assert got["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.1.0.0/16"]
    assert got["Mirrors"] == ["http://127.0.0.1:5001"]
    assert got["IndexConfigs"]["docker.io"] == {
        "Name": "docker.io",
        "Mirrors": ["http://127.0.0.1:5001"],
        "Secure": True,
        "Official": True,
    }
    for name in ("myregistry.test:5000", "10.9.9.9"):  # not a CIDR (Go's ParseCIDR wants a prefix length)
        assert got["IndexConfigs"][name] == {"Name": name, "Mirrors": [], "Secure": False, "Official": False}


def test_defaults() -> None:
    got = registry_config({"registry-mirrors": [], "insecure-registries": []})
    assert got["InsecureRegistryCIDRs"] == ["127.0.0.0/8"] and list(got["IndexConfigs"]) == ["docker.io"]
