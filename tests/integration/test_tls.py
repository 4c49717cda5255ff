"""TLS: listeners (versions, SNI, certificate reload) and TLS to upstreams.
Certificates are made with the openssl CLI in tmp_path."""
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import Gatehouse, HTTPReader, assert_gateway_error


def openssl(cwd, *args, input=None):
    p = subprocess.run(["openssl", *args], cwd=str(cwd), capture_output=True, timeout=30,
                       input=input)
    assert p.returncode == 0, (args, p.stderr.decode())
    return p.stdout.decode()


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=Test CA {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return os.path.join(str(d), f"{name}.pem")


def make_cert(d, name, cn, sans, ca="ca", serial=1):
    openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    ext = os.path.join(str(d), f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(serial), "-days", "2", "-out", f"{name}.pem", "-extfile", ext)
    return os.path.join(str(d), f"{name}.pem"), os.path.join(str(d), f"{name}.key")


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = {"dir": d, "ca": make_ca(d, "ca"), "ca2": make_ca(d, "ca2")}
    p["srv"] = make_cert(d, "srv", "localhost", "DNS:localhost,IP:127.0.0.1", serial=1001)
    p["other"] = make_cert(d, "other", "other.test", "DNS:other.test", serial=2002)
    return p


def tls_listener_config(pki, certs=None):
    certs = certs or [("srv", None), ("other", ["other.test"])]

    def cfg(g):
        lines = [
            "workers: 1",
            "listen:",
            f"  - address: 127.0.0.1:{g.port}",
            "    tls:",
            "      certificates:",
        ]
        for name, names in certs:
            cert, key = pki[name]
            lines.append(f"        - cert: {cert}")
            lines.append(f"          key: {key}")
            if names:
                lines.append(f"          names: [{', '.join(names)}]")
        lines += [
            "admin:",
            f"  address: 127.0.0.1:{g.admin_port}",
            "upstreams:",
            "  app:",
            f"    endpoints: [\"127.0.0.1:{g.upstream_port}\"]",
            "routes:",
            "  - path: /",
            "    upstream: app",
        ]
        return "\n".join(lines) + "\n"
    return cfg


def client_ctx(pki, ca="ca", **kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki[ca])
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(port, ctx, server_hostname="localhost"):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except Exception:
        raw.close()
        raise
    return s, HTTPReader(s, 10)


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          timeout=20)


# ---------------------------------------------------------------- listener


def test_curl_tls13(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    p = curl("-v", "--cacert", pki["ca"], "--resolve", f"localhost:{g.port}:127.0.0.1",
             f"https://localhost:{g.port}/tls/hello?x=1")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    assert "TLSv1.3" in err, err
    echo = json.loads(p.stdout)
    assert echo["path"] == "/tls/hello?x=1"
    assert echo["headers"]["X-Forwarded-Proto"] == "https"


def test_curl_rejects_wrong_ca(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    p = curl("--cacert", pki["ca2"], "--resolve", f"localhost:{g.port}:127.0.0.1",
             f"https://localhost:{g.port}/")
    assert p.returncode != 0
    assert upstream.requests == []


def test_tls11_refused(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.port}", "-tls1_1",
                        "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "localhost"],
                       input=b"", capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "Cipher is (NONE)" in out, out
    assert "BEGIN CERTIFICATE" not in out and "no peer certificate available" in out, out
    # The listener is fine for the next, valid client.
    s, rd = tls_connect(g.port, client_ctx(pki))
    try:
        s.sendall(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert rd.read_response().status == 200
    finally:
        s.close()


def test_tls12_works(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    ctx = client_ctx(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    s, rd = tls_connect(g.port, ctx)
    try:
        assert s.version() == "TLSv1.2"
        s.sendall(b"GET /v12 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = rd.read_response()
        assert r.status == 200
        assert r.json()["path"] == "/v12"
    finally:
        s.close()
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{g.port}", "-tls1_2",
                        "-servername", "localhost", "-CAfile", pki["ca"]],
                       input=b"", capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, out
    assert re.search(r"Protocol\s*:\s*TLSv1\.2", out), out


def s_client_subject(port, servername=None):
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    args += ["-servername", servername] if servername else ["-noservername"]
    p = subprocess.run(args, input=b"", capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    m = re.search(r"^subject=(.*)$", out, re.M)
    assert m, out + p.stderr.decode(errors="replace")
    return m.group(1)


def test_sni_selects_certificate(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    assert "CN = other.test" in s_client_subject(g.port, "other.test")
    assert "CN = other.test" in s_client_subject(g.port, "OTHER.test")
    assert "CN = localhost" in s_client_subject(g.port, "localhost")
    # No SNI, or a name no certificate has: the first (default) certificate.
    assert "CN = localhost" in s_client_subject(g.port, None)
    assert "CN = localhost" in s_client_subject(g.port, "unknown.test")
    # A verified request under the second name.
    s, rd = tls_connect(g.port, client_ctx(pki), server_hostname="other.test")
    try:
        assert s.getpeercert(binary_form=True) == der_of(pki["other"][0])
        s.sendall(b"GET /sni HTTP/1.1\r\nHost: other.test\r\n\r\n")
        r = rd.read_response()
        assert r.status == 200
        assert r.json()["headers"]["Host"] == "other.test"
    finally:
        s.close()


def test_sni_names_from_san_by_default(gatehouse, upstream, pki):
    # Without `names`, the second certificate is served for its SAN names.
    g = gatehouse(raw=tls_listener_config(pki, certs=[("srv", None), ("other", None)]))
    assert "CN = other.test" in s_client_subject(g.port, "other.test")
    assert "CN = localhost" in s_client_subject(g.port, "localhost")


def test_certificate_reload_on_sighup(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    ctx = client_ctx(pki)
    old = der_of(pki["srv"][0])
    kept, kept_rd = tls_connect(g.port, ctx)
    try:
        assert kept.getpeercert(binary_form=True) == old
        kept.sendall(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert kept_rd.read_response().status == 200
        # New key and certificate (new serial) written over the old files.
        d = pki["dir"]
        make_cert(d, "srv-new", "localhost", "DNS:localhost,IP:127.0.0.1", serial=424242)
        os.replace(os.path.join(str(d), "srv-new.key"), pki["srv"][1])
        os.replace(os.path.join(str(d), "srv-new.pem"), pki["srv"][0])
        new = der_of(pki["srv"][0])
        assert new != old
        g.reload_and_wait()
        s, rd = tls_connect(g.port, ctx)
        try:
            assert s.getpeercert(binary_form=True) == new
            serial = openssl(d, "x509", "-noout", "-serial", "-inform", "DER",
                             input=s.getpeercert(binary_form=True))
            assert int(serial.strip().split("=")[1], 16) == 424242, serial
            s.sendall(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert rd.read_response().status == 200
        finally:
            s.close()
        # A connection made before the reload keeps working.
        kept.sendall(b"GET /kept HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = kept_rd.read_response()
        assert r.status == 200 and r.json()["path"] == "/kept"
    finally:
        kept.close()


def test_tls_large_download(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    size = 20 * 1024 * 1024
    s, rd = tls_connect(g.port, client_ctx(pki))
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % size)
        h = hashlib.sha256()
        r = rd.read_response(sink=h.update, timeout=10)
        assert r.status == 200 and r.body_len == size
        assert h.hexdigest() == hashlib.sha256(b"x" * size).hexdigest()
    finally:
        s.close()


@pytest.mark.parametrize("size", [1024 * 1024, 20 * 1024 * 1024, 20 * 1024 * 1024 + 1])
def test_tls_upload(gatehouse, upstream, pki, size):
    """A request body over TLS arrives whole and is answered (a loopback
    upload of 20 MiB takes a fraction of a second; 5 s is generous)."""
    g = gatehouse(raw=tls_listener_config(pki))
    body = os.urandom(size)
    s, rd = tls_connect(g.port, client_ctx(pki))
    try:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % size)
        s.sendall(body)
        r = rd.read_response(timeout=5)
        assert r.status == 200
        echo = r.json()
        assert echo["body_len"] == size
        assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    finally:
        s.close()


def test_plain_http_on_tls_port_is_refused(gatehouse, upstream, pki):
    g = gatehouse(raw=tls_listener_config(pki))
    c = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                d = c.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            data += d
        assert not data.startswith(b"HTTP/1.1 200")
    finally:
        c.close()
    assert upstream.requests == []


# ---------------------------------------------------------------- upstream TLS


def front_config(backend_port, tls_block):
    def cfg(g):
        return (
            "workers: 1\n"
            f"listen:\n  - address: 127.0.0.1:{g.port}\n"
            f"admin:\n  address: 127.0.0.1:{g.admin_port}\n"
            "upstreams:\n"
            f"  secure:\n    endpoints: [\"127.0.0.1:{backend_port}\"]\n"
            f"    tls: {tls_block}\n"
            "routes:\n  - path: /\n    upstream: secure\n"
        )
    return cfg


@pytest.fixture
def tls_backend(tmp_path, upstream, pki):
    """A gatehouse with a TLS listener in front of the plain upstream, used as
    a TLS upstream."""
    g = Gatehouse(tmp_path, upstream_port=upstream.port, raw=tls_listener_config(pki),
                  name="backend")
    try:
        g.start()
        yield g
    finally:
        g.stop()


def test_upstream_tls(gatehouse, upstream, pki, tls_backend):
    g = gatehouse(raw=front_config(tls_backend.port, f"{{ca_file: {pki['ca']}, sni: localhost}}"))
    c = g.conn()
    try:
        for i in range(5):
            c.request("GET", f"/via-tls/{i}")
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, body
            echo = json.loads(body)
            assert echo["path"] == f"/via-tls/{i}"
            assert echo["headers"]["X-Forwarded-Proto"] == "https"
        big = os.urandom(5 * 1024 * 1024)
        c.request("POST", "/via-tls/big", body=big)
        r = c.getresponse()
        assert json.loads(r.read())["body_sha256"] == hashlib.sha256(big).hexdigest()
        c.request("GET", "/bytes/%d" % (8 * 1024 * 1024))
        r = c.getresponse()
        assert r.read() == b"x" * (8 * 1024 * 1024)
    finally:
        c.close()


def test_upstream_tls_wrong_ca_502(gatehouse, upstream, pki, tls_backend):
    g = gatehouse(raw=front_config(tls_backend.port, f"{{ca_file: {pki['ca2']}, sni: localhost}}"))
    status, headers, body = g.request("GET", "/wrong-ca")
    assert_gateway_error(status, headers, body, 502, "upstream_tls_error")
    assert upstream.requests == []


def test_upstream_tls_wrong_name_502(gatehouse, upstream, pki, tls_backend):
    g = gatehouse(raw=front_config(tls_backend.port, f"{{ca_file: {pki['ca']}, sni: wrong.test}}"))
    status, headers, body = g.request("GET", "/wrong-name")
    assert_gateway_error(status, headers, body, 502, "upstream_tls_error")
    assert upstream.requests == []


def test_upstream_tls_verify_off(gatehouse, upstream, pki, tls_backend):
    g = gatehouse(raw=front_config(tls_backend.port, f"{{ca_file: {pki['ca2']}, verify: false}}"))
    status, headers, body = g.request("GET", "/no-verify")
    assert status == 200, body


def test_upstream_tls_to_plain_server_502(gatehouse, upstream, pki):
    g = gatehouse(raw=front_config(upstream.port, f"{{ca_file: {pki['ca']}, sni: localhost}}"))
    t0 = time.time()
    status, headers, body = g.request("GET", "/plain", timeout=15)
    assert_gateway_error(status, headers, body, 502)
    assert time.time() - t0 < 5


def test_upstream_tls_slow_client(gatehouse, upstream, pki, tls_backend):
    """Backpressure from a client that stops reading, with a TLS upstream:
    once the client reads again, the whole body arrives."""
    g = gatehouse(raw=front_config(tls_backend.port, f"{{ca_file: {pki['ca']}, sni: localhost}}"))
    size = 24 * 1024 * 1024
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    rd = HTTPReader(s, 10)
    try:
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
        time.sleep(0.7)
        h = hashlib.sha256()
        r = rd.read_response(sink=h.update, timeout=10)
        assert r.status == 200 and r.body_len == size
        assert h.hexdigest() == hashlib.sha256(b"x" * size).hexdigest()
    finally:
        s.close()
