/* Test program for the differential tests: prints its arguments and environment (escaped), runs
 * a thread that touches thread-local storage, and on request creates a file, exits with a code
 * or aborts:
 *   hello [ARG]... [--touch FILE] [--exit N] [--abort]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread long tls_value = 40;

static void *thread_main(void *arg)
{
    tls_value += (long)arg; /* this thread's copy: 40 + 2 */
    return (void *)tls_value;
}

static void print_escaped(const char *label, int index, const char *s)
{
    printf("%s[%d]=\"", label, index);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == '"')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
    printf("\"\n");
}

int main(int argc, char **argv, char **envp)
{
    pthread_t thread;
    void *result;
    if (pthread_create(&thread, NULL, thread_main, (void *)2L) != 0 || pthread_join(thread, &result) != 0) {
        fprintf(stderr, "hello: pthread failed\n");
        return 99;
    }
    printf("thread=%ld main_tls=%ld\n", (long)result, tls_value);
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        print_escaped("argv", i, argv[i]);
    for (int i = 0; envp[i]; i++)
        print_escaped("env", i, envp[i]);
    fprintf(stderr, "hello: done printing\n");
    fflush(NULL);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--touch") && i + 1 < argc) {
            int fd = open(argv[++i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) {
                perror(argv[i]);
                return 98;
            }
            close(fd);
        } else if (!strcmp(argv[i], "--exit") && i + 1 < argc) {
            return atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--abort")) {
            abort();
        }
    }
    return 0;
}
