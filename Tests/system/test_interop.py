"""Requirement 9: interoperability with the mosquitto_pub / mosquitto_sub command line clients."""

import os
import select
import shutil
import subprocess
import time

import pytest

from clients import Client

pytestmark = pytest.mark.skipif(not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
                                reason="mosquitto-clients not installed")


def pub(broker, topic, message, version, *extra):
    return subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", version,
                           "-q", "1", "-t", topic, "-m", message, *extra],
                          capture_output=True, timeout=15, stdin=subprocess.DEVNULL)


def sub_once(broker, topic, pub_version, sub_version, message, sub_extra=(), pub_extra=(), pub_topic=None):
    """Start mosquitto_sub -C 1, publish with mosquitto_pub until the subscriber has it."""
    proc = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", sub_version,
                             "-q", "1", "-C", "1", "-W", "20", "-t", topic, *sub_extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        published = 0
        while proc.poll() is None and time.monotonic() < deadline:
            r = pub(broker, pub_topic or topic, message, pub_version, *pub_extra)
            assert r.returncode == 0, f"mosquitto_pub failed: {r.stderr.decode()}"
            published += 1
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"mosquitto_sub exit {proc.returncode}: {err.decode()}"
    return out.decode()


VERSIONS = ["mqttv311", "mqttv5"]


@pytest.mark.parametrize("sub_version", VERSIONS)
@pytest.mark.parametrize("pub_version", VERSIONS)
def test_mosquitto_pub_to_mosquitto_sub(broker, uniq, pub_version, sub_version):
    out = sub_once(broker, f"{uniq}/cli", pub_version, sub_version, "hello from mosquitto_pub")
    assert out == "hello from mosquitto_pub\n"


def test_mosquitto_sub_verbose_wildcard(broker, uniq):
    out = sub_once(broker, f"{uniq}/#", "mqttv5", "mqttv5", "payload", sub_extra=("-v",),
                   pub_topic=f"{uniq}/a/b")
    assert out == f"{uniq}/a/b payload\n"


def test_mosquitto_pub_retained_to_paho(broker, uniq):
    r = pub(broker, f"{uniq}/ret", "kept", "mqttv311", "-r")
    assert r.returncode == 0, r.stderr.decode()
    c = Client(broker)
    c.subscribe(f"{uniq}/ret", qos=1)
    msg = c.get()
    assert (msg.payload, msg.retain, msg.qos) == (b"kept", True, 1)
    c.disconnect()
    pub(broker, f"{uniq}/ret", "", "mqttv311", "-r")


def test_mosquitto_pub_v5_user_property_to_paho(broker, uniq):
    c = Client(broker)
    c.subscribe(f"{uniq}/up", qos=1)
    r = pub(broker, f"{uniq}/up", "with props", "mqttv5",
            "-D", "publish", "user-property", "origin", "cli",
            "-D", "publish", "content-type", "text/plain")
    assert r.returncode == 0, r.stderr.decode()
    msg = c.get()
    assert msg.payload == b"with props"
    assert msg.prop("UserProperty") == [("origin", "cli")]
    assert msg.prop("ContentType") == "text/plain"
    c.disconnect()


def test_paho_to_mosquitto_sub_qos2(broker, uniq):
    proc = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
                             "-q", "2", "-v", "-W", "30", "-t", f"{uniq}/ready", "-t", f"{uniq}/p"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    lines, buf = [], bytearray()

    def read_line(timeout):
        if select.select([proc.stdout], [], [], timeout)[0]:
            buf.extend(os.read(proc.stdout.fileno(), 65536) or b"")
            while b"\n" in buf:
                i = buf.index(b"\n")
                lines.append(buf[:i + 1].decode())
                del buf[:i + 1]

    try:
        c = Client(broker)
        # Publish to the ready topic until mosquitto_sub has subscribed and printed it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not lines:
            c.publish(f"{uniq}/ready", b"ready", qos=0)
            read_line(0.3)
        assert lines, "mosquitto_sub never received anything"
        for i in range(3):
            c.publish(f"{uniq}/p", b"m%d" % i, qos=2)
        c.disconnect()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and f"{uniq}/p m2\n" not in lines:
            read_line(0.5)
    finally:
        proc.kill()
        proc.wait()
    assert [x for x in lines if x.startswith(f"{uniq}/p ")] == [f"{uniq}/p m{i}\n" for i in range(3)], lines
