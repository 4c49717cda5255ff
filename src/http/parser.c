/* Strict HTTP/1.1 head parser for requests and responses (RFC 9110, 9112).
 *
 * Two passes over each head: while bytes arrive, a cheap scan finds line ends
 * (refusing bare LF and enforcing the line and head limits early); once the
 * empty line is seen, one full pass validates every byte and derives the
 * framing. The full pass runs once per message, so the total work is linear
 * in the head size however the bytes are split across reads. */
#include "http/parser.h"

#include "core/err.h"

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const uint8_t gh_http_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* field-vchar / SP / HTAB (RFC 9110 §5.5); obs-text (0x80-0xFF) is allowed
 * in values for compatibility, never in names. */
static inline bool is_field_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* RFC 3986 characters that may appear in a request-target. Control bytes,
 * space, DEL, non-ASCII and '#' (a fragment is never sent) are refused. */
static inline bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int fail(struct gh_http_error *err, int status, const char *code)
{
    err->status = status;
    err->code = code;
    return GH_ERROR;
}

/* Scans new bytes for line ends. Returns GH_OK with *head_len set when the
 * empty line that ends the head was seen, GH_AGAIN when more is needed, or
 * GH_ERROR. <bad_status> is 400 for requests and 502 for responses. */
static int scan_head(const char *buf, size_t len, struct gh_http_state *st,
                     const struct gh_http_limits *lim, int bad_status, bool is_request,
                     uint32_t *head_len, struct gh_http_error *err)
{
    size_t pos = st->scanned;

    for (;;) {
        /* Never look past the limits: the verdict must not depend on how
         * the bytes were split across reads. */
        size_t hb_end = lim->max_header_bytes;
        size_t rl_end = (size_t)st->line_start + lim->max_request_line + 2;
        size_t end = len < hb_end ? len : hb_end;
        if (st->nlines == 0 && rl_end < end) end = rl_end;
        if (pos >= end) break;
        const char *nl = memchr(buf + pos, '\n', end - pos);
        size_t i, line_len;

        if (nl == NULL) {
            pos = end;
            break;
        }
        i = (size_t)(nl - buf);
        /* RFC 9112 §2.2 allows a bare LF as a line end; a gateway that
         * accepts it disagrees with servers that do not: refuse it. */
        if (i == 0 || buf[i - 1] != '\r' || i - 1 < st->line_start)
            return fail(err, bad_status, "bare_lf");
        line_len = i - 1 - st->line_start;
        if (line_len == 0) {
            if (st->nlines == 0) {
                /* RFC 9112 §2.2: ignore empty lines before the start line
                 * (some clients send CRLF after a POST body). */
                st->line_start = (uint32_t)(i + 1);
                st->first_line = st->line_start;
                pos = i + 1;
                continue;
            }
            *head_len = (uint32_t)(i + 1);
            st->scanned = (uint32_t)(i + 1);
            return GH_OK;
        }
        if (st->nlines == 0 && line_len > lim->max_request_line)
            return fail(err, is_request ? 414 : bad_status, "request_line_too_long");
        st->nlines++;
        if (st->nlines > lim->max_headers + 1)
            return fail(err, is_request ? 431 : bad_status, "too_many_headers");
        st->line_start = (uint32_t)(i + 1);
        pos = i + 1;
    }
    st->scanned = (uint32_t)pos;
    {
        size_t rl_end = (size_t)st->line_start + lim->max_request_line + 2;
        if (st->nlines == 0 && rl_end <= lim->max_header_bytes && len >= rl_end)
            return fail(err, is_request ? 414 : bad_status, "request_line_too_long");
    }
    if (len >= lim->max_header_bytes)
        return fail(err, is_request ? 431 : bad_status, "header_too_large");
    return GH_AGAIN;
}

/* Parses "HTTP/x.y" at <p> (exactly 8 bytes available). Returns the minor
 * version (0 or 1), -505 for a well-formed other version, -400 otherwise. */
static int parse_version(const char *p)
{
    if (memcmp(p, "HTTP/", 5) != 0 || !is_digit((unsigned char)p[5]) || p[6] != '.' ||
        !is_digit((unsigned char)p[7]))
        return -400;
    if (p[5] == '1' && (p[7] == '0' || p[7] == '1')) return p[7] - '0';
    return -505;
}

struct method_name {
    const char *name;
    uint8_t len;
    enum gh_http_method id;
};

static const struct method_name methods[] = {
    {"GET", 3, GH_HTTP_GET},         {"HEAD", 4, GH_HTTP_HEAD},     {"POST", 4, GH_HTTP_POST},
    {"PUT", 3, GH_HTTP_PUT},         {"DELETE", 6, GH_HTTP_DELETE}, {"PATCH", 5, GH_HTTP_PATCH},
    {"OPTIONS", 7, GH_HTTP_OPTIONS}, {"TRACE", 5, GH_HTTP_TRACE},   {"CONNECT", 7, GH_HTTP_CONNECT},
};

static enum gh_http_method method_id(gh_str m)
{
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (m.len == methods[i].len && memcmp(m.ptr, methods[i].name, m.len) == 0)
            return methods[i].id;
    return GH_HTTP_OTHER;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2): reg-name or IP-literal. We
 * accept the characters of hostnames and IP literals and nothing else. */
static bool valid_host(gh_str h)
{
    size_t i = 0;

    if (h.len == 0 || h.len > 255) return false;
    if (h.ptr[0] == '[') {
        /* IP-literal: hex digits, ':' and '.' between brackets */
        for (i = 1; i < h.len && h.ptr[i] != ']'; i++) {
            unsigned char c = (unsigned char)h.ptr[i];
            if (!(is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
                  c == '.'))
                return false;
        }
        if (i == h.len || i == 1) return false;
        i++;
    } else {
        for (; i < h.len && h.ptr[i] != ':'; i++) {
            unsigned char c = (unsigned char)h.ptr[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
                  c == '-' || c == '_' || c == '~'))
                return false;
        }
        if (i == 0) return false;
    }
    if (i == h.len) return true;
    if (h.ptr[i] != ':') return false;
    for (i++; i < h.len; i++)
        if (!is_digit((unsigned char)h.ptr[i])) return false;
    return true;
}

/* Splits a target's path and query at the first '?'. */
static void split_path_query(gh_str t, gh_str *path, gh_str *query)
{
    const char *q = memchr(t.ptr, '?', t.len);
    if (q == NULL) {
        *path = t;
        *query = gh_str_make(t.ptr + t.len, 0);
    } else {
        *path = gh_str_make(t.ptr, (size_t)(q - t.ptr));
        *query = gh_str_make(q + 1, t.len - (size_t)(q - t.ptr) - 1);
    }
}

/* absolute-form (RFC 9112 §3.2.2): "http" or "https" "://" authority
 * path-abempty [ "?" query ]. Userinfo is refused (RFC 9110 §4.2.4). */
static int parse_absolute_target(struct gh_http_request *req, struct gh_http_error *err)
{
    gh_str t = req->target;
    size_t i = 0, auth_start, auth_end;

    while (i < t.len && t.ptr[i] != ':')
        i++;
    if (!((i == 4 && strncasecmp(t.ptr, "http", 4) == 0) ||
          (i == 5 && strncasecmp(t.ptr, "https", 5) == 0)))
        return fail(err, 400, "invalid_target");
    if (t.len < i + 3 || memcmp(t.ptr + i, "://", 3) != 0) return fail(err, 400, "invalid_target");
    auth_start = i + 3;
    auth_end = auth_start;
    while (auth_end < t.len && t.ptr[auth_end] != '/' && t.ptr[auth_end] != '?')
        auth_end++;
    req->authority = gh_str_make(t.ptr + auth_start, auth_end - auth_start);
    if (memchr(req->authority.ptr, '@', req->authority.len) != NULL)
        return fail(err, 400, "invalid_target");
    if (!valid_host(req->authority)) return fail(err, 400, "invalid_target");
    if (auth_end == t.len || t.ptr[auth_end] == '?') {
        /* An empty path means "/" (RFC 9110 §4.2.3). */
        req->path = GH_STR_LIT("/");
        req->query = auth_end == t.len ? gh_str_make(t.ptr + t.len, 0)
                                       : gh_str_make(t.ptr + auth_end + 1, t.len - auth_end - 1);
    } else {
        split_path_query(gh_str_make(t.ptr + auth_end, t.len - auth_end), &req->path, &req->query);
    }
    req->target_form = GH_TARGET_ABSOLUTE;
    return GH_OK;
}

/* Parses the start line of a request: method SP target SP version.
 * Exactly one SP between the parts (RFC 9112 §3). */
static int parse_request_line(const char *p, size_t n, struct gh_http_request *req,
                              struct gh_http_error *err)
{
    size_t i = 0, start;
    int v;

    while (i < n && gh_http_is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ') return fail(err, 400, "invalid_method");
    req->method = gh_str_make(p, i);
    req->method_id = method_id(req->method);
    start = ++i;
    while (i < n && is_target_char((unsigned char)p[i]))
        i++;
    if (i == n && i > start) return fail(err, 400, "invalid_version"); /* HTTP/0.9 */
    if (i == start || i == n || p[i] != ' ') return fail(err, 400, "invalid_target");
    req->target = gh_str_make(p + start, i - start);
    i++;
    if (n - i != 8) {
        /* "HTTP/1.1x", "HTTP/1.1 " or a missing version (HTTP/0.9). */
        return fail(err, 400, "invalid_version");
    }
    v = parse_version(p + i);
    if (v == -505) return fail(err, 505, "http_version_not_supported");
    if (v < 0) return fail(err, 400, "invalid_version");
    req->minor_version = v;

    if (req->method_id == GH_HTTP_CONNECT) return fail(err, 501, "connect_not_supported");
    if (req->target.ptr[0] == '/') {
        req->target_form = GH_TARGET_ORIGIN;
        split_path_query(req->target, &req->path, &req->query);
        return GH_OK;
    }
    if (req->target.len == 1 && req->target.ptr[0] == '*') {
        if (req->method_id != GH_HTTP_OPTIONS) return fail(err, 400, "invalid_target");
        req->target_form = GH_TARGET_ASTERISK;
        req->path = req->target;
        req->query = gh_str_make(req->target.ptr + 1, 0);
        return GH_OK;
    }
    return parse_absolute_target(req, err);
}

/* Parses one field line "name: value" (without CRLF) into <h>. Refuses
 * obs-fold, whitespace before the colon, empty or non-token names, control
 * bytes (bare CR, NUL...) in values. Returns GH_OK or GH_ERROR. */
static int parse_field_line(const char *p, size_t n, struct gh_http_header *h, int bad_status,
                            struct gh_http_error *err)
{
    size_t i = 0, vs, ve;

    if (p[0] == ' ' || p[0] == '\t') return fail(err, bad_status, "obs_fold");
    while (i < n && gh_http_is_tchar((unsigned char)p[i]))
        i++;
    if (i == n) return fail(err, bad_status, "invalid_header");
    if (p[i] != ':') {
        /* RFC 9112 §5.1: no whitespace is allowed between name and colon. */
        if (p[i] == ' ' || p[i] == '\t') return fail(err, bad_status, "whitespace_before_colon");
        return fail(err, bad_status, "invalid_header_name");
    }
    if (i == 0) return fail(err, bad_status, "invalid_header_name");
    h->name = gh_str_make(p, i);
    vs = i + 1;
    while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    for (size_t k = vs; k < n; k++)
        if (!is_field_value_char((unsigned char)p[k]))
            return fail(err, bad_status, p[k] == '\r' ? "bare_cr" : "invalid_header_value");
    ve = n;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    h->value = gh_str_make(p + vs, ve - vs);
    return GH_OK;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). Lists ("5, 5"), signs and
 * whitespace inside are refused; more than 18 digits cannot be a real size. */
static int parse_content_length(gh_str v, uint64_t *out)
{
    uint64_t n = 0;

    if (v.len == 0 || v.len > 18) return GH_ERROR;
    for (size_t i = 0; i < v.len; i++) {
        if (!is_digit((unsigned char)v.ptr[i])) return GH_ERROR;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    *out = n;
    return GH_OK;
}

/* Iterates the comma-separated elements of a list value (RFC 9110 §5.6.1).
 * Returns false at the end; each element is trimmed of OWS. An empty element
 * is returned as an empty slice so that callers may refuse it. */
static bool next_list_element(gh_str *rest, gh_str *elem)
{
    const char *p, *end, *comma;

    if (rest->ptr == NULL) return false;
    p = rest->ptr;
    end = p + rest->len;
    comma = memchr(p, ',', rest->len);
    const char *e = comma ? comma : end;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    const char *q = e;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    *elem = gh_str_make(p, (size_t)(q - p));
    if (comma) {
        rest->ptr = comma + 1;
        rest->len = (size_t)(end - comma - 1);
    } else {
        rest->ptr = NULL;
        rest->len = 0;
    }
    return true;
}

/* What the header pass learns, shared by requests and responses. */
struct head_facts {
    int content_lengths;
    uint64_t content_length;
    int te_codings;       /* transfer codings seen, over all TE fields */
    int te_chunked_count; /* how often "chunked" appears */
    bool te_chunked_last; /* the final coding is chunked */
    bool te_invalid;      /* an element that is not a token, or empty */
    bool te_params;       /* a coding with parameters */
    int hosts;
    gh_str host;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool expect_continue, expect_other;
    bool bad_content_length;
};

static void note_transfer_encoding(gh_str v, struct head_facts *f)
{
    gh_str rest = v, e;

    if (v.len == 0) f->te_invalid = true;
    while (next_list_element(&rest, &e)) {
        bool is_chunked;
        size_t i = 0;

        if (e.len == 0) {
            f->te_invalid = true;
            continue;
        }
        while (i < e.len && gh_http_is_tchar((unsigned char)e.ptr[i]))
            i++;
        if (i == 0) {
            f->te_invalid = true;
            continue;
        }
        if (i < e.len) {
            /* transfer-parameter: "gzip;q=1" style. Any non-token text after
             * the name that does not start a parameter is invalid. */
            const char *s = e.ptr + i;
            while (s < e.ptr + e.len && (*s == ' ' || *s == '\t'))
                s++;
            if (s == e.ptr + e.len || *s != ';')
                f->te_invalid = true;
            else
                f->te_params = true;
        }
        is_chunked = i == 7 && strncasecmp(e.ptr, "chunked", 7) == 0;
        f->te_codings++;
        if (is_chunked) f->te_chunked_count++;
        f->te_chunked_last = is_chunked && i == e.len;
    }
}

static void note_connection(gh_str v, struct head_facts *f)
{
    gh_str rest = v, e;
    while (next_list_element(&rest, &e)) {
        if (gh_str_caseeq_lit(e, "close"))
            f->conn_close = true;
        else if (gh_str_caseeq_lit(e, "keep-alive"))
            f->conn_keep_alive = true;
        else if (gh_str_caseeq_lit(e, "upgrade"))
            f->conn_upgrade = true;
    }
}

/* Parses all field lines from <p> to <end> (each ending in CRLF, the last
 * empty line excluded). Returns GH_OK or GH_ERROR. */
static int parse_fields(const char *p, const char *end, const struct gh_http_limits *lim,
                        struct gh_http_header *headers, uint32_t *nheaders, bool is_request,
                        struct head_facts *f, struct gh_http_error *err)
{
    int bad = is_request ? 400 : 502;
    uint32_t n = 0;

    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        struct gh_http_header *h;
        size_t len;

        /* The scan guarantees each line ends in CRLF; a CR elsewhere is bare. */
        if (cr == NULL || cr + 1 >= end + 2 || cr[1] != '\n') return fail(err, bad, "bare_cr");
        len = (size_t)(cr - p);
        if (len == 0) return fail(err, bad, "invalid_header");
        if (n >= lim->max_headers) return fail(err, is_request ? 431 : bad, "too_many_headers");
        h = &headers[n];
        if (parse_field_line(p, len, h, bad, err) != GH_OK) return GH_ERROR;
        n++;
        p = cr + 2;

        /* Dispatch on length first: most fields match none of these. */
        switch (h->name.len) {
        case 4:
            if (is_request && gh_str_caseeq_lit(h->name, "host")) {
                f->hosts++;
                f->host = h->value;
            }
            break;
        case 6:
            if (is_request && gh_str_caseeq_lit(h->name, "expect")) {
                if (gh_str_caseeq_lit(h->value, "100-continue"))
                    f->expect_continue = true;
                else
                    f->expect_other = true;
            }
            break;
        case 10:
            if (gh_str_caseeq_lit(h->name, "connection")) note_connection(h->value, f);
            break;
        case 14:
            if (gh_str_caseeq_lit(h->name, "content-length")) {
                uint64_t cl;
                f->content_lengths++;
                if (parse_content_length(h->value, &cl) != GH_OK)
                    f->bad_content_length = true;
                else
                    f->content_length = cl;
            }
            break;
        case 17:
            if (gh_str_caseeq_lit(h->name, "transfer-encoding"))
                note_transfer_encoding(h->value, f);
            break;
        default: break;
        }
    }
    *nheaders = n;
    return GH_OK;
}

int gh_http_parse_request(const char *buf, size_t len, struct gh_http_state *state,
                          const struct gh_http_limits *limits, struct gh_http_header *headers,
                          struct gh_http_request *req, struct gh_http_error *err)
{
    struct head_facts f;
    uint32_t head_len = 0;
    const char *line, *line_end, *fields;
    int rc;

    rc = scan_head(buf, len, state, limits, 400, true, &head_len, err);
    if (rc != GH_OK) return rc;

    memset(req, 0, sizeof(*req));
    memset(&f, 0, sizeof(f));
    req->headers = headers;
    req->head_len = head_len;
    line = buf + state->first_line;
    line_end = memchr(line, '\r', head_len - state->first_line);
    if (line_end == NULL || line_end[1] != '\n') return fail(err, 400, "bare_cr");
    if (parse_request_line(line, (size_t)(line_end - line), req, err) != GH_OK) return GH_ERROR;
    fields = line_end + 2;
    if (parse_fields(fields, buf + head_len - 2, limits, headers, &req->nheaders, true, &f, err) !=
        GH_OK)
        return GH_ERROR;

    /* RFC 9112 §3.2: exactly one valid Host in HTTP/1.1. */
    if (f.hosts > 1) return fail(err, 400, "duplicate_host");
    if (f.hosts == 0 && req->minor_version == 1) return fail(err, 400, "missing_host");
    if (f.hosts == 1 && !valid_host(f.host)) return fail(err, 400, "invalid_host");
    if (req->target_form != GH_TARGET_ABSOLUTE) req->authority = f.host;

    /* Framing (RFC 9112 §6). */
    if (f.te_codings > 0 || f.te_invalid) {
        /* §6.1: TE in HTTP/1.0 means the framing is faulty. §6.3: TE with
         * Content-Length is a smuggling attempt; refuse rather than guess. */
        if (req->minor_version == 0) return fail(err, 400, "transfer_encoding_http10");
        if (f.content_lengths > 0) return fail(err, 400, "ambiguous_framing");
        if (f.te_invalid) return fail(err, 400, "invalid_transfer_encoding");
        if (!f.te_chunked_last || f.te_chunked_count > 1)
            return fail(err, 400, "invalid_transfer_encoding");
        if (f.te_codings > 1 || f.te_params)
            return fail(err, 501, "transfer_coding_not_implemented");
        req->framing.body = GH_BODY_CHUNKED;
    } else if (f.content_lengths > 1) {
        return fail(err, 400, "duplicate_content_length");
    } else if (f.content_lengths == 1) {
        if (f.bad_content_length) return fail(err, 400, "invalid_content_length");
        req->framing.content_length = f.content_length;
        req->framing.body = f.content_length > 0 ? GH_BODY_LENGTH : GH_BODY_NONE;
    } else {
        req->framing.body = GH_BODY_NONE;
    }

    /* RFC 9110 §10.1.1: an HTTP/1.0 server ignores 100-continue. */
    if (f.expect_other) return fail(err, 417, "expectation_failed");
    req->expect_continue = f.expect_continue && req->minor_version == 1;

    req->framing.conn_close = f.conn_close;
    req->framing.conn_upgrade = f.conn_upgrade;
    req->framing.keep_alive = !f.conn_close && (req->minor_version == 1 || f.conn_keep_alive);
    return GH_OK;
}

int gh_http_parse_response(const char *buf, size_t len, struct gh_http_state *state,
                           const struct gh_http_limits *limits, enum gh_http_method req_method,
                           struct gh_http_header *headers, struct gh_http_response *resp,
                           struct gh_http_error *err)
{
    struct head_facts f;
    uint32_t head_len = 0;
    const char *line, *line_end;
    size_t n;
    int rc, v;

    rc = scan_head(buf, len, state, limits, 502, false, &head_len, err);
    if (rc != GH_OK) return rc;

    memset(resp, 0, sizeof(*resp));
    memset(&f, 0, sizeof(f));
    resp->headers = headers;
    resp->head_len = head_len;
    line = buf + state->first_line;
    line_end = memchr(line, '\r', head_len - state->first_line);
    if (line_end == NULL || line_end[1] != '\n') return fail(err, 502, "bare_cr");
    n = (size_t)(line_end - line);

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ]; a
     * missing final SP is tolerated from upstreams. */
    if (n < 12) return fail(err, 502, "invalid_status_line");
    v = parse_version(line);
    if (v < 0) return fail(err, 502, "invalid_status_line");
    if (line[8] != ' ' || !is_digit((unsigned char)line[9]) || !is_digit((unsigned char)line[10]) ||
        !is_digit((unsigned char)line[11]))
        return fail(err, 502, "invalid_status_line");
    if (n > 12 && line[12] != ' ') return fail(err, 502, "invalid_status_line");
    resp->minor_version = v;
    resp->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (resp->status < 100) return fail(err, 502, "invalid_status_line");
    resp->reason = n > 13 ? gh_str_make(line + 13, n - 13) : gh_str_make(line + n, 0);
    for (size_t i = 0; i < resp->reason.len; i++)
        if (!is_field_value_char((unsigned char)resp->reason.ptr[i]))
            return fail(err, 502, "invalid_status_line");

    if (parse_fields(line_end + 2, buf + head_len - 2, limits, headers, &resp->nheaders, false, &f,
                     err) != GH_OK)
        return GH_ERROR;

    resp->framing.conn_close = f.conn_close;
    resp->framing.conn_upgrade = f.conn_upgrade;
    resp->framing.keep_alive = !f.conn_close && (v == 1 || f.conn_keep_alive);

    /* RFC 9112 §6.3, in order. */
    if (req_method == GH_HTTP_HEAD || resp->status < 200 || resp->status == 204 ||
        resp->status == 304) {
        resp->framing.body = GH_BODY_NONE;
        return GH_OK;
    }
    if (f.te_codings > 0 || f.te_invalid) {
        if (f.content_lengths > 0) return fail(err, 502, "ambiguous_framing");
        /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
        if (v == 0) return fail(err, 502, "transfer_encoding_http10");
        if (!f.te_invalid && f.te_chunked_last && f.te_chunked_count == 1 && f.te_codings == 1 &&
            !f.te_params) {
            resp->framing.body = GH_BODY_CHUNKED;
            return GH_OK;
        }
        /* Transfer codings other than chunked (gzip, compress...) are
         * hop-by-hop: forwarding their bytes with the header removed would
         * hand the client a corrupt body, and we do not decode them. */
        if (f.te_invalid || f.te_chunked_count > 1)
            return fail(err, 502, "invalid_transfer_encoding");
        return fail(err, 502, "transfer_coding_not_implemented");
    }
    if (f.content_lengths > 1) return fail(err, 502, "duplicate_content_length");
    if (f.content_lengths == 1) {
        if (f.bad_content_length) return fail(err, 502, "invalid_content_length");
        resp->framing.content_length = f.content_length;
        resp->framing.body = f.content_length > 0 ? GH_BODY_LENGTH : GH_BODY_NONE;
        return GH_OK;
    }
    resp->framing.body = GH_BODY_CLOSE;
    resp->framing.keep_alive = false;
    return GH_OK;
}

const struct gh_http_header *gh_http_find_header(const struct gh_http_header *headers, uint32_t n,
                                                 const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; i < n; i++)
        if (headers[i].name.len == len && strncasecmp(headers[i].name.ptr, name, len) == 0)
            return &headers[i];
    return NULL;
}

bool gh_http_is_hop_by_hop(gh_str name)
{
    switch (name.len) {
    case 2: return gh_str_caseeq_lit(name, "te");
    case 7: return gh_str_caseeq_lit(name, "trailer") || gh_str_caseeq_lit(name, "upgrade");
    case 10: return gh_str_caseeq_lit(name, "connection") || gh_str_caseeq_lit(name, "keep-alive");
    case 16: return gh_str_caseeq_lit(name, "proxy-connection");
    case 17: return gh_str_caseeq_lit(name, "transfer-encoding");
    case 18: return gh_str_caseeq_lit(name, "proxy-authenticate");
    case 19: return gh_str_caseeq_lit(name, "proxy-authorization");
    default: return false;
    }
}

bool gh_http_connection_lists(const struct gh_http_header *headers, uint32_t n, gh_str name)
{
    for (uint32_t i = 0; i < n; i++) {
        gh_str rest, e;
        if (!gh_str_caseeq_lit(headers[i].name, "connection")) continue;
        rest = headers[i].value;
        while (next_list_element(&rest, &e))
            if (gh_str_caseeq(e, name)) return true;
    }
    return false;
}
