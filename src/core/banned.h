/* Functions that are banned from the code base (as in curl and HAProxy): each
 * has a bounded replacement. Included in every compilation unit with -include. */
#ifndef GH_CORE_BANNED_H
#define GH_CORE_BANNED_H
#include <stdio.h>
#include <string.h>
#undef strcpy
#define strcpy(a, b) BANNED_use_snprintf_or_memcpy(a, b)
#undef strcat
#define strcat(a, b) BANNED_use_snprintf_or_memcpy(a, b)
#undef sprintf
#define sprintf(...) BANNED_use_snprintf(__VA_ARGS__)
#undef vsprintf
#define vsprintf(...) BANNED_use_vsnprintf(__VA_ARGS__)
#undef gets
#define gets(a) BANNED_use_fgets(a)
#endif
