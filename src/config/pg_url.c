/* Checking a PostgreSQL URL without connecting (see pg_url.h). */
#include "config/pg_url.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The parameters of libpq 15 whose values are a fixed set, and the set
 * (libpq-connect, "Parameter Key Words"). */
static const struct {
    const char *keyword;
    const char *const values[8];
} enumerated[] = {
    {"target_session_attrs",
     {"any", "read-write", "read-only", "primary", "standby", "prefer-standby", NULL}},
    {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL}},
    {"gssencmode", {"disable", "prefer", "require", NULL}},
    {"channel_binding", {"disable", "prefer", "require", NULL}},
};

/* <msg> into <why>, each double-quoted token that appears in the URL's
 * user information (user, password) written as "...". */
static void redacted(const char *msg, const char *url, char *why, size_t whylen)
{
    const char *scheme = strstr(url, "://"), *at, *end;
    size_t o = 0, userinfo_len = 0;
    const char *userinfo = NULL;

    if (scheme != NULL) {
        userinfo = scheme + 3;
        end = userinfo + strcspn(userinfo, "/?");
        at = memchr(userinfo, '@', (size_t)(end - userinfo));
        userinfo_len = at ? (size_t)(at - userinfo) : 0;
    }
    while (*msg && o + 1 < whylen) {
        const char *close = *msg == '"' ? strchr(msg + 1, '"') : NULL;
        if (close != NULL) {
            size_t n = (size_t)(close - msg - 1);
            bool secret = n > 0 && userinfo_len > 0 && memmem(userinfo, userinfo_len, msg + 1, n);
            int w = snprintf(why + o, whylen - o, "\"%.*s\"", secret ? 3 : (int)n,
                             secret ? "..." : msg + 1);
            if (w < 0 || (size_t)w >= whylen - o) break;
            o += (size_t)w;
            msg = close + 1;
            continue;
        }
        if (*msg != '\n') why[o++] = *msg;
        msg++;
    }
    why[o] = '\0';
}

int gh_config_pg_url_check(const char *url, char *why, size_t whylen)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    int rc = 0;

    if (opts == NULL) {
        redacted(errmsg ? errmsg : "libpq cannot parse it (out of memory?)", url, why, whylen);
        PQfreemem(errmsg);
        return -1;
    }
    for (PQconninfoOption *o = opts; rc == 0 && o->keyword != NULL; o++) {
        if (o->val == NULL) continue;
        for (size_t i = 0; i < sizeof(enumerated) / sizeof(enumerated[0]); i++) {
            bool known = false;
            if (strcmp(o->keyword, enumerated[i].keyword) != 0) continue;
            for (size_t k = 0; enumerated[i].values[k] != NULL && !known; k++)
                known = strcmp(o->val, enumerated[i].values[k]) == 0;
            if (!known) {
                char list[160];
                size_t n = 0;
                for (size_t k = 0; enumerated[i].values[k] != NULL && n < sizeof(list); k++)
                    n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", k ? ", " : "",
                                          enumerated[i].values[k]);
                snprintf(why, whylen, "%s must be one of %s", o->keyword, list);
                rc = -1;
            }
        }
    }
    PQconninfoFree(opts);
    return rc;
}
