"""`swiftlet-ctl reload config` applies limits live (issue 18): `[mqtt]` limits reach the
connections accepted after the reload (open ones keep theirs), a listener's `max_connections`
applies to the next accepted socket, and a reload that fails any of its checks changes nothing."""

import socket

from brokers import toml_value
from clients import wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from mqttraw import CONNACK, MAXIMUM_PACKET_SIZE, RC_PACKET_TOO_LARGE, RawClient, assert_closed_with, connect, publish
from sidecars import short_dir

ALLOW_ALL = """
[[rules]]
permission = "allow"
topics = ["#"]
"""


def start(broker_factory, tmp_path, listener_extra="", extra=""):
    d = short_dir()
    acl = tmp_path / "acl.toml"
    acl.write_text(ALLOW_ALL)
    b = broker_factory(config_text=f"""[log]
level = "info"

[[listeners]]
type = "tcp"
bind = "127.0.0.1:{{port}}"
{listener_extra}

[auth]
acl_file = {toml_value(str(acl))}
""" + ctl_config(d / "ctl.sock") + extra)
    b.ctl = d / "ctl.sock"
    b.acl = acl
    return b


def edit_config(b, old, new):
    text = b.config_path.read_text()
    assert old in text, text
    b.config_path.write_text(text.replace(old, new))


def v5_client(b, cid):
    c = RawClient(b, version=5)
    ack = c.connect(cid)
    return c, ack.prop(MAXIMUM_PACKET_SIZE)


def test_reload_lowers_max_packet_size_for_new_connections(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path)
    before, announced = v5_client(b, "before-reload")
    assert announced == 1048576

    b.config_path.write_text(b.config_path.read_text() + "\n[mqtt]\nmax_packet_size = 1024\n")
    j = ctl_ok(b.ctl, "reload", "config", json_out=True)
    assert "mqtt.max_packet_size 1048576 -> 1024 (new connections)" in j["applied"], j
    assert j["needs_restart"] == [], j

    # A new 5.0 client is told the new maximum, and a larger PUBLISH is DISCONNECT 0x95.
    after, announced = v5_client(b, "after-reload")
    assert announced == 1024
    after.send(publish("big/one", b"x" * 2000, qos=1, pid=1, version=5))
    assert_closed_with(after, codes=(RC_PACKET_TOO_LARGE,))
    # A new 3.1.1 client is closed (3.1.1 has no DISCONNECT from the server).
    old311 = RawClient(b, version=4)
    old311.connect("after-reload-311")
    old311.send(publish("big/two", b"x" * 2000, qos=1, pid=1))
    assert_closed_with(old311)

    # The connection made before the reload keeps the limits it was accepted with.
    assert before.publish("big/three", b"x" * 2000, qos=1, pid=2).rc in (0, 0x10)
    before.close()
    b.assert_alive()


def test_reload_lowers_a_listeners_max_connections(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, listener_extra="max_connections = 10")
    held = [RawClient(b, version=4) for _ in range(2)]
    for i, c in enumerate(held):
        c.connect(f"held-{i}")

    def open_connections():
        [l] = ctl_ok(b.ctl, "listeners", json_out=True)["listeners"]
        return l["connections"]
    wait_for(lambda: open_connections() == 2, msg="two connections open")

    edit_config(b, "max_connections = 10", "max_connections = 2")
    out = ctl_ok(b.ctl, "reload", "config")
    assert f"applied: listener tcp:127.0.0.1:{b.port}: max_connections 10 -> 2" in out, out
    assert "needs a restart" not in out, out
    [l] = ctl_ok(b.ctl, "listeners", json_out=True)["listeners"]
    assert l["max_connections"] == 2

    # The next connection is closed as it is accepted, before its CONNECT is read.
    c = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    try:
        c.sendall(connect("third", version=4))
        c.settimeout(5)
        assert c.recv(16) == b"", "refused: closed without a CONNACK"
    except ConnectionResetError:
        pass
    finally:
        c.close()
    [l] = ctl_ok(b.ctl, "listeners", json_out=True)["listeners"]
    assert l["refused_by_reason"]["max_connections"] >= 1, l
    # The two open ones stay.
    for c in held:
        c.ping()
        c.close()

    # Raised again: connections are accepted again.
    wait_for(lambda: open_connections() == 0, msg="the held connections are gone")
    edit_config(b, "max_connections = 2", "max_connections = 10")
    ctl_ok(b.ctl, "reload", "config")
    c = RawClient(b, version=4)
    assert c.connect("after-raise").type == CONNACK
    c.close()


def connected_lines(b):
    return sum(1 for l in b.log_text().splitlines() if "client connected" in l)


def test_a_reload_with_a_broken_acl_file_changes_nothing(broker_factory, tmp_path):
    b = start(broker_factory, tmp_path, listener_extra="max_connections = 10")
    edit_config(b, 'level = "info"', 'level = "debug"')
    edit_config(b, "max_connections = 10", "max_connections = 1")
    b.config_path.write_text(b.config_path.read_text() + "\n[mqtt]\nmax_packet_size = 1024\n")
    b.acl.write_text("[[rules]]\npermission = \"maybe\"\ntopics = [\"#\"]\n")

    r = run_ctl(b.ctl, "reload", "config")
    assert r.rc == 2 and "not reloaded" in r.err, r
    assert "maybe" in r.err or "permission" in r.err, r.err      # says why

    # Neither the level, nor the limits, nor the listener changed.
    c, announced = v5_client(b, "after-failed-reload")
    c2, _ = v5_client(b, "second-after-failed-reload")            # max_connections = 1 not applied
    assert announced == 1048576
    assert connected_lines(b) == 0, "still info: the debug line 'client connected' is not written"
    c.close()
    c2.close()

    # Once the ACL file is fixed, the same reload applies everything.
    b.acl.write_text(ALLOW_ALL)
    out = ctl_ok(b.ctl, "reload", "config")
    assert "log.level info -> debug" in out and "mqtt.max_packet_size 1048576 -> 1024" in out, out
    c, announced = v5_client(b, "after-good-reload")
    assert announced == 1024
    wait_for(lambda: connected_lines(b) >= 1, msg="debug level: the connection is logged")
    c.close()
    b.assert_alive()


def test_a_reload_with_a_broken_plugin_file_changes_nothing(broker_factory, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    b = start(broker_factory, tmp_path, extra=f"\n[sidecars]\nplugins_dir = {toml_value(str(plugins))}\n")
    edit_config(b, 'level = "info"', 'level = "debug"')
    (plugins / "broken.toml").write_text("[sidecar]\ncommand = 42\n")
    r = run_ctl(b.ctl, "reload", "config")
    assert r.rc == 2 and "not reloaded" in r.err and "plugin broken" in r.err, r
    c, _ = v5_client(b, "after-plugin-failure")
    c.close()
    assert connected_lines(b) == 0, "the log level did not change"
    (plugins / "broken.toml").unlink()
    assert "log.level info -> debug" in ctl_ok(b.ctl, "reload", "config")
