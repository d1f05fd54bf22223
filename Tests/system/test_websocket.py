"""MQTT over WebSocket as browsers and client libraries use it (issue 17, point 4): the
subprotocols, packets split across frames and several in one, fragmented messages, ping/pong,
max_frame_size, RFC 6455 close codes, the path and Origin checks, X-Forwarded-For and the
PROXY protocol; hostile frames get a close frame with their code, never a crash. A raw
WebSocket client here (so every frame is chosen), paho-mqtt over ws/wss, and MQTT.js (bundled
from Debian's node-mqtt, mqttjs.py) in a page in headless Chromium over ws and wss."""

import base64
import json
import os
import queue
import socket
import ssl
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from brokers import free_port
from clients import wait_for
from ctl import ctl_config, ctl_ok
import mqttjs
from mqttraw import connect, dec_varint, disconnect, publish, subscribe
from pki import PKI, tls_listener
from sidecars import short_dir

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki-ws")).make()


@pytest.fixture(scope="module")
def ws(module_broker_factory, pki):
    ports = {k: free_port() for k in ("ws", "wss", "origin", "xff", "small", "proxy", "wssv")}
    d = short_dir()
    sock = d / "ctl.sock"
    # The plain listener the harness waits for comes last: listeners bind in order, so once it
    # accepts, every one before it does too.
    text = (f'[[listeners]]\ntype = "ws"\nbind = "127.0.0.1:{ports["ws"]}"\npath = "/mqtt"\n\n'
            + tls_listener("wss", ports["wss"], pki, path="/mqtt")
            + tls_listener("wss", ports["wssv"], pki, path="/mqtt", cacertfile=pki.path("ca.pem"), verify="required",
                           peer_cert_as_username="cn")
            + f'[[listeners]]\ntype = "ws"\nbind = "127.0.0.1:{ports["origin"]}"\npath = "/mqtt"\n'
              f'allowed_origins = ["{ORIGIN}"]\nallow_origin_absence = false\n\n'
            + f'[[listeners]]\ntype = "ws"\nbind = "127.0.0.1:{ports["xff"]}"\npath = "/mqtt"\n'
              'proxy_address_header = "X-Forwarded-For"\n\n'
            + f'[[listeners]]\ntype = "ws"\nbind = "127.0.0.1:{ports["small"]}"\npath = "/ws"\nmax_frame_size = 1024\n\n'
            + f'[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:{ports["proxy"]}"\nproxy_protocol = true\n\n'
            + '[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:{port}"\n\n'
            + ctl_config(sock))
    b = module_broker_factory(config_text=text)
    b.ports = ports
    b.ctl = sock
    return b


# -- a raw WebSocket client --------------------------------------------------------------------

class WS:
    def __init__(self, port, path="/mqtt", protocols=("mqtt",), origin=None, headers=(), prefix=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        req = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
               f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if protocols:
            req.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        if origin:
            req.append(f"Origin: {origin}")
        req += list(headers)
        self.sock.sendall(prefix + ("\r\n".join(req) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}

    def frame(self, opcode, payload=b"", fin=True, mask=True, length=None, rsv=0):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        if n < 126:
            head = bytes([b0, (0x80 if mask else 0) | n])
        elif n < 65536:
            head = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
        else:
            head = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def read_frame(self, timeout=10):
        """(opcode, payload) or None when the socket closed."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n = self.buf[1] & 0x7F
                pos = 2
                if n == 126:
                    if len(self.buf) < 4:
                        n = None
                    else:
                        n = struct.unpack("!H", self.buf[2:4])[0]
                        pos = 4
                elif n == 127:
                    if len(self.buf) < 10:
                        n = None
                    else:
                        n = struct.unpack("!Q", self.buf[2:10])[0]
                        pos = 10
                if n is not None and len(self.buf) >= pos + n:
                    op, payload = self.buf[0] & 0x0F, self.buf[pos:pos + n]
                    self.buf = self.buf[pos + n:]
                    return op, payload
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def mqtt_bytes(self, n, timeout=10):
        """At least `n` bytes of MQTT from binary frames."""
        got = b""
        while len(got) < n:
            f = self.read_frame(timeout)
            assert f is not None, "closed"
            op, payload = f
            if op in (0x2, 0x0):
                got += payload
        return got

    def close_code(self):
        """The status code of the server's close frame (skipping other frames), None if none."""
        while True:
            f = self.read_frame()
            if f is None:
                return None
            if f[0] == 0x8:
                return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()


def cid():
    return f"ws-{uuid.uuid4().hex[:8]}"


# -- subprotocols, framing ---------------------------------------------------------------------

@pytest.mark.parametrize("offered,chosen", [(("mqtt",), "mqtt"), (("mqttv5",), "mqttv5"),
                                            (("mqttv3.1",), "mqttv3.1"), (("chat", "mqtt"), "mqtt")])
def test_subprotocols(ws, offered, chosen):
    c = WS(ws.ports["ws"], protocols=offered)
    assert c.status == 101
    assert c.headers.get("sec-websocket-protocol") == chosen
    c.close()


def test_packet_split_across_frames_and_several_in_one(ws):
    c = WS(ws.ports["ws"])
    packet = connect(cid(), version=4)
    c.frame(0x2, packet[:3])
    c.frame(0x2, packet[3:7])
    c.frame(0x2, packet[7:])
    assert c.mqtt_bytes(4)[:4] == b"\x20\x02\x00\x00"
    topic = f"ws/{uuid.uuid4().hex[:6]}"
    # SUBSCRIBE and a PUBLISH to it in one frame.
    c.frame(0x2, subscribe(1, [(topic, 0)]) + publish(topic, b"both-in-one"))
    got = c.mqtt_bytes(5 + 2 + 2 + len(topic) + len(b"both-in-one"))
    assert b"\x90\x03\x00\x01\x00" in got and b"both-in-one" in got, got
    c.close()


def test_fragmented_message_with_ping_inside(ws):
    c = WS(ws.ports["ws"])
    packet = connect(cid(), version=4)
    c.frame(0x2, packet[:4], fin=False)
    c.frame(0x9, b"are-you-there")                # a control frame between fragments
    c.frame(0x0, packet[4:9], fin=False)
    c.frame(0x0, packet[9:], fin=True)
    frames = [c.read_frame(), c.read_frame()]
    assert (0xA, b"are-you-there") in frames, frames
    assert (0x2, b"\x20\x02\x00\x00") in frames, frames
    c.close()


def test_client_close_is_echoed(ws):
    c = WS(ws.ports["ws"])
    c.frame(0x2, connect(cid(), version=4))
    c.mqtt_bytes(4)
    c.frame(0x8, struct.pack("!H", 1001))
    assert c.close_code() == 1001
    c.close()


def test_mqtt_disconnect_gets_normal_close(ws):
    c = WS(ws.ports["ws"], protocols=("mqttv5",))
    c.frame(0x2, connect(cid(), version=5))
    c.mqtt_bytes(4)
    c.frame(0x2, disconnect(version=5))
    assert c.close_code() == 1000
    c.close()


# -- hostile frames and requests ---------------------------------------------------------------

@pytest.mark.parametrize("case,code", [
    ("unmasked", 1002), ("unknown opcode", 1002), ("reserved bit", 1002), ("stray continuation", 1002),
    ("text", 1003), ("10 MB frame header", 1009),
])
def test_hostile_frames_get_their_close_code(ws, case, code):
    port = ws.ports["small"] if case == "10 MB frame header" else ws.ports["ws"]
    c = WS(port, path="/ws" if port == ws.ports["small"] else "/mqtt")
    assert c.status == 101
    if case == "unmasked":
        c.frame(0x2, connect(cid()), mask=False)
    elif case == "unknown opcode":
        c.frame(0x3, b"x")
    elif case == "reserved bit":
        c.frame(0x2, connect(cid()), rsv=4)
    elif case == "stray continuation":
        c.frame(0x0, connect(cid()))
    elif case == "text":
        c.frame(0x1, b"hello")
    else:
        c.frame(0x2, b"", length=10 * 1024 * 1024)  # the header only: the payload never comes
    assert c.close_code() == code
    assert c.closed()
    c.close()
    ws.assert_alive()


def test_big_frame_header_on_default_listener_is_refused_before_payload(ws):
    c = WS(ws.ports["ws"])
    c.frame(0x2, b"", length=10 * 1024 * 1024)
    assert c.close_code() == 1009
    c.close()


def http(port, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def test_http_without_upgrade(ws):
    data = http(ws.ports["ws"], b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 426"), data
    assert http(ws.ports["ws"], b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert http(ws.ports["ws"], b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    l = [x for x in ctl_ok(ws.ctl, "listeners", json_out=True)["listeners"] if x["address"].endswith(f":{ws.ports['ws']}")][0]
    assert l["refused_by_reason"]["websocket_upgrade"] >= 2
    ws.assert_alive()


def test_origin_check(ws):
    port = ws.ports["origin"]
    assert WS(port, origin=ORIGIN).status == 101
    assert WS(port, origin="https://evil.example").status == 403
    assert WS(port).status == 403, "allow_origin_absence = false"


def test_configurable_path(ws):
    assert WS(ws.ports["small"], path="/ws").status == 101
    assert WS(ws.ports["small"], path="/mqtt").status == 404


# -- the client's address behind a proxy -------------------------------------------------------

def peer_of(ws, client_id):
    return ctl_ok(ws.ctl, "clients", "show", client_id, json_out=True)["peer"]


def test_x_forwarded_for(ws):
    i = cid()
    c = WS(ws.ports["xff"], headers=["X-Forwarded-For: 203.0.113.9, 10.0.0.1"])
    c.frame(0x2, connect(i, version=4))
    c.mqtt_bytes(4)
    assert peer_of(ws, i).startswith("203.0.113.9:")
    c.close()
    # Without the option the header is ignored.
    j = cid()
    d = WS(ws.ports["ws"], headers=["X-Forwarded-For: 203.0.113.9"])
    d.frame(0x2, connect(j, version=4))
    d.mqtt_bytes(4)
    assert peer_of(ws, j).startswith("127.0.0.1:")
    d.close()


def raw_mqtt(port, prefix, client_id):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(prefix + connect(client_id, version=4))
    data = s.recv(4)
    return s, data


def test_proxy_protocol_v1_and_v2(ws):
    port = ws.ports["proxy"]
    i = cid()
    s, data = raw_mqtt(port, b"PROXY TCP4 198.51.100.7 127.0.0.1 40001 1883\r\n", i)
    assert data == b"\x20\x02\x00\x00"
    assert peer_of(ws, i) == "198.51.100.7:40001"
    s.close()
    j = cid()
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
          + bytes([192, 0, 2, 44]) + bytes([127, 0, 0, 1]) + struct.pack("!HH", 50000, 1883))
    s, data = raw_mqtt(port, v2, j)
    assert data == b"\x20\x02\x00\x00"
    assert peer_of(ws, j) == "192.0.2.44:50000"
    s.close()


def test_proxy_protocol_required_when_enabled(ws):
    s, data = raw_mqtt(ws.ports["proxy"], b"", cid())
    assert data == b""
    s.close()
    s, data = raw_mqtt(ws.ports["proxy"], b"PROXY TCP4 999.0.0.1 1.2.3.4 1 2\r\n", cid())
    assert data == b""
    s.close()
    l = [x for x in ctl_ok(ws.ctl, "listeners", json_out=True)["listeners"] if x["address"].endswith(f":{ws.ports['proxy']}")][0]
    assert l["refused_by_reason"]["proxy_protocol"] >= 2
    ws.assert_alive()


# -- real clients ------------------------------------------------------------------------------

@pytest.mark.parametrize("transport,version", [("ws", mqtt.MQTTv311), ("ws", mqtt.MQTTv5), ("wss", mqtt.MQTTv311),
                                               ("wss", mqtt.MQTTv5)])
def test_paho_over_ws_and_wss(ws, pki, transport, version):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid(), protocol=version, transport="websockets")
    c.ws_set_options(path="/mqtt")
    if transport == "wss":
        c.tls_set(ca_certs=pki.path("ca.pem"), cert_reqs=ssl.CERT_REQUIRED)
    got, connected, subscribed = queue.Queue(), queue.Queue(), queue.Queue()
    c.on_connect = lambda cl, u, f, rc, p=None: connected.put(rc)
    c.on_subscribe = lambda *a: subscribed.put(True)
    c.on_message = lambda cl, u, m: got.put(m.payload)
    c.connect("127.0.0.1", ws.ports[transport])
    c.loop_start()
    try:
        assert connected.get(timeout=10) == 0
        topic = f"paho/{uuid.uuid4().hex[:6]}"
        c.subscribe(topic, qos=1)
        subscribed.get(timeout=10)
        big = os.urandom(200_000)                    # spans many frames and reads
        c.publish(topic, big, qos=1)
        assert got.get(timeout=10) == big
    finally:
        c.disconnect()
        c.loop_stop()


def test_wss_client_certificate_identity(ws, pki):
    """The certificate read at the TLS handshake reaches the MQTT connection made after the
    WebSocket upgrade: its CN is the username."""
    i = cid()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=i, transport="websockets")
    c.ws_set_options(path="/mqtt")
    c.tls_set(ca_certs=pki.path("ca.pem"), certfile=pki.path("client1.pem"), keyfile=pki.path("client1.key"),
              cert_reqs=ssl.CERT_REQUIRED)
    connected = queue.Queue()
    c.on_connect = lambda cl, u, f, rc, p=None: connected.put(rc)
    c.username_pw_set("typed-name")
    c.connect("127.0.0.1", ws.ports["wssv"])
    c.loop_start()
    try:
        assert connected.get(timeout=10) == 0
        j = ctl_ok(ws.ctl, "clients", "show", i, json_out=True)
        assert j["username"] == "client-1" and j["cert_subject"] == "CN=client-1,O=Swiftlet Test"
    finally:
        c.disconnect()
        c.loop_stop()


def test_hostile_input_on_wss_port(ws):
    """Plain HTTP and plain MQTT to the wss port: the TLS handshake fails, the connection is
    closed, the refusal counted, the broker serves on."""
    port = ws.ports["wss"]
    for payload in (b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", connect(cid(), version=4)):
        data = http(port, payload)
        assert not data.startswith(b"HTTP/1.1 101") and not data.startswith(b"\x20"), data
    l = [x for x in ctl_ok(ws.ctl, "listeners", json_out=True)["listeners"] if x["address"].endswith(f":{port}")][0]
    assert l["refused_by_reason"]["tls_handshake"] >= 2
    ws.assert_alive()


# -- a browser: MQTT.js in headless Chromium ---------------------------------------------------

PAGE = """<!doctype html><html><body><pre id="log"></pre><script src="/mqtt.js"></script><script>
// MQTT.js over the browser's own WebSocket: subscribe, publish QoS 0 and 1 to itself, publish
// to a topic paho subscribed to, receive what paho publishes. Every event lands in window.seen.
const CFG = @cfg@;
window.seen = [];
const note = (e) => { window.seen.push(e); document.getElementById('log').textContent += JSON.stringify(e) + '\\n'; };
const c = mqtt.connect(CFG.url, { clientId: CFG.client, protocolVersion: 4, clean: true, reconnectPeriod: 0 });
c.on('connect', (ack) => {
  note({ ev: 'connect', rc: ack.returnCode, protocol: c.stream.socket.protocol });
  c.subscribe([CFG.own, CFG.fromPaho], { qos: 1 }, (err, granted) => {
    note({ ev: 'suback', err: err && String(err), qos: granted.map((g) => g.qos) });
    c.publish(CFG.own, 'q0-from-browser', { qos: 0 });
    c.publish(CFG.own, 'q1-from-browser', { qos: 1 }, (err) => note({ ev: 'puback', err: err && String(err) }));
    c.publish(CFG.toPaho, 'to-paho', { qos: 1 });
  });
});
c.on('message', (topic, payload, packet) => note({ ev: 'message', topic, payload: payload.toString(), qos: packet.qos }));
c.on('error', (err) => note({ ev: 'error', err: String(err) }));
c.on('close', () => note({ ev: 'close' }));
</script></body></html>"""


@pytest.fixture(scope="module")
def browser_env(tmp_path_factory, pki):
    """MQTT.js bundled for the browser, and a HOME whose NSS database trusts the test CA, so
    Chromium verifies the wss listener's certificate as for any site. Without Debian's packages
    (scripts/test installs them as root) the browser tests skip, never as root."""
    pytest.importorskip("selenium")
    need = mqttjs.missing() + [p for p, f in (("chromium", "/usr/bin/chromium"),
                                              ("chromium-driver", "/usr/bin/chromedriver")) if not Path(f).exists()]
    if need:
        msg = f"the browser tests need Debian's {' '.join(need)} (apt-get install, as scripts/test does)"
        if os.geteuid() == 0:
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("browser")
    return {"bundle": mqttjs.bundle(d).read_bytes(), "home": mqttjs.trust_ca(d / "home", pki.path("ca.pem"))}


def serve(routes):
    """A local HTTP server for routes (path -> (content type, bytes)) on a free port."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            ctype, body = routes.get(self.path.split("?")[0], ("text/plain", None))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_browser_mqttjs_over_websocket(ws, browser_env, scheme):
    """A page in headless Chromium with MQTT.js connects to the ws (or wss, its certificate
    verified against the test CA) listener, subscribes, gets its own QoS 0 and QoS 1
    messages back, and talks both ways with paho-mqtt on the plain TCP listener."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    tag = uuid.uuid4().hex[:6]
    cfg = {"url": f"{scheme}://127.0.0.1:{ws.ports[scheme]}/mqtt",
           "client": cid(), "own": f"browser/{tag}/own", "fromPaho": f"browser/{tag}/from-paho",
           "toPaho": f"browser/{tag}/to-paho"}
    page = PAGE.replace("@cfg@", json.dumps(cfg)).encode()
    server = serve({"/": ("text/html", page), "/mqtt.js": ("text/javascript", browser_env["bundle"])})
    got = queue.Queue()
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid())
    subscribed = queue.Queue()
    paho.on_subscribe = lambda *a: subscribed.put(True)
    paho.on_message = lambda cl, u, m: got.put((m.topic, m.payload, m.qos))
    paho.connect(ws.host, ws.port)
    paho.loop_start()
    paho.subscribe(cfg["toPaho"], qos=1)
    subscribed.get(timeout=10)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    # Chromium reads its trusted certificates from $HOME/.pki/nssdb.
    service = Service("/usr/bin/chromedriver", env={**os.environ, "HOME": str(browser_env["home"])})
    driver = webdriver.Chrome(options=opts, service=service)
    seen = lambda: driver.execute_script("return window.seen || []")
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        assert got.get(timeout=20) == (cfg["toPaho"], b"to-paho", 1), seen()
        wait_for(lambda: any(e["ev"] == "suback" for e in seen()), msg="the browser subscribes")
        paho.publish(cfg["fromPaho"], b"from-paho", qos=1).wait_for_publish(10)
        messages = lambda: [(e["topic"], e["payload"], e["qos"]) for e in seen() if e["ev"] == "message"]
        want = {(cfg["own"], "q0-from-browser", 0), (cfg["own"], "q1-from-browser", 1),
                (cfg["fromPaho"], "from-paho", 1)}
        try:
            wait_for(lambda: want <= set(messages()), msg="the browser's own and paho's messages")
        except AssertionError as e:
            raise AssertionError(f"{e}; the page saw {seen()}") from None
        events = seen()
        assert events[0] == {"ev": "connect", "rc": 0, "protocol": "mqtt"}, events
        assert {"ev": "suback", "err": None, "qos": [1, 1]} in events and {"ev": "puback", "err": None} in events
        assert not [e for e in events if e["ev"] in ("error", "close")], events
        assert sorted(messages()) == sorted(want), events  # each exactly once
        # The broker shows the browser as a client of the listener it was pointed at.
        j = ctl_ok(ws.ctl, "clients", "show", cfg["client"], json_out=True)
        assert j["listener"] == f"{scheme}:127.0.0.1:{ws.ports[scheme]}", j
    finally:
        driver.quit()
        paho.disconnect()
        paho.loop_stop()
        server.shutdown()
