/* syscall_probe NAME...: call each named syscall with harmless arguments and print "NAME ERRNO"
 * (0 = the call got past seccomp and the kernel accepted it). Built with gcc -static by the seccomp
 * tests and copied into a busybox image; a seccomp refusal shows as EPERM (1), or ENOSYS (38) for clone3. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *n) {
    if (!strcmp(n, "mount")) return syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, 0);
    if (!strcmp(n, "unshare")) return syscall(SYS_unshare, CLONE_NEWUTS);
    if (!strcmp(n, "unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
    /* KEYCTL_GET_KEYRING_ID of the session keyring, do not create */
    if (!strcmp(n, "keyctl")) return syscall(SYS_keyctl, 0, -3, 0);
    /* PTRACE_TRACEME is always permitted by the kernel: only seccomp can refuse it */
    if (!strcmp(n, "ptrace")) return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    /* BPF_PROG_LOAD with a NULL attr: EFAULT/EINVAL from the kernel if seccomp lets it through */
    if (!strcmp(n, "bpf")) return syscall(SYS_bpf, 5, 0, 0);
    if (!strcmp(n, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0);
    if (!strcmp(n, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, 0, 0);
    /* 0xffffffff only queries the persona; PER_LINUX32 (8) is on the allowlist; ADDR_NO_RANDOMIZE is not */
    if (!strcmp(n, "personality")) return syscall(SYS_personality, 0xffffffff);
    if (!strcmp(n, "personality_linux32")) return syscall(SYS_personality, PER_LINUX32);
    if (!strcmp(n, "personality_norandom")) return syscall(SYS_personality, ADDR_NO_RANDOMIZE);
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        printf("%s %d\n", argv[i], r == -1 ? errno : 0);
        fflush(stdout);
        /* undo a persona change so the next probe runs as before */
        if (!strncmp(argv[i], "personality_", 12) && r != -1) syscall(SYS_personality, (unsigned long)r);
    }
    return 0;
}
