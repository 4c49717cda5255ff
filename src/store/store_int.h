/* Private to src/store: helpers that both engines use. */
#ifndef GH_STORE_STORE_INT_H
#define GH_STORE_STORE_INT_H

#include "store/store.h"

/* Encodes <n> strings as a compact JSON array; the caller frees the result.
 * NULL when out of memory. */
char *gh_store__list_encode(const char (*items)[GH_STORE_TOKEN_SIZE], size_t n);

/* Decodes the JSON array <text> (<len> bytes; NULL is refused) into <items>;
 * GH_ERROR for a list the wrappers would have refused (too many, too long,
 * not strings). Fills no error message: the caller names the column. */
int gh_store__list_decode(const char *text, size_t len, char (*items)[GH_STORE_TOKEN_SIZE],
                          size_t max, size_t *n);

#endif
