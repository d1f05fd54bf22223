"""swiftlet-gateways' STOMP over SockJS (emqttd_sockjs) end to end: raw HTTP and WebSocket
requests for every SockJS 0.3 transport against a real broker, with paho-mqtt on the other
side, session timeouts, heart-beats and the close frame; and the demo page driven in headless
Chromium (selenium) exchanging a message with an MQTT client, its screenshot saved under
.build/test-artifacts/."""

import http.client
import json
import os
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest

from brokers import REPO, free_port
from clients import Client, wait_for
from ctl import ctl_ok
from stompgw import GatewayProcess, auth_broker, gateways_binary, shipped_config, wait_port

pytestmark = pytest.mark.skipif(not gateways_binary().exists(),
                                reason=f"{gateways_binary()} not built (swift build --product swiftlet-gateways)")

PASSWORDS = {"guest": "guest", "alice": "alice-pw", "watcher": "watcher-pw"}
ACL = """
[[rules]]
permission = "deny"
user = "alice"
topics = ["secret/#"]

[[rules]]
permission = "allow"
topics = ["#"]
"""
PREFIX = "/stomp"


@pytest.fixture(scope="module")
def sj(module_broker_factory):
    b, d = auth_broker(module_broker_factory, PASSWORDS, ACL)
    port = free_port()
    text = shipped_config({"listener = 61613 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           "listener = 1884 ": f"listener = \"127.0.0.1:{free_port()}\" ",
                           "listener = 61616 ": f"listener = \"127.0.0.1:{port}\" ",
                           "heartbeat_delay = 25 ": "heartbeat_delay = 1 ",
                           "disconnect_delay = 5 ": "disconnect_delay = 2 ",
                           "response_limit = 131072 ": "response_limit = 4096 "})
    g = GatewayProcess(d, d / "sc.sock", text).start(b)
    wait_port(port)
    yield b, port, d, g
    g.stop()


def watcher(b):
    return Client(b, version=5, username="watcher", password=PASSWORDS["watcher"])


def stomp(command, headers=(), body=""):
    return command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers) + "\n" + body + "\x00"


def connect_frame(login="alice"):
    return stomp("CONNECT", [("accept-version", "1.2"), ("host", "/"), ("login", login), ("passcode", PASSWORDS[login])])


def request(port, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def sid(uniq, n=""):
    return f"{uniq}{n}"


def frames_of(body):
    """SockJS frames of an xhr response body (one per line)."""
    return [line for line in body.decode().split("\n") if line]


def messages_of(frame):
    assert frame.startswith("a"), frame
    return json.loads(frame[1:])


class XhrSession:
    """A SockJS session over xhr polling and xhr_send, as sockjs-client does it."""

    def __init__(self, port, session):
        self.port, self.base = port, f"{PREFIX}/000/{session}"
        self.pending = []
        status, _, body = request(port, "POST", self.base + "/xhr")
        assert status == 200 and frames_of(body) == ["o"], body

    def send(self, *messages):
        status, _, body = request(self.port, "POST", self.base + "/xhr_send", json.dumps(list(messages)),
                                  {"Content-Type": "text/plain"})
        assert status == 204, (status, body)

    def poll(self):
        status, _, body = request(self.port, "POST", self.base + "/xhr", timeout=15)
        assert status == 200
        return frames_of(body)

    def next_stomp(self):
        """The next STOMP frame text (heart-beat frames and STOMP EOLs skipped)."""
        while not self.pending:
            for f in self.poll():
                if f.startswith("a"):
                    self.pending += [m for m in messages_of(f) if m.strip("\n")]
                elif f.startswith("c"):
                    self.pending.append(f)
        return self.pending.pop(0)


def test_greeting_info_iframe_and_preflight(sj):
    _, port, _, _ = sj
    status, _, body = request(port, "GET", PREFIX)
    assert (status, body) == (200, b"Welcome to SockJS!\n")
    status, h, body = request(port, "GET", PREFIX + "/info", headers={"Origin": "http://example.test"})
    info = json.loads(body)
    assert status == 200 and info["websocket"] is True and info["cookie_needed"] is False and "entropy" in info
    assert h["access-control-allow-origin"] == "http://example.test"
    assert h["access-control-allow-credentials"] == "true"
    assert "no-store" in h["cache-control"]
    status, h, _ = request(port, "OPTIONS", PREFIX + "/info")
    assert status == 204 and "GET" in h["access-control-allow-methods"]
    status, h, body = request(port, "GET", PREFIX + "/iframe.html")
    assert status == 200 and b"/sockjs.min.js" in body and b"bootstrap_iframe" in body
    status, _, _ = request(port, "GET", PREFIX + "/iframe-1.6.1.html", headers={"If-None-Match": h["etag"]})
    assert status == 304
    status, _, _ = request(port, "GET", PREFIX + "/000/x.y/xhr")
    assert status == 404
    status, _, body = request(port, "GET", PREFIX + "/websocket")
    assert status == 400


def test_xhr_polling_and_xhr_send_exchange_with_mqtt(sj, uniq):
    b, port, _, _ = sj
    x = XhrSession(port, sid(uniq))
    x.send(connect_frame())
    assert x.next_stomp().startswith("CONNECTED\n")
    x.send(stomp("SUBSCRIBE", [("id", "1"), ("destination", f"/topic/{uniq}/down"), ("receipt", "r1")]))
    assert "receipt-id:r1" in x.next_stomp()
    w = watcher(b)
    assert w.subscribe(f"{uniq}/up", qos=1) == [1]
    w.publish(f"{uniq}/down", b"to the browser", qos=1)
    m = x.next_stomp()
    assert m.startswith("MESSAGE\n") and f"destination:/topic/{uniq}/down" in m and m.endswith("to the browser\x00"), m
    x.send(stomp("SEND", [("destination", f"/topic/{uniq}/up")], "from xhr"))
    assert w.get().payload == b"from xhr"
    # Errors of xhr_send: no payload, broken JSON, unknown session.
    assert request(port, "POST", x.base + "/xhr_send", "")[0:1] == (500,)
    assert request(port, "POST", x.base + "/xhr_send", "[broken")[2] == b"Broken JSON encoding."
    assert request(port, "POST", f"{PREFIX}/000/nosuch{uniq}/xhr_send", "[]")[0] == 404


def test_websocket_transport(sj, uniq):
    import websocket
    b, port, _, _ = sj
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}{PREFIX}/000/{sid(uniq)}/websocket", timeout=10)
    assert ws.recv() == "o"
    ws.send(json.dumps([connect_frame()]))

    def next_stomp():
        while True:
            f = ws.recv()
            if f.startswith("a"):
                ms = [m for m in messages_of(f) if m.strip("\n")]
                if ms:
                    return ms[0]
    assert next_stomp().startswith("CONNECTED\n")
    ws.send(json.dumps([stomp("SUBSCRIBE", [("id", "w"), ("destination", f"{uniq}/+"), ("receipt", "r")])]))
    assert "receipt-id:r" in next_stomp()
    w = watcher(b)
    assert w.subscribe(f"{uniq}/up", qos=1) == [1]
    w.publish(f"{uniq}/x", "ünïcode ✓".encode(), qos=1)
    m = next_stomp()
    assert f"destination:{uniq}/x" in m and m.endswith("ünïcode ✓\x00"), m
    ws.send(json.dumps(stomp("SEND", [("destination", f"{uniq}/up")], "single string payload")))
    assert w.get().payload == b"single string payload"
    ws.close()


def test_raw_websocket(sj, uniq):
    import websocket
    b, port, _, _ = sj
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}{PREFIX}/websocket", timeout=10)
    ws.send(connect_frame())
    assert ws.recv().startswith("CONNECTED\n")
    w = watcher(b)
    assert w.subscribe(f"{uniq}/raw", qos=1) == [1]
    ws.send(stomp("SEND", [("destination", f"{uniq}/raw")], "raw frames"))
    assert w.get().payload == b"raw frames"
    ws.close()


def stream(port, method, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path)
    r = c.getresponse()
    assert r.status == 200, r.status
    return c, r


def read_until(r, needle, limit=1 << 20):
    data = b""
    while needle not in data:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data


def test_xhr_streaming_prelude_frames_and_response_limit(sj, uniq):
    b, port, _, _ = sj
    s = sid(uniq)
    c, r = stream(port, "POST", f"{PREFIX}/000/{s}/xhr_streaming")
    data = read_until(r, b"o\n")
    assert data.startswith(b"h" * 2048 + b"\n") and data.endswith(b"o\n")
    assert request(port, "POST", f"{PREFIX}/000/{s}/xhr_send", json.dumps([connect_frame()]))[0] == 204
    assert b"CONNECTED" in read_until(r, b"CONNECTED")
    # A second receiving request while this one is open is told so.
    status, _, body = request(port, "POST", f"{PREFIX}/000/{s}/xhr")
    assert frames_of(body) == ['c[2010,"Another connection still open"]']
    # The response ends after response_limit bytes (4096 here): the client opens another.
    request(port, "POST", f"{PREFIX}/000/{s}/xhr_send",
            json.dumps([stomp("SUBSCRIBE", [("id", "1"), ("destination", f"{uniq}/big")])]))
    time.sleep(0.3)
    watcher(b).publish(f"{uniq}/big", b"x" * 5000, qos=1)
    rest = r.read()  # ends: the limit was passed
    assert b"xxxxx" in rest
    c.close()
    # Heart-beat frames arrive on an idle streaming response (heartbeat_delay = 1).
    c, r = stream(port, "POST", f"{PREFIX}/000/{s}/xhr_streaming")
    assert read_until(r, b"h\n").endswith(b"h\n")
    c.close()


def test_eventsource_htmlfile_and_jsonp(sj, uniq):
    b, port, _, _ = sj
    c, r = stream(port, "GET", f"{PREFIX}/000/{sid(uniq, 'es')}/eventsource")
    assert r.getheader("Content-Type").startswith("text/event-stream")
    assert read_until(r, b"data: o\r\n\r\n").startswith(b"\r\n")
    request(port, "POST", f"{PREFIX}/000/{sid(uniq, 'es')}/xhr_send", json.dumps([connect_frame()]))
    assert b"CONNECTED" in read_until(r, b"CONNECTED")
    c.close()

    assert request(port, "GET", f"{PREFIX}/000/{sid(uniq, 'hf')}/htmlfile")[2] == b'"callback" parameter required'
    assert request(port, "GET", f"{PREFIX}/000/{sid(uniq, 'hf')}/htmlfile?c=alert(1)")[0] == 500
    c, r = stream(port, "GET", f"{PREFIX}/000/{sid(uniq, 'hf')}/htmlfile?c=cb.x")
    data = read_until(r, b'p("o");')
    assert b"parent.cb.x" in data and len(data) > 1024
    c.close()

    s = sid(uniq, "jp")
    status, _, body = request(port, "GET", f"{PREFIX}/000/{s}/jsonp?c=callback")
    assert body == b'/**/callback("o");\r\n'
    form = urllib.parse.urlencode({"d": json.dumps([connect_frame()])})
    status, _, body = request(port, "POST", f"{PREFIX}/000/{s}/jsonp_send", form,
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body) == (200, b"ok")
    status, _, body = request(port, "GET", f"{PREFIX}/000/{s}/jsonp?c=callback")
    assert body.startswith(b'/**/callback("a[\\"CONNECTED') and body.endswith(b'");\r\n'), body


def test_session_timeout_ends_the_stomp_client(sj, uniq):
    _, port, d, _ = sj
    x = XhrSession(port, sid(uniq))
    x.send(connect_frame())
    session = x.next_stomp().split("session:")[1].split("\n")[0]
    assert session in {r["clientid"] for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)}
    # No receiving request for longer than disconnect_delay (2 s): the session is gone.
    wait_for(lambda: session not in {r["clientid"] for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)},
             timeout=15, msg="SockJS session timed out")
    assert request(port, "POST", x.base + "/xhr_send", "[]")[0] == 404
    row = [r for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True)]
    assert all(r["clientid"] != session for r in row)


def test_stomp_error_then_close_frame(sj, uniq):
    _, port, _, _ = sj
    x = XhrSession(port, sid(uniq))
    x.send(stomp("SEND", [("destination", "a")], "before connect"))
    err = x.next_stomp()
    assert err.startswith("ERROR\n") and "message:no frame is processed before CONNECT" in err
    assert x.next_stomp() == 'c[3000,"Go away!"]'
    # Every later receiving request gets the close frame again.
    assert x.poll() == ['c[3000,"Go away!"]']


def test_auth_and_acl_through_the_chain(sj, uniq):
    b, port, d, _ = sj
    x = XhrSession(port, sid(uniq, "bad"))
    x.send(stomp("CONNECT", [("accept-version", "1.2"), ("login", "alice"), ("passcode", "wrong")]))
    err = x.next_stomp()
    assert err.startswith("ERROR\n") and "message:login refused" in err
    x = XhrSession(port, sid(uniq, "acl"))
    x.send(connect_frame())
    assert x.next_stomp().startswith("CONNECTED")
    x.send(stomp("SUBSCRIBE", [("id", "1"), ("destination", "/topic/secret/x"), ("receipt", "s")]))
    err = x.next_stomp()
    assert err.startswith("ERROR\n") and "message:subscription refused" in err
    rows = [r for r in ctl_ok(d / "ctl.sock", "clients", "list", json_out=True) if r["clientid"].startswith("sockjs-")]
    assert all(r["listener"] == f"stomp-sockjs:http:127.0.0.1:{port}" for r in rows)


# -- the demo page in a real browser ---------------------------------------------------------

def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(chromium() is None or shutil.which("chromedriver") is None,
                    reason="chromium and chromium-driver (Debian) are needed")
def test_demo_page_in_headless_chromium(sj, uniq):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    b, port, _, _ = sj
    status, _, _ = request(port, "GET", "/sockjs.min.js")
    if status != 200:
        pytest.skip("Debian's node-sockjs-client is not installed (the gateway serves it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(f"http://127.0.0.1:{port}/index.html")
        driver.find_element(By.ID, "connect").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "connected"))
        sub = driver.find_element(By.ID, "subscription")
        sub.clear()
        sub.send_keys(f"/topic/{uniq}/#")
        driver.find_element(By.ID, "subscribe").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "log"), f"subscribed to /topic/{uniq}/#"))
        w = watcher(b)
        assert w.subscribe(f"{uniq}/browser", qos=1) == [1]
        w.publish(f"{uniq}/from-mqtt", b"Hello browser, from paho", qos=1)
        wait.until(EC.text_to_be_present_in_element((By.ID, "log"), f"/topic/{uniq}/from-mqtt: Hello browser, from paho"))
        dest = driver.find_element(By.ID, "destination")
        dest.clear()
        dest.send_keys(f"/topic/{uniq}/browser")
        msg = driver.find_element(By.ID, "message")
        msg.clear()
        msg.send_keys("Hello paho, from Chromium")
        driver.find_element(By.ID, "publish").click()
        got = w.get(timeout=10)
        assert (got.topic, got.payload) == (f"{uniq}/browser", b"Hello paho, from Chromium")
        transport = driver.find_element(By.ID, "transport").text
        assert "websocket" in transport, transport
        out = Path(os.environ.get("SWIFTLET_ARTIFACTS", REPO / ".build" / "test-artifacts"))
        out.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / "sockjs-demo.png"))
        assert (out / "sockjs-demo.png").stat().st_size > 1000
    finally:
        driver.quit()
