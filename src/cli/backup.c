/* Backup manifests and what a backup's copy holds (backup.h). */
#include "cli/backup.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "store/store.h"
#include "store/store_postgres.h"

/* ---- Summary ------------------------------------------------------------------ */

static int add_table(const char *table, uint64_t rows, void *arg)
{
    struct gh_backup_summary *s = arg;

    /* More tables than a manifest holds would be a schema we do not know:
     * refuse rather than leave tables out of the comparison. */
    if (s->ntables == GH_BACKUP_TABLES || strlen(table) >= sizeof(s->tables[0].name))
        return GH_ERROR;
    snprintf(s->tables[s->ntables].name, sizeof(s->tables[0].name), "%s", table);
    s->tables[s->ntables++].rows = rows;
    return GH_OK;
}

static int add_head(const struct gh_store_audit_row *row, void *arg)
{
    struct gh_backup_summary *s = arg;
    struct gh_backup_head *h = realloc(s->heads, (s->nheads + 1) * sizeof(*h));

    if (h == NULL) return GH_ERROR;
    s->heads = h;
    h = &s->heads[s->nheads++];
    snprintf(h->chain, sizeof(h->chain), "%s", row->chain);
    h->seq = row->seq;
    snprintf(h->hash, sizeof(h->hash), "%s", row->hash);
    return GH_OK;
}

int gh_backup_summarize(const struct gh_store_params *params, struct gh_backup_summary *out,
                        char *problem, size_t problem_size, struct gh_err *err)
{
    struct gh_store *st = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = gh_store_open(params, &st, err);
    if (rc == GH_OK && problem != NULL)
        rc = gh_store_integrity_check(st, problem, problem_size, err);
    if (rc == GH_OK) {
        rc = gh_store_table_counts(st, add_table, out, err);
        if (rc != GH_OK && err->msg[0] == '\0')
            gh_err_set(err, NULL, 0, 0, "backup: more than %d tables, or a table name too long",
                       GH_BACKUP_TABLES);
    }
    if (rc == GH_OK) {
        rc = gh_store_audit_heads(st, add_head, out, err);
        if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "out of memory");
    }
    if (st != NULL) gh_store_close(st);
    if (rc != GH_OK) gh_backup_summary_free(out);
    return rc;
}

int gh_backup_take_postgres(struct gh_store *st, const char *path, struct gh_backup_manifest *m,
                            struct gh_err *err)
{
    struct gh_backup_summary *s = &m->sum;
    int rc;

    memset(s, 0, sizeof(*s));
    /* One callback argument for both walks: add_table and add_head each
     * fill their part of the summary. */
    rc = gh_store_postgres_backup(st, path, add_table, add_head, s, m->server_version,
                                  sizeof(m->server_version), err);
    if (rc != GH_OK) gh_backup_summary_free(s);
    return rc;
}

void gh_backup_summary_free(struct gh_backup_summary *s)
{
    free(s->heads);
    s->heads = NULL;
    s->nheads = 0;
}

/* ---- Manifest ----------------------------------------------------------------- */

int gh_backup_manifest_write(const char *dir, const struct gh_backup_manifest *m,
                             struct gh_err *err)
{
    json_t *doc = json_object(), *tables = json_object(), *heads = json_array();
    char path[PATH_MAX];
    char *text = NULL;
    int rc = GH_ERROR;

    if (doc == NULL || tables == NULL || heads == NULL) goto out;
    for (size_t i = 0; i < m->sum.ntables; i++)
        json_object_set_new(tables, m->sum.tables[i].name,
                            json_integer((json_int_t)m->sum.tables[i].rows));
    for (size_t i = 0; i < m->sum.nheads; i++)
        json_array_append_new(heads, json_pack("{s:s, s:I, s:s}", "chain", m->sum.heads[i].chain,
                                               "seq", (json_int_t)m->sum.heads[i].seq, "hash",
                                               m->sum.heads[i].hash));
    json_object_set_new(doc, "format", json_string(GH_BACKUP_FORMAT));
    json_object_set_new(doc, "created_at", json_string(m->created_at));
    json_object_set_new(doc, "gatehouse_version", json_string(m->version));
    json_object_set_new(doc, "engine", json_string(m->engine));
    if (m->server_version[0] != '\0')
        json_object_set_new(doc, "server_version", json_string(m->server_version));
    json_object_set_new(doc, "files",
                        json_pack("[{s:s, s:I, s:s}]", "name", m->file, "bytes",
                                  (json_int_t)m->db_bytes, "sha256", m->db_sha256));
    json_object_set(doc, "tables", tables);
    json_object_set(doc, "audit_heads", heads);
    json_object_set_new(doc, "not_included",
                        json_pack("[s, s]", "the master key (secrets.master_key_file)",
                                  "audit archive segments (audit.archive_dir)"));
    text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) goto out;
    snprintf(path, sizeof(path), "%s/%s", dir, GH_BACKUP_MANIFEST);
    rc = gh_file_write_atomic("backup", path, text, strlen(text), 0600, err);
    if (rc == GH_OK) rc = gh_file_fsync_dir("backup", dir, err);
out:
    if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "backup: out of memory");
    free(text);
    json_decref(tables);
    json_decref(heads);
    json_decref(doc);
    return rc;
}

static bool copy_str(json_t *v, char *dst, size_t size)
{
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) >= size) return false;
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64) return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
    return true;
}

static int parse(json_t *doc, struct gh_backup_manifest *m, struct gh_err *err)
{
    json_t *files = json_object_get(doc, "files"), *tables = json_object_get(doc, "tables");
    json_t *heads = json_object_get(doc, "audit_heads"), *f, *v;
    const char *key, *format = json_string_value(json_object_get(doc, "format"));
    size_t i;

    if (format == NULL || strcmp(format, GH_BACKUP_FORMAT) != 0)
        return gh_err_set(err, NULL, 0, 0, "manifest: format is not %s", GH_BACKUP_FORMAT);
    if (!copy_str(json_object_get(doc, "created_at"), m->created_at, sizeof(m->created_at)) ||
        !copy_str(json_object_get(doc, "gatehouse_version"), m->version, sizeof(m->version)) ||
        !copy_str(json_object_get(doc, "engine"), m->engine, sizeof(m->engine)))
        return gh_err_set(err, NULL, 0, 0, "manifest: created_at, gatehouse_version or engine");
    if (strcmp(m->engine, "sqlite") == 0)
        snprintf(m->file, sizeof(m->file), "%s", GH_BACKUP_DB);
    else if (strcmp(m->engine, "postgres") == 0)
        snprintf(m->file, sizeof(m->file), "%s", GH_BACKUP_DUMP);
    else
        return gh_err_set(err, NULL, 0, 0, "manifest: engine \"%s\" is not sqlite or postgres",
                          m->engine);
    if (json_object_get(doc, "server_version") != NULL &&
        !copy_str(json_object_get(doc, "server_version"), m->server_version,
                  sizeof(m->server_version)))
        return gh_err_set(err, NULL, 0, 0, "manifest: server_version");
    if (!json_is_array(files) || json_array_size(files) != 1 ||
        !json_is_object(f = json_array_get(files, 0)) ||
        !json_is_string(json_object_get(f, "name")) ||
        strcmp(json_string_value(json_object_get(f, "name")), m->file) != 0 ||
        !json_is_integer(json_object_get(f, "bytes")) ||
        json_integer_value(json_object_get(f, "bytes")) < 0 ||
        !copy_str(json_object_get(f, "sha256"), m->db_sha256, sizeof(m->db_sha256)) ||
        !is_hex64(m->db_sha256))
        return gh_err_set(err, NULL, 0, 0, "manifest: files must list %s with bytes and sha256",
                          m->file);
    m->db_bytes = (uint64_t)json_integer_value(json_object_get(f, "bytes"));
    if (!json_is_object(tables) || json_object_size(tables) > GH_BACKUP_TABLES)
        return gh_err_set(err, NULL, 0, 0, "manifest: tables");
    json_object_foreach(tables, key, v)
    {
        struct gh_backup_table *t = &m->sum.tables[m->sum.ntables];
        if (!json_is_integer(v) || json_integer_value(v) < 0 || strlen(key) >= sizeof(t->name))
            return gh_err_set(err, NULL, 0, 0, "manifest: tables: bad entry");
        snprintf(t->name, sizeof(t->name), "%s", key);
        t->rows = (uint64_t)json_integer_value(v);
        m->sum.ntables++;
    }
    if (!json_is_array(heads)) return gh_err_set(err, NULL, 0, 0, "manifest: audit_heads");
    m->sum.heads = calloc(json_array_size(heads) + 1, sizeof(*m->sum.heads));
    if (m->sum.heads == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    json_array_foreach(heads, i, v)
    {
        struct gh_backup_head *h = &m->sum.heads[i];
        json_t *seq = json_object_get(v, "seq");
        if (!copy_str(json_object_get(v, "chain"), h->chain, sizeof(h->chain)) ||
            !copy_str(json_object_get(v, "hash"), h->hash, sizeof(h->hash)) || !is_hex64(h->hash) ||
            !json_is_integer(seq) || json_integer_value(seq) < 1)
            return gh_err_set(err, NULL, 0, 0, "manifest: audit_heads: bad entry %zu", i);
        h->seq = (uint64_t)json_integer_value(seq);
        m->sum.nheads++;
    }
    return GH_OK;
}

int gh_backup_manifest_read(const char *dir, struct gh_backup_manifest *m, struct gh_err *err)
{
    char path[PATH_MAX];
    json_error_t jerr;
    json_t *doc;
    int rc;

    memset(m, 0, sizeof(*m));
    snprintf(path, sizeof(path), "%s/%s", dir, GH_BACKUP_MANIFEST);
    doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gh_err_set(err, path, jerr.line > 0 ? jerr.line : 0,
                          jerr.column > 0 ? jerr.column : 0, "%s", jerr.text);
    rc = parse(doc, m, err);
    json_decref(doc);
    if (rc != GH_OK) gh_backup_summary_free(&m->sum);
    return rc;
}
