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

/* Whether libpq's quoted <token> (<n> bytes) may be shown: a parameter's
 * name ("sslmod") is lowercase letters and '_'. Anything else it quotes
 * may be a value, or the whole URI (an IPv6 host it cannot read), and so
 * may hold the password: shown as "...". */
static bool showable(const char *token, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((token[i] >= 'a' && token[i] <= 'z') || token[i] == '_')) return false;
    return true;
}

/* <msg> into <why>, every quoted token that is not showable() as "...",
 * line breaks dropped. */
static void redacted(const char *msg, char *why, size_t whylen)
{
    size_t o = 0;

    while (*msg && o + 1 < whylen) {
        const char *close = *msg == '"' ? strchr(msg + 1, '"') : NULL;
        if (close != NULL) {
            size_t n = (size_t)(close - msg - 1);
            bool show = showable(msg + 1, n);
            int w = snprintf(why + o, whylen - o, "\"%.*s\"", show ? (int)n : 3,
                             show ? msg + 1 : "...");
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
        redacted(errmsg ? errmsg : "libpq cannot parse it (out of memory?)", why, whylen);
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
