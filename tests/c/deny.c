/* Runs a program with one system call refused with EPERM by a seccomp filter, standing in for a
 * kernel or LSM that refuses it (no_new_privs is set, as an unprivileged filter needs):
 *   deny NR ARG0|any PROGRAM [ARG]...
 * NR is the x86_64 system call number; with ARG0 only calls whose first argument is ARG0 are
 * refused (prctl's option, say).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: deny NR ARG0|any PROGRAM [ARG]...\n");
        return 2;
    }
    unsigned nr = (unsigned)strtoul(argv[1], NULL, 0);
    int any = strcmp(argv[2], "any") == 0;
    unsigned arg0 = any ? 0 : (unsigned)strtoul(argv[2], NULL, 0);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arg0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, any ? SECCOMP_RET_ERRNO | EPERM : SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("deny: seccomp");
        return 2;
    }
    execv(argv[3], argv + 3);
    perror("deny: execv");
    return 127;
}
