"""`gatehouse demo` (what `make demo` runs): the lines it prints to try do
what their comments say. The test runs the printed shell lines themselves
(with the printed KEY, ADMIN and T), so a demo line that drifts from the
gateway's behaviour fails here."""
import json
import os
import re
import signal
import subprocess
import time

from conftest import free_port, gatehouse_bin


def start_demo(tmp_path):
    port, admin = free_port(), free_port()
    out = open(tmp_path / "demo.out", "w+b")
    p = subprocess.Popen([gatehouse_bin(), "demo", "--listen", f"127.0.0.1:{port}",
                          "--admin", f"127.0.0.1:{admin}"], stdout=out,
                         stderr=subprocess.STDOUT, cwd=str(tmp_path))
    deadline = time.time() + 20
    text = ""
    while time.time() < deadline and "Ctrl-C stops." not in text:
        assert p.poll() is None, text
        time.sleep(0.1)
        out.seek(0)
        text = out.read().decode(errors="replace")
    assert "Ctrl-C stops." in text, text
    return p, text


def line(text, pattern):
    """The printed line that contains <pattern>, without its # comment."""
    for ln in text.splitlines():
        if pattern in ln and not ln.startswith("{"):
            return ln.split("   # ")[0].strip()
    raise AssertionError(f"no line with {pattern!r} in the demo's output")


def sh(cmd, env):
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=30, env=env)
    assert p.returncode == 0, (cmd, p.stderr)
    return p.stdout.decode()


def status(cmd, env):
    return int(sh(cmd.replace("curl -i ", "curl -s -o /dev/null -w '%{http_code}' ", 1), env))


def test_demo_lines_do_what_they_say(tmp_path):
    p, text = start_demo(tmp_path)
    try:
        env = dict(os.environ)
        env["KEY"] = re.search(r"KEY=(gh_\S+)", text).group(1)
        env["ADMIN"] = re.search(r"ADMIN=(gh_\S+)", text).group(1)
        env["T"] = re.search(r"\bT=(tn_\S+)", text).group(1)

        assert status(line(text, "/hello"), env) == 200
        assert status(line(text, "/orders   "), env) == 401
        assert status(line(text, 'Bearer $KEY" http'), env) == 200

        # Signed webhooks: register (the secret is shown once), publish, and
        # the delivery to the demo upstream succeeds.
        ep = json.loads(sh(line(text, '"events": ["order.*"]'), env))
        assert ep["secret"].startswith("whsec_")
        msg = json.loads(sh(line(text, "/v1/events"), env))
        assert msg["deliveries"] == 1 and msg["id"].startswith("msg_")
        listing = line(text, "# then .../webhooks/ID/deliveries")
        deliveries = listing.replace("/webhooks", f"/webhooks/{ep['id']}/deliveries")
        deadline = time.time() + 10
        while True:
            items = json.loads(sh(deliveries, env))["items"]
            if items and items[0]["status"] == "succeeded" or time.time() > deadline:
                break
            time.sleep(0.2)
        assert items[0]["status"] == "succeeded" and items[0]["last_status"] == 200, items

        # The inbound GitHub webhook: the signed body passes, another body
        # with that signature is refused before the upstream.
        sign = line(text, "openssl dgst")
        ok, bad = [ln.split("   # ")[0].strip() for ln in text.splitlines()
                   if "/webhooks/github" in ln and ln.strip().startswith("curl")]
        assert status(sign + "; " + ok, env) == 200
        assert status(sign + "; " + bad, env) == 401
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)
    # Its state (keys, the master key file) does not outlive it in /tmp.
    state = re.search(r"state in (/tmp/gatehouse-demo-\w+) \(removed", text).group(1)
    assert not os.path.exists(state), os.listdir(state)
