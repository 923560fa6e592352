/* Branches on a heap word it never wrote, for valgrind's memcheck to report (the pointer goes
 * through a volatile, so the compiler cannot see that the word is never written). */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    int *volatile words = malloc(4 * sizeof *words);
    puts(words[3] ? "set" : "clear");
    free(words);
    return 0;
}
