/* What every libFuzzer harness here checks with: a failed check names its
 * file, line and condition, then aborts, which libFuzzer reports as a crash
 * and keeps the input for. Also declares the entry point libFuzzer calls. */
#ifndef GH_FUZZ_CHECK_H
#define GH_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
