/* fault NR INDEX VALUE ERRNO PROGRAM [ARG]...: runs PROGRAM with a seccomp filter under which
   system call NR fails with ERRNO (0: returns 0 without running, a fake success) whenever its
   argument INDEX equals VALUE (INDEX -1: always). A fault-injection double for the kernel. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 6) return 122;
    unsigned nr = strtoul(argv[1], 0, 0);
    int index = atoi(argv[2]);
    unsigned long long value = strtoull(argv[3], 0, 0);
    unsigned err = strtoul(argv[4], 0, 0);
    struct sock_filter any[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    unsigned arg = index < 0 ? 0 : offsetof(struct seccomp_data, args) + 8 * index;
    struct sock_filter one[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)value, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)(value >> 32), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = index < 0 ? (struct sock_fprog){sizeof any / sizeof any[0], any}
                                       : (struct sock_fprog){sizeof one / sizeof one[0], one};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("seccomp");
        return 120;
    }
    execv(argv[5], argv + 5);
    perror(argv[5]);
    return 121;
}
