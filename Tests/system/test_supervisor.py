"""Managed sidecars: declared in plugins_dir, spawned by the broker, their output in the
broker log, restarted with backoff after kill -9, given up after too many restarts, and
stopped with the broker."""

import os
import signal
import time

import pytest

from clients import Client, wait_for
from sidecars import (managed_plugin, registrations, short_dir, sidecar_config, sidecar_pids, users_file,
                      wait_registered)


def start(broker_factory, restart=None, enabled=True):
    d = short_dir()
    plugins = d / "plugins"
    managed_plugin(plugins, "pyauth", users_file(d), restart=restart, enabled=enabled,
                   extra_args=["--order", "100"])
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n')
    return b, d


def pid_of(b):
    line = [l for l in b.log_text().splitlines() if "sidecar started" in l][-1]
    return int(line.split("sidecar.pid=")[1].split()[0])


def test_managed_sidecar_starts_serves_and_logs(broker_factory):
    b, _ = start(broker_factory)
    wait_registered(b, "pyauth")
    Client(b, version=5, username="alice", password="secret").disconnect()
    # The sidecar's own output is in the broker log, tagged with its name.
    wait_for(lambda: any("sidecar.name=pyauth" in l and "authn alice" in l for l in b.log_text().splitlines()),
             msg="sidecar output in the broker log")


def test_kill9_restarts_within_backoff(broker_factory):
    b, _ = start(broker_factory)
    wait_registered(b, "pyauth")
    first = pid_of(b)
    os.kill(first, signal.SIGKILL)
    t0 = time.monotonic()
    wait_registered(b, "pyauth", count=2, timeout=10)
    assert time.monotonic() - t0 < 5
    assert pid_of(b) != first
    assert "sidecar exited unexpectedly" in b.log_text()
    Client(b, version=5, username="carol", password="c4rol").disconnect()


def test_too_many_restarts_leave_it_failed(broker_factory):
    b, _ = start(broker_factory, restart={"max_restarts": 2, "initial_backoff": 0.05, "max_backoff": 0.05})
    for i in range(3):
        wait_registered(b, "pyauth", count=i + 1)
        os.kill(pid_of(b), signal.SIGKILL)
        time.sleep(0.3)
    wait_for(lambda: "sidecar restarted too often" in b.log_text(), msg="given up")
    b.assert_alive()
    # Without its provider answering, new clients get the fallback (deny).
    Client(b, version=5, username="dave", password="d4ve", expect_rc=0x86)


def test_disabled_plugin_is_not_started(broker_factory):
    b, _ = start(broker_factory, enabled=False)
    time.sleep(1)
    assert registrations(b, "pyauth") == 0
    assert "sidecar started" not in b.log_text()


def test_broker_stop_stops_managed_sidecars(broker_factory):
    b, d = start(broker_factory)
    wait_registered(b, "pyauth")
    pid = pid_of(b)
    assert b.stop() == 0
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             msg="sidecar gone after broker stop")


def test_bad_declaration_is_refused_with_its_key(broker_factory):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    (plugins / "broken.toml").write_text("[sidecar]\ncommand = 42\n")
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n')
    wait_for(lambda: "plugin declaration refused" in b.log_text(), msg="refusal logged")
    assert "sidecar.command" in b.log_text()
    b.assert_alive()
