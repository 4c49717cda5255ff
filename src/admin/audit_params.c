/* Query parameters of the audit read endpoints: see audit_params.h. */
#include "admin/audit_params.h"

#include <openssl/evp.h>
#include <string.h>
#include <time.h>

#include "auth/jwks.h"

/* ---- query strings ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes the value <v> into <out>; -1 as gh_audit_query_get says. */
static int decode(gh_str v, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.ptr[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int hi, lo;
            if (i + 2 >= v.len) return -1;
            hi = hexval(v.ptr[i + 1]);
            lo = hexval(v.ptr[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= size) return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 1;
}

/* The next "name=value" pair of <q> from *<pos> (empty pairs skipped):
 * false at the end. <value> is empty when there is no '='. */
static bool next_param(gh_str q, size_t *pos, gh_str *name, gh_str *value)
{
    while (*pos < q.len) {
        size_t i = *pos, e = i, k;
        while (e < q.len && q.ptr[e] != '&')
            e++;
        *pos = e + 1;
        if (e == i) continue;
        for (k = i; k < e && q.ptr[k] != '='; k++)
            ;
        *name = gh_str_make(q.ptr + i, k - i);
        *value = k < e ? gh_str_make(q.ptr + k + 1, e - k - 1) : gh_str_make(q.ptr + e, 0);
        return true;
    }
    return false;
}

int gh_audit_query_get(gh_str q, const char *name, char *out, size_t size)
{
    size_t pos = 0;
    gh_str n, v;
    out[0] = '\0';
    while (next_param(q, &pos, &n, &v))
        if (gh_str_eq(n, gh_str_cstr(name))) return decode(v, out, size);
    return 0;
}

bool gh_audit_query_check(gh_str q, const char *const *names, gh_str *bad)
{
    unsigned seen = 0; /* one bit per entry of <names>: at most 32 */
    size_t pos = 0;
    gh_str n, v;

    while (next_param(q, &pos, &n, &v)) {
        size_t k;
        for (k = 0; names[k]; k++)
            if (gh_str_eq(n, gh_str_cstr(names[k]))) break;
        if (names[k] == NULL || k >= 32 || (seen & (1u << k))) {
            *bad = n;
            return false;
        }
        seen |= 1u << k;
    }
    return true;
}

/* ---- times ---- */

/* <n> digits at <s> as a number; -1 when one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

int gh_audit_parse_time(const char *s, int64_t *us)
{
    size_t len = strlen(s), i;
    int y, mo, d, h, mi, sec, frac_us = 0, off = 0;
    struct tm tm;
    int64_t t;

    if (len == 0) return -1;
    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        ;
    if (i == len) {
        /* Unix milliseconds: 15 digits reach the year 33658. */
        int64_t ms = 0;
        if (len > 15) return -1;
        for (i = 0; i < len; i++)
            ms = ms * 10 + (s[i] - '0');
        *us = ms * 1000;
        return 0;
    }
    /* RFC 3339 §5.6: full-date "T" partial-time time-offset. */
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -1;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
        sec > 60 || d > days_in_month(y, mo))
        return -1;
    i = 19;
    if (s[i] == '.') {
        int nd = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++)
            if (nd < 6) frac_us = frac_us * 10 + (s[i] - '0');
        if (nd == 0 || nd > 9) return -1;
        for (; nd < 6; nd++)
            frac_us *= 10;
    }
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec; /* a leap second (60) counts as the next second's start */
    t = (int64_t)timegm(&tm) - off;
    if (t < 0) return -1;
    *us = t * 1000000 + frac_us;
    return 0;
}

/* ---- cursors ---- */

/* Layouts (then base64url): a version byte, then
 *   3: flags (bit 0: oldest first), rowid (8 bytes BE), time_us (8 BE),
 *      digest (8);
 *   2: seq (8 bytes BE), digest (8), the chain's bytes (0..31).
 * Layout 1 (events, without time_us) was never released: such a cursor is
 * refused as malformed. */
#define CURSOR_V_EVENTS      3
#define CURSOR_V_CHECKPOINTS 2

void gh_audit_filter_digest(const char *const *fields, size_t n, uint8_t out[GH_AUDIT_DIGEST_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    /* Without a context (out of memory) every filter set digests alike:
     * cursors then still work, only the mismatch check is lost. */
    memset(out, 0, GH_AUDIT_DIGEST_LEN);
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i] ? fields[i] : "";
        uint8_t len[4];
        size_t l = strlen(f);
        /* The length first: ("ab", "c") and ("a", "bc") must differ. */
        len[0] = (uint8_t)(l >> 24);
        len[1] = (uint8_t)(l >> 16);
        len[2] = (uint8_t)(l >> 8);
        len[3] = (uint8_t)l;
        EVP_DigestUpdate(ctx, len, sizeof(len));
        EVP_DigestUpdate(ctx, f, l);
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) == 1) memcpy(out, md, GH_AUDIT_DIGEST_LEN);
    EVP_MD_CTX_free(ctx);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void gh_audit_cursor_encode(const struct gh_audit_cursor *c, char *out)
{
    uint8_t b[26];
    b[0] = CURSOR_V_EVENTS;
    b[1] = c->oldest_first ? 1 : 0;
    put_u64(b + 2, (uint64_t)c->rowid);
    put_u64(b + 10, (uint64_t)c->time_us);
    memcpy(b + 18, c->digest, GH_AUDIT_DIGEST_LEN);
    gh_b64url_encode(b, sizeof(b), out, GH_AUDIT_CURSOR_MAX);
}

int gh_audit_cursor_decode(const char *text, struct gh_audit_cursor *c)
{
    uint8_t b[32];
    size_t n;
    if (gh_b64url_decode(text, strlen(text), b, sizeof(b), &n) != 0 || n != 26 ||
        b[0] != CURSOR_V_EVENTS || b[1] > 1)
        return -1;
    c->oldest_first = b[1] == 1;
    c->rowid = (int64_t)get_u64(b + 2);
    c->time_us = (int64_t)get_u64(b + 10);
    if (c->rowid <= 0 || c->time_us < 0) return -1;
    memcpy(c->digest, b + 18, GH_AUDIT_DIGEST_LEN);
    return 0;
}

void gh_audit_cp_cursor_encode(const struct gh_audit_cp_cursor *c, char *out)
{
    uint8_t b[1 + 8 + GH_AUDIT_DIGEST_LEN + sizeof(c->chain)];
    size_t cl = strnlen(c->chain, sizeof(c->chain) - 1);
    b[0] = CURSOR_V_CHECKPOINTS;
    put_u64(b + 1, c->seq);
    memcpy(b + 9, c->digest, GH_AUDIT_DIGEST_LEN);
    memcpy(b + 17, c->chain, cl);
    gh_b64url_encode(b, 17 + cl, out, GH_AUDIT_CURSOR_MAX);
}

int gh_audit_cp_cursor_decode(const char *text, struct gh_audit_cp_cursor *c)
{
    uint8_t b[64];
    size_t n;
    if (gh_b64url_decode(text, strlen(text), b, sizeof(b), &n) != 0 || n < 18 ||
        n - 17 >= sizeof(c->chain) || b[0] != CURSOR_V_CHECKPOINTS)
        return -1;
    c->seq = get_u64(b + 1);
    memcpy(c->digest, b + 9, GH_AUDIT_DIGEST_LEN);
    memcpy(c->chain, b + 17, n - 17);
    c->chain[n - 17] = '\0';
    for (size_t i = 0; i < n - 17; i++) {
        char ch = c->chain[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return -1;
    }
    return 0;
}
