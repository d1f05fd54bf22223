"""`swiftlet-ctl plugins reload auth_http` as a hand-over (issue 18 point 2): under a 200 msg/s
QoS 1 publish whose every message asks the HTTP service (a new topic each time, so no cached
ACL answer) and CONNECTs that ask auth_req, the new sidecar process registers, takes the new
requests, the old one finishes those in flight and stops. No client is disconnected, no
publish is refused, no CONNECT is refused."""

import os
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from clients import wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from mqttraw import RawClient
from sidecars import short_dir, sidecar_config, wait_registered
from test_auth_http import NAME, plugin_toml, service, sidecar_binary, sidecar_pid  # noqa: F401  (service: fixture)

pytestmark = pytest.mark.skipif(not sidecar_binary().exists(), reason=f"{sidecar_binary()} not built")

RATE = 200  # publishes per second


def start(broker_factory, service, **kw):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    (plugins / f"{NAME}.toml").write_text(plugin_toml(service, **kw))
    # The built-in rules refuse everything: a lookup that fell through to them (the HTTP
    # sidecar gone for a moment) is a refused publish, as in the report.
    (d / "acl.toml").write_text('[[rules]]\npermission = "deny"\ntopics = ["#"]\n')
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n' + ctl_config(d / "ctl.sock")
                       + f'\n[auth]\nacl_file = "{d / "acl.toml"}"\n')
    wait_registered(b, NAME)
    return b, d / "ctl.sock"


class Publisher:
    """alice publishes QoS 1 to alice/load/<n> at RATE/s over CONNS connections (a connection
    asks the ACL for one publish at a time, in order): MQTT 5, so a refusal is PUBACK 0x87."""

    CONNS = 8

    def __init__(self, b):
        self.acks = {}
        self.disconnects = 0
        self.sent = 0
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.clients = [self.connect(b, i) for i in range(self.CONNS)]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def connect(self, b, i):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub{i}-{os.urandom(3).hex()}",
                        protocol=mqtt.MQTTv5)
        c.username_pw_set("alice", "secret")

        def on_publish(client, userdata, mid, reason_code, properties):
            with self.lock:
                self.acks[(i, mid)] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)

        def on_disconnect(*a):
            with self.lock:
                self.disconnects += 1

        c.on_publish = on_publish
        c.on_disconnect = on_disconnect
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.max_inflight_messages_set(1000)
        c.connect("127.0.0.1", b.port, keepalive=30)
        c.loop_start()
        assert connected.wait(10), "publisher did not connect"
        return c

    def run(self):
        start = time.monotonic()
        while not self.stop_flag.is_set():
            self.clients[self.sent % self.CONNS].publish(f"alice/load/{self.sent}", b"x", qos=1)
            self.sent += 1
            ahead = start + self.sent / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)
        wait_for(lambda: len(self.acks) >= self.sent, timeout=30, msg="every publish acknowledged")
        for c in self.clients:
            c.disconnect()
            c.loop_stop()

    def refused(self):
        with self.lock:
            return {k: rc for k, rc in self.acks.items() if rc not in (0, 0x10)}


class Connector:
    """CONNECTs as bob with a new client id each time (each one asks auth_req)."""

    def __init__(self, b):
        self.b = b
        self.results = {"ok": 0, "refused": 0, "error": 0}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            i += 1
            try:
                c = RawClient(self.b, version=5)
                ack = c.connect(f"bob-{os.urandom(4).hex()}-{i}", username="bob", password=b"b0b", expect_rc=None)
                c.close()
                self.results["ok" if ack.rc == 0 else "refused"] += 1
            except Exception:
                self.results["error"] += 1
            time.sleep(0.01)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


def test_reload_hands_over_under_load_without_a_refusal_or_disconnect(broker_factory, service):
    b, ctl = start(broker_factory, service)
    service.mode, service.delay = "slow", 0.01     # every lookup is in flight for 10 ms
    old = sidecar_pid(b)
    pub = Publisher(b)
    conn = Connector(b)
    try:
        wait_for(lambda: len(pub.acks) >= RATE, timeout=20, msg="a second of acknowledged publishes")
        acl_before = service.count("/mqtt/acl")
        out = ctl_ok(ctl, "plugins", "reload", NAME)
        assert "reloaded" in out and "outstanding" not in out, out
        new = sidecar_pid(b)
        assert new != old
        wait_for(lambda: not os.path.exists(f"/proc/{old}") or open(f"/proc/{old}/stat").read().split()[2] == "Z",
                 msg="the old process has exited")
        # The new one answers: publishes after the reload still ask the service, and pass.
        served = len(pub.acks)
        wait_for(lambda: len(pub.acks) >= served + RATE, timeout=20, msg="another second of publishes")
        # A second reload hands over again (from the process that took over the first time).
        assert "reloaded" in ctl_ok(ctl, "plugins", "reload", NAME)
        assert sidecar_pid(b) not in (old, new)
        served = len(pub.acks)
        wait_for(lambda: len(pub.acks) >= served + RATE // 2, timeout=20, msg="publishes after the second reload")
    finally:
        conn.stop()
        pub.stop()
    assert service.count("/mqtt/acl") > acl_before + RATE, "publishes kept asking the HTTP service"
    assert pub.disconnects == Publisher.CONNS, "only the publishers' own DISCONNECTs at the end"
    assert pub.refused() == {}, f"{len(pub.refused())} publish(es) refused, e.g. {list(pub.refused().items())[:5]}"
    assert conn.results["ok"] > 10 and conn.results["refused"] == 0 and conn.results["error"] == 0, conn.results
    log = b.log_text()
    assert log.count("sidecar hand-over complete") == 2
    assert "sidecar exited unexpectedly" not in log
    row = [r for r in ctl_ok(ctl, "plugins", "list", json_out=True) if r["name"] == NAME][0]
    assert row["state"] == "running" and row["connected"] and row["restarts"] == 0
    b.assert_alive()


def test_reload_with_a_broken_new_process_keeps_the_old_one_serving(broker_factory, service):
    b, ctl = start(broker_factory, service)
    old = sidecar_pid(b)
    # The plugin file now has an option the sidecar refuses (it exits 2 at start).
    files = [l.split('plugins_dir = "')[1].split('"')[0] for l in b.config_text.splitlines() if "plugins_dir" in l]
    f = os.path.join(files[0], f"{NAME}.toml")
    text = open(f).read()
    open(f, "w").write(text.replace("[auth_http]\n", "[auth_http]\nno_such_option = 1\n"))
    r = run_ctl(ctl, "plugins", "reload", NAME)
    assert r.rc == 2 and "keeps serving" in r.err, r
    assert sidecar_pid(b) != old  # a new process was started ...
    row = [x for x in ctl_ok(ctl, "plugins", "list", json_out=True) if x["name"] == NAME][0]
    assert row["pid"] == old and row["state"] == "running" and row["connected"]  # ... and the old one still serves
    c = RawClient(b, version=5)
    assert c.connect("after-failed-reload", username="alice", password=b"secret", expect_rc=None).rc == 0
    c.close()
    open(f, "w").write(text)
    assert "reloaded" in ctl_ok(ctl, "plugins", "reload", NAME)
    b.assert_alive()


def test_reload_config_hands_over_a_sidecar_whose_plugin_file_changed(broker_factory, service):
    b, ctl = start(broker_factory, service)
    old = sidecar_pid(b)
    out = ctl_ok(ctl, "reload", "config")
    assert "plugin" not in out and sidecar_pid(b) == old, out          # nothing changed: left alone
    files = [l.split('plugins_dir = "')[1].split('"')[0] for l in b.config_text.splitlines() if "plugins_dir" in l]
    f = os.path.join(files[0], f"{NAME}.toml")
    text = open(f).read()
    assert "timeout = 2.0" in text
    open(f, "w").write(text.replace("timeout = 2.0", "timeout = 3.0"))
    c = RawClient(b, version=5)
    assert c.connect("kept-across-reload", username="alice", password=b"secret", expect_rc=None).rc == 0
    j = ctl_ok(ctl, "reload", "config", json_out=True)
    assert any(x.startswith(f"plugin {NAME} reloaded") for x in j["applied"]), j
    assert sidecar_pid(b) != old and "sidecar hand-over complete" in b.log_text()
    c.ping()                                                             # still connected
    c.close()
