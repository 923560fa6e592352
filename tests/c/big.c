/* A program with 100 MiB of initialised data, for the memory bound of streamed programs: it
 * prints its own peak and current resident size (VmHWM, VmRSS; the preloader ran in the same
 * address space, so VmHWM covers it too) and the size of /proc/self/exe. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

char big[100 << 20] = {1};

int main(void)
{
    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    while (status && fgets(line, sizeof line, status))
        if (!strncmp(line, "VmHWM:", 6) || !strncmp(line, "VmRSS:", 6))
            fputs(line, stdout);
    struct stat exe;
    if (stat("/proc/self/exe", &exe) == 0)
        printf("exe_size: %lld\n", (long long)exe.st_size);
    return big[0] == 1 ? 0 : 1;
}
