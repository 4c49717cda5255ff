"""deploy/systemd/gatehouse.service, the gateway's own unit
(docs/operations.md, "Running the gateway under systemd"): systemd accepts
it, its sandbox scores as systemd-analyze's "OK", its sysusers file makes
the user, and its very command lines run the gateway here as systemd would:
the start is announced (READY=1 on $NOTIFY_SOCKET) once the listeners
serve, a reload (its ExecReload line, `gatehouse reload`, which waits for the
gateway's answer) with RELOADING=1 then READY=1, the
stop with STOPPING=1. The gateway runs under strace meanwhile, through
requests, admin calls, audited requests, a reload and a drain: every system
call it makes must be one the unit's SystemCallFilter allows, or it would
fail with EPERM in production (SystemCallErrorNumber=). No systemd runs here (PID 1 is not
systemd): the unit's lines are run by hand."""
import grp
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

from conftest import ROOT, TEST_STORE, Gatehouse, chown_tree, free_port, gatehouse_bin, wait_for
from identity_helpers import ORDERS_ROUTE, OPEN_ROUTE, Admin, bootstrap, bearer, http_call, \
    identity_config
from redis_helpers import RedisServer
from test_tls import make_ca, make_cert

SYSTEMD = os.path.join(ROOT, "deploy", "systemd")
UNIT = os.path.join(SYSTEMD, "gatehouse.service")
BIN = "/usr/local/bin/gatehouse"
CONFIG = "/etc/gatehouse/gatehouse.yaml"


def unit_values(key):
    """Every value of <key> in the unit's [Service] section, in order."""
    out = []
    with open(UNIT) as f:
        for line in f:
            if line.startswith(key + "="):
                out.append(line[len(key) + 1:].strip())
    assert out, f"no {key} in {UNIT}"
    return out


def expand(group, seen=None):
    """The system calls of a systemd-analyze syscall-filter group, nested
    groups expanded."""
    seen = set() if seen is None else seen
    p = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    calls = set()
    for line in p.stdout.splitlines()[1:]:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name.startswith("@"):
            if name not in seen:
                seen.add(name)
                calls |= expand(name, seen)
        else:
            calls.add(name)
    return calls


def allowed_calls():
    """What the unit's SystemCallFilter lines let through: the union of the
    allow lines, less the "~" lines."""
    allow, deny = set(), set()
    for value in unit_values("SystemCallFilter"):
        target = deny if value.startswith("~") else allow
        for group in value.lstrip("~").split():
            target |= expand(group) if group.startswith("@") else {group}
    assert allow, "no allow list"
    return allow - deny


def traced_calls(path):
    """The system calls named in an `strace -f -o` log."""
    calls = set()
    call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")
    for line in open(path, errors="replace"):
        m = call.match(line)
        if m and m.group(1) not in ("exited", "killed"):
            calls.add(m.group(1))
    return calls


def command(line, root, pid=None):
    """A unit's command line with <root> in front of its paths: the binary
    installed there (the gateway's user may not reach the build tree), and
    the config in <root>/etc."""
    return (line.replace(BIN, str(root) + BIN).replace(CONFIG, str(root) + CONFIG)
            .replace("$MAINPID", str(pid)))


def test_the_unit_verifies_scores_ok_and_makes_its_user(tmp_path):
    copy = tmp_path / "gatehouse.service"
    with open(UNIT) as f:
        copy.write_text(f.read().replace(BIN, gatehouse_bin()))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True,
                       timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == b"", p.stderr
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(copy)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for gatehouse\.service: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout[-500:] + p.stderr
    assert float(m.group(1)) <= 2.0 and m.group(2) == "OK", m.group(0)

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    p = subprocess.run(["systemd-sysusers", f"--root={root}",
                        os.path.join(SYSTEMD, "gatehouse.sysusers")], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    users = [ln.split(":") for ln in (root / "etc" / "passwd").read_text().splitlines()]
    user = [u for u in users if u[0] == "gatehouse"]
    assert user and user[0][5] == "/var/lib/gatehouse" and user[0][6] == "/usr/sbin/nologin", users
    assert "User=gatehouse" in open(UNIT).read()


def tls_get(port, ca, path, key):
    """A request over TLS, the certificate checked against <ca>."""
    ctx = ssl.create_default_context(cafile=ca)
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        c.request("GET", path, headers=bearer(key))
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def as_gateway_user(hsm):
    """The prefix that runs a command as the gateway's user: nobody here
    (group nogroup, as User= and Group= give gatehouse), and in the group
    softhsm with a token (the drop-in's SupplementaryGroups=). Nothing when
    the test does not run as root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "nobody", "-g", "nogroup", *(["-G", "softhsm"] if hsm else []), "--"]


def softhsm_token(root, run_as):
    """A SoftHSM2 token set up as docs/operations.md ("A PKCS#11 token")
    says, under <root>: Debian's folders var/lib/softhsm/tokens (2770
    root:softhsm) and etc/softhsm (its config 0640 root:softhsm), the token
    made by softhsm2-util run as the gateway's user (<run_as>) so that its
    files are that user's, the PIN in etc/gatehouse/hsm-pin (0640, the
    gateway's group). Returns the config's secrets block, the variables for
    the processes that use it (SOFTHSM2_CONF: the test's config names the
    test's folder, where Debian's default names /var/lib/softhsm/tokens)
    and the tokens folder."""
    if shutil.which("softhsm2-util") is None or not os.path.exists(SOFTHSM_MODULE):
        pytest.fail("softhsm2 is not installed (scripts/install-deps)")
    tokens = root / "var" / "lib" / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = root / "etc" / "softhsm" / "softhsm2.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    pin = root / "etc" / "gatehouse" / "hsm-pin"
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.write_text("24680\n")
    if os.geteuid() == 0:
        softhsm = grp.getgrnam("softhsm").gr_gid
        for path, mode in ((tokens.parent, 0o2770), (tokens, 0o2770), (conf.parent, 0o750),
                           (conf, 0o640)):
            os.chown(path, 0, softhsm)
            os.chmod(path, mode)
        os.chown(pin, 0, grp.getgrnam("nogroup").gr_gid)
        os.chmod(pin, 0o640)
    env = {"SOFTHSM2_CONF": str(conf)}
    p = subprocess.run([*run_as, "softhsm2-util", "--init-token", "--free", "--label", "gatehouse",
                        "--pin", "24680", "--so-pin", "13579"], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    block = ("secrets:\n  provider: pkcs11\n  pkcs11:\n"
             f"    module: {SOFTHSM_MODULE}\n    token_label: gatehouse\n"
             f"    pin: file:{pin}\n")
    return block, env, tokens


def descendant(pid, comm):
    """The pid of the first process under <pid> (a child, a grandchild,
    ...) whose command is <comm>, or None."""
    rows = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True,
                          text=True).stdout.split("\n")
    kids = {}
    for row in rows:
        parts = row.split(None, 2)
        if len(parts) == 3:
            kids.setdefault(int(parts[1]), []).append((int(parts[0]), parts[2].strip()))
    todo = [pid]
    while todo:
        for kid, name in kids.get(todo.pop(0), []):
            if name == comm:
                return kid
            todo.append(kid)
    return None


@pytest.mark.parametrize("secrets", ["master_key_file", "pkcs11"])
def test_the_units_commands_run_the_gateway_within_its_system_call_filter(
        upstream, service_dir, redis, secrets):
    """The layout the unit gives the gateway, under <service_dir> as its
    root: the binary and the config owned by root and read-only to the
    gateway's user (ProtectSystem=strict), its state in var/lib/gatehouse,
    its own. The config names its paths there as docs/operations.md says.
    Besides the plain listener it has a TLS one and rate limits kept in
    Redis, and under GH_TEST_STORE=postgres (make test runs this file on
    both stores) its store is a PostgreSQL server: the system calls of
    those parts are traced too. With <secrets> pkcs11 the master key is on
    a SoftHSM2 token set up as docs/operations.md says (the module runs in
    the gateway's process, so its calls count too): made on the token at
    the first start, and a `secret:` reference opened through it at the
    reload. Without systemd the drop-in's ReadWritePaths= is not tried."""
    root = service_dir
    state = root / "var" / "lib" / "gatehouse"
    state.mkdir(parents=True)
    hsm_block, hsm_env, tokens = "", {}, None
    run_as = as_gateway_user(secrets == "pkcs11")
    if secrets == "pkcs11":
        hsm_block, hsm_env, tokens = softhsm_token(root, run_as)
    pki = root / "etc" / "gatehouse" / "tls"
    pki.mkdir(parents=True)
    ca = make_ca(pki, "ca")
    cert, cert_key = make_cert(pki, "srv", "localhost", "DNS:localhost,IP:127.0.0.1")
    for f in os.listdir(pki):
        os.chmod(pki / f, 0o644)  # read by the gateway's user, as the unit's group read would
    tls_port = free_port()
    g = Gatehouse(state, upstream_port=upstream.port, raw=identity_config(
        workers=2,
        routes=(ORDERS_ROUTE + "    rate_limit: { per: [tenant], rate: 100000/s, burst: 1000 }\n"
                + OPEN_ROUTE),
        extra=(f"audit:\n  mode: strict\n  checkpoint_interval: 200ms\n"
               f"  retention: 1s\n  archive_interval: 1s\n"
               f"  archive_dir: {state}/audit-archive\n"
               f"redis: {{ url: \"{redis.url}\" }}\n"
               f"limits: {{ backend: redis, nodes: 1 }}\n" + hsm_block)))
    with open(g.config_path) as f:
        text = f.read()
    g.write_config(text.replace(
        f"listen:\n  - address: 127.0.0.1:{g.port}\n",
        f"listen:\n  - address: 127.0.0.1:{g.port}\n  - address: 127.0.0.1:{tls_port}\n"
        f"    tls:\n      certificates:\n        - cert: {cert}\n          key: {cert_key}\n"))
    with open(g.config_path) as f:
        assert ("postgres:" in f.read()) == (TEST_STORE == "postgres")
    op_key, _, _ = bootstrap(g)
    for path, src, mode in ((BIN, gatehouse_bin(), 0o755), (CONFIG, g.config_path, 0o644)):
        os.makedirs(os.path.dirname(str(root) + path), exist_ok=True)
        shutil.copyfile(src, str(root) + path)
        os.chmod(str(root) + path, mode)
    traces = root / "trace"  # the traces, written by strace as the gateway's user
    traces.mkdir()
    if os.geteuid() == 0:
        chown_tree(state)
        chown_tree(traces)
    sock_path = str(root / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    os.chmod(sock_path, 0o777)  # systemd's socket takes any sender of the unit
    notify.settimeout(20)
    trace = str(traces / "strace.log")
    env = {**os.environ, **hsm_env, "NOTIFY_SOCKET": sock_path}

    def traced(line, out):
        return [*run_as, "strace", "-f", "-qq", "-o", out, *command(line, root).split()]

    for i, line in enumerate(unit_values("ExecStartPre")):
        p = subprocess.run(traced(line, f"{trace}.pre{i}"), capture_output=True, text=True,
                           timeout=60, cwd=str(state), env=env)
        assert p.returncode == 0, p.stdout + p.stderr
    (start,) = unit_values("ExecStart")
    stderr = open(g.stderr_path, "w")
    proc = subprocess.Popen(traced(start, trace), env=env, cwd=str(state), stdout=stderr,
                            stderr=stderr)
    try:
        msg = notify.recv(4096).decode()
        assert msg.startswith("READY=1\n") and "config generation 1" in msg, msg
        # Ready means serving: no wait, no retry.
        assert http_call(g.port, "GET", "/").status == 200
        pid = descendant(proc.pid, "gatehouse")
        assert pid is not None

        op = Admin(g, op_key)
        t = op.create_tenant("acme")["id"]
        key = op.create_key(t)["key"]
        wait_for(lambda: http_call(g.port, "GET", "/orders/0", headers=bearer(key)).status == 200,
                 5, what="the new key to work")
        for _ in range(20):
            assert http_call(g.port, "GET", "/orders/1", headers=bearer(key)).status == 200
            assert tls_get(tls_port, ca, "/orders/1", key) == 200
        # The limit was decided in Redis (its keys expire within a few ms
        # at this rate: count the scripts run instead).
        stats = redis.command("INFO", "commandstats")
        runs = sum(int(n) for n in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", stats))
        assert runs >= 40, stats
        assert http_call(g.port, "GET", "/orders/1", headers=bearer("gh_x")).status == 401
        assert http_call(g.admin_port, "GET", "/metrics").status == 200
        assert http_call(g.admin_port, "GET", "/readyz").status == 200
        # Retention archives the events into its folder (the gateway writes
        # nowhere beside its config).
        wait_for(lambda: any(f.endswith(".jsonl.zst") for _, _, fs in
                             os.walk(state / "audit-archive") for f in fs), 10,
                 what="an audit archive segment")

        if tokens:
            # The first start made the master key on the token
            # (C_GenerateKey, traced). A secret sealed under it by the CLI,
            # run as the gateway's user as docs/operations.md says (the
            # token's files are that user's), and named by the reloaded
            # file: the reload opens it through the token.
            p = subprocess.run([*run_as, str(root) + BIN, "secrets", "set",
                                "config/upstream-app", "-c",
                                str(root) + CONFIG], input="app-identity-secret",
                               capture_output=True, text=True, timeout=60, cwd=str(state),
                               env={**os.environ, **hsm_env})
            assert p.returncode == 0, p.stdout + p.stderr
            with open(str(root) + CONFIG) as f:
                text = f.read()
            upstream_line = f'endpoints: ["127.0.0.1:{upstream.port}"]\n'
            assert upstream_line in text, text
            with open(str(root) + CONFIG, "w") as f:
                f.write(text.replace(upstream_line, upstream_line
                                     + '    identity_secret: "secret:upstream-app"\n'))

        # ExecReload= runs as the gateway's user, in its sandbox and filter.
        (reload,) = unit_values("ExecReload")
        p = subprocess.run([*run_as, "strace", "-f", "-qq", "-o", f"{trace}.reload",
                            *command(reload, root, pid).split()],
                           capture_output=True, text=True, timeout=60, cwd=str(state),
                           env={**os.environ, **hsm_env})
        assert p.returncode == 0 and "reloaded: config generation 2" in p.stdout, (
            p.stdout + p.stderr + open(g.stderr_path).read()[-2000:])
        msg = notify.recv(4096).decode()
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", msg), msg
        msg = notify.recv(4096).decode()
        assert msg.startswith("READY=1\n") and "config generation 2" in msg, msg
        assert http_call(g.port, "GET", "/orders/2", headers=bearer(key)).status == 200

        os.kill(pid, signal.SIGTERM)  # KillSignal's default
        msg = notify.recv(4096).decode()
        assert msg.startswith("STOPPING=1"), msg
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            # strace killed detaches its tracee, which runs on: stop the
            # gateway itself first (a failed assertion above once left two).
            kid = descendant(proc.pid, "gatehouse")
            if kid is not None:
                try:
                    os.kill(kid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.kill()
            proc.wait()
        stderr.close()
        notify.close()

    allowed = allowed_calls()
    used = traced_calls(trace)
    for i in range(len(unit_values("ExecStartPre"))):
        used |= traced_calls(f"{trace}.pre{i}")
    used |= traced_calls(f"{trace}.reload")
    # The trace saw the work: connections served, audit commits synced.
    assert {"accept4", "epoll_wait", "getrandom"} <= used and used & {"fsync", "fdatasync"}, used
    if tokens:
        # The module ran in the traced processes, on the token's files.
        with open(trace, errors="replace") as f:
            text = f.read()
        assert SOFTHSM_MODULE in text and str(tokens) in text, "the trace saw no token"
    assert used - allowed == set(), (
        f"system calls outside the unit's SystemCallFilter: {sorted(used - allowed)}")
    log = open(g.stderr_path).read()
    assert "NOTIFY_SOCKET" not in log, log


def test_the_logrotate_file_rotates_a_running_gateways_access_log(gatehouse, upstream, tmp_path):
    """deploy/systemd/gatehouse.logrotate, its paths pointed at this test's
    folder and its postrotate line's `systemctl kill -s USR1` at this
    gateway: logrotate moves the file, the gateway reopens it, and no line
    is lost or written to the old file after."""
    logs = tmp_path / "log"
    logs.mkdir()
    g = gatehouse(extra=f"access_log:\n  path: {logs}/access.log\n")
    for i in range(5):
        assert http_call(g.port, "GET", f"/before/{i}").status == 200
    wait_for(lambda: (logs / "access.log").exists() and
             (logs / "access.log").read_text().count("/before/") == 5, 5, what="5 lines")
    pid = g.proc.pid
    with open(os.path.join(SYSTEMD, "gatehouse.logrotate")) as f:
        text = f.read()
    kill = "systemctl kill -s USR1 --kill-whom=main gatehouse.service"
    assert kill in text and "/var/log/gatehouse/*.log" in text, text
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text.replace("/var/log/gatehouse", str(logs))
                    .replace(kill, f"kill -USR1 {pid}"))
    os.chmod(conf, 0o644)
    p = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for(lambda: "reopening the access log" in g.stderr(), 5, what="the reopen")
    for i in range(5):
        assert http_call(g.port, "GET", f"/after/{i}").status == 200
    wait_for(lambda: (logs / "access.log").exists() and
             (logs / "access.log").read_text().count("/after/") == 5, 5, what="5 new lines")
    old = (logs / "access.log.1").read_text()  # delaycompress: the newest stays plain
    assert old.count("/before/") == 5 and "/after/" not in old, old
    assert "/before/" not in (logs / "access.log").read_text()
    g.stop()
