/* gatehouse backup -c FILE --out DIR: an online, consistent backup of the
 * store named by the config into the new folder DIR (cli/backup.h).
 * gatehouse restore-drill -c FILE --from DIR [--admin-url URL]: restores
 * the backup in DIR into a temporary folder (SQLite) or a scratch database
 * of the config's PostgreSQL server, created and dropped over the admin
 * connection, and checks it; prints one PASS/FAIL line per check and a
 * verdict. Exit codes: 0 done / drill passed; 1 the drill failed; 2 usage,
 * config or I/O errors (the backup was not taken). */
#include <dirent.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/verify.h"
#include "cli/backup.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/runtime.h"
#include "core/file.h"
#include "secrets/secrets.h"
#include "store/store.h"
#include "store/store_postgres.h"
#include "core/version.h"

struct args {
    const char *config, *dir, *admin_url;
};

/* --admin-url only for restore-drill (<admin> set): a backup runs as the
 * gateway's own login role. */
static int parse_args(const char *cmd, const char *dir_flag, bool admin, int argc, char **argv,
                      struct args *a)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage(cmd);
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            a->config = argv[++i];
        else if (strcmp(argv[i], dir_flag) == 0 && i + 1 < argc)
            a->dir = argv[++i];
        else if (admin && strcmp(argv[i], "--admin-url") == 0 && i + 1 < argc)
            a->admin_url = argv[++i];
        else {
            fprintf(stderr, "gatehouse %s: unexpected argument \"%s\"\n", cmd, argv[i]);
            return 2;
        }
    }
    if (a->config == NULL || a->dir == NULL) {
        fprintf(stderr, "gatehouse %s: needs -c FILE and %s DIR\n", cmd, dir_flag);
        return 2;
    }
    return -1; /* go on */
}

static struct gh_config *load_config(const char *cmd, const char *path)
{
    struct gh_config *cfg = NULL;
    struct gh_err err = {0};
    char msg[1024];

    if (gh_config_load(path, &cfg, &err) != GH_OK) {
        fprintf(stderr, "gatehouse %s: %s\n", cmd, gh_err_format(&err, msg, sizeof(msg)));
        return NULL;
    }
    return cfg;
}

/* A new folder, or an empty one: a backup never mixes with other files. */
static int prepare_out(const char *dir, struct gh_err *err)
{
    DIR *d;
    struct dirent *e;

    if (mkdir(dir, 0700) == 0) return GH_OK;
    if (errno != EEXIST) return gh_err_set(err, NULL, 0, 0, "%s: %s", dir, strerror(errno));
    d = opendir(dir);
    if (d == NULL) return gh_err_set(err, NULL, 0, 0, "%s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        closedir(d);
        return gh_err_set(err, NULL, 0, 0, "%s: not empty (a backup needs a new folder)", dir);
    }
    closedir(d);
    return GH_OK;
}

static void utc_now(char *out, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* SQLite: the online copy, then everything in the manifest read from the
 * copy, so it describes exactly what a restore would get. */
static int take_sqlite(struct gh_store *st, const char *db, struct gh_backup_manifest *m,
                       struct gh_err *err)
{
    struct gh_store_params copy = {.sqlite_path = db, .readers = 1};
    char wal[PATH_MAX + 8];
    int rc = gh_store_backup(st, db, err);

    snprintf(wal, sizeof(wal), "%s-wal", db);
    if (rc == GH_OK) rc = gh_backup_summarize(&copy, &m->sum, NULL, 0, err);
    if (rc == GH_OK && access(wal, F_OK) == 0)
        rc = gh_err_set(err, NULL, 0, 0, "%s: the copy kept a WAL file", db);
    return rc;
}

int gh_cmd_backup(int argc, char **argv)
{
    struct args a = {0};
    struct gh_config *cfg;
    struct gh_store *st = NULL;
    struct gh_store_params params = {0};
    struct gh_backup_manifest m;
    struct gh_err err = {0};
    char db[PATH_MAX];
    bool pg;
    int rc = parse_args("backup", "--out", false, argc, argv, &a);

    if (rc >= 0) return rc;
    cfg = load_config("backup", a.config);
    if (cfg == NULL) return 2;
    memset(&m, 0, sizeof(m));
    pg = cfg->store.postgres != NULL;
    snprintf(m.engine, sizeof(m.engine), "%s", pg ? "postgres" : "sqlite");
    snprintf(m.file, sizeof(m.file), "%s", pg ? GH_BACKUP_DUMP : GH_BACKUP_DB);
    snprintf(db, sizeof(db), "%s/%s", a.dir, m.file);
    params = gh_runtime_store_params(cfg);
    params.pool = 1;
    rc = prepare_out(a.dir, &err);
    if (rc == GH_OK) rc = gh_store_open(&params, &st, &err);
    if (rc == GH_OK)
        rc = pg ? gh_backup_take_postgres(st, db, &m, &err) : take_sqlite(st, db, &m, &err);
    if (st != NULL) gh_store_close(st);
    if (rc == GH_OK) rc = gh_file_fsync("backup", db, &err);
    if (rc == GH_OK) rc = gh_file_sha256("backup", db, m.db_sha256, &m.db_bytes, &err);
    if (rc == GH_OK) {
        utc_now(m.created_at, sizeof(m.created_at));
        snprintf(m.version, sizeof(m.version), "%s", gh_version());
        rc = gh_backup_manifest_write(a.dir, &m, &err);
    }
    if (rc == GH_OK) {
        uint64_t events = 0;
        for (size_t i = 0; i < m.sum.ntables; i++)
            if (strcmp(m.sum.tables[i].name, "audit_events") == 0) events = m.sum.tables[i].rows;
        printf("backup %s: %s, %" PRIu64 " bytes, sha256 %s; %zu tables, %" PRIu64
               " audit events in %zu chains\n",
               a.dir, m.file, m.db_bytes, m.db_sha256, m.sum.ntables, events, m.sum.nheads);
    } else {
        fprintf(stderr, "gatehouse backup: %s\n", err.msg);
    }
    gh_backup_summary_free(&m.sum);
    gh_config_free(cfg);
    return rc == GH_OK ? 0 : 2;
}

/* ---- restore-drill ---------------------------------------------------------------- */

struct drill {
    unsigned failed;
    bool could_not_run; /* the server out of reach: nothing was checked (exit 2) */
    uint64_t events;    /* audit events verified */
    size_t chains;
};

static void check(struct drill *d, bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check(struct drill *d, bool ok, const char *what, const char *fmt, ...)
{
    char text[1024];
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* One line each: libpq's messages end in a newline of their own. */
    n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    for (char *p = text; *p; p++)
        if (*p == '\n') *p = ' ';
    printf("  %s %-12s %s\n", ok ? "PASS" : "FAIL", what, text);
    if (!ok) d->failed++;
}

static int copy_file(const char *from, const char *to, struct gh_err *err)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = GH_OK;
    ssize_t n;

    if (in >= 0) out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (in < 0 || out < 0) rc = gh_err_set(err, NULL, 0, 0, "%s: %s", from, strerror(errno));
    while (rc == GH_OK && (n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || write(out, buf, (size_t)n) != n)
            rc = gh_err_set(err, NULL, 0, 0, "copy to %s: %s", to, strerror(errno));
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return rc;
}

static void audit_report(const struct gh_audit_chain_report *r, void *arg)
{
    struct drill *d = arg;

    d->chains++;
    d->events += r->events;
    if (r->problem != GH_AUDIT_INTACT)
        check(d, false, "audit chain", "%s: seq %" PRIu64 ": %s", r->chain, r->seq, r->reason);
}

/* The restored copy's audit log, as `gatehouse audit verify` checks it. */
static void verify_audit(struct drill *d, const struct gh_store_params *params)
{
    struct gh_audit_verify_start *starts = NULL;
    size_t nstarts = 0, bad = 0;
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    int rc = gh_store_open(params, &st, &err);

    if (rc == GH_OK) rc = gh_audit_archive_heads(st, NULL, &starts, &nstarts, &err);
    if (rc == GH_OK)
        rc = gh_audit_verify_from(st, NULL, starts, nstarts, audit_report, d, &bad, &err);
    if (rc != GH_OK)
        check(d, false, "audit", "could not verify: %s", err.msg);
    else if (bad == 0)
        check(d, true, "audit", "%zu chains, %" PRIu64 " events and their checkpoints verify",
              d->chains, d->events);
    else
        check(d, false, "audit", "%zu of %zu chains fail verification", bad, d->chains);
    free(starts);
    if (st != NULL) gh_store_close(st);
}

/* The names of the sealed secrets, gathered first: a walk's callback may
 * not call into the store, and opening one does. */
struct names {
    struct gh_store_secret *v;
    size_t n;
};

static int add_name(const struct gh_store_secret *sec, void *arg)
{
    struct names *l = arg;
    struct gh_store_secret *v = realloc(l->v, (l->n + 1) * sizeof(*v));

    if (v == NULL) return GH_ERROR;
    l->v = v;
    memset(&v[l->n], 0, sizeof(v[l->n]));
    snprintf(v[l->n].tenant_id, sizeof(v[l->n].tenant_id), "%s", sec->tenant_id);
    snprintf(v[l->n].name, sizeof(v[l->n].name), "%s", sec->name);
    v[l->n++].kek_version = sec->kek_version;
    return GH_OK;
}

/* Every sealed secret of the restored copy opens with the master key the
 * config names: a backup is only as good as the key that opens it, and
 * the key is backed up apart (docs/operations.md). Values are wiped. */
static void open_secrets(struct drill *d, const struct gh_config *cfg,
                         const struct gh_store_params *params)
{
    struct names l = {0};
    struct gh_store *st = NULL;
    struct gh_secrets *sec = NULL;
    struct gh_err err = {0};
    uint8_t value[GH_SECRET_VALUE_MAX];
    size_t bad = 0, len;
    int rc = gh_store_open(params, &st, &err);

    if (rc == GH_OK) rc = gh_store_secrets_walk(st, NULL, add_name, &l, &err);
    if (rc != GH_OK) {
        check(d, false, "secrets", "could not list them: %s", err.msg[0] ? err.msg : "no memory");
        goto out;
    }
    if (l.n == 0) {
        check(d, true, "secrets", "none sealed in this backup");
        goto out;
    }
    sec = gh_secrets_open_ex(cfg, st, 0, &err);
    if (sec == NULL) {
        check(d, false, "secrets", "%zu sealed, but the master key cannot be opened: %s", l.n,
              err.msg);
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (gh_secrets_get(sec, l.v[i].tenant_id, l.v[i].name, value, sizeof(value), &len, &err) !=
            GH_OK) {
            if (bad++ == 0)
                check(d, false, "secrets", "%s/%s (master key version %u) does not open: %s",
                      l.v[i].tenant_id, l.v[i].name, (unsigned)l.v[i].kek_version, err.msg);
        }
        OPENSSL_cleanse(value, sizeof(value));
    }
    if (bad == 0)
        check(d, true, "secrets", "%zu sealed secrets open with the %s master key", l.n,
              gh_secrets_provider(sec));
    else if (bad > 1)
        check(d, false, "secrets", "%zu of %zu sealed secrets do not open", bad, l.n);
out:
    if (sec != NULL) gh_secrets_close(sec);
    if (st != NULL) gh_store_close(st);
    free(l.v);
}

static void compare_counts(struct drill *d, const struct gh_backup_summary *want,
                           const struct gh_backup_summary *got)
{
    unsigned bad = 0;

    for (size_t i = 0; i < want->ntables; i++) {
        const struct gh_backup_table *w = &want->tables[i];
        size_t j = 0;
        while (j < got->ntables && strcmp(got->tables[j].name, w->name) != 0)
            j++;
        if (j == got->ntables) {
            check(d, false, "counts", "table %s is missing", w->name);
            bad++;
        } else if (got->tables[j].rows != w->rows) {
            check(d, false, "counts", "table %s: %" PRIu64 " rows, the manifest says %" PRIu64,
                  w->name, got->tables[j].rows, w->rows);
            bad++;
        }
    }
    if (got->ntables != want->ntables) {
        check(d, false, "counts", "%zu tables, the manifest lists %zu", got->ntables,
              want->ntables);
        bad++;
    }
    if (bad == 0) check(d, true, "counts", "%zu tables match the manifest", want->ntables);
    bad = 0;
    for (size_t i = 0; i < want->nheads; i++) {
        const struct gh_backup_head *w = &want->heads[i];
        size_t j = 0;
        while (j < got->nheads && strcmp(got->heads[j].chain, w->chain) != 0)
            j++;
        if (j == got->nheads || got->heads[j].seq != w->seq ||
            strcmp(got->heads[j].hash, w->hash) != 0) {
            check(d, false, "audit heads",
                  "chain %s: head differs from the manifest (seq %" PRIu64 ")", w->chain, w->seq);
            bad++;
        }
    }
    if (got->nheads != want->nheads) {
        check(d, false, "audit heads", "%zu chains, the manifest lists %zu", got->nheads,
              want->nheads);
        bad++;
    }
    if (bad == 0) check(d, true, "audit heads", "%zu chain heads match the manifest", want->nheads);
}

static void remove_tree(const char *dir)
{
    static const char *const names[] = {GH_BACKUP_DB, GH_BACKUP_DB "-wal", GH_BACKUP_DB "-shm"};
    char path[PATH_MAX + 32];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The checks of a restored copy, the same for every engine: all through
 * the store interface on <params>. */
static void check_copy(struct drill *d, const struct gh_config *cfg,
                       const struct gh_store_params *params, const struct gh_backup_manifest *m,
                       const char *restored)
{
    struct gh_backup_summary got = {0};
    struct gh_err err = {0};
    char problem[256];
    int rc = gh_backup_summarize(params, &got, problem, sizeof(problem), &err);

    check(d, true, "restore", "%s", restored);
    /* The copy is opened as the gateway opens its store (the config's login
     * role, on PostgreSQL): a failure here is that, not the restore's. */
    if (rc != GH_OK) check(d, false, "open copy", "as the store's login role: %s", err.msg);
    if (rc == GH_OK) {
        check(d, problem[0] == '\0', "integrity", "%s",
              problem[0] ? problem : "the engine's integrity check is clean");
        compare_counts(d, &m->sum, &got);
        verify_audit(d, params);
        open_secrets(d, cfg, params);
    }
    gh_backup_summary_free(&got);
}

static void drill_sqlite(struct drill *d, const struct gh_config *cfg,
                         const struct gh_backup_manifest *m, const char *src)
{
    struct gh_store_params params = {.readers = 1};
    struct gh_err err = {0};
    char tmp[PATH_MAX], db[PATH_MAX + 16];
    const char *tmpdir = getenv("TMPDIR");

    snprintf(tmp, sizeof(tmp), "%s/gatehouse-drill-XXXXXX", tmpdir && tmpdir[0] ? tmpdir : "/tmp");
    if (mkdtemp(tmp) == NULL) {
        check(d, false, "restore", "mkdtemp %s: %s", tmp, strerror(errno));
        return;
    }
    snprintf(db, sizeof(db), "%s/%s", tmp, GH_BACKUP_DB);
    params.sqlite_path = db;
    if (copy_file(src, db, &err) != GH_OK)
        check(d, false, "restore", "%s", err.msg);
    else
        check_copy(d, cfg, &params, m, "copied to a temporary folder");
    remove_tree(tmp);
}

/* A scratch database of the config's server, restored with pg_restore and
 * checked through the store as the config's login role; dropped whatever
 * happened, and a failed drop is a failed drill (the copy holds everything
 * the store does). */
static void drill_postgres(struct drill *d, const struct gh_config *cfg,
                           const struct gh_backup_manifest *m, const char *src,
                           const char *admin_url)
{
    struct gh_store_postgres_drill *pd = NULL;
    struct gh_store_params params = {.pool = 1};
    struct gh_err err = {0};
    char *anyone = NULL, restored[256];
    int rc;

    if (cfg->store.postgres == NULL) {
        check(d, false, "restore",
              "the backup is of a PostgreSQL store: the config must name one (store.postgres)");
        return;
    }
    /* As `gatehouse postgres init`: without --admin-url, the config's
     * server and database as whoever runs the command. */
    rc = admin_url ? GH_OK : gh_store_postgres_url_anyone(cfg->store.postgres, &anyone, &err);
    if (rc == GH_OK)
        rc = gh_store_postgres_drill_restore(admin_url ? admin_url : anyone, cfg->store.postgres,
                                             src, &pd, &err);
    if (rc == GH_STORE_UNAVAILABLE) {
        /* Not a bad backup: the drill did not get to it. Say how it
         * connects, the likeliest thing to set right. */
        d->could_not_run = true;
        check(d, false, "restore",
              "%s (the drill connects with --admin-url, else to the config's server and "
              "database as PGUSER or the user running it, its password from PGPASSWORD or "
              "~/.pgpass: docs/operations.md)",
              err.msg);
    } else if (rc != GH_OK) {
        check(d, false, "restore", "%s", err.msg);
    } else {
        params.postgres_url = gh_store_postgres_drill_url(pd);
        snprintf(restored, sizeof(restored),
                 "restored into database %s (the backup is of PostgreSQL %s)",
                 gh_store_postgres_drill_name(pd),
                 m->server_version[0] ? m->server_version : "(version not recorded)");
        check_copy(d, cfg, &params, m, restored);
    }
    if (pd != NULL) {
        char name[64];
        bool created = gh_store_postgres_drill_created(pd);
        snprintf(name, sizeof(name), "%s", gh_store_postgres_drill_name(pd));
        err = (struct gh_err){0};
        if (gh_store_postgres_drill_drop(pd, &err) == GH_OK) {
            if (created) check(d, true, "cleanup", "database %s dropped", name);
        } else
            check(d, false, "cleanup",
                  "database %s could NOT be dropped: %s (it holds a copy of the store: "
                  "DROP DATABASE %s)",
                  name, err.msg, name);
    }
    free(anyone);
}

int gh_cmd_restore_drill(int argc, char **argv)
{
    struct args a = {0};
    struct gh_config *cfg;
    struct gh_backup_manifest m;
    struct drill d = {0};
    struct gh_err err = {0};
    char src[PATH_MAX], sha[65];
    uint64_t bytes = 0;
    int rc = parse_args("restore-drill", "--from", true, argc, argv, &a);

    if (rc >= 0) return rc;
    /* The config names the gatehouse the backup is for; loading it checks
     * that this binary can read it, as a restore would. */
    cfg = load_config("restore-drill", a.config);
    if (cfg == NULL) return 2;
    printf("restore drill of %s\n", a.dir);
    if (gh_backup_manifest_read(a.dir, &m, &err) != GH_OK) {
        char msg[1024];
        check(&d, false, "manifest", "%s", gh_err_format(&err, msg, sizeof(msg)));
        goto verdict;
    }
    check(&d, true, "manifest", "%s, %s, taken %s by gatehouse %s", GH_BACKUP_FORMAT, m.engine,
          m.created_at, m.version);
    snprintf(src, sizeof(src), "%s/%s", a.dir, m.file);
    if (gh_file_sha256("restore-drill", src, sha, &bytes, &err) != GH_OK) {
        check(&d, false, "file", "%s", err.msg);
        goto verdict;
    }
    check(&d, bytes == m.db_bytes && strcmp(sha, m.db_sha256) == 0, "file",
          "%s: %" PRIu64 " bytes, sha256 %s (manifest: %" PRIu64 " bytes, %s)", m.file, bytes, sha,
          m.db_bytes, m.db_sha256);
    if (d.failed) goto verdict;
    if (strcmp(m.engine, "postgres") == 0)
        drill_postgres(&d, cfg, &m, src, a.admin_url);
    else
        drill_sqlite(&d, cfg, &m, src);
verdict:
    printf("restore drill: %s\n", d.failed == 0 ? "PASS" : "FAIL");
    gh_backup_summary_free(&m.sum);
    gh_config_free(cfg);
    return d.could_not_run ? 2 : d.failed == 0 ? 0 : 1;
}
