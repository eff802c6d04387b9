"""daemon.json and flags: dockerd 20.10's keys, flags, merge rules and messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import hosts
from engine.config import (
    DaemonConfig,
    conflict_free_labels,
    core_schema,
    load,
    merge,
    parse_command_line,
    read_config_file,
    reload,
)
from engine.config_cmdline import flag_repr
from engine.config_schema import go_format
from engine.drivers.strconv import parse_bool as parse_go_bool
from engine.drivers.strconv import parse_int as parse_go_int
from engine.errors import ConfigError


@pytest.fixture(scope="module")
def schema():
    return core_schema()


def config_from(schema, tmp_path: Path, file: dict[str, Any] | None, *argv: str) -> DaemonConfig:
    path = tmp_path / "daemon.json"
    if file is not None:
        path.write_text(json.dumps(file))
    cmdline = parse_command_line(schema, ["--config-file", str(path), *argv] if file is not None else list(argv))
    return load(schema, cmdline) if file is not None else merge(schema, None, cmdline.flag_values)


def fails(schema, tmp_path: Path, file: dict[str, Any] | None, *argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        config_from(schema, tmp_path, file, *argv)
    return info.value.message


# ---- defaults and simple values --------------------------------------------------------------------


def test_defaults_never_collide_with_dockerd(schema, tmp_path):
    config = config_from(schema, tmp_path, None)
    assert config["hosts"] == ["unix:///run/engine.sock"]
    assert config["data-root"] == "/var/lib/engine"
    assert config["exec-root"] == "/run/engine"
    assert config["pidfile"] == "/run/engine.pid"
    assert config["group"] == "engine"
    assert config["log-driver"] == "json-file"
    assert config["default-runtime"] == "runc"
    assert config["shutdown-timeout"] == 15
    assert config["max-concurrent-downloads"] == 3
    assert config["max-concurrent-uploads"] == 5
    assert config["max-download-attempts"] == 5
    assert config["default-shm-size"] == 64 << 20
    assert config["tls"] is False and config["tlsverify"] is False


def test_file_values_are_used(schema, tmp_path):
    config = config_from(
        schema,
        tmp_path,
        {
            "debug": True,
            "data-root": "/srv/engine",
            "labels": ["a=1", "b=2"],
            "log-opts": {"max-size": "10m"},
            "default-shm-size": "128M",
            "storage-opts": ["overlay2.size=1G"],
            "runtimes": {"crun": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}},
            "default-runtime": "crun",
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}},
            "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}],
        },
    )
    assert config["debug"] is True
    assert config.data_root == Path("/srv/engine")
    assert config["labels"] == ["a=1", "b=2"]
    assert config["log-opts"] == {"max-size": "10m"}
    assert config["default-shm-size"] == 128 << 20
    assert config.storage_options() == {"overlay2.size": "1G"}
    assert config["runtimes"]["crun"] == {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}
    assert config["default-ulimits"]["nofile"] == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert config["default-address-pools"] == [{"base": "10.10.0.0/16", "size": 24}]
    assert config.is_value_set("debug") and not config.is_value_set("group")


def test_missing_default_file_is_fine_but_a_named_one_is_an_error(schema, tmp_path):
    assert read_config_file(tmp_path / "absent.json", required=False) is None
    with pytest.raises(ConfigError) as info:
        read_config_file(tmp_path / "absent.json", required=True)
    path = tmp_path / "absent.json"
    assert info.value.message == (
        f"unable to configure the Docker daemon with file {path}: open {path}: no such file or directory"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "EOF"),
        ("[1]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
        ('{"debug": }', "invalid character '}' looking for beginning of value"),
        ('{"debug": true', "unexpected EOF"),
        ('{"labels": ["a=1" "b=2"]}', "invalid character '\"' after array element"),
        ('{"debug": true "tls": true}', "invalid character '\"' after object key:value pair"),
    ],
)
def test_unparsable_file(tmp_path, text, message):
    path = tmp_path / "daemon.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_config_file(path, required=True)
    assert info.value.message == f"unable to configure the Docker daemon with file {path}: {message}"


def test_go_decoder_ignores_what_follows_the_object(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n# trailing')
    assert read_config_file(path, required=True) == {"debug": True}


# ---- unknown keys and conflicts ------------------------------------------------------------------


def test_unknown_keys_stop_start_up_with_dockerd_words(schema, tmp_path):
    message = fails(schema, tmp_path, {"debug": True, "zeta": 1, "alpha": "x"})
    assert message == (
        f"unable to configure the Docker daemon with file {tmp_path / 'daemon.json'}: "
        "the following directives don't match any configuration option: alpha, zeta"
    )


def test_unknown_plugin_key_names_the_distribution(schema, tmp_path):
    message = fails(schema, tmp_path, {"iptables": False})
    assert "don't match any configuration option: iptables" in message
    assert "engine-plugin-bridge from engine's source tree: `pip install ./plugins/net_bridge`" in message


def test_dockerd_quirks_of_the_unknown_key_check(schema, tmp_path):
    # flag names are accepted as keys (and ignored), map-valued keys are not flattened,
    # other objects are flattened, and "features"/"builder" are never checked
    config = config_from(schema, tmp_path, {"host": ["tcp://x:1"], "features": {"anything": True}, "builder": {}})
    assert config["hosts"] == ["unix:///run/engine.sock"]
    assert config["features"] == {"anything": True}
    assert config_from(schema, tmp_path, {"tls-wrapper": {"debug": True}})["debug"] is False
    assert "nope" in fails(schema, tmp_path, {"wrapper": {"nope": 1}})
    # 20.10's struct field with no matching flag is rejected (quirk documented in DOCKER-API.md)
    assert "containerd-plugin-namespace" in fails(schema, tmp_path, {"containerd-plugin-namespace": "x"})
    assert "default-init" in fails(schema, tmp_path, {"default-init": "x"})


def test_key_given_as_flag_and_in_file(schema, tmp_path):
    message = fails(schema, tmp_path, {"hosts": ["unix:///a.sock"], "debug": True}, "-H", "fd://", "-D")
    assert message.endswith(
        "the following directives are specified both as a flag and in the configuration file: "
        "debug: (from flag: true, from file: true), hosts: (from flag: [fd://], from file: [unix:///a.sock])"
    )


def test_conflict_messages_print_values_as_go(schema, tmp_path):
    message = fails(
        schema,
        tmp_path,
        {"labels": ["a=1"], "log-opts": {"max-size": "1m"}, "shutdown-timeout": 30},
        "--label",
        "b=2",
        "--log-opt",
        "max-file=2",
        "--shutdown-timeout",
        "5",
    )
    assert "labels: (from flag: [b=2], from file: [a=1])" in message
    assert "log-opts: (from flag: map[max-file:2], from file: map[max-size:1m])" in message
    assert "shutdown-timeout: (from flag: 5, from file: 30)" in message


def test_runtimes_from_flag_and_file_are_merged(schema, tmp_path):
    config = config_from(schema, tmp_path, {"runtimes": {"a": {"path": "/a"}}}, "--add-runtime", "b=/b")
    assert config["runtimes"] == {"b": {"path": "/b"}, "a": {"path": "/a"}}


def test_flags_and_file_merge_when_disjoint(schema, tmp_path):
    config = config_from(schema, tmp_path, {"debug": True}, "--data-root", "/srv/x", "-s", "vfs")
    assert config["debug"] is True and config["data-root"] == "/srv/x" and config["storage-driver"] == "vfs"
    assert config.from_flags == {"data-root", "storage-driver"} and config.from_file == {"debug"}


def test_zero_value_in_file_keeps_the_default_as_dockerd_merge_does(schema, tmp_path):
    config = config_from(schema, tmp_path, {"shutdown-timeout": 0, "log-level": "", "debug": False})
    assert config["shutdown-timeout"] == 15
    assert config["log-level"] == "info"
    assert config["debug"] is False


# ---- types and values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ({"debug": "yes"}, "json: cannot unmarshal string into Go struct field Config.debug of type bool"),
        ({"shutdown-timeout": "10"}, "json: cannot unmarshal string into Go struct field Config.shutdown-timeout of type int"),
        ({"shutdown-timeout": 1.5}, "json: cannot unmarshal number 1.5 into Go struct field Config.shutdown-timeout of type int"),
        ({"labels": "a=b"}, "json: cannot unmarshal string into Go struct field Config.labels of type []string"),
        ({"labels": [1]}, "json: cannot unmarshal number into Go struct field Config.labels of type string"),
        ({"log-opts": {"max-file": 3}}, "json: cannot unmarshal number into Go struct field Config.log-opts of type string"),
        ({"log-opts": ["a"]}, "json: cannot unmarshal array into Go struct field Config.log-opts of type map[string]string"),
        ({"storage-driver": 1}, "json: cannot unmarshal number into Go struct field Config.storage-driver of type string"),
        ({"default-shm-size": 64}, 'invalid size: "64"'),
        ({"default-shm-size": "64x"}, "invalid size: '64x'"),
        ({"features": {"buildkit": "on"}}, "json: cannot unmarshal string into Go struct field Config.features of type bool"),
        ({"host-gateway-ip": "nope"}, "invalid IP address: nope"),
    ],
)  # fmt: skip
def test_wrong_json_type_names_the_key(schema, tmp_path, file, message):
    assert fails(schema, tmp_path, file) == (
        f"unable to configure the Docker daemon with file {tmp_path / 'daemon.json'}: {message}"
    )


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ({"max-concurrent-downloads": -1}, "invalid max concurrent downloads: -1"),
        ({"max-concurrent-uploads": -2}, "invalid max concurrent uploads: -2"),
        ({"max-download-attempts": 0}, "invalid max download attempts: 0"),
        ({"dns": ["8.8.8.8", "nope"]}, "nope is not an ip address"),
        ({"dns-search": ["-bad-"]}, "-bad- is not a valid domain"),
        ({"labels": ["novalue"]}, "bad attribute format: novalue"),
        ({"labels": ["com.docker.x=1"]}, "label com.docker.x=1 is not allowed: the namespaces com.docker.*, io.docker.*, and org.dockerproject.* are reserved for internal use"),
        ({"runtimes": {"runc": {"path": "/x"}}}, "runtime name 'runc' is reserved"),
        ({"default-runtime": "nope"}, "specified default runtime 'nope' does not exist"),
        ({"default-ipc-mode": "bogus"}, 'default IPC mode setting (bogus) is invalid; use "shareable" or "private"'),
        ({"default-ipc-mode": "host"}, 'IPC mode "host" is not supported as default value; use "shareable" or "private"'),
        ({"default-cgroupns-mode": "x"}, 'default cgroup namespace mode (x) is invalid; use "host" or "private"'),
        ({"registry-mirrors": ["ftp://m"]}, 'invalid mirror: unsupported scheme "ftp" in "ftp://m"'),
        ({"insecure-registries": ["-x"]}, "invalid index name (-x). Cannot begin or end with a hyphen"),
    ],
)  # fmt: skip
def test_out_of_range_values(schema, tmp_path, file, message):
    assert fails(schema, tmp_path, file) == (
        f"unable to configure the Docker daemon with file {tmp_path / 'daemon.json'}: "
        f"configuration validation from file failed: {message}"
    )


def test_validation_of_flags_alone_is_not_wrapped(schema, tmp_path):
    assert fails(schema, tmp_path, None, "--max-concurrent-downloads", "-1") == "invalid max concurrent downloads: -1"


def test_merged_validation(schema, tmp_path):
    message = fails(schema, tmp_path, {"debug": True}, "--max-download-attempts=0")
    assert message.endswith(
        "merged configuration validation from file and command line flags failed: invalid max download attempts: 0"
    )


def test_shutdown_timeout_may_be_negative_as_in_dockerd(schema, tmp_path):
    assert config_from(schema, tmp_path, {"shutdown-timeout": -1})["shutdown-timeout"] == -1


@pytest.mark.parametrize("level", ["debug", "info", "warn", "warning", "error", "fatal", "panic", "trace", "INFO"])
def test_log_levels(schema, tmp_path, level):
    assert config_from(schema, tmp_path, {"log-level": level})["log-level"] == level.lower()


def test_bad_log_level(schema, tmp_path):
    assert fails(schema, tmp_path, {"log-level": "loud"}) == "unable to parse logging level: loud"
    assert fails(schema, tmp_path, None, "-l", "loud") == "unable to parse logging level: loud"


def test_label_conflicts(schema, tmp_path):
    assert fails(schema, tmp_path, {"labels": ["a=1", "a=2"]}) == "conflict labels for a=2 and a=1"
    assert config_from(schema, tmp_path, {"labels": ["a=1", "a=1", "b=2"]})["labels"] == ["a=1", "b=2"]
    assert conflict_free_labels(["x=1", "y=", "x=1"]) == ["x=1", "y="]


def test_graph_is_data_root_and_both_is_an_error(schema, tmp_path):
    assert config_from(schema, tmp_path, {"graph": "/srv/g"})["data-root"] == "/srv/g"
    assert config_from(schema, tmp_path, None, "-g", "/srv/g")["data-root"] == "/srv/g"
    assert fails(schema, tmp_path, {"graph": "/a", "data-root": "/b"}).endswith(
        'cannot specify both "graph" and "data-root" config file options'
    )
    assert fails(schema, tmp_path, None, "--graph", "/a", "--data-root", "/b") == (
        'cannot specify both "--graph" and "--data-root" option'
    )


def test_cgroup_driver_exec_opt(schema, tmp_path):
    assert config_from(schema, tmp_path, {"exec-opts": ["native.cgroupdriver=systemd"]})
    assert fails(schema, tmp_path, {"exec-opts": ["native.cgroupdriver=foo"]}) == (
        "failed to start daemon: native.cgroupdriver option foo not supported"
    )


# ---- the command line (pflag) ------------------------------------------------------------------------


def test_bool_flags_take_values_only_with_equals(schema):
    assert parse_command_line(schema, ["--debug"]).flag_values == {"debug": True}
    assert parse_command_line(schema, ["--debug=false"]).flag_values == {"debug": False}
    assert parse_command_line(schema, ["-D"]).flag_values == {"debug": True}
    assert parse_command_line(schema, ["-D=0"]).flag_values == {"debug": False}
    with pytest.raises(ConfigError) as info:
        parse_command_line(schema, ["--debug", "false"])
    assert info.value.message.startswith("\"engined\" accepts no argument(s).\nSee 'engined --help'.")


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_bool_true(text):
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["yes", "on", "tRuE", ""])
def test_go_bool_invalid(text):
    with pytest.raises(ValueError, match=r"strconv\.ParseBool"):
        parse_go_bool(text)


def test_go_int_bases():
    assert parse_go_int("0x10") == 16 and parse_go_int("010") == 8 and parse_go_int("-5") == -5
    with pytest.raises(ValueError, match=r'strconv\.ParseInt: parsing "abc": invalid syntax'):
        parse_go_int("abc")


def test_flag_syntaxes(schema):
    argv = ["-s", "vfs", "-lDdebug", "--log-driver=none", "-Htcp://:1", "-H=unix:///a", "--label", "a=1"]
    values = parse_command_line(schema, [*argv, "--exec-root", "/e"]).flag_values
    assert values == {
        "storage-driver": "vfs",
        "log-level": "Ddebug",
        "log-driver": "none",
        "hosts": ["tcp://:1", "unix:///a"],
        "labels": ["a=1"],
        "exec-root": "/e",
    }
    # "--" ends the flags: what follows is an argument, and engined takes none
    with pytest.raises(ConfigError, match="accepts no argument"):
        parse_command_line(schema, ["--", "--debug"])
    # a bool shorthand combines with the next one
    assert parse_command_line(schema, ["-Dl", "warn"]).flag_values == {"debug": True, "log-level": "warn"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "unknown flag: --nope"),
        (["-y"], "unknown shorthand flag: 'y' in -y"),
        (["--log-level"], "flag needs an argument: --log-level"),
        (["-l"], "flag needs an argument: 'l' in -l"),
        (["---x"], "bad flag syntax: ---x"),
        (["--debug=maybe"], 'invalid argument "maybe" for "-D, --debug" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
        (["--shutdown-timeout", "x"], 'invalid argument "x" for "--shutdown-timeout" flag: strconv.ParseInt: parsing "x": invalid syntax'),
        (["-H", "udp://x"], 'invalid argument "udp://x" for "-H, --host" flag: Invalid bind address format: udp://x'),
        (["--label", "x"], 'invalid argument "x" for "--label" flag: bad attribute format: x'),
        (["--dns", "x"], 'invalid argument "x" for "--dns" flag: x is not an ip address'),
        (["--add-runtime", "runc=/x"], "invalid argument \"runc=/x\" for \"--add-runtime\" flag: runtime name 'runc' is reserved"),
        (["--add-runtime", "a=/x", "--add-runtime", "a=/y"], "invalid argument \"a=/y\" for \"--add-runtime\" flag: runtime 'a' was already defined"),
        (["--add-runtime", "a"], 'invalid argument "a" for "--add-runtime" flag: invalid runtime argument: a'),
        (["--default-ulimit", "nofile=10:5"], 'invalid argument "nofile=10:5" for "--default-ulimit" flag: ulimit soft limit must be less than or equal to hard limit: 10 > 5'),
        (["--default-ulimit", "bogus=1"], 'invalid argument "bogus=1" for "--default-ulimit" flag: invalid ulimit type: bogus'),
        (["--default-address-pool", "base=10.0.0.0/8,sz=24"], "invalid argument \"base=10.0.0.0/8,sz=24\" for \"--default-address-pool\" flag: unexpected key 'sz' in 'sz=24'"),
        (["--default-shm-size", "lots"], "invalid argument \"lots\" for \"--default-shm-size\" flag: invalid size: 'lots'"),
        (["--host-gateway-ip", "nope"], 'invalid argument "nope" for "--host-gateway-ip" flag: nope is not an ip address'),
    ],
)  # fmt: skip
def test_flag_errors(schema, argv, message):
    with pytest.raises(ConfigError) as info:
        parse_command_line(schema, argv)
    assert info.value.message == f"{message}\nSee 'engined --help'."


def test_repeatable_flags(schema):
    cmdline = parse_command_line(
        schema,
        [
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "tag",
            "--add-runtime",
            "crun=/usr/bin/crun",
            "--default-ulimit",
            "nofile=1024:2048",
            "--default-address-pool",
            "base=10.10.0.0/16,size=24",
            "--default-address-pool",
            "base=10.20.0.0/16,size=26",
            "--default-shm-size",
            "1g",
        ],
    )
    assert cmdline.flag_values == {
        "log-opts": {"max-size": "1m", "tag": ""},
        "runtimes": {"crun": {"path": "/usr/bin/crun"}},
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}},
        "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}, {"base": "10.20.0.0/16", "size": 26}],
        "default-shm-size": 1 << 30,
    }
    assert cmdline.flag_reprs["default-address-pools"] == "10.10.0.0/16 24, 10.20.0.0/16 26"
    assert cmdline.flag_reprs["default-ulimits"] == "[nofile=1024:2048]"
    assert cmdline.flag_reprs["default-shm-size"] == "1GiB"


def test_meta_flags(schema, tmp_path):
    cmdline = parse_command_line(schema, ["--config-file", str(tmp_path / "x.json"), "--validate"])
    assert cmdline.config_file_given and cmdline.validate_only and cmdline.config_file == tmp_path / "x.json"
    assert parse_command_line(schema, ["-v"]).version
    assert parse_command_line(schema, ["--help"]).help
    assert not parse_command_line(schema, []).config_file_given


def test_go_format():
    assert go_format([1, "a", True, None]) == "[1 a true <nil>]"
    assert go_format({"b": 2, "a": [1.5]}) == "map[a:[1.5] b:2]"
    assert go_format(1000000) == "1e+06"


def test_flag_repr_of_empty_list(schema):
    assert flag_repr(schema["labels"], []) == ""


# ---- hosts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("tcp://:2375", "tcp://localhost:2375"),
        (":6666", "tcp://localhost:6666"),
        ("tcp://", "tcp://localhost:2375"),
        ("0.0.0.1:", "tcp://0.0.0.1:2375"),
        ("0.0.0.1:5555/path", "tcp://0.0.0.1:5555/path"),
        ("[::1]:", "tcp://[::1]:2375"),
        ("[::1]:5555/path", "tcp://[::1]:5555/path"),
        ("localhost:5555", "tcp://localhost:5555"),
        ("unix:///run/x.sock", "unix:///run/x.sock"),
        ("unix://", "unix:///run/engine.sock"),
        ("fd://", "fd://"),
        ("fd://3", "fd://3"),
        # a bare path is a tcp address in dockerd 20.10 (and then fails to listen)
        ("/tmp/x.sock", "tcp://localhost:2375/tmp/x.sock"),
        ("", "unix:///run/engine.sock"),
    ],
)
def test_parse_host(value, parsed):
    assert hosts.parse_host(value) == parsed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tcp:a.b.c.d", "Invalid bind address format: tcp:a.b.c.d"),
        ("udp://127.0.0.1", "Invalid bind address format: udp://127.0.0.1"),
        ("tcp://unix:///run/docker.sock", "Invalid proto, expected tcp: unix:///run/docker.sock"),
        ("unix://tcp://x", "Invalid proto, expected unix: tcp://x"),
        ("tcp://host:port", "Invalid bind address format: host:port"),
    ],
)
def test_parse_host_errors(value, message):
    with pytest.raises(hosts.HostError) as info:
        hosts.parse_host(value)
    assert str(info.value) == message


def test_tls_default_host(schema, tmp_path):
    assert hosts.parse_host("", default_to_tls=True) == "tcp://localhost:2376"
    config = config_from(schema, tmp_path, {"tls": True, "tlsverify": False})
    assert config["hosts"] == ["tcp://localhost:2376"]


def test_hosts_are_resolved_and_deduplicated(schema, tmp_path):
    config = config_from(schema, tmp_path, {"hosts": ["tcp://:2375", "localhost:2375", "unix://"]})
    assert config["hosts"] == ["tcp://localhost:2375", "unix:///run/engine.sock"]
    message = fails(schema, tmp_path, {"hosts": ["udp://x"]})
    assert message == "failed to load listeners: error parsing -H udp://x: Invalid bind address format: udp://x"


# ---- TLS ---------------------------------------------------------------------------------------------


def test_tlsverify_anywhere_turns_tls_on(schema, tmp_path):
    config = config_from(schema, tmp_path, {"tlsverify": False, "tlscert": "/c", "tlskey": "/k"})
    assert config["tls"] is True and config["tlsverify"] is False
    config = config_from(schema, tmp_path, None, "--tlsverify", "--tlscacert=/ca", "--tlscert=/c", "--tlskey=/k")
    assert config["tls"] is True and config["tlsverify"] is True


def test_tls_alone_verifies_clients_unless_told_otherwise(schema, tmp_path):
    assert config_from(schema, tmp_path, {"tls": True})["tlsverify"] is True
    assert config_from(schema, tmp_path, {"tls": True, "tlsverify": False})["tlsverify"] is False


def test_tls_default_files_come_from_the_cert_path(schema, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    (tmp_path / "cert.pem").write_text("x")
    config = config_from(schema, tmp_path, None, "--tlsverify")
    assert config["tlscacert"] == str(tmp_path / "ca.pem")
    assert config["tlscert"] == str(tmp_path / "cert.pem")
    assert config["tlskey"] == ""  # absent default files are dropped, as dockerd does


# ---- plugins extend the schema ------------------------------------------------------------------------


def test_plugin_keys_get_flags_and_checks(tmp_path):
    schema = core_schema()

    def mtu(value: int) -> int:
        if value < 68:
            raise ValueError(f"invalid MTU {value}")
        return value

    schema.add("mtu", "int", 1500, "Set the containers network MTU", flags=("--mtu",), validate=mtu, owner="x")
    assert config_from(schema, tmp_path, {"mtu": 9000})["mtu"] == 9000
    assert config_from(schema, tmp_path, None, "--mtu", "1400")["mtu"] == 1400
    assert fails(schema, tmp_path, {"mtu": 10}).endswith("configuration validation from file failed: invalid MTU 10")
    with pytest.raises(ConfigError, match="declared twice"):
        schema.add("mtu", "int", 1)
    with pytest.raises(ConfigError, match="flag --mtu is declared twice"):
        schema.add("mtu2", "int", 1, flags=("--mtu",))


def test_unsupported_keys_are_accepted_and_reported(schema, tmp_path):
    config = config_from(schema, tmp_path, {"cri-containerd": True, "containerd": "/run/c.sock"})
    assert config.unsupported_keys(schema) == ["containerd", "cri-containerd"]


def test_cluster_store_keys_are_checked_together(schema, tmp_path):
    good = {
        "cluster-store": "etcd://127.0.0.1:2379,10.0.0.2:2379",
        "cluster-advertise": "eth0:2376",
        "cluster-store-opts": {"kv.cacertfile": "/ca.pem"},
    }
    config = config_from(schema, tmp_path, good)
    assert config["cluster-store"] == good["cluster-store"] and config.unsupported_keys(schema) == []
    assert "unsupported cluster store" in fails(schema, tmp_path, {"cluster-store": "consul://x:8500"})
    assert "want host:port" in fails(schema, tmp_path, {"cluster-store": "etcd://x"})
    assert "must be accompanied by --cluster-store" in fails(schema, tmp_path, {"cluster-advertise": "1.2.3.4:2376"})
    assert "want <ip|interface>:<port>" in fails(
        schema, tmp_path, {"cluster-store": "etcd://x:1", "cluster-advertise": "eth0"}
    )
    bad_opt = {"cluster-store": "etcd://x:1", "cluster-store-opts": {"kv.path": "/p"}}
    assert "unsupported cluster-store-opts kv.path" in fails(schema, tmp_path, bad_opt)


# ---- SIGHUP ------------------------------------------------------------------------------------------


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


def test_reload_changes_only_reloadable_keys(schema, tmp_path):
    path = tmp_path / "daemon.json"
    write(path, {"debug": False, "data-root": "/a", "max-concurrent-downloads": 7, "labels": ["a=1"]})
    current = load(schema, parse_command_line(schema, ["--config-file", str(path), "-l", "warn"]))
    write(
        path,
        {
            "debug": True,
            "data-root": "/b",
            "labels": ["b=2"],
            "live-restore": True,
            "shutdown-timeout": 30,
            "default-shm-size": "1g",
            "registry-mirrors": ["https://m.example"],
            "runtimes": {"crun": {"path": "/usr/bin/crun"}},
            "default-runtime": "crun",
        },
    )
    result = reload(schema, current)
    new = result.config
    assert new["debug"] is True and new["labels"] == ["b=2"] and new["live-restore"] is True
    assert new["data-root"] == "/a"  # not reloadable
    assert new["log-level"] == "warn"
    assert new["max-concurrent-downloads"] == 3  # absent: back to the default, as dockerd
    assert new["registry-mirrors"] == ["https://m.example/"]
    assert set(result.changed) >= {"debug", "labels", "live-restore", "shutdown-timeout", "default-runtime"}
    attrs = result.attributes
    assert attrs["debug"] == "true"
    assert attrs["labels"] == '["b=2"]'
    assert attrs["registry-mirrors"] == '["https://m.example/"]'
    assert attrs["insecure-registries"] == "[]"
    assert attrs["shutdown-timeout"] == "30"
    assert attrs["default-shm-size"] == str(1 << 30)
    assert attrs["default-runtime"] == "crun"
    assert "crun:/usr/bin/crun" in attrs["runtimes"].split() and "runc:runc" in attrs["runtimes"].split()
    assert attrs["live-restore"] == "true"
    assert attrs["features"] == "map[]"
    assert set(attrs) == {
        "runtimes", "default-runtime", "default-shm-size", "default-ipc-mode", "default-cgroupns-mode", "debug",
        "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts", "shutdown-timeout",
        "features", "cluster-store", "cluster-advertise", "cluster-store-opts", "labels",
        "allow-nondistributable-artifacts", "insecure-registries", "registry-mirrors", "live-restore",
    }  # fmt: skip


def test_reload_rejects_a_bad_file(schema, tmp_path):
    path = tmp_path / "daemon.json"
    write(path, {"debug": False})
    current = load(schema, parse_command_line(schema, ["--config-file", str(path)]))
    write(path, {"debug": True, "bogus": 1})
    with pytest.raises(ConfigError, match="don't match any configuration option: bogus"):
        reload(schema, current)
    write(path, {"max-concurrent-uploads": -1})
    with pytest.raises(ConfigError) as info:
        reload(schema, current)
    assert info.value.message == "file configuration validation failed: invalid max concurrent uploads: -1"
    path.write_text("{")
    with pytest.raises(ConfigError, match="unexpected EOF"):
        reload(schema, current)


def test_reload_keeps_refusing_keys_given_as_flags(schema, tmp_path):
    path = tmp_path / "daemon.json"
    write(path, {})
    current = load(schema, parse_command_line(schema, ["--config-file", str(path), "--debug"]))
    write(path, {"debug": False})
    with pytest.raises(ConfigError, match="debug: \\(from flag: true, from file: false\\)"):
        reload(schema, current)
