/* Exports wine_main_preload_info as Wine's loader does; prints the table it was given and
   checks each range against /proc/self/maps. Built for x86_64 and, with -m32, for i386. */
#include <stdio.h>
#include <string.h>

struct wine_preload_info { void *addr; size_t size; };
__attribute__((visibility("default"))) struct wine_preload_info *wine_main_preload_info = NULL;

/* The page Wine's preloader makes readable and executable inside a range it reserved. */
#define EXEC_PAGE 0x7ffff000UL

/* Whether [start, end) is wholly covered by PROT_NONE private mappings, but for Wine's
   executable page, which must then be r-xp; sets *exec_page to that page's permissions. */
static int reserved_in_maps(unsigned long start, unsigned long end, char exec_page[8]) {
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    unsigned long covered = start;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi; char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (lo <= EXEC_PAGE && EXEC_PAGE < hi)
            strcpy(exec_page, perms);
        int allowed = strcmp(perms, "---p") == 0
            || (lo == EXEC_PAGE && hi == EXEC_PAGE + 0x1000 && strcmp(perms, "r-xp") == 0);
        if (lo <= covered && covered < hi && allowed)
            covered = hi;
    }
    if (maps) fclose(maps);
    return covered >= end;
}

int main(void) {
    if (!wine_main_preload_info) { puts("no table"); return 2; }
    int bad = 0;
    char exec_page[8] = "";
    printf("stack %lx\n", (unsigned long)&bad);
    for (struct wine_preload_info *p = wine_main_preload_info; p->size; p++) {
        unsigned long start = (unsigned long)p->addr, end = start + p->size;
        int ok = reserved_in_maps(start, end, exec_page);
        printf("%lx-%lx %s\n", start, end, ok ? "reserved" : "MISSING");
        bad |= !ok;
    }
    if (exec_page[0])
        printf("%lx %s\n", EXEC_PAGE, exec_page);
    return bad;
}
