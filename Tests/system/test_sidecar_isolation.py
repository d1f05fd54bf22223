"""Sidecar isolation by the OS (issue 18 point 4): a managed sidecar whose plugin file says
`user`, `memory_max`, `open_files`, `cpu_seconds` runs as that user, within those limits, with a
clean environment; past its memory limit it dies and is restarted while the broker serves;
bad values are refused with their key. The broker must run as root for `user`."""

import json
import os
import shutil
import pwd

import pytest

from brokers import toml_value
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from sidecars import PY_SIDECAR, USERS, registrations, short_dir, sidecar_config, wait_registered

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"   # readable by any user (a pyenv under /root is not)
NAME = "hog"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running a sidecar as another user needs root")


def plugin(d, enabled=True, **keys):
    lines = ["[sidecar]", f"command = {toml_value(PYTHON)}",
             f"args = {toml_value([str(d / 'hog_sidecar.py'), '--users', str(d / 'users.json'), '--reconnect'])}",
             f"enabled = {toml_value(enabled)}", 'env = { PYTHONUNBUFFERED = "1" }']
    lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    lines += ["[sidecar.restart]", "initial_backoff = 0.1", "max_backoff = 0.5", "max_restarts = 20", "period = 60",
              "shutdown_grace = 2", ""]
    (d / "plugins" / f"{NAME}.toml").write_text("\n".join(lines))


def setup_dir():
    d = short_dir()
    os.chmod(d, 0o755)    # the sidecar's user walks into it (socket, script, users file)
    (d / "plugins").mkdir(mode=0o755)
    shutil.copy(PY_SIDECAR, d / "sidecar.py")
    shutil.copy(os.path.join(HERE, "hog_sidecar.py"), d / "hog_sidecar.py")
    (d / "users.json").write_text(json.dumps(USERS))
    for f in ("sidecar.py", "hog_sidecar.py", "users.json"):
        os.chmod(d / f, 0o644)
    return d


def start(broker_factory, d, enabled_override=True, **keys):
    plugin(d, enabled=enabled_override, **keys)
    b = broker_factory(extra=sidecar_config(d / "sc.sock", extra='socket_mode = "0660"\n')
                       + f'plugins_dir = "{d / "plugins"}"\n' + ctl_config(d / "ctl.sock"))
    return b, d / "ctl.sock"


def limits(ctl):
    return ctl_ok(ctl, "pydemo", "limits", json_out=True)


def managed_row(ctl):
    return [r for r in ctl_ok(ctl, "plugins", "list", json_out=True) if r["name"] == NAME][0]


def test_sidecar_runs_as_its_user_within_its_limits_with_a_clean_environment(broker_factory):
    d = setup_dir()
    b, ctl = start(broker_factory, d, user="nobody", memory_max="256M", open_files=64, cpu_seconds=3600)
    wait_registered(b, NAME)
    got = limits(ctl)
    assert got["uid"] == pwd.getpwnam("nobody").pw_uid
    assert got["gid"] == os.getegid() and got["groups"] == [os.getegid()]   # the broker's group: socket access
    assert (got["memory_max"], got["open_files"], got["cpu_seconds"]) == (256 << 20, 64, 3600)
    assert "PYTEST_CURRENT_TEST" in os.environ                    # the broker inherited it ...
    allowed = {"PATH", "LANG", "HOME", "USER", "PYTHONUNBUFFERED"}
    assert [e for e in got["env"] if e not in allowed and not e.startswith("SWIFTLET_")] == []   # ... the sidecar did not
    assert {"SWIFTLET_SOCKET", "SWIFTLET_SIDECAR_NAME", "SWIFTLET_PLUGIN_CONFIG"} <= set(got["env"])
    # No descriptor of the broker's (listeners, clients, store): only the sidecar's own few.
    assert len(got["fds"]) < 16, got["fds"]
    # Its process, seen from outside.
    pid = managed_row(ctl)["pid"]
    assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam("nobody").pw_uid


def test_sidecar_past_its_memory_limit_is_killed_and_restarted_while_the_broker_serves(broker_factory):
    d = setup_dir()
    b, ctl = start(broker_factory, d, user="nobody", memory_max="256M")
    wait_registered(b, NAME)
    first = managed_row(ctl)["pid"]
    c = Client(b, version=5, username="alice", password="secret")
    c.subscribe("a/#", qos=1)
    assert "holding 32 MiB" in ctl_ok(ctl, "pydemo", "hog", "32")      # within the limit
    r = run_ctl(ctl, "pydemo", "hog", "512")                            # past it: the sidecar aborts
    assert r.rc == 2, r
    wait_for(lambda: "sidecar exited unexpectedly" in b.log_text(), msg="the exit is noticed")
    assert "signal 6" in b.log_text()
    wait_registered(b, NAME, count=2)
    row = managed_row(ctl)
    assert row["pid"] != first and row["state"] == "running" and row["restarts"] == 1
    assert limits(ctl)["memory_max"] == 256 << 20                       # the new process has the limit too
    # The broker served throughout: the client is still connected and gets messages.
    c.publish("a/still-here", b"yes", qos=1)
    assert c.get().payload == b"yes"
    c.disconnect()
    b.assert_alive()


def test_without_isolation_keys_the_environment_is_inherited(broker_factory):
    d = setup_dir()
    b, ctl = start(broker_factory, d)
    wait_registered(b, NAME)
    got = limits(ctl)
    assert got["uid"] == os.geteuid() and "PYTEST_CURRENT_TEST" in got["env"]


@pytest.mark.parametrize("keys, key, why", [
    ({"user": "no-such-user-x"}, "sidecar.user", "no such user"),
    ({"user": "nobody", "group": "no-such-group-x"}, "sidecar.group", "no such group"),
    ({"memory_max": "lots"}, "sidecar.memory_max", "at least 16 MiB"),
    ({"memory_max": 1024}, "sidecar.memory_max", "at least 16 MiB"),
    ({"open_files": 3}, "sidecar.open_files", ""),
    ({"cpu_seconds": 0}, "sidecar.cpu_seconds", ""),
    ({"user": ""}, "sidecar.user", "must not be empty"),
])
def test_bad_isolation_keys_are_refused_with_their_name(broker_factory, keys, key, why):
    d = setup_dir()
    b, ctl = start(broker_factory, d, enabled_override=False)
    plugin(d, **keys)
    r = run_ctl(ctl, "plugins", "load", NAME)
    assert r.rc == 2 and key in r.err and why in r.err, r
    assert registrations(b, NAME) == 0
    b.assert_alive()
