"""Real MariaDB and PostgreSQL servers for the SQL auth tests, started by the tests themselves:
each in a temporary directory, on a free 127.0.0.1 port (and a Unix socket in that directory),
as the invoking user (root) for MariaDB and as `postgres` (via setpriv) for PostgreSQL, never
as a system service. `mariadb_server` / `pgsql_server` (conftest.py) start one of each per
session; tests that stop a database make their own instance.

Each server gets a database `mqtt`, a user `mqtt` (password `mqttpw`, reaching it over TCP
with a real password check), and the seed's exact CREATE TABLE and INSERT statements
(/work/shared/seeds, the MySQL and PostgreSQL sections)."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from brokers import free_port

DB_USER = "mqtt"
DB_PASSWORD = "mqttpw"

# The seed's MySQL section, verbatim.
MYSQL_SCHEMA = """
CREATE TABLE `mqtt_user` (
`id` int(11) unsigned NOT NULL AUTO_INCREMENT,
`username` varchar(100) DEFAULT NULL,
`password` varchar(100) DEFAULT NULL,
`salt` varchar(20) DEFAULT NULL,
`is_superuser` tinyint(1) DEFAULT 0,
`created` datetime DEFAULT NULL,
PRIMARY KEY (`id`),
UNIQUE KEY `mqtt_username` (`username`)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE `mqtt_acl` (
`id` int(11) unsigned NOT NULL AUTO_INCREMENT,
`allow` int(1) DEFAULT NULL COMMENT '0: deny, 1: allow',
`ipaddr` varchar(60) DEFAULT NULL COMMENT 'IpAddress',
`username` varchar(100) DEFAULT NULL COMMENT 'Username',
`clientid` varchar(100) DEFAULT NULL COMMENT 'ClientId',
`access` int(2) NOT NULL COMMENT '1: subscribe, 2: publish, 3: pubsub',
`topic` varchar(100) NOT NULL DEFAULT '' COMMENT 'Topic Filter',
PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `mqtt_acl` (`id`, `allow`, `ipaddr`, `username`, `clientid`, `access`, `topic`)
VALUES
(1,1,NULL,'$all',NULL,2,'#'),
(2,0,NULL,'$all',NULL,1,'$SYS/#'),
(3,0,NULL,'$all',NULL,1,'eq #'),
(5,1,'127.0.0.1',NULL,NULL,2,'$SYS/#'),
(6,1,'127.0.0.1',NULL,NULL,2,'#'),
(7,1,NULL,'dashboard',NULL,1,'$SYS/#');
"""

# The seed's PostgreSQL section, verbatim.
PGSQL_SCHEMA = """
CREATE TABLE mqtt_user (
id SERIAL primary key,
is_superuser boolean,
username character varying(100),
password character varying(100),
salt character varying(40)
);
CREATE TABLE mqtt_acl (
id SERIAL primary key,
allow integer,
ipaddr character varying(60),
username character varying(100),
clientid character varying(100),
access integer,
topic character varying(100)
);
INSERT INTO mqtt_acl (id, allow, ipaddr, username, clientid, access, topic)
VALUES
(1,1,NULL,'$all',NULL,2,'#'),
(2,0,NULL,'$all',NULL,1,'$SYS/#'),
(3,0,NULL,'$all',NULL,1,'eq #'),
(5,1,'127.0.0.1',NULL,NULL,2,'$SYS/#'),
(6,1,'127.0.0.1',NULL,NULL,2,'#'),
(7,1,NULL,'dashboard',NULL,1,'$SYS/#');
"""

PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def require_root():
    """mariadbd --user=root and setpriv to postgres need root (scripts/test runs as root)."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip("the database servers are started as root (scripts/test)")
    if not shutil.which("mariadb-install-db") or not (PG_BIN / "postgres").exists():
        pytest.skip("mariadb-server and postgresql are not installed (scripts/test installs them)")


def sql_literal(v):
    """A SQL string literal for test data written by the tests (not by the sidecar)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"


def _wait(cond, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


class DBServer:
    kind = ""

    def __init__(self):
        # Short and world-traversable: Unix socket paths are limited, and postgres must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix=f"sw{self.kind}", dir="/tmp"))
        os.chmod(self.dir, 0o711)
        self.port = None
        self.proc = None
        self.log = self.dir / "server.log"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class MariaDB(DBServer):
    kind = "mysql"

    def __init__(self):
        super().__init__()
        self.datadir = self.dir / "data"
        self.socket = self.dir / "sock"
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={self.datadir}",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.start()
        self.sql(f"CREATE DATABASE mqtt; CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; "
                 f"CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY '{DB_PASSWORD}'; "
                 f"GRANT ALL ON mqtt.* TO '{DB_USER}'@'127.0.0.1'; GRANT ALL ON mqtt.* TO '{DB_USER}'@'localhost';",
                 database=None)
        self.sql(MYSQL_SCHEMA)

    def start(self, port=None):
        self.port = port or self.port or free_port()
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", "--user=root", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.dir / 'pid'}",
             f"--log-error={self.log}", "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
             "--innodb-log-file-size=8M", "--max-connections=500", "--performance-schema=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self._ping() or not self.alive(), "mariadbd answers")
        assert self.alive(), f"mariadbd exited:\n{self.log_tail()}"

    def _ping(self):
        return subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", "select 1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def sql(self, statements, database="mqtt"):
        """Runs statements as root; returns the rows (tab-separated, no header)."""
        cmd = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "--batch", "--skip-column-names"]
        if database:
            cmd.append(database)
        r = subprocess.run(cmd, input=statements.encode(), capture_output=True)
        assert r.returncode == 0, f"mariadb: {r.stderr.decode(errors='replace')}\n{statements[:500]}"
        return [line.split("\t") for line in r.stdout.decode(errors="replace").splitlines()]

    def pool_toml(self, plugin, extra=""):
        return (f"[{plugin}.mysql_pool]\nhost = \"127.0.0.1\"\nport = {self.port}\nuser = \"{DB_USER}\"\n"
                f"password = \"{DB_PASSWORD}\"\ndatabase = \"mqtt\"\n{extra}")


class PostgreSQL(DBServer):
    kind = "pgsql"

    def __init__(self):
        super().__init__()
        self.datadir = self.dir / "data"
        self.datadir.mkdir()
        shutil.chown(self.datadir, "postgres", "postgres")
        os.chmod(self.datadir, 0o700)
        shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text("postgres\n")
        shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(AS_POSTGRES + [str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                                      "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                                      "-E", "UTF8", "--locale=C"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.start()
        self.sql(f"CREATE USER {DB_USER} PASSWORD '{DB_PASSWORD}'; CREATE DATABASE mqtt OWNER {DB_USER};",
                 database="postgres")
        self.sql(PGSQL_SCHEMA, user=DB_USER)

    def start(self, port=None):
        self.port = port or self.port or free_port()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            AS_POSTGRES + [str(PG_BIN / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                           "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                           "-c", "max_connections=300", "-c", "shared_buffers=16MB"],
            stdout=logf, stderr=logf)
        logf.close()
        _wait(lambda: self._ping() or not self.alive(), "postgres answers")
        assert self.alive(), f"postgres exited:\n{self.log_tail()}"

    def _ping(self):
        return subprocess.run(AS_POSTGRES + [str(PG_BIN / "pg_isready"), "-h", str(self.dir), "-p", str(self.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def stop(self):
        # SIGINT: "fast" shutdown (SIGTERM waits for clients to disconnect).
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
        super().stop()

    def sql(self, statements, database="mqtt", user="postgres"):
        r = subprocess.run(AS_POSTGRES + ["psql", "-X", "-q", "-h", str(self.dir), "-p", str(self.port), "-U", user,
                                          "-d", database, "-v", "ON_ERROR_STOP=1", "-A", "-t", "-F", "\t"],
                           input=statements.encode(), capture_output=True)
        assert r.returncode == 0, f"psql: {r.stderr.decode(errors='replace')}\n{statements[:500]}"
        return [line.split("\t") for line in r.stdout.decode(errors="replace").splitlines() if line]

    def pool_toml(self, plugin, extra=""):
        return (f"[{plugin}.pgsql_pool]\nhost = \"127.0.0.1\"\nport = {self.port}\nusername = \"{DB_USER}\"\n"
                f"password = \"{DB_PASSWORD}\"\ndatabase = \"mqtt\"\n{extra}")
