/* Operator commands that work on the store directly, on the node:
 *   gatehouse migrate -c FILE
 *   gatehouse admin bootstrap -c FILE [--name LABEL]
 *   gatehouse tenants create NAME [--plan P] | list | suspend T | activate T   (-c FILE)
 *   gatehouse keys create --tenant T [--role R]... [--scope S]... [--name N] [--ttl DUR]
 *   gatehouse keys list --tenant T | rotate --tenant T KEY [--grace DUR] | revoke --tenant T KEY
 * They share src/admin/ops.c with the admin API. A running gateway sees the
 * changes within a second (it polls the store's change counter). Keys are
 * printed once, alone on the last line, so scripts can take `tail -1`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ops.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/runtime.h"

struct opts {
    const char *config;
    const char *tenant;
    const char *name;
    const char *plan;
    const char *ttl;
    const char *grace;
    const char *roles[GH_STORE_MAX_ROLES];
    size_t nroles;
    const char *scopes[GH_STORE_MAX_SCOPES];
    size_t nscopes;
    const char *pos[4];
    size_t npos;
    int help;
};

static int parse_opts(int argc, char **argv, int first, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;
            return 0;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            dst = &o->config;
        else if (strcmp(a, "--tenant") == 0)
            dst = &o->tenant;
        else if (strcmp(a, "--name") == 0)
            dst = &o->name;
        else if (strcmp(a, "--plan") == 0)
            dst = &o->plan;
        else if (strcmp(a, "--ttl") == 0)
            dst = &o->ttl;
        else if (strcmp(a, "--grace") == 0)
            dst = &o->grace;
        else if (strcmp(a, "--role") == 0) {
            if (o->nroles == GH_STORE_MAX_ROLES) goto too_many;
            dst = &o->roles[o->nroles++];
        } else if (strcmp(a, "--scope") == 0) {
            if (o->nscopes == GH_STORE_MAX_SCOPES) goto too_many;
            dst = &o->scopes[o->nscopes++];
        } else if (a[0] == '-') {
            fprintf(stderr, "gatehouse: unknown option %s\n", a);
            return -1;
        } else {
            if (o->npos == 4) goto too_many;
            o->pos[o->npos++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gatehouse: %s needs a value\n", a);
            return -1;
        }
        *dst = argv[++i];
    }
    if (o->config == NULL) {
        fprintf(stderr, "gatehouse: missing -c FILE\n");
        return -1;
    }
    return 0;
too_many:
    fprintf(stderr, "gatehouse: too many arguments\n");
    return -1;
}

/* Loads the config and opens (and migrates) its store. */
static int open_store(const char *path, struct gh_config **cfg, struct gh_store **st)
{
    struct gh_err err = {0};
    char msg[1024];
    if (gh_config_load(path, cfg, &err) != GH_OK ||
        gh_runtime_open_store(*cfg, st, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        gh_config_free(*cfg);
        *cfg = NULL;
        return 1;
    }
    return 0;
}

static void close_store(struct gh_config *cfg, struct gh_store *st)
{
    if (st) gh_store_close(st);
    gh_config_free(cfg);
}

static int store_fail(const char *what, const struct gh_err *err)
{
    fprintf(stderr, "gatehouse: %s: %s\n", what, err->msg);
    return 1;
}

/* A tenant given by id or by name. */
static int find_tenant(struct gh_store *st, const char *ref, struct gh_store_tenant *t)
{
    struct gh_err err = {0};
    if (ref == NULL) {
        fprintf(stderr, "gatehouse: missing --tenant (id or name)\n");
        return 1;
    }
    if (gh_store_tenant_get(st, ref, t, &err) == GH_OK) return 0;
    if (gh_store_tenant_get_by_name(st, ref, t, &err) == GH_OK) return 0;
    fprintf(stderr, "gatehouse: no tenant \"%s\"\n", ref);
    return 1;
}

static void print_json(json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(doc);
}

int gh_cmd_migrate(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    int applied = 0, version = 0;

    if (parse_opts(argc, argv, 1, &o) != 0) return 2;
    if (o.help) {
        gh_cli_usage("migrate");
        return 0;
    }
    if (open_store(o.config, &cfg, &st) != 0) return 1;
    gh_store_migrate(st, &applied, &version, &err); /* already applied: reports 0 */
    printf("store %s: schema version %d\n", gh_runtime_store_label(cfg), version);
    close_store(cfg, st);
    return 0;
}

/* Creates a key and prints it; <k> has tenant, roles, scopes, name set. */
static int create_and_print(struct gh_config *cfg, struct gh_store *st, struct gh_store_key *k)
{
    struct gh_err err = {0};
    char key[GH_APIKEY_LEN + 1];
    struct gh_argon2_params ap = gh_ops_argon2(cfg);
    int rc = gh_ops_key_create(st, &ap, k, key, &err);

    if (rc != GH_OK) return store_fail("creating the key", &err);
    print_json(gh_ops_key_json(k));
    printf("The key is shown once; store it now:\n%s\n", key);
    gh_apikey_wipe(key, sizeof(key));
    return 0;
}

int gh_cmd_admin(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_key k;
    int rc;

    if (argc < 2 || strcmp(argv[1], "bootstrap") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            gh_cli_usage("admin");
            return 0;
        }
        fprintf(stderr, "usage: gatehouse admin bootstrap -c FILE [--name LABEL]\n");
        return 2;
    }
    if (parse_opts(argc, argv, 2, &o) != 0) return 2;
    if (o.help) {
        gh_cli_usage("admin");
        return 0;
    }
    if (open_store(o.config, &cfg, &st) != 0) return 1;
    memset(&k, 0, sizeof(k));
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", GH_STORE_SYSTEM_TENANT);
    snprintf(k.name, sizeof(k.name), "%s", o.name ? o.name : "operator");
    snprintf(k.roles[0], sizeof(k.roles[0]), "admin");
    k.nroles = 1;
    rc = create_and_print(cfg, st, &k);
    close_store(cfg, st);
    return rc;
}

int gh_cmd_tenants(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_tenant t;
    struct gh_err err = {0};
    const char *verb = argc >= 2 ? argv[1] : "";
    int rc = 0;

    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || argc < 2) {
        gh_cli_usage("tenants");
        return argc < 2 ? 2 : 0;
    }
    if (parse_opts(argc, argv, 2, &o) != 0) return 2;
    if (o.help) {
        gh_cli_usage("tenants");
        return 0;
    }
    if (open_store(o.config, &cfg, &st) != 0) return 1;
    memset(&t, 0, sizeof(t));
    if (strcmp(verb, "create") == 0) {
        if (o.npos != 1) {
            fprintf(stderr, "usage: gatehouse tenants create NAME [--plan P] -c FILE\n");
            rc = 2;
        } else {
            snprintf(t.name, sizeof(t.name), "%s", o.pos[0]);
            if (o.plan) snprintf(t.plan, sizeof(t.plan), "%s", o.plan);
            if (gh_store_tenant_create(st, &t, &err) != GH_OK)
                rc = store_fail("create", &err);
            else
                print_json(gh_ops_tenant_json(&t));
        }
    } else if (strcmp(verb, "list") == 0) {
        struct gh_store_page page = {.limit = GH_STORE_LIST_MAX};
        struct gh_store_tenant *out = calloc(GH_STORE_LIST_MAX, sizeof(*out));
        char cursor[GH_STORE_CURSOR_SIZE] = "";
        json_t *all = json_array();
        do {
            page.cursor = cursor[0] ? cursor : NULL;
            if (out == NULL ||
                gh_store_tenant_list(st, GH_STORE_TENANT_ANY, &page, out, &err) != GH_OK) {
                rc = store_fail("list", &err);
                break;
            }
            for (size_t i = 0; i < page.count; i++)
                json_array_append_new(all, gh_ops_tenant_json(&out[i]));
            snprintf(cursor, sizeof(cursor), "%s", page.next);
        } while (cursor[0]);
        free(out);
        print_json(all);
    } else if (strcmp(verb, "suspend") == 0 || strcmp(verb, "activate") == 0) {
        if (o.npos != 1 || find_tenant(st, o.pos[0], &t) != 0) {
            rc = o.npos != 1 ? 2 : 1;
            if (o.npos != 1) fprintf(stderr, "usage: gatehouse tenants %s TENANT -c FILE\n", verb);
        } else {
            struct gh_store_tenant_update upd = {
                .status = verb[0] == 's' ? GH_STORE_TENANT_SUSPENDED : GH_STORE_TENANT_ACTIVE};
            if (gh_store_tenant_update(st, t.id, &upd, &t, &err) != GH_OK)
                rc = store_fail(verb, &err);
            else
                print_json(gh_ops_tenant_json(&t));
        }
    } else {
        fprintf(stderr,
                "gatehouse tenants: unknown verb \"%s\" (create, list, suspend, activate)\n", verb);
        rc = 2;
    }
    close_store(cfg, st);
    return rc;
}

static int parse_dur_ms(const char *s, int64_t *out)
{
    uint64_t ms;
    if (gh_config_parse_duration_ms(s, &ms) != GH_OK) {
        fprintf(stderr, "gatehouse: invalid duration \"%s\" (use e.g. 30d, 24h, 90m)\n", s);
        return -1;
    }
    *out = (int64_t)ms;
    return 0;
}

int gh_cmd_keys(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_tenant t;
    struct gh_store_key k;
    struct gh_err err = {0};
    const char *verb = argc >= 2 ? argv[1] : "";
    int rc = 0;

    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || argc < 2) {
        gh_cli_usage("keys");
        return argc < 2 ? 2 : 0;
    }
    if (parse_opts(argc, argv, 2, &o) != 0) return 2;
    if (o.help) {
        gh_cli_usage("keys");
        return 0;
    }
    if (open_store(o.config, &cfg, &st) != 0) return 1;
    if (find_tenant(st, o.tenant, &t) != 0) {
        close_store(cfg, st);
        return 1;
    }
    memset(&k, 0, sizeof(k));
    if (strcmp(verb, "create") == 0) {
        int64_t ttl = 0;
        snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", t.id);
        if (o.name) snprintf(k.name, sizeof(k.name), "%s", o.name);
        for (size_t i = 0; i < o.nroles; i++)
            snprintf(k.roles[i], sizeof(k.roles[i]), "%s", o.roles[i]);
        for (size_t i = 0; i < o.nscopes; i++)
            snprintf(k.scopes[i], sizeof(k.scopes[i]), "%s", o.scopes[i]);
        k.nroles = o.nroles;
        k.nscopes = o.nscopes;
        if (o.ttl && parse_dur_ms(o.ttl, &ttl) != 0)
            rc = 2;
        else {
            if (ttl) k.expires_at = (int64_t)gh_wall_ms() + ttl;
            rc = create_and_print(cfg, st, &k);
        }
    } else if (strcmp(verb, "list") == 0) {
        struct gh_store_page page = {.limit = GH_STORE_LIST_MAX};
        struct gh_store_key *out = calloc(GH_STORE_LIST_MAX, sizeof(*out));
        char cursor[GH_STORE_CURSOR_SIZE] = "";
        json_t *all = json_array();
        do {
            page.cursor = cursor[0] ? cursor : NULL;
            if (out == NULL || gh_store_key_list(st, t.id, &page, out, &err) != GH_OK) {
                rc = store_fail("list", &err);
                break;
            }
            for (size_t i = 0; i < page.count; i++)
                json_array_append_new(all, gh_ops_key_json(&out[i]));
            snprintf(cursor, sizeof(cursor), "%s", page.next);
        } while (cursor[0]);
        free(out);
        print_json(all);
    } else if (strcmp(verb, "rotate") == 0 && o.npos == 1) {
        int64_t grace = (int64_t)cfg->auth.rotation_grace_ms, old_exp = 0;
        char key[GH_APIKEY_LEN + 1];
        struct gh_argon2_params ap = gh_ops_argon2(cfg);
        if (o.grace && parse_dur_ms(o.grace, &grace) != 0)
            rc = 2;
        else if (gh_ops_key_rotate(st, &ap, t.id, o.pos[0], grace, &k, key, &old_exp, &err) !=
                 GH_OK)
            rc = store_fail("rotate", &err);
        else {
            print_json(gh_ops_key_json(&k));
            printf("The old key expires at %lld (unix ms). The new key is shown once:\n%s\n",
                   (long long)old_exp, key);
            gh_apikey_wipe(key, sizeof(key));
        }
    } else if (strcmp(verb, "revoke") == 0 && o.npos == 1) {
        if (gh_store_key_set_status(st, t.id, o.pos[0], GH_STORE_KEY_REVOKED, &err) != GH_OK ||
            gh_store_key_get(st, t.id, o.pos[0], &k, &err) != GH_OK)
            rc = store_fail("revoke", &err);
        else
            print_json(gh_ops_key_json(&k));
    } else {
        gh_cli_usage("keys");
        rc = 2;
    }
    close_store(cfg, st);
    return rc;
}
