"""slapd for the tests and benchmarks of swiftlet-auth-ldap: Debian's slapd started by the test
itself in a temporary directory (slapd.conf, the mdb backend, a tree loaded with slapadd), in the
foreground as a child process (`slapd -d 0`), listening on free 127.0.0.1 ports for ldap:// and
ldaps:// -- never the system service. A test CA and certificates made with openssl.

The tree (BASE_LDIF): dc=example,dc=com with ou=People (users), ou=Groups, and the service
account cn=swiftlet,ou=Services that search mode binds as. Anonymous clients may read only the
root DSE and bind; authenticated ones may read the tree; nobody reads userPassword.
`allow bind_anon_dn` is on, so that an *unauthenticated* bind (a DN and an empty password,
RFC 4513 5.1.2) succeeds here: a plugin that sent one would let the client in."""

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from brokers import free_port
from sidecars import short_dir

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
SLAPADD = shutil.which("slapadd") or ("/usr/sbin/slapadd" if Path("/usr/sbin/slapadd").exists() else None)
LDAPADD = shutil.which("ldapadd")
LDAPWHOAMI = shutil.which("ldapwhoami")
LDAPDELETE = shutil.which("ldapdelete")
ROOT = Path(__file__).resolve().parents[2]
MQTT_SCHEMA = ROOT / "etc" / "ldap" / "swiftlet-mqtt.schema"

BASE = "dc=example,dc=com"
PEOPLE = f"ou=People,{BASE}"
GROUPS = f"ou=Groups,{BASE}"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PW = "admin-pw"
SERVICE_DN = f"cn=swiftlet,ou=Services,{BASE}"
SERVICE_PW = "service-pw"

BASE_LDIF = f"""dn: {BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE}
objectClass: organizationalUnit
ou: People

dn: {GROUPS}
objectClass: organizationalUnit
ou: Groups

dn: ou=Services,{BASE}
objectClass: organizationalUnit
ou: Services

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: swiftlet
userPassword: {{SSHA}}PLACEHOLDER

"""


def available():
    return SLAPD is not None and SLAPADD is not None and LDAPADD is not None


def ssha(password):
    """userPassword in slapd's {SSHA} form."""
    pw = password if isinstance(password, bytes) else password.encode()
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(pw + salt).digest() + salt).decode()


def dn_value(value):
    """An RDN value with every byte outside [A-Za-z0-9-] written as \\XX (RFC 4514 allows a hex
    pair for any character): the test's own escaping, independent of the sidecar's."""
    raw = value.encode() if isinstance(value, str) else value
    return "".join(chr(b) if chr(b).isalnum() and b < 0x80 or b == 0x2D else f"\\{b:02x}" for b in raw)


def user_dn(uid, ou=PEOPLE):
    return f"uid={dn_value(uid)},{ou}"


def ldif_attr(name, value):
    """`name:: base64`: any bytes, including leading spaces, colons or non-ASCII."""
    v = value.encode() if isinstance(value, str) else value
    return f"{name}:: {base64.b64encode(v).decode()}"


def user_ldif(uid, password, ou=PEOPLE, uid_number=10000, attrs=None):
    """An inetOrgPerson + posixAccount (+ mqttUser with ACL attributes) entry."""
    lines = [ldif_attr("dn", user_dn(uid, ou)), "objectClass: inetOrgPerson", "objectClass: posixAccount",
             "objectClass: mqttUser", ldif_attr("uid", uid), ldif_attr("cn", uid), ldif_attr("sn", uid),
             f"uidNumber: {uid_number}", "gidNumber: 10000", ldif_attr("homeDirectory", "/home/mqtt")]
    if password is not None:
        lines.append(ldif_attr("userPassword", ssha(password)))
    for name, values in (attrs or {}).items():
        for v in values:
            lines.append(ldif_attr(name, v))
    return "\n".join(lines) + "\n\n"


class Certificates:
    """A CA, a server certificate for 127.0.0.1 / localhost and a client certificate, made with
    openssl in a temporary directory."""

    def __init__(self):
        self.dir = short_dir()
        d = self.dir

        def run(*args):
            subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=d)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Swiftlet test CA",
            "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                          ("wrongname", "subjectAltName=DNS:ldap.invalid\nextendedKeyUsage=serverAuth"),
                          ("client", "extendedKeyUsage=clientAuth")):
            (d / f"{name}.ext").write_text(ext + "\n")
            cn = {"server": "127.0.0.1", "wrongname": "ldap.invalid"}.get(name, "swiftlet")
            run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext")
        # A second CA that signed nothing here: trusting it must not make the server trusted.
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Other CA",
            "-keyout", "other.key", "-out", "other.pem")
        self.ca = str(d / "ca.pem")
        self.other_ca = str(d / "other.pem")
        self.server_cert, self.server_key = str(d / "server.pem"), str(d / "server.key")
        # Signed by the CA, but for another name (ldap.invalid): refused when the name is checked.
        self.wrong_name_cert, self.wrong_name_key = str(d / "wrongname.pem"), str(d / "wrongname.key")
        self.client_cert, self.client_key = str(d / "client.pem"), str(d / "client.key")

    def destroy(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Slapd:
    """One slapd: ldap://127.0.0.1:port and ldaps://127.0.0.1:tls_port (with a Certificates), an mdb
    database in its own directory, the base tree (and `ldif`) loaded with slapadd."""

    def __init__(self, ca=None, verify_client=False, wrong_name=False, ldif=""):
        self.dir = short_dir()
        self.port = free_port()
        self.tls_port = free_port() if ca else None
        self.ca = ca
        self.proc = None
        (self.dir / "db").mkdir()
        self.conf = self.dir / "slapd.conf"
        self.conf.write_text(self._conf(ca, verify_client, wrong_name))
        tree = BASE_LDIF.replace("{SSHA}PLACEHOLDER", ssha(SERVICE_PW)) + ldif
        (self.dir / "tree.ldif").write_text(tree)
        r = subprocess.run([SLAPADD, "-f", str(self.conf), "-l", str(self.dir / "tree.ldif")], capture_output=True)
        assert r.returncode == 0, f"slapadd: {r.stderr.decode(errors='replace')}"

    def _conf(self, ca, verify_client, wrong_name):
        lines = [
            "include /etc/ldap/schema/core.schema",
            "include /etc/ldap/schema/cosine.schema",
            "include /etc/ldap/schema/nis.schema",
            "include /etc/ldap/schema/inetorgperson.schema",
            f"include {MQTT_SCHEMA}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            f"pidfile {self.dir / 'slapd.pid'}",
            f"argsfile {self.dir / 'slapd.args'}",
            "allow bind_anon_dn",
        ]
        if ca:
            cert, key = (ca.wrong_name_cert, ca.wrong_name_key) if wrong_name else (ca.server_cert, ca.server_key)
            lines += [f"TLSCACertificateFile {ca.ca}", f"TLSCertificateFile {cert}",
                      f"TLSCertificateKeyFile {key}", f"TLSVerifyClient {'demand' if verify_client else 'never'}"]
        lines += [
            'access to dn.base="" by * read',
            'access to dn.base="cn=Subschema" by * read',
            "database mdb",
            "maxsize 268435456",
            f'suffix "{BASE}"',
            f'rootdn "{ADMIN_DN}"',
            f"rootpw {ADMIN_PW}",
            f"directory {self.dir / 'db'}",
            "index uid eq",
            "index objectClass eq",
            "access to attrs=userPassword by anonymous auth by * none",
            "access to * by users read by * none",
        ]
        return "\n".join(lines) + "\n"

    @property
    def urls(self):
        u = f"ldap://127.0.0.1:{self.port}/"
        return u + (f" ldaps://127.0.0.1:{self.tls_port}/" if self.tls_port else "")

    def start(self):
        self.log = open(self.dir / "slapd.log", "ab")
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-f", str(self.conf), "-h", self.urls],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"slapd exited {self.proc.returncode}: {self.log_text()}")
            if self._answers():
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"slapd did not start: {self.log_text()}")
            time.sleep(0.05)

    def _answers(self):
        for port in (self.port, self.tls_port):
            if port is None:
                continue
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            except OSError:
                return False
        return True

    def log_text(self):
        try:
            return (self.dir / "slapd.log").read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, ldif):
        """Adds entries as the rootdn over LDAP (the server must be running)."""
        r = subprocess.run([LDAPADD, "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-D", ADMIN_DN, "-w", ADMIN_PW],
                           input=ldif.encode(), capture_output=True)
        assert r.returncode == 0, f"ldapadd: {r.stderr.decode(errors='replace')}\n{ldif[:2000]}"

    def delete(self, dn):
        """Deletes an entry as the rootdn, if it exists."""
        subprocess.run([LDAPDELETE, "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-D", ADMIN_DN, "-w", ADMIN_PW, dn],
                       capture_output=True)

    def whoami(self, dn, password):
        """ldapwhoami's exit status for a simple bind as dn (0: bound)."""
        return subprocess.run([LDAPWHOAMI, "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-D", dn, "-w", password],
                              capture_output=True).returncode
