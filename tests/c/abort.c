/* Ends with SIGABRT, for the core dump comparison of tests/ia32.rs. */
#include <stdlib.h>

int main(void) {
    abort();
}
