/* Prometheus text 0.0.4 and OpenMetrics 1.0 writing (see metrics_expo.h). */
#include "telemetry/metrics_expo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bucket bounds as written in the le label: text keeps Prometheus's usual
 * spelling, OpenMetrics wants integral bounds as floats ("1.0"). */
static const char *const le_text[GH_METRICS_NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};
static const char *const le_om[GH_METRICS_NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",    "0.5",    "1.0",   "2.5",    "5.0",   "10.0", "+Inf"};

void gh_expo_init(struct gh_expo *e, bool openmetrics)
{
    memset(e, 0, sizeof(*e));
    e->openmetrics = openmetrics;
}

void gh_expo_release(struct gh_expo *e)
{
    free(e->data);
    e->data = NULL;
    e->len = e->cap = 0;
}

static bool reserve(struct gh_expo *e, size_t n)
{
    size_t cap;
    char *p;

    if (e->failed) return false;
    if (e->len + n <= e->cap) return true;
    if (e->len + n > GH_EXPO_MAX_BYTES) {
        e->failed = true;
        return false;
    }
    cap = e->cap ? e->cap : 64 * 1024;
    while (cap < e->len + n)
        cap *= 2;
    if (cap > GH_EXPO_MAX_BYTES) cap = GH_EXPO_MAX_BYTES;
    p = realloc(e->data, cap);
    if (p == NULL) {
        e->failed = true;
        return false;
    }
    e->data = p;
    e->cap = cap;
    return true;
}

void gh_expo_raw(struct gh_expo *e, const char *p, size_t n)
{
    if (!reserve(e, n)) return;
    memcpy(e->data + e->len, p, n);
    e->len += n;
}

static void put_cstr(struct gh_expo *e, const char *s)
{
    gh_expo_raw(e, s, strlen(s));
}

static void put_u64(struct gh_expo *e, uint64_t v)
{
    char tmp[20];
    size_t i = gh_u64_dec(v, tmp);
    gh_expo_raw(e, tmp + i, sizeof(tmp) - i);
}

void gh_expo_seconds(struct gh_expo *e, uint64_t ns)
{
    char frac[10];
    uint64_t f = ns % 1000000000ull;
    size_t n = 9;

    put_u64(e, ns / 1000000000ull);
    if (f == 0) return;
    frac[0] = '.';
    for (int i = 9; i >= 1; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    while (frac[n] == '0')
        n--;
    gh_expo_raw(e, frac, n + 1);
}

/* Escapes '\\' and '\n' (and '"' when <quote>): label values always quote;
 * HELP text only in OpenMetrics. Runs of plain bytes are copied at once. */
static void put_escaped(struct gh_expo *e, gh_str s, bool quote)
{
    size_t start = 0;

    for (size_t i = 0; i < s.len; i++) {
        const char *esc = NULL;
        switch (s.ptr[i]) {
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '"': esc = quote ? "\\\"" : NULL; break;
        default: break;
        }
        if (esc == NULL) continue;
        gh_expo_raw(e, s.ptr + start, i - start);
        gh_expo_raw(e, esc, 2);
        start = i + 1;
    }
    gh_expo_raw(e, s.ptr + start, s.len - start);
}

void gh_expo_family(struct gh_expo *e, const char *name, enum gh_expo_type type, const char *help)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram", "info", "summary"};
    /* The name of the TYPE and HELP lines: the family's in OpenMetrics; in
     * the text format, counters and infos are named as their samples. */
    const char *suffix = "";

    e->family = name;
    e->type = type;
    if (!e->openmetrics && type == GH_EXPO_COUNTER) suffix = "_total";
    if (!e->openmetrics && type == GH_EXPO_INFO) suffix = "_info";
    gh_expo_raw(e, "# HELP ", 7);
    put_cstr(e, name);
    put_cstr(e, suffix);
    gh_expo_raw(e, " ", 1);
    put_escaped(e, gh_str_cstr(help), e->openmetrics);
    gh_expo_raw(e, "\n# TYPE ", 8);
    put_cstr(e, name);
    put_cstr(e, suffix);
    gh_expo_raw(e, " ", 1);
    put_cstr(e, type == GH_EXPO_INFO && !e->openmetrics ? "gauge" : type_names[type]);
    gh_expo_raw(e, "\n", 1);
}

/* name{labels[,extra="value"]} and a space; <suffix> is appended to the name. */
static void sample_start(struct gh_expo *e, const char *suffix, const struct gh_label *labels,
                         size_t nlabels, const char *extra_name, const char *extra_value)
{
    put_cstr(e, e->family);
    put_cstr(e, suffix);
    if (nlabels > 0 || extra_name) {
        gh_expo_raw(e, "{", 1);
        for (size_t i = 0; i < nlabels; i++) {
            if (i) gh_expo_raw(e, ",", 1);
            put_cstr(e, labels[i].name);
            gh_expo_raw(e, "=\"", 2);
            put_escaped(e, labels[i].value, true);
            gh_expo_raw(e, "\"", 1);
        }
        if (extra_name) {
            if (nlabels) gh_expo_raw(e, ",", 1);
            put_cstr(e, extra_name);
            gh_expo_raw(e, "=\"", 2);
            put_cstr(e, extra_value);
            gh_expo_raw(e, "\"", 1);
        }
        gh_expo_raw(e, "}", 1);
    }
    gh_expo_raw(e, " ", 1);
}

void gh_expo_counter(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, uint64_t v)
{
    sample_start(e, "_total", labels, nlabels, NULL, NULL);
    put_u64(e, v);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_gauge_u64(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, uint64_t v)
{
    sample_start(e, "", labels, nlabels, NULL, NULL);
    put_u64(e, v);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_gauge_i64(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, int64_t v)
{
    sample_start(e, "", labels, nlabels, NULL, NULL);
    if (v < 0) {
        gh_expo_raw(e, "-", 1);
        put_u64(e, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(e, (uint64_t)v);
    }
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_gauge_f64(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, double v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%.9g", v);

    sample_start(e, "", labels, nlabels, NULL, NULL);
    if (n > 0 && (size_t)n < sizeof(num)) gh_expo_raw(e, num, (size_t)n);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_gauge_seconds(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                           uint64_t ns)
{
    sample_start(e, "", labels, nlabels, NULL, NULL);
    gh_expo_seconds(e, ns);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_counter_seconds(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                             uint64_t ns)
{
    sample_start(e, "_total", labels, nlabels, NULL, NULL);
    gh_expo_seconds(e, ns);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_info(struct gh_expo *e, const struct gh_label *labels, size_t nlabels)
{
    sample_start(e, "_info", labels, nlabels, NULL, NULL);
    gh_expo_raw(e, "1\n", 2);
}

void gh_expo_histogram(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                       const uint64_t buckets[GH_METRICS_NBUCKETS], uint64_t sum_ns)
{
    const char *const *le = e->openmetrics ? le_om : le_text;
    uint64_t cum = 0;

    for (unsigned i = 0; i < GH_METRICS_NBUCKETS; i++) {
        cum += buckets[i];
        sample_start(e, "_bucket", labels, nlabels, "le", le[i]);
        put_u64(e, cum);
        gh_expo_raw(e, "\n", 1);
    }
    sample_start(e, "_sum", labels, nlabels, NULL, NULL);
    gh_expo_seconds(e, sum_ns);
    gh_expo_raw(e, "\n", 1);
    sample_start(e, "_count", labels, nlabels, NULL, NULL);
    put_u64(e, cum);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_summary(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, uint64_t sum,
                     uint64_t count)
{
    sample_start(e, "_sum", labels, nlabels, NULL, NULL);
    put_u64(e, sum);
    gh_expo_raw(e, "\n", 1);
    sample_start(e, "_count", labels, nlabels, NULL, NULL);
    put_u64(e, count);
    gh_expo_raw(e, "\n", 1);
}

void gh_expo_finish(struct gh_expo *e)
{
    if (e->openmetrics) gh_expo_raw(e, "# EOF\n", 6);
}
