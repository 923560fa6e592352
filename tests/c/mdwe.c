/* mdwe PROGRAM [ARG]...: runs PROGRAM under prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), what
   systemd's MemoryDenyWriteExecute=yes sets: no memory may become executable later, nothing
   may be writable and executable. Exit 120 if the kernel refuses MDWE, 121 if exec fails. */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

int main(int argc, char **argv) {
    if (argc < 2) return 122;
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)) {
        perror("PR_SET_MDWE");
        return 120;
    }
    execv(argv[1], argv + 1);
    perror(argv[1]);
    return 121;
}
