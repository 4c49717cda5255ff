/* The params of an audit event: per parameter its SHA-256 and a short prefix,
 * or nothing at all when its name or value looks secret (docs/audit-format.md
 * lists the rules). Raw values are never written: the canonical array holds
 * names, hashes, prefixes and rule names only. Pure functions, no
 * allocation: a worker may call them on the request path. */
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED /* the low-level SHA-256: see event.c */
#include <openssl/sha.h>

#include "audit/audit_int.h"
#include "audit/event.h"

/* Room always kept at the end of ev->params for ",{"truncated":4294967295}]"
 * (26 bytes) and the NUL. */
#define TAIL_RESERVE 27

/* ---- Redaction by name -------------------------------------------------------- */

static const char *const secret_names[] = {
    "password",     "passwd",        "pwd",         "secret",        "token",
    "access_token", "refresh_token", "id_token",    "api_key",       "apikey",
    "key",          "authorization", "auth",        "cookie",        "session",
    "credential",   "credentials",   "private_key", "client_secret",
};
static const char *const secret_parts[] = {"password", "secret", "token"};

/* A name's byte as the rules read it: ASCII lower case, '-' as '_'
 * ("X-Api-Key" is "x_api_key", "Client-Secret" contains "secret"). */
static unsigned char name_fold(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return (unsigned char)(c + 32);
    return c == '-' ? '_' : c;
}

static bool name_eq(gh_str name, const char *word)
{
    size_t n = strlen(word);

    if (name.len != n) return false;
    for (size_t i = 0; i < n; i++)
        if (name_fold((unsigned char)name.ptr[i]) != (unsigned char)word[i]) return false;
    return true;
}

static bool name_contains(gh_str name, const char *word)
{
    size_t n = strlen(word);

    for (size_t i = 0; i + n <= name.len; i++) {
        size_t k = 0;
        while (k < n && name_fold((unsigned char)name.ptr[i + k]) == (unsigned char)word[k])
            k++;
        if (k == n) return true;
    }
    return false;
}

static bool secret_name(gh_str name)
{
    for (size_t i = 0; i < sizeof(secret_names) / sizeof(secret_names[0]); i++)
        if (name_eq(name, secret_names[i])) return true;
    for (size_t i = 0; i < sizeof(secret_parts) / sizeof(secret_parts[0]); i++)
        if (name_contains(name, secret_parts[i])) return true;
    return false;
}

/* ---- Value detectors ---------------------------------------------------------- */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_base62(unsigned char c)
{
    return is_digit(c) || is_alpha(c);
}

static bool is_b64url(unsigned char c)
{
    return is_base62(c) || c == '-' || c == '_';
}

/* "Bearer " at the start, ASCII case-insensitive (RFC 6750 §2.1; RFC 9110
 * §11.1: the scheme is case-insensitive). */
static bool looks_bearer(gh_str v)
{
    return v.len >= 7 && strncasecmp(v.ptr, "bearer ", 7) == 0;
}

/* Somewhere in <v>: "eyJ" + base64url, ".", base64url (not empty), ".",
 * base64url (the signature may be empty: an unsecured JWT still carries
 * claims). */
static bool looks_jwt(gh_str v)
{
    const unsigned char *p = (const unsigned char *)v.ptr;

    for (size_t i = 0; i + 3 <= v.len; i++) {
        size_t j = i + 3, start;

        if (memcmp(p + i, "eyJ", 3) != 0) continue;
        while (j < v.len && is_b64url(p[j]))
            j++;
        if (j >= v.len || p[j] != '.') continue;
        start = ++j;
        while (j < v.len && is_b64url(p[j]))
            j++;
        if (j > start && j < v.len && p[j] == '.') return true;
    }
    return false;
}

/* Somewhere in <v>: "gh_" + 16 base62 + "_" + 43 base62 (src/auth/apikey.h). */
static bool looks_gatehouse_key(gh_str v)
{
    const unsigned char *p = (const unsigned char *)v.ptr;

    for (size_t i = 0; i + 63 <= v.len; i++) {
        size_t k;

        if (memcmp(p + i, "gh_", 3) != 0) continue;
        for (k = 3; k < 19 && is_base62(p[i + k]); k++)
            ;
        if (k != 19 || p[i + 19] != '_') continue;
        for (k = 20; k < 63 && is_base62(p[i + k]); k++)
            ;
        if (k == 63) return true;
    }
    return false;
}

static bool email_local(unsigned char c)
{
    return is_base62(c) || (c != 0 && strchr("._%+-", c) != NULL);
}

static bool email_domain(unsigned char c)
{
    return is_base62(c) || c == '.' || c == '-';
}

/* Somewhere in <v>: local@domain, where local is [A-Za-z0-9._%+-]+ and the
 * domain [A-Za-z0-9.-]+ has a dot and ends in a label of 2+ letters. */
static bool looks_email(gh_str v)
{
    const unsigned char *p = (const unsigned char *)v.ptr;

    for (size_t at = 1; at + 1 < v.len; at++) {
        size_t end = at + 1, dot;
        bool letters = true;

        if (p[at] != '@' || !email_local(p[at - 1])) continue;
        while (end < v.len && email_domain(p[end]))
            end++;
        while (end > at + 1 && p[end - 1] == '.') /* "a@b.com." ends a sentence */
            end--;
        for (dot = end; dot > at + 1 && p[dot - 1] != '.'; dot--)
            ;
        /* <dot> is just after the last dot; a label must come before it and
         * two letters or more after it. */
        if (dot <= at + 2 || end - dot < 2) continue;
        for (size_t k = dot; k < end; k++)
            letters = letters && is_alpha(p[k]);
        if (letters) return true;
    }
    return false;
}

/* Somewhere in <v>: a run of 13 to 19 digits, with single spaces or dashes
 * allowed between digits, not touching another digit, whose Luhn check
 * (ISO/IEC 7812-1 Annex B) passes. */
static bool looks_card(gh_str v)
{
    const unsigned char *p = (const unsigned char *)v.ptr;
    size_t i = 0;

    while (i < v.len) {
        unsigned char digits[20];
        size_t nd = 0;

        if (!is_digit(p[i])) {
            i++;
            continue;
        }
        /* A maximal run: digits, and one separator between two digits. */
        while (i < v.len) {
            if (is_digit(p[i])) {
                if (nd < sizeof(digits)) digits[nd] = (unsigned char)(p[i] - '0');
                nd++;
                i++;
            } else if ((p[i] == ' ' || p[i] == '-') && i + 1 < v.len && is_digit(p[i + 1])) {
                i++;
            } else {
                break;
            }
        }
        if (nd < 13 || nd > 19) continue;
        unsigned sum = 0;
        for (size_t k = 0; k < nd; k++) {
            unsigned d = digits[nd - 1 - k];
            if (k % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
            sum += d;
        }
        if (sum % 10 == 0) return true;
    }
    return false;
}

/* The value rules 2-6 of docs/audit-format.md, in their order, with the
 * rule a value gets and the one a name that holds the same gets. */
static const struct {
    bool (*looks)(gh_str);
    const char *value_rule, *name_rule;
} detectors[] = {
    {looks_bearer, "bearer", "name_bearer"},
    {looks_jwt, "jwt", "name_jwt"},
    {looks_gatehouse_key, "gatehouse_key", "name_gatehouse_key"},
    {looks_email, "email", "name_email"},
    {looks_card, "card", "name_card"},
};

const char *gh_audit_redaction(gh_str name, gh_str value)
{
    if (secret_name(name)) return "name";
    for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++)
        if (detectors[i].looks(value)) return detectors[i].value_rule;
    return NULL;
}

/* What a parameter's name holds of what the value rules look for (a key
 * sent as "?gh_...", a token as a form's only field), as the rule that
 * names it: "name_gatehouse_key", ...; NULL for a plain name. */
static const char *name_holds_secret(gh_str name)
{
    for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++)
        if (detectors[i].looks(name)) return detectors[i].name_rule;
    return NULL;
}

/* ---- The params array --------------------------------------------------------- */

/* Rewrites the end of ev->params after the kept parameters: the truncation
 * element when some were left out, "]" and the NUL. */
static void params_close(struct gh_audit_event *ev)
{
    size_t o = ev->params_kept;

    if (ev->params_truncated > 0) {
        char d[20];
        size_t start = gh_u64_dec(ev->params_truncated, d);
        if (o > 1) ev->params[o++] = ',';
        memcpy(ev->params + o, "{\"truncated\":", 13);
        o += 13;
        memcpy(ev->params + o, d + start, 20 - start);
        o += 20 - start;
        ev->params[o++] = '}';
    }
    ev->params[o++] = ']';
    ev->params[o] = '\0';
    ev->params_len = (uint16_t)o;
}

void gh_audit_params_begin(struct gh_audit_event *ev)
{
    ev->params[0] = '[';
    ev->params_kept = 1;
    ev->params_truncated = 0;
    params_close(ev);
}

void gh_audit_params_end(struct gh_audit_event *ev)
{
    /* Every call leaves a complete array; this only repairs an event whose
     * params were never begun. */
    if (ev->params_kept == 0) gh_audit_params_begin(ev);
}

/* Appends one element of <n> bytes, or counts it as left out. */
static void params_append(struct gh_audit_event *ev, const char *elem, size_t n)
{
    size_t o = ev->params_kept, sep = o > 1 ? 1 : 0;

    if (o == 0) {
        gh_audit_params_begin(ev);
        o = ev->params_kept;
        sep = 0;
    }
    if (ev->params_truncated > 0 || o + sep + n + TAIL_RESERVE > sizeof(ev->params) - 1) {
        if (ev->params_truncated < UINT32_MAX) ev->params_truncated++;
    } else {
        if (sep) ev->params[o++] = ',';
        memcpy(ev->params + o, elem, n);
        ev->params_kept = (uint16_t)(o + n);
    }
    params_close(ev);
}

/* Writes the first <nchars> characters of <v> (invalid UTF-8 as U+FFFD),
 * escaped, at <out>; "" when <v> has fewer than 2 * <nchars> characters, so
 * a prefix is never most of a short value. Returns the bytes written. */
static size_t put_prefix(gh_str v, unsigned nchars, char *out)
{
    const unsigned char *p = (const unsigned char *)v.ptr;
    size_t i = 0, chars = 0, bad, cut = 0, o = 0;

    if (nchars == 0) return 0;
    while (i < v.len && chars < 2 * (size_t)nchars) {
        size_t n = gh_audit__utf8_len(p + i, v.len - i, &bad);
        i += n ? n : bad;
        chars++;
        if (chars == nchars) cut = i;
    }
    if (chars < 2 * (size_t)nchars) return 0;
    for (i = 0; i < cut;) {
        size_t n = gh_audit__utf8_len(p + i, cut - i, &bad);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += bad;
        } else {
            o += gh_audit__escape(v.ptr + i, n, out + o);
            i += n;
        }
    }
    return o;
}

#define LIT(buf, o, s) (memcpy((buf) + (o), (s), sizeof(s) - 1), (o) += sizeof(s) - 1)

/* Builds one element: the name, then either the rule or hash and prefix. */
static void params_add_rule(struct gh_audit_event *ev, gh_str name, gh_str value,
                            unsigned prefix_chars, const char *rule)
{
    /* name <= 128, prefix <= 64 characters * 6 bytes, the rest < 140. */
    char elem[GH_AUDIT_NAME_MAX + GH_AUDIT_PREFIX_MAX * 6 + 160];
    char clipped[GH_AUDIT_NAME_MAX + 1];
    const char *in_name = name_holds_secret(name);
    size_t o = 0;

    /* Such a name is not written, nor is its value: the audit log is
     * chained and archived, and what reaches it cannot be taken back. */
    if (in_name != NULL) {
        name = gh_str_make("", 0);
        rule = in_name;
    }
    gh_audit_set(clipped, sizeof(clipped), name);
    LIT(elem, o, "{\"name\":\"");
    o += gh_audit__escape(clipped, strlen(clipped), elem + o);
    if (rule != NULL) {
        LIT(elem, o, "\",\"redacted\":\"");
        memcpy(elem + o, rule, strlen(rule));
        o += strlen(rule);
    } else {
        static const char hexd[] = "0123456789abcdef";
        unsigned char md[32];

        SHA256_CTX sha;

        SHA256_Init(&sha);
        SHA256_Update(&sha, value.ptr, value.len);
        SHA256_Final(md, &sha);
        LIT(elem, o, "\",\"sha256\":\"");
        for (int i = 0; i < 32; i++) {
            elem[o++] = hexd[md[i] >> 4];
            elem[o++] = hexd[md[i] & 15];
        }
        LIT(elem, o, "\",\"prefix\":\"");
        o += put_prefix(value,
                        prefix_chars < GH_AUDIT_PREFIX_MAX ? prefix_chars : GH_AUDIT_PREFIX_MAX,
                        elem + o);
    }
    LIT(elem, o, "\"}");
    params_append(ev, elem, o);
}

void gh_audit_params_add(struct gh_audit_event *ev, gh_str name, gh_str value,
                         unsigned prefix_chars)
{
    params_add_rule(ev, name, value, prefix_chars, gh_audit_redaction(name, value));
}

/* ---- Query strings ------------------------------------------------------------ */

static int hexval(unsigned char c)
{
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes <in> (application/x-www-form-urlencoded: '+' is a space, %XX a
 * byte, a malformed % stays as it is) into <out> of <cap> bytes. Returns the
 * decoded length, or cap + 1 when it does not fit. */
static size_t form_decode(gh_str in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in.ptr;
    size_t o = 0;

    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = p[i];
        if (o == cap) return cap + 1;
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < in.len && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            c = (unsigned char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        }
        out[o++] = (char)c;
    }
    return o;
}

void gh_audit_params_from_query(struct gh_audit_event *ev, gh_str query, unsigned prefix_chars)
{
    char name[GH_AUDIT_QUERY_VALUE_MAX], value[GH_AUDIT_QUERY_VALUE_MAX];
    size_t i = 0;

    while (i < query.len) {
        const char *part = query.ptr + i;
        const char *amp = memchr(part, '&', query.len - i);
        size_t plen = amp ? (size_t)(amp - part) : query.len - i;
        const char *eq = memchr(part, '=', plen);
        gh_str rn = gh_str_make(part, eq ? (size_t)(eq - part) : plen);
        gh_str rv = eq ? gh_str_make(eq + 1, plen - rn.len - 1) : gh_str_make("", 0);
        size_t nl, vl;

        i += plen + 1;
        if (plen == 0) continue;
        nl = form_decode(rn, name, sizeof(name));
        vl = form_decode(rv, value, sizeof(value));
        if (nl > sizeof(name) || vl > sizeof(value)) {
            /* Too long to scan whole: recorded by (clipped) name only. */
            params_add_rule(ev, gh_str_make(name, nl > sizeof(name) ? sizeof(name) : nl),
                            GH_STR_NULL, 0, "too_long");
            continue;
        }
        gh_audit_params_add(ev, gh_str_make(name, nl), gh_str_make(value, vl), prefix_chars);
    }
}
