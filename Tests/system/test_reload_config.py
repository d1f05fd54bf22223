"""`swiftlet-ctl reload config` (issue 18 point 2): the configuration file read again while
the broker runs; the log level and the ACL (and users) files apply at once, settings that need
a restart are named, a file that does not parse changes nothing. Limits: test_reload_limits.py."""

import pytest

from brokers import toml_value
from mqttraw import RawClient
from ctl import ctl_config, ctl_ok, run_ctl

DENY_PUBLISH = """
[[rules]]
permission = "deny"
access = "publish"
topics = ["locked/#"]

[[rules]]
permission = "allow"
topics = ["#"]
"""

ALLOW_ALL = """
[[rules]]
permission = "allow"
topics = ["#"]
"""


def start(broker_factory, tmp_path):
    acl = tmp_path / "acl.toml"
    acl.write_text(DENY_PUBLISH)
    b = broker_factory(log_level="info", extra=f"[auth]\nacl_file = {toml_value(str(acl))}\n"
                                              + ctl_config(tmp_path / "ctl.sock"))
    return b, tmp_path / "ctl.sock", acl


def publish_rc(b, topic):
    """The PUBACK reason code of one QoS 1 publish by a fresh MQTT 5 client."""
    c = RawClient(b, version=5)
    c.connect(f"rl-{topic.replace('/', '-')}")
    rc = c.publish(topic, b"1", qos=1, pid=1).rc
    c.close()
    return rc


def connected_lines(b):
    return sum(1 for l in b.log_text().splitlines() if "client connected" in l)


def test_reload_config_applies_log_level_and_acl_file(broker_factory, tmp_path):
    b, ctl, acl = start(broker_factory, tmp_path)
    assert publish_rc(b, "locked/door") == 0x87     # denied by the ACL file
    assert connected_lines(b) == 0, "info level: the debug line 'client connected' is not written"

    acl.write_text(ALLOW_ALL)
    b.config_path.write_text(b.config_path.read_text().replace('level = "info"', 'level = "debug"'))
    out = ctl_ok(ctl, "reload", "config")
    assert "log.level info -> debug" in out and "1 rule(s)" in out, out
    assert "needs a restart" not in out, out

    assert publish_rc(b, "locked/door") in (0, 0x10)  # the new ACL, no restart
    assert connected_lines(b) >= 1, "debug level now: the connection is logged"

    # Back to info, and the old rules: both apply again.
    acl.write_text(DENY_PUBLISH)
    b.config_path.write_text(b.config_path.read_text().replace('level = "debug"', 'level = "info"'))
    j = ctl_ok(ctl, "reload", "config", json_out=True)
    assert "log.level debug -> info" in j["applied"] and j["needs_restart"] == []
    before = connected_lines(b)
    assert publish_rc(b, "locked/door") == 0x87
    assert connected_lines(b) == before
    b.assert_alive()


def test_reload_config_names_what_needs_a_restart(broker_factory, tmp_path):
    b, ctl, _ = start(broker_factory, tmp_path)
    b.config_path.write_text(b.config_path.read_text() + "\n[sys]\ninterval = 5\n[mqtt]\nmax_inflight = 7\n")
    j = ctl_ok(ctl, "reload", "config", json_out=True)
    assert j["needs_restart"] == ["sys.interval"], j
    assert "mqtt.max_inflight 32 -> 7 (new connections)" in j["applied"], j
    # Named again until the restart; what applied is not applied twice.
    out = ctl_ok(ctl, "reload", "config")
    assert "needs a restart: sys.interval" in out and "max_inflight" not in out, out


@pytest.mark.parametrize("broken", ["[log]\nlevel = \"loud\"\n", "[mqtt]\nno_such_key = 1\n", "[[listeners]\n"])
def test_reload_config_refuses_a_bad_file_and_changes_nothing(broker_factory, tmp_path, broken):
    b, ctl, acl = start(broker_factory, tmp_path)
    good = b.config_path.read_text()
    acl.write_text(ALLOW_ALL)
    b.config_path.write_text(good + "\n" + broken)
    r = run_ctl(ctl, "reload", "config")
    assert r.rc == 2 and "not reloaded" in r.err, r
    assert publish_rc(b, "locked/door") == 0x87     # the old ACL still applies
    b.config_path.write_text(good)
    assert "1 rule(s)" in ctl_ok(ctl, "reload", "config")
    b.assert_alive()


def test_reload_usage_errors(broker_factory, tmp_path):
    b, ctl, _ = start(broker_factory, tmp_path)
    r = run_ctl(ctl, "reload")
    assert r.rc == 1 and "reload config" in r.err, r
    r = run_ctl(ctl, "reload", "everything")
    assert r.rc == 1, r


def make_cert(d, cn):
    import subprocess
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                    "-keyout", str(d / f"{cn}.key"), "-out", str(d / f"{cn}.pem")], check=True, capture_output=True)
    return (d / f"{cn}.pem").read_bytes(), (d / f"{cn}.key").read_bytes()


def served_cert(port):
    import socket
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True), s


def test_reload_config_reads_new_listener_certificates(broker_factory, tmp_path):
    import ssl
    from brokers import free_port
    one, two = make_cert(tmp_path, "one"), make_cert(tmp_path, "two")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(one[0])
    key.write_bytes(one[1])
    tls_port = free_port()
    b = broker_factory(extra=ctl_config(tmp_path / "ctl.sock") + f"""
[[listeners]]
type = "tls"
bind = "127.0.0.1:{tls_port}"
certfile = {toml_value(str(cert))}
keyfile = {toml_value(str(key))}
""")
    ctl = tmp_path / "ctl.sock"
    der = lambda pem: ssl.PEM_cert_to_DER_cert(pem.decode())
    assert served_cert(tls_port)[0] == der(one[0])
    cert.write_bytes(two[0])
    key.write_bytes(two[1])
    assert served_cert(tls_port)[0] == der(one[0]), "nothing changes before the reload"
    out = ctl_ok(ctl, "reload", "config")
    assert f"listener tls:127.0.0.1:{tls_port}: certificate and key read again" in out, out
    assert served_cert(tls_port)[0] == der(two[0])
    # A key that does not match (or a broken file) refuses the reload; the served one stays.
    key.write_bytes(one[1])
    r = run_ctl(ctl, "reload", "config")
    assert r.rc == 2 and "not reloaded" in r.err, r
    assert served_cert(tls_port)[0] == der(two[0])
    b.assert_alive()
