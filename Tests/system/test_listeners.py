"""TLS, WebSocket and WSS listeners: the same broker reached over every transport."""

import queue
import ssl
import subprocess
import uuid

import paho.mqtt.client as mqtt
import pytest

from brokers import free_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d


@pytest.fixture(scope="module")
def multi(module_broker_factory, certs):
    ports = {"tls": free_port(), "ws": free_port(), "wss": free_port()}
    cert, key = certs / "cert.pem", certs / "key.pem"
    # The plain listener the harness waits for comes last: listeners bind in order, so once it
    # accepts, every one before it does too.
    text = f"""
[[listeners]]
type = "tls"
bind = "127.0.0.1:{ports['tls']}"
certfile = "{cert}"
keyfile = "{key}"

[[listeners]]
type = "ws"
bind = "127.0.0.1:{ports['ws']}"
path = "/mqtt"

[[listeners]]
type = "wss"
bind = "127.0.0.1:{ports['wss']}"
path = "/mqtt"
certfile = "{cert}"
keyfile = "{key}"

[[listeners]]
type = "tcp"
bind = "127.0.0.1:{{port}}"
"""
    b = module_broker_factory(config_text=text)
    b.extra_ports = ports
    return b


def client(transport="tcp", version=mqtt.MQTTv311, tls_ca=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"l-{uuid.uuid4().hex[:8]}",
                    protocol=version, transport="websockets" if transport == "websockets" else "tcp")
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    if tls_ca:
        c.tls_set(ca_certs=str(tls_ca), cert_reqs=ssl.CERT_REQUIRED)
    return c


def roundtrip(c, host, port, topic):
    got = queue.Queue()
    connected = queue.Queue()
    c.on_connect = lambda cl, u, f, rc, p=None: connected.put(rc)
    c.on_message = lambda cl, u, m: got.put((m.topic, m.payload))
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        assert connected.get(timeout=10) == 0
        r, _ = c.subscribe(topic, qos=1)
        assert r == mqtt.MQTT_ERR_SUCCESS
        import time
        time.sleep(0.3)
        c.publish(topic, b"over-" + topic.encode(), qos=1).wait_for_publish(5)
        return got.get(timeout=10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_tls_listener(multi, certs):
    t = f"tls/{uuid.uuid4().hex[:6]}"
    assert roundtrip(client(tls_ca=certs / "cert.pem"), "127.0.0.1", multi.extra_ports["tls"], t) == (t, b"over-" + t.encode())


@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_websocket_listener(multi, version):
    t = f"ws/{uuid.uuid4().hex[:6]}"
    assert roundtrip(client("websockets", version), "127.0.0.1", multi.extra_ports["ws"], t) == (t, b"over-" + t.encode())


def test_wss_listener(multi, certs):
    t = f"wss/{uuid.uuid4().hex[:6]}"
    c = client("websockets", tls_ca=certs / "cert.pem")
    assert roundtrip(c, "127.0.0.1", multi.extra_ports["wss"], t) == (t, b"over-" + t.encode())


def test_transports_share_one_broker(multi, certs):
    """A subscriber on WebSocket receives what a TLS client publishes."""
    t = f"x/{uuid.uuid4().hex[:6]}"
    got = queue.Queue()
    sub = client("websockets")
    sub.on_message = lambda cl, u, m: got.put(m.payload)
    sub.connect("127.0.0.1", multi.extra_ports["ws"])
    sub.loop_start()
    try:
        sub.subscribe(t, qos=1)
        import time
        time.sleep(0.5)
        pub = client(tls_ca=certs / "cert.pem")
        pub.connect("127.0.0.1", multi.extra_ports["tls"])
        pub.loop_start()
        pub.publish(t, b"hello", qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        assert got.get(timeout=10) == b"hello"
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_websocket_wrong_path_refused(multi):
    import socket
    s = socket.create_connection(("127.0.0.1", multi.extra_ports["ws"]), timeout=5)
    s.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
    data = s.recv(1024)
    s.close()
    assert data.startswith(b"HTTP/1.1 404"), data
