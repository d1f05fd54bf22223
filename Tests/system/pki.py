"""A test PKI made with openssl: a CA, a server certificate for 127.0.0.1, client
certificates (one of them revoked in a CRL), a second server certificate (for reload tests)
and a client certificate from another CA, which the listeners must refuse."""

import subprocess
from pathlib import Path


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


CA_CNF = """
[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
default_crl_days = 2
policy = anything
[anything]
commonName = supplied
"""


class PKI:
    def __init__(self, d: Path):
        self.dir = Path(d)

    def path(self, name):
        return str(self.dir / name)

    def make(self):
        d = self.dir
        self.ca("ca", "/O=Swiftlet Test/CN=Swiftlet Test CA")
        self.ca("otherca", "/CN=Other CA/O=Elsewhere")
        self.leaf("server", "ca", "/CN=localhost", san="subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.leaf("server2", "ca", "/CN=server-two", san="subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.leaf("client1", "ca", "/O=Swiftlet Test/CN=client-1")
        self.leaf("client2", "ca", "/O=Swiftlet Test/CN=client-2")
        self.leaf("stranger", "otherca", "/O=Swiftlet Test/CN=client-1")
        # A CRL of "ca" revoking client2.
        (d / "index.txt").write_text("")
        (d / "crlnumber").write_text("01\n")
        (d / "serial").write_text("1000\n")
        (d / "ca.cnf").write_text(CA_CNF.format(dir=d))
        _run("ca", "-config", "ca.cnf", "-revoke", "client2.pem", cwd=d)
        _run("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", cwd=d)
        # A key that is not the server certificate's.
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "wrong.key", cwd=d)
        return self

    def ca(self, name, subject):
        _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-subj", subject,
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=self.dir)

    def leaf(self, name, ca, subject, san=None):
        d = self.dir
        _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
             "-out", f"{name}.csr", cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text((san or "basicConstraints=CA:FALSE") + "\n")
        _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-sha256", "-extfile", str(ext), "-out", f"{name}.pem", cwd=d)


def tls_listener(kind, port, pki, cert="server", **opts):
    """A [[listeners]] table for a tls/wss listener using the PKI's files."""
    lines = ["[[listeners]]", f'type = "{kind}"', f'bind = "127.0.0.1:{port}"',
             f'certfile = "{pki.path(cert + ".pem")}"', f'keyfile = "{pki.path(cert + ".key")}"']
    for k, v in opts.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, (int, float)):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f'{k} = "{v}"')
    return "\n".join(lines) + "\n\n"
