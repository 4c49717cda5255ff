"""Signals: SIGHUP reload under load and with a broken file, `gatehouse
check`, SIGUSR1 access-log reopen, SIGTERM graceful shutdown."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import free_port, gatehouse_bin, wait_for

PLACE = re.compile(r"gatehouse\.yaml:\d+:\d+")


def two_upstreams_config(g, up_a, up_b, target, extra=""):
    return (
        "workers: 2\n"
        f"listen:\n  - address: 127.0.0.1:{g.port}\n"
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
        "access_log:\n  enabled: false\n"
        "upstreams:\n"
        f"  a:\n    endpoints: [\"127.0.0.1:{up_a.port}\"]\n"
        f"  b:\n    endpoints: [\"127.0.0.1:{up_b.port}\"]\n"
        "routes:\n"
        f"  - path: /\n    upstream: {target}\n"
        f"{extra}"
    )


def test_reload_under_load(gatehouse, upstream, upstream2):
    g = gatehouse(raw=lambda g: two_upstreams_config(g, upstream, upstream2, "a"))
    cfg = {name: two_upstreams_config(g, upstream, upstream2, name) for name in ("a", "b")}
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"ok": 0, "bad": [], "seen": set()}

    def client(n):
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
        i = 0
        try:
            while not stop.is_set():
                path = f"/load/{n}/{i}"
                try:
                    if n % 3 == 2:  # a fresh connection per request
                        c.close()
                        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
                    if i % 2:
                        c.request("POST", path, body=b"p" * (i % 5000))
                    else:
                        c.request("GET", path)
                    r = c.getresponse()
                    body = r.read()
                except Exception as e:  # a lost request
                    with lock:
                        stats["bad"].append((path, repr(e)))
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
                    i += 1
                    continue
                with lock:
                    if r.status != 200:
                        stats["bad"].append((path, r.status, body[:200]))
                    else:
                        echo = json.loads(body)
                        if echo["path"] != path:
                            stats["bad"].append((path, "wrong answer", echo["path"]))
                        stats["ok"] += 1
                        stats["seen"].add(echo["upstream"])
                i += 1
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(6)]
    for t in threads:
        t.start()
    try:
        gen0 = g.generation()
        for k in range(5):
            time.sleep(0.5)
            g.write_config(cfg["b" if k % 2 == 0 else "a"])
            g.reload_and_wait()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads)
    assert g.generation() == gen0 + 5
    assert stats["bad"] == [], stats["bad"][:10]
    assert stats["ok"] > 100, stats["ok"]
    print("requests served during reloads:", stats["ok"])
    assert stats["seen"] == {"app", "app2"}
    # The last config (5th reload: "b") is the one serving now.
    status, _, body = g.request("GET", "/after")
    assert status == 200 and json.loads(body)["upstream"] == "app2"
    assert g.proc.poll() is None
    assert "reload failed" not in g.stderr()


def test_reload_with_broken_config_keeps_old(gatehouse, upstream, upstream2):
    g = gatehouse(raw=lambda g: two_upstreams_config(g, upstream, upstream2, "a"))
    good = two_upstreams_config(g, upstream, upstream2, "b")
    gen = g.generation()
    g.write_config(good + "unknown_top_level_key: 1\n")
    g.reload()
    wait_for(lambda: "reload failed" in g.stderr(), 5, what="'reload failed' in stderr")
    err = g.stderr()
    line = [ln for ln in err.splitlines() if "reload failed" in ln][0]
    assert PLACE.search(line), line
    assert "unknown_top_level_key" in line
    assert g.generation() == gen
    status, _, body = g.request("GET", "/still-a")
    assert status == 200 and json.loads(body)["upstream"] == "app"
    # A fixed file reloads fine afterwards.
    g.write_config(good)
    g.reload_and_wait()
    status, _, body = g.request("GET", "/now-b")
    assert status == 200 and json.loads(body)["upstream"] == "app2"


def test_reload_with_bad_value_keeps_old(gatehouse, upstream):
    g = gatehouse()
    text = open(g.config_path).read()
    g.write_config(text + "limits:\n  max_headers: 9999\n")
    g.reload()
    wait_for(lambda: "reload failed" in g.stderr(), 5, what="'reload failed' in stderr")
    line = [ln for ln in g.stderr().splitlines() if "reload failed" in ln][0]
    assert PLACE.search(line), line
    status, _, _ = g.request("GET", "/ok")
    assert status == 200


def reload_cli(g, *extra, pid=None, timeout=60):
    """`gatehouse reload` on <g>'s config and process, as systemd's
    ExecReload= runs it."""
    pid = g.proc.pid if pid is None else pid
    return subprocess.run([gatehouse_bin(), "reload", "-c", g.config_path, "--pid", str(pid),
                           *extra], capture_output=True, text=True, timeout=timeout)


def test_reload_command_says_how_the_reload_went(gatehouse, upstream, upstream2):
    """`gatehouse reload` exits 0 only when the gateway runs the new file: a
    file with errors is not sent (the gateway sees no SIGHUP), a valid file
    the gateway refuses (a key that needs a restart) is exit 1, and the
    gateway's refusal count on /readyz is what says so."""
    g = gatehouse(raw=lambda g: two_upstreams_config(g, upstream, upstream2, "a"))
    good = two_upstreams_config(g, upstream, upstream2, "b")
    gen = g.generation()
    assert g.readyz()[1]["config_reloads_failed"] == 0

    g.write_config(good)
    p = reload_cli(g)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"reloaded: config generation {gen + 1}, sha256 " in p.stdout, p.stdout
    assert p.stderr == "", p.stderr
    assert g.generation() == gen + 1
    status, _, body = g.request("GET", "/now-b")
    assert status == 200 and json.loads(body)["upstream"] == "app2"

    # Errors in the file: told with file:line:col, and nothing sent.
    g.write_config(good + "unknown_top_level_key: 1\n")
    p = reload_cli(g)
    assert p.returncode == 1, p.stdout + p.stderr
    assert PLACE.search(p.stderr) and "unknown_top_level_key" in p.stderr, p.stderr
    assert "not reloaded" in p.stderr, p.stderr
    time.sleep(0.3)
    log = g.stderr()
    assert log.count("config reloaded") == 1 and "reload failed" not in log, log[-2000:]
    assert g.generation() == gen + 1

    # Valid, but a new node.id needs a restart: the gateway refuses it.
    g.write_config(good + "node:\n  id: another-node\n")
    p = reload_cli(g)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "refused the new config and keeps the running one" in p.stderr, p.stderr
    assert "needs a restart" in g.stderr(), g.stderr()[-2000:]
    doc = g.readyz()[1]
    assert doc["config_generation"] == gen + 1 and doc["config_reloads_failed"] == 1, doc

    # Back to a file it takes.
    g.write_config(two_upstreams_config(g, upstream, upstream2, "a"))
    p = reload_cli(g)
    assert p.returncode == 0, p.stdout + p.stderr
    status, _, body = g.request("GET", "/a-again")
    assert status == 200 and json.loads(body)["upstream"] == "app"


def test_reload_refuses_a_new_store_secrets_or_redis(gatehouse, upstream, tmp_path):
    """The store, the master key and Redis are opened at start: a file that
    names others is refused as a whole (the running config stays, the new
    route with it is not taken), with a message that names the block and
    quotes no value (a URL may hold a password); `gatehouse reload` says so
    with exit 1. Before, such a reload reported success and the gateway
    went on writing to the old store."""
    g = gatehouse()
    base = open(g.config_path).read()
    gen = g.generation()
    changes = {
        "store": "store:\n  sqlite: other.db\n",
        "secrets": "secrets:\n  master_key_file: other.master\n",
        "redis": "redis:\n  url: \"redis://:hunter2-in-url@127.0.0.1:9\"\n",
    }
    for n, (name, change) in enumerate(changes.items(), 1):
        g.write_config((base + change).replace("routes:\n", "routes:\n  - path: /new\n    upstream: app\n"
                                    "    auth: api_key\n", 1))
        p = reload_cli(g)
        assert p.returncode == 1, (name, p.stdout + p.stderr)
        assert "refused the new config" in p.stderr, p.stderr
        log = g.stderr()
        refusals = [ln for ln in log.splitlines() if "reload failed" in ln]
        assert len(refusals) == n and f"{name}" in refusals[-1] and \
            "that needs a restart (reload refused)" in refusals[-1], log[-1500:]
        assert "hunter2" not in log
        # The new route (auth required) was not taken.
        assert g.request("GET", "/new")[0] == 200
    assert g.generation() == gen
    assert g.readyz()[1]["config_reloads_failed"] == len(changes)
    g.write_config(base)
    assert reload_cli(g).returncode == 0


def test_reload_of_an_unchanged_file_with_a_secret_redis_password(gatehouse, upstream):
    """The running config holds `secret:NAME` values resolved: the new file's
    are resolved before the two are compared, so an unchanged file (or one
    that changes a route only) reloads. A reviewer found every such reload
    refused as a Redis change."""
    from identity_helpers import cli
    g = gatehouse(start=False)
    base = open(g.config_path).read() + (
        "redis:\n  url: \"redis://127.0.0.1:9\"\n  password: secret:redis_pw\n")
    g.write_config(base)
    rc, _, err = cli(g, "secrets", "init")
    assert rc == 0, err
    rc, _, err = cli(g, "secrets", "set", "config/redis_pw", stdin=b"pw-S3cr3t")
    assert rc == 0, err
    g.start()
    p = reload_cli(g)
    assert p.returncode == 0, p.stdout + p.stderr
    g.write_config(base.replace("routes:\n", "routes:\n  - path: /new\n    upstream: app\n"
                                "    auth: api_key\n", 1))
    p = reload_cli(g)
    assert p.returncode == 0, p.stdout + p.stderr
    assert g.request("GET", "/new")[0] == 401
    assert "pw-S3cr3t" not in g.stderr()


def test_reload_command_without_an_answer(gatehouse, upstream, tmp_path):
    """A process that takes the SIGHUP but is not the gateway the file's
    admin listener belongs to: no outcome within --timeout is exit 1; bad
    arguments are exit 2; a process that does not exist is exit 1 before
    anything is sent."""
    g = gatehouse()
    stand_in = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import signal, time\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
         "print('up', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert stand_in.stdout.readline().strip() == "up"
        started = time.time()
        p = reload_cli(g, "--timeout", "1s", pid=stand_in.pid)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "no outcome within 1s" in p.stderr, p.stderr
        assert time.time() - started < 10
    finally:
        stand_in.kill()
        stand_in.wait()
    for args in (["--pid", "x"], ["--pid", "1"], ["--timeout", "soon"],
                 ["--timeout", "18446744073710ms"], []):
        full = [gatehouse_bin(), "reload", "-c", g.config_path, *args]
        if "--pid" not in args:
            full += ["--pid", str(g.proc.pid)] if args else []
        p = subprocess.run(full, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (args, p.stdout + p.stderr)
    p = reload_cli(g, pid=stand_in.pid)
    assert p.returncode == 1 and "cannot signal process" in p.stderr, p.stderr
    assert g.generation() == 1


def test_reload_command_with_a_moved_admin_listener(gatehouse, upstream):
    """A file that moves admin.address: the command reads the file's new
    address, where nothing listens until a restart; it sends nothing and
    says a restart is what applies the move."""
    g = gatehouse()
    moved = free_port()
    g.write_config(g.default_config().replace(f"address: 127.0.0.1:{g.admin_port}\n",
                                              f"address: 127.0.0.1:{moved}\n"))
    p = reload_cli(g)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"cannot connect to the admin listener 127.0.0.1:{moved}" in p.stderr, p.stderr
    assert "applies only at the next restart: restart the gateway" in p.stderr, p.stderr
    assert g.generation() == 1


def test_reload_command_with_the_admin_listener_off(gatehouse, upstream):
    """No /readyz to read: the signal is sent, with a warning that the
    outcome cannot be told, and the gateway reloads."""
    g = gatehouse(start=False)
    off = g.default_config().replace(
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n",
        f"admin:\n  address: 127.0.0.1:{g.admin_port}\n  enabled: false\n")
    g.write_config(off)
    g.start(wait=False)
    wait_for(lambda: "serving" in g.stderr() or "listening" in g.stderr(), 10,
             what="the gateway to start")
    g.write_config(off.replace("routes:\n", "log_level: debug\nroutes:\n"))
    p = reload_cli(g)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "warning: SIGHUP sent" in p.stderr and "admin.enabled: false" in p.stderr, p.stderr
    wait_for(lambda: "config reloaded" in g.stderr(), 5, what="the reload")


def test_check_command(tmp_path):
    bad = tmp_path / "gatehouse.yaml"
    bad.write_text(
        "workers: 1\n"
        "listen:\n  - address: 127.0.0.1:18080\n"
        "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9\"]\n"
        "routes:\n  - path: /\n    upstream: ap\n"
    )
    p = subprocess.run([gatehouse_bin(), "check", "-c", str(bad)], capture_output=True, timeout=10)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 1, out
    m = PLACE.search(out)
    assert m, out
    assert re.search(r"gatehouse\.yaml:9:15: ", out), out
    assert "ap" in out and "routes[0].upstream" in out, out
    good = tmp_path / "good.yaml"
    good.write_text(bad.read_text().replace("upstream: ap", "upstream: app"))
    p = subprocess.run([gatehouse_bin(), "check", "-c", str(good)], capture_output=True, timeout=10)
    assert p.returncode == 0, (p.stdout + p.stderr).decode()


def test_check_command_unknown_key(tmp_path):
    bad = tmp_path / "gatehouse.yaml"
    bad.write_text(
        "workers: 1\n"
        "listen:\n  - address: 127.0.0.1:18080\n"
        "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9\"]\n"
        "routes:\n  - path: /\n    upstream: app\n"
        "frobnicate: yes\n"
    )
    p = subprocess.run([gatehouse_bin(), "check", "-c", str(bad)], capture_output=True, timeout=10)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 1, out
    assert re.search(r"gatehouse\.yaml:10:1\b", out), out
    assert "frobnicate" in out


def test_check_command_postgres_url(tmp_path):
    """`gatehouse check` refuses a store URL libpq would refuse only at the
    first connection (a typo in a parameter's name or in one of its fixed
    values, a bad percent-escape), at the URL's file:line:col, and never
    repeats the password that the URL holds."""
    def check(url):
        f = tmp_path / "gatehouse.yaml"
        f.write_text(
            "listen:\n  - address: 127.0.0.1:18080\n"
            "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9\"]\n"
            "routes:\n  - path: /\n    upstream: app\n"
            "secrets:\n  master_key_file: /nonexistent/gatehouse.master\n"
            f"store:\n  postgres: \"{url}\"\n")
        p = subprocess.run([gatehouse_bin(), "check", "-c", str(f)], capture_output=True,
                           text=True, timeout=10)
        return p.returncode, p.stdout + p.stderr

    base = "postgresql://gatehouse:pw-S3cr%41t@127.0.0.1:5432,127.0.0.1:5433/gatehouse"
    rc, out = check(base + "?target_session_attrs=read-write&sslmode=prefer")
    assert rc == 0, out
    for query, said in (("?target_session_attrs=read-writ", "target_session_attrs must be one of"),
                        ("?sslmod=require", 'invalid URI query parameter: "sslmod"'),
                        ("?sslmode=requir", "sslmode must be one of")):
        rc, out = check(base + query)
        assert rc == 1 and "gatehouse.yaml:12:13: " in out and said in out, (query, out)
        assert "S3cr" not in out, out
    # Whatever libpq quotes that is not a parameter's name may hold the
    # password: in the user information, as password=, or the whole URI.
    for url, said in (("postgresql://gatehouse:pw-S3cr%ZZt@127.0.0.1:5432/gatehouse",
                       "invalid percent-encoded token"),
                      ("postgresql://gh:S3crPassw0rd@[::1/gatehouse", "IPv6 host address"),
                      ("postgresql://gh@127.0.0.1/db?password=S3cr%zzPassw0rd",
                       "invalid percent-encoded token"),
                      ("postgresql://gh@127.0.0.1/db?password=S3crPassw0rd%00", "forbidden value"),
                      ("postgresql://gh:S3c?r%zzPassw0rd@127.0.0.1/db",
                       "invalid percent-encoded token")):
        rc, out = check(url)
        assert rc == 1 and said in out, (url, out)
        assert "S3c" not in out and "Passw0rd" not in out, out


def read_lines(path):
    try:
        with open(path) as f:
            return [json.loads(ln) for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


def test_sigusr1_reopens_access_log(gatehouse, upstream, tmp_path):
    log = str(tmp_path / "access.log")
    g = gatehouse(access_log=log)
    assert g.request("GET", "/before-rotate")[0] == 200
    wait_for(lambda: any(e["path"] == "/before-rotate" for e in read_lines(log)), 5,
             what="the first access-log line")
    os.rename(log, log + ".1")
    assert g.request("GET", "/between")[0] == 200  # still goes to the renamed file
    g.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(log), 5, what="a new access log at the configured path")
    for i in range(3):
        assert g.request("GET", f"/after-rotate/{i}")[0] == 200
    wait_for(lambda: len([e for e in read_lines(log) if e["path"].startswith("/after-rotate")]) == 3,
             5, what="new lines in the new file")
    old = [e["path"] for e in read_lines(log + ".1")]
    assert "/before-rotate" in old
    assert not any(p.startswith("/after-rotate") for p in old), old
    new = [e["path"] for e in read_lines(log)]
    assert "/before-rotate" not in new


def test_graceful_shutdown(gatehouse, upstream):
    g = gatehouse(workers=2)
    result = {}

    def slow():
        try:
            result["r"] = g.request("GET", "/sleep/1500", timeout=10)
        except Exception as e:
            result["e"] = repr(e)

    # An idle keep-alive connection, which shutdown may close.
    idle = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    try:
        wait_for(lambda: any(p.startswith("/sleep/") for _, p, _ in upstream.requests), 5,
                 what="the slow request to reach the upstream")
        t_term = time.time()
        g.signal(signal.SIGTERM)
        time.sleep(0.4)
        assert g.proc.poll() is None, "exited before the in-flight request finished"
        refused = False
        try:
            c = socket.create_connection(("127.0.0.1", g.port), timeout=2)
            # Accepted by a socket still open: it must not be served.
            c.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
            c.settimeout(3)
            try:
                data = c.recv(100)
            except (ConnectionResetError, socket.timeout):
                data = b""
            c.close()
            assert not data.startswith(b"HTTP/1.1 200"), data
        except ConnectionRefusedError:
            refused = True
        assert refused, "a new connection was accepted after SIGTERM"
        t.join(10)
        assert "e" not in result, result
        status, headers, body = result["r"]
        assert status == 200, (status, body)
        assert json.loads(body)["path"] == "/sleep/1500"
        rc = g.proc.wait(10)
        assert rc == 0, g.stderr()
        assert time.time() - t_term < 5
    finally:
        idle.close()
    assert not any(p == "/late" for _, p, _ in upstream.requests)
