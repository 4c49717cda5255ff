/* The configuration loader: a YAML file (libyaml's document API) walked
 * through tables that describe every mapping's keys, into the plain structs of
 * config.h, then cross-checked (names resolved, duplicates refused).
 *
 * Adding a key is adding a row to a table below: its name, its type (which
 * knows how to set, check and free it), the field's offset, bounds and a
 * default written as it would be in YAML. The same tables drive defaults,
 * gh_config_demo() and gh_config_free(), so a new row needs no other code. */
#include "config/config.h"
#include "config/pg_url.h"
#include "core/cpus.h"
#include "core/str.h"
#include "hooks/inbound.h"
#include "hooks/ssrf.h"
#include "http/parser.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <yaml.h>

/* A config file is a few kilobytes; the cap keeps a wrong path (a log, a
 * disk image) from being read whole into memory. */
#define GH_CONFIG_MAX_FILE (16u * 1024 * 1024)

#define FIELD(obj, off, T) ((T *)(void *)((char *)(obj) + (off)))
#define NELEM(a)           (sizeof(a) / sizeof((a)[0]))

struct cfg_ctx {
    const char *file;     /* name used in errors */
    const char *base_dir; /* absolute; relative file paths are joined to it */
    yaml_document_t *doc;
    struct gh_config *cfg; /* the config being filled: secret references and warnings */
    struct gh_err *err;
    yaml_node_t *around; /* innermost present mapping, for errors about absent keys */
    char path[256];      /* "routes[2].upstream" while walking */
    size_t pathlen;
};

struct cfg_key;
struct cfg_map;

/* A kind of value: how to set a field from a YAML node and how to free it. */
struct cfg_type {
    const char *what;      /* "a duration": for "expected a duration, got a list" */
    yaml_node_type_t node; /* the node type it accepts (null also does, for lists and maps) */
    int (*set)(struct cfg_ctx *ctx, yaml_node_t *node, const struct cfg_key *key, void *obj);
    void (*release)(const struct cfg_key *key, void *obj); /* NULL: nothing owned */
};

enum {
    KEY_REQUIRED = 1u << 0,   /* a missing key is an error */
    KEY_READABLE = 1u << 1,   /* paths: the file must exist and be readable now */
    KEY_STDIO = 1u << 2,      /* paths: "stdout" and "stderr" are kept as they are */
    KEY_NOREF = 1u << 3,      /* secrets: no `secret:NAME` (needed before the secrets open) */
    KEY_DEFAULTS = 1u << 4,   /* a mapping of its own type: when absent, its defaults and finish
                               * still apply (t_map does this always) */
    KEY_URL = 1u << 5,        /* secrets: a URL, literal unless it carries a password */
    KEY_NOREF_LOAD = 1u << 6, /* secrets: no `secret:NAME` either (the value is checked as the
                               * file is read, before the store opens) */
};

/* One row: a key of a mapping. Fields not used by a type stay zero. */
struct cfg_key {
    const char *name;
    const struct cfg_type *type;
    size_t off;        /* the field in the object the mapping fills */
    size_t count_off;  /* lists: the size_t element count */
    uint64_t min, max; /* numbers: bounds (max 0 = the field's maximum); lists: min entries */
    const char *dflt;  /* default, written as in YAML; NULL = none (zero) */
    unsigned flags;    /* KEY_* */
    const struct cfg_map *sub;  /* maps and lists: the nested table */
    const char *const *choices; /* strings: the allowed values, NULL-terminated */
};

/* A mapping: its keys and, for list and named entries, the element layout. */
struct cfg_map {
    const struct cfg_key *keys;
    size_t nkeys;
    size_t size;     /* list and named-map elements: sizeof the element */
    size_t name_off; /* named-map elements: the char *name field */
    bool has_pos;
    size_t pos_off; /* where to record the mapping's struct gh_config_pos */
    /* Cross-field checks once every key is set; <node> is NULL when the
     * mapping was absent from the file. */
    int (*finish)(struct cfg_ctx *ctx, yaml_node_t *node, void *obj);
};

/* ---- Errors and paths ---------------------------------------------------- */

static struct gh_config_pos pos_of(const yaml_node_t *n)
{
    struct gh_config_pos p = {0, 0};

    /* libyaml marks are 0-based; people and editors count from 1. */
    if (n != NULL) {
        p.line = (int)n->start_mark.line + 1;
        p.col = (int)n->start_mark.column + 1;
    }
    return p;
}

__attribute__((format(printf, 4, 0))) static int failv(struct cfg_ctx *ctx, const yaml_node_t *n,
                                                       bool with_path, const char *fmt, va_list ap)
{
    char msg[sizeof(ctx->err->msg)];
    struct gh_config_pos p = pos_of(n != NULL ? n : ctx->around);

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (with_path && ctx->pathlen > 0)
        return gh_err_set(ctx->err, ctx->file, p.line, p.col, "in %s: %s", ctx->path, msg);
    return gh_err_set(ctx->err, ctx->file, p.line, p.col, "%s", msg);
}

/* "file:line:col: in <path>: <msg>", at <n> (or around it when NULL). */
__attribute__((format(printf, 3, 4))) static int fail(struct cfg_ctx *ctx, const yaml_node_t *n,
                                                      const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = failv(ctx, n, true, fmt, ap);
    va_end(ap);
    return rc;
}

/* Same without the "in <path>: " prefix, for messages that name the path
 * themselves ("unknown key \"foo\" in routes[0]"). */
__attribute__((format(printf, 3, 4))) static int
fail_plain(struct cfg_ctx *ctx, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = failv(ctx, n, false, fmt, ap);
    va_end(ap);
    return rc;
}

static size_t path_push_key(struct cfg_ctx *ctx, const char *name)
{
    size_t old = ctx->pathlen;

    snprintf(ctx->path + old, sizeof(ctx->path) - old, "%s%s", old > 0 ? "." : "", name);
    ctx->pathlen = strlen(ctx->path);
    return old;
}

static size_t path_push_index(struct cfg_ctx *ctx, size_t i)
{
    size_t old = ctx->pathlen;

    snprintf(ctx->path + old, sizeof(ctx->path) - old, "[%zu]", i);
    ctx->pathlen = strlen(ctx->path);
    return old;
}

static void path_pop(struct cfg_ctx *ctx, size_t old)
{
    ctx->pathlen = old;
    ctx->path[old] = '\0';
}

__attribute__((format(printf, 2, 3))) static void path_set(struct cfg_ctx *ctx, const char *fmt,
                                                           ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ctx->path, sizeof(ctx->path), fmt, ap);
    va_end(ap);
    ctx->pathlen = strlen(ctx->path);
}

/* " in <path>" or "" at the top level. */
static const char *where(struct cfg_ctx *ctx, char *buf, size_t size)
{
    if (ctx->pathlen == 0) return "";
    snprintf(buf, size, " in %s", ctx->path);
    return buf;
}

/* Levenshtein distance, for "did you mean"; long words are not compared. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];

    if (la > 64 || lb > 64) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Writes " (did you mean \"x\"?)" into <buf> when one of the <n> strings at
 * <base> + k * <stride> is within two edits of <word>, else "". */
static const char *suggest(const char *word, const void *base, size_t n, size_t stride, char *buf,
                           size_t size)
{
    const char *best = NULL;
    size_t best_d = 3;

    buf[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        const char *cand = *(const char *const *)(const void *)((const char *)base + k * stride);
        size_t d = cand != NULL ? edit_distance(word, cand) : SIZE_MAX;
        if (d < best_d && d < strlen(word)) {
            best = cand;
            best_d = d;
        }
    }
    if (best != NULL) snprintf(buf, size, " (did you mean \"%s\"?)", best);
    return buf;
}

/* ---- Nodes --------------------------------------------------------------- */

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static yaml_node_t *node_at(struct cfg_ctx *ctx, int index)
{
    return yaml_document_get_node(ctx->doc, index);
}

/* An empty value (`admin:`), `~` or `null`: for lists and mappings it reads
 * as "present, with nothing in it". */
static bool is_null(const yaml_node_t *n)
{
    const char *s;

    if (n == NULL || n->type != YAML_SCALAR_NODE) return false;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    s = scalar(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *node_what(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a single value";
    }
}

/* The value of key <name> in mapping <map>, or NULL. For positions of
 * errors found after the walk. */
static yaml_node_t *map_get(struct cfg_ctx *ctx, yaml_node_t *map, const char *name)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(ctx, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strcmp(scalar(k), name) == 0)
            return node_at(ctx, p->value);
    }
    return NULL;
}

static size_t seq_len(const yaml_node_t *seq)
{
    if (seq == NULL || seq->type != YAML_SEQUENCE_NODE) return 0;
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

static yaml_node_t *seq_item(struct cfg_ctx *ctx, yaml_node_t *seq, size_t i)
{
    if (i >= seq_len(seq)) return NULL;
    return node_at(ctx, seq->data.sequence.items.start[i]);
}

static int walk_map(struct cfg_ctx *ctx, yaml_node_t *node, const struct cfg_map *map, void *obj);
static void release_map(const struct cfg_map *map, void *obj);

/* ---- Scalar types ------------------------------------------------------ */

/* Reads an unsigned decimal: GH_OK, GH_ERROR (not a number) or GH_AGAIN (too
 * large for uint64_t). */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!isdigit((unsigned char)s[0])) return GH_ERROR;
    for (; *s != '\0'; s++) {
        unsigned d;
        if (!isdigit((unsigned char)*s)) return GH_ERROR;
        d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return GH_AGAIN;
        v = v * 10 + d;
    }
    *out = v;
    return GH_OK;
}

/* Checks <v> against the row's bounds; <typemax> is the field's own maximum,
 * used when the row sets none. */
static int check_bounds(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, uint64_t v,
                        uint64_t typemax, const char *unit)
{
    uint64_t max = key->max != 0 ? key->max : typemax;

    if (v >= key->min && v <= max) return GH_OK;
    if (key->max != 0)
        return fail(ctx, n, "must be between %llu%s and %llu%s", (unsigned long long)key->min, unit,
                    (unsigned long long)max, unit);
    if (v < key->min && key->min == 1) return fail(ctx, n, "must be greater than 0");
    if (v < key->min)
        return fail(ctx, n, "must be at least %llu%s", (unsigned long long)key->min, unit);
    return fail(ctx, n, "is too large (at most %llu%s)", (unsigned long long)max, unit);
}

static int set_u32(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;
    int rc = parse_u64(scalar(n), &v);

    if (rc == GH_AGAIN)
        v = UINT64_MAX; /* all digits: report it as too large */
    else if (rc != GH_OK)
        return fail(ctx, n, "invalid number \"%s\"", scalar(n));
    if (check_bounds(ctx, n, key, v, UINT32_MAX, "") != GH_OK) return GH_ERROR;
    *FIELD(obj, key->off, uint32_t) = (uint32_t)v;
    return GH_OK;
}

/* A fraction from 0 to 1 ("0.25", "1", "0"), as a double. */
static int set_ratio(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const char *s = scalar(n);
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || end == s || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 1.0))
        return fail(ctx, n, "expected a number from 0 to 1, got \"%s\"", s);
    *FIELD(obj, key->off, double) = v;
    return GH_OK;
}

static int set_u64(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;
    int rc = parse_u64(scalar(n), &v);

    if (rc == GH_AGAIN) return fail(ctx, n, "is too large");
    if (rc != GH_OK) return fail(ctx, n, "expected a number, got \"%s\"", scalar(n));
    if (check_bounds(ctx, n, key, v, UINT64_MAX, "") != GH_OK) return GH_ERROR;
    *FIELD(obj, key->off, uint64_t) = v;
    return GH_OK;
}

static int set_rate(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    if (gh_config_parse_rate(scalar(n), FIELD(obj, key->off, struct gh_config_rate)) != GH_OK)
        return fail(ctx, n,
                    "expected a rate such as \"100/s\", \"600/m\", \"5000/h\" or \"10000/d\" "
                    "(a count above 0, then a period of at most a year), got \"%s\"",
                    scalar(n));
    return GH_OK;
}

static int set_duration(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;

    if (gh_config_parse_duration_ms(scalar(n), &v) != GH_OK)
        return fail(ctx, n, "invalid duration \"%s\" (use e.g. 250ms, 5s, 2m)", scalar(n));
    if (check_bounds(ctx, n, key, v, UINT32_MAX, "ms") != GH_OK) return GH_ERROR;
    *FIELD(obj, key->off, uint32_t) = (uint32_t)v;
    return GH_OK;
}

/* A duration that may pass 49 days (retention periods: "365d"). */
static int set_duration64(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;

    if (gh_config_parse_duration_ms(scalar(n), &v) != GH_OK)
        return fail(ctx, n, "invalid duration \"%s\" (use e.g. 1s, 12h, 90d)", scalar(n));
    if (check_bounds(ctx, n, key, v, UINT64_MAX, "ms") != GH_OK) return GH_ERROR;
    *FIELD(obj, key->off, uint64_t) = v;
    return GH_OK;
}

static int parse_size_node(struct cfg_ctx *ctx, yaml_node_t *n, uint64_t *v)
{
    if (gh_config_parse_size(scalar(n), v) != GH_OK)
        return fail(ctx, n, "invalid size \"%s\" (use e.g. 512, 16KiB, 1MiB, 2GiB)", scalar(n));
    return GH_OK;
}

static int set_size32(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;

    if (parse_size_node(ctx, n, &v) != GH_OK) return GH_ERROR;
    if (check_bounds(ctx, n, key, v, UINT32_MAX, " bytes") != GH_OK) return GH_ERROR;
    *FIELD(obj, key->off, uint32_t) = (uint32_t)v;
    return GH_OK;
}

static int set_size64(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;

    if (parse_size_node(ctx, n, &v) != GH_OK) return GH_ERROR;
    if (check_bounds(ctx, n, key, v, UINT64_MAX, " bytes") != GH_OK) return GH_ERROR;
    *FIELD(obj, key->off, uint64_t) = v;
    return GH_OK;
}

static int set_bool(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *s = scalar(n);

    for (size_t i = 0; i < NELEM(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *FIELD(obj, key->off, bool) = true;
            return GH_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *FIELD(obj, key->off, bool) = false;
            return GH_OK;
        }
    }
    return fail(ctx, n, "expected true or false, got \"%s\"", s);
}

/* Stores a copy of <s> in the char * field, freeing what was there. */
static int store_str(struct cfg_ctx *ctx, yaml_node_t *n, char **field, const char *s)
{
    char *copy = strdup(s);

    if (copy == NULL) return fail(ctx, n, "out of memory");
    free(*field);
    *field = copy;
    return GH_OK;
}

static int set_string(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const char *s = scalar(n);

    if (s[0] == '\0') return fail(ctx, n, "must not be empty");
    if (key->choices != NULL) {
        char list[128] = "";
        size_t i;
        for (i = 0; key->choices[i] != NULL; i++)
            if (strcmp(s, key->choices[i]) == 0) break;
        if (key->choices[i] == NULL) {
            for (i = 0; key->choices[i] != NULL; i++) {
                size_t len = strlen(list);
                snprintf(list + len, sizeof(list) - len, "%s%s", i > 0 ? ", " : "",
                         key->choices[i]);
            }
            return fail(ctx, n, "must be one of %s (got \"%s\")", list, s);
        }
    }
    return store_str(ctx, n, FIELD(obj, key->off, char *), s);
}

/* Fails unless <file> exists, is a regular file and can be read. The TLS
 * module opens it later; checking here puts the error at the line that
 * names the file instead of in a startup log. Not a FIFO or a device:
 * OpenSSL's open of a FIFO blocks `gatehouse run` before it listens, while
 * `gatehouse check` said the file was fine. */
static int check_readable(struct cfg_ctx *ctx, yaml_node_t *n, const char *file)
{
    struct stat st;

    if (access(file, R_OK) != 0 || stat(file, &st) != 0)
        return fail(ctx, n, "cannot read \"%s\": %s", file, strerror(errno));
    if (S_ISDIR(st.st_mode)) return fail(ctx, n, "\"%s\" is a directory", file);
    if (!S_ISREG(st.st_mode)) return fail(ctx, n, "\"%s\" is not a regular file", file);
    return GH_OK;
}

/* Relative paths are joined to the config file's directory (made absolute),
 * so the same file works whatever the working directory of the process. */
static int set_path(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const char *s = scalar(n);
    char **field = FIELD(obj, key->off, char *);
    char *full;
    size_t len;

    if (s[0] == '\0') return fail(ctx, n, "must not be empty");
    if (s[0] == '/' ||
        ((key->flags & KEY_STDIO) && (strcmp(s, "stdout") == 0 || strcmp(s, "stderr") == 0))) {
        if (store_str(ctx, n, field, s) != GH_OK) return GH_ERROR;
    } else {
        size_t blen = strlen(ctx->base_dir);
        bool sep = blen == 0 || ctx->base_dir[blen - 1] != '/';
        len = blen + 1 + strlen(s) + 1;
        full = malloc(len);
        if (full == NULL) return fail(ctx, n, "out of memory");
        snprintf(full, len, "%s%s%s", ctx->base_dir, sep ? "/" : "", s);
        free(*field);
        *field = full;
    }
    if (key->flags & KEY_READABLE) return check_readable(ctx, n, *field);
    return GH_OK;
}

static int set_addr(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    struct gh_config_addr *field = FIELD(obj, key->off, struct gh_config_addr);
    struct gh_config_addr a;
    char why[256];

    if (gh_config_parse_addr(scalar(n), &a, why, sizeof(why)) != GH_OK)
        return fail(ctx, n, "%s", why);
    gh_config_addr_release(field);
    *field = a;
    return GH_OK;
}

/* `workers: auto` or 1..1024. More workers than CPUs only adds contention,
 * but tests and containers with CPU quotas want to choose. */
static int set_workers(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    uint64_t v;
    int rc;

    if (strcmp(scalar(n), "auto") == 0) {
        long cpus = gh_cpus_usable(); /* those the process may run on */
        if ((uint64_t)cpus > key->max) cpus = (long)key->max;
        *FIELD(obj, key->off, int) = (int)cpus;
        return GH_OK;
    }
    rc = parse_u64(scalar(n), &v);
    if (rc == GH_ERROR) return fail(ctx, n, "must be \"auto\" or a number (got \"%s\")", scalar(n));
    if (rc == GH_AGAIN || v < key->min || v > key->max)
        return fail(ctx, n, "must be \"auto\" or between %llu and %llu",
                    (unsigned long long)key->min, (unsigned long long)key->max);
    *FIELD(obj, key->off, int) = (int)v;
    return GH_OK;
}

/* True when <s> is a DNS name: dot-separated labels of 1..63 letters,
 * digits, '-' or '_' (seen in the wild), 253 bytes at most. */
static bool valid_dns_name(const char *s)
{
    size_t label = 0;

    if (strlen(s) == 0 || strlen(s) > 253) return false;
    for (;; s++) {
        if (*s == '.' || *s == '\0') {
            if (label == 0 || label > 63) return false;
            if (*s == '\0') return true;
            label = 0;
        } else if (isalnum((unsigned char)*s) || *s == '-' || *s == '_') {
            label++;
        } else {
            return false;
        }
    }
}

/* Checks a host pattern <lower> (lower-cased): "name" or "*.name". Fails
 * with <as_written> in the message. */
static int check_host(struct cfg_ctx *ctx, yaml_node_t *n, const char *lower,
                      const char *as_written)
{
    if (strchr(lower, '*') != NULL) {
        if (lower[0] != '*' || lower[1] != '.' || strchr(lower + 1, '*') != NULL ||
            !valid_dns_name(lower + 2))
            return fail(ctx, n,
                        "invalid wildcard host \"%s\" (a wildcard is \"*.\" and a domain, e.g. "
                        "\"*.example.com\")",
                        as_written);
        return GH_OK;
    }
    if (!valid_dns_name(lower))
        return fail(ctx, n,
                    "invalid host \"%s\" (use a DNS name such as api.example.com, or "
                    "*.example.com)",
                    as_written);
    return GH_OK;
}

static char *lower_dup(const char *s)
{
    char *copy = strdup(s);

    for (char *p = copy; p != NULL && *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return copy;
}

/* Route host: matched without case (RFC 9110 §4.2.3), so stored lower-case;
 * "*.example.com" is stored as ".example.com" with host_wildcard set, which
 * the router can match as a plain suffix. */
static int set_host(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    struct gh_config_route *r = obj;
    char *host = lower_dup(scalar(n));

    if (host == NULL) return fail(ctx, n, "out of memory");
    if (check_host(ctx, n, host, scalar(n)) != GH_OK) {
        free(host);
        return GH_ERROR;
    }
    r->host_wildcard = host[0] == '*';
    if (r->host_wildcard) memmove(host, host + 1, strlen(host)); /* keeps the NUL */
    free(r->host);
    r->host = host;
    return GH_OK;
}

static int set_route_path(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const char *s = scalar(n);

    if (s[0] != '/') return fail(ctx, n, "must begin with '/' (got \"%s\")", s);
    /* The prefix is compared with the request target's path, which can hold
     * none of these (RFC 9112 §3.2; '?' and '#' end the path). */
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return fail(ctx, n, "must not contain spaces, control characters, '?' or '#'");
    return store_str(ctx, n, FIELD(obj, key->off, char *), s);
}

/* ---- Lists of values ---------------------------------------------------- */

/* Checks that <n> (a list, or null for an empty one) has at least key->min
 * entries, all single values; returns the count in *<len>. */
static int scalar_list(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, size_t *len)
{
    *len = seq_len(n);
    if (*len < key->min)
        return fail(ctx, n, "must have at least %llu entr%s", (unsigned long long)key->min,
                    key->min == 1 ? "y" : "ies");
    for (size_t i = 0; i < *len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        if (item->type != YAML_SCALAR_NODE) {
            size_t old = path_push_index(ctx, i);
            int rc = fail(ctx, item, "expected a single value, got %s", node_what(item));
            path_pop(ctx, old);
            return rc;
        }
    }
    return GH_OK;
}

static int set_methods(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } methods[] = {
        {"GET", GH_METHOD_GET},         {"HEAD", GH_METHOD_HEAD},     {"POST", GH_METHOD_POST},
        {"PUT", GH_METHOD_PUT},         {"DELETE", GH_METHOD_DELETE}, {"PATCH", GH_METHOD_PATCH},
        {"OPTIONS", GH_METHOD_OPTIONS}, {"TRACE", GH_METHOD_TRACE},
    };
    uint32_t bits = 0;
    size_t len;

    if (scalar_list(ctx, n, key, &len) != GH_OK) return GH_ERROR;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        size_t m;
        for (m = 0; m < NELEM(methods); m++)
            if (strcmp(scalar(item), methods[m].name) == 0) break;
        if (m == NELEM(methods)) {
            /* Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. */
            size_t old = path_push_index(ctx, i);
            int rc = fail(ctx, item,
                          "unknown method \"%s\" (use upper case: GET, HEAD, POST, PUT, DELETE, "
                          "PATCH, OPTIONS, TRACE)",
                          scalar(item));
            path_pop(ctx, old);
            return rc;
        }
        bits |= methods[m].bit;
    }
    *FIELD(obj, key->off, uint32_t) = bits;
    return GH_OK;
}

static int set_endpoints(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    struct gh_config_addr **arr = FIELD(obj, key->off, struct gh_config_addr *);
    size_t *count = FIELD(obj, key->count_off, size_t);
    size_t len;

    if (scalar_list(ctx, n, key, &len) != GH_OK) return GH_ERROR;
    if (len == 0) return GH_OK;
    *arr = calloc(len, sizeof(**arr));
    if (*arr == NULL) return fail(ctx, n, "out of memory");
    *count = len; /* zeroed entries release cleanly if a later one fails */
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        size_t old = path_push_index(ctx, i);
        char why[256];
        int rc = GH_OK;

        if (gh_config_parse_addr(scalar(item), &(*arr)[i], why, sizeof(why)) != GH_OK)
            rc = fail(ctx, item, "%s", why);
        else if ((*arr)[i].host[0] == '\0')
            rc = fail(ctx, item, "an endpoint needs a host, not a wildcard (got \"%s\")",
                      scalar(item));
        path_pop(ctx, old);
        if (rc != GH_OK) return rc;
    }
    return GH_OK;
}

/* Certificate names: lower-cased, "*.example.com" kept as written (the TLS
 * module matches SNI against them). */
static int set_names(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    char ***arr = FIELD(obj, key->off, char **);
    size_t *count = FIELD(obj, key->count_off, size_t);
    size_t len;

    if (scalar_list(ctx, n, key, &len) != GH_OK) return GH_ERROR;
    if (len == 0) return GH_OK;
    *arr = calloc(len, sizeof(**arr));
    if (*arr == NULL) return fail(ctx, n, "out of memory");
    *count = len;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        size_t old;
        int rc;

        (*arr)[i] = lower_dup(scalar(item));
        if ((*arr)[i] == NULL) return fail(ctx, item, "out of memory");
        old = path_push_index(ctx, i);
        rc = check_host(ctx, item, (*arr)[i], scalar(item));
        path_pop(ctx, old);
        if (rc != GH_OK) return rc;
    }
    return GH_OK;
}

/* A list of tokens (scopes, roles, algorithms, audiences): case kept,
 * printable ASCII without spaces, at most 128 bytes each. */
static int set_strlist(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    char ***arr = FIELD(obj, key->off, char **);
    size_t *count = FIELD(obj, key->count_off, size_t);
    size_t len;

    if (scalar_list(ctx, n, key, &len) != GH_OK) return GH_ERROR;
    if (len == 0) return GH_OK;
    *arr = calloc(len, sizeof(**arr));
    if (*arr == NULL) return fail(ctx, n, "out of memory");
    *count = len;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        const char *v = scalar(item);
        size_t vl = strlen(v);
        bool ok = vl > 0 && vl <= 128;
        for (size_t k = 0; ok && k < vl; k++)
            ok = v[k] > 0x20 && v[k] < 0x7f;
        if (!ok) {
            size_t old = path_push_index(ctx, i);
            int rc = fail(ctx, item,
                          "\"%s\" is not a valid name (1-128 printable characters, no spaces)", v);
            path_pop(ctx, old);
            return rc;
        }
        (*arr)[i] = strdup(v);
        if ((*arr)[i] == NULL) return fail(ctx, item, "out of memory");
    }
    return GH_OK;
}

/* Records `secret:NAME` at <n> for <field>: resolved after the store and
 * the secrets open (the config cannot reach them while it is parsed). */
static int add_secret_ref(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key,
                          char **field, const char *name)
{
    struct gh_config *cfg = ctx->cfg;
    struct gh_config_secret_ref *refs, *r;
    size_t nl = strlen(name);
    bool ok;

    if (key->flags & KEY_NOREF)
        return fail(ctx, n,
                    "secret:NAME cannot be used here (it is needed to open the secrets); "
                    "use env:NAME or file:PATH");
    if (key->flags & KEY_NOREF_LOAD)
        return fail(ctx, n,
                    "secret:NAME cannot be used here (the value is checked as the file is read, "
                    "before the store opens); use env:NAME or file:PATH");
    ok = nl > 0 && nl <= GH_CONFIG_SECRET_REF_MAX && name[0] != '.' && name[0] != '/';
    for (size_t i = 0; ok && i < nl; i++)
        ok = isalnum((unsigned char)name[i]) || strchr("._/-", name[i]) != NULL;
    if (!ok)
        return fail(ctx, n,
                    "secret:NAME needs a name of 1-%d characters [A-Za-z0-9._/-], not starting "
                    "with . or /",
                    GH_CONFIG_SECRET_REF_MAX);
    if (cfg == NULL) return fail(ctx, n, "secret:NAME is not available here");
    refs = realloc(cfg->secret_refs, (cfg->nsecret_refs + 1) * sizeof(*refs));
    if (refs == NULL) return fail(ctx, n, "out of memory");
    cfg->secret_refs = refs;
    r = &refs[cfg->nsecret_refs];
    memset(r, 0, sizeof(*r));
    r->field = field;
    r->min_len = key->min ? key->min : 16;
    r->pos = pos_of(n);
    r->name = strdup(name);
    r->key = strndup(ctx->path, ctx->pathlen);
    cfg->nsecret_refs++;
    if (r->name == NULL || r->key == NULL) return fail(ctx, n, "out of memory");
    return GH_OK;
}

/* Notes a secret written in the file itself, for `gatehouse check`, with
 * the forms <key> takes instead (not secret:NAME where it is refused). */
static void warn_literal(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key)
{
    struct gh_config *cfg = ctx->cfg;
    struct gh_config_warning *w;

    if (cfg == NULL) return;
    w = realloc(cfg->warnings, (cfg->nwarnings + 1) * sizeof(*w));
    if (w == NULL) return; /* a warning lost to memory pressure is not an error */
    cfg->warnings = w;
    w = &w[cfg->nwarnings++];
    w->pos = pos_of(n);
    snprintf(w->msg, sizeof(w->msg), "literal secret in %.*s; use %s", (int)ctx->pathlen, ctx->path,
             key->flags & (KEY_NOREF | KEY_NOREF_LOAD) ? "env:NAME or file:PATH"
                                                       : "secret:NAME, env:NAME or file:PATH");
}

/* Whether URL <s> carries a password: "scheme://user:password@host..." or a
 * "password=" parameter (libpq's). A URL without one is not a secret, and
 * `gatehouse check` says nothing about it. */
static bool url_has_password(const char *s)
{
    const char *rest = strstr(s, "://");
    size_t auth;

    if (rest == NULL) return true; /* not a URL: treated as the secret it may be */
    rest += 3;
    auth = strcspn(rest, "/?#");
    for (size_t i = 0; i < auth; i++)
        if (rest[i] == '@' && memchr(rest, ':', i) != NULL) return true;
    return strstr(rest, "password=") != NULL;
}

/* The value of `env:<name>` in *val: the variable of the gateway's
 * process, byte for byte. */
static int read_env(struct cfg_ctx *ctx, yaml_node_t *n, const char *name, const char **val)
{
    if (name[0] == '\0') return fail(ctx, n, "env:NAME needs the variable's name");
    *val = getenv(name);
    if (*val == NULL) return fail(ctx, n, "environment variable %s is not set", name);
    return GH_OK;
}

/* A `file:` secret (a key, a password, a URL) is a few dozen bytes; a file
 * of more is refused rather than cut to a prefix. */
#define GH_CONFIG_MAX_SECRET_FILE 4096u

/* Reads the secret in <path> into <buf> (GH_CONFIG_MAX_SECRET_FILE + 1
 * bytes) without its final line breaks. Only a regular file is opened: the
 * open of a FIFO blocks until someone writes to it (and with it `gatehouse
 * check`, the start and a SIGHUP reload), and the open of a device may act
 * (a tape rewinds, a watchdog arms). A longer file, or one with a NUL byte,
 * is refused rather than cut (at the cap, or at the NUL as a C string is):
 * that would be a secret other than the file's, taken without a word. */
static int read_secret_file(struct cfg_ctx *ctx, yaml_node_t *n, const char *path, char *buf)
{
    const size_t cap = GH_CONFIG_MAX_SECRET_FILE;
    struct stat st;
    size_t got = 0;
    int fd, rc = GH_ERROR;

    if (stat(path, &st) != 0) return fail(ctx, n, "cannot read %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(ctx, n, "cannot read %s: not a regular file", path);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail(ctx, n, "cannot read %s: %s", path, strerror(errno));
    /* Replaced by something else since the stat: refused the same way. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(ctx, n, "cannot read %s: not a regular file", path);
        goto out;
    }
    while (got <= cap) { /* one byte past the cap tells a longer file */
        ssize_t r = read(fd, buf + got, cap + 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fail(ctx, n, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got > cap) {
        fail(ctx, n, "%s is larger than %zu bytes", path, cap);
        goto out;
    }
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        got--;
    if (memchr(buf, '\0', got) != NULL) {
        fail(ctx, n, "%s contains a NUL byte", path);
        goto out;
    }
    buf[got] = '\0';
    rc = GH_OK;
out:
    close(fd);
    return rc;
}

/* A value that starts like a reference in the wrong case ("Secret:x",
 * "ENV:X", "File:/p") was meant as one: taken as a literal, it would be a
 * weak secret that `gatehouse check` only warns about. Refused instead;
 * the message shows the prefix, never the rest. */
static int refuse_misspelt_form(struct cfg_ctx *ctx, yaml_node_t *n, const char *s)
{
    static const char *const forms[] = {"secret:", "env:", "file:"};

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t len = strlen(forms[i]);
        if (strncasecmp(s, forms[i], len) == 0 && strncmp(s, forms[i], len) != 0)
            return fail(ctx, n,
                        "\"%.*s\" is not a form a secret takes: write \"%s\" (forms are "
                        "lowercase: secret:NAME, env:NAME, file:PATH)",
                        (int)len, s, forms[i]);
    }
    return GH_OK;
}

/* A secret: "secret:NAME" (sealed in the store, resolved after start:
 * add_secret_ref), "env:NAME" (an environment variable), "file:PATH" (a
 * file's content without its trailing line breaks: read_secret_file) or the value
 * itself (which `gatehouse check` warns about). At least 16 bytes: shorter
 * HMAC keys are guessable. The message never shows it. */
static int set_secret(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    char **field = FIELD(obj, key->off, char *);
    const char *s = scalar(n);
    char buf[GH_CONFIG_MAX_SECRET_FILE + 1];
    const char *val = s;
    int rc;

    if (strncmp(s, "secret:", 7) == 0) return add_secret_ref(ctx, n, key, field, s + 7);
    if ((rc = refuse_misspelt_form(ctx, n, s)) != GH_OK) return rc;
    if (strncmp(s, "env:", 4) != 0 && strncmp(s, "file:", 5) != 0 &&
        (!(key->flags & KEY_URL) || url_has_password(s)))
        warn_literal(ctx, n, key);
    if (strncmp(s, "env:", 4) == 0) {
        if (read_env(ctx, n, s + 4, &val) != GH_OK) return GH_ERROR;
    } else if (strncmp(s, "file:", 5) == 0) {
        char full[PATH_MAX];
        if (s[5] == '/')
            snprintf(full, sizeof(full), "%s", s + 5);
        else
            snprintf(full, sizeof(full), "%s/%s", ctx->base_dir, s + 5);
        if (read_secret_file(ctx, n, full, buf) != GH_OK) {
            explicit_bzero(buf, sizeof(buf)); /* a part may have been read */
            return GH_ERROR;
        }
        val = buf;
    }
    /* Secrets we generate signatures with need 16 bytes; a row may ask for
     * less when the other side chose the secret (a Redis password). */
    if (strlen(val) < (key->min ? key->min : 16))
        rc = fail(ctx, n, "a secret must have at least %llu bytes",
                  (unsigned long long)(key->min ? key->min : 16));
    else
        rc = store_str(ctx, n, field, val);
    /* The stack copy of a file's secret goes; the config keeps its own. */
    if (val == buf) explicit_bzero(buf, sizeof(buf));
    return rc;
}

/* ---- The node id ------------------------------------------------------------ */

bool gh_config_valid_node_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > GH_CONFIG_NODE_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL) return false;
    return true;
}

/* `node.id`: the id itself or "env:NAME" (a container's pod or host name
 * comes from its environment). The id ends up in log lines, label values,
 * audit events and their hashes: refused unless it is plain, never repaired. */
static int set_node_id(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const char *s = scalar(n), *val = s;
    bool printable = true;

    if (strncmp(s, "env:", 4) == 0 && read_env(ctx, n, s + 4, &val) != GH_OK) return GH_ERROR;
    if (gh_config_valid_node_id(val)) return store_str(ctx, n, FIELD(obj, key->off, char *), val);
    /* Shown back only when short and plain: a message never carries
     * control bytes or a clipped value. */
    printable = val[0] != '\0' && strlen(val) <= GH_CONFIG_NODE_ID_MAX;
    for (const char *p = val; *p; p++)
        printable &= *p >= 0x20 && *p < 0x7f && *p != '"';
    if (val != s)
        return fail(ctx, n,
                    "%s gives %s%.63s%s (%zu bytes), not a node id: 1 to 63 characters of "
                    "[A-Za-z0-9._-]",
                    s, printable ? "\"" : "a value", printable ? val : "", printable ? "\"" : "",
                    strlen(val));
    return fail(ctx, n,
                "a node id is 1 to 63 characters of [A-Za-z0-9._-] (got %zu bytes%s%.63s%s)",
                strlen(val), printable ? ": \"" : "", printable ? val : "", printable ? "\"" : "");
}

/* Without `node.id`: the host name, with every character outside
 * [A-Za-z0-9._-] made '-' and clipped to 63, so that a host name the
 * id rules refuse still gives a usable default ("node" when there is none). */
static int finish_node(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_node *nd = obj;
    char host[256] = "";

    if (nd->id != NULL) return GH_OK;
    if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    host[GH_CONFIG_NODE_ID_MAX] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("._-", *p) == NULL) *p = '-';
    return store_str(ctx, node, &nd->id, host[0] ? host : "node");
}

/* ---- Mappings and lists of mappings -------------------------------------- */

static int set_map(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    return walk_map(ctx, n, key->sub, (char *)obj + key->off);
}

/* A list of mappings ("listen", "routes"): one element per entry, in order. */
static int set_list(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const struct cfg_map *sub = key->sub;
    void **arr = FIELD(obj, key->off, void *);
    size_t *count = FIELD(obj, key->count_off, size_t);
    size_t len = seq_len(n);

    if (len < key->min)
        return fail(ctx, n, "must have at least %llu entr%s", (unsigned long long)key->min,
                    key->min == 1 ? "y" : "ies");
    if (len == 0) return GH_OK;
    *arr = calloc(len, sub->size);
    if (*arr == NULL) return fail(ctx, n, "out of memory");
    *count = len;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        size_t old = path_push_index(ctx, i);
        int rc;

        if (item->type != YAML_MAPPING_NODE && !is_null(item))
            rc = fail(ctx, item, "expected a mapping, got %s", node_what(item));
        else
            rc = walk_map(ctx, item, sub, (char *)*arr + i * sub->size);
        path_pop(ctx, old);
        if (rc != GH_OK) return rc;
    }
    return GH_OK;
}

/* Names of named entries ("upstreams.<name>") show up in metrics labels and
 * logs, so they stay simple. */
static bool valid_name(const char *s)
{
    if (s[0] == '\0') return false;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return false;
    return true;
}

/* A mapping of name -> mapping ("upstreams"): one element per entry, in
 * file order, with the name stored at sub->name_off and the position of the
 * name as the element's position. */
static int set_named(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key, void *obj)
{
    const struct cfg_map *sub = key->sub;
    void **arr = FIELD(obj, key->off, void *);
    size_t *count = FIELD(obj, key->count_off, size_t);
    size_t len = 0;
    yaml_node_pair_t *pairs = NULL;
    char wbuf[300];

    if (n->type == YAML_MAPPING_NODE) {
        pairs = n->data.mapping.pairs.start;
        len = (size_t)(n->data.mapping.pairs.top - pairs);
    }
    if (len < key->min)
        return fail(ctx, n, "must have at least %llu entr%s", (unsigned long long)key->min,
                    key->min == 1 ? "y" : "ies");
    if (len == 0) return GH_OK;
    *arr = calloc(len, sub->size);
    if (*arr == NULL) return fail(ctx, n, "out of memory");
    *count = len;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *k = node_at(ctx, pairs[i].key), *v = node_at(ctx, pairs[i].value);
        void *elem = (char *)*arr + i * sub->size;
        char **name = FIELD(elem, sub->name_off, char *);
        size_t old;
        int rc;

        if (k->type != YAML_SCALAR_NODE)
            return fail(ctx, k, "names must be plain values, got %s", node_what(k));
        if (!valid_name(scalar(k)))
            return fail(ctx, k, "invalid name \"%s\" (use letters, digits, '-', '_' and '.')",
                        scalar(k));
        for (size_t j = 0; j < i; j++)
            if (strcmp(*FIELD((char *)*arr + j * sub->size, sub->name_off, char *), scalar(k)) == 0)
                return fail_plain(ctx, k, "duplicate key \"%s\"%s", scalar(k),
                                  where(ctx, wbuf, sizeof(wbuf)));
        if (store_str(ctx, k, name, scalar(k)) != GH_OK) return GH_ERROR;
        old = path_push_key(ctx, scalar(k));
        if (v->type != YAML_MAPPING_NODE && !is_null(v))
            rc = fail(ctx, v, "expected a mapping, got %s", node_what(v));
        else
            rc = walk_map(ctx, v, sub, elem);
        path_pop(ctx, old);
        if (rc != GH_OK) return rc;
        if (sub->has_pos) *FIELD(elem, sub->pos_off, struct gh_config_pos) = pos_of(k);
    }
    return GH_OK;
}

/* ---- Freeing, driven by the same tables ------------------------------------ */

static void release_str(const struct cfg_key *key, void *obj)
{
    char **p = FIELD(obj, key->off, char *);

    free(*p);
    *p = NULL;
}

static void release_addr(const struct cfg_key *key, void *obj)
{
    gh_config_addr_release(FIELD(obj, key->off, struct gh_config_addr));
}

static void release_sub(const struct cfg_key *key, void *obj)
{
    release_map(key->sub, (char *)obj + key->off);
}

static void release_list(const struct cfg_key *key, void *obj)
{
    void **arr = FIELD(obj, key->off, void *);
    size_t *count = FIELD(obj, key->count_off, size_t);

    for (size_t i = 0; *arr != NULL && i < *count; i++)
        release_map(key->sub, (char *)*arr + i * key->sub->size);
    free(*arr);
    *arr = NULL;
    *count = 0;
}

static void release_named(const struct cfg_key *key, void *obj)
{
    void **arr = FIELD(obj, key->off, void *);
    size_t *count = FIELD(obj, key->count_off, size_t);

    for (size_t i = 0; *arr != NULL && i < *count; i++)
        free(*FIELD((char *)*arr + i * key->sub->size, key->sub->name_off, char *));
    release_list(key, obj);
}

static void release_endpoints(const struct cfg_key *key, void *obj)
{
    struct gh_config_addr **arr = FIELD(obj, key->off, struct gh_config_addr *);
    size_t *count = FIELD(obj, key->count_off, size_t);

    for (size_t i = 0; *arr != NULL && i < *count; i++)
        gh_config_addr_release(&(*arr)[i]);
    free(*arr);
    *arr = NULL;
    *count = 0;
}

static void release_names(const struct cfg_key *key, void *obj)
{
    char ***arr = FIELD(obj, key->off, char **);
    size_t *count = FIELD(obj, key->count_off, size_t);

    for (size_t i = 0; *arr != NULL && i < *count; i++)
        free((*arr)[i]);
    free(*arr);
    *arr = NULL;
    *count = 0;
}

static void release_map(const struct cfg_map *map, void *obj)
{
    for (size_t i = 0; i < map->nkeys; i++)
        if (map->keys[i].type->release != NULL) map->keys[i].type->release(&map->keys[i], obj);
}

/* ---- Types --------------------------------------------------------------- */

static const struct cfg_type t_u32 = {"a number", YAML_SCALAR_NODE, set_u32, NULL};
static const struct cfg_type t_bool = {"true or false", YAML_SCALAR_NODE, set_bool, NULL};
static const struct cfg_type t_duration = {"a duration", YAML_SCALAR_NODE, set_duration, NULL};
static const struct cfg_type t_duration64 = {"a duration", YAML_SCALAR_NODE, set_duration64, NULL};
static const struct cfg_type t_size32 = {"a size", YAML_SCALAR_NODE, set_size32, NULL};
static const struct cfg_type t_size64 = {"a size", YAML_SCALAR_NODE, set_size64, NULL};
static const struct cfg_type t_string = {"a string", YAML_SCALAR_NODE, set_string, release_str};
static const struct cfg_type t_path = {"a file path", YAML_SCALAR_NODE, set_path, release_str};
static const struct cfg_type t_addr = {"an address", YAML_SCALAR_NODE, set_addr, release_addr};
static const struct cfg_type t_map = {"a mapping", YAML_MAPPING_NODE, set_map, release_sub};
static const struct cfg_type t_list = {"a list", YAML_SEQUENCE_NODE, set_list, release_list};
static const struct cfg_type t_named = {"a mapping", YAML_MAPPING_NODE, set_named, release_named};
static const struct cfg_type t_workers = {"\"auto\" or a number", YAML_SCALAR_NODE, set_workers,
                                          NULL};
static const struct cfg_type t_host = {"a host name", YAML_SCALAR_NODE, set_host, release_str};
static const struct cfg_type t_route_path = {"a path", YAML_SCALAR_NODE, set_route_path,
                                             release_str};
static const struct cfg_type t_methods = {"a list", YAML_SEQUENCE_NODE, set_methods, NULL};
static const struct cfg_type t_endpoints = {"a list", YAML_SEQUENCE_NODE, set_endpoints,
                                            release_endpoints};
static const struct cfg_type t_names = {"a list", YAML_SEQUENCE_NODE, set_names, release_names};
static const struct cfg_type t_strlist = {"a list", YAML_SEQUENCE_NODE, set_strlist, release_names};
static const struct cfg_type t_secret = {"a secret", YAML_SCALAR_NODE, set_secret, release_str};
static const struct cfg_type t_u64 = {"a number", YAML_SCALAR_NODE, set_u64, NULL};
static const struct cfg_type t_rate = {"a rate", YAML_SCALAR_NODE, set_rate, NULL};
static const struct cfg_type t_ratio = {"a number from 0 to 1", YAML_SCALAR_NODE, set_ratio, NULL};
static const struct cfg_type t_node_id = {"a node id", YAML_SCALAR_NODE, set_node_id, release_str};

/* ---- Finish hooks (cross-field checks within one mapping) ------------------ */

/* A `tls` block turns TLS on; `certificates` (required) is checked by its row. */
static int finish_listen_tls(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_listen *l = obj;

    l->tls = node != NULL;
    return GH_OK;
}

/* Writing a `tls` block for an upstream means TLS unless it says
 * `enabled: false`: a block of TLS settings silently ignored would send
 * plaintext where the operator asked for encryption. Files are checked only
 * when TLS is on, so a disabled block can keep paths that do not exist yet. */
static int finish_upstream_tls(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    static const struct {
        const char *key;
        size_t off;
    } files[] = {
        {"ca_file", offsetof(struct gh_config_upstream_tls, ca_file)},
        {"cert", offsetof(struct gh_config_upstream_tls, cert_file)},
        {"key", offsetof(struct gh_config_upstream_tls, key_file)},
    };
    struct gh_config_upstream_tls *t = obj;

    if (node == NULL) {
        t->enabled = false;
        return GH_OK;
    }
    if (!t->enabled) return GH_OK;
    if ((t->cert_file == NULL) != (t->key_file == NULL))
        return fail(ctx, node, "a client certificate needs both cert and key");
    for (size_t i = 0; i < NELEM(files); i++) {
        const char *file = *FIELD(t, files[i].off, char *);
        size_t old;
        int rc;

        if (file == NULL) continue;
        old = path_push_key(ctx, files[i].key);
        rc = check_readable(ctx, map_get(ctx, node, files[i].key), file);
        path_pop(ctx, old);
        if (rc != GH_OK) return rc;
    }
    return GH_OK;
}

static bool valid_field_name(const char *s)
{
    if (*s == '\0') return false;
    for (; *s; s++)
        if (!gh_http_is_tchar((unsigned char)*s)) return false;
    return true;
}

static const char *const fallback_names[] = {"local", "allow", "deny", NULL};

static enum gh_redis_fallback fallback_of(const char *s)
{
    if (s == NULL) return GH_FALLBACK_INHERIT;
    if (strcmp(s, "allow") == 0) return GH_FALLBACK_ALLOW;
    if (strcmp(s, "deny") == 0) return GH_FALLBACK_DENY;
    return GH_FALLBACK_LOCAL;
}

/* A rule's descriptors: what its key is made of. */
static int finish_rate_limit(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    static const struct {
        const char *name;
        enum gh_limit_by by;
    } names[] = {
        {"tenant", GH_LIMIT_BY_TENANT}, {"key", GH_LIMIT_BY_KEY},
        {"api_key", GH_LIMIT_BY_KEY},   {"subject", GH_LIMIT_BY_SUBJECT},
        {"route", GH_LIMIT_BY_ROUTE},   {"ip", GH_LIMIT_BY_IP},
        {"client_ip", GH_LIMIT_BY_IP},
    };
    struct gh_config_rate_limit *rl = obj;
    yaml_node_t *per = node ? map_get(ctx, node, "per") : NULL;

    if (node == NULL) return GH_OK; /* `rate_limit` absent from a route */
    if (rl->rate.count == 0) return fail(ctx, node, "a rate limit needs `rate` (e.g. \"100/s\")");
    if (rl->burst == 0)
        rl->burst = rl->rate.count > UINT32_MAX ? UINT32_MAX : (uint32_t)rl->rate.count;
    rl->fallback = fallback_of(rl->on_redis_error);
    if (rl->nper == 0) {
        rl->by[0] = GH_LIMIT_BY_TENANT; /* <per> stays empty; <by> says [tenant] */
        return GH_OK;
    }
    if (rl->nper > GH_LIMIT_MAX_PER)
        return fail(ctx, per, "at most %d descriptors", GH_LIMIT_MAX_PER);
    for (size_t i = 0; i < rl->nper; i++) {
        const char *d = rl->per[i];
        size_t k;

        if (strncmp(d, "header:", 7) == 0) {
            if (rl->header != NULL)
                return fail(ctx, seq_item(ctx, per, i), "only one header descriptor per rule");
            if (!valid_field_name(d + 7))
                return fail(ctx, seq_item(ctx, per, i), "\"header:\" needs a header name");
            rl->header = (char *)d + 7; /* owned by <per> */
            rl->by[i] = GH_LIMIT_BY_HEADER;
            continue;
        }
        for (k = 0; k < NELEM(names); k++)
            if (strcmp(d, names[k].name) == 0) break;
        if (k == NELEM(names))
            return fail(ctx, seq_item(ctx, per, i),
                        "unknown descriptor \"%s\" (use tenant, key, subject, route, ip or "
                        "header:<Name>)",
                        d);
        for (size_t j = 0; j < i; j++)
            if (rl->by[j] == names[k].by)
                return fail(ctx, seq_item(ctx, per, i), "descriptor \"%s\" given twice", d);
        rl->by[i] = (uint8_t)names[k].by;
    }
    return GH_OK;
}

/* `resolver`: the DNS server that the URL's host name is asked of, an IP
 * address with port 53 by default, kept as "IP:PORT" / "[IP6]:PORT" (the
 * form evdns takes). */
static int finish_redis_resolver(struct cfg_ctx *ctx, yaml_node_t *node, struct gh_config_redis *r)
{
    yaml_node_t *vn = map_get(ctx, node, "resolver");
    struct gh_config_addr addr;
    char text[80], why[200];
    const char *colon, *bracket;
    int n;

    if (r->resolver == NULL) return GH_OK;
    colon = strrchr(r->resolver, ':');
    bracket = strchr(r->resolver, ']');
    n = snprintf(text, sizeof(text), "%s%s", r->resolver,
                 colon == NULL || (bracket != NULL && colon < bracket) ? ":53" : "");
    if (n < 0 || (size_t)n >= sizeof(text))
        return fail(ctx, vn, "the resolver must be an IP address with an optional port");
    if (gh_config_parse_addr_name(text, &addr, why, sizeof(why)) != GH_OK)
        return fail(ctx, vn, "%s", why);
    if (addr.sslen == 0) {
        gh_config_addr_release(&addr);
        return fail(ctx, vn,
                    "the resolver must be an IP address with an optional port (e.g. "
                    "127.0.0.1:8600), not a name");
    }
    snprintf(text, sizeof(text), addr.ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr.host,
             (unsigned)addr.port);
    gh_config_addr_release(&addr);
    free(r->resolver);
    r->resolver = strdup(text);
    return r->resolver ? GH_OK : fail(ctx, vn, "out of memory");
}

/* redis://[user[:password]@]host[:port][/db] and rediss:// (TLS). */
static int finish_redis(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_redis *r = obj;
    yaml_node_t *un = node ? map_get(ctx, node, "url") : NULL;
    const char *u, *at, *hp, *slash, *colon;
    char hostport[300];
    struct gh_config_addr addr;
    char why[200];
    size_t hlen;

    r->enabled = node != NULL;
    if (!r->enabled) return GH_OK;
    r->pos = pos_of(node);
    if (r->url == NULL) return fail(ctx, node, "redis needs `url` (redis://host:port)");
    u = r->url;
    if (strncmp(u, "redis://", 8) == 0) {
        u += 8;
    } else if (strncmp(u, "rediss://", 9) == 0) {
        u += 9;
        r->tls = true;
    } else {
        return fail(ctx, un, "the URL must begin with redis:// or rediss:// (TLS)");
    }
    slash = strchr(u, '/');
    at = memchr(u, '@', slash ? (size_t)(slash - u) : strlen(u));
    hp = u;
    if (at != NULL) {
        const char *c = memchr(u, ':', (size_t)(at - u));
        char *user = NULL, *pass = NULL;
        if (c != NULL) {
            user = strndup(u, (size_t)(c - u));
            pass = strndup(c + 1, (size_t)(at - c - 1));
        } else {
            user = strndup(u, (size_t)(at - u));
        }
        if (user == NULL || (c != NULL && pass == NULL)) {
            free(user);
            free(pass);
            return fail(ctx, un, "out of memory");
        }
        if (user[0] != '\0' && r->username == NULL) {
            r->username = user;
        } else {
            free(user);
        }
        if (pass != NULL && r->password == NULL)
            r->password = pass;
        else
            free(pass);
        hp = at + 1;
    }
    hlen = slash ? (size_t)(slash - hp) : strlen(hp);
    if (hlen == 0 || hlen >= sizeof(hostport) - 8) return fail(ctx, un, "the URL needs a host");
    memcpy(hostport, hp, hlen);
    hostport[hlen] = '\0';
    /* Port 6379 when none is given (the host has no ':' after any ']'). */
    colon = strrchr(hostport, ':');
    if (colon == NULL || (strchr(hostport, ']') && colon < strchr(hostport, ']')))
        snprintf(hostport + hlen, sizeof(hostport) - hlen, ":6379");
    if (slash != NULL && slash[1] != '\0') {
        uint64_t db;
        if (parse_u64(slash + 1, &db) != GH_OK || db > 15)
            return fail(ctx, un, "the database after '/' must be a number from 0 to 15");
        r->db = (uint32_t)db;
    }
    /* The name is looked up by each worker's client at every connect, not
     * here: one that does not resolve now (DNS away at a restart) only
     * leaves Redis down until it does. */
    if (gh_config_parse_addr_name(hostport, &addr, why, sizeof(why)) != GH_OK)
        return fail(ctx, un, "%s", why);
    r->port = addr.port;
    r->host = addr.host;
    addr.host = NULL;
    gh_config_addr_release(&addr);
    if (r->host == NULL || r->host[0] == '\0') return fail(ctx, un, "the URL needs a host");
    return finish_redis_resolver(ctx, node, r);
}

/* The default name is the host as written (with its "*") and the path. */
static int finish_route(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_route *r = obj;
    size_t len;

    if (r->auth == NULL || strcmp(r->auth, "none") == 0)
        r->auth_mode = GH_ROUTE_AUTH_NONE;
    else if (strcmp(r->auth, "api_key") == 0)
        r->auth_mode = GH_ROUTE_AUTH_API_KEY;
    else if (strcmp(r->auth, "jwt") == 0)
        r->auth_mode = GH_ROUTE_AUTH_JWT;
    else
        r->auth_mode = GH_ROUTE_AUTH_ANY;
    if (r->auth_mode == GH_ROUTE_AUTH_NONE && (r->nscopes || r->nroles))
        return fail(ctx, node, "scopes and roles need `auth: api_key`, `jwt` or `any`");
    r->fallback = fallback_of(r->on_redis_error);
    if (r->auth_mode == GH_ROUTE_AUTH_NONE && r->concurrency.per_tenant)
        return fail(ctx, node, "concurrency.per_tenant needs `auth: api_key`, `jwt` or `any`");
    for (size_t i = 0; i <= r->nrate_limits; i++) {
        const struct gh_config_rate_limit *rl = i == 0 ? &r->rate_limit : &r->rate_limits[i - 1];
        if (rl->rate.count == 0 || r->auth_mode != GH_ROUTE_AUTH_NONE) continue;
        for (size_t k = 0; k < (rl->nper ? rl->nper : 1); k++)
            if (rl->by[k] == GH_LIMIT_BY_TENANT || rl->by[k] == GH_LIMIT_BY_KEY ||
                rl->by[k] == GH_LIMIT_BY_SUBJECT)
                return fail(ctx, node,
                            "rate limit \"per: %s\" needs `auth: api_key`, `jwt` or `any` on "
                            "the route (use ip or header:<Name> on open routes)",
                            rl->nper ? rl->per[k] : "tenant");
    }

    if (r->name != NULL) return GH_OK;
    len = (r->host ? strlen(r->host) + 1 : 0) + strlen(r->path) + 1;
    r->name = malloc(len);
    if (r->name == NULL) return fail(ctx, node, "out of memory");
    snprintf(r->name, len, "%s%s%s", r->host_wildcard ? "*" : "", r->host ? r->host : "", r->path);
    return GH_OK;
}

/* ---- Tables -------------------------------------------------------------- */

/* A row: key name, type, struct and field, then any of .min .max .dflt .flags
 * .sub .choices as designated initializers. */
#define KEY(n, t, st, f, ...)                                                                      \
    {                                                                                              \
        .name = (n), .type = &(t), .off = offsetof(st, f), __VA_ARGS__                             \
    }
/* Lists also name their size_t count field <nf>. */
#define LIST(n, t, st, f, nf, ...)                                                                 \
    {                                                                                              \
        .name = (n), .type = &(t), .off = offsetof(st, f), .count_off = offsetof(st, nf),          \
        __VA_ARGS__                                                                                \
    }
#define MAP_OF(k)  .keys = (k), .nkeys = NELEM(k)
#define POS_AT(st) .has_pos = true, .pos_off = offsetof(st, pos)

static const struct cfg_key cert_keys[] = {
    KEY("cert", t_path, struct gh_config_cert, cert_file, .flags = KEY_REQUIRED | KEY_READABLE),
    KEY("key", t_path, struct gh_config_cert, key_file, .flags = KEY_REQUIRED | KEY_READABLE),
    LIST("names", t_names, struct gh_config_cert, names, nnames),
};
static const struct cfg_map cert_map = {
    MAP_OF(cert_keys),
    .size = sizeof(struct gh_config_cert),
    POS_AT(struct gh_config_cert),
};

/* listen[].tls: its keys fill the listen entry itself. */
static const struct cfg_key listen_tls_keys[] = {
    LIST("certificates", t_list, struct gh_config_listen, certs, ncerts, .min = 1,
         .flags = KEY_REQUIRED, .sub = &cert_map),
};
static const struct cfg_map listen_tls_map = {MAP_OF(listen_tls_keys), .finish = finish_listen_tls};

static const struct cfg_key listen_keys[] = {
    KEY("address", t_addr, struct gh_config_listen, addr, .flags = KEY_REQUIRED),
    {.name = "tls", .type = &t_map, .off = 0, .sub = &listen_tls_map},
};
static const struct cfg_map listen_map = {
    MAP_OF(listen_keys),
    .size = sizeof(struct gh_config_listen),
    POS_AT(struct gh_config_listen),
};

static const struct cfg_key admin_keys[] = {
    KEY("address", t_addr, struct gh_config_admin, addr, .dflt = "127.0.0.1:9901"),
    KEY("enabled", t_bool, struct gh_config_admin, enabled, .dflt = "true"),
};
static const struct cfg_map admin_map = {MAP_OF(admin_keys)};

static const struct cfg_key upstream_tls_keys[] = {
    KEY("enabled", t_bool, struct gh_config_upstream_tls, enabled, .dflt = "true"),
    KEY("ca_file", t_path, struct gh_config_upstream_tls, ca_file),
    KEY("sni", t_string, struct gh_config_upstream_tls, sni),
    KEY("verify", t_bool, struct gh_config_upstream_tls, verify, .dflt = "true"),
    KEY("cert", t_path, struct gh_config_upstream_tls, cert_file),
    KEY("key", t_path, struct gh_config_upstream_tls, key_file),
};
static const struct cfg_map upstream_tls_map = {MAP_OF(upstream_tls_keys),
                                                .finish = finish_upstream_tls};

#define UP struct gh_config_upstream
static const struct cfg_key upstream_keys[] = {
    LIST("endpoints", t_endpoints, UP, endpoints, nendpoints, .min = 1, .flags = KEY_REQUIRED),
    KEY("connect_timeout", t_duration, UP, connect_timeout_ms, .min = 1, .dflt = "2s"),
    KEY("response_timeout", t_duration, UP, response_timeout_ms, .min = 1, .dflt = "30s"),
    KEY("idle_timeout", t_duration, UP, idle_timeout_ms, .min = 1, .dflt = "60s"),
    KEY("request_timeout", t_duration, UP, request_timeout_ms, .min = 0, .dflt = "0"),
    KEY("keepalive", t_u32, UP, keepalive, .min = 0, .dflt = "512"),
    KEY("keepalive_timeout", t_duration, UP, keepalive_timeout_ms, .min = 1, .dflt = "60s"),
    KEY("max_connections", t_u32, UP, max_connections, .min = 0, .dflt = "0"),
    KEY("tls", t_map, UP, tls, .sub = &upstream_tls_map),
    KEY("identity_secret", t_secret, UP, identity_secret),
};
#undef UP
static const struct cfg_map upstream_map = {
    MAP_OF(upstream_keys),
    .size = sizeof(struct gh_config_upstream),
    .name_off = offsetof(struct gh_config_upstream, name),
    POS_AT(struct gh_config_upstream),
};

static const char *const route_auth_modes[] = {"none", "api_key", "jwt", "any", NULL};

#define RL struct gh_config_rate_limit
static const struct cfg_key rate_limit_keys[] = {
    KEY("name", t_string, RL, name),
    LIST("per", t_strlist, RL, per, nper),
    KEY("rate", t_rate, RL, rate),
    KEY("burst", t_u32, RL, burst, .min = 1),
    KEY("on_redis_error", t_string, RL, on_redis_error, .choices = fallback_names),
};
#undef RL
static const struct cfg_map rate_limit_map = {
    MAP_OF(rate_limit_keys), .size = sizeof(struct gh_config_rate_limit),
    POS_AT(struct gh_config_rate_limit), .finish = finish_rate_limit};

#define CC struct gh_config_concurrency
static const struct cfg_key concurrency_keys[] = {
    KEY("max", t_u32, CC, max, .min = 0, .dflt = "0"),
    KEY("per_tenant", t_u32, CC, per_tenant, .min = 0, .dflt = "0"),
    KEY("queue_timeout", t_duration, CC, queue_timeout_ms, .min = 0, .max = 60000),
};
#undef CC
/* An absent queue_timeout means "the global one": marked here, resolved at use. */
static int finish_concurrency(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_concurrency *c = obj;
    (void)ctx;
    if (node == NULL || map_get(ctx, node, "queue_timeout") == NULL)
        c->queue_timeout_ms = UINT32_MAX;
    return GH_OK;
}
static const struct cfg_map concurrency_map = {MAP_OF(concurrency_keys),
                                               .finish = finish_concurrency};

/* A route's `audit`: `true`/`false`, or a mapping (which means enabled). */
static const char *const audit_modes[] = {"async", "strict", NULL};
#define RA struct gh_config_route_audit
static const struct cfg_key route_audit_keys[] = {
    KEY("methods", t_methods, RA, methods, .min = 1),
    KEY("path_prefix", t_route_path, RA, path_prefix),
    KEY("mode", t_string, RA, mode, .choices = audit_modes),
};
#undef RA
static const struct cfg_map route_audit_map = {MAP_OF(route_audit_keys)};

static int set_route_audit(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key,
                           void *obj)
{
    struct gh_config_route_audit *a = FIELD(obj, key->off, struct gh_config_route_audit);

    a->strict = -1;
    if (n->type == YAML_SCALAR_NODE) {
        struct cfg_key b = {.name = key->name,
                            .off = offsetof(struct gh_config_route_audit, enabled)};
        if (is_null(n)) return GH_OK;
        return set_bool(ctx, n, &b, a);
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail(ctx, n, "expected true, false or a mapping, got %s", node_what(n));
    a->enabled = true;
    if (walk_map(ctx, n, &route_audit_map, a) != GH_OK) return GH_ERROR;
    if (a->mode) a->strict = strcmp(a->mode, "strict") == 0;
    return GH_OK;
}
static const struct cfg_type t_route_audit = {"true, false or a mapping", YAML_NO_NODE,
                                              set_route_audit, release_sub};

/* A route's `webhook_verify`. `secrets` is a list of secrets, each read
 * like `secret` (env:, file: or the value). */
static int set_secret_list(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *key,
                           void *obj)
{
    char ***arr = FIELD(obj, key->off, char **);
    size_t *count = FIELD(obj, key->count_off, size_t);
    size_t len = seq_len(n);
    struct cfg_key one = {.name = key->name, .off = 0, .flags = key->flags};

    if (len == 0) return fail(ctx, n, "must have at least 1 entry");
    *arr = calloc(len, sizeof(**arr));
    if (*arr == NULL) return fail(ctx, n, "out of memory");
    *count = len;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = seq_item(ctx, n, i);
        size_t old = path_push_index(ctx, i);
        int rc = item->type == YAML_SCALAR_NODE
                     ? set_secret(ctx, item, &one, &(*arr)[i])
                     : fail(ctx, item, "expected a secret, got %s", node_what(item));
        path_pop(ctx, old);
        if (rc != GH_OK) return rc;
    }
    return GH_OK;
}
static const struct cfg_type t_secret_list = {"a list", YAML_SEQUENCE_NODE, set_secret_list,
                                              release_names};

static const char *const webhook_formats[] = {"standard", "github", "stripe", NULL};
#define WV struct gh_config_webhook_verify
static const struct cfg_key webhook_verify_keys[] = {
    KEY("format", t_string, WV, format, .choices = webhook_formats),
    KEY("secret", t_secret, WV, secret, .flags = KEY_NOREF_LOAD),
    LIST("secrets", t_secret_list, WV, secrets, nsecrets, .flags = KEY_NOREF_LOAD),
    KEY("tolerance", t_duration, WV, tolerance_ms, .min = 1000, .max = 86400000, .dflt = "5m"),
    KEY("replay_window", t_duration, WV, replay_window_ms, .min = 1000, .max = 604800000,
        .dflt = "10m"),
    KEY("max_body", t_size64, WV, max_body, .min = 1, .max = 64ull << 20, .dflt = "1MiB"),
};
#undef WV
/* Present means enabled: a format and one to GH_WH_MAX_SECRETS secrets that
 * the verifier accepts (a Standard secret must be whsec_ and base64). */
static int finish_webhook_verify(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_webhook_verify *w = obj;
    const char *all[GH_WH_MAX_SECRETS];
    size_t n = 0;
    struct gh_wh_verifier v;
    struct gh_err e;

    w->enabled = node != NULL;
    if (!w->enabled) return GH_OK;
    if (w->format == NULL)
        return fail(ctx, node, "format is required (standard, github or stripe)");
    w->format_id = strcmp(w->format, "github") == 0   ? GH_WH_GITHUB
                   : strcmp(w->format, "stripe") == 0 ? GH_WH_STRIPE
                                                      : GH_WH_STANDARD;
    if (w->secret) all[n++] = w->secret;
    if (n + w->nsecrets > GH_WH_MAX_SECRETS)
        return fail(ctx, node, "at most %d secrets in secret and secrets together",
                    GH_WH_MAX_SECRETS);
    for (size_t i = 0; i < w->nsecrets; i++)
        all[n++] = w->secrets[i];
    if (n == 0) return fail(ctx, node, "needs a secret (or secrets)");
    if (gh_wh_verifier_init(&v, (enum gh_wh_format)w->format_id, all, n, 1, &e) != GH_OK)
        return fail(ctx, node, "%s", e.msg);
    gh_wh_verifier_release(&v);
    return GH_OK;
}
static const struct cfg_map webhook_verify_map = {MAP_OF(webhook_verify_keys),
                                                  POS_AT(struct gh_config_webhook_verify),
                                                  .finish = finish_webhook_verify};

/* A route's `idempotency`. Present means enabled. */
#define RI struct gh_config_route_idempotency
static const struct cfg_key route_idempotency_keys[] = {
    KEY("ttl", t_duration, RI, ttl_ms, .min = 1000, .max = 2592000000u, .dflt = "24h"),
    KEY("methods", t_methods, RI, methods, .min = 1),
    KEY("required", t_bool, RI, required, .dflt = "false"),
    KEY("max_body", t_size64, RI, max_body, .min = 1, .max = 64ull << 20, .dflt = "1MiB"),
    KEY("max_response", t_size64, RI, max_response, .min = 1, .max = 1ull << 20, .dflt = "1MiB"),
};
#undef RI
static int finish_route_idempotency(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_route_idempotency *ri = obj;

    (void)ctx;
    ri->enabled = node != NULL;
    if (ri->methods == 0) ri->methods = GH_METHOD_POST | GH_METHOD_PATCH;
    return GH_OK;
}
static const struct cfg_map route_idempotency_map = {MAP_OF(route_idempotency_keys),
                                                     POS_AT(struct gh_config_route_idempotency),
                                                     .finish = finish_route_idempotency};

static const struct cfg_key route_keys[] = {
    KEY("name", t_string, struct gh_config_route, name),
    KEY("host", t_host, struct gh_config_route, host),
    KEY("path", t_route_path, struct gh_config_route, path, .dflt = "/"),
    KEY("methods", t_methods, struct gh_config_route, methods, .min = 1),
    KEY("upstream", t_string, struct gh_config_route, upstream, .flags = KEY_REQUIRED),
    KEY("auth", t_string, struct gh_config_route, auth, .choices = route_auth_modes,
        .dflt = "none"),
    LIST("scopes", t_strlist, struct gh_config_route, scopes, nscopes),
    LIST("roles", t_strlist, struct gh_config_route, roles, nroles),
    KEY("api_key_header", t_string, struct gh_config_route, api_key_header),
    KEY("query_key_param", t_string, struct gh_config_route, query_key_param),
    KEY("rate_limit", t_map, struct gh_config_route, rate_limit, .sub = &rate_limit_map),
    LIST("rate_limits", t_list, struct gh_config_route, rate_limits, nrate_limits,
         .sub = &rate_limit_map),
    KEY("concurrency", t_map, struct gh_config_route, concurrency, .sub = &concurrency_map),
    KEY("on_redis_error", t_string, struct gh_config_route, on_redis_error,
        .choices = fallback_names),
    KEY("audit", t_route_audit, struct gh_config_route, audit, .sub = &route_audit_map),
    KEY("webhook_verify", t_map, struct gh_config_route, webhook_verify,
        .sub = &webhook_verify_map),
    KEY("idempotency", t_map, struct gh_config_route, idempotency, .sub = &route_idempotency_map),
};
static const struct cfg_map route_map = {
    MAP_OF(route_keys),
    .size = sizeof(struct gh_config_route),
    POS_AT(struct gh_config_route),
    .finish = finish_route,
};

static const char *const limit_backends[] = {"local", "redis", NULL};
static int finish_limits(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_limits *l = obj;
    (void)ctx;
    (void)node;
    l->redis_backend = l->backend != NULL && strcmp(l->backend, "redis") == 0;
    l->fallback = fallback_of(l->on_redis_error);
    return GH_OK;
}
#define LIM struct gh_config_limits
static const struct cfg_key limits_keys[] = {
    KEY("max_request_line", t_size32, LIM, max_request_line, .min = 1, .dflt = "8KiB"),
    KEY("max_header_bytes", t_size32, LIM, max_header_bytes, .min = 1, .dflt = "32KiB"),
    KEY("max_headers", t_u32, LIM, max_headers, .min = 1, .max = 256, .dflt = "100"),
    KEY("max_body_size", t_size64, LIM, max_body_bytes, .min = 0, .dflt = "1GiB"),
    KEY("header_timeout", t_duration, LIM, header_timeout_ms, .min = 1, .dflt = "10s"),
    KEY("body_timeout", t_duration, LIM, body_timeout_ms, .min = 1, .dflt = "30s"),
    KEY("keepalive_timeout", t_duration, LIM, keepalive_timeout_ms, .min = 1, .dflt = "75s"),
    KEY("send_timeout", t_duration, LIM, send_timeout_ms, .min = 1, .dflt = "60s"),
    KEY("keepalive_requests", t_u32, LIM, keepalive_requests, .min = 0, .dflt = "10000"),
    KEY("max_connections", t_u32, LIM, max_connections, .min = 1, .dflt = "100000"),
    KEY("backend", t_string, LIM, backend, .choices = limit_backends, .dflt = "local"),
    KEY("on_redis_error", t_string, LIM, on_redis_error, .choices = fallback_names,
        .dflt = "local"),
    KEY("nodes", t_u32, LIM, nodes, .min = 1, .max = 1024, .dflt = "1"),
    KEY("max_keys", t_u32, LIM, max_keys, .min = 1024, .max = 1u << 28, .dflt = "1048576"),
    KEY("default_plan", t_string, LIM, default_plan),
    KEY("queue_timeout", t_duration, LIM, queue_timeout_ms, .min = 0, .max = 60000, .dflt = "0"),
    KEY("quota_flush_interval", t_duration, LIM, quota_flush_ms, .min = 50, .max = 1000,
        .dflt = "1s"),
    KEY("usage_retention", t_duration64, LIM, usage_retention_ms, .min = 86400000ull,
        .max = 36500ull * 86400000, .dflt = "400d"),
};
#undef LIM
static const struct cfg_map limits_map = {MAP_OF(limits_keys), .finish = finish_limits};

#define QK(n, m, p)                                                                                \
    {                                                                                              \
        .name = (n), .type = &t_u64,                                                               \
        .off = offsetof(struct gh_config_quotas, limit) + ((m)*GH_QUOTA_NPERIODS + (p)) * 8,       \
    }
#define QB(n, m, p)                                                                                \
    {                                                                                              \
        .name = (n), .type = &t_size64,                                                            \
        .off = offsetof(struct gh_config_quotas, limit) + ((m)*GH_QUOTA_NPERIODS + (p)) * 8,       \
    }
static const struct cfg_key quotas_keys[] = {
    QK("requests_per_day", GH_QUOTA_REQUESTS, GH_QUOTA_DAY),
    QK("requests_per_month", GH_QUOTA_REQUESTS, GH_QUOTA_MONTH),
    QB("request_bytes_per_day", GH_QUOTA_REQUEST_BYTES, GH_QUOTA_DAY),
    QB("request_bytes_per_month", GH_QUOTA_REQUEST_BYTES, GH_QUOTA_MONTH),
    QB("response_bytes_per_day", GH_QUOTA_RESPONSE_BYTES, GH_QUOTA_DAY),
    QB("response_bytes_per_month", GH_QUOTA_RESPONSE_BYTES, GH_QUOTA_MONTH),
};
#undef QK
#undef QB
static const struct cfg_map quotas_map = {MAP_OF(quotas_keys)};

#define PLAN struct gh_config_plan
static const struct cfg_key plan_keys[] = {
    LIST("rate_limits", t_list, PLAN, rate_limits, nrate_limits, .sub = &rate_limit_map),
    KEY("quotas", t_map, PLAN, quotas, .sub = &quotas_map),
    KEY("concurrency", t_u32, PLAN, concurrency, .min = 0, .dflt = "0"),
    /* 0 (absent): audit.retention. At least a second: less would archive
     * events the writer is still checkpointing. */
    KEY("audit_retention", t_duration64, PLAN, audit_retention_ms, .min = 1000),
};
#undef PLAN
static const struct cfg_map plan_map = {MAP_OF(plan_keys), .size = sizeof(struct gh_config_plan),
                                        .name_off = offsetof(struct gh_config_plan, name),
                                        POS_AT(struct gh_config_plan)};

#define RD struct gh_config_redis
static const struct cfg_key redis_keys[] = {
    KEY("url", t_string, RD, url),
    KEY("username", t_string, RD, username),
    KEY("password", t_secret, RD, password, .min = 1),
    KEY("timeout", t_duration, RD, timeout_ms, .min = 1, .max = 10000, .dflt = "5ms"),
    KEY("connect_timeout", t_duration, RD, connect_timeout_ms, .min = 1, .max = 60000,
        .dflt = "200ms"),
    KEY("key_prefix", t_string, RD, key_prefix, .dflt = "gh:"),
    KEY("ca_file", t_path, RD, ca_file, .flags = KEY_READABLE),
    KEY("sni", t_string, RD, sni),
    KEY("verify", t_bool, RD, verify, .dflt = "true"),
    KEY("resolver", t_string, RD, resolver),
};
#undef RD
static void release_redis(const struct cfg_key *key, void *obj)
{
    struct gh_config_redis *r = (void *)((char *)obj + key->off);
    free(r->host);
    r->host = NULL;
    release_sub(key, obj);
}
static const struct cfg_type t_redis = {"a mapping", YAML_MAPPING_NODE, set_map, release_redis};
static const struct cfg_map redis_map = {MAP_OF(redis_keys), .finish = finish_redis};

/* The export URL: http:// or https://, a host, and the path /v1/traces
 * unless one is given (as OTEL_EXPORTER_OTLP_ENDPOINT works). */
static int finish_tracing(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_tracing *t = obj;
    yaml_node_t *un = node ? map_get(ctx, node, "otlp_endpoint") : NULL;
    const char *u, *host, *slash;
    size_t n;

    t->enabled = t->otlp_endpoint != NULL;
    t->json = t->encoding != NULL && strcmp(t->encoding, "json") == 0;
    if (node) t->pos = pos_of(node);
    if (!t->enabled) return GH_OK;
    u = t->otlp_endpoint;
    if (strncmp(u, "http://", 7) == 0)
        host = u + 7;
    else if (strncmp(u, "https://", 8) == 0)
        host = u + 8;
    else
        return fail(ctx, un, "otlp_endpoint must begin with http:// or https://");
    slash = strchr(host, '/');
    if ((slash ? (size_t)(slash - host) : strlen(host)) == 0 || host[0] == ':')
        return fail(ctx, un, "otlp_endpoint needs a host");
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#' || *p == '@')
            return fail(ctx, un,
                        "otlp_endpoint must be a plain URL (no spaces, credentials, "
                        "query or fragment)");
    n = strlen(u);
    if (slash == NULL || slash[1] == '\0') {
        size_t base = slash ? n - 1 : n;
        t->url = malloc(base + sizeof("/v1/traces"));
        if (t->url == NULL) return fail(ctx, un, "out of memory");
        memcpy(t->url, u, base);
        memcpy(t->url + base, "/v1/traces", sizeof("/v1/traces"));
    } else {
        t->url = strdup(u);
        if (t->url == NULL) return fail(ctx, un, "out of memory");
    }
    return GH_OK;
}

static const char *const trace_encodings[] = {"protobuf", "json", NULL};

#define TR struct gh_config_tracing
static const struct cfg_key tracing_keys[] = {
    KEY("otlp_endpoint", t_string, TR, otlp_endpoint),
    KEY("sample_ratio", t_ratio, TR, sample_ratio, .dflt = "1"),
    KEY("sample_errors", t_bool, TR, sample_errors, .dflt = "false"),
    KEY("encoding", t_string, TR, encoding, .choices = trace_encodings, .dflt = "protobuf"),
    KEY("service_name", t_string, TR, service_name, .dflt = "gatehouse"),
    KEY("batch_size", t_u32, TR, batch_size, .min = 1, .max = 8192, .dflt = "512"),
    KEY("queue_size", t_u32, TR, queue_size, .min = 16, .max = 1048576, .dflt = "8192"),
    KEY("flush_interval", t_duration, TR, flush_interval_ms, .min = 10, .max = 60000,
        .dflt = "200ms"),
    KEY("timeout", t_duration, TR, timeout_ms, .min = 1, .max = 120000, .dflt = "10s"),
    KEY("max_retry", t_duration, TR, max_retry_ms, .max = 3600000, .dflt = "60s"),
};
#undef TR
static void release_tracing(const struct cfg_key *key, void *obj)
{
    struct gh_config_tracing *t = (void *)((char *)obj + key->off);
    free(t->url);
    t->url = NULL;
    release_sub(key, obj);
}
static const struct cfg_type t_tracing = {"a mapping", YAML_MAPPING_NODE, set_map, release_tracing};
static const struct cfg_map tracing_map = {MAP_OF(tracing_keys), .finish = finish_tracing};

static const struct cfg_key access_log_keys[] = {
    KEY("enabled", t_bool, struct gh_config_access_log, enabled, .dflt = "true"),
    KEY("path", t_path, struct gh_config_access_log, path, .flags = KEY_STDIO, .dflt = "stdout"),
};
static const struct cfg_map access_log_map = {MAP_OF(access_log_keys)};

static const struct cfg_key metrics_keys[] = {
    KEY("top_tenants", t_u32, struct gh_config_metrics, top_tenants, .min = 0, .max = 1000,
        .dflt = "20"),
    KEY("require_auth", t_bool, struct gh_config_metrics, require_auth, .dflt = "false"),
};
static const struct cfg_map metrics_map = {MAP_OF(metrics_keys)};

/* Exactly one engine: `sqlite` (the default, "gatehouse.db") or `postgres`. */
static int finish_store(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_store *st = obj;
    yaml_node_t *pg = node ? map_get(ctx, node, "postgres") : NULL;
    char why[256];

    if (pg == NULL) {
        static const char *const pg_only[] = {"pool", "statement_timeout", "lock_timeout"};
        for (size_t i = 0; node != NULL && i < sizeof(pg_only) / sizeof(pg_only[0]); i++)
            if (map_get(ctx, node, pg_only[i]) != NULL)
                return fail(ctx, map_get(ctx, node, pg_only[i]), "`%s` is for `postgres`",
                            pg_only[i]);
        return GH_OK;
    }
    if (map_get(ctx, node, "sqlite") != NULL)
        return fail(ctx, node, "give exactly one of sqlite and postgres");
    /* The default file does not apply: the store is the server's. */
    free(st->sqlite);
    st->sqlite = NULL;
    if (strncmp(st->postgres, "postgresql://", 13) != 0 && strncmp(st->postgres, "postgres://", 11))
        return fail(ctx, pg, "the URL must begin with postgresql:// (docs/postgres.md)");
    /* What libpq would refuse only at the first connection. */
    if (gh_config_pg_url_check(st->postgres, why, sizeof(why)) != 0)
        return fail(ctx, pg, "not a URL libpq accepts: %s", why);
    return GH_OK;
}

static const struct cfg_key store_keys[] = {
    KEY("sqlite", t_path, struct gh_config_store, sqlite, .dflt = "gatehouse.db"),
    /* Not secret:NAME: the store it opens holds the sealed secrets. */
    KEY("postgres", t_secret, struct gh_config_store, postgres, .min = 1,
        .flags = KEY_NOREF | KEY_URL),
    KEY("pool", t_u32, struct gh_config_store, pool, .min = 1, .max = 64, .dflt = "8"),
    /* Bounds on one statement and on a wait for a lock (PostgreSQL's
     * settings of those names), and so on how long an op holds its caller:
     * past them the op fails with 503 store_unavailable (docs/postgres.md). */
    KEY("statement_timeout", t_duration, struct gh_config_store, statement_timeout_ms, .min = 100,
        .max = 3600000, .dflt = "5s"),
    KEY("lock_timeout", t_duration, struct gh_config_store, lock_timeout_ms, .min = 100,
        .max = 3600000, .dflt = "5s"),
};
static const struct cfg_map store_map = {MAP_OF(store_keys), .finish = finish_store};

static const char *const secret_providers[] = {"local", "pkcs11", NULL};

#define P11 struct gh_config_pkcs11
static const struct cfg_key pkcs11_keys[] = {
    KEY("module", t_path, P11, module, .flags = KEY_REQUIRED),
    KEY("token_label", t_string, P11, token_label, .flags = KEY_REQUIRED),
    KEY("pin", t_secret, P11, pin, .min = 1, .flags = KEY_REQUIRED | KEY_NOREF),
    KEY("key_label", t_string, P11, key_label, .dflt = "gatehouse-kek"),
};
#undef P11
static int finish_pkcs11(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    ((struct gh_config_pkcs11 *)obj)->pos = pos_of(node);
    return GH_OK;
}
static const struct cfg_map pkcs11_map = {MAP_OF(pkcs11_keys), .finish = finish_pkcs11};

/* The provider needs its own settings: a `pkcs11` block for pkcs11. */
static int finish_secrets(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_secrets *s = obj;

    s->pos = pos_of(node);
    if (strcmp(s->provider, "pkcs11") == 0 &&
        (node == NULL || map_get(ctx, node, "pkcs11") == NULL))
        return fail(ctx, node, "provider pkcs11 needs a pkcs11 block (module, token_label, pin)");
    return GH_OK;
}

#define SEC struct gh_config_secrets
static const struct cfg_key secrets_keys[] = {
    KEY("provider", t_string, SEC, provider, .choices = secret_providers, .dflt = "local"),
    KEY("master_key_file", t_path, SEC, master_key_file),
    KEY("pkcs11", t_map, SEC, pkcs11, .sub = &pkcs11_map),
};
#undef SEC
static const struct cfg_map secrets_map = {MAP_OF(secrets_keys), .finish = finish_secrets};

static const struct cfg_key argon2_keys[] = {
    KEY("memory", t_size32, struct gh_config_argon2, memory_bytes, .min = 8192,
        .max = 1024u * 1024 * 1024, .dflt = "19MiB"),
    KEY("iterations", t_u32, struct gh_config_argon2, iterations, .min = 1, .max = 100,
        .dflt = "2"),
    KEY("parallelism", t_u32, struct gh_config_argon2, parallelism, .min = 1, .max = 64,
        .dflt = "1"),
};
static const struct cfg_map argon2_map = {MAP_OF(argon2_keys)};

/* The `jwt` block turns JWT verification on; it needs one key source. */
static int finish_jwt(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_jwt *j = obj;
    static const char *const algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                       "ES256", "ES384", "EdDSA", NULL};

    j->enabled = node != NULL;
    if (!j->enabled) return GH_OK;
    j->pos = pos_of(node);
    if ((j->jwks_url == NULL) == (j->jwks_file == NULL))
        return fail(ctx, node, "give exactly one of jwks_url and jwks_file");
    if (j->jwks_url && strncmp(j->jwks_url, "https://", 8) != 0 &&
        strncmp(j->jwks_url, "http://", 7) != 0)
        return fail(ctx, map_get(ctx, node, "jwks_url"), "jwks_url must be an http(s) URL");
    for (size_t i = 0; i < j->nalgorithms; i++) {
        size_t k;
        for (k = 0; algs[k]; k++)
            if (strcmp(j->algorithms[i], algs[k]) == 0) break;
        if (algs[k] == NULL)
            return fail(ctx, seq_item(ctx, map_get(ctx, node, "algorithms"), i),
                        "algorithm \"%s\" is not supported (use RS256, RS384, RS512, PS256, "
                        "PS384, ES256, ES384 or EdDSA; HMAC and none are refused)",
                        j->algorithms[i]);
    }
    return GH_OK;
}

#define JWT struct gh_config_jwt
static const struct cfg_key jwt_keys[] = {
    KEY("jwks_url", t_string, JWT, jwks_url),
    KEY("jwks_file", t_path, JWT, jwks_file, .flags = KEY_READABLE),
    KEY("issuer", t_string, JWT, issuer),
    LIST("audiences", t_strlist, JWT, audiences, naudiences),
    LIST("algorithms", t_strlist, JWT, algorithms, nalgorithms),
    KEY("leeway", t_duration, JWT, leeway_ms, .min = 0, .max = 3600000, .dflt = "60s"),
    KEY("tenant_claim", t_string, JWT, tenant_claim, .dflt = "tenant"),
    KEY("subject_claim", t_string, JWT, subject_claim, .dflt = "sub"),
    KEY("scope_claim", t_string, JWT, scope_claim, .dflt = "scope"),
    KEY("roles_claim", t_string, JWT, roles_claim),
    KEY("refresh_interval", t_duration, JWT, refresh_interval_ms, .min = 1000, .dflt = "5m"),
    KEY("max_token_size", t_size32, JWT, max_token_bytes, .min = 256, .max = 65536, .dflt = "8KiB"),
};
#undef JWT
static const struct cfg_map jwt_map = {MAP_OF(jwt_keys), .finish = finish_jwt};

static const char *const token_algs[] = {"ES256", "EdDSA", NULL};
static const struct cfg_key tokens_keys[] = {
    KEY("issuer", t_string, struct gh_config_tokens, issuer, .dflt = "gatehouse"),
    KEY("ttl", t_duration, struct gh_config_tokens, ttl_ms, .min = 1000, .max = 86400000,
        .dflt = "15m"),
    KEY("algorithm", t_string, struct gh_config_tokens, algorithm, .choices = token_algs,
        .dflt = "ES256"),
    KEY("rotate_every", t_duration, struct gh_config_tokens, rotate_every_ms, .min = 1000,
        .dflt = "24h"),
};
static const struct cfg_map tokens_map = {MAP_OF(tokens_keys)};

#define AUTH struct gh_config_auth
static const struct cfg_key auth_keys[] = {
    KEY("argon2", t_map, AUTH, argon2, .sub = &argon2_map),
    KEY("cache_ttl", t_duration, AUTH, cache_ttl_ms, .min = 1000, .max = 86400000, .dflt = "60s"),
    KEY("rotation_grace", t_duration, AUTH, rotation_grace_ms, .min = 0, .dflt = "24h"),
    KEY("api_key_header", t_string, AUTH, api_key_header, .dflt = "X-API-Key"),
    KEY("verify_threads", t_u32, AUTH, verify_threads, .min = 1, .max = 64, .dflt = "1"),
    KEY("jwt", t_map, AUTH, jwt, .sub = &jwt_map),
    KEY("tokens", t_map, AUTH, tokens, .sub = &tokens_map),
};
#undef AUTH
static const struct cfg_map auth_map = {MAP_OF(auth_keys)};

#define AU  struct gh_config_audit
#define AUE struct gh_config_audit_events
static const struct cfg_key audit_event_keys[] = {
    KEY("auth_failures", t_bool, AUE, auth_failures, .dflt = "true"),
    KEY("admin", t_bool, AUE, admin, .dflt = "true"),
    KEY("limits", t_bool, AUE, limits, .dflt = "true"),
    KEY("reloads", t_bool, AUE, reloads, .dflt = "true"),
};
static const struct cfg_map audit_event_map = {MAP_OF(audit_event_keys)};

static int finish_audit(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_audit *a = obj;
    (void)ctx;
    (void)node;
    a->strict = a->mode != NULL && strcmp(a->mode, "strict") == 0;
    return GH_OK;
}

static const struct cfg_key audit_keys[] = {
    KEY("enabled", t_bool, AU, enabled, .dflt = "true"),
    KEY("mode", t_string, AU, mode, .choices = audit_modes, .dflt = "async"),
    KEY("queue_size", t_u32, AU, queue_size, .min = 16, .max = 1048576, .dflt = "4096"),
    KEY("batch_max", t_u32, AU, batch_max, .min = 1, .max = 65536, .dflt = "512"),
    KEY("checkpoint_every", t_u32, AU, checkpoint_every, .min = 1, .dflt = "1000"),
    KEY("checkpoint_interval", t_duration, AU, checkpoint_interval_ms, .min = 100, .max = 86400000,
        .dflt = "60s"),
    KEY("param_prefix", t_u32, AU, param_prefix, .min = 0, .max = 16, .dflt = "4"),
    KEY("events", t_map, AU, events, .sub = &audit_event_map),
    KEY("retention", t_duration64, AU, retention_ms, .min = 1000, .dflt = "90d"),
    KEY("archive_dir", t_path, AU, archive_dir, .dflt = "audit-archive"),
    KEY("archive_interval", t_duration, AU, archive_interval_ms, .min = 1000, .max = 604800000,
        .dflt = "1h"),
};
#undef AU
#undef AUE
static const struct cfg_map audit_map = {MAP_OF(audit_keys), .finish = finish_audit};

/* The allow-list entries as CIDRs, and the schedule as milliseconds (the
 * default when absent), each error at its list item. */
static const char *const default_schedule[] = {"0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"};

static int finish_webhooks(struct cfg_ctx *ctx, yaml_node_t *node, void *obj)
{
    struct gh_config_webhooks *w = obj;
    yaml_node_t *an = node ? map_get(ctx, node, "allow_private") : NULL;
    yaml_node_t *sn = node ? map_get(ctx, node, "schedule") : NULL;
    size_t n;

    if (node) w->pos = pos_of(node);
    if (w->nallow_private > 64) return fail(ctx, an, "allow_private has at most 64 entries");
    if (w->nallow_private) {
        w->allow = calloc(w->nallow_private, sizeof(*w->allow));
        if (w->allow == NULL) return fail(ctx, an, "out of memory");
    }
    for (size_t i = 0; i < w->nallow_private; i++) {
        if (gh_hooks_cidr_parse(w->allow_private[i], &w->allow[i]) != GH_OK) {
            size_t old = path_push_key(ctx, "allow_private");
            path_push_index(ctx, i);
            int rc = fail(ctx, an ? seq_item(ctx, an, i) : NULL,
                          "\"%s\" is not an address or a CIDR (\"127.0.0.1\", \"10.0.0.0/8\")",
                          w->allow_private[i]);
            path_pop(ctx, old);
            return rc;
        }
    }
    n = w->nschedule ? w->nschedule : NELEM(default_schedule);
    if (n > 32) return fail(ctx, sn, "schedule has at most 32 entries");
    w->schedule_ms = calloc(n, sizeof(*w->schedule_ms));
    if (w->schedule_ms == NULL) return fail(ctx, sn, "out of memory");
    w->nschedule_ms = n;
    for (size_t i = 0; i < n; i++) {
        const char *text = w->nschedule ? w->schedule[i] : default_schedule[i];
        if (gh_config_parse_duration_ms(text, &w->schedule_ms[i]) != GH_OK ||
            w->schedule_ms[i] > 7ull * 24 * 3600 * 1000) {
            size_t old = path_push_key(ctx, "schedule");
            path_push_index(ctx, i);
            int rc = fail(ctx, sn ? seq_item(ctx, sn, i) : NULL,
                          "\"%s\" is not a duration of at most 7d (\"0s\", \"5s\", \"5m\")", text);
            path_pop(ctx, old);
            return rc;
        }
    }
    return GH_OK;
}

#define WH struct gh_config_webhooks
static const struct cfg_key webhooks_keys[] = {
    LIST("allow_private", t_strlist, WH, allow_private, nallow_private),
    KEY("timeout", t_duration, WH, timeout_ms, .min = 100, .max = 120000, .dflt = "15s"),
    LIST("schedule", t_strlist, WH, schedule, nschedule),
    KEY("jitter", t_ratio, WH, jitter, .dflt = "0.1"),
    KEY("disable_after", t_duration64, WH, disable_after_ms, .min = 1000, .dflt = "5d"),
    KEY("concurrency", t_u32, WH, concurrency, .min = 1, .max = 1024, .dflt = "64"),
    KEY("rotation_grace", t_duration64, WH, rotation_grace_ms, .min = 0, .max = 2592000000ull,
        .dflt = "24h"),
    KEY("max_payload", t_size32, WH, max_payload, .min = 16, .max = 1048576, .dflt = "64KiB"),
    KEY("retention", t_duration64, WH, retention_ms, .min = 1000, .max = 3650ull * 86400000,
        .dflt = "30d"),
};
#undef WH
static void release_webhooks(const struct cfg_key *key, void *obj)
{
    struct gh_config_webhooks *w = (void *)((char *)obj + key->off);
    free(w->allow);
    w->allow = NULL;
    free(w->schedule_ms);
    w->schedule_ms = NULL;
    release_sub(key, obj);
}
static const struct cfg_type t_webhooks = {"a mapping", YAML_MAPPING_NODE, set_map,
                                           release_webhooks};
static const struct cfg_map webhooks_map = {MAP_OF(webhooks_keys), .finish = finish_webhooks};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const char *const replay_stores[] = {"local", "redis", NULL};
/* `allow` is not offered: a replay store that lets everything through while
 * Redis is away is no replay protection. */
static const char *const replay_fallbacks[] = {"local", "deny", NULL};
#define IW struct gh_config_inbound_webhooks
static const struct cfg_key inbound_webhooks_keys[] = {
    KEY("replay_keys", t_u32, IW, replay_keys, .min = 2048, .max = 1u << 26, .dflt = "262144"),
    KEY("replay_store", t_string, IW, replay_store, .choices = replay_stores),
    KEY("on_redis_error", t_string, IW, on_redis_error, .choices = replay_fallbacks,
        .dflt = "local"),
};
#undef IW
static const struct cfg_map inbound_webhooks_map = {MAP_OF(inbound_webhooks_keys)};

#define ID struct gh_config_idempotency
static const struct cfg_key idempotency_keys[] = {
    KEY("keys", t_u32, ID, keys, .min = 1024, .max = 1u << 24, .dflt = "16384"),
    KEY("max_memory", t_size64, ID, max_memory, .min = 1ull << 20, .max = 64ull << 30,
        .dflt = "64MiB"),
    KEY("store", t_string, ID, store, .choices = replay_stores),
    KEY("on_redis_error", t_string, ID, on_redis_error, .choices = replay_fallbacks,
        .dflt = "deny"),
};
#undef ID
static const struct cfg_map idempotency_map = {MAP_OF(idempotency_keys)};

static const struct cfg_key node_keys[] = {
    KEY("id", t_node_id, struct gh_config_node, id),
};
static const struct cfg_map node_map = {MAP_OF(node_keys), POS_AT(struct gh_config_node),
                                        .finish = finish_node};

static const struct cfg_key root_keys[] = {
    KEY("workers", t_workers, struct gh_config, workers, .min = 1, .max = 1024, .dflt = "auto"),
    KEY("log_level", t_string, struct gh_config, log_level, .choices = log_levels, .dflt = "info"),
    KEY("node", t_map, struct gh_config, node, .sub = &node_map),
    KEY("shutdown_timeout", t_duration, struct gh_config, shutdown_timeout_ms, .min = 1,
        .dflt = "10s"),
    LIST("listen", t_list, struct gh_config, listens, nlistens, .min = 1, .flags = KEY_REQUIRED,
         .sub = &listen_map),
    KEY("admin", t_map, struct gh_config, admin, .sub = &admin_map),
    LIST("upstreams", t_named, struct gh_config, upstreams, nupstreams, .min = 1,
         .flags = KEY_REQUIRED, .sub = &upstream_map),
    LIST("routes", t_list, struct gh_config, routes, nroutes, .min = 1, .flags = KEY_REQUIRED,
         .sub = &route_map),
    KEY("limits", t_map, struct gh_config, limits, .sub = &limits_map),
    LIST("plans", t_named, struct gh_config, plans, nplans, .sub = &plan_map),
    KEY("redis", t_redis, struct gh_config, redis, .sub = &redis_map),
    KEY("access_log", t_map, struct gh_config, access_log, .sub = &access_log_map),
    KEY("tracing", t_tracing, struct gh_config, tracing, .sub = &tracing_map),
    KEY("metrics", t_map, struct gh_config, metrics, .sub = &metrics_map),
    KEY("store", t_map, struct gh_config, store, .sub = &store_map),
    KEY("auth", t_map, struct gh_config, auth, .sub = &auth_map),
    KEY("audit", t_map, struct gh_config, audit, .sub = &audit_map),
    KEY("secrets", t_map, struct gh_config, secrets, .sub = &secrets_map),
    KEY("inbound_webhooks", t_map, struct gh_config, inbound_webhooks,
        .sub = &inbound_webhooks_map),
    KEY("idempotency", t_map, struct gh_config, idempotency, .sub = &idempotency_map),
    KEY("webhooks", t_webhooks, struct gh_config, webhooks, .flags = KEY_DEFAULTS,
        .sub = &webhooks_map),
};
static const struct cfg_map root_map = {MAP_OF(root_keys)};

/* ---- The walker ---------------------------------------------------------- */

/* Sets a field from its default, written as in YAML, through the same setter
 * as a value from the file. */
static int set_default(struct cfg_ctx *ctx, const struct cfg_key *key, void *obj)
{
    yaml_node_t n;

    memset(&n, 0, sizeof(n));
    n.type = YAML_SCALAR_NODE;
    n.data.scalar.value = (yaml_char_t *)(uintptr_t)key->dflt;
    n.data.scalar.length = strlen(key->dflt);
    n.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
    return key->type->set(ctx, &n, key, obj);
}

/* Sets one key from <v> after checking the node type: a list where a value
 * is expected (or the reverse) is an error, not a silent default. */
static int set_value(struct cfg_ctx *ctx, yaml_node_t *v, const struct cfg_key *key, void *obj)
{
    if (key->type->node == YAML_SCALAR_NODE) {
        if (v->type != YAML_SCALAR_NODE)
            return fail(ctx, v, "expected %s, got %s", key->type->what, node_what(v));
        if (strlen(scalar(v)) != v->data.scalar.length)
            return fail(ctx, v, "must not contain a NUL character");
    } else if (key->type->node != YAML_NO_NODE && v->type != key->type->node && !is_null(v)) {
        return fail(ctx, v, "expected %s, got %s", key->type->what, node_what(v));
    }
    return key->type->set(ctx, v, key, obj);
}

/* Fills <obj> from mapping <node> with the keys of <map>: unknown and
 * duplicate keys are errors, missing keys get their defaults (or are errors
 * when required), then map->finish runs. <node> NULL means the mapping was
 * absent from the file: only defaults apply. */
static int walk_map(struct cfg_ctx *ctx, yaml_node_t *node, const struct cfg_map *map, void *obj)
{
    yaml_node_t *saved_around = ctx->around;
    uint64_t seen = 0;
    char wbuf[300], sbuf[128];
    int rc = GH_ERROR;

    assert(map->nkeys <= 64); /* <seen> has one bit per key */
    if (node != NULL) ctx->around = node;
    if (node != NULL && map->has_pos)
        *FIELD(obj, map->pos_off, struct gh_config_pos) = pos_of(node);

    if (node != NULL && node->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = node_at(ctx, p->key), *v = node_at(ctx, p->value);
            size_t i, old;

            if (k->type != YAML_SCALAR_NODE) {
                rc = fail_plain(ctx, k, "keys must be plain names%s",
                                where(ctx, wbuf, sizeof(wbuf)));
                goto out;
            }
            for (i = 0; i < map->nkeys; i++)
                if (strcmp(map->keys[i].name, scalar(k)) == 0) break;
            if (i == map->nkeys) {
                rc = fail_plain(ctx, k, "unknown key \"%s\"%s%s", scalar(k),
                                where(ctx, wbuf, sizeof(wbuf)),
                                suggest(scalar(k), &map->keys[0].name, map->nkeys,
                                        sizeof(map->keys[0]), sbuf, sizeof(sbuf)));
                goto out;
            }
            if (seen & (UINT64_C(1) << i)) {
                rc = fail_plain(ctx, k, "duplicate key \"%s\"%s", scalar(k),
                                where(ctx, wbuf, sizeof(wbuf)));
                goto out;
            }
            seen |= UINT64_C(1) << i;
            old = path_push_key(ctx, scalar(k));
            rc = set_value(ctx, v, &map->keys[i], obj);
            path_pop(ctx, old);
            if (rc != GH_OK) goto out;
        }
    }

    for (size_t i = 0; i < map->nkeys; i++) {
        const struct cfg_key *key = &map->keys[i];
        size_t old;

        if (seen & (UINT64_C(1) << i)) continue;
        /* An absent mapping is "not configured": nothing in it is required. */
        if ((key->flags & KEY_REQUIRED) && node != NULL) {
            rc = fail_plain(ctx, node, "missing required key \"%s\"%s", key->name,
                            where(ctx, wbuf, sizeof(wbuf)));
            goto out;
        }
        if (key->dflt != NULL) {
            rc = set_default(ctx, key, obj);
        } else if (key->type == &t_map || (key->flags & KEY_DEFAULTS)) {
            old = path_push_key(ctx, key->name);
            rc = set_map(ctx, NULL, key, obj);
            path_pop(ctx, old);
        } else {
            rc = GH_OK;
        }
        if (rc != GH_OK) goto out;
    }
    rc = map->finish != NULL ? map->finish(ctx, node, obj) : GH_OK;
out:
    ctx->around = saved_around;
    return rc;
}

/* ---- Checks across the whole file ------------------------------------------ */

/* The local master key file defaults to "<store file>.master": beside the
 * store it protects, wherever the store was put. */
static int default_master_key_file(struct gh_config *cfg, struct gh_err *err)
{
    if (cfg->secrets.master_key_file != NULL || cfg->store.sqlite == NULL) return GH_OK;
    if (asprintf(&cfg->secrets.master_key_file, "%s.master", cfg->store.sqlite) < 0) {
        cfg->secrets.master_key_file = NULL;
        return gh_err_set(err, cfg->file, 0, 0, "out of memory");
    }
    return GH_OK;
}

static bool same_addr(const struct gh_config_addr *a, const struct gh_config_addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family) return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

static int check_listens(struct cfg_ctx *ctx, yaml_node_t *root, struct gh_config *cfg)
{
    yaml_node_t *seq = map_get(ctx, root, "listen");

    for (size_t i = 0; i < cfg->nlistens; i++) {
        yaml_node_t *at = map_get(ctx, seq_item(ctx, seq, i), "address");
        path_set(ctx, "listen[%zu].address", i);
        for (size_t j = 0; j < i; j++)
            if (same_addr(&cfg->listens[i].addr, &cfg->listens[j].addr))
                return fail(ctx, at, "duplicate listen address (same as listen[%zu])", j);
        if (cfg->admin.enabled && same_addr(&cfg->listens[i].addr, &cfg->admin.addr))
            return fail(ctx, at, "%s is also admin.address", cfg->admin.addr.text);
    }
    return GH_OK;
}

static int check_routes(struct cfg_ctx *ctx, yaml_node_t *root, struct gh_config *cfg)
{
    yaml_node_t *seq = map_get(ctx, root, "routes");
    char sbuf[128];

    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct gh_config_route *r = &cfg->routes[i];
        size_t u;

        for (u = 0; u < cfg->nupstreams; u++)
            if (strcmp(cfg->upstreams[u].name, r->upstream) == 0) break;
        if (u == cfg->nupstreams) {
            path_set(ctx, "routes[%zu].upstream", i);
            return fail(ctx, map_get(ctx, seq_item(ctx, seq, i), "upstream"),
                        "unknown upstream \"%s\"%s", r->upstream,
                        suggest(r->upstream, &cfg->upstreams[0].name, cfg->nupstreams,
                                sizeof(cfg->upstreams[0]), sbuf, sizeof(sbuf)));
        }
        r->upstream_index = u;
        /* Routes are tried in file order, so an identical later one could
         * never match: almost certainly a copy-paste mistake. */
        for (size_t j = 0; j < i; j++) {
            struct gh_config_route *o = &cfg->routes[j];
            if (gh_cstr_same(r->host, o->host) && r->host_wildcard == o->host_wildcard &&
                strcmp(r->path, o->path) == 0 && r->methods == o->methods) {
                path_set(ctx, "routes[%zu]", i);
                return fail(ctx, seq_item(ctx, seq, i),
                            "same host, path and methods as routes[%zu] (\"%s\")", j, o->name);
            }
        }
    }
    return GH_OK;
}

/* Gives a name to every rule that has none, so a 429 and the metrics can
 * say which rule it was. Returns GH_OK or GH_ERROR (out of memory). */
static int name_rule(struct cfg_ctx *ctx, struct gh_config_rate_limit *rl, const char *prefix,
                     const char *a, size_t i, bool numbered)
{
    char buf[300];
    if (rl->name != NULL || rl->rate.count == 0) return GH_OK;
    if (numbered)
        snprintf(buf, sizeof(buf), "%s%s.%zu", prefix, a, i);
    else
        snprintf(buf, sizeof(buf), "%s%s", prefix, a);
    if ((rl->name = strdup(buf)) == NULL) return fail(ctx, NULL, "out of memory");
    return GH_OK;
}

/* Cross-checks of limits, plans, redis and the routes' rules. */
static int check_limits(struct cfg_ctx *ctx, yaml_node_t *root, struct gh_config *cfg)
{
    yaml_node_t *lim = map_get(ctx, root, "limits");
    char sbuf[128];

    path_set(ctx, "limits");
    if (cfg->limits.redis_backend && !cfg->redis.enabled)
        return fail(ctx, lim ? map_get(ctx, lim, "backend") : root,
                    "`backend: redis` needs a top-level `redis: { url: ... }` block");
    if (cfg->limits.default_plan && !gh_config_plan_find(cfg, cfg->limits.default_plan)) {
        path_set(ctx, "limits.default_plan");
        return fail(ctx, map_get(ctx, lim, "default_plan"), "unknown plan \"%s\"%s",
                    cfg->limits.default_plan,
                    cfg->nplans ? suggest(cfg->limits.default_plan, &cfg->plans[0].name,
                                          cfg->nplans, sizeof(cfg->plans[0]), sbuf, sizeof(sbuf))
                                : " (no plans are defined)");
    }
    for (size_t p = 0; p < cfg->nplans; p++)
        for (size_t i = 0; i < cfg->plans[p].nrate_limits; i++)
            if (name_rule(ctx, &cfg->plans[p].rate_limits[i], "", cfg->plans[p].name, i, true) !=
                GH_OK)
                return GH_ERROR;
    for (size_t r = 0; r < cfg->nroutes; r++) {
        struct gh_config_route *rt = &cfg->routes[r];
        if (name_rule(ctx, &rt->rate_limit, "route:", rt->name, 0, false) != GH_OK) return GH_ERROR;
        for (size_t i = 0; i < rt->nrate_limits; i++)
            if (name_rule(ctx, &rt->rate_limits[i], "route:", rt->name, i + 1, true) != GH_OK)
                return GH_ERROR;
    }
    return GH_OK;
}

/* The replay store: Redis by default wherever a `redis:` block gives one. */
static int check_inbound_webhooks(struct cfg_ctx *ctx, yaml_node_t *root, struct gh_config *cfg)
{
    struct gh_config_inbound_webhooks *iw = &cfg->inbound_webhooks;
    yaml_node_t *blk = map_get(ctx, root, "inbound_webhooks");

    path_set(ctx, "inbound_webhooks.replay_store");
    iw->replay_redis =
        iw->replay_store ? strcmp(iw->replay_store, "redis") == 0 : cfg->redis.enabled;
    iw->redis_deny = iw->on_redis_error != NULL && strcmp(iw->on_redis_error, "deny") == 0;
    if (iw->replay_redis && !cfg->redis.enabled)
        return fail(ctx, blk ? map_get(ctx, blk, "replay_store") : root,
                    "`replay_store: redis` needs a top-level `redis: { url: ... }` block");
    return GH_OK;
}

/* The idempotency store: Redis by default wherever a `redis:` block gives
 * one, like the webhook replay store. */
static int check_idempotency(struct cfg_ctx *ctx, yaml_node_t *root, struct gh_config *cfg)
{
    struct gh_config_idempotency *id = &cfg->idempotency;
    yaml_node_t *blk = map_get(ctx, root, "idempotency");

    path_set(ctx, "idempotency.store");
    id->redis = id->store ? strcmp(id->store, "redis") == 0 : cfg->redis.enabled;
    id->redis_deny = id->on_redis_error != NULL && strcmp(id->on_redis_error, "deny") == 0;
    if (id->redis && !cfg->redis.enabled)
        return fail(ctx, blk ? map_get(ctx, blk, "store") : root,
                    "`store: redis` needs a top-level `redis: { url: ... }` block");
    /* The local table (the store, or the fallback) must hold at least one
     * answer of every route, or every claim there would be refused. */
    path_set(ctx, "idempotency.max_memory");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gh_config_route *rt = &cfg->routes[i];
        if (!rt->idempotency.enabled) continue;
        if (rt->idempotency.max_response + GH_CONFIG_IDEM_RECORD_OVERHEAD > id->max_memory)
            return fail(ctx, blk ? map_get(ctx, blk, "max_memory") : root,
                        "%llu bytes cannot hold one answer of route %s (max_response %llu plus "
                        "%u bytes of record); raise max_memory or lower the route's max_response",
                        (unsigned long long)id->max_memory, rt->name ? rt->name : "?",
                        (unsigned long long)rt->idempotency.max_response,
                        (unsigned)GH_CONFIG_IDEM_RECORD_OVERHEAD);
    }
    return GH_OK;
}

/* ---- Loading ------------------------------------------------------------- */

/* Where byte <off> of <data> stands, counted as libyaml counts marks: a
 * line per break ("\n", "\r", "\r\n", NEL, LS, PS), a column per character,
 * a UTF-8 BOM not at all. The bytes before <off> are valid UTF-8 (libyaml
 * stopped at the first that was not). 0:0 for UTF-16, whose units this does
 * not count. */
static struct gh_config_pos pos_at_offset(const char *data, size_t len, size_t off)
{
    const unsigned char *s = (const unsigned char *)data;
    struct gh_config_pos p = {1, 1};
    size_t i = 0;

    if (len >= 2 && ((s[0] == 0xff && s[1] == 0xfe) || (s[0] == 0xfe && s[1] == 0xff)))
        return (struct gh_config_pos){0, 0};
    if (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) i = 3;
    if (off > len) off = len;
    for (; i < off; i++) {
        bool nel = s[i] == 0xc2 && i + 1 < len && s[i + 1] == 0x85;
        bool lsps = s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 &&
                    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9);
        if (s[i] == '\n' || (s[i] == '\r' && (i + 1 == len || s[i + 1] != '\n')) || nel || lsps) {
            p.line++;
            p.col = 1;
            i += nel ? 1 : lsps ? 2 : 0;
        } else if ((s[i] & 0xc0) != 0x80) {
            p.col++;
        }
    }
    return p;
}

static int syntax_error(struct gh_err *err, const char *name, const yaml_parser_t *parser,
                        const char *data, size_t len)
{
    const char *problem = parser->problem ? parser->problem : "invalid YAML";

    if (parser->error == YAML_MEMORY_ERROR) return gh_err_set(err, name, 0, 0, "out of memory");
    /* Bytes that are not text (bad UTF-8, control characters) stop the
     * reader before any mark is set: libyaml gives their offset instead,
     * and problem_mark 0:0 would put every such error at 1:1. */
    if (parser->error == YAML_READER_ERROR) {
        struct gh_config_pos p = pos_at_offset(data, len, parser->problem_offset);
        char val[16] = ""; /* the offending byte or character, when there is one */
        if (parser->problem_value >= 0)
            snprintf(val, sizeof(val), "0x%X", (unsigned)parser->problem_value);
        if (p.line == 0)
            return gh_err_set(err, name, 0, 0, "YAML syntax error: %s (%s%sbyte %zu)", problem, val,
                              val[0] ? " at " : "at ", parser->problem_offset);
        if (val[0] == '\0')
            return gh_err_set(err, name, p.line, p.col, "YAML syntax error: %s", problem);
        return gh_err_set(err, name, p.line, p.col, "YAML syntax error: %s (%s)", problem, val);
    }
    if (parser->context != NULL)
        return gh_err_set(err, name, (int)parser->problem_mark.line + 1,
                          (int)parser->problem_mark.column + 1,
                          "YAML syntax error: %s (%s at line %d)", problem, parser->context,
                          (int)parser->context_mark.line + 1);
    return gh_err_set(err, name, (int)parser->problem_mark.line + 1,
                      (int)parser->problem_mark.column + 1, "YAML syntax error: %s", problem);
}

/* Parses <data> as one YAML document into a new config. <base_dir> is the
 * absolute directory that relative paths are joined to. */
static int load(const char *name, const char *base_dir, const char *data, size_t len,
                struct gh_config **out, struct gh_err *err)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool have_doc = false;
    struct cfg_ctx ctx;
    struct gh_config *cfg = NULL;
    yaml_node_t *root;
    int rc = GH_ERROR;

    *out = NULL;
    memset(&ctx, 0, sizeof(ctx));
    ctx.file = name;
    ctx.base_dir = base_dir;
    ctx.doc = &doc;
    ctx.err = err;

    if (!yaml_parser_initialize(&parser)) return gh_err_set(err, name, 0, 0, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)(data ? data : ""),
                                 data ? len : 0);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(err, name, &parser, data ? data : "", data ? len : 0);
        goto out;
    }
    have_doc = true;
    root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        gh_err_set(err, name, 1, 1, "the configuration is empty");
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        fail_plain(&ctx, root,
                   "the top level must be a mapping of keys such as \"listen:\", got %s",
                   node_what(root));
        goto out;
    }
    /* A second document ("---") would be ignored silently otherwise. */
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(err, name, &parser, data ? data : "", data ? len : 0);
        goto out;
    }
    if (yaml_document_get_root_node(&extra) != NULL) {
        gh_err_set(err, name, (int)extra.start_mark.line + 1, (int)extra.start_mark.column + 1,
                   "only one YAML document is allowed");
        yaml_document_delete(&extra);
        goto out;
    }
    yaml_document_delete(&extra);

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->file = strdup(name)) == NULL) {
        gh_err_set(err, name, 0, 0, "out of memory");
        goto out;
    }
    if (!EVP_Digest(data ? data : "", data ? len : 0, cfg->sha256, NULL, EVP_sha256(), NULL)) {
        gh_err_set(err, name, 0, 0, "cannot compute the SHA-256 of the configuration");
        goto out;
    }
    ctx.cfg = cfg;
    if (walk_map(&ctx, root, &root_map, cfg) != GH_OK) goto out;
    if (default_master_key_file(cfg, err) != GH_OK) goto out;
    if (check_listens(&ctx, root, cfg) != GH_OK) goto out;
    if (check_routes(&ctx, root, cfg) != GH_OK) goto out;
    if (check_limits(&ctx, root, cfg) != GH_OK) goto out;
    if (check_inbound_webhooks(&ctx, root, cfg) != GH_OK) goto out;
    if (check_idempotency(&ctx, root, cfg) != GH_OK) goto out;
    *out = cfg;
    cfg = NULL;
    rc = GH_OK;
out:
    gh_config_free(cfg);
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int gh_config_load_buffer(const char *name, const char *data, size_t len, struct gh_config **out,
                          struct gh_err *err)
{
    char cwd[PATH_MAX];

    *out = NULL;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return gh_err_set(err, name, 0, 0, "cannot get the current directory: %s", strerror(errno));
    return load(name, cwd, data, len, out, err);
}

/* Reads the whole of <path> into a new buffer (at most GH_CONFIG_MAX_FILE). */
static int read_file(const char *path, char **data, size_t *len, struct gh_err *err)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 0, n = 0;
    char *buf = NULL;

    if (f == NULL) return gh_err_set(err, path, 0, 0, "cannot open: %s", strerror(errno));
    for (;;) {
        size_t got;
        if (n == cap) {
            char *bigger;
            if (cap >= GH_CONFIG_MAX_FILE) {
                gh_err_set(err, path, 0, 0, "the file is larger than %u bytes", GH_CONFIG_MAX_FILE);
                goto fail;
            }
            cap = cap ? cap * 2 : 8192;
            bigger = realloc(buf, cap);
            if (bigger == NULL) {
                gh_err_set(err, path, 0, 0, "out of memory");
                goto fail;
            }
            buf = bigger;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        gh_err_set(err, path, 0, 0, "cannot read: %s", strerror(errno));
        goto fail;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return GH_OK;
fail:
    fclose(f);
    free(buf);
    return GH_ERROR;
}

int gh_config_load(const char *path, struct gh_config **out, struct gh_err *err)
{
    char *data = NULL, *dir = NULL, base[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t len = 0;
    int rc = GH_ERROR;

    *out = NULL;
    if (read_file(path, &data, &len, err) != GH_OK) return GH_ERROR;
    /* The directory as written (not the target of a symlinked file), made
     * absolute so a later chdir() cannot change what the paths mean. */
    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
        gh_err_set(err, path, 0, 0, "out of memory");
        goto out;
    }
    if (realpath(dir, base) == NULL) {
        gh_err_set(err, path, 0, 0, "cannot resolve the directory \"%s\": %s", dir,
                   strerror(errno));
        goto out;
    }
    rc = load(path, base, data, len, out, err);
out:
    free(dir);
    free(data);
    return rc;
}

int gh_config_demo(const char *listen, const char *admin_listen, uint16_t upstream_port,
                   struct gh_config **out, struct gh_err *err)
{
    struct gh_config *cfg;
    struct cfg_ctx ctx;
    char text[64], why[256], cwd[PATH_MAX];

    *out = NULL;
    memset(&ctx, 0, sizeof(ctx));
    ctx.file = "demo";
    ctx.base_dir = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
    ctx.err = err;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) return gh_err_set(err, "demo", 0, 0, "out of memory");
    /* Defaults come from the same tables as for a file; only the lists are
     * built here. */
    if ((cfg->file = strdup("demo")) == NULL) goto nomem;
    ctx.cfg = cfg;
    if (walk_map(&ctx, NULL, &root_map, cfg) != GH_OK) goto fail;
    if (default_master_key_file(cfg, err) != GH_OK) goto fail;

    if (admin_listen != NULL) {
        struct gh_config_addr a;
        if (gh_config_parse_addr(admin_listen, &a, why, sizeof(why)) != GH_OK) {
            gh_err_set(err, "demo", 0, 0, "admin: %s", why);
            goto fail;
        }
        gh_config_addr_release(&cfg->admin.addr);
        cfg->admin.addr = a;
    }
    cfg->listens = calloc(1, sizeof(*cfg->listens));
    if (cfg->listens == NULL) goto nomem;
    cfg->nlistens = 1;
    if (gh_config_parse_addr(listen, &cfg->listens[0].addr, why, sizeof(why)) != GH_OK) {
        gh_err_set(err, "demo", 0, 0, "%s", why);
        goto fail;
    }

    cfg->upstreams = calloc(1, sizeof(*cfg->upstreams));
    if (cfg->upstreams == NULL) goto nomem;
    cfg->nupstreams = 1;
    if (walk_map(&ctx, NULL, &upstream_map, &cfg->upstreams[0]) != GH_OK) goto fail;
    if ((cfg->upstreams[0].name = strdup("demo")) == NULL) goto nomem;
    cfg->upstreams[0].endpoints = calloc(1, sizeof(struct gh_config_addr));
    if (cfg->upstreams[0].endpoints == NULL) goto nomem;
    cfg->upstreams[0].nendpoints = 1;
    snprintf(text, sizeof(text), "127.0.0.1:%u", (unsigned)upstream_port);
    if (gh_config_parse_addr(text, &cfg->upstreams[0].endpoints[0], why, sizeof(why)) != GH_OK) {
        gh_err_set(err, "demo", 0, 0, "upstream: %s", why);
        goto fail;
    }

    /* Three routes: "/" open to all, "/orders" behind an API key with the
     * orders:read scope (the demo prints such a key), and "/webhooks/github"
     * open but checked as a GitHub webhook. */
    cfg->routes = calloc(3, sizeof(*cfg->routes));
    if (cfg->routes == NULL) goto nomem;
    cfg->nroutes = 3;
    for (size_t i = 0; i < 3; i++) {
        if ((cfg->routes[i].upstream = strdup("demo")) == NULL) goto nomem;
        if (walk_map(&ctx, NULL, &route_map, &cfg->routes[i]) != GH_OK) goto fail;
        cfg->routes[i].upstream_index = 0;
    }
    free(cfg->routes[1].path);
    free(cfg->routes[1].name);
    free(cfg->routes[1].auth);
    cfg->routes[1].path = strdup("/orders");
    cfg->routes[1].name = strdup("/orders");
    cfg->routes[1].auth = strdup("api_key");
    cfg->routes[1].scopes = calloc(1, sizeof(char *));
    if (cfg->routes[1].path == NULL || cfg->routes[1].name == NULL || cfg->routes[1].auth == NULL ||
        cfg->routes[1].scopes == NULL)
        goto nomem;
    cfg->routes[1].auth_mode = GH_ROUTE_AUTH_API_KEY;
    if ((cfg->routes[1].scopes[0] = strdup("orders:read")) == NULL) goto nomem;
    cfg->routes[1].nscopes = 1;
    /* ... and a rate limit per tenant, 5/s with a burst of 10, to show 429s. */
    {
        struct gh_config_rate_limit *rl = &cfg->routes[1].rate_limit;
        if ((rl->name = strdup("orders-per-tenant")) == NULL) goto nomem;
        rl->by[0] = GH_LIMIT_BY_TENANT;
        rl->rate.count = 5;
        rl->rate.period_ms = 1000;
        rl->burst = 10;
        rl->fallback = GH_FALLBACK_INHERIT;
    }
    {
        struct gh_config_route *wr = &cfg->routes[2];
        free(wr->path);
        free(wr->name);
        wr->path = strdup("/webhooks/github");
        wr->name = strdup("/webhooks/github");
        wr->webhook_verify.format = strdup("github");
        wr->webhook_verify.secret = strdup(GH_CONFIG_DEMO_WEBHOOK_SECRET);
        if (wr->path == NULL || wr->name == NULL || wr->webhook_verify.format == NULL ||
            wr->webhook_verify.secret == NULL)
            goto nomem;
        wr->webhook_verify.enabled = true;
        wr->webhook_verify.format_id = GH_WH_GITHUB;
    }
    /* Webhook endpoints may be the demo upstream, on loopback. */
    cfg->webhooks.allow_private = calloc(1, sizeof(char *));
    cfg->webhooks.allow = calloc(1, sizeof(*cfg->webhooks.allow));
    if (cfg->webhooks.allow_private == NULL || cfg->webhooks.allow == NULL ||
        (cfg->webhooks.allow_private[0] = strdup("127.0.0.1")) == NULL)
        goto nomem;
    cfg->webhooks.nallow_private = 1;
    if (gh_hooks_cidr_parse("127.0.0.1", &cfg->webhooks.allow[0]) != GH_OK) goto nomem;
    if (check_listens(&ctx, NULL, cfg) != GH_OK) goto fail; /* e.g. listen == admin.address */

    /* A hash of what defines the demo, so metrics can tell two apart. */
    snprintf(text, sizeof(text), "demo %s %u", listen, (unsigned)upstream_port);
    EVP_Digest(text, strlen(text), cfg->sha256, NULL, EVP_sha256(), NULL);
    *out = cfg;
    return GH_OK;
nomem:
    gh_err_set(err, "demo", 0, 0, "out of memory");
fail:
    gh_config_free(cfg);
    return GH_ERROR;
}

void gh_config_free(struct gh_config *cfg)
{
    if (cfg == NULL) return;
    release_map(&root_map, cfg);
    for (size_t i = 0; i < cfg->nsecret_refs; i++) {
        free(cfg->secret_refs[i].name);
        free(cfg->secret_refs[i].key);
    }
    free(cfg->secret_refs);
    free(cfg->warnings);
    free(cfg->file);
    free(cfg);
}
