/* gatehouse secrets: the operator's side of sealed secrets (src/secrets):
 *   init                        make master key version 1 (local file or token)
 *   set NAME [--tenant T]       seal the value read from stdin (never argv)
 *   get NAME [--tenant T]       write the value to stdout (for scripts)
 *   list [--tenant T]           names, master key versions, times; no values
 *   delete NAME [--tenant T]
 *   status                      provider, current version, rows per version,
 *                               the last rotation
 *   rotate-master [--batch N] [--limit N]
 *   rotate-master --prepare     make the next version, in use nowhere yet
 *   rotate-master --unprepare   forget a prepared version whose key was lost
 * each with -c FILE. They open the store and the provider on this node; a
 * running gateway reads what they write at its next use of a secret. A
 * value set, read or deleted (secret.set, secret.read, secret.delete, on
 * the tenant's chain) and each step of a rotation (secrets.rotate_master,
 * on the system chain) is audited through the command's own audit writer
 * (cli_audit.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/cli_audit.h"
#include "config/config.h"
#include "core/runtime.h"
#include "secrets/secrets.h"
#include "store/store.h"

struct opts {
    const char *config;
    const char *tenant;
    const char *name;
    uint64_t batch, limit;
    bool prepare, unprepare;
    int help;
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '\0' || s[0] == '-' || v == 0) return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o, bool want_name)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;
            return 0;
        }
        if (strcmp(a, "--prepare") == 0 || strcmp(a, "--unprepare") == 0) {
            *(a[2] == 'p' ? &o->prepare : &o->unprepare) = true;
            continue;
        }
        if (a[0] == '-' && i + 1 >= argc) {
            fprintf(stderr, "gatehouse secrets: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            o->config = argv[++i];
        } else if (strcmp(a, "--tenant") == 0) {
            o->tenant = argv[++i];
        } else if (strcmp(a, "--batch") == 0 || strcmp(a, "--limit") == 0) {
            uint64_t *dst = a[2] == 'b' ? &o->batch : &o->limit;
            if (parse_u64(argv[++i], dst) != 0) {
                fprintf(stderr, "gatehouse secrets: %s needs a positive number\n", a);
                return -1;
            }
            /* Said, not cut quietly (rotate.c takes at most a store page a
             * transaction). */
            if (dst == &o->batch && o->batch > GH_STORE_LIST_MAX) {
                fprintf(stderr, "gatehouse secrets: --batch is at most %d\n", GH_STORE_LIST_MAX);
                return -1;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "gatehouse secrets: unknown option %s\n", a);
            return -1;
        } else if (want_name && o->name == NULL) {
            o->name = a;
        } else {
            fprintf(stderr, "gatehouse secrets: unexpected argument \"%s\"\n", a);
            return -1;
        }
    }
    if (o->config == NULL) {
        fprintf(stderr, "gatehouse secrets: missing -c FILE\n");
        return -1;
    }
    if (want_name && o->name == NULL) {
        fprintf(stderr, "gatehouse secrets: missing NAME\n");
        return -1;
    }
    return 0;
}

/* The config, the migrated store and (when <secrets>) the provider. */
struct env {
    struct gh_config *cfg;
    struct gh_store *store;
    struct gh_secrets *secrets;
};

/* <command>: one that changes something (NULL: one that only reads), not
 * run as root in the gateway's user's folders (gh_cli_as_owner). */
static int env_open(const char *config, const char *command, bool secrets, struct env *e)
{
    struct gh_err err = {0};
    char msg[1024];

    memset(e, 0, sizeof(*e));
    if (gh_config_load(config, &e->cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return -1;
    }
    if (command != NULL && gh_cli_as_owner(e->cfg, command) != 0) return -1;
    if (gh_runtime_open_store(e->cfg, &e->store, &err) != GH_OK ||
        (secrets && (e->secrets = gh_secrets_open(e->cfg, e->store, &err)) == NULL)) {
        fprintf(stderr, "gatehouse secrets: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        return -1;
    }
    return 0;
}

static void env_close(struct env *e)
{
    gh_secrets_close(e->secrets);
    gh_store_close(e->store);
    gh_config_free(e->cfg);
}

/* --tenant: "system" (the default), a tenant id, or a tenant's name. */
static int tenant_of(struct env *e, const char *arg, char out[GH_STORE_TENANT_ID_SIZE])
{
    struct gh_store_tenant t;
    struct gh_err err = {0};

    if (arg == NULL || strcmp(arg, GH_STORE_SYSTEM_TENANT) == 0) {
        snprintf(out, GH_STORE_TENANT_ID_SIZE, "%s", GH_STORE_SYSTEM_TENANT);
        return 0;
    }
    if (gh_store_tenant_find(e->store, arg, &t, &err) == GH_OK) {
        snprintf(out, GH_STORE_TENANT_ID_SIZE, "%s", t.id);
        return 0;
    }
    fprintf(stderr, "gatehouse secrets: --tenant %s: no such tenant\n", arg);
    return -1;
}

/* `secrets init` on a store a master key was already used with (its file
 * lost, or this node never given it): a new key would leave what is sealed
 * unreadable, and the nodes would disagree. 0, or 1 (said on stderr). */
static int refuse_second_key(const struct gh_config *cfg)
{
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    uint32_t in_use = 0, newest = 0;
    uint64_t sealed = 0;
    char msg[1024];
    int rc = 1;

    if (gh_runtime_open_store(cfg, &st, &err) != GH_OK ||
        gh_store_secrets_count(st, &sealed, &err) != GH_OK ||
        gh_store_secrets_kek_state(st, &in_use, &newest, &err) != GH_OK)
        fprintf(stderr, "gatehouse secrets init: %s\n", gh_err_format(&err, msg, sizeof(msg)));
    else if (sealed > 0 || newest > 0)
        fprintf(stderr,
                "gatehouse secrets init: this store already uses master key version %" PRIu32
                " (%" PRIu64 " sealed secret(s)): a new key would leave them unreadable. Copy the "
                "master key from a node of this store, or restore it from its backup\n",
                newest, sealed);
    else
        rc = 0;
    if (st != NULL) gh_store_close(st);
    return rc;
}

static int cmd_init(int argc, char **argv)
{
    struct gh_config *cfg = NULL;
    struct gh_err err = {0};
    char msg[1024];
    struct opts o;
    int rc = 1;

    if (parse_opts(argc, argv, &o, false) != 0) return 2;
    if (o.help) return gh_cli_usage("secrets"), 0;
    if (gh_config_load(o.config, &cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 2;
    }
    if (gh_cli_as_owner(cfg, "secrets init") != 0 || refuse_second_key(cfg) != 0) goto out;
    if (gh_secrets_init(cfg, &err) != GH_OK) {
        fprintf(stderr, "gatehouse secrets init: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        goto out;
    }
    if (strcmp(cfg->secrets.provider, "pkcs11") == 0)
        printf("master key version 1 is on token \"%s\" as %s-v1\n",
               cfg->secrets.pkcs11.token_label, cfg->secrets.pkcs11.key_label);
    else
        printf("created master key file %s (mode 0600); back it up apart from the store\n",
               cfg->secrets.master_key_file);
    rc = 0;
out:
    gh_config_free(cfg);
    return rc;
}

/* Reads the value from stdin (at most GH_SECRET_VALUE_MAX bytes; one final
 * newline is dropped, as `echo` and here-strings add it). */
static int read_value(uint8_t *buf, size_t *len)
{
    size_t n = 0, got;

    while ((got = fread(buf + n, 1, GH_SECRET_VALUE_MAX + 1 - n, stdin)) > 0) {
        n += got;
        if (n > GH_SECRET_VALUE_MAX) break;
    }
    if (n > GH_SECRET_VALUE_MAX) {
        fprintf(stderr, "gatehouse secrets set: the value is larger than %d bytes\n",
                GH_SECRET_VALUE_MAX);
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\n') n--;
    if (n > 0 && buf[n - 1] == '\r') n--;
    if (n == 0) {
        fprintf(stderr, "gatehouse secrets set: no value on stdin\n");
        return -1;
    }
    *len = n;
    return 0;
}

/* The audit action of a verb: a value read is audited too (it leaves the
 * store in clear). */
static const char *secret_action(const char *verb)
{
    return strcmp(verb, "set") == 0   ? "secret.set"
           : strcmp(verb, "get") == 0 ? "secret.read"
                                      : "secret.delete";
}

/* The gateway's own keys (docs/secrets.md: names reserved by prefix),
 * which it seals itself at its first start: a value set by hand is not a
 * key it can sign with, and the store's next start fails on it; one
 * deleted is a key lost. Read only. */
static bool own_key_name(const char *name)
{
    return strncmp(name, "audit-key/", 10) == 0 || strncmp(name, "signing-key/", 12) == 0;
}

static int cmd_set_get_delete(int argc, char **argv, const char *verb)
{
    char tenant[GH_STORE_TENANT_ID_SIZE], msg[1024], command[16], res[GH_AUDIT_RESOURCE_SIZE];
    uint8_t *buf = malloc(GH_SECRET_VALUE_MAX + 1);
    struct gh_cli_audit au = {0};
    struct gh_audit_event ev;
    struct gh_err err = {0};
    size_t len = 0;
    struct opts o;
    struct env e;
    int rc = 1, src, audited;

    if (buf == NULL) return 1;
    if (parse_opts(argc, argv, &o, true) != 0) {
        free(buf);
        return 2;
    }
    if (o.help) {
        free(buf);
        gh_cli_usage("secrets");
        return 0;
    }
    if (strcmp(verb, "get") != 0 && own_key_name(o.name)) {
        fprintf(stderr,
                "gatehouse secrets %s: %s is one of the gateway's own keys (names audit-key/ and "
                "signing-key/ are reserved): it can be read, not %s\n",
                verb, o.name, strcmp(verb, "set") == 0 ? "set" : "deleted");
        rc = 2;
        goto wipe;
    }
    if (strcmp(verb, "set") == 0 && read_value(buf, &len) != 0) goto wipe;
    snprintf(command, sizeof(command), "secrets %s", verb);
    if (env_open(o.config, strcmp(verb, "get") == 0 ? NULL : command, true, &e) != 0 ||
        tenant_of(&e, o.tenant, tenant) != 0 ||
        gh_cli_audit_open(&au, command, e.cfg, e.store, e.secrets) != 0)
        goto out;
    if (strcmp(verb, "set") == 0)
        src = gh_secrets_put(e.secrets, tenant, o.name, buf, len, &err);
    else if (strcmp(verb, "get") == 0)
        src = gh_secrets_get(e.secrets, tenant, o.name, buf, GH_SECRET_VALUE_MAX, &len, &err);
    else
        src = gh_secrets_delete(e.secrets, tenant, o.name, &err);
    snprintf(res, sizeof(res), "tenants/%s/secrets/%s", tenant, o.name);
    gh_cli_audit_begin(&au, &ev, secret_action(verb), tenant, res);
    audited = gh_cli_audit_end(&au, &ev, src);
    if (src != GH_OK) {
        fprintf(stderr, "gatehouse secrets %s: %s%s\n", verb,
                src == GH_STORE_NOT_FOUND ? "no such secret: " : "",
                src == GH_STORE_NOT_FOUND ? o.name : gh_err_format(&err, msg, sizeof(msg)));
        goto out;
    }
    /* Nothing unaudited leaves: a value whose reading is not on record
     * (strict mode) is not written out. */
    if (audited != 0) goto out;
    if (strcmp(verb, "get") == 0) {
        fwrite(buf, 1, len, stdout);
        fflush(stdout);
    } else {
        fprintf(stderr, "%s (%s, %s)\n", strcmp(verb, "set") == 0 ? "sealed" : "deleted", tenant,
                o.name);
    }
    rc = 0;
out:
    gh_cli_audit_close(&au);
    env_close(&e);
wipe:
    OPENSSL_cleanse(buf, GH_SECRET_VALUE_MAX + 1);
    free(buf);
    return rc;
}

static void fmt_time(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(out, size, "-");
    else
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int list_row(const struct gh_store_secret *s, void *arg)
{
    char upd[32];

    (void)arg;
    fmt_time(s->updated_at, upd, sizeof(upd));
    printf("%-24s %-48s v%-4" PRIu32 " %5zu bytes  updated %s\n", s->tenant_id, s->name,
           s->kek_version, s->ciphertext_len - 16, upd);
    return GH_OK;
}

static int cmd_list(int argc, char **argv)
{
    char tenant[GH_STORE_TENANT_ID_SIZE], msg[1024];
    struct gh_err err = {0};
    struct opts o;
    struct env e;
    int rc = 1;

    if (parse_opts(argc, argv, &o, false) != 0) return 2;
    if (o.help) return gh_cli_usage("secrets"), 0;
    /* Listing shows no value: the provider is not needed. */
    if (env_open(o.config, NULL, false, &e) != 0) goto out;
    if (o.tenant != NULL && tenant_of(&e, o.tenant, tenant) != 0) goto out;
    if (gh_store_secrets_walk(e.store, o.tenant ? tenant : NULL, list_row, NULL, &err) != GH_OK) {
        fprintf(stderr, "gatehouse secrets list: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        goto out;
    }
    rc = 0;
out:
    env_close(&e);
    return rc;
}

static int status_row(uint32_t version, uint64_t rows, void *arg)
{
    (void)arg;
    printf("  v%" PRIu32 ": %" PRIu64 " secret(s)\n", version, rows);
    return GH_OK;
}

static int cmd_status(int argc, char **argv)
{
    struct gh_store_secrets_rotation rot;
    struct gh_err err = {0};
    char msg[1024], t1[32], t2[32];
    uint32_t cur = 0, prepared = 0;
    bool held = false;
    uint64_t total = 0;
    struct opts o;
    struct env e;
    int rc = 1, r;

    if (parse_opts(argc, argv, &o, false) != 0) return 2;
    if (o.help) return gh_cli_usage("secrets"), 0;
    if (env_open(o.config, NULL, true, &e) != 0) goto out;
    if (gh_secrets_current_version(e.secrets, &cur, &err) != GH_OK ||
        gh_store_secrets_count(e.store, &total, &err) != GH_OK)
        goto fail;
    printf("provider: %s\n", gh_secrets_provider(e.secrets));
    if (strcmp(gh_secrets_provider(e.secrets), "local") == 0)
        printf("master key file: %s\n", e.cfg->secrets.master_key_file);
    else
        printf("token: %s, master keys %s-v<N>\n", e.cfg->secrets.pkcs11.token_label,
               e.cfg->secrets.pkcs11.key_label);
    printf("current master key version: %" PRIu32 "\n", cur);
    if (gh_secrets_prepared_version(e.secrets, &prepared, &held, &err) != GH_OK) goto fail;
    if (prepared != 0)
        printf("prepared master key version: %" PRIu32
               " (in use nowhere until `gatehouse secrets rotate-master`; %s)\n",
               prepared, held ? "held here" : "NOT held here: copy the master key file here");
    printf("sealed secrets: %" PRIu64 "\n", total);
    if (gh_store_secrets_versions(e.store, status_row, NULL, &err) != GH_OK) goto fail;
    r = gh_store_secrets_rotation_get(e.store, &rot, &err);
    if (r == GH_OK) {
        fmt_time(rot.started_at, t1, sizeof(t1));
        fmt_time(rot.finished_at, t2, sizeof(t2));
        printf("last rotation: v%" PRIu32 " -> v%" PRIu32 ", started %s, %s%s, %" PRIu64
               " re-wrapped\n",
               rot.from_version, rot.to_version, t1, rot.finished_at ? "finished " : "",
               rot.finished_at ? t2 : "PENDING", rot.rewrapped);
    } else if (r == GH_STORE_NOT_FOUND) {
        printf("last rotation: none\n");
    } else {
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "gatehouse secrets status: %s\n", gh_err_format(&err, msg, sizeof(msg)));
out:
    env_close(&e);
    return rc;
}

/* One secrets.rotate_master event on the system chain, durable (a no-op
 * when admin events are off). */
static int audit_rotation(struct gh_cli_audit *au, const char *phase,
                          const struct gh_secrets_rotate_result *r, bool ok)
{
    struct gh_audit_event ev;
    char from[16], to[16], n[24];

    snprintf(from, sizeof(from), "%" PRIu32, r->from_version);
    snprintf(to, sizeof(to), "%" PRIu32, r->to_version);
    snprintf(n, sizeof(n), "%" PRIu64, r->total);
    gh_cli_audit_begin(au, &ev, "secrets.rotate_master", "", "master_key");
    GH_AUDIT_SET(&ev, reason, gh_str_cstr(phase));
    /* Versions and counts are not secret: kept whole (16 characters). */
    gh_audit_params_add(&ev, GH_STR_LIT("phase"), gh_str_cstr(phase), 16);
    gh_audit_params_add(&ev, GH_STR_LIT("from_version"), gh_str_cstr(from), 16);
    gh_audit_params_add(&ev, GH_STR_LIT("to_version"), gh_str_cstr(to), 16);
    gh_audit_params_add(&ev, GH_STR_LIT("rewrapped"), gh_str_cstr(n), 16);
    return gh_cli_audit_end(au, &ev, ok ? GH_OK : GH_ERROR) == 0 ? GH_OK : GH_ERROR;
}

/* Before anything moves: no unaudited rotation. */
static int on_begin(const struct gh_secrets_rotate_result *res, void *arg, struct gh_err *err)
{
    if (audit_rotation(arg, res->started ? "started" : "resumed", res, true) != GH_OK)
        return gh_err_set(err, NULL, 0, 0,
                          "the rotation is recorded but was not audited, so nothing moved; run "
                          "again to resume");
    return GH_OK;
}

/* --prepare: the next version made and checked, in use nowhere. */
static int prepare(struct env *e, struct gh_cli_audit *as)
{
    struct gh_secrets_prepare_result pr;
    struct gh_secrets_rotate_result ev = {0};
    struct gh_err err = {0};
    char msg[1024], where[400];

    if (gh_secrets_prepare_master(e->secrets, &pr, &err) != GH_OK) {
        fprintf(stderr, "gatehouse secrets rotate-master --prepare: %s\n",
                gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    if (strcmp(gh_secrets_provider(e->secrets), "local") == 0)
        snprintf(where, sizeof(where), "copy the master key file %s to every node",
                 e->cfg->secrets.master_key_file);
    else
        snprintf(where, sizeof(where), "every node reaches it on the token");
    printf("master key version %" PRIu32 " %s (in use nowhere: values are still sealed under "
           "version %" PRIu32 "): %s, then run `gatehouse secrets rotate-master`\n",
           pr.version, pr.already ? "is prepared already" : "prepared", pr.from_version, where);
    if (pr.already) return 0;
    ev.from_version = pr.from_version;
    ev.to_version = pr.version;
    return audit_rotation(as, "prepared", &ev, true) == GH_OK ? 0 : 1;
}

/* --unprepare: the prepared version's check forgotten. */
static int unprepare(struct env *e, struct gh_cli_audit *as)
{
    struct gh_secrets_rotate_result ev = {0};
    struct gh_err err = {0};
    char msg[1024];
    uint32_t version = 0;

    if (gh_secrets_unprepare_master(e->secrets, &version, &err) != GH_OK) {
        fprintf(stderr, "gatehouse secrets rotate-master --unprepare: %s\n",
                gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    printf("master key version %" PRIu32 " is no longer prepared (nothing was sealed under it); "
           "`rotate-master --prepare` makes it again\n",
           version);
    ev.from_version = version - 1;
    ev.to_version = version;
    return audit_rotation(as, "unprepared", &ev, true) == GH_OK ? 0 : 1;
}

static int cmd_rotate(int argc, char **argv)
{
    struct gh_secrets_rotate_opts ro = {0};
    struct gh_secrets_rotate_result res;
    struct gh_cli_audit au = {0}, *as = &au;
    struct gh_err err = {0};
    char msg[1024];
    struct opts o;
    struct env e;
    int rc = 1, rr, audited = GH_OK;

    if (parse_opts(argc, argv, &o, false) != 0) return 2;
    if (o.help) return gh_cli_usage("secrets"), 0;
    ro.batch = (size_t)o.batch;
    ro.limit = o.limit;
    if (env_open(o.config, "secrets rotate-master", true, &e) != 0 ||
        gh_cli_audit_open(as, "secrets rotate-master", e.cfg, e.store, e.secrets) != 0)
        goto out;
    /* Whatever audit.mode says: no step of a rotation goes unaudited. */
    au.strict = true;
    if (o.prepare && o.unprepare) {
        fprintf(stderr, "gatehouse secrets rotate-master: --prepare or --unprepare, not both\n");
        rc = 2;
        goto out;
    }
    if (o.prepare || o.unprepare) {
        rc = o.prepare ? prepare(&e, as) : unprepare(&e, as);
        goto out;
    }
    ro.on_begin = on_begin;
    ro.arg = as;
    rr = gh_secrets_rotate_master(e.secrets, &ro, &res, &err);
    if (rr != GH_OK) {
        if (res.to_version != 0) audit_rotation(as, "failed", &res, false);
        fprintf(stderr, "gatehouse secrets rotate-master: %s\n",
                gh_err_format(&err, msg, sizeof(msg)));
        goto out;
    }
    if (res.finished) {
        audited = audit_rotation(as, "finished", &res, true);
        printf("rotation v%" PRIu32 " -> v%" PRIu32 " finished: %" PRIu64
               " re-wrapped now, %" PRIu64 " in all\n",
               res.from_version, res.to_version, res.rewrapped, res.total);
    } else {
        printf("rotation v%" PRIu32 " -> v%" PRIu32 " pending: %" PRIu64 " re-wrapped now, %" PRIu64
               " still under older versions; run again to resume\n",
               res.from_version, res.to_version, res.rewrapped, res.remaining);
    }
    rc = audited == GH_OK ? 0 : 1;
out:
    gh_cli_audit_close(as); /* writes what is queued */
    env_close(&e);
    return rc;
}

int gh_cmd_secrets(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";

    if (strcmp(verb, "init") == 0) return cmd_init(argc - 1, argv + 1);
    if (strcmp(verb, "set") == 0 || strcmp(verb, "get") == 0 || strcmp(verb, "delete") == 0)
        return cmd_set_get_delete(argc - 1, argv + 1, verb);
    if (strcmp(verb, "list") == 0) return cmd_list(argc - 1, argv + 1);
    if (strcmp(verb, "status") == 0) return cmd_status(argc - 1, argv + 1);
    if (strcmp(verb, "rotate-master") == 0) return cmd_rotate(argc - 1, argv + 1);
    gh_cli_usage("secrets");
    return strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 ? 0 : 2;
}
