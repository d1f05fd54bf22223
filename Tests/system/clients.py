"""A thin synchronous wrapper around paho-mqtt 2.x for the system tests."""

import queue
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 10.0


def props(packet_type=PacketTypes.PUBLISH, **kw):
    """Properties(...) from keyword arguments, e.g. props(MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def connect_props(**kw):
    return props(PacketTypes.CONNECT, **kw)


def rc_value(rc):
    return rc.value if hasattr(rc, "value") else int(rc)


class Message:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.properties = getattr(m, "properties", None)
        self.time = time.monotonic()

    def prop(self, name, default=None):
        return getattr(self.properties, name, default) if self.properties is not None else default

    def __repr__(self):
        return f"<Message {self.topic} {self.payload[:40]!r} qos={self.qos} retain={self.retain}>"


class Client:
    """A connected paho client whose received messages go to a queue."""

    def __init__(self, broker, client_id=None, version=5, clean=True, keepalive=60,
                 username=None, password=None, will=None, properties=None, connect=True,
                 expect_rc=0):
        self.broker = broker
        self.version = version
        self.client_id = f"c-{uuid.uuid4().hex[:12]}" if client_id is None else client_id
        proto = {5: mqtt.MQTTv5, 4: mqtt.MQTTv311, 3: mqtt.MQTTv31}[version]
        kw = {} if version == 5 else {"clean_session": clean}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=proto, reconnect_on_failure=False, **kw)
        self.c.max_queued_messages_set(0)
        self.c.max_inflight_messages_set(100)
        self.clean = clean
        self.keepalive = keepalive
        self.properties = properties
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.disconnect_rc = None
        self.disconnect_props = None
        self._subacks = {}
        self._sub_events = {}
        self._lock = threading.Lock()
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            self.c.will_set(**will)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        if connect:
            self.connect(expect_rc=expect_rc)

    # -- callbacks --------------------------------------------------------
    def _on_connect(self, c, ud, flags, rc, properties):
        self.connack = (flags.session_present, rc_value(rc), properties)
        self.connected.set()

    def _on_disconnect(self, c, ud, flags, rc, properties):
        self.disconnect_rc = rc_value(rc)
        self.disconnect_props = properties
        self.disconnected.set()

    def _on_message(self, c, ud, m):
        self.messages.put(Message(m))

    def _on_subscribe(self, c, ud, mid, rcs, properties):
        with self._lock:
            self._subacks[mid] = [rc_value(r) for r in rcs]
            ev = self._sub_events.setdefault(mid, threading.Event())
        ev.set()

    # -- operations -------------------------------------------------------
    def connect(self, expect_rc=0):
        self.connected.clear()
        self.disconnected.clear()
        kw = {}
        if self.version == 5:
            kw["clean_start"] = self.clean
            if self.properties is not None:
                kw["properties"] = self.properties
        self.c.connect(self.broker.host, self.broker.port, keepalive=self.keepalive, **kw)
        self.c.loop_start()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.connected.wait(0.05) or self.disconnected.is_set():
                break
        assert self.connack is not None, f"no CONNACK for {self.client_id}"
        if expect_rc is not None:
            assert self.connack[1] == expect_rc, f"CONNACK reason {self.connack[1]:#x}"
        return self.connack

    @property
    def session_present(self):
        return self.connack[0]

    @property
    def connack_props(self):
        return self.connack[2]

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """Subscribe and wait for the SUBACK; returns the list of reason codes / granted QoS."""
        if self.version == 5:
            if isinstance(topic, list):
                rc, mid = self.c.subscribe(topic, properties=properties)
            else:
                rc, mid = self.c.subscribe(topic, options=options or SubscribeOptions(qos=qos),
                                           properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        with self._lock:
            ev = self._sub_events.setdefault(mid, threading.Event())
        assert ev.wait(TIMEOUT), f"no SUBACK for {topic}"
        return self._subacks[mid]

    def unsubscribe(self, topic):
        self.c.unsubscribe(topic)
        time.sleep(0.2)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if wait:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), f"publish to {topic} (qos {qos}) not completed"
        return info

    def get(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout}s") from None

    def collect(self, n, timeout=10.0):
        """Exactly the next n messages (fails if fewer arrive)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            remaining = deadline - time.monotonic()
            try:
                out.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                raise AssertionError(f"{self.client_id}: got {len(out)} of {n} messages: {out[:5]}") from None
        return out

    def drain(self, wait=0.5):
        """All messages arriving within `wait` seconds of quiet."""
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=wait))
            except queue.Empty:
                return out

    def expect_none(self, wait=1.0):
        got = self.drain(wait)
        assert not got, f"{self.client_id}: unexpected messages {got}"

    def disconnect(self, reasoncode=None, properties=None):
        if self.c.is_connected():
            if self.version == 5 and reasoncode is not None:
                from paho.mqtt.reasoncodes import ReasonCode
                self.c.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=reasoncode),
                                  properties=properties)
            else:
                self.c.disconnect()
        self.disconnected.wait(TIMEOUT)
        self.c.loop_stop()

    def kill(self):
        """Drop the TCP connection without DISCONNECT."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(2)
            except OSError:
                pass
            sock.close()

    def wait_disconnected(self, timeout=TIMEOUT):
        assert self.disconnected.wait(timeout), f"{self.client_id} was not disconnected"
        return self.disconnect_rc


def wait_for(predicate, timeout=10.0, interval=0.05, msg="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {msg}")


class GoodClient:
    """Publishes QoS 1 messages to itself in a background thread; check() verifies none were lost."""

    def __init__(self, broker):
        self.broker = broker
        self.c = Client(broker, client_id=f"good-{uuid.uuid4().hex[:8]}")
        self.topic = f"good/{uuid.uuid4().hex[:8]}"
        self.c.subscribe(self.topic, qos=1)
        self.sent = 0
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                self.c.publish(self.topic, b"%d" % self.sent, qos=1)
            except Exception as e:  # noqa: BLE001 - reported by check()
                self.error = e
                return
            self.sent += 1
            time.sleep(0.005)

    def halt(self):
        self.stop.set()
        self.thread.join(20)

    def check(self):
        deadline = time.monotonic() + 10
        while self.sent < 5 and self.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.halt()
        self.broker.assert_alive()
        assert self.error is None, f"good client publish failed: {self.error!r}"
        assert not self.c.disconnected.is_set(), f"good client was disconnected ({self.c.disconnect_rc})"
        assert self.sent > 0
        got = [int(x.payload) for x in self.c.collect(self.sent, timeout=20)]
        got += [int(x.payload) for x in self.c.drain(0.3)]
        assert got == list(range(self.sent)), "good client lost, duplicated or reordered messages"
        self.c.disconnect()
