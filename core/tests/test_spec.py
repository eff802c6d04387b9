"""OCI spec generation: capabilities, masked paths, users, ulimits, devices, mounts, resources, namespaces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidParameter
from engine.runtime import MountSpec, SpecInputs, caps, exec_process, linux_resources
from engine.runtime.rootfs import resolve_in_root
from engine.runtime.spec import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    SpecError,
    build_spec,
    container_env,
    merge_tmpfs_options,
    replace_or_append_env,
)
from engine.runtime.users import UserError, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:
alice:x:1000:
bob:x:1001:
audio:x:29:alice,bob
video:x:44:alice
staff:x:50:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def spec(rootfs: Path, config: dict[str, Any] | None = None, hc: dict[str, Any] | None = None, **inputs: Any) -> dict:
    cfg = {"Cmd": ["sh"], "Hostname": "abc", **(config or {})}
    return build_spec(cfg, hc or {}, SpecInputs(container_id="c1", rootfs=rootfs, **inputs))


# ---- capabilities ---------------------------------------------------------------------------------


def test_default_capabilities_are_mobys_14(rootfs: Path) -> None:
    process = spec(rootfs)["process"]
    assert process["capabilities"]["bounding"] == list(caps.DEFAULT_CAPABILITIES)
    assert len(caps.DEFAULT_CAPABILITIES) == 14
    assert (
        process["capabilities"]["effective"] == process["capabilities"]["permitted"] == list(caps.DEFAULT_CAPABILITIES)
    )
    assert "inheritable" not in process["capabilities"]


def test_cap_add_drop_and_all() -> None:
    added = caps.tweak(["net_admin", "CAP_SYS_TIME"], ["chown"])
    assert "CAP_NET_ADMIN" in added and "CAP_SYS_TIME" in added and "CAP_CHOWN" not in added
    assert caps.tweak(["ALL"], ["MKNOD"]) == [c for c in caps.all_capabilities() if c != "CAP_MKNOD"]
    assert caps.tweak(["KILL"], ["ALL"]) == ["CAP_KILL"]
    assert caps.tweak([], ["all"]) == []
    assert caps.tweak(None, None, privileged=True) == list(caps.all_capabilities())
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_FOO"'):
        caps.tweak(["foo"], [])


# ---- masked/readonly paths, privileged --------------------------------------------------------------


def test_masked_and_readonly_paths(rootfs: Path) -> None:
    linux = spec(rootfs)["linux"]
    assert linux["maskedPaths"] == DEFAULT_MASKED_PATHS
    assert linux["readonlyPaths"] == DEFAULT_READONLY_PATHS
    # what dockerd stored in HostConfig at create wins (inspect shows the same lists)
    linux = spec(rootfs, hc={"MaskedPaths": ["/proc/kcore"], "ReadonlyPaths": []})["linux"]
    assert (linux["maskedPaths"], linux["readonlyPaths"]) == (["/proc/kcore"], [])


def test_privileged(rootfs: Path) -> None:
    s = spec(rootfs, hc={"Privileged": True})
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" for d in s["linux"]["devices"])
    assert s["process"]["capabilities"]["bounding"] == list(caps.all_capabilities())
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    cgroup = next(m for m in s["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert "ro" not in sysfs["options"] and "ro" not in cgroup["options"]
    plain = spec(rootfs)
    assert "ro" in next(m for m in plain["mounts"] if m["destination"] == "/sys")["options"]


# ---- users ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "group_add", "expected"),
    [
        ("", [], (0, 0, [])),
        ("alice", [], (1000, 1000, [29, 44])),
        ("1000", [], (1000, 1000, [29, 44])),
        ("bob:staff", [], (1001, 50, [])),  # a given group: no supplementary groups
        ("alice:0", ["staff", "777"], (1000, 0, [50, 777])),
        ("4242", [], (4242, 0, [])),  # numeric and unknown: used as is
        ("4242:4343", [], (4242, 4343, [])),
        ("daemon", ["audio"], (1, 1, [29])),
    ],
)
def test_users(rootfs: Path, user: str, group_add: list[str], expected: tuple) -> None:
    u = resolve_user(rootfs, user, group_add)
    assert (u.uid, u.gid, u.additional_gids) == expected


def test_user_errors(rootfs: Path) -> None:
    with pytest.raises(UserError, match="unable to find user nobody2: no matching entries in passwd file"):
        resolve_user(rootfs, "nobody2")
    with pytest.raises(UserError, match="unable to find group nogroup2: no matching entries in group file"):
        resolve_user(rootfs, "alice:nogroup2")
    with pytest.raises(UserError, match="Unable to find group wheel"):
        resolve_user(rootfs, "alice", ["wheel"])
    with pytest.raises(SpecError, match="unable to find user zed"):
        spec(rootfs, {"User": "zed"})


def test_user_in_spec_and_passwd_symlink_stays_inside(rootfs: Path, tmp_path: Path) -> None:
    s = spec(rootfs, {"User": "alice"}, {"GroupAdd": ["staff"]})
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [29, 44, 50]}
    # an absolute symlink in the image resolves inside the rootfs, never to the host's file
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("/etc/../../etc/shadow-of-host")
    assert resolve_in_root(rootfs, "/etc/passwd") == rootfs / "etc" / "shadow-of-host"
    with pytest.raises(UserError):
        resolve_user(rootfs, "alice")


# ---- process ---------------------------------------------------------------------------------------


def test_env_args_cwd_hostname(rootfs: Path) -> None:
    s = spec(
        rootfs,
        {
            "Entrypoint": ["/bin/ep"],
            "Cmd": ["a", "b"],
            "Env": ["PATH=/x", "FOO=1"],
            "Tty": True,
            "WorkingDir": "/srv/app",
        },
    )
    p = s["process"]
    assert p["args"] == ["/bin/ep", "a", "b"]
    assert p["env"] == ["PATH=/x", "HOSTNAME=abc", "TERM=xterm", "FOO=1"]
    assert p["cwd"] == "/srv/app" and (rootfs / "srv" / "app").is_dir()
    assert p["terminal"] is True and s["hostname"] == "abc"
    assert container_env({"Env": ["A=1"]}) == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=",
        "A=1",
    ]
    assert replace_or_append_env(["A=1", "B=2"], ["B", "A=3", "C=4"]) == ["A=3", "C=4"]
    with pytest.raises(InvalidParameter, match="No command specified"):
        spec(rootfs, {"Cmd": None})
    (rootfs / "file").write_text("")
    with pytest.raises(SpecError, match="Cannot mkdir: /file/sub is not a directory"):
        spec(rootfs, {"WorkingDir": "/file/sub"})


def test_ulimits_oom_score_nnp(rootfs: Path) -> None:
    daemon = {
        "default-ulimits": {
            "nofile": {"Name": "nofile", "Soft": 100, "Hard": 200},
            "nproc": {"Name": "nproc", "Soft": 5, "Hard": 6},
        }
    }
    s = build_spec(
        {"Cmd": ["sh"]},
        {
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "OomScoreAdj": 300,
            "SecurityOpt": ["no-new-privileges"],
        },
        SpecInputs(container_id="c1", rootfs=rootfs),
        daemon,
    )
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
        {"type": "RLIMIT_NPROC", "soft": 5, "hard": 6},
    ]
    assert s["process"]["oomScoreAdj"] == 300 and s["process"]["noNewPrivileges"] is True
    assert build_spec({"Cmd": ["sh"]}, {}, SpecInputs(container_id="c", rootfs=rootfs), {"no-new-privileges": True})[
        "process"
    ]["noNewPrivileges"]
    assert not spec(rootfs, hc={"SecurityOpt": ["no-new-privileges:false"]})["process"]["noNewPrivileges"]
    assert "rlimits" not in spec(rootfs)["process"]


def test_init(rootfs: Path) -> None:
    s = spec(rootfs, {"Cmd": ["sleep", "1"]}, {"Init": True}, init_path="/usr/bin/tini-static")
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sleep", "1"]
    init = next(m for m in s["mounts"] if m["destination"] == "/sbin/docker-init")
    assert init == {
        "destination": "/sbin/docker-init",
        "type": "bind",
        "source": "/usr/bin/tini-static",
        "options": ["bind", "ro"],
    }
    assert spec(rootfs, {"Cmd": ["x"]}, {"Init": False})["process"]["args"] == ["x"]
    assert spec(rootfs, {"Cmd": ["x"]}, {"Init": True, "PidMode": "host"})["process"]["args"] == ["x"]


# ---- devices ----------------------------------------------------------------------------------------


def test_devices_and_cgroup_rules(rootfs: Path) -> None:
    s = spec(
        rootfs,
        hc={
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}],
            "DeviceCgroupRules": ["c 42:* rmw", "b *:* m"],
        },
    )
    dev = s["linux"]["devices"][0]
    st = os.stat("/dev/null")
    assert dev == {
        "path": "/dev/mynull",
        "type": "c",
        "major": 1,
        "minor": 3,
        "fileMode": st.st_mode & 0o7777,
        "uid": 0,
        "gid": 0,
    }
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in rules
    assert {"allow": True, "type": "c", "major": 42, "access": "rmw"} in rules
    assert {"allow": True, "type": "b", "access": "m"} in rules
    with pytest.raises(InvalidParameter, match="invalid device cgroup rule format: 'x 1:2 r'"):
        spec(rootfs, hc={"DeviceCgroupRules": ["x 1:2 r"]})
    with pytest.raises(SpecError, match='error gathering device information while adding custom device "/dev/nope"'):
        spec(rootfs, hc={"Devices": [{"PathOnHost": "/dev/nope", "PathInContainer": "", "CgroupPermissions": "rwm"}]})


# ---- mounts -----------------------------------------------------------------------------------------


def test_default_mounts_and_shm(rootfs: Path) -> None:
    mounts = {m["destination"]: m for m in spec(rootfs, hc={"ShmSize": 1 << 20})["mounts"]}
    assert list(mounts)[:7] == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert mounts["/dev/shm"]["options"] == ["nosuid", "noexec", "nodev", "mode=1777", f"size={1 << 20}"]
    default = {
        m["destination"]: m
        for m in build_spec({"Cmd": ["x"]}, {}, SpecInputs("c", rootfs), {"default-shm-size": "2M"})["mounts"]
    }
    assert "size=2097152" in default["/dev/shm"]["options"]
    assert "/dev/shm" not in {m["destination"] for m in spec(rootfs, hc={"IpcMode": "none"})["mounts"]}
    host = {m["destination"]: m for m in spec(rootfs, hc={"IpcMode": "host"})["mounts"]}
    assert host["/dev/shm"]["source"] == "/dev/shm"


def test_user_mounts_order_override_and_network_files(rootfs: Path, tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("hosts", "resolv.conf", "hostname")}
    s = spec(
        rootfs,
        hc={"ReadonlyRootfs": True},
        mounts=[
            MountSpec("/data/sub", "/srv/b", read_only=True),
            MountSpec("/data", "/srv/a"),
            MountSpec("/dev/shm", "/srv/shm"),
            MountSpec("/etc/hosts", "/srv/myhosts"),
            MountSpec("/tmp", type="tmpfs", options=["size=1m", "exec"]),
        ],
        hosts_path=files["hosts"],
        resolv_conf_path=files["resolv.conf"],
        hostname_path=files["hostname"],
    )
    dests = [m["destination"] for m in s["mounts"]]
    by = {m["destination"]: m for m in s["mounts"]}
    assert dests.index("/data") < dests.index("/data/sub")
    assert by["/data/sub"]["options"] == ["rbind", "ro", "rprivate"]
    assert by["/dev/shm"]["source"] == "/srv/shm" and dests.count("/dev/shm") == 1  # the user's replaces the default
    assert by["/etc/hosts"]["source"] == "/srv/myhosts"  # the user's wins over the network file
    assert by["/etc/resolv.conf"]["source"] == str(files["resolv.conf"])
    assert "ro" in by["/etc/resolv.conf"]["options"]  # read-only rootfs: network files too
    assert by["/tmp"]["options"] == ["nosuid", "nodev", "size=1m", "exec"]
    assert s["root"]["readonly"] is True
    assert "ro" in by["/dev/mqueue"]["options"] or by["/dev/mqueue"]["options"] == ["nosuid", "noexec", "nodev"]
    assert "ro" in by["/sys"]["options"]
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev"], ["exec", "mode=700"]) == [
        "nosuid",
        "nodev",
        "exec",
        "mode=700",
    ]


def test_user_dev_mount_drops_default_dev_submounts(rootfs: Path) -> None:
    dests = [m["destination"] for m in spec(rootfs, mounts=[MountSpec("/dev", "/dev")])["mounts"]]
    assert "/dev/pts" not in dests and "/dev/mqueue" not in dests and dests.count("/dev") == 1


def test_shared_propagation_needs_a_shared_source(rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises((SpecError, InvalidParameter)):
        spec(rootfs, mounts=[MountSpec("/x", str(tmp_path), propagation="bogus")])
    # "/" on this host is shared (systemd-style) or not; either way the rule holds
    try:
        s = spec(rootfs, mounts=[MountSpec("/x", "/", propagation="rshared")])
        assert s["linux"]["rootfsPropagation"] == "shared"
    except SpecError as exc:
        assert "is not a shared mount" in exc.message


# ---- namespaces and resources ---------------------------------------------------------------------------


def test_namespaces(rootfs: Path) -> None:
    def ns(hc: dict[str, Any] | None = None, **kw: Any) -> dict[str, str | None]:
        return {n["type"]: n.get("path") for n in spec(rootfs, hc=hc, **kw)["linux"]["namespaces"]}

    assert ns() == {"mount": None, "network": None, "uts": None, "pid": None, "ipc": None}
    assert "network" not in ns(netns_path=None)
    assert ns(netns_path="/run/netns/x")["network"] == "/run/netns/x"
    host = ns({"PidMode": "host", "IpcMode": "host", "UTSMode": "host"})
    assert set(host) == {"mount", "network"}
    joined = ns(
        {"PidMode": "container:abc", "IpcMode": "container:abc"},
        pid_ns_path="/proc/9/ns/pid",
        ipc_ns_path="/proc/9/ns/ipc",
    )
    assert (joined["pid"], joined["ipc"]) == ("/proc/9/ns/pid", "/proc/9/ns/ipc")
    assert "cgroup" in ns({"CgroupnsMode": "private"})
    assert "hostname" not in spec(rootfs, hc={"UTSMode": "host"})


def test_resources(rootfs: Path) -> None:
    res = linux_resources(
        {
            "Memory": 64 << 20,
            "MemoryReservation": 32 << 20,
            "MemorySwappiness": 10,
            "OomKillDisable": True,
            "NanoCpus": 1_500_000_000,
            "CpuShares": 512,
            "CpusetCpus": "0",
            "PidsLimit": 100,
        }
    )
    assert res["memory"] == {
        "limit": 64 << 20,
        "reservation": 32 << 20,
        "swap": 128 << 20,  # dockerd: swap defaults to twice the memory
        "swappiness": 10,
        "disableOOMKiller": True,
    }
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0"}
    assert res["pids"] == {"limit": 100}
    assert linux_resources({"Memory": 1 << 30, "MemorySwap": -1})["memory"] == {"limit": 1 << 30, "swap": -1}
    assert linux_resources({"CpuPeriod": 50000, "CpuQuota": 25000})["cpu"] == {"period": 50000, "quota": 25000}
    assert linux_resources({"PidsLimit": -1})["pids"] == {"limit": -1}
    assert linux_resources({"PidsLimit": 0}) == {}
    s = spec(rootfs, hc={"Memory": 1 << 26, "Sysctls": {"net.core.somaxconn": "1024"}}, cgroups_path="/engine/c1")
    assert s["linux"]["resources"]["memory"]["limit"] == 1 << 26 and s["linux"]["cgroupsPath"] == "/engine/c1"
    assert s["linux"]["sysctl"] == {"net.core.somaxconn": "1024"}


def test_exec_process(rootfs: Path) -> None:
    s = spec(rootfs, {"Env": ["A=1", "B=2"], "User": "alice", "WorkingDir": "/w"})
    p = exec_process(s, ["ls"], env=["B=3"], tty=True, user="bob", workdir="/tmp", rootfs=rootfs)
    assert p["args"] == ["ls"] and p["terminal"] is True and p["cwd"] == "/tmp"
    assert "A=1" in p["env"] and "B=3" in p["env"] and "TERM=xterm" in p["env"]
    assert p["user"] == {"uid": 1001, "gid": 1001, "additionalGids": [29]}
    assert exec_process(s, ["ls"])["user"] == s["process"]["user"]
    assert exec_process(s, ["ls"], privileged=True)["capabilities"]["bounding"] == list(caps.all_capabilities())
    with pytest.raises(InvalidParameter):
        exec_process(s, [])
    tty_container = spec(rootfs, {"Tty": True, "Env": ["A=1"]})
    assert "TERM=xterm" in exec_process(tty_container, ["ls"])["env"]
    exact = exec_process(tty_container, ["ls"], env=["B=2"], config={"Hostname": "abc", "Env": ["A=1"]})
    assert exact["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=abc",
        "A=1",
        "B=2",
    ]


# ---- seccomp ---------------------------------------------------------------------------------------


def _allowed(seccomp: dict) -> set[str]:
    return {n for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}


def test_seccomp_default_follows_capabilities(rootfs: Path) -> None:
    plain = spec(rootfs)["linux"]["seccomp"]
    assert plain["defaultAction"] == "SCMP_ACT_ERRNO"
    assert plain["architectures"][0] in (
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390X",
    )
    allowed = _allowed(plain)
    assert {"read", "chroot", "clone"} <= allowed
    assert not {"mount", "unshare", "reboot", "acct"} & allowed
    clone = next(r for r in plain["syscalls"] if r["names"] == ["clone"])
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" and clone["args"][0]["valueTwo"] == 0
    assert any(r["names"] == ["clone3"] and r["errnoRet"] == 38 for r in plain["syscalls"])
    admin = spec(rootfs, hc={"CapAdd": ["SYS_ADMIN"], "CapDrop": ["SYS_CHROOT"]})["linux"]["seccomp"]
    assert {"mount", "unshare", "setns", "clone3"} <= _allowed(admin) and "chroot" not in _allowed(admin)
    assert all(r.get("args") is None for r in admin["syscalls"] if r["names"] == ["clone"])
    assert "seccomp" not in spec(rootfs, hc={"Privileged": True})["linux"]


def test_seccomp_custom_profiles(rootfs: Path, tmp_path: Path) -> None:
    profile = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO"}]}'
    custom = spec(rootfs, hc={"SecurityOpt": [f"seccomp={profile}"]})["linux"]["seccomp"]
    assert custom == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    path = tmp_path / "profile.json"
    path.write_text(profile)
    daemon_wide = build_spec({"Cmd": ["x"]}, {}, SpecInputs("c", rootfs), {"seccomp-profile": str(path)})
    assert daemon_wide["linux"]["seccomp"] == custom
    assert (
        "seccomp"
        not in build_spec({"Cmd": ["x"]}, {}, SpecInputs("c", rootfs), {"seccomp-profile": "unconfined"})["linux"]
    )
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        spec(rootfs, hc={"SecurityOpt": ["seccomp={nope"]})
