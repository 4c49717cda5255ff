/* JSON output without allocation. */
#include "core/jsonw.h"

#include <string.h>

#include "core/utf8.h"

void gh_jsonw_raw(struct gh_jsonw *w, const char *p, size_t n)
{
    /* memcpy with a NULL source is undefined even for 0 bytes (an empty
     * slice of a request that never got a head). */
    if (n == 0) return;
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void gh_jsonw_str(struct gh_jsonw *w, gh_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, run = 0;

    gh_jsonw_raw(w, "\"", 1);
    while (i < s.len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            run++;
            continue;
        }
        gh_jsonw_raw(w, (const char *)p + i - run, run);
        run = 0;
        if (c >= 0x80) {
            size_t n = gh_utf8_seq(p + i, s.len - i);
            if (n > 0) {
                gh_jsonw_raw(w, (const char *)p + i, n);
                i += n;
                continue;
            }
        }
        if (c == '"')
            gh_jsonw_raw(w, "\\\"", 2);
        else if (c == '\\')
            gh_jsonw_raw(w, "\\\\", 2);
        else if (c == '\n')
            gh_jsonw_raw(w, "\\n", 2);
        else if (c == '\r')
            gh_jsonw_raw(w, "\\r", 2);
        else if (c == '\t')
            gh_jsonw_raw(w, "\\t", 2);
        else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            gh_jsonw_raw(w, esc, 6);
        }
        i++;
    }
    gh_jsonw_raw(w, (const char *)p + i - run, run);
    gh_jsonw_raw(w, "\"", 1);
}

void gh_jsonw_u64(struct gh_jsonw *w, uint64_t v)
{
    char tmp[20];
    size_t i = gh_u64_dec(v, tmp);
    gh_jsonw_raw(w, tmp + i, sizeof(tmp) - i);
}

void gh_jsonw_ms3(struct gh_jsonw *w, uint64_t ns)
{
    uint64_t us = ns / 1000;
    char frac[4] = {'.', (char)('0' + (us / 100) % 10), (char)('0' + (us / 10) % 10),
                    (char)('0' + us % 10)};
    gh_jsonw_u64(w, us / 1000);
    gh_jsonw_raw(w, frac, 4);
}
