/* A sandbox that refuses more, for tests/refusals.rs: installs a seccomp filter that makes the
 * named system calls fail with the given errno (optionally only when their first argument has a
 * given value), optionally a Landlock ruleset that allows executing files only beneath the given
 * paths, then execs the rest of its arguments:
 *
 *   refuse [--exec-only-beneath PATH]... [SYSCALL[:ARG0]=ERRNO]... -- PROGRAM [ARG]...
 *
 * SYSCALL is a name from the table below or a number; ERRNO a name (EPERM, ENOSYS, EACCES,
 * EINVAL) or a number. Everything else is allowed. Any failure to set up exits 99 with a message,
 * so that a scenario that does not hold cannot pass for one that does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct { const char *name; long nr; } syscalls[] = {
    {"prctl", SYS_prctl},           {"memfd_create", SYS_memfd_create}, {"getrandom", SYS_getrandom},
    {"faccessat2", 439},            {"faccessat", SYS_faccessat},       {"execveat", SYS_execveat},
    {"openat", SYS_openat},
};

static const struct { const char *name; int value; } errnos[] = {
    {"EPERM", EPERM}, {"ENOSYS", ENOSYS}, {"EACCES", EACCES}, {"EINVAL", EINVAL},
};

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "refuse: %s: %s\n", what, arg);
    exit(99);
}

static long number(const char *text, const char *what)
{
    char *end;
    long value = strtol(text, &end, 0);
    if (*text == '\0' || *end != '\0')
        die(what, text);
    return value;
}

#define MAX_RULES 8

int main(int argc, char **argv)
{
    struct sock_filter code[8 + 6 * MAX_RULES];
    unsigned n = 0;
    code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    int ruleset = -1;
    int rules = 0;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--exec-only-beneath") == 0 && i + 1 < argc) {
            if (ruleset < 0) {
                struct landlock_ruleset_attr attr = {.handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE};
                ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
                if (ruleset < 0)
                    die("landlock_create_ruleset", strerror(errno));
            }
            const char *path = argv[++i];
            struct landlock_path_beneath_attr beneath = {.allowed_access = LANDLOCK_ACCESS_FS_EXECUTE};
            beneath.parent_fd = open(path, O_PATH | O_CLOEXEC);
            if (beneath.parent_fd < 0)
                die(path, strerror(errno));
            if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) != 0)
                die("landlock_add_rule", strerror(errno));
            close(beneath.parent_fd);
            continue;
        }
        char rule[256];
        snprintf(rule, sizeof rule, "%s", argv[i]);
        char *value = strchr(rule, '=');
        if (!value || ++rules > MAX_RULES)
            die("bad rule (SYSCALL[:ARG0]=ERRNO)", argv[i]);
        *value++ = '\0';
        char *arg0 = strchr(rule, ':');
        if (arg0)
            *arg0++ = '\0';
        long nr = -1;
        for (size_t k = 0; k < sizeof syscalls / sizeof *syscalls; k++)
            if (strcmp(rule, syscalls[k].name) == 0)
                nr = syscalls[k].nr;
        if (nr < 0)
            nr = number(rule, "unknown system call");
        long err = -1;
        for (size_t k = 0; k < sizeof errnos / sizeof *errnos; k++)
            if (strcmp(value, errnos[k].name) == 0)
                err = errnos[k].value;
        if (err < 0)
            err = number(value, "unknown errno");
        unsigned ret = SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        if (arg0) {
            /* The low 32 bits of the first argument (prctl options are ints). */
            code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 3);
            code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
            code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)number(arg0, "bad ARG0"), 0, 1);
            code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret);
        } else {
            code[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1);
            code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ret);
        }
    }
    if (i + 1 >= argc)
        die("usage", "refuse [--exec-only-beneath PATH]... [SYSCALL[:ARG0]=ERRNO]... -- PROGRAM [ARG]...");
    code[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

    if (ruleset >= 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
        if (errno != EPERM || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
            die("landlock_restrict_self", strerror(errno));
    }
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = code};
    /* Root may install a filter without no_new_privs; anyone else needs it. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        if (errno != EACCES || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
            die("seccomp", strerror(errno));
    }
    execv(argv[i + 1], argv + i + 1);
    die("exec", strerror(errno));
}
