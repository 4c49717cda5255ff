/* Backups and restore drills of the store (`gatehouse backup`,
 * `gatehouse restore-drill`; docs/operations.md).
 *
 * A backup is a folder: the store's copy and manifest.json, written last,
 * so a folder without a manifest is an unfinished backup. The copy is
 * gatehouse.db with SQLite (taken online as of one commit) and
 * gatehouse.dump with PostgreSQL (pg_dump's custom format of the gatehouse
 * schema, from one snapshot). The manifest says when and by which gatehouse
 * (and, with PostgreSQL, from which server version) it was taken, the
 * copy's size and SHA-256, the row count of every table and the head (seq,
 * hash) of every audit chain: read from the SQLite copy itself, or in the
 * very snapshot pg_dump read. The master key file and the audit archive
 * folder are not in it: they are backed up apart (docs/operations.md says
 * why).
 *
 * A drill checks a backup as a restore would use it: the copy against the
 * manifest, then a restore into a temporary place (a folder, or a scratch
 * database of the PostgreSQL server), the engine's integrity check, the
 * counts and chain heads against the manifest, the audit chains and
 * checkpoints with the verifier, and the sealed secrets with the master
 * key: every check through the store interface, whichever the engine. */
#ifndef GH_CLI_BACKUP_H
#define GH_CLI_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

#define GH_BACKUP_FORMAT   "gatehouse-backup/1"
#define GH_BACKUP_DB       "gatehouse.db"   /* SQLite's copy */
#define GH_BACKUP_DUMP     "gatehouse.dump" /* PostgreSQL's */
#define GH_BACKUP_MANIFEST "manifest.json"
#define GH_BACKUP_TABLES   64

struct gh_backup_table {
    char name[64];
    uint64_t rows;
};

struct gh_backup_head {
    char chain[32];
    uint64_t seq;
    char hash[65];
};

/* What a backup's copy holds: read from the copy, compared by drills. */
struct gh_backup_summary {
    struct gh_backup_table tables[GH_BACKUP_TABLES];
    size_t ntables;
    struct gh_backup_head *heads; /* malloc'd, by chain */
    size_t nheads;
};

struct gh_backup_manifest {
    char created_at[32];     /* RFC 3339, UTC */
    char version[64];        /* of the gatehouse that took it */
    char engine[16];         /* "sqlite" or "postgres" */
    char server_version[64]; /* PostgreSQL's; "" for SQLite */
    char file[32];           /* GH_BACKUP_DB or GH_BACKUP_DUMP, by engine */
    uint64_t db_bytes;
    char db_sha256[65];
    struct gh_backup_summary sum;
};

/* Opens the store of <params> (without migrating it) and fills <out>
 * (free it with gh_backup_summary_free). When <problem> is not NULL, also
 * runs the engine's integrity check and puts its first problem there ("" =
 * sound). */
int gh_backup_summarize(const struct gh_store_params *params, struct gh_backup_summary *out,
                        char *problem, size_t problem_size, struct gh_err *err);

/* The PostgreSQL store <st> dumped into the new file <path>, with m->sum
 * and m->server_version read in the dump's snapshot
 * (gh_store_postgres_backup). */
int gh_backup_take_postgres(struct gh_store *st, const char *path, struct gh_backup_manifest *m,
                            struct gh_err *err);
void gh_backup_summary_free(struct gh_backup_summary *s);

/* manifest.json in folder <dir>: written through a temporary file, fsync'd,
 * renamed; read back with every field checked. */
int gh_backup_manifest_write(const char *dir, const struct gh_backup_manifest *m,
                             struct gh_err *err);
int gh_backup_manifest_read(const char *dir, struct gh_backup_manifest *m, struct gh_err *err);

#endif
