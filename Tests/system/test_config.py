"""Requirements 7 and 8: configuration errors, node name, signals, embedded defaults.
Also requirement 5's DISCONNECT 0x8B on SIGTERM."""

import re
import signal
import socket
import subprocess

import pytest

import mqttraw as m
from clients import Client
from brokers import REPO, free_port, swiftlet_path

HEAD = """[log]
level = "info"

[[listeners]]
type = "tcp"
bind = "127.0.0.1:{port}"

[mqtt]
allow_anonymous = true
"""
BAD_LINE = 10  # the first line after HEAD


def run_expect_failure(tmp_path, text, timeout=15):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text.replace("{port}", str(free_port())))
    try:
        r = subprocess.run([str(swiftlet_path()), "--config", str(cfg)], cwd=tmp_path,
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("swiftlet kept running with an invalid config")
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, f"exit code 0 with an invalid config; output:\n{out}"
    return out


def mentions_line(out, line):
    return re.search(rf"(?i)(line\s*:?\s*{line}\b|:{line}(:\d+)?\b|\b{line}:\d+\b)", out) is not None


@pytest.fixture(autouse=True)
def _need_binary():
    if not swiftlet_path().exists():
        pytest.fail(f"swiftlet binary not found at {swiftlet_path()}")


BAD_VALUES = [
    ('max_packet_size = "big"', "max_packet_size"),
    ("max_packet_sise = 1024", "max_packet_sise"),
    ("queue_qos0 = 3", "queue_qos0"),
    ('shared_subscription_strategy = "fastest"', "shared_subscription_strategy"),
    ('keepalive_backoff = "slow"', "keepalive_backoff"),
    ("max_qos = 3", "max_qos"),
    ("max_inflight = -1", "max_inflight"),
]


@pytest.mark.parametrize("line,key", BAD_VALUES, ids=[k for _, k in BAD_VALUES])
def test_bad_mqtt_value_names_key_and_line(tmp_path, line, key):
    out = run_expect_failure(tmp_path, HEAD + line + "\n")
    assert key in out, f"error does not name {key!r}:\n{out}"
    assert mentions_line(out, BAD_LINE), f"error does not name line {BAD_LINE}:\n{out}"


def test_unknown_key_in_sys_section(tmp_path):
    out = run_expect_failure(tmp_path, HEAD + "\n[sys]\nintervall = 1\n")
    assert "intervall" in out
    assert mentions_line(out, BAD_LINE + 2), out


def test_unknown_section(tmp_path):
    out = run_expect_failure(tmp_path, HEAD + "\n[mqttt]\nmax_qos = 1\n")
    assert "mqttt" in out
    assert mentions_line(out, BAD_LINE + 1), out


def test_bad_listener_value(tmp_path):
    text = HEAD.replace('bind = "127.0.0.1:{port}"', 'bind = "127.0.0.1:{port}"\ntype2 = "tcp"')
    out = run_expect_failure(tmp_path, text)
    assert "type2" in out and mentions_line(out, 7), out


def test_toml_syntax_error_names_line(tmp_path):
    out = run_expect_failure(tmp_path, HEAD + "max_packet_size = = 3\n")
    assert mentions_line(out, BAD_LINE), f"syntax error does not name line {BAD_LINE}:\n{out}"


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.toml"
    try:
        r = subprocess.run([str(swiftlet_path()), "--config", str(missing)], capture_output=True,
                           timeout=15, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("swiftlet kept running without its config file")
    assert r.returncode != 0
    assert "nope.toml" in (r.stdout + r.stderr).decode(errors="replace")


def test_valid_minimal_config_starts(broker_factory):
    b = broker_factory(config_text=HEAD)
    with m.RawClient(b, version=4) as c:
        c.connect("minimal")


def test_shipped_config_is_valid(broker_factory):
    text = (REPO / "etc" / "swiftlet.toml").read_text()
    text, n = re.subn(r'(?m)^bind = "0\.0\.0\.0:1883"', 'bind = "127.0.0.1:{port}"', text)
    assert n == 1
    b = broker_factory(config_text=text)
    with m.RawClient(b, version=5) as c:
        c.connect("shipped")


def _first_sys_topic(broker, filt, timeout=5.0):
    c = Client(broker)
    c.subscribe(filt, qos=0)
    try:
        return c.get(timeout).topic
    finally:
        c.disconnect()


def test_node_name_argument_changes_sys_prefix(broker_factory):
    b = broker_factory(sys={"interval": 1}, node_name="edge-7@test")
    assert _first_sys_topic(b, "$SYS/brokers/+/version") == "$SYS/brokers/edge-7@test/version"


def test_node_name_argument_overrides_config(broker_factory):
    b = broker_factory(sys={"interval": 1}, node="from-config@x", node_name="from-cli@x")
    assert _first_sys_topic(b, "$SYS/brokers/+/uptime") == "$SYS/brokers/from-cli@x/uptime"


def test_node_name_from_config(broker_factory):
    b = broker_factory(sys={"interval": 1}, node="cfg-node@h")
    assert _first_sys_topic(b, "$SYS/brokers/+/version") == "$SYS/brokers/cfg-node@h/version"


def test_default_node_name(broker_factory):
    b = broker_factory(sys={"interval": 1})
    assert _first_sys_topic(b, "$SYS/brokers/+/version") == "$SYS/brokers/swiftlet@127.0.0.1/version"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown(broker_factory, sig):
    b = broker_factory()
    v5 = m.RawClient(b, version=5)
    v5.connect("shut-v5")
    v4 = m.RawClient(b, version=4)
    v4.connect("shut-v4")
    paho = Client(b)
    b.send_signal(sig)
    pkts = v5.wait_closed(10)
    assert [(p.type, p.rc) for p in pkts] == [(m.DISCONNECT, m.RC_SERVER_SHUTTING_DOWN)], pkts
    assert v4.wait_closed(10) == []
    assert paho.wait_disconnected() == m.RC_SERVER_SHUTTING_DOWN
    rc = b.wait_exit(10)
    assert rc == 0, f"exit code {rc} after {sig.name}"
    v5.close()
    v4.close()


def test_shutdown_without_clients_exits_zero(broker_factory):
    b = broker_factory()
    assert b.stop(signal.SIGTERM) == 0


def _warned_anonymous(log):
    return any("anonymous" in line.lower() and "warn" in line.lower() for line in log.splitlines())


def test_anonymous_warning_with_port_only_config(broker_factory):
    b = broker_factory(config_text='[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:{port}"\n')
    with m.RawClient(b, version=4) as c:
        c.connect("anon")  # anonymous access is the default
    assert _warned_anonymous(b.log_text()), f"no anonymous-access warning in log:\n{b.tail()}"


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def test_no_arguments_embedded_default(broker_factory):
    if not _port_free(1883) or not _port_free(18083):
        pytest.skip("port 1883 or 18083 is in use")
    b = broker_factory(args=[], port=1883)
    with m.RawClient("127.0.0.1", 1883, version=5) as c:
        c.connect("embedded")
    assert _warned_anonymous(b.log_text()), f"no anonymous-access warning in log:\n{b.tail()}"
    # The dashboard is on by default on 18083 with the seed's admin/public.
    import json, time, urllib.request
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:18083/status", timeout=5) as r:
                assert json.loads(r.read())["status"] == "running"
                break
        except OSError:
            assert time.monotonic() < deadline, f"no dashboard on 18083:\n{b.tail()}"
            time.sleep(0.1)
    req = urllib.request.Request("http://127.0.0.1:18083/api/v5/login", method="POST",
                                 data=json.dumps({"username": "admin", "password": "public"}).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["password_change_required"] is True
    assert b.stop() == 0
