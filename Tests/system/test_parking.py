"""Connection parking (docs/decisions/0009): an idle plain-TCP connection gives its event-loop
channel back after `mqtt.park_after` seconds and is resumed by a byte from the client, a
message for it, its keep alive, a takeover or the broker's shutdown. The client never notices:
every test here runs the same MQTT exchange a client on a live channel would, after the broker
says (`swiftlet-ctl status`: clients_parked) that the connection is parked."""

import signal
import socket
import time

import pytest

import mqttraw as m
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok
from mqttraw import RawClient


@pytest.fixture
def parking(broker_factory, tmp_path):
    """A broker that parks connections idle for one second, and its ctl socket."""
    def start(park_after=1, listener=None):
        sock = tmp_path / f"ctl-{len(broker_factory.brokers)}.sock"
        b = broker_factory(mqtt={"park_after": park_after}, listener=listener, extra=ctl_config(sock))
        return b, sock
    return start


def parked(sock):
    return ctl_ok(sock, "status", json_out=True)["clients_parked"]


def wait_parked(sock, n, timeout=10.0):
    wait_for(lambda: parked(sock) == n, timeout=timeout, interval=0.2, msg=f"{n} connections parked")


@pytest.mark.parametrize("version", [4, 5])
def test_parked_subscriber_receives_qos0_and_qos1(parking, version):
    b, sock = parking()
    sub = Client(b, version=version)
    sub.subscribe("park/t", qos=1)
    pub = Client(b, version=version)
    wait_parked(sock, 2)
    pub.publish("park/t", b"one", qos=1)
    msg = sub.get()
    assert (msg.topic, msg.payload, msg.qos) == ("park/t", b"one", 1)
    # Parked again, then a QoS 0 message wakes it.
    wait_parked(sock, 2)
    pub.publish("park/t", b"two", qos=0)
    assert sub.get().payload == b"two"
    sub.disconnect()
    pub.disconnect()
    wait_for(lambda: ctl_ok(sock, "status", json_out=True)["clients"] == 0, msg="both clients gone")
    assert parked(sock) == 0


def test_parked_client_publishes_pings_and_subscribes(parking):
    b, sock = parking()
    watcher = Client(b)
    watcher.subscribe("park/in/#", qos=1)
    raw = RawClient(b, version=4)
    raw.connect("raw-parked")
    wait_parked(sock, 2)
    raw.ping()
    wait_parked(sock, 2)
    ack = raw.publish("park/in/a", b"from-parked", qos=1, pid=7)
    assert ack.pid == 7
    assert watcher.get().payload == b"from-parked"
    wait_parked(sock, 2)
    raw.subscribe("park/out", pid=3)
    watcher.publish("park/out", b"back", qos=0)
    got = raw.expect(m.PUBLISH)
    assert got.payload == b"back"
    raw.close()
    watcher.disconnect()


def test_keep_alive_expiry_while_parked_publishes_the_will(parking):
    b, sock = parking()
    watcher = Client(b)
    watcher.subscribe("park/will", qos=1)
    raw = RawClient(b, version=4)
    raw.connect("will-parked", keepalive=3, will_topic="park/will", will_payload=b"gone", will_qos=1)
    wait_parked(sock, 2)
    # Keep alive 3 s x 1.5: the broker closes the parked connection and publishes the will.
    assert watcher.get(timeout=10).payload == b"gone"
    raw.wait_closed(timeout=5)
    watcher.disconnect()


def test_client_closing_a_parked_socket_fires_its_will(parking):
    b, sock = parking()
    watcher = Client(b)
    watcher.subscribe("park/will2", qos=1)
    c = Client(b, will={"topic": "park/will2", "payload": b"dropped", "qos": 1})
    wait_parked(sock, 2)
    c.kill()
    assert watcher.get(timeout=10).payload == b"dropped"
    wait_for(lambda: ctl_ok(sock, "status", json_out=True)["clients"] == 1, msg="the closed client counted out")
    watcher.disconnect()


def test_takeover_of_a_parked_v5_client_sends_session_taken_over(parking):
    b, sock = parking()
    first = Client(b, client_id="park-same", version=5)
    wait_parked(sock, 1)
    second = Client(b, client_id="park-same", version=5)
    first.wait_disconnected(timeout=10)
    assert first.disconnect_rc == 0x8E
    second.disconnect()


def test_shutdown_sends_server_shutting_down_to_parked_v5_clients(parking):
    b, sock = parking()
    clients = [Client(b, version=5) for _ in range(3)]
    wait_parked(sock, 3)
    b.stop(signal.SIGTERM)
    for c in clients:
        c.wait_disconnected(timeout=10)
        assert c.disconnect_rc == 0x8B


def open_connections(sock):
    return sum(l["connections"] for l in ctl_ok(sock, "listeners", json_out=True)["listeners"])


def test_parked_connections_count_against_max_connections(parking):
    b, sock = parking(listener={"max_connections": 2})
    # The readiness probe counts until the broker has seen it close (it crosses from the
    # accept loop to a serving loop first): with a limit of 2 it could refuse the second client.
    wait_for(lambda: open_connections(sock) == 0, msg="the readiness probe's connection closed")
    a = Client(b)
    c = Client(b)
    wait_parked(sock, 2)
    third = RawClient(b, version=4)
    third.wait_closed(timeout=5)
    a.disconnect()
    wait_for(lambda: ctl_ok(sock, "status", json_out=True)["clients"] == 1, msg="one client left")
    ok = RawClient(b, version=4)
    ok.connect("after-one-left")
    ok.close()
    c.disconnect()


def test_park_after_zero_never_parks(parking):
    b, sock = parking(park_after=0)
    c = Client(b)
    time.sleep(3)
    assert parked(sock) == 0
    c.disconnect()


def test_many_parked_connections_all_receive_a_broadcast(parking):
    b, sock = parking()
    n = 200
    raws = []
    for i in range(n):
        r = RawClient(b, version=4)
        r.connect(f"fleet-{i}")
        r.subscribe("park/fleet/all", qos=1)
        raws.append(r)
    wait_parked(sock, n, timeout=20)
    pub = RawClient(b, version=4)
    pub.connect("fleet-publisher")
    pub.publish("park/fleet/all", b"to-everyone", qos=1, pid=1)
    for r in raws:
        p = r.expect(m.PUBLISH)
        assert p.payload == b"to-everyone" and p.qos == 1
        r.send(m.puback(p.pid))
    # Nothing left in flight: everyone parks again, then leaves.
    wait_parked(sock, n + 1, timeout=20)
    for r in raws + [pub]:
        r.send(m.disconnect())
        r.close()
    wait_for(lambda: ctl_ok(sock, "status", json_out=True)["clients"] == 0, timeout=20, msg="all clients gone")
    assert parked(sock) == 0
