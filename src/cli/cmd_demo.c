/* `gatehouse demo`: the gateway on its built-in config, in front of the demo
 * upstream, with curl lines to try. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/ops.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/log.h"
#include "core/runtime.h"

/* Creates the tenant "demo" (its id into <tenant>), a developer key with
 * scope orders:read, and an operator key (role admin on the system tenant)
 * for the admin API lines. */
static int demo_tenant_key(const struct gh_config *cfg, char key[GH_APIKEY_LEN + 1],
                           char admin[GH_APIKEY_LEN + 1], char tenant[GH_STORE_TENANT_ID_SIZE],
                           struct gh_err *err)
{
    struct gh_store *st = NULL;
    struct gh_store_tenant t;
    struct gh_store_key k;
    struct gh_argon2_params ap = gh_ops_argon2(cfg);
    int rc;

    if (gh_runtime_open_store(cfg, &st, err) != GH_OK) return GH_ERROR;
    memset(&t, 0, sizeof(t));
    memset(&k, 0, sizeof(k));
    snprintf(t.name, sizeof(t.name), "demo");
    rc = gh_store_tenant_create(st, &t, err);
    if (rc == GH_OK) {
        snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", t.id);
        snprintf(k.name, sizeof(k.name), "demo key");
        snprintf(k.roles[0], sizeof(k.roles[0]), "developer");
        snprintf(k.scopes[0], sizeof(k.scopes[0]), "orders:read");
        k.nroles = k.nscopes = 1;
        rc = gh_ops_key_create(st, &ap, &k, key, err);
    }
    if (rc == GH_OK) {
        snprintf(tenant, GH_STORE_TENANT_ID_SIZE, "%s", t.id);
        memset(&k, 0, sizeof(k));
        snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", GH_STORE_SYSTEM_TENANT);
        snprintf(k.name, sizeof(k.name), "demo operator");
        snprintf(k.roles[0], sizeof(k.roles[0]), "admin");
        k.nroles = 1;
        rc = gh_ops_key_create(st, &ap, &k, admin, err);
    }
    gh_store_close(st);
    return rc == GH_OK ? GH_OK : GH_ERROR;
}

/* Removes the entries of folder <dir> (files, and the files of its
 * folders: the audit archive), then <dir>: the demo's state, which holds
 * keys and a master key file, does not outlive the demo in /tmp. Symbolic
 * links are removed, never followed. */
static void remove_state(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX];
    struct stat st;

    if (d == NULL) return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (depth < 2) remove_state(path, depth + 1);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

int gh_cmd_demo(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *admin_listen = NULL;
    struct gh_config *cfg = NULL;
    struct gh_runtime rt;
    struct gh_err err = {0};
    char msg[1024];
    unsigned port;
    int rc;
    char nc_target[80];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage("demo");
            return 0;
        }
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--admin") == 0 && i + 1 < argc) {
            admin_listen = argv[++i];
        } else {
            fprintf(stderr, "gatehouse demo: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    {
        /* "host:port" -> "host port" for nc. */
        const char *colon = strrchr(listen, ':');
        snprintf(nc_target, sizeof(nc_target), "%.*s %s", colon ? (int)(colon - listen) : 0, listen,
                 colon ? colon + 1 : listen);
    }
    port = gh_demo_upstream_start();
    if (port == 0) {
        fprintf(stderr, "gatehouse demo: cannot start the demo upstream\n");
        return 1;
    }
    if (gh_config_demo(listen, admin_listen, (uint16_t)port, &cfg, &err) != GH_OK) {
        fprintf(stderr, "gatehouse demo: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    /* The demo's state lives in a fresh temporary folder: a demo tenant
     * and a key for it, printed below. */
    char dir[] = "/tmp/gatehouse-demo-XXXXXX", dbpath[64], archpath[64], key[GH_APIKEY_LEN + 1];
    char admin[GH_APIKEY_LEN + 1], tenant[GH_STORE_TENANT_ID_SIZE];
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "gatehouse demo: cannot create a temporary folder\n");
        gh_config_free(cfg);
        return 1;
    }
    snprintf(dbpath, sizeof(dbpath), "%s/gatehouse.db", dir);
    free(cfg->store.sqlite);
    cfg->store.sqlite = strdup(dbpath);
    /* Audit archives beside the store, not in the folder the demo runs from. */
    snprintf(archpath, sizeof(archpath), "%s/audit-archive", dir);
    free(cfg->audit.archive_dir);
    cfg->audit.archive_dir = strdup(archpath);
    /* And the master key file beside the store (made at the first start). */
    free(cfg->secrets.master_key_file);
    if (asprintf(&cfg->secrets.master_key_file, "%s.master", dbpath) < 0)
        cfg->secrets.master_key_file = NULL;
    rc = 1;
    if (cfg->store.sqlite == NULL || cfg->audit.archive_dir == NULL ||
        cfg->secrets.master_key_file == NULL) {
        fprintf(stderr, "gatehouse demo: out of memory\n");
        gh_config_free(cfg);
        goto out;
    }
    if (demo_tenant_key(cfg, key, admin, tenant, &err) != GH_OK) {
        fprintf(stderr, "gatehouse demo: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        gh_config_free(cfg);
        goto out;
    }
    if (gh_runtime_start(&rt, cfg, NULL, &err) != GH_OK) {
        fprintf(stderr, "gatehouse demo: %s\n", gh_err_format(&err, msg, sizeof(msg)));
        gh_runtime_release(&rt);
        goto out;
    }
    printf(
        "\n"
        "gatehouse demo is running: the gateway on http://%s, a demo upstream on\n"
        "127.0.0.1:%u, the admin listener on http://%s, state in %s (removed\n"
        "when the demo stops).\n\n"
        "A key for the tenant \"demo\" (role developer, scope orders:read), shown once:\n\n"
        "  KEY=%s\n\n"
        "Try:\n\n"
        "  curl -i http://%s/hello                         # open route: proxied, see the headers "
        "the upstream got\n"
        "  curl -i http://%s/orders                        # protected route without a key: 401\n"
        "  curl -i -H \"Authorization: Bearer $KEY\" http://%s/orders   # 200, with "
        "Gatehouse-Tenant etc. upstream\n"
        "  curl -i -H \"X-API-Key: $KEY\" http://%s/orders/42\n"
        "  for i in $(seq 12); do curl -s -o /dev/null -w '%%{http_code} ' -H \"X-API-Key: $KEY\" "
        "http://%s/orders; done; echo\n"
        "                                                  # 5/s, burst 10 per tenant: then 429\n"
        "  curl -i http://%s/status/503                    # upstream status passes through\n"
        "  curl -i -X POST --data-binary @README.md http://%s/upload\n"
        "  printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1\\r\\nTransfer-Encoding: "
        "chunked\\r\\n\\r\\n' | nc -q1 %s\n"
        "                                                  # request smuggling attempt: 400\n"
        "  curl -s http://%s/readyz\n"
        "  curl -s http://%s/metrics | grep '^gatehouse_http_requests_total'   # Prometheus\n\n",
        listen, port, rt.snap->cfg->admin.addr.text, dir, key, listen, listen, listen, listen,
        listen, listen, listen, nc_target, rt.snap->cfg->admin.addr.text,
        rt.snap->cfg->admin.addr.text);
    printf(
        "An operator key (role admin) for the admin API, and the demo tenant's id:\n\n"
        "  ADMIN=%s\n  T=%s\n\n"
        "Signed webhooks (docs/webhooks.md): register an endpoint (the demo upstream; its\n"
        "secret whsec_... is shown once), publish an event, see the signed delivery:\n\n"
        "  curl -s -H \"Authorization: Bearer $ADMIN\" -d '{\"url\": \"http://127.0.0.1:%u/hook\", "
        "\"events\": [\"order.*\"]}' http://%s/v1/tenants/$T/webhooks\n"
        "  curl -s -H \"Authorization: Bearer $ADMIN\" -d '{\"tenant\": \"'$T'\", \"type\": "
        "\"order.created\", \"payload\": {\"order\": 42}}' http://%s/v1/events\n"
        "  curl -s -H \"Authorization: Bearer $ADMIN\" http://%s/v1/tenants/$T/webhooks   # then "
        ".../webhooks/ID/deliveries\n\n"
        "An inbound webhook checked before the upstream sees it (route /webhooks/github,\n"
        "GitHub's X-Hub-Signature-256 with the secret %s):\n\n"
        "  BODY='{\"action\":\"opened\"}'; SIG=$(printf %%s \"$BODY\" | openssl dgst -sha256 -hmac "
        "%s "
        "| cut -d' ' -f2)\n"
        "  curl -i -H \"X-Hub-Signature-256: sha256=$SIG\" -H \"X-GitHub-Delivery: "
        "$RANDOM$RANDOM\" "
        "-d \"$BODY\" http://%s/webhooks/github   # 200\n"
        "  curl -i -H \"X-Hub-Signature-256: sha256=$SIG\" -H \"X-GitHub-Delivery: 1\" -d "
        "'{\"action\":\"closed\"}' http://%s/webhooks/github   # 401 invalid_signature\n\n"
        "Access log lines (JSON) follow below. Ctrl-C stops.\n\n",
        admin, tenant, port, rt.snap->cfg->admin.addr.text, rt.snap->cfg->admin.addr.text,
        rt.snap->cfg->admin.addr.text, GH_CONFIG_DEMO_WEBHOOK_SECRET, GH_CONFIG_DEMO_WEBHOOK_SECRET,
        listen, listen);
    gh_apikey_wipe(key, sizeof(key));
    gh_apikey_wipe(admin, sizeof(admin));
    fflush(stdout);
    rc = gh_runtime_run(&rt);
    gh_runtime_release(&rt);
out:
    remove_state(dir, 0);
    return rc;
}
