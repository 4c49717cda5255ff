"""The CLI run as root next to a gateway that runs as its own user (the
systemd unit's layout, docs/operations.md): commands that change the store
or make files refuse to, naming the user to run them as, since what they
made would be root's and the gateway could not open it; commands that only
read go on. `audit verify` tells an archive file it may not read (an error,
exit 2) from a missing one (tampering, exit 1). `secrets init` refuses to
make a second master key for a store that already uses one. (The tests run
as root, as CI does; as another user the refusals do not apply, and the
same commands are checked to go through.)"""
import os
import shutil
import subprocess

from conftest import Gatehouse, chown_tree, gatehouse_bin
from identity_helpers import bootstrap, cli, cli_ok, identity_config

FAR = "2099-01-01T00:00:00Z"
ROOT = os.geteuid() == 0


def as_nobody(g, *args, binary):
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        binary, *args, "-c", g.config_path], capture_output=True, text=True,
                       timeout=60, cwd="/")
    return p.returncode, p.stdout, p.stderr


def installed(d):
    """The binary copied where the other user can run it (the build tree
    may not be reachable to it)."""
    os.makedirs(os.path.join(d, "bin"))
    path = os.path.join(d, "bin", "gatehouse")
    shutil.copy2(gatehouse_bin(), path)
    return path


def test_root_does_not_write_in_the_gateways_folders(upstream, service_dir):
    g = Gatehouse(service_dir, upstream_port=upstream.port, raw=identity_config(workers=1))
    binary = installed(service_dir)
    bootstrap(g)  # the folder is root's still: allowed
    cli_ok(g, "tenants", "create", "acme")
    if ROOT:
        chown_tree(service_dir)
    writes = [("keys", "create", "--tenant", "acme"), ("tenants", "suspend", "acme"),
              ("admin", "bootstrap"), ("migrate",), ("audit", "archive"),
              ("secrets", "init")]
    for args in writes:
        rc, out, err = cli(g, *args)
        if ROOT:
            assert rc in (1, 2) and "not run as root" in err, (args, rc, out, err)
            assert "runuser -u nobody -- gatehouse" in err, err
        else:
            assert "not run as root" not in err, (args, err)
    rc, out, err = cli(g, "secrets", "set", "x", stdin=b"value-0123456789")
    assert (rc == 1 and "not run as root" in err) if ROOT else "not run as root" not in err, err
    if ROOT:
        # With a PKCS#11 token, the user alone does not reach it: the hint
        # names the groups (docs/operations.md, "A PKCS#11 token").
        with open(g.config_path) as f:
            text = f.read()
        with open(g.config_path, "a") as f:
            f.write("secrets:\n  provider: pkcs11\n  pkcs11:\n"
                    "    module: /usr/lib/softhsm/libsofthsm2.so\n    token_label: gatehouse\n"
                    "    pin: env:GH_TEST_NO_PIN_NEEDED\n")
        rc, out, err = cli(g, "secrets", "set", "x", stdin=b"value-0123456789",
                           env={"GH_TEST_NO_PIN_NEEDED": "24680"})
        assert rc == 1 and "runuser -u nobody -g GROUP -G TOKEN_GROUP -- gatehouse secrets " \
            "set ... (GROUP: the unit's Group=; TOKEN_GROUP:" in err, err
        with open(g.config_path, "w") as f:
            f.write(text)
    # Reading goes on as root, and leaves nothing root's behind (SQLite
    # gives its -wal and -shm files the database's owner).
    out, _ = cli_ok(g, "tenants", "list")
    assert "acme" in out
    cli_ok(g, "keys", "list", "--tenant", "acme")
    if ROOT:
        for dirpath, _, files in os.walk(service_dir):
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                assert st.st_uid != 0 or f == "gatehouse.yaml" or dirpath.endswith("bin"), f
        # As the gateway's user, the same change goes through.
        rc, out, err = as_nobody(g, "keys", "create", "--tenant", "acme", binary=binary)
        assert rc == 0 and out.strip().splitlines()[-1].startswith("gh_"), (rc, out, err)


def test_verify_tells_an_archive_it_cannot_read_from_a_missing_one(gatehouse, upstream,
                                                                   service_dir):
    g = Gatehouse(service_dir, upstream_port=upstream.port, raw=identity_config(workers=1))
    binary = installed(service_dir)
    bootstrap(g)
    cli_ok(g, "tenants", "create", "acme")
    rc, out, err = cli(g, "audit", "archive", "--now", FAR)
    assert rc == 0 and "archived" in out and " 0 events" not in out, (out, err)
    archive = os.path.join(service_dir, "audit-archive")
    chains = [os.path.join(archive, d) for d in os.listdir(archive)
              if os.path.isdir(os.path.join(archive, d))]
    assert chains
    rc, out, err = cli(g, "audit", "verify", "--archive", archive)
    assert rc == 0, out + err
    if not ROOT:
        return
    # Everything the other user's but one chain's folder of the archive.
    chown_tree(service_dir, skip=chains[:1])
    os.chmod(chains[0], 0o700)
    rc, out, err = as_nobody(g, "audit", "verify", "--archive", archive, binary=binary)
    assert rc == 2, (rc, out, err)
    assert "Permission denied" in out + err and "deleted" not in out + err, out + err
    # A missing one is still tampering.
    chown_tree(chains[0])
    manifests = [f for f in os.listdir(chains[0]) if f.endswith(".manifest.json")]
    os.unlink(os.path.join(chains[0], manifests[0]))
    rc, out, err = as_nobody(g, "audit", "verify", "--archive", archive, binary=binary)
    assert rc == 1 and "deleted: the manifest" in out + err, (rc, out, err)


def test_secrets_init_does_not_make_a_second_master_key(gatehouse, upstream, tmp_path):
    g = gatehouse(raw=identity_config(workers=1))  # its start makes the key and seals
    g.stop()
    master = os.path.join(str(g.tmp), "gatehouse.db.master")
    shutil.move(master, master + ".lost")
    rc, out, err = cli(g, "keys", "create", "--tenant", "system")
    assert rc == 1 and "copy the file from a node of this store, or restore it" in err, err
    rc, out, err = cli(g, "secrets", "init")
    assert rc == 1 and "this store already uses master key version 1" in err, err
    assert not os.path.exists(master)
    shutil.move(master + ".lost", master)
    cli_ok(g, "keys", "create", "--tenant", "system")
