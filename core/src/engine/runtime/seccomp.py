"""Seccomp for containers as dockerd 20.10 applies it.

Profiles come in Docker's format (``defaultAction``, ``archMap``, ``syscalls`` whose entries may carry
``includes``/``excludes`` on capabilities, architectures and kernel versions); we resolve those for
the container's capabilities and this host and hand runc an OCI ``linux.seccomp``. Selection:
``--privileged`` or ``--security-opt seccomp=unconfined`` -> none; ``seccomp=<profile JSON>`` (the CLI
sends the file's content) -> that profile; else daemon.json ``seccomp-profile`` (a path or
"unconfined"); else the default profile below: an allowlist, with namespace-creating ``clone`` flags,
mount, module loading, clock setting, ptrace-like calls ... only allowed with the capability that
guards them (the same rules as Docker's default).
"""

from __future__ import annotations

import json
import os
import platform
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import InvalidParameter

UNCONFINED = "unconfined"

# the namespace flags clone(2) may not use without CAP_SYS_ADMIN:
# CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET
CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
ENOSYS = 38

_ALWAYS = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd
signalfd4 sigprocmask sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64
ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4
waitid waitpid write writev
""".split()  # noqa: SIM905 (a word list reads better than 330 quoted lines)

#: syscalls allowed only with a capability
_BY_CAPABILITY = {
    "CAP_SYS_ADMIN": """bpf clone fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
        move_mount name_to_handle_at open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
        umount umount2 unshare""".split(),  # noqa: SIM905
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}

ARCH_MAP = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
}


def default_profile() -> dict[str, Any]:
    """The default profile in Docker's format (with includes/excludes), for this machine's arch."""
    arch = platform.machine()
    syscalls: list[dict[str, Any]] = [
        {"names": _ALWAYS, "action": "SCMP_ACT_ALLOW"},
        # ptrace of one's own children is harmless since kernel 4.8 (seccomp is re-checked after it)
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"} for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)],
        },
        {
            "names": ["arch_prctl", "modify_ldt"],
            "action": "SCMP_ACT_ALLOW",
            "includes": {"arches": ["amd64", "x32", "x86"]},
        },
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {
                    "index": 1 if arch == "s390x" else 0,
                    "value": CLONE_NS_FLAGS,
                    "valueTwo": 0,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        # clone3 cannot be filtered on its flags (they are behind a pointer): make libc fall back to clone
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    ]
    for cap, names in _BY_CAPABILITY.items():
        syscalls.append({"names": names, "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": a[0], "subArchitectures": a[1:]} for a in ARCH_MAP.values()],
        "syscalls": syscalls,
    }


@cache
def kernel_version() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


@cache
def supported() -> bool:
    """The kernel has seccomp filters (``Seccomp:`` in /proc/self/status)."""
    try:
        return "Seccomp:" in Path("/proc/self/status").read_text()
    except OSError:
        return False


_GO_ARCHES = {
    "x86_64": ["amd64", "x86", "x32"],
    "aarch64": ["arm64", "arm"],
    "ppc64le": ["ppc64le"],
    "s390x": ["s390x", "s390"],
}


def _applies(rule: dict[str, Any], caps: set[str], arches: list[str]) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and not set(inc["arches"]) & set(arches):
        return False
    if inc.get("minKernel"):
        major, _, minor = str(inc["minKernel"]).partition(".")
        if kernel_version() < (int(major), int(minor or 0)):
            return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and set(exc["arches"]) & set(arches))


def to_oci(profile: dict[str, Any], capabilities: list[str]) -> dict[str, Any]:
    """A Docker-format profile resolved for the container's capabilities and this host -> OCI seccomp."""
    if "defaultAction" not in profile:
        raise InvalidParameter("decoding seccomp profile failed: the profile has no defaultAction")
    machine = platform.machine()
    arches = _GO_ARCHES.get(machine, [machine])
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("archMap"):
        native = ARCH_MAP.get(machine, [])
        for entry in profile["archMap"]:
            if native and entry.get("architecture") == native[0]:
                out["architectures"] = [entry["architecture"], *entry.get("subArchitectures", [])]
    elif profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    caps = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, arches):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names:
            continue
        entry: dict[str, Any] = {"names": list(names), "action": rule["action"]}
        if rule.get("args"):
            entry["args"] = [
                {k: v for k, v in a.items() if k in ("index", "value", "valueTwo", "op")} for a in rule["args"]
            ]
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


def for_container(
    host_config: dict[str, Any], capabilities: list[str], daemon_profile: str = ""
) -> dict[str, Any] | None:
    """The OCI seccomp section for a container, or None (unconfined)."""
    if host_config.get("Privileged") or not supported():
        return None
    chosen: str | None = None
    for opt in host_config.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "seccomp":
            chosen = value
    if chosen is None:
        chosen = daemon_profile or ""
        if chosen and chosen != UNCONFINED:
            try:
                chosen = Path(chosen).read_text()
            except OSError as exc:
                raise InvalidParameter(f"opening seccomp profile ({chosen}) failed: {exc.strerror}") from None
    if chosen == UNCONFINED:
        return None
    if not chosen:
        return to_oci(default_profile(), capabilities)
    try:
        profile = json.loads(chosen)
    except ValueError as exc:
        raise InvalidParameter(f"decoding seccomp profile failed: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter("decoding seccomp profile failed: not a JSON object")
    return to_oci(profile, capabilities)
