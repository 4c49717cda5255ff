/* JSON output without allocation. */
#include "core/jsonw.h"

#include <string.h>

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

/* Length of a valid UTF-8 sequence at <p> (at most <n> bytes), or 0. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    size_t len;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return len;
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
            size_t n = utf8_seq_len(p + i, s.len - i);
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
