/* Showing a stored audit event (see show.h). */
#include "audit/show.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* True when <s> is 64 lowercase hex characters. */
static bool is_hash(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return i == 64;
}

static void puts_(gh_audit_show_put put, void *arg, const char *s)
{
    put(arg, s, strlen(s));
}

int gh_audit_show_event(const struct gh_store_audit_row *row, const char *prev_hash,
                        gh_audit_show_put put, void *arg)
{
    json_t *doc = NULL;
    bool ok = !row->damaged && row->body_len >= 2 && row->body[0] == '{' &&
              row->body[row->body_len - 1] == '}' && is_hash(row->hash);

    if (ok) {
        /* The body is shown byte for byte: it must at least be JSON. */
        doc = json_loadb(row->body, row->body_len, 0, NULL);
        ok = doc != NULL && json_is_object(doc);
        json_decref(doc);
    }
    if (!ok) {
        json_t *chain = json_string(row->chain); /* NULL when not UTF-8 */
        char *text;
        doc = json_pack("{s:b, s:o, s:I, s:I}", "damaged", 1, "chain", chain ? chain : json_null(),
                        "seq", (json_int_t)row->seq, "rowid", (json_int_t)row->rowid);
        text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (text == NULL) return -1;
        puts_(put, arg, text);
        free(text);
        return 0;
    }
    put(arg, row->body, row->body_len - 1);
    puts_(put, arg, ",\"hash\":\"");
    puts_(put, arg, row->hash);
    if (prev_hash) {
        puts_(put, arg, "\",\"prev_hash\":\"");
        puts_(put, arg, prev_hash);
    }
    puts_(put, arg, "\"}");
    return 1;
}
