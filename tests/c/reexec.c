/* Re-executes itself through /proc/self/exe, as busybox, node and Go's os.Executable users do:
 *   reexec [ARG]...   prints its uid, then runs /proc/self/exe child ARG...
 *   reexec child ...  prints its arguments and what /proc/self/exe names
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        char exe[4096];
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[len < 0 ? 0 : len] = 0;
        printf("child of itself: argc=%d uid=%d exe=%s\n", argc, (int)getuid(), exe);
        for (int i = 2; i < argc; i++)
            printf("  arg %s\n", argv[i]);
        return 7;
    }
    printf("parent: uid=%d\n", (int)getuid());
    fflush(stdout);
    char *child[argc + 2];
    child[0] = argv[0];
    child[1] = "child";
    for (int i = 1; i < argc; i++)
        child[i + 1] = argv[i];
    child[argc + 1] = NULL;
    execv("/proc/self/exe", child);
    perror("execv /proc/self/exe");
    return 1;
}
