/* For tests/refusals.rs: prints what a launch randomises: the 16 AT_RANDOM bytes (hex), the
 * program's load address, its initial break and a stack address. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

int main(void)
{
    const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
    printf("at_random=");
    for (int i = 0; i < 16; i++)
        printf("%02x", random[i]);
    int local = 0;
    printf("\nmain=%p\nbrk=%p\nstack=%p\n", (void *)main, sbrk(0), (void *)&local);
    return 0;
}
