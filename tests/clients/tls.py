"""HTTPS and mutual TLS, with a CA and certificates made here (Debian's python3-cryptography).

Clients: curl (--cacert, --cert) and Python's ssl through requests and raw sockets. HTTPS
with the right CA works, another CA is refused by the client, TLS 1.1 is refused by relud and
1.2 and 1.3 work, plain HTTP on the HTTPS port gets no reply; the start stops with a message
for an unreadable key, a key of another certificate, an expired or not yet valid
certificate, and a certificate without a key; with a client CA a request without a client
certificate, or with one another CA signed, is 403 while the health probes stay open;
SIGHUP serves a new certificate to new connections while a connection already open goes
on, and a broken pair on SIGHUP keeps the old one.
"""
import datetime
import json
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import warnings

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common import Daemon, check, finish

TMP = tempfile.mkdtemp(prefix="relud-tls-")
warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.1, on purpose
NOW = datetime.datetime.now(datetime.timezone.utc)


def write(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def make(cn, issuer=None, ca=False, days=(-1, 30), san=True):
    """(cert, key) PEM bytes; self-signed when issuer is None, else signed by (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    icert, ikey = (None, key) if issuer is None else issuer
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(name if icert is None else icert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + datetime.timedelta(days=days[0]))
         .not_valid_after(NOW + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san and not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address(
                "127.0.0.1"))]), critical=False)
    cert = b.sign(ikey, hashes.SHA256())
    return cert, key


def pem(cert, key):
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def start_fails(args, want):
    try:
        d = Daemon(*args)
    except RuntimeError as e:
        return want in str(e), str(e)[-300:]
    d.stop()
    return False, "it started"


def peer_cn(port, ca_path):
    ctx = ssl.create_default_context(cafile=ca_path)
    with socket.create_connection(("127.0.0.1", port)) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            subj = dict(x[0] for x in t.getpeercert()["subject"])
            return subj.get("commonName")


def main():
    ca = make("relud test CA", ca=True, days=(-1, 365))
    other_ca = make("another CA", ca=True, days=(-1, 365))
    ca_path = write("ca.crt", pem(*ca)[0])
    other_path = write("other-ca.crt", pem(*other_ca)[0])
    srv_crt, srv_key = pem(*make("relud-1", ca))
    crt = write("srv.crt", srv_crt)
    key = write("srv.key", srv_key)
    cli_crt, cli_key = pem(*make("client", ca, san=False))
    bad_crt, bad_key = pem(*make("intruder", other_ca, san=False))
    cli = (write("cli.crt", cli_crt), write("cli.key", cli_key))
    bad = (write("bad.crt", bad_crt), write("bad.key", bad_key))

    d = Daemon("--tls-cert-file", crt, "--tls-key-file", key)
    try:
        url = f"https://localhost:{d.port}"
        r = requests.get(url + "/v2", verify=ca_path, timeout=10)
        check("HTTPS with the CA: requests", r.status_code == 200 and r.json()["name"] == "relud")
        p = subprocess.run(["curl", "-s", "--cacert", ca_path, url + "/v2/health/ready", "-o",
                            "/dev/null", "-w", "%{http_code}"], capture_output=True, timeout=30)
        check("HTTPS with the CA: curl", p.stdout == b"200", p.stdout + p.stderr)
        # binary tensor data over TLS: the reply's header, then its tensor bytes (sent from
        # the workspace where they lie, over several TLS records) equal the JSON reply's numbers
        rows = 3000
        xs = [((i * 7919) % 1000) / 500.0 - 1.0 for i in range(rows * 10)]
        head = json.dumps({"inputs": [{"name": "input", "shape": [rows, 10], "datatype": "FP32",
                                       "parameters": {"binary_data_size": rows * 40}}],
                           "parameters": {"binary_data_output": True}}).encode()
        r = requests.post(url + "/v2/models/simple_nn/infer",
                          data=head + struct.pack(f"<{rows * 10}f", *xs), verify=ca_path,
                          headers={"Inference-Header-Content-Length": str(len(head)),
                                   "Content-Type": "application/octet-stream"}, timeout=30)
        hl = int(r.headers.get("Inference-Header-Content-Length", "0"))
        ok = r.status_code == 200 and len(r.content) == hl + rows * 20
        j = requests.post(url + "/v2/models/simple_nn/infer", verify=ca_path, timeout=30,
                          json={"inputs": [{"name": "input", "shape": [rows, 10],
                                            "datatype": "FP32", "data": xs}]}).json()
        if ok:
            got = struct.unpack(f"<{rows * 5}f", r.content[hl:])
            ok = all(a == struct.unpack("<f", struct.pack("<f", b))[0]
                     for a, b in zip(got, j["outputs"][0]["data"]))
        check("binary infer over TLS: the reply's tensor bytes are the JSON reply's numbers", ok,
              f"{r.status_code} {len(r.content)} {r.text[:200]}")
        p = subprocess.run(["curl", "-s", "--cacert", other_path, url + "/v2"],
                           capture_output=True, timeout=30)
        check("another CA: curl refuses the server (exit 60)", p.returncode == 60, str(p.returncode))
        for ver, ok in [(ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True),
                        (ssl.TLSVersion.TLSv1_3, True)]:
            ctx = ssl.create_default_context(cafile=ca_path)
            ctx.minimum_version = ctx.maximum_version = ver
            if ver == ssl.TLSVersion.TLSv1_1:
                ctx.set_ciphers("ALL:@SECLEVEL=0")
            try:
                with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost") as t:
                        got = t.version()
            except (ssl.SSLError, OSError) as e:
                got = None
            check(f"{ver.name} is {'accepted' if ok else 'refused'}", (got is not None) == ok,
                  str(got))
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except OSError:
                data = b""
        check("plain HTTP on the HTTPS port gets no HTTP reply", not data.startswith(b"HTTP"),
              data[:60])

        # SIGHUP: a new certificate for new connections, the open one goes on
        s = requests.Session()
        check("a keep-alive connection before the reload",
              s.get(url + "/v2", verify=ca_path, timeout=10).status_code == 200)
        check("the served certificate is relud-1", peer_cn(d.port, ca_path) == "relud-1")
        new_crt, new_key = pem(*make("relud-2", ca))
        write("srv.crt", new_crt)
        write("srv.key", new_key)
        os.kill(d.pid(), 1)
        deadline = time.time() + 10
        while time.time() < deadline and "tls: reloaded" not in d.text():
            time.sleep(0.02)
        check("SIGHUP: new connections get relud-2", peer_cn(d.port, ca_path) == "relud-2")
        check("and the connection open before goes on",
              s.get(url + "/v2", verify=ca_path, timeout=10).status_code == 200)
        write("srv.key", pem(*make("x", ca))[1])  # a key of another certificate
        os.kill(d.pid(), 1)
        deadline = time.time() + 10
        while time.time() < deadline and "keeping the certificate" not in d.text():
            time.sleep(0.02)
        check("a broken pair on SIGHUP is logged and relud-2 stays",
              "does not belong to the certificate" in d.text() and
              peer_cn(d.port, ca_path) == "relud-2", d.text()[-400:])
    finally:
        d.stop()

    # start-up errors
    good_crt = write("good.crt", srv_crt)
    good_key = write("good.key", srv_key)
    ok, why = start_fails(["--tls-cert-file", good_crt, "--tls-key-file", TMP + "/nope.key"],
                          "nope.key: No such file or directory")
    check("an unreadable key stops the start, naming it", ok, why)
    ok, why = start_fails(["--tls-cert-file", good_crt, "--tls-key-file", cli[1]],
                          "the key does not belong to the certificate")
    check("a key of another certificate stops the start", ok, why)
    exp = pem(*make("old", ca, days=(-60, -1)))
    ok, why = start_fails(["--tls-cert-file", write("exp.crt", exp[0]), "--tls-key-file",
                           write("exp.key", exp[1])], "expired on")
    check("an expired certificate stops the start, with its date", ok, why)
    fut = pem(*make("future", ca, days=(5, 30)))
    ok, why = start_fails(["--tls-cert-file", write("fut.crt", fut[0]), "--tls-key-file",
                           write("fut.key", fut[1])], "is not valid before")
    check("a not yet valid certificate stops the start", ok, why)
    ok, why = start_fails(["--tls-cert-file", good_crt], "set both (HTTPS) or neither")
    check("a certificate without a key stops the start", ok, why)
    ok, why = start_fails(["--tls-cert-file", good_key, "--tls-key-file", good_key],
                          "not a PEM certificate chain")
    check("a key given as the certificate stops the start", ok, why)

    # mutual TLS
    d = Daemon("--tls-cert-file", good_crt, "--tls-key-file", good_key, "--tls-client-ca-file",
               ca_path)
    try:
        url = f"https://localhost:{d.port}"
        r = requests.get(url + "/v2", verify=ca_path, timeout=10)
        check("mTLS: no client certificate is 403 naming the requirement",
              r.status_code == 403 and "no client certificate" in r.json()["error"], r.text)
        r = requests.get(url + "/v2", verify=ca_path, cert=cli, timeout=10)
        check("mTLS: a certificate the CA signed is served", r.status_code == 200, r.text)
        r = requests.get(url + "/v2", verify=ca_path, cert=bad, timeout=10)
        check("mTLS: a certificate another CA signed is 403",
              r.status_code == 403 and "not accepted" in r.json()["error"], r.text)
        r = requests.get(url + "/v2/health/ready", verify=ca_path, timeout=10)
        check("mTLS: the health probes need no client certificate", r.status_code == 200)
        p = subprocess.run(["curl", "-s", "--cacert", ca_path, "--cert", cli[0], "--key", cli[1],
                            url + "/v2/models/simple_nn/infer", "-d",
                            '{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", '
                            '"data": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}]}'],
                           capture_output=True, timeout=30)
        check("mTLS: curl with its certificate runs an inference", b"1.2734791" in p.stdout,
              p.stdout + p.stderr)
    finally:
        d.stop()
    finish()


if __name__ == "__main__":
    main()
