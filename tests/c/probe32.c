/* The i386 probe (tests/ia32.rs): built with gcc -m32, it reports as key=value lines what a
 * program sees of its exec through the kernel's IA32 emulation: arguments, environment, the
 * auxv on its stack and in /proc/self/auxv, its maps, the mm fields in /proc/self/stat, comm,
 * exe, personality, the signal mask and ignored signals, where the stack pointer and the heap are,
 * and whether the compat ABI works
 * (a signal handler with SA_SIGINFO returning through the 32-bit vDSO, a thread, a fork, the
 * vDSO's clock_gettime). */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/personality.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
extern char end;

static size_t read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    size_t len = 0;
    ssize_t n;
    while (len < size && (n = read(fd, buf + len, size - len)) > 0) len += (size_t)n;
    close(fd);
    return len;
}

static volatile sig_atomic_t signalled;
static void on_signal(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    /* The compat frame: a 32-bit ucontext whose stack pointer lies on our own stack. */
    if (info->si_signo == sig && uc->uc_mcontext.gregs[REG_ESP] != 0) signalled = sig;
}

static void *thread_main(void *arg) {
    return (char *)arg + 1;
}

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv.%d=%s\n", i, argv[i]);
    int envc = 0;
    for (char **e = environ; *e; e++) printf("env.%d=%s\n", envc++, *e);
    printf("addr.argv=%p\n", (void *)argv);

    Elf32_auxv_t *aux = (Elf32_auxv_t *)(environ + envc + 1);
    for (; aux->a_type != AT_NULL; aux++) printf("aux.%u=0x%x\n", aux->a_type, aux->a_un.a_val);
    printf("platform=%s\nexecfn=%s\n", (char *)getauxval(AT_PLATFORM), (char *)getauxval(AT_EXECFN));

    static unsigned char auxv[1024];
    size_t n = read_file("/proc/self/auxv", (char *)auxv, sizeof auxv);
    printf("proc_auxv=");
    for (size_t i = 0; i < n; i++) printf("%02x", auxv[i]);
    printf("\n");

    static char text[65536];
    n = read_file("/proc/self/maps", text, sizeof text - 1);
    text[n] = 0;
    int line = 0;
    for (char *s = strtok(text, "\n"); s; s = strtok(NULL, "\n")) printf("map.%02d=%s\n", line++, s);

    n = read_file("/proc/self/stat", text, sizeof text - 1);
    text[n] = 0;
    if (n && text[n - 1] == '\n') text[n - 1] = 0;
    char *field = strrchr(text, ')') + 2; /* field 3 */
    for (int i = 3; field && *field; i++) {
        char *next = strchr(field, ' ');
        if (next) *next = 0;
        if ((i >= 26 && i <= 28) || i >= 45) printf("stat.%d=%s\n", i, field);
        field = next ? next + 1 : NULL;
    }
    n = read_file("/proc/self/comm", text, sizeof text - 1);
    text[n] = 0;
    printf("comm=%s", text);
    ssize_t len = readlink("/proc/self/exe", text, sizeof text - 1);
    text[len > 0 ? len : 0] = 0;
    printf("exe=%s\n", text);
    n = read_file("/proc/self/cmdline", text, sizeof text);
    for (size_t i = 0; i < n; i++) if (!text[i]) text[i] = ' ';
    printf("cmdline=%.*s\n", (int)n, text);
    printf("personality=0x%x\n", personality(0xffffffff));
    struct utsname uts;
    uname(&uts);
    printf("machine=%s\n", uts.machine);
    printf("addr.brk_from_end=0x%lx\n", (unsigned long)((char *)sbrk(0) - &end));

    /* The signal state the exec passed on: the mask and the ignored signals. */
    n = read_file("/proc/self/status", text, sizeof text - 1);
    text[n] = 0;
    for (char *s = strtok(text, "\n"); s; s = strtok(NULL, "\n"))
        if (!strncmp(s, "SigBlk:", 7) || !strncmp(s, "SigIgn:", 7)) printf("status.%.6s=%s\n", s, s + 8);

    struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("signal=%d\n", signalled);

    pthread_t thread;
    void *result = NULL;
    if (pthread_create(&thread, NULL, thread_main, (void *)41) == 0) pthread_join(thread, &result);
    printf("thread=%d\n", (int)(intptr_t)result);

    pid_t child = fork();
    if (child == 0) _exit(7);
    int status = 0;
    waitpid(child, &status, 0);
    printf("fork=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("clock=%s\n", ts.tv_sec > 1700000000 ? "ok" : "bad");
    fflush(stdout);
    return 3;
}
