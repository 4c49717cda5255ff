/* Decoder for the chunked transfer coding (RFC 9112 §7.1), byte-exact and
 * incremental: it keeps no input, so any split of the input across reads
 * gives the same result. Data comes out as slices of the input; only trailer
 * lines are copied (into the decoder) to be handed out whole. */
#include "http/parser.h"

#include "core/err.h"

enum {
    S_SIZE_FIRST, /* expecting the first hex digit of a chunk size */
    S_SIZE,       /* more hex digits, or what follows them */
    S_EXT_BWS,    /* whitespace after the size or a value; expecting ';' or CR */
    S_EXT_NAME_BWS,
    S_EXT_NAME,
    S_EXT_AFTER_NAME, /* whitespace, '=', ';' or CR */
    S_EXT_VAL_BWS,
    S_EXT_VAL_TOKEN,
    S_EXT_VAL_QUOTED,
    S_EXT_VAL_ESCAPE,
    S_EXT_AFTER_VAL, /* whitespace, ';' or CR */
    S_SIZE_LF,
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TRAILER_START,
    S_TRAILER_LINE,
    S_TRAILER_LF,
    S_FINAL_LF,
    S_DONE,
};

/* A chunk-size line (size and extensions) longer than this is refused: no
 * legitimate sender needs more, and it bounds the work per chunk. */
#define MAX_SIZE_LINE 1024

void gh_chunked_init(struct gh_chunked *c, uint32_t max_trailer_bytes)
{
    memset(c, 0, sizeof(*c));
    c->state = S_SIZE_FIRST;
    c->max_trailer_bytes = max_trailer_bytes;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static enum gh_chunk_event chunk_fail(struct gh_http_error *err, int status, const char *code)
{
    /* *consumed is set by the caller's return path below. */
    err->status = status;
    err->code = code;
    return GH_CHUNK_ERROR;
}

/* The end of a size line: a zero size starts the trailer section. */
static uint8_t after_size_line(const struct gh_chunked *c)
{
    return c->remaining == 0 ? S_TRAILER_START : S_DATA;
}

/* Validates one trailer field line held in c->line (RFC 9112 §7.1.2: same
 * syntax as header fields). */
static bool valid_trailer_line(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && gh_http_is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':') return false;
    for (i++; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (!(ch == '\t' || (ch >= 0x20 && ch != 0x7f))) return false;
    }
    return true;
}

enum gh_chunk_event gh_chunked_next(struct gh_chunked *c, const char *in, size_t len,
                                    size_t *consumed, gh_str *span, struct gh_http_error *err)
{
    size_t i = 0;

    while (i < len) {
        unsigned char ch = (unsigned char)in[i];

        if (c->state == S_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining) n = (size_t)c->remaining;
            *span = gh_str_make(in + i, n);
            c->remaining -= n;
            c->total += n;
            if (c->remaining == 0) c->state = S_DATA_CR;
            *consumed = i + n;
            return GH_CHUNK_DATA;
        }
        *consumed = i; /* on error: the bytes before the bad one */
        if (c->state <= S_EXT_AFTER_VAL && ++c->line_len > MAX_SIZE_LINE)
            return chunk_fail(err, 400, "chunk_line_too_long");

        switch (c->state) {
        case S_SIZE_FIRST:
            if (hexval(ch) < 0) return chunk_fail(err, 400, "invalid_chunk_size");
            c->remaining = (uint64_t)hexval(ch);
            c->digits = 1;
            c->state = S_SIZE;
            break;
        case S_SIZE:
            if (hexval(ch) >= 0) {
                /* 16 hex digits fill 64 bits; more cannot be a real size. */
                if (++c->digits > 16) return chunk_fail(err, 400, "invalid_chunk_size");
                c->remaining = (c->remaining << 4) | (uint64_t)hexval(ch);
            } else if (ch == '\r') {
                c->state = S_SIZE_LF;
            } else if (ch == ';') {
                c->state = S_EXT_NAME_BWS;
            } else if (ch == ' ' || ch == '\t') {
                c->state = S_EXT_BWS;
            } else {
                return chunk_fail(err, 400, "invalid_chunk_size");
            }
            break;
        case S_EXT_BWS:
            /* BWS is only allowed when a ';' follows (RFC 9112 §7.1.1). */
            if (ch == ';')
                c->state = S_EXT_NAME_BWS;
            else if (ch != ' ' && ch != '\t')
                return chunk_fail(err, 400, "invalid_chunk_extension");
            break;
        case S_EXT_NAME_BWS:
            if (ch == ' ' || ch == '\t') break;
            if (!gh_http_is_tchar(ch)) return chunk_fail(err, 400, "invalid_chunk_extension");
            c->state = S_EXT_NAME;
            break;
        case S_EXT_NAME:
            if (gh_http_is_tchar(ch)) break;
            /* what ends a name */
            __attribute__((fallthrough));
        case S_EXT_AFTER_NAME:
            if (ch == '\r')
                c->state = S_SIZE_LF;
            else if (ch == ';')
                c->state = S_EXT_NAME_BWS;
            else if (ch == '=')
                c->state = S_EXT_VAL_BWS;
            else if (ch == ' ' || ch == '\t')
                c->state = S_EXT_AFTER_NAME;
            else
                return chunk_fail(err, 400, "invalid_chunk_extension");
            break;
        case S_EXT_VAL_BWS:
            if (ch == ' ' || ch == '\t') break;
            if (ch == '"')
                c->state = S_EXT_VAL_QUOTED;
            else if (gh_http_is_tchar(ch))
                c->state = S_EXT_VAL_TOKEN;
            else
                return chunk_fail(err, 400, "invalid_chunk_extension");
            break;
        case S_EXT_VAL_TOKEN:
            if (gh_http_is_tchar(ch)) break;
            if (ch == '\r')
                c->state = S_SIZE_LF;
            else if (ch == ';')
                c->state = S_EXT_NAME_BWS;
            else if (ch == ' ' || ch == '\t')
                c->state = S_EXT_AFTER_VAL;
            else
                return chunk_fail(err, 400, "invalid_chunk_extension");
            break;
        case S_EXT_AFTER_VAL:
            if (ch == '\r')
                c->state = S_SIZE_LF;
            else if (ch == ';')
                c->state = S_EXT_NAME_BWS;
            else if (ch != ' ' && ch != '\t')
                return chunk_fail(err, 400, "invalid_chunk_extension");
            break;
        case S_EXT_VAL_QUOTED:
            /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
            if (ch == '"')
                c->state = S_EXT_AFTER_VAL;
            else if (ch == '\\')
                c->state = S_EXT_VAL_ESCAPE;
            else if (!(ch == '\t' || (ch >= 0x20 && ch != 0x7f)))
                return chunk_fail(err, 400, "invalid_chunk_extension");
            break;
        case S_EXT_VAL_ESCAPE:
            if (!(ch == '\t' || (ch >= 0x20 && ch != 0x7f)))
                return chunk_fail(err, 400, "invalid_chunk_extension");
            c->state = S_EXT_VAL_QUOTED;
            break;
        case S_SIZE_LF:
            if (ch != '\n') return chunk_fail(err, 400, "bare_cr");
            c->state = after_size_line(c);
            c->line_len = 0;
            break;
        case S_DATA_CR:
            if (ch != '\r') return chunk_fail(err, 400, "missing_chunk_crlf");
            c->state = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (ch != '\n') return chunk_fail(err, 400, "missing_chunk_crlf");
            c->state = S_SIZE_FIRST;
            c->line_len = 0;
            break;
        case S_TRAILER_START:
            if (ch == '\r') {
                c->state = S_FINAL_LF;
                break;
            }
            if (ch == ' ' || ch == '\t') return chunk_fail(err, 400, "obs_fold");
            c->line_len = 0;
            c->state = S_TRAILER_LINE;
            __attribute__((fallthrough));
        case S_TRAILER_LINE:
            if (ch == '\r') {
                c->state = S_TRAILER_LF;
                break;
            }
            if (ch == '\n') return chunk_fail(err, 400, "bare_lf");
            if (++c->trailer_bytes > c->max_trailer_bytes || c->line_len >= sizeof(c->line))
                return chunk_fail(err, 431, "trailer_too_large");
            c->line[c->line_len++] = (char)ch;
            break;
        case S_TRAILER_LF:
            if (ch != '\n') return chunk_fail(err, 400, "bare_cr");
            if (!valid_trailer_line(c->line, c->line_len))
                return chunk_fail(err, 400, "invalid_trailer");
            c->state = S_TRAILER_START;
            *span = gh_str_make(c->line, c->line_len);
            *consumed = i + 1;
            return GH_CHUNK_TRAILER;
        case S_FINAL_LF:
            if (ch != '\n') return chunk_fail(err, 400, "bare_cr");
            c->state = S_DONE;
            *consumed = i + 1;
            return GH_CHUNK_DONE;
        case S_DONE: *consumed = i; return GH_CHUNK_DONE;
        default: return chunk_fail(err, 400, "invalid_chunk");
        }
        i++;
    }
    *consumed = i;
    if (c->state == S_DONE) return GH_CHUNK_DONE;
    /* A zero-length chunk reached through the data path cannot happen: a
     * size of 0 goes straight to the trailer section. */
    return GH_CHUNK_NEED_MORE;
}
