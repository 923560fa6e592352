/* stack_below NEEDLE [plant]: prints "found" if NEEDLE lies in [stack] below this frame (left
 * there before main ran, or, with "plant", by a call made just before the scan), else "clean". */
#define _GNU_SOURCE
#include <alloca.h>
#include <stdio.h>
#include <string.h>

/* Writes NEEDLE 8 KiB below its frame, deeper than the scan's own calls reach. */
static __attribute__((noinline)) void plant(const char *needle) {
    volatile char *deep = alloca(8192);
    for (size_t i = 0; needle[i]; i++)
        deep[i] = needle[i];
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    unsigned long start = 0, end = 0;
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return 2;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "[stack]"))
            sscanf(line, "%lx-%lx", &start, &end);
    fclose(maps);
    if (argc > 2)
        plant(argv[1]);
    char here;
    unsigned long below = (unsigned long)&here - 64;
    if (!start || start >= below)
        return 2;
    const void *at = memmem((const void *)start, below - start, argv[1], strlen(argv[1]));
    puts(at ? "found" : "clean");
    return 0;
}
