/* Operator commands that work on the store directly, on the node:
 *   gatehouse migrate -c FILE
 *   gatehouse admin bootstrap -c FILE [--name LABEL]
 *   gatehouse tenants create NAME [--plan P] | list | suspend T | activate T   (-c FILE)
 *   gatehouse keys create --tenant T [--role R]... [--scope S]... [--name N] [--ttl DUR]
 *   gatehouse keys list --tenant T | rotate --tenant T KEY [--grace DUR] | revoke --tenant T KEY
 * They share src/admin/ops.c with the admin API. A running gateway sees the
 * changes within a second (it polls the store's change counter). Keys are
 * printed once, alone on the last line, so scripts can take `tail -1`.
 * Each change is audited as the admin API audits it (cli_audit.h), and
 * sends the tenant's webhook event the API sends (key.created, key.rotated,
 * key.revoked, tenant.suspended). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ops.h"
#include "cli/cli.h"
#include "cli/cli_audit.h"
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

/* Loads the config and opens (and migrates) its store; for a <command>
 * that changes something (NULL: one that only reads), not as root in the
 * gateway's user's folders (gh_cli_as_owner). */
static int open_store(const char *path, const char *command, struct gh_config **cfg,
                      struct gh_store **st)
{
    struct gh_err err = {0};
    char msg[1024];

    if (gh_config_load(path, cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    if ((command != NULL && gh_cli_as_owner(*cfg, command) != 0) ||
        gh_runtime_open_store(*cfg, st, &err) != GH_OK) {
        if (err.msg[0]) fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
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
    if (gh_store_tenant_find(st, ref, t, &err) == GH_OK) return 0;
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

/* The options of a change as its audit event's parameters, named as
 * given; repeated ones (--role, --scope) as a JSON array, as the admin API
 * records a body's "roles". */
static void audit_list(const struct gh_cli_audit *au, struct gh_audit_event *ev, const char *name,
                       const char *const *items, size_t n)
{
    json_t *arr = json_array();
    char *text;

    if (n == 0 || arr == NULL) {
        json_decref(arr);
        return;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(items[i]));
    text = json_dumps(arr, JSON_COMPACT);
    if (text) gh_cli_audit_param(au, ev, name, text);
    free(text);
    json_decref(arr);
}

static void audit_opts(const struct gh_cli_audit *au, struct gh_audit_event *ev,
                       const struct opts *o)
{
    if (o->name) gh_cli_audit_param(au, ev, "name", o->name);
    if (o->plan) gh_cli_audit_param(au, ev, "plan", o->plan);
    audit_list(au, ev, "roles", o->roles, o->nroles);
    audit_list(au, ev, "scopes", o->scopes, o->nscopes);
    if (o->ttl) gh_cli_audit_param(au, ev, "ttl", o->ttl);
    if (o->grace) gh_cli_audit_param(au, ev, "grace", o->grace);
}

static void resource_of(char *out, size_t size, const char *tenant, const char *key)
{
    snprintf(out, size, "tenants/%s%s%s", tenant, key ? "/keys/" : "", key ? key : "");
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
    if (open_store(o.config, "migrate", &cfg, &st) != 0) return 1;
    gh_store_migrate(st, &applied, &version, &err); /* already applied: reports 0 */
    printf("store %s: schema version %d\n", gh_runtime_store_label(cfg), version);
    close_store(cfg, st);
    return 0;
}

/* Creates a key, audits it (key.create, with <o>'s options), sends
 * key.created and prints the key; <k> has tenant, roles, scopes, name set. */
static int create_and_print(struct gh_config *cfg, struct gh_store *st, struct gh_cli_audit *au,
                            const struct opts *o, struct gh_store_key *k)
{
    struct gh_err err = {0};
    struct gh_audit_event ev;
    char key[GH_APIKEY_LEN + 1], res[GH_AUDIT_RESOURCE_SIZE];
    struct gh_argon2_params ap = gh_ops_argon2(cfg);
    int rc = gh_ops_key_create(st, &ap, k, key, &err), audited;

    resource_of(res, sizeof(res), k->tenant_id, rc == GH_OK ? k->id : NULL);
    gh_cli_audit_begin(au, &ev, "key.create", k->tenant_id, res);
    audit_opts(au, &ev, o);
    audited = gh_cli_audit_end(au, &ev, rc);
    if (rc != GH_OK) return store_fail("creating the key", &err);
    gh_ops_emit_key_event(st, NULL, k->tenant_id, "key.created", k->id, NULL);
    print_json(gh_ops_key_json(k));
    printf("The key is shown once; store it now:\n%s\n", key);
    gh_apikey_wipe(key, sizeof(key));
    return audited;
}

int gh_cmd_admin(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_key k;
    struct gh_cli_audit au;
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
    if (open_store(o.config, "admin bootstrap", &cfg, &st) != 0) return 1;
    if (gh_cli_audit_open(&au, "admin bootstrap", cfg, st, NULL) != 0) {
        close_store(cfg, st);
        return 1;
    }
    memset(&k, 0, sizeof(k));
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", GH_STORE_SYSTEM_TENANT);
    snprintf(k.name, sizeof(k.name), "%s", o.name ? o.name : "operator");
    snprintf(k.roles[0], sizeof(k.roles[0]), "admin");
    k.nroles = 1;
    rc = create_and_print(cfg, st, &au, &o, &k);
    gh_cli_audit_close(&au);
    close_store(cfg, st);
    return rc;
}

/* Every page of a list, printed as one JSON array: <fetch> fills a page
 * of up to GH_STORE_LIST_MAX items of <size> bytes; <view> makes one's JSON. */
typedef int (*list_fetch)(struct gh_store *st, const char *tenant, struct gh_store_page *page,
                          void *out, struct gh_err *err);
static int print_all(struct gh_store *st, const char *tenant, size_t size, list_fetch fetch,
                     json_t *(*view)(const void *item))
{
    struct gh_store_page page = {.limit = GH_STORE_LIST_MAX};
    char *out = calloc(GH_STORE_LIST_MAX, size);
    char cursor[GH_STORE_CURSOR_SIZE] = "";
    struct gh_err err = {0};
    json_t *all = json_array();
    int rc = 0;

    do {
        page.cursor = cursor[0] ? cursor : NULL;
        if (out == NULL || fetch(st, tenant, &page, out, &err) != GH_OK) {
            rc = store_fail("list", &err);
            break;
        }
        for (size_t i = 0; i < page.count; i++)
            json_array_append_new(all, view(out + i * size));
        snprintf(cursor, sizeof(cursor), "%s", page.next);
    } while (cursor[0]);
    free(out);
    print_json(all);
    return rc;
}

static int fetch_tenants(struct gh_store *st, const char *tenant, struct gh_store_page *page,
                         void *out, struct gh_err *err)
{
    (void)tenant;
    return gh_store_tenant_list(st, GH_STORE_TENANT_ANY, page, out, err);
}

static int fetch_keys(struct gh_store *st, const char *tenant, struct gh_store_page *page,
                      void *out, struct gh_err *err)
{
    return gh_store_key_list(st, tenant, page, out, err);
}

static json_t *tenant_view(const void *t)
{
    return gh_ops_tenant_json(t);
}

static json_t *key_view(const void *k)
{
    return gh_ops_key_json(k);
}

/* `tenants create|suspend|activate`, audited as tenant.create,
 * tenant.suspend, tenant.activate. */
static int change_tenant(struct gh_store *st, struct gh_cli_audit *au, const char *verb,
                         const struct opts *o)
{
    struct gh_store_tenant t;
    struct gh_audit_event ev;
    struct gh_err err = {0};
    char action[32], res[GH_AUDIT_RESOURCE_SIZE];
    int rc, audited;

    memset(&t, 0, sizeof(t));
    snprintf(action, sizeof(action), "tenant.%s", verb);
    if (strcmp(verb, "create") == 0) {
        snprintf(t.name, sizeof(t.name), "%s", o->pos[0]);
        if (o->plan) snprintf(t.plan, sizeof(t.plan), "%s", o->plan);
        rc = gh_store_tenant_create(st, &t, &err);
        /* Not yet a tenant: the record goes to the system chain, as the
         * API's POST /v1/tenants does. */
        gh_cli_audit_begin(au, &ev, action, "", rc == GH_OK ? "" : "tenants");
        if (rc == GH_OK) {
            resource_of(res, sizeof(res), t.id, NULL);
            GH_AUDIT_SET(&ev, resource, gh_str_cstr(res));
        }
        gh_cli_audit_param(au, &ev, "name", o->pos[0]);
        if (o->plan) gh_cli_audit_param(au, &ev, "plan", o->plan);
    } else {
        struct gh_store_tenant_update upd = {.status = verb[0] == 's' ? GH_STORE_TENANT_SUSPENDED
                                                                      : GH_STORE_TENANT_ACTIVE};
        if (find_tenant(st, o->pos[0], &t) != 0) return 1;
        rc = gh_ops_tenant_update(st, NULL, t.id, &upd, &t, &err);
        resource_of(res, sizeof(res), t.id, NULL);
        gh_cli_audit_begin(au, &ev, action, t.id, res);
    }
    audited = gh_cli_audit_end(au, &ev, rc);
    if (rc != GH_OK) return store_fail(verb, &err);
    print_json(gh_ops_tenant_json(&t));
    return audited;
}

int gh_cmd_tenants(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_cli_audit au;
    const char *verb = argc >= 2 ? argv[1] : "";
    char command[32];
    int rc;

    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || argc < 2) {
        gh_cli_usage("tenants");
        return argc < 2 ? 2 : 0;
    }
    if (parse_opts(argc, argv, 2, &o) != 0) return 2;
    if (o.help) {
        gh_cli_usage("tenants");
        return 0;
    }
    if (strcmp(verb, "list") != 0 && strcmp(verb, "create") != 0 && strcmp(verb, "suspend") != 0 &&
        strcmp(verb, "activate") != 0) {
        fprintf(stderr,
                "gatehouse tenants: unknown verb \"%s\" (create, list, suspend, activate)\n", verb);
        return 2;
    }
    if (strcmp(verb, "list") != 0 && o.npos != 1) {
        if (strcmp(verb, "create") == 0)
            fprintf(stderr, "usage: gatehouse tenants create NAME [--plan P] -c FILE\n");
        else
            fprintf(stderr, "usage: gatehouse tenants %s TENANT -c FILE\n", verb);
        return 2;
    }
    snprintf(command, sizeof(command), "tenants %s", verb);
    if (open_store(o.config, strcmp(verb, "list") == 0 ? NULL : command, &cfg, &st) != 0) return 1;
    if (strcmp(verb, "list") == 0) {
        rc = print_all(st, NULL, sizeof(struct gh_store_tenant), fetch_tenants, tenant_view);
    } else {
        rc = gh_cli_audit_open(&au, command, cfg, st, NULL);
        if (rc == 0) rc = change_tenant(st, &au, verb, &o);
        gh_cli_audit_close(&au);
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

/* `keys create`. */
static int create_key(struct gh_config *cfg, struct gh_store *st, struct gh_cli_audit *au,
                      const struct gh_store_tenant *t, const struct opts *o)
{
    struct gh_store_key k;
    int64_t ttl = 0;

    memset(&k, 0, sizeof(k));
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", t->id);
    if (o->name) snprintf(k.name, sizeof(k.name), "%s", o->name);
    for (size_t i = 0; i < o->nroles; i++)
        snprintf(k.roles[i], sizeof(k.roles[i]), "%s", o->roles[i]);
    for (size_t i = 0; i < o->nscopes; i++)
        snprintf(k.scopes[i], sizeof(k.scopes[i]), "%s", o->scopes[i]);
    k.nroles = o->nroles;
    k.nscopes = o->nscopes;
    if (o->ttl && parse_dur_ms(o->ttl, &ttl) != 0) return 2;
    if (ttl) k.expires_at = (int64_t)gh_wall_ms() + ttl;
    return create_and_print(cfg, st, au, o, &k);
}

/* `keys rotate KEY`, audited as key.rotate. */
static int rotate_key(struct gh_config *cfg, struct gh_store *st, struct gh_cli_audit *au,
                      const struct gh_store_tenant *t, const struct opts *o)
{
    int64_t grace = (int64_t)cfg->auth.rotation_grace_ms, old_exp = 0;
    struct gh_argon2_params ap = gh_ops_argon2(cfg);
    char key[GH_APIKEY_LEN + 1], res[GH_AUDIT_RESOURCE_SIZE];
    struct gh_audit_event ev;
    struct gh_store_key k;
    struct gh_err err = {0};
    int rc, audited;

    if (o->grace && parse_dur_ms(o->grace, &grace) != 0) return 2;
    rc = gh_ops_key_rotate(st, &ap, t->id, o->pos[0], grace, &k, key, &old_exp, &err);
    /* The key rotated, as the API's POST .../keys/{k}/rotate names it. */
    resource_of(res, sizeof(res), t->id, o->pos[0]);
    gh_cli_audit_begin(au, &ev, "key.rotate", t->id, res);
    audit_opts(au, &ev, o);
    audited = gh_cli_audit_end(au, &ev, rc);
    if (rc != GH_OK) return store_fail("rotate", &err);
    gh_ops_emit_key_event(st, NULL, t->id, "key.rotated", k.id, o->pos[0]);
    print_json(gh_ops_key_json(&k));
    printf("The old key expires at %lld (unix ms). The new key is shown once:\n%s\n",
           (long long)old_exp, key);
    gh_apikey_wipe(key, sizeof(key));
    return audited;
}

/* `keys revoke KEY`, audited as key.revoke. */
static int revoke_key(struct gh_store *st, struct gh_cli_audit *au, const struct gh_store_tenant *t,
                      const char *key_id)
{
    char res[GH_AUDIT_RESOURCE_SIZE];
    struct gh_audit_event ev;
    struct gh_store_key k;
    struct gh_err err = {0};
    int rc = gh_ops_key_revoke(st, NULL, t->id, key_id, &k, &err), audited;

    resource_of(res, sizeof(res), t->id, key_id);
    gh_cli_audit_begin(au, &ev, "key.revoke", t->id, res);
    audited = gh_cli_audit_end(au, &ev, rc);
    if (rc != GH_OK) return store_fail("revoke", &err);
    print_json(gh_ops_key_json(&k));
    return audited;
}

int gh_cmd_keys(int argc, char **argv)
{
    struct opts o;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_tenant t;
    struct gh_cli_audit au;
    const char *verb = argc >= 2 ? argv[1] : "";
    bool list = strcmp(verb, "list") == 0, create = strcmp(verb, "create") == 0;
    char command[32];
    int rc;

    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || argc < 2) {
        gh_cli_usage("keys");
        return argc < 2 ? 2 : 0;
    }
    if (parse_opts(argc, argv, 2, &o) != 0) return 2;
    if (o.help) {
        gh_cli_usage("keys");
        return 0;
    }
    if (!list && !create &&
        !((strcmp(verb, "rotate") == 0 || strcmp(verb, "revoke") == 0) && o.npos == 1)) {
        gh_cli_usage("keys");
        return 2;
    }
    snprintf(command, sizeof(command), "keys %s", verb);
    if (open_store(o.config, list ? NULL : command, &cfg, &st) != 0) return 1;
    if (find_tenant(st, o.tenant, &t) != 0) {
        close_store(cfg, st);
        return 1;
    }
    if (list) {
        rc = print_all(st, t.id, sizeof(struct gh_store_key), fetch_keys, key_view);
    } else {
        rc = gh_cli_audit_open(&au, command, cfg, st, NULL);
        if (rc == 0 && create)
            rc = create_key(cfg, st, &au, &t, &o);
        else if (rc == 0 && strcmp(verb, "rotate") == 0)
            rc = rotate_key(cfg, st, &au, &t, &o);
        else if (rc == 0)
            rc = revoke_key(st, &au, &t, o.pos[0]);
        gh_cli_audit_close(&au);
    }
    close_store(cfg, st);
    return rc;
}
