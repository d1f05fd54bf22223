"""deploy/ (issue 18 point 3): the systemd units pass `systemd-analyze verify`; the broker
speaks systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1 on $NOTIFY_SOCKET);
supervisord runs the broker and the gateways from deploy/supervisord/swiftlet.conf and a STOMP
client exchanges a message with an MQTT client through them."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from brokers import free_port, render_config, swiftlet_path, toml_value
from clients import Client, wait_for
from sidecars import ROOT, short_dir
from stompgw import gateways_binary, shipped_config, stomp_client, wait_port

DEPLOY = ROOT / "deploy"
BIN = "/usr/local/bin/"


def localized(text, d):
    """A deploy file with its installed paths moved into the test's folder `d`."""
    return (text.replace(BIN, str(swiftlet_path().parent) + "/")
            .replace("/etc/swiftlet/", f"{d}/etc/").replace("/var/lib/swiftlet", f"{d}/data")
            .replace("/var/log/swiftlet", f"{d}/log"))


# -- systemd ---------------------------------------------------------------------------------

SIDECAR_DROPINS = ["auth_sql", "auth_redis", "auth_mongo", "auth_ldap", "auth_http"]


def systemd_verify(tmp_path, tweak=None):
    """`systemd-analyze verify` of every unit and, through them, every drop-in
    (`<unit>.d/*.conf`, found next to the unit); `tweak(dir)` may change the copies first."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not installed (scripts/test installs systemd)")
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"swiftlet.service", "swiftlet-sidecar@.service", "swiftlet-gateways.service"}
    for u in units:
        (tmp_path / u.name).write_text(u.read_text().replace(BIN, str(swiftlet_path().parent) + "/"))
    for d in (DEPLOY / "systemd").glob("*.service.d"):
        shutil.copytree(d, tmp_path / d.name)
    # A template is verified through its instances: each with a drop-in, and one without.
    names = [str(tmp_path / u.name) for u in units if "@." not in u.name]
    for inst in SIDECAR_DROPINS + ["custom"]:
        shutil.copy(tmp_path / "swiftlet-sidecar@.service", tmp_path / f"swiftlet-sidecar@{inst}.service")
        names.append(str(tmp_path / f"swiftlet-sidecar@{inst}.service"))
    if tweak:
        tweak(tmp_path)
    r = subprocess.run([analyze, "verify", *names], capture_output=True, text=True, timeout=60)
    return r, [l for l in (r.stdout + r.stderr).splitlines() if "swiftlet" in l]


def test_systemd_units_verify(tmp_path):
    r, problems = systemd_verify(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert problems == [], "\n".join(problems)


def test_systemd_dropins_are_read_by_verify(tmp_path):
    """The check above covers the drop-ins: a wrong key in one is reported, with its file."""
    def spoil(d):
        with open(d / "swiftlet-sidecar@auth_sql.service.d" / "network.conf", "a") as f:
            f.write("NoSuchSetting=1\n")
    _, problems = systemd_verify(tmp_path, spoil)
    assert any("network.conf" in l and "NoSuchSetting" in l for l in problems), problems


def test_systemd_network_dropins_restrict_each_sidecar():
    template = (DEPLOY / "systemd" / "swiftlet-sidecar@.service").read_text()
    assert "RestrictAddressFamilies=AF_UNIX\n" in template and "IPAddressDeny=any" in template
    for inst in SIDECAR_DROPINS:
        conf = (DEPLOY / "systemd" / f"swiftlet-sidecar@{inst}.service.d" / "network.conf").read_text()
        for line in ("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "IPAddressDeny=any", "IPAddressAllow=localhost",
                     "# >>> The database host", "#IPAddressAllow="):
            assert line in conf, (inst, line)
    gw = (DEPLOY / "systemd" / "swiftlet-gateways.service.d" / "network.conf").read_text()
    shipped = (ROOT / "etc" / "plugins" / "gateways.toml").read_text()
    ports = [l.split("=")[1].split("#")[0].strip() for l in shipped.splitlines() if l.startswith("listener =")]
    assert ports == ["1884", "61613", "61616"], ports
    for rule in ("SocketBindDeny=any", "SocketBindAllow=udp:1884", "SocketBindAllow=tcp:61613", "SocketBindAllow=tcp:61616"):
        assert rule in gw, rule


def test_broker_unit_declares_notify_and_watchdog():
    unit = (DEPLOY / "systemd" / "swiftlet.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true",
                 "User=swiftlet"):
        assert line in unit, line


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path if not path.startswith("@") else "\0" + path[1:])
        self.s.setblocking(False)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.s.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return self.messages

    def lines(self):
        return [l for m in self.poll() for l in m.splitlines()]


@pytest.mark.parametrize("abstract", [False, True])
def test_broker_sends_ready_watchdog_and_stopping(tmp_path, abstract):
    d = short_dir()
    path = f"@swiftlet-test-{os.getpid()}-{time.monotonic_ns()}" if abstract else str(d / "notify.sock")
    n = NotifySocket(path)
    port = free_port()
    (d / "swiftlet.toml").write_text(render_config(port) + f'\n[persistence]\ndata_dir = "{d}/data"\n')
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    log = open(tmp_path / "broker.log", "wb")
    p = subprocess.Popen([str(swiftlet_path()), "--config", str(d / "swiftlet.toml")], cwd=d, env=env,
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "READY=1" in n.lines(), timeout=30, msg="READY=1")
        # Ready means serving: a client connects at once.
        Client(type("B", (), {"host": "127.0.0.1", "port": port})(), version=5).disconnect()
        assert f"MAINPID={p.pid}" in n.lines()
        wait_for(lambda: n.lines().count("WATCHDOG=1") >= 3, timeout=15, msg="three WATCHDOG=1")
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        wait_for(lambda: "STOPPING=1" in n.lines(), timeout=5, msg="STOPPING=1")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_no_notify_socket_no_watchdog_for_another_pid(tmp_path):
    """WATCHDOG_PID naming another process: readiness only, no watchdog pings."""
    d = short_dir()
    n = NotifySocket(str(d / "notify.sock"))
    port = free_port()
    (d / "swiftlet.toml").write_text(render_config(port) + f'\n[persistence]\ndata_dir = "{d}/data"\n')
    env = dict(os.environ, NOTIFY_SOCKET=str(d / "notify.sock"), WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    p = subprocess.Popen([str(swiftlet_path()), "--config", str(d / "swiftlet.toml")], cwd=d, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "READY=1" in n.lines(), timeout=30, msg="READY=1")
        # Long enough for several pings at 50 ms had they been armed.
        time.sleep(1)
        assert "WATCHDOG=1" not in n.lines()
    finally:
        p.terminate()
        p.wait(30)


# -- supervisord -----------------------------------------------------------------------------

def test_supervisord_runs_broker_and_gateways_from_deploy(tmp_path):
    supervisord = shutil.which("supervisord")
    if supervisord is None:
        pytest.fail("supervisord not installed (Debian package supervisor, scripts/test installs it)")
    if not gateways_binary().exists():
        pytest.fail(f"{gateways_binary()} not built")
    d = short_dir()
    for sub in ("etc/plugins", "data", "log"):
        (d / sub).mkdir(parents=True)
    port, stomp_port = free_port(), free_port()
    (d / "etc" / "swiftlet.toml").write_text(
        render_config(port) + f'\n[persistence]\ndata_dir = {toml_value(str(d / "data"))}\n')
    (d / "etc" / "plugins" / "gateways.toml").write_text(shipped_config({
        "listener = 61613 ": f'listener = "127.0.0.1:{stomp_port}" ',
        "listener = 1884 ": f'listener = "127.0.0.1:{free_port()}" ',
        "listener = 61616 ": f'listener = "127.0.0.1:{free_port()}" '}))
    conf = localized((DEPLOY / "supervisord" / "swiftlet.conf").read_text(), d)
    # The test runs as whoever runs it: no service users.
    conf = "\n".join(l for l in conf.splitlines() if not l.startswith("user="))
    (d / "supervisord.conf").write_text(conf)
    p = subprocess.Popen([supervisord, "-c", str(d / "supervisord.conf")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=30)
        wait_port(stomp_port, timeout=30)
        def status():
            return subprocess.run(["supervisorctl", "-c", str(d / "supervisord.conf"), "status"],
                                  capture_output=True, text=True, timeout=30).stdout
        wait_for(lambda: status().count("RUNNING") == 2, timeout=30, msg="both programs RUNNING")
        s = status()
        assert "swiftlet-all:swiftlet " in s and "swiftlet-all:swiftlet-gateways" in s, s
        broker = type("B", (), {"host": "127.0.0.1", "port": port})()
        c, col = stomp_client(stomp_port)
        c.subscribe(destination="/topic/deploy/#", id="s1", ack="auto", headers={"receipt": "r1"})
        assert col.receipt() == "r1"
        m = Client(broker, version=5)
        m.subscribe("deploy/up", qos=1)
        m.publish("deploy/down", b"to stomp", qos=1)
        got = col.get()
        assert (got.headers["destination"], got.body) == ("/topic/deploy/down", "to stomp")
        c.send(destination="/topic/deploy/up", body="to mqtt")
        assert m.get().payload == b"to mqtt"
        c.disconnect()
        m.disconnect()
        # supervisorctl restarts the broker; the gateways reconnect by themselves.
        r = subprocess.run(["supervisorctl", "-c", str(d / "supervisord.conf"), "restart", "swiftlet-all:swiftlet"],
                           capture_output=True, text=True, timeout=60)
        assert "started" in r.stdout, r.stdout + r.stderr
        wait_port(port, timeout=30)
        wait_for(lambda: (d / "log" / "swiftlet.log").read_text(errors="replace").count("sidecar registered") >= 2,
                 timeout=30, msg="gateways registered again after the broker's restart")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    assert "stopped" in (d / "log" / "swiftlet.log").read_text(errors="replace")
