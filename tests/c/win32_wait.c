/* A 32-bit Windows console program (i686-w64-mingw32-gcc) for tests/wine.rs: prints one line,
   then waits for the end of its input, so that the test can read the wine process's
   /proc/PID/maps while it runs. */
#include <stdio.h>

int main(void) {
    char line[16];
    puts("hello from i386 Windows");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
