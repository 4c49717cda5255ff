/* Per-worker tenant tables and the top-N selection (see metrics_tenants.h). */
#include "telemetry/metrics_tenants.h"

#include <stdlib.h>
#include <string.h>

struct mtenant {
    _Atomic uint64_t hash; /* 0: free; stored (release) once <id> is written */
    uint8_t len;
    char id[GH_MTENANTS_ID_MAX + 1];
    gh_mcounter codes[GH_MC_N];
};

struct gh_mtenants {
    struct mtenant slots[GH_MTENANTS_SLOTS];
    gh_mcounter overflow[GH_MC_N];
};

/* FNV-1a, never 0 (0 marks a free slot). Tenant ids come from our store or
 * a trusted issuer, and the table is bounded, so chosen collisions can only
 * push tenants into "other". */
static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h | 1;
}

struct gh_mtenants *gh_mtenants_new(void)
{
    return calloc(1, sizeof(struct gh_mtenants));
}

void gh_mtenants_free(struct gh_mtenants *t)
{
    free(t);
}

void gh_mtenants_count(struct gh_mtenants *t, const char *id, size_t len, unsigned cls)
{
    uint64_t h;
    uint32_t i;

    if (len == 0 || len > GH_MTENANTS_ID_MAX) goto overflow;
    h = hash_id(id, len);
    i = (uint32_t)(h >> 20) & (GH_MTENANTS_SLOTS - 1);
    for (uint32_t p = 0; p < GH_MTENANTS_PROBE_MAX; p++, i = (i + 1) & (GH_MTENANTS_SLOTS - 1)) {
        struct mtenant *e = &t->slots[i];
        uint64_t eh = atomic_load_explicit(&e->hash, memory_order_relaxed);
        if (eh == 0) {
            memcpy(e->id, id, len);
            e->id[len] = '\0';
            e->len = (uint8_t)len;
            atomic_store_explicit(&e->hash, h, memory_order_release);
            gh_mc_add(&e->codes[cls], 1);
            return;
        }
        if (eh == h && e->len == len && memcmp(e->id, id, len) == 0) {
            gh_mc_add(&e->codes[cls], 1);
            return;
        }
    }
overflow:
    gh_mc_add(&t->overflow[cls], 1);
}

/* ---- Collection ---------------------------------------------------------- */

struct agg {
    const char *id; /* into a worker's slot or the sticky set */
    size_t len;
    uint64_t h;
    uint64_t codes[GH_MC_N];
    uint64_t total;
    bool used;
    bool sticky;
};

struct aggmap {
    struct agg *e;
    size_t mask;
};

static struct agg *agg_find(struct aggmap *m, const char *id, size_t len, uint64_t h)
{
    size_t i = (size_t)(h >> 20) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        struct agg *a = &m->e[i];
        if (!a->used) {
            a->used = true;
            a->id = id;
            a->len = len;
            a->h = h;
            return a;
        }
        if (a->h == h && a->len == len && memcmp(a->id, id, len) == 0) return a;
    }
}

/* Busiest first; ties by id so that promotion does not depend on order. */
static int by_total_desc(const void *pa, const void *pb)
{
    const struct agg *a = *(struct agg *const *)pa, *b = *(struct agg *const *)pb;
    if (a->total != b->total) return a->total > b->total ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int by_id(const void *pa, const void *pb)
{
    const struct gh_mtenant_row *a = pa, *b = pb;
    return strcmp(a->id, b->id);
}

static int sticky_add(struct gh_metrics_sticky *s, struct agg *a)
{
    char *id;
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 32;
        char **ids = realloc(s->ids, cap * sizeof(*ids));
        if (ids == NULL) return GH_ERROR;
        s->ids = ids;
        s->cap = cap;
    }
    id = strndup(a->id, a->len);
    if (id == NULL) return GH_ERROR;
    s->ids[s->n++] = id;
    a->id = id; /* the worker slot's copy stays, but rows point here */
    a->sticky = true;
    return GH_OK;
}

int gh_mtenants_collect(struct gh_mtenants *const *tables, size_t ntables,
                        struct gh_metrics_sticky *sticky, uint32_t top_n,
                        struct gh_mtenant_view *out)
{
    struct aggmap m = {0};
    struct agg **cand = NULL;
    size_t ncand = 0, size = 64, total = sticky->n;
    int rc = GH_ERROR;

    memset(out, 0, sizeof(*out));
    for (size_t t = 0; t < ntables; t++) {
        if (tables[t] == NULL) continue;
        for (uint32_t i = 0; i < GH_MTENANTS_SLOTS; i++)
            if (atomic_load_explicit(&tables[t]->slots[i].hash, memory_order_relaxed)) total++;
    }
    /* Room for tenants that workers add while we read (up to 256 more;
     * later ones wait for the next scrape). */
    total += 256;
    while (size < 2 * total + 2)
        size *= 2;
    m.e = calloc(size, sizeof(*m.e));
    m.mask = size - 1;
    if (m.e == NULL) goto out;

    /* Sticky tenants first, so that finding them is one hash lookup. */
    for (uint32_t i = 0; i < sticky->n; i++) {
        size_t len = strlen(sticky->ids[i]);
        struct agg *a = agg_find(&m, sticky->ids[i], len, hash_id(sticky->ids[i], len));
        a->sticky = true;
    }
    for (size_t t = 0; t < ntables; t++) {
        const struct gh_mtenants *tb = tables[t];
        if (tb == NULL) continue;
        for (int c = 0; c < GH_MC_N; c++)
            out->other[c] += gh_mc_get(&tb->overflow[c]);
        for (uint32_t i = 0; i < GH_MTENANTS_SLOTS; i++) {
            const struct mtenant *e = &tb->slots[i];
            uint64_t h = atomic_load_explicit((_Atomic uint64_t *)&e->hash, memory_order_acquire);
            struct agg *a;
            if (h == 0) continue;
            /* The slot may have been claimed after the count above. */
            if (total == 0) break;
            total--;
            a = agg_find(&m, e->id, e->len, h);
            for (int c = 0; c < GH_MC_N; c++) {
                uint64_t v = gh_mc_get(&e->codes[c]);
                a->codes[c] += v;
                a->total += v;
            }
        }
    }

    if (sticky->n < top_n) {
        cand = malloc(size * sizeof(*cand));
        if (cand == NULL) goto out;
        for (size_t i = 0; i < size; i++)
            if (m.e[i].used && !m.e[i].sticky && m.e[i].total > 0) cand[ncand++] = &m.e[i];
        qsort(cand, ncand, sizeof(*cand), by_total_desc);
        for (size_t i = 0; i < ncand && sticky->n < top_n; i++)
            if (sticky_add(sticky, cand[i]) != GH_OK) goto out;
    }

    out->rows = calloc(sticky->n ? sticky->n : 1, sizeof(*out->rows));
    if (out->rows == NULL) goto out;
    for (size_t i = 0; i < size; i++) {
        struct agg *a = &m.e[i];
        if (!a->used) continue;
        if (a->sticky) {
            struct gh_mtenant_row *row = &out->rows[out->nrows++];
            row->id = a->id;
            memcpy(row->codes, a->codes, sizeof(row->codes));
        } else {
            for (int c = 0; c < GH_MC_N; c++)
                out->other[c] += a->codes[c];
        }
    }
    qsort(out->rows, out->nrows, sizeof(*out->rows), by_id);
    rc = GH_OK;
out:
    if (rc != GH_OK) {
        free(out->rows);
        memset(out, 0, sizeof(*out));
    }
    free(cand);
    free(m.e);
    return rc;
}
