/* `gatehouse postgres init -c FILE [--admin-url URL]`: creates the
 * PostgreSQL store's roles, schema, grants and row-level security policies
 * and applies its migrations (docs/postgres.md). The gateway's own login
 * role may create nothing, so this runs over another connection: the
 * administrator's URL, or by default the config's server and database as
 * whoever runs the command (PGUSER, ~/.pgpass, the OS user). Running it
 * again changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "store/store.h"
#include "store/store_postgres.h"

static int init(int argc, char **argv)
{
    const char *config = NULL, *admin_url = NULL;
    struct gh_config *cfg = NULL;
    struct gh_err err = {0};
    char msg[1024], login[128], dbname[128], *anyone = NULL;
    int applied = 0, version = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage("postgres");
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--admin-url") == 0 && i + 1 < argc)
            admin_url = argv[++i];
        else {
            fprintf(stderr, "gatehouse postgres init: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "gatehouse postgres init: missing -c FILE\n");
        return 2;
    }
    if (gh_config_load(config, &cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 2;
    }
    if (cfg->store.postgres == NULL) {
        fprintf(stderr,
                "gatehouse postgres init: %s: the store is not PostgreSQL "
                "(store: { postgres: URL })\n",
                config);
        gh_config_free(cfg);
        return 2;
    }
    rc = gh_store_postgres_url_user(cfg->store.postgres, login, sizeof(login), &err);
    /* Without --admin-url: the config's server and database, as whoever
     * runs this (the gateway's own role may not create roles). */
    if (rc == GH_OK && admin_url == NULL)
        rc = gh_store_postgres_url_anyone(cfg->store.postgres, &anyone, &err);
    if (rc == GH_OK)
        rc = gh_store_postgres_url_dbname(cfg->store.postgres, dbname, sizeof(dbname), &err);
    if (rc == GH_OK)
        rc = gh_store_postgres_init(admin_url ? admin_url : anyone, dbname, login, &applied,
                                    &version, &err);
    free(anyone);
    gh_config_free(cfg);
    if (rc != GH_OK) {
        fprintf(stderr, "gatehouse postgres init: %s\n", err.msg);
        return 1;
    }
    printf("postgres: roles, schema and policies in place for login role %s; applied %d "
           "migration(s), schema version %d\n",
           login, applied, version);
    return 0;
}

int gh_cmd_postgres(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "init") == 0) return init(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        gh_cli_usage("postgres");
        return 0;
    }
    fprintf(stderr, "gatehouse postgres: expected \"init\" (gatehouse postgres --help)\n");
    return 2;
}
