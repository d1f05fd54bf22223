"""Built-in auth end to end (docs/auth.md): a users TOML with PBKDF2-SHA512 hashes computed
here with hashlib and a published bcrypt vector, an emqttd-style ACL TOML, anonymous access
off. What a client sees: CONNACK codes, PUBACK/PUBREC 0x87 or a silent drop, SUBACK 0x80/0x87,
superusers bypassing the rules, %u/%c/`eq #`, acl_nomatch, wills on denied topics, and the
embedded default rules (no files) that still let a local client read $SYS."""

import base64
import hashlib
import os
import uuid

import pytest

import mqttraw as m
from brokers import toml_value
from clients import Client, wait_for

PBKDF2_ROUNDS = 10_000
# The classic bcrypt test vector (OpenBSD / John the Ripper): password "U*U", cost 5.
BCRYPT_VECTOR = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw", "legacy": "U*U",
             "+": "plus-pw", "#": "hash-pw", "a/b": "slash-pw"}

ACL = """
# exactly "#" may not be subscribed, whatever comes next
[[rules]]
permission = "deny"
access = "subscribe"
topics = ["eq #"]

# every user owns users/<name>/...
[[rules]]
permission = "allow"
topics = ["users/%u/#"]

# a device publishes only its own state; bob may watch them all
[[rules]]
permission = "allow"
access = "publish"
topics = ["devices/%c/state"]

[[rules]]
permission = "allow"
user = "bob"
access = "subscribe"
topics = ["devices/+/state"]

# readonly/: anyone may read, nobody (but a superuser) may write
[[rules]]
permission = "deny"
access = "publish"
topics = ["readonly/#"]

[[rules]]
permission = "allow"
topics = ["readonly/#", "public/#"]

[[rules]]
permission = "deny"
access = "publish"
topics = ["wills/denied/#"]

# issue 11: %u / %c are literal, whatever characters the name holds
[[rules]]
permission = "allow"
topics = ["client/%c", "nope/%u"]

[[rules]]
permission = "allow"
topics = ["wills/#"]
"""


def pbkdf2_sha512(password, rounds=PBKDF2_ROUNDS):
    """The broker's format: pbkdf2-sha512$<iterations>$<salt b64>$<hash b64> (PasswordHash.swift)."""
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds, 64)
    return f"pbkdf2-sha512${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def users_toml():
    hashes = {name: pbkdf2_sha512(pw) for name, pw in PASSWORDS.items() if name != "legacy"}
    hashes["legacy"] = BCRYPT_VECTOR
    out = []
    for name, h in hashes.items():
        out += [f"[users.{toml_value(name)}]", f"password = {toml_value(h)}", f"superuser = {toml_value(name == 'root')}", ""]
    return "\n".join(out)


def start(factory, directory, nomatch="deny"):
    users = directory / "users.toml"
    acl = directory / "acl.toml"
    users.write_text(users_toml())
    acl.write_text(ACL)
    extra = (f"[auth]\nusers_file = {toml_value(str(users))}\nacl_file = {toml_value(str(acl))}\n"
             f"acl_nomatch = {toml_value(nomatch)}\n")
    return factory(mqtt={"allow_anonymous": False}, extra=extra)


@pytest.fixture(scope="module")
def broker(module_broker_factory, tmp_path_factory):
    """acl_nomatch = deny (the default)."""
    return start(module_broker_factory, tmp_path_factory.mktemp("auth"))


@pytest.fixture
def nomatch_allow(broker_factory, tmp_path):
    return start(broker_factory, tmp_path, nomatch="allow")


def raw(b, version, user="alice", client_id=None, **kw):
    """A RawClient logged in as `user` (None: no credentials)."""
    creds = {} if user is None else {"username": user, "password": PASSWORDS[user].encode()}
    return m.connected(b, version=version, client_id=client_id, **creds, **kw)


def paho(b, version, user="alice", **kw):
    return Client(b, version=version, username=user, password=PASSWORDS.get(user), **kw)


def publish_to_self(r, topic, payload, pid):
    """QoS 1 publish on a connection subscribed to `topic`: returns (PUBACK, PUBLISH), whatever
    order the broker writes them in."""
    r.send(m.publish(topic, payload, qos=1, pid=pid, version=r.version))
    got = {}
    while len(got) < 2:
        p = r.recv()
        assert p is not None, "connection closed"
        got.setdefault(p.type, p)
    return got[m.PUBACK], got[m.PUBLISH]


def refused_v3(b, rc, **kw):
    """paho reports 3.1.1 return codes as 5.0 reason codes: check the wire bytes instead."""
    with m.RawClient(b, version=4) as r:
        ack = r.connect(f"refused-{uuid.uuid4().hex[:8]}", expect_rc=rc, **kw)
        assert r.wait_closed() == [], "the broker closes after a refusing CONNACK"
    return ack


# -- authentication -------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("user", ["alice", "legacy"], ids=["pbkdf2-sha512", "bcrypt"])
def test_good_password(broker, version, user):
    c = paho(broker, version, user)
    assert c.connack[1] == 0
    c.disconnect()
    with raw(broker, version, user) as r:
        assert r.ping().type == m.PINGRESP


def test_wrong_password(broker):
    refused_v3(broker, 4, username="alice", password=b"wrong")
    refused_v3(broker, 4, username="legacy", password=b"U*V")
    refused_v3(broker, 4, username="alice")                      # known user, no password
    refused_v3(broker, 4, username="mallory", password=b"x")     # unknown user
    Client(broker, version=5, username="alice", password="wrong", expect_rc=0x86)
    Client(broker, version=5, username="legacy", password="U*V", expect_rc=0x86)
    Client(broker, version=5, username="mallory", password="x", expect_rc=0x86)
    with m.RawClient(broker, version=5) as r:
        assert r.connect("v5-refused", expect_rc=0x86, username="bob", password=b"alice-pw").rc == 0x86
        r.wait_closed()


def test_no_credentials(broker):
    refused_v3(broker, 5)
    Client(broker, version=5, expect_rc=0x87)
    with m.RawClient(broker, version=5) as r:
        r.connect("v5-anon", expect_rc=0x87)
        r.wait_closed()


# -- authorization ----------------------------------------------------------------------

def test_superuser_bypasses_acl(broker, uniq):
    watcher = paho(broker, 5, "root")
    assert watcher.subscribe(f"other/{uniq}", qos=1) == [1], "no rule matches: only a superuser may"
    with raw(broker, 5, "root") as r:
        ack = r.subscribe([("#", 0), ("$SYS/#", 0), (f"readonly/{uniq}", 1)])
        assert ack.rcs == [0, 0, 1], ack
    with raw(broker, 4, "root") as r:
        assert r.subscribe([("#", 0), ("$SYS/#", 1)]).rcs == [0, 1]
    with raw(broker, 5, "root") as r:
        for i, topic in enumerate((f"other/{uniq}", f"readonly/{uniq}"), 1):
            puback = r.publish(topic, b"su", qos=1, pid=i)
            assert puback.rc in (0, m.RC_NO_MATCHING_SUBSCRIBERS), f"superuser publish to {topic}: {puback!r}"
    msg = watcher.get()
    assert (msg.topic, msg.payload) == (f"other/{uniq}", b"su")
    watcher.disconnect()


def test_publish_denied_v5(broker, uniq):
    watcher = paho(broker, 5, "bob")
    assert watcher.subscribe(f"readonly/{uniq}/#", qos=1) == [1]
    assert watcher.subscribe(f"public/{uniq}/#", qos=1) == [1]
    with raw(broker, 5, "alice") as r:
        assert r.publish(f"readonly/{uniq}/q1", b"no", qos=1, pid=1).rc == 0x87
        rec = r.publish(f"readonly/{uniq}/q2", b"no", qos=2, pid=2)
        assert (rec.type, rec.rc) == (m.PUBREC, 0x87)
        r.publish(f"readonly/{uniq}/q0", b"no", qos=0)
        # The same connection then publishes where it may: that message is the first delivered.
        assert r.publish(f"public/{uniq}/marker", b"yes", qos=1, pid=3).rc in (0, m.RC_NO_MATCHING_SUBSCRIBERS)
    msg = watcher.get()
    assert (msg.topic, msg.payload) == (f"public/{uniq}/marker", b"yes"), "a denied message was delivered"
    watcher.disconnect()


def test_publish_denied_v3_acknowledged_but_dropped(broker, uniq):
    watcher = paho(broker, 4, "bob")
    assert watcher.subscribe(f"readonly/{uniq}/#", qos=1) == [1]
    assert watcher.subscribe(f"public/{uniq}/#", qos=1) == [1]
    with raw(broker, 4, "alice") as r:
        ack = r.publish(f"readonly/{uniq}/q1", b"no", qos=1, pid=1)
        assert (ack.type, ack.pid) == (m.PUBACK, 1), "3.x: a denied QoS 1 message is still acknowledged"
        comp = r.publish(f"readonly/{uniq}/q2", b"no", qos=2, pid=2)
        assert (comp.type, comp.pid) == (m.PUBCOMP, 2), "3.x: the QoS 2 flow completes"
        r.publish(f"readonly/{uniq}/q0", b"no", qos=0)
        assert r.ping().type == m.PINGRESP, "the connection stays up"
        r.publish(f"public/{uniq}/marker", b"yes", qos=1, pid=3)
    msg = watcher.get()
    assert (msg.topic, msg.payload) == (f"public/{uniq}/marker", b"yes"), "a denied message was delivered"
    watcher.disconnect()


@pytest.mark.parametrize("version,refused", [(4, 0x80), (5, 0x87)])
def test_subscribe_denied(broker, uniq, version, refused):
    with raw(broker, version, "alice") as r:
        ack = r.subscribe([("#", 0), (f"public/{uniq}/#", 1), (f"other/{uniq}", 0), (f"readonly/{uniq}", 2)])
        assert ack.rcs == [refused, 1, refused, 2], ack
        # Only the granted filters deliver.
        with raw(broker, version, "root") as pub:
            pub.publish(f"other/{uniq}", b"hidden", qos=1, pid=1)
            pub.publish(f"public/{uniq}/a", b"seen", qos=1, pid=2)
        p = r.expect(m.PUBLISH)
        assert (p.topic, p.payload) == (f"public/{uniq}/a", b"seen"), p


def test_username_substitution(broker, uniq):
    with raw(broker, 5, "alice") as r:
        assert r.subscribe(f"users/alice/{uniq}/#", qos=1).rcs == [1]
        assert r.subscribe(f"users/bob/{uniq}/#", qos=1).rcs == [0x87]
        assert r.publish(f"users/bob/{uniq}/x", b"no", qos=1, pid=1).rc == 0x87
        ack, p = publish_to_self(r, f"users/alice/{uniq}/x", b"mine", pid=2)
        assert ack.rc == 0
        assert (p.topic, p.payload) == (f"users/alice/{uniq}/x", b"mine")
    with raw(broker, 4, "bob") as r:
        assert r.subscribe(f"users/alice/{uniq}/#", qos=1).rcs == [0x80]
        assert r.subscribe(f"users/bob/{uniq}/#", qos=1).rcs == [1]


def test_clientid_substitution(broker, uniq):
    me = f"dev-{uniq}"
    watcher = paho(broker, 5, "bob")
    assert watcher.subscribe("devices/+/state", qos=1) == [1]
    with raw(broker, 5, "alice", client_id=me) as r:
        assert r.publish(f"devices/dev-other-{uniq}/state", b"spoof", qos=1, pid=1).rc == 0x87
        assert r.publish(f"devices/{me}/state", b"on", qos=1, pid=2).rc in (0, m.RC_NO_MATCHING_SUBSCRIBERS)
        assert r.subscribe("devices/+/state", qos=1).rcs == [0x87], "only bob may watch every device"
    msg = watcher.get()
    assert (msg.topic, msg.payload) == (f"devices/{me}/state", b"on")
    watcher.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_wildcards_in_client_id_never_widen_a_rule(broker, uniq, version):
    """Issue 11: with `allow pubsub client/%c`, client id `#` may not subscribe to client/#
    (it would read every client's messages), nor `+` to client/+; it is still served."""
    refused = 0x80 if version == 4 else 0x87
    watcher_id = f"w-{uniq}"
    with raw(broker, 5, "alice", client_id=watcher_id) as other:
        for cid in ("#", "+"):
            with raw(broker, version, "alice", client_id=cid) as r:
                ack = r.subscribe([(f"client/{cid}", 1), (f"client/{watcher_id}", 1), ("client/x", 0)])
                assert ack.rcs == [refused, refused, refused], ack
                if version == 5:
                    assert r.publish(f"client/{watcher_id}", b"spoof", qos=1, pid=1).rc == 0x87
                assert r.ping().type == m.PINGRESP
        # The rule still gives each client its own topic.
        ack, p = publish_to_self_after_subscribe(other, f"client/{watcher_id}", b"own")
        assert (p.topic, p.payload) == (f"client/{watcher_id}", b"own")


def publish_to_self_after_subscribe(r, topic, payload):
    assert r.subscribe(topic, qos=1).rcs == [1]
    ack, p = publish_to_self(r, topic, payload, pid=9)
    assert ack.rc in (0, m.RC_NO_MATCHING_SUBSCRIBERS)
    return ack, p


@pytest.mark.parametrize("user", ["+", "#", "a/b"])
def test_wildcards_in_username_never_widen_a_rule(broker, uniq, user):
    """`nope/%u` for user `+` matches only the literal topic nope/+ (which no PUBLISH can
    carry), never nope/x; `a/b` gets exactly nope/a/b. Such users log in."""
    with raw(broker, 5, user) as r:
        ack = r.subscribe([("nope/+", 1), ("nope/#", 1), (f"nope/{uniq}", 1)])
        assert ack.rcs == [0x87, 0x87, 0x87], ack
        assert r.publish(f"nope/{uniq}", b"x", qos=1, pid=1).rc == 0x87
        if user == "a/b":
            ack, p = publish_to_self_after_subscribe(r, "nope/a/b", b"mine")
            assert p.payload == b"mine"
            assert r.publish("nope/a", b"x", qos=1, pid=2).rc == 0x87


def test_acl_nomatch_deny(broker, uniq):
    with raw(broker, 5, "alice") as r:
        assert r.subscribe(f"other/{uniq}").rcs == [0x87]
        assert r.publish(f"other/{uniq}", b"x", qos=1, pid=1).rc == 0x87


def test_acl_nomatch_allow_and_eq_hash(nomatch_allow, uniq):
    b = nomatch_allow
    with raw(b, 5, "alice") as r:
        # No rule matches: allowed; `eq #` still refuses exactly "#", and only that filter.
        ack = r.subscribe([(f"other/{uniq}", 1), ("#", 0), ("+/x", 0), (f"other/{uniq}/#", 0)])
        assert ack.rcs == [1, 0x87, 0, 0], ack
        ack, p = publish_to_self(r, f"other/{uniq}", b"free", pid=5)
        assert ack.rc == 0
        assert (p.topic, p.payload) == (f"other/{uniq}", b"free")
        # Explicit rules still decide before acl_nomatch.
        assert r.publish(f"readonly/{uniq}", b"no", qos=1, pid=6).rc == 0x87
    with raw(b, 4, "bob") as r:
        assert r.subscribe([("#", 0), (f"other/{uniq}", 0)]).rcs == [0x80, 0]


@pytest.mark.parametrize("version", [4, 5])
def test_will_on_denied_topic_is_discarded(broker, uniq, version):
    watcher = paho(broker, 5, "bob")
    assert watcher.subscribe(f"wills/+/{uniq}", qos=1) == [1]
    logged = broker.log_text().count("will topic not authorized")
    denied = raw(broker, version, "alice", will_topic=f"wills/denied/{uniq}", will_payload=b"denied", will_qos=1)
    wait_for(lambda: broker.log_text().count("will topic not authorized") > logged, msg="the discarded will in the log")
    allowed = raw(broker, version, "alice", will_topic=f"wills/ok/{uniq}", will_payload=b"ok", will_qos=1)
    denied.close()     # connections dropped without DISCONNECT: wills are due
    allowed.close()
    msg = watcher.get()
    assert (msg.topic, msg.payload) == (f"wills/ok/{uniq}", b"ok")
    watcher.expect_none(0.5)
    watcher.disconnect()


def test_superuser_will_is_not_checked(broker, uniq):
    watcher = paho(broker, 5, "bob")
    assert watcher.subscribe(f"wills/denied/{uniq}", qos=1) == [1]
    r = raw(broker, 4, "root", will_topic=f"wills/denied/{uniq}", will_payload=b"root", will_qos=1)
    r.close()
    msg = watcher.get()
    assert (msg.topic, msg.payload) == (f"wills/denied/{uniq}", b"root")
    watcher.disconnect()


# -- the embedded default ------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_embedded_default_lets_local_client_read_sys(broker_factory, version):
    b = broker_factory(sys={"interval": 1})  # no [auth] files, allow_anonymous on (the default)
    with m.connected(b, version=version) as r:
        ack = r.subscribe([("$SYS/#", 0), ("#", 0)])
        assert ack.rcs == [0, 0], f"127.0.0.1 may subscribe to $SYS/# and #: {ack!r}"
        p = r.expect(m.PUBLISH, timeout=10)
        assert p.topic.startswith("$SYS/brokers/"), p
