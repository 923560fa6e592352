/* Exports wine_main_preload_info as Wine's loader does; prints the table it was given and
   checks each range against /proc/self/maps. */
#include <stdio.h>
#include <string.h>

struct wine_preload_info { void *addr; size_t size; };
__attribute__((visibility("default"))) struct wine_preload_info *wine_main_preload_info = NULL;

static int reserved_in_maps(unsigned long start, unsigned long end) {
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    int found = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi; char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= start && end <= hi && strcmp(perms, "---p") == 0)
            found = 1;
    }
    if (maps) fclose(maps);
    return found;
}

int main(void) {
    if (!wine_main_preload_info) { puts("no table"); return 2; }
    int bad = 0;
    printf("stack %lx\n", (unsigned long)&bad);
    for (struct wine_preload_info *p = wine_main_preload_info; p->size; p++) {
        unsigned long start = (unsigned long)p->addr, end = start + p->size;
        int ok = reserved_in_maps(start, end);
        printf("%lx-%lx %s\n", start, end, ok ? "reserved" : "MISSING");
        bad |= !ok;
    }
    return bad;
}
