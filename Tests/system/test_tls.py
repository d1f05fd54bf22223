"""TLS listeners an operator can put on the internet (issue 17, points 1-3): client
certificate verification (none, optional, required; the older verify_peer spelling), the CA
and CRL files, minimum version and ciphers, start-up errors naming the key, the certificate's
CN/DN as username, client id and %C/%d in an auth plugin, and certificate reload (ctl and
SIGHUP) under a connected client. Real clients: paho-mqtt, mosquitto_pub/sub, Python ssl."""

import json
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from brokers import free_port, swiftlet_path
from clients import wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from mqttraw import connect as connect_packet
from pki import PKI, tls_listener
from sidecars import short_dir


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki")).make()


def broker_with(factory, pki, *listeners, extra=""):
    """A broker with `listeners` plus a plain listener (for readiness), and a ctl socket. The
    plain one comes last: listeners bind in order, so once it accepts every other one does."""
    d = short_dir()
    sock = d / "ctl.sock"
    text = ("".join(listeners) + '[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:{port}"\n\n'
            + ctl_config(sock) + extra)
    b = factory(config_text=text)
    b.ctl = sock
    return b


def paho(pki, cert=None, version=mqtt.MQTTv311, client_id=None, ca="ca.pem", tls_version=None, ciphers=None,
         transport="tcp"):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                    protocol=version, transport=transport)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    kw = {}
    if cert:
        kw = {"certfile": pki.path(cert + ".pem"), "keyfile": pki.path(cert + ".key")}
    if tls_version:
        kw["tls_version"] = tls_version
    c.tls_set(ca_certs=pki.path(ca), cert_reqs=ssl.CERT_REQUIRED, ciphers=ciphers, **kw)
    return c


def try_connect(c, port, username=None, password=None):
    """(connected, reason code or error) for one connection attempt."""
    got = queue.Queue()
    c.on_connect = lambda cl, u, f, rc, p=None: got.put(rc)
    if username is not None:
        c.username_pw_set(username, password)
    try:
        c.connect("127.0.0.1", port, keepalive=30)
    except (ssl.SSLError, OSError) as e:
        return False, e
    c.loop_start()
    try:
        rc = got.get(timeout=10)
        return rc == 0, rc
    except queue.Empty:
        return False, "no CONNACK"
    finally:
        pass


def stop(c):
    try:
        c.disconnect()
    finally:
        c.loop_stop()


def roundtrip(c, topic):
    got = queue.Queue()
    c.on_message = lambda cl, u, m: got.put(m.payload)
    subscribed = queue.Queue()
    c.on_subscribe = lambda *a: subscribed.put(True)
    c.subscribe(topic, qos=1)
    subscribed.get(timeout=10)
    c.publish(topic, b"hello " + topic.encode(), qos=1)
    return got.get(timeout=10)


def handshake(port, pki, cert=None, ca="ca.pem", max_version=None, min_version=None, ciphers=None, curve=None):
    """A bare TLS handshake; returns (ssl socket) or raises. `curve`: the only key exchange
    group the client offers."""
    ctx = ssl.create_default_context(cafile=pki.path(ca))
    if curve:
        ctx.set_ecdh_curve(curve)
    if cert:
        ctx.load_cert_chain(pki.path(cert + ".pem"), pki.path(cert + ".key"))
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def mqtt_over(s):
    """CONNECT over an established (TLS) socket; True when CONNACK 0 comes back."""
    s.sendall(connect_packet(f"h-{uuid.uuid4().hex[:6]}", version=4))
    try:
        data = s.recv(4)
    except (ssl.SSLError, OSError):
        return False
    return data[:1] == b"\x20" and data[3:4] == b"\x00"


def listener_entry(b, port):
    for l in ctl_ok(b.ctl, "listeners", json_out=True)["listeners"]:
        if l["address"].endswith(f":{port}"):
            return l
    raise AssertionError(f"no listener on {port}")


# -- verify modes --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def modes(module_broker_factory, pki):
    ports = {m: free_port() for m in ("none", "optional", "required", "legacy")}
    ca = pki.path("ca.pem")
    b = broker_with(module_broker_factory, pki,
                    tls_listener("tls", ports["none"], pki),
                    tls_listener("tls", ports["optional"], pki, cacertfile=ca, verify="optional"),
                    tls_listener("tls", ports["required"], pki, cacertfile=ca, verify="required",
                                 peer_cert_as_username="cn"),
                    tls_listener("tls", ports["legacy"], pki, cacertfile=ca, verify_peer=True,
                                 fail_if_no_peer_cert=True))
    b.ports = ports
    return b


@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_tls_without_client_certificate(modes, pki, version):
    c = paho(pki, version=version)
    ok, why = try_connect(c, modes.ports["none"])
    assert ok, why
    try:
        t = f"tls/{uuid.uuid4().hex[:6]}"
        assert roundtrip(c, t) == b"hello " + t.encode()
    finally:
        stop(c)


def test_verify_optional_accepts_with_and_without_certificate(modes, pki):
    for cert in (None, "client1"):
        c = paho(pki, cert=cert)
        ok, why = try_connect(c, modes.ports["optional"])
        assert ok, (cert, why)
        stop(c)


@pytest.mark.parametrize("mode", ["optional", "required", "legacy"])
def test_certificate_from_another_ca_refused(modes, pki, mode):
    c = paho(pki, cert="stranger")
    ok, why = try_connect(c, modes.ports[mode])
    assert not ok, why
    stop(c)


@pytest.mark.parametrize("mode", ["required", "legacy"])
def test_verify_required_refuses_client_without_certificate(modes, pki, mode):
    c = paho(pki)
    ok, why = try_connect(c, modes.ports[mode])
    assert not ok, why
    stop(c)
    # ... and the same client with its certificate gets in.
    c = paho(pki, cert="client1")
    ok, why = try_connect(c, modes.ports[mode])
    assert ok, why
    stop(c)


def test_refusals_counted_per_listener(modes, pki):
    before = listener_entry(modes, modes.ports["required"])["refused_by_reason"]["tls_handshake"]
    c = paho(pki)
    assert not try_connect(c, modes.ports["required"])[0]
    stop(c)
    wait_for(lambda: listener_entry(modes, modes.ports["required"])["refused_by_reason"]["tls_handshake"] > before,
             msg="the refused handshake counted")
    out = ctl_ok(modes.ctl, "listeners")
    assert "REFUSED" in out and f":{modes.ports['required']}" in out


def test_mosquitto_clients_with_client_certificate(modes, pki):
    port = str(modes.ports["required"])
    topic = f"mosq/{uuid.uuid4().hex[:6]}"
    tls = ["--cafile", pki.path("ca.pem"), "--cert", pki.path("client1.pem"), "--key", pki.path("client1.key")]
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", topic, "-C", "1", "-W", "20",
                            "-i", "mosq-sub"] + tls, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Publish until the subscriber (connecting in parallel) has its subscription.
        deadline = time.monotonic() + 15
        while sub.poll() is None and time.monotonic() < deadline:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", topic, "-m", "over-mtls",
                            "-i", "mosq-pub", "-q", "1"] + tls, check=True, capture_output=True, timeout=20)
            time.sleep(0.2)
        out, err = sub.communicate(timeout=20)
        assert out.strip() == "over-mtls", err
    finally:
        sub.kill()
    # Without a certificate mosquitto_pub is refused.
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", topic, "-m", "x",
                        "--cafile", pki.path("ca.pem")], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0


def test_certificate_cn_is_username_and_shown_by_ctl(modes, pki):
    cid = f"cn-{uuid.uuid4().hex[:6]}"
    c = paho(pki, cert="client1", client_id=cid)
    ok, why = try_connect(c, modes.ports["required"], username="claimed-name", password="x")
    assert ok, why
    try:
        j = ctl_ok(modes.ctl, "clients", "show", cid, json_out=True)
        assert j["username"] == "client-1"          # from the certificate, not the CONNECT
        assert j["cert_common_name"] == "client-1"
        assert j["cert_subject"] == "CN=client-1,O=Swiftlet Test"
        text = ctl_ok(modes.ctl, "clients", "show", cid)
        assert "cert_dn:" in text and "CN=client-1,O=Swiftlet Test" in text
    finally:
        stop(c)


def test_client_without_certificate_has_no_cert_fields(modes, pki):
    cid = f"nocert-{uuid.uuid4().hex[:6]}"
    c = paho(pki, client_id=cid)
    ok, why = try_connect(c, modes.ports["optional"], username="u", password="p")
    assert ok, why
    try:
        j = ctl_ok(modes.ctl, "clients", "show", cid, json_out=True)
        assert j["username"] == "u" and j["cert_common_name"] is None and j["cert_subject"] is None
    finally:
        stop(c)


# -- hostile input on the TLS port -------------------------------------------------------------

def test_plain_mqtt_to_tls_port_is_closed_cleanly(modes):
    port = modes.ports["none"]
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(connect_packet("plain-on-tls", version=4))
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    assert not data.startswith(b"\x20"), "no CONNACK over plain TCP on the TLS port"
    modes.assert_alive()


def test_truncated_handshake_is_closed_and_broker_serves_on(modes, pki):
    port = modes.ports["none"]
    # The first bytes of a real ClientHello, then silence, then a close.
    hello = bytearray()
    ctx = ssl.create_default_context()
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inb, outb, server_hostname="x")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        hello = outb.read()
    for cut in (5, len(hello) // 2):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello[:cut])
        s.close()
    # A record header announcing 16 KB that never comes, then a half close.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x16\x03\x01\x40\x00" + b"\x01" * 10)
    s.shutdown(socket.SHUT_WR)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    modes.assert_alive()
    c = paho(pki)
    ok, why = try_connect(c, port)
    assert ok, why
    stop(c)


# -- CRL, minimum version, ciphers -----------------------------------------------------------

@pytest.fixture(scope="module")
def tuned(module_broker_factory, pki):
    ports = {"crl": free_port(), "v13": free_port(), "ciphers": free_port(), "groups": free_port(), "rsakx": free_port()}
    ca = pki.path("ca.pem")
    b = broker_with(module_broker_factory, pki,
                    tls_listener("tls", ports["crl"], pki, cacertfile=ca, verify="required", crlfile=pki.path("crl.pem")),
                    tls_listener("tls", ports["v13"], pki, min_tls_version="tlsv1.3"),
                    tls_listener("tls", ports["ciphers"], pki, ciphers="ECDHE-RSA-AES128-GCM-SHA256"),
                    tls_listener("tls", ports["groups"], pki, supported_groups="P-384:x25519"),
                    tls_listener("tls", ports["rsakx"], pki, ciphers="AES128-GCM-SHA256"))
    b.ports = ports
    return b


def test_crl_refuses_revoked_certificate(tuned, pki):
    s = handshake(tuned.ports["crl"], pki, cert="client1")
    assert mqtt_over(s)
    s.close()
    ok = True
    try:
        s = handshake(tuned.ports["crl"], pki, cert="client2")
        ok = mqtt_over(s)
        s.close()
    except (ssl.SSLError, OSError):
        ok = False
    assert not ok, "client2 is in the CRL"
    wait_for(lambda: listener_entry(tuned, tuned.ports["crl"])["refused_by_reason"]["certificate_revoked"] >= 1,
             msg="the revoked certificate counted")


def test_min_tls_version(tuned, pki):
    with pytest.raises((ssl.SSLError, OSError)):
        s = handshake(tuned.ports["v13"], pki, max_version=ssl.TLSVersion.TLSv1_2)
        mqtt_over(s) or (_ for _ in ()).throw(OSError("closed"))
    s = handshake(tuned.ports["v13"], pki)
    assert s.version() == "TLSv1.3"
    assert mqtt_over(s)
    s.close()


def test_cipher_list(tuned, pki):
    with pytest.raises(ssl.SSLError):
        handshake(tuned.ports["ciphers"], pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
    s = handshake(tuned.ports["ciphers"], pki, max_version=ssl.TLSVersion.TLSv1_2,
                  ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert mqtt_over(s)
    s.close()


def test_rsa_key_exchange(tuned, pki):
    """TLS 1.2's RSA key exchange: the broker's RSA key decrypts the premaster secret (through
    libcrypto, SystemRSAKey), as it signs every other handshake."""
    s = handshake(tuned.ports["rsakx"], pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers="AES128-GCM-SHA256")
    assert s.cipher()[0] == "AES128-GCM-SHA256"
    assert mqtt_over(s)
    s.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_supported_groups(tuned, pki, version):
    with pytest.raises(ssl.SSLError):
        handshake(tuned.ports["groups"], pki, max_version=version, curve="prime256v1")
    for curve in ("secp384r1", "X25519"):
        s = handshake(tuned.ports["groups"], pki, max_version=version, curve=curve)
        assert mqtt_over(s)
        s.close()


# -- start-up errors -----------------------------------------------------------------------

def start_failure(tmp_path, pki, cert=None, key=None, **opts):
    """--check-config and a start with a TLS listener using these files: both must fail."""
    port = free_port()
    lines = ["[[listeners]]", 'type = "tls"', f'bind = "127.0.0.1:{port}"',
             f'certfile = "{cert or pki.path("server.pem")}"', f'keyfile = "{key or pki.path("server.key")}"']
    lines += [f'{k} = "{v}"' for k, v in opts.items()]
    text = '[log]\nlevel = "info"\n[dashboard]\nenabled = false\n[persistence]\nmode = "none"\n' + "\n".join(lines) + "\n"
    cfg = tmp_path / f"bad-{uuid.uuid4().hex[:6]}.toml"
    cfg.write_text(text)
    check = subprocess.run([str(swiftlet_path()), "--config", str(cfg), "--check-config"], capture_output=True,
                           text=True, timeout=30, cwd=tmp_path)
    run = subprocess.run([str(swiftlet_path()), "--config", str(cfg)], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path)
    return check, run


@pytest.mark.parametrize("case,key", [
    ("missing cert", "listeners.certfile"),
    ("missing key", "listeners.keyfile"),
    ("garbage cert", "listeners.certfile"),
    ("directory as key", "listeners.keyfile"),
    ("mismatched key", "listeners.keyfile"),
    ("missing ca", "listeners.cacertfile"),
    ("garbage crl", "listeners.crlfile"),
    ("unknown group", "listeners.supported_groups"),
])
def test_startup_errors_name_the_key(tmp_path, pki, case, key):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a pem file\n")
    opts = {
        "missing cert": {"cert": str(tmp_path / "nope.pem")},
        "missing key": {"key": str(tmp_path / "nope.key")},
        "garbage cert": {"cert": str(junk)},
        "directory as key": {"key": str(tmp_path)},
        "mismatched key": {"key": pki.path("wrong.key")},
        "missing ca": {"cacertfile": str(tmp_path / "nope-ca.pem"), "verify": "required"},
        "garbage crl": {"cacertfile": pki.path("ca.pem"), "verify": "required", "crlfile": str(junk)},
        "unknown group": {"supported_groups": "x25519:x448"},
    }[case]
    check, run = start_failure(tmp_path, pki, **opts)
    assert check.returncode != 0 and key in check.stderr, check
    assert run.returncode != 0 and key in (run.stdout + run.stderr), run


# -- reload --------------------------------------------------------------------------------

def served_cn(port, pki):
    s = handshake(port, pki)
    try:
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]
    finally:
        s.close()


def test_reload_certs_under_connected_client(broker_factory, pki, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(pki.path("server.pem"), live / "cert.pem")
    shutil.copy(pki.path("server.key"), live / "key.pem")
    port = free_port()
    listener = ("[[listeners]]\n" f'type = "tls"\nbind = "127.0.0.1:{port}"\n'
                f'certfile = "{live / "cert.pem"}"\nkeyfile = "{live / "key.pem"}"\n\n')
    b = broker_with(broker_factory, pki, listener)
    assert served_cn(port, pki) == "localhost"

    # A client connected before the reload.
    c = paho(pki)
    ok, why = try_connect(c, port)
    assert ok, why
    try:
        shutil.copy(pki.path("server2.pem"), live / "cert.pem")
        shutil.copy(pki.path("server2.key"), live / "key.pem")
        out = ctl_ok(b.ctl, "listeners", "reload-certs")
        assert "reloaded" in out
        assert served_cn(port, pki) == "server-two"      # new handshakes: the new files
        t = f"reload/{uuid.uuid4().hex[:6]}"
        assert roundtrip(c, t) == b"hello " + t.encode()  # the old connection stays

        # A bad new file is refused; the listener keeps serving the last good certificate.
        (live / "cert.pem").write_text("garbage\n")
        r = run_ctl(b.ctl, "listeners", "reload-certs")
        assert r.rc == 2 and "listeners.certfile" in r.err, r
        assert served_cn(port, pki) == "server-two"
        # A key that does not fit the certificate: refused too.
        shutil.copy(pki.path("server.pem"), live / "cert.pem")
        shutil.copy(pki.path("wrong.key"), live / "key.pem")
        r = run_ctl(b.ctl, "listeners", "reload-certs")
        assert r.rc == 2 and "listeners.keyfile" in r.err, r
        assert served_cn(port, pki) == "server-two"

        # SIGHUP does the same as the command.
        shutil.copy(pki.path("server.key"), live / "key.pem")
        b.send_signal(signal.SIGHUP)
        wait_for(lambda: served_cn(port, pki) == "localhost", msg="SIGHUP reloaded the certificate")
        assert roundtrip(c, t + "/2") == b"hello " + (t + "/2").encode()
        b.assert_alive()
    finally:
        stop(c)


# -- %C and %d in an auth plugin ---------------------------------------------------------------

def test_certificate_names_reach_http_auth_as_placeholders(broker_factory, pki):
    """swiftlet-auth-http with `%C` and `%d` in its auth request: the client certificate's
    CN and DN arrive at the HTTP service, and with peer_cert_as_username the CN is `%u`."""
    from test_auth_http import AuthService, NAME, plugin_toml, sidecar_binary
    from sidecars import sidecar_config, wait_registered
    if not sidecar_binary().exists():
        pytest.skip(f"{sidecar_binary()} not built")
    service = AuthService().start()
    try:
        service.users["client-1"] = "cert-pw"
        d = short_dir()
        plugins = d / "plugins"
        plugins.mkdir()
        auth_req = ("[auth_http.auth_req]\nmethod = \"post\"\n"
                    f"url = \"{service.url('/mqtt/auth')}\"\n"
                    "params = \"clientid=%c,username=%u,password=%P,cn=%C,dn=%d\"\n")
        (plugins / f"{NAME}.toml").write_text(plugin_toml(service, auth=False, superuser=False, acl=False, extra=auth_req))
        port = free_port()
        b = broker_with(broker_factory, pki,
                        tls_listener("tls", port, pki, cacertfile=pki.path("ca.pem"), verify="required",
                                     peer_cert_as_username="cn"),
                        extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n')
        wait_registered(b, NAME)
        c = paho(pki, cert="client1")
        ok, why = try_connect(c, port, username="whoever", password="cert-pw")
        assert ok, why
        stop(c)
        _, params, _ = service.last("/mqtt/auth")
        assert params["cn"] == ["client-1"]
        assert params["dn"] == ["CN=client-1,O=Swiftlet Test"]
        assert params["username"] == ["client-1"]
        # Another certificate with a CN the service does not know: refused (CONNACK 4).
        c = paho(pki, cert="client2")
        ok, why = try_connect(c, port, username="client-1", password="cert-pw")
        assert not ok and "Bad user name or password" in str(why), why
        stop(c)
        assert service.last("/mqtt/auth")[1]["cn"] == ["client-2"]
    finally:
        service.stop()


def test_certificate_cn_reaches_redis_as_placeholder(broker_factory, pki):
    """swiftlet-auth-redis with authcmd keyed by `%C`: the password is looked up under the
    client certificate's CN, whatever username the client sends."""
    import hashlib
    import json as _json
    from redisserver import REDIS_SERVER, Redis
    from test_auth_redis import NAME as RNAME, plugin_toml as redis_toml, sidecar_binary as redis_binary
    from sidecars import sidecar_config, wait_registered
    if not REDIS_SERVER or not redis_binary().exists():
        pytest.skip("redis-server or swiftlet-auth-redis missing")
    r = Redis().start()
    try:
        r.cmd("HSET", "mqtt_cert:client-1", "password", hashlib.sha256(b"pw").hexdigest())
        d = short_dir()
        plugins = d / "plugins"
        plugins.mkdir()
        (plugins / f"{RNAME}.toml").write_text(redis_toml(r, authcmd=["HGET", "mqtt_cert:%C", "password"],
                                                           supercmd=None, aclcmd=None, subcmd=None))
        port = free_port()
        b = broker_with(broker_factory, pki,
                        tls_listener("tls", port, pki, cacertfile=pki.path("ca.pem"), verify="required"),
                        extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n')
        wait_registered(b, RNAME)
        c = paho(pki, cert="client1")
        ok, why = try_connect(c, port, username="not-the-cn", password="pw")
        assert ok, why
        stop(c)
        c = paho(pki, cert="client2")
        ok, why = try_connect(c, port, username="not-the-cn", password="pw")
        assert not ok, why
        stop(c)
    finally:
        r.stop()
