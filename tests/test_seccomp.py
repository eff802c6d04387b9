"""The default seccomp profile, seccomp=FILE|unconfined and no-new-privileges, seen from inside containers.

A tiny static C program (tests/data/syscall_probe.c, built here with gcc -static) calls each syscall with
harmless arguments and prints its errno. EXPECTED is what dockerd 20.10.24 (Debian's, the reference daemon
of scripts/reference-dockerd) printed with the same flags on this kernel; engine must print the same.
``test_the_table_is_dockerds`` re-checks the table against a running reference daemon when
ENGINE_REFERENCE_DOCKER_HOST names one (``scripts/reference-compare`` does it end to end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine_testkit.cli import DockerCLI
from engine_testkit.daemon import EngineDaemon

NAME_PREFIX = "seccomptest-"
PROBE_SOURCE = Path(__file__).parent / "data" / "syscall_probe.c"
IMAGE = "seccomptest-probe:latest"
# ptrace (PTRACE_TRACEME) last: it makes the probe a tracee, harmless for the calls before it
CALLS = ["mount", "unshare", "unshare_user", "keyctl", "bpf", "kexec_load", "open_by_handle_at",
         "personality", "personality_linux32", "personality_norandom", "ptrace"]  # fmt: skip
EPERM, ENOENT, EFAULT, ENOSYS = 1, 2, 14, 38

_DEFAULT = {"mount": EPERM, "unshare": EPERM, "unshare_user": EPERM, "keyctl": EPERM, "bpf": EPERM,
            "kexec_load": EPERM, "open_by_handle_at": EPERM, "personality": 0, "personality_linux32": 0,
            "personality_norandom": EPERM, "ptrace": 0}  # fmt: skip

_UNCONFINED = {"mount": ENOENT, "unshare": EPERM, "unshare_user": 0, "keyctl": 0, "bpf": EPERM,
               "kexec_load": ENOSYS, "open_by_handle_at": EFAULT, "personality": 0, "personality_linux32": 0,
               "personality_norandom": 0, "ptrace": 0}  # fmt: skip

#: flags -> {syscall: errno} as dockerd 20.10.24 gives them here (0: the kernel accepted the call;
#: EPERM from the filter; any other errno is the kernel's own answer, past seccomp).
EXPECTED: dict[str, dict[str, int]] = {
    "": _DEFAULT,
    "--security-opt no-new-privileges": _DEFAULT,
    # the CAP_SYS_ADMIN group opens (mount fails only because /mnt is absent); keyctl, kexec_load stay shut;
    # bpf passes the filter and the kernel refuses it (unprivileged_bpf_disabled=2)
    "--cap-add SYS_ADMIN": {**_DEFAULT, "mount": ENOENT, "unshare": 0, "unshare_user": 0},
    "--cap-add SYS_PTRACE": _DEFAULT,
    "--cap-add DAC_READ_SEARCH": {**_DEFAULT, "open_by_handle_at": EFAULT},
    # no filter at all: the kernel answers (no CAP_SYS_ADMIN for mount/unshare(NEWUTS); no kexec here)
    "--security-opt seccomp=unconfined": _UNCONFINED,
    # a custom profile: everything allowed except unshare
    "--security-opt seccomp=DENY_UNSHARE": {**_UNCONFINED, "unshare_user": EPERM},
}

#: --privileged: no filter and every capability. Not checked against the reference here: this host's
#: bounding set lacks CAP_SYS_RESOURCE, and dockerd's runc then refuses to start privileged containers
#: ("unable to apply caps"); engine grants the capabilities the host has.
PRIVILEGED = {"mount": ENOENT, "unshare": 0, "unshare_user": 0, "keyctl": 0, "kexec_load": ENOSYS,
              "open_by_handle_at": EFAULT, "personality": 0, "personality_linux32": 0,
              "personality_norandom": 0, "ptrace": 0}  # fmt: skip

DENY_UNSHARE = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.fixture(scope="module")
def probe_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed")
    ctx = tmp_path_factory.mktemp("probe")
    subprocess.run(["gcc", "-static", "-O2", "-o", str(ctx / "probe"), str(PROBE_SOURCE)], check=True)
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY probe /bin/probe\n")
    (ctx / "deny-unshare.json").write_text(json.dumps(DENY_UNSHARE))
    return ctx


def build_probe(docker: DockerCLI, ctx: Path) -> str:
    docker("build", "-q", "-t", IMAGE, str(ctx))
    return IMAGE


def run_probe(docker: DockerCLI, flags: str, ctx: Path) -> dict[str, int]:
    args = flags.replace("DENY_UNSHARE", str(ctx / "deny-unshare.json")).split()
    out = docker("run", "--rm", "--network", "none", *args, IMAGE, "probe", *CALLS).stdout
    return {name: int(code) for name, code in (line.split() for line in out.splitlines() if line.strip())}


@pytest.fixture(scope="module")
def probe(docker: DockerCLI, busybox: str, probe_context: Path):
    build_probe(docker, probe_context)
    yield probe_context
    docker.run("rmi", IMAGE)


@pytest.mark.parametrize("flags", list(EXPECTED))
def test_syscalls_refused_or_allowed_as_dockerd(docker: DockerCLI, probe: Path, flags: str) -> None:
    assert run_probe(docker, flags, probe) == EXPECTED[flags]


def test_privileged_has_no_filter(docker: DockerCLI, probe: Path) -> None:
    got = run_probe(docker, "--privileged", probe)
    got.pop("bpf")  # with every capability the kernel's answer depends on its bpf configuration
    assert got == PRIVILEGED


def test_no_new_privileges_reaches_the_process(docker: DockerCLI, busybox: str) -> None:
    def nnp(*flags: str) -> str:
        out = docker("run", "--rm", "--network", "none", *flags, busybox, "grep", "NoNewPrivs", "/proc/self/status")
        return out.out.split()[-1]

    assert nnp() == "0"
    assert nnp("--security-opt", "no-new-privileges") == "1"
    assert nnp("--security-opt", "no-new-privileges=true") == "1"
    assert nnp("--security-opt", "no-new-privileges=false") == "0"
    bad = docker.fails("run", "--rm", "--security-opt", "no-new-privileges=maybe", busybox, "true")
    assert 'invalid --security-opt 2: "no-new-privileges=maybe"' in bad.stderr


def test_bad_profiles_are_refused_with_dockerds_messages(docker: DockerCLI, busybox: str, tmp_path: Path) -> None:
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}))  # fmt: skip
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"name": "mount", "names": ["umount"], "action": "SCMP_ACT_ERRNO"}]}))  # fmt: skip
    for path, message in (
        (both, "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'"),
        (names, "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"),
    ):  # fmt: skip
        result = docker.fails("run", "--rm", "--security-opt", f"seccomp={path}", busybox, "true")
        assert message in result.stderr


def test_daemon_seccomp_profile_and_no_new_privileges(probe_context: Path, busybox_tar: bytes) -> None:
    """daemon.json ``seccomp-profile`` (a file) and ``no-new-privileges`` apply to every new container."""
    daemon = EngineDaemon(
        config={
            "storage-driver": os.environ.get("ENGINE_TEST_STORAGE_DRIVER", "overlay2"),
            "seccomp-profile": str(probe_context / "deny-unshare.json"),
            "no-new-privileges": True,
        }
    )
    with daemon:
        docker = DockerCLI(daemon.host)
        docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_tar)
        build_probe(docker, probe_context)
        assert run_probe(docker, "", probe_context) == EXPECTED["--security-opt seccomp=DENY_UNSHARE"]
        profile = str(probe_context / "deny-unshare.json")
        assert docker("info", "--format", "{{json .SecurityOptions}}").out == f'["name=seccomp,profile={profile}"]'
        status = docker("run", "--rm", "--network", "none", IMAGE, "grep", "NoNewPrivs", "/proc/self/status")
        assert status.out.split()[-1] == "1"
        # the container's own choice wins over the daemon's
        assert run_probe(docker, "", probe_context) != run_probe(
            docker, "--security-opt seccomp=unconfined", probe_context
        )


@pytest.mark.skipif(not os.environ.get("ENGINE_REFERENCE_DOCKER_HOST"), reason="no reference dockerd named")
def test_the_table_is_dockerds(probe_context: Path, busybox_tar: bytes) -> None:
    """EXPECTED is what the reference dockerd gives (ENGINE_REFERENCE_DOCKER_HOST=unix:///... of
    scripts/reference-dockerd start)."""
    ref = DockerCLI(os.environ["ENGINE_REFERENCE_DOCKER_HOST"])
    ref("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=busybox_tar)
    build_probe(ref, probe_context)
    try:
        for flags, expected in EXPECTED.items():
            assert run_probe(ref, flags, probe_context) == expected, flags
    finally:
        ref.run("rmi", IMAGE)


def test_an_unreadable_daemon_profile_stops_start_up(tmp_path: Path) -> None:
    daemon = EngineDaemon(config={"storage-driver": "vfs", "seccomp-profile": str(tmp_path / "nope.json")})
    try:
        with pytest.raises(RuntimeError, match="engined exited"):
            daemon.start()
        assert (
            f"failed to start daemon: opening seccomp profile ({tmp_path}/nope.json) failed: "
            f"open {tmp_path}/nope.json: no such file or directory"
        ) in daemon.log()
    finally:
        daemon.cleanup()
