/* The JSON form of a key's roles and scopes and of a webhook endpoint's
 * subscriptions, shared by the engines: both store the lists as a compact
 * JSON array of strings (jansson) and check them again when they read them
 * back. */
#include <jansson.h>
#include <string.h>

#include "store/store_int.h"

char *gh_store__list_encode(const char (*items)[GH_STORE_TOKEN_SIZE], size_t n)
{
    json_t *a = json_array();
    char *text = NULL;

    if (a == NULL) return NULL;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(items[i])) != 0) goto out;
    text = json_dumps(a, JSON_COMPACT);
out:
    json_decref(a);
    return text;
}

int gh_store__list_decode(const char *text, size_t len, char (*items)[GH_STORE_TOKEN_SIZE],
                          size_t max, size_t *n)
{
    json_t *a, *v;
    size_t i;
    int rc = GH_OK;

    *n = 0;
    a = text ? json_loadb(text, len, 0, NULL) : NULL;
    if (a == NULL || !json_is_array(a) || json_array_size(a) > max) {
        rc = GH_ERROR;
        goto out;
    }
    json_array_foreach(a, i, v)
    {
        const char *str = json_string_value(v);
        if (str == NULL || json_string_length(v) >= GH_STORE_TOKEN_SIZE ||
            strlen(str) != json_string_length(v)) {
            rc = GH_ERROR;
            goto out;
        }
        memcpy(items[i], str, json_string_length(v) + 1);
    }
    *n = json_array_size(a);
out:
    json_decref(a);
    return rc;
}

char *gh_store__events_encode(const struct gh_store_hook_endpoint *e)
{
    json_t *a = json_array();
    char *text;

    for (size_t i = 0; a && i < e->nevents; i++)
        json_array_append_new(a, json_string(e->events[i]));
    text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

int gh_store__events_decode(const char *text, char (*out)[GH_STORE_HOOK_TYPE_SIZE], size_t *n,
                            struct gh_err *err)
{
    json_t *a = json_loads(text, 0, NULL);
    size_t i;
    json_t *v;

    *n = 0;
    if (!json_is_array(a) || json_array_size(a) > GH_STORE_HOOK_EVENTS_MAX) goto bad;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > GH_STORE_HOOK_TYPE_MAX) goto bad;
        memcpy(out[i], json_string_value(v), json_string_length(v) + 1);
        (*n)++;
    }
    json_decref(a);
    return GH_OK;
bad:
    json_decref(a);
    return gh_err_set(err, NULL, 0, 0, "store: webhook endpoint: malformed events column");
}

bool gh_store__events_match(const char *text, const char *type)
{
    char ev[GH_STORE_HOOK_EVENTS_MAX][GH_STORE_HOOK_TYPE_SIZE];
    size_t n;

    if (gh_store__events_decode(text, ev, &n, NULL) != GH_OK) return false;
    for (size_t i = 0; i < n; i++)
        if (gh_store_hook_pattern_match(ev[i], type)) return true;
    return false;
}
