"""The plugin template as a managed sidecar (issue 4 point 9), `swiftlet-ctl plugins
list|load|unload|reload`, and ctl commands registered by sidecars routed to them."""

import os
import shutil
import signal
import time

import pytest

from brokers import swiftlet_path
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from sidecars import (PySidecar, managed_plugin, registrations, short_dir, sidecar_config, users_file,
                      wait_registered)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOOKS = ["client.connected", "client.subscribe", "client.unsubscribe", "session.subscribed",
         "session.unsubscribed", "message.publish", "message.delivered", "message.acked", "client.disconnected"]


def template_binary():
    return swiftlet_path().parent / "swiftlet-sidecar-template"


def start_with_template(broker_factory, enabled=True):
    if not template_binary().exists():
        pytest.fail(f"template binary not found at {template_binary()}")
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    text = open(os.path.join(ROOT, "etc", "plugins", "template.toml")).read()
    text = text.replace('command = ".build/release/swiftlet-sidecar-template"', f'command = "{template_binary()}"')
    text = text.replace("enabled = false", f"enabled = {'true' if enabled else 'false'}")
    (plugins / "template.toml").write_text(text)
    extra = sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n' + ctl_config(d / "ctl.sock")
    b = broker_factory(extra=extra)
    return b, d / "ctl.sock", d


def test_template_authenticates_authorizes_and_logs_all_hooks(broker_factory, uniq):
    b, _, _ = start_with_template(broker_factory)
    wait_registered(b, "template")
    Client(b, version=5, username="alice", password="wrong", expect_rc=0x86)
    c = Client(b, version=5, client_id=f"{uniq}-c", username="alice", password="secret")
    assert c.subscribe("sensors/#", qos=1) == [1]
    assert c.subscribe("sensors/secret/#", qos=1) == [0x87]
    c.publish("sensors/kitchen", b"21.5", qos=1)
    assert c.get().payload == b"21.5"
    c.unsubscribe("sensors/#")
    c.disconnect()
    for hook in HOOKS:
        wait_for(lambda: any("sidecar.name=template" in l and hook in l for l in b.log_text().splitlines()),
                 msg=f"template logged {hook}")


def test_ctl_command_registered_by_a_sidecar(broker_factory):
    b, ctl, _ = start_with_template(broker_factory)
    wait_registered(b, "template")
    out = ctl_ok(ctl, "cmd", "arg1", "arg2")
    assert "arg1 arg2" in out
    assert "cmd" in ctl_ok(ctl, "help")
    j = ctl_ok(ctl, "cmd", "x", json_out=True)
    assert j is not None


def test_plugins_list_unload_load_reload(broker_factory):
    b, ctl, _ = start_with_template(broker_factory)
    wait_registered(b, "template")
    rows = ctl_ok(ctl, "plugins", "list", json_out=True)
    t = [r for r in rows if r["name"] == "template"][0]
    assert t["kind"] == "managed" and t["state"] == "running" and t["connected"] and t["pid"] > 0
    assert "template" in ctl_ok(ctl, "plugins", "list")
    pid = t["pid"]
    assert "stopped" in ctl_ok(ctl, "plugins", "unload", "template")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             msg="template process gone")
    assert [r for r in ctl_ok(ctl, "plugins", "list", json_out=True) if r["name"] == "template"][0]["state"] == "stopped"
    # Out of the chain: alice (known only to the template) is refused.
    Client(b, version=5, username="alice", password="secret", expect_rc=0x86)
    # Its command is gone with it.
    assert run_ctl(ctl, "cmd", "a").rc == 1
    assert "started" in ctl_ok(ctl, "plugins", "load", "template")
    wait_registered(b, "template", count=2)
    Client(b, version=5, username="alice", password="secret").disconnect()
    assert "reloaded" in ctl_ok(ctl, "plugins", "reload", "template")
    wait_registered(b, "template", count=3)
    assert run_ctl(ctl, "plugins", "load", "nosuch").rc == 2
    assert run_ctl(ctl, "plugins", "frobnicate").rc == 1


def test_disabled_template_loads_on_demand(broker_factory):
    b, ctl, _ = start_with_template(broker_factory, enabled=False)
    rows = ctl_ok(ctl, "plugins", "list", json_out=True)
    assert [r for r in rows if r["name"] == "template"][0]["state"] == "stopped"
    ctl_ok(ctl, "plugins", "load", "template")
    wait_registered(b, "template")


def test_external_sidecar_command_and_listing(broker_factory):
    d = short_dir()
    sock = d / "sc.sock"
    b = broker_factory(extra=sidecar_config(sock) + ctl_config(d / "ctl.sock"))
    sc = PySidecar(sock, d, name="pyext").start(b)
    try:
        out = ctl_ok(d / "ctl.sock", "pydemo", "users")
        assert "alice" in out
        rows = ctl_ok(d / "ctl.sock", "plugins", "list", json_out=True)
        assert any(r["name"] == "pyext" and r["kind"] == "external" for r in rows)
        sc.kill()
        wait_for(lambda: run_ctl(d / "ctl.sock", "pydemo").rc == 1, msg="command unregistered with its sidecar")
    finally:
        sc.stop()
