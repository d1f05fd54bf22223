"""swiftlet-auth-redis (emqttd_auth_redis as a sidecar) against a real redis-server started on a
free loopback port in a temporary directory (no system service), run by the broker as a managed
plugin: every command of the seed (authcmd with and without the salt, supercmd, aclcmd in each
member form, subcmd), requirepass, hostile usernames, Redis killed and restarted, the sidecar
killed with -9 under load, ctl invalidation."""

import hashlib
import json
import os
import socket
import time

import pytest

from brokers import swiftlet_path
from clients import Client, wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from mqttraw import RawClient
from redisserver import REDIS_SERVER, Redis, encode, read_reply
from sidecars import (kill9_under_load, raw_login, registrations, shipped_plugin_broker, short_dir, sidecar_config,
                      wait_registered)

NAME = "auth_redis"


def sidecar_binary():
    return swiftlet_path().parent / "swiftlet-auth-redis"


pytestmark = [
    pytest.mark.skipif(not sidecar_binary().exists(),
                       reason=f"{sidecar_binary()} not built (swift build --product swiftlet-auth-redis)"),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed (apt-get install redis-server)"),
]

REFUSED = {5: 0x86, 4: 4, 3: 4}   # credentials given and refused
OK = (0, 0x10)                    # PUBACK: success, or success with no subscriber
DENIED_PUB = {5: 0x87}


@pytest.fixture(scope="session")
def redis():
    r = Redis().start()
    yield r
    r.stop()


@pytest.fixture
def own_redis():
    """A redis-server for one test (killed, restarted, or with requirepass)."""
    made = []

    def make(password=None):
        r = Redis(password).start()
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


def sha256(pw, salt=b"", suffix=False):
    pw = pw if isinstance(pw, bytes) else pw.encode()
    salt = salt if isinstance(salt, bytes) else salt.encode()
    return hashlib.sha256(pw + salt if suffix else salt + pw).hexdigest()


def add_user(r, name, password, superuser=None, salt=None, hash_=sha256, acl=(), subs=None, **kw):
    key = b"mqtt_user:" + (name if isinstance(name, bytes) else name.encode())
    r.cmd("DEL", key, b"mqtt_acl:" + key[10:], b"mqtt_subs:" + key[10:])
    stored = hash_(password, salt or b"", **kw) if salt is not None else hash_(password)
    r.cmd("HSET", key, "password", stored)
    if salt is not None:
        r.cmd("HSET", key, "salt", salt)
    if superuser is not None:
        r.cmd("HSET", key, "is_superuser", superuser)
    for member in acl:
        r.cmd("SADD", b"mqtt_acl:" + key[10:], member)
    for topic, qos in (subs or {}).items():
        r.cmd("HSET", b"mqtt_subs:" + key[10:], topic, str(qos))


# -- the broker with the sidecar -----------------------------------------------------------

SEED = {
    "supercmd": ["HGET", "mqtt_user:%u", "is_superuser"],
    "authcmd": ["HGET", "mqtt_user:%u", "password"],
    "password_hash": "sha256",
    "aclcmd": ["SMEMBERS", "mqtt_acl:%u"],
    "acl_nomatch": "deny",
    "subcmd": ["HGETALL", "mqtt_subs:%u"],
}


def plugin_toml(r, pool=None, **options):
    opts = {**SEED, **options}
    lines = [
        "[sidecar]",
        f"command = {json.dumps(str(sidecar_binary()))}",
        "enabled = true",
        "[sidecar.restart]",
        "initial_backoff = 0.1", "max_backoff = 0.5", "max_restarts = 50", "period = 60", "shutdown_grace = 2",
        "",
        "[auth_redis]",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in opts.items() if v is not None]
    p = {"pool_size": 4, "auto_reconnect": 0.5, "host": "127.0.0.1", "port": r.port, "database": 0,
         "keep_alive": 0.5, **(pool or {})}
    lines.append("[auth_redis.redis_pool]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in p.items() if v is not None]
    return "\n".join(lines) + "\n"


def start_broker(broker_factory, r, mqtt=None, pool=None, **options):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    (plugins / f"{NAME}.toml").write_text(plugin_toml(r, pool, **options))
    b = broker_factory(extra=sidecar_config(d / "sc.sock", mqtt=mqtt) + f'plugins_dir = "{plugins}"\n'
                       + ctl_config(d / "ctl.sock"))
    b.ctl = d / "ctl.sock"
    wait_registered(b, NAME)
    return b


raw = raw_login


def refusal_logged(b, topic):
    """The broker's info line for a static subscription the ACL refused."""
    return any("subscription refused" in l and "not authorized" in l and topic in l for l in b.log_text().splitlines())


def uname(prefix="u"):
    return f"{prefix}-{os.urandom(4).hex()}"


# -- shipped plugin file ------------------------------------------------------------------------

def test_shipped_plugin_file_loads_on_demand(broker_factory, redis):
    b, ctl = shipped_plugin_broker(broker_factory, NAME, {
        'command = ".build/release/swiftlet-auth-redis"': f'command = "{sidecar_binary()}"',
        "port = 6379": f"port = {redis.port}"})
    rows = ctl_ok(ctl, "plugins", "list", json_out=True)
    assert [r for r in rows if r["name"] == NAME][0]["state"] == "stopped"
    user = uname()
    add_user(redis, user, "pw", acl=[f"pubsub {user}/#"])
    raw(b, 5, user, "pw", expect_rc=0x86)[0].close()
    ctl_ok(ctl, "plugins", "load", NAME)
    wait_registered(b, NAME)
    c, _ = raw(b, 5, user, "pw")
    assert c.publish(f"{user}/x", b"x", qos=1, pid=1).rc in OK
    assert c.publish("other/x", b"x", qos=1, pid=2).rc == 0x87
    c.close()


# -- authcmd, password_hash, supercmd ---------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 4, 5])
def test_authcmd_allow_wrong_password_unknown_user(broker_factory, redis, version):
    b = start_broker(broker_factory, redis)
    user = uname()
    add_user(redis, user, "secret", acl=[f"pubsub {user}/#"])
    c, _ = raw(b, version, user, "secret")
    assert c.publish(f"{user}/t", b"x", qos=1, pid=1).rc in OK
    c.close()
    raw(b, version, user, "wrong", expect_rc=REFUSED[version])[0].close()
    raw(b, version, uname("nobody"), "secret", expect_rc=REFUSED[version])[0].close()   # nil: ignore, then refused
    raw(b, version, user, None, expect_rc=REFUSED[version])[0].close()                # no password: deny


@pytest.mark.parametrize("form", ["salt-prefix", "salt-suffix", "plain", "pbkdf2"])
def test_hmget_password_and_salt(broker_factory, redis, form):
    user = uname()
    if form == "salt-prefix":
        add_user(redis, user, "secret", salt="s4lt")
        ph = ["salt", "sha256"]
    elif form == "salt-suffix":
        add_user(redis, user, "secret", salt="s4lt", suffix=True)
        ph = ["sha256", "salt"]
    elif form == "plain":
        add_user(redis, user, "secret", salt="unused", hash_=lambda pw, salt=b"": pw)
        ph = "plain"
    else:
        add_user(redis, user, "secret", salt="NaCl",
                 hash_=lambda pw, salt: hashlib.pbkdf2_hmac("sha256", pw.encode(), salt.encode(), 1000, 20).hex())
        ph = ["pbkdf2", "sha256", 1000, 20]
    b = start_broker(broker_factory, redis, authcmd=["HMGET", "mqtt_user:%u", "password", "salt"], password_hash=ph)
    raw(b, 5, user, "secret")[0].close()
    raw(b, 5, user, "Secret", expect_rc=0x86)[0].close()
    raw(b, 5, uname("nobody"), "secret", expect_rc=0x86)[0].close()


def test_salted_hash_without_hmget_is_a_configuration_error(broker_factory, redis):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    (plugins / f"{NAME}.toml").write_text(plugin_toml(redis, password_hash=["salt", "sha256"]))
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n')
    wait_for(lambda: "needs the salt" in b.log_text(), msg="configuration error logged")
    assert registrations(b, NAME) == 0
    b.assert_alive()


def test_supercmd_makes_a_superuser(broker_factory, redis):
    b = start_broker(broker_factory, redis)
    admin, plain, zero = uname("admin"), uname("plain"), uname("zero")
    add_user(redis, admin, "pw", superuser="1")
    add_user(redis, plain, "pw")
    add_user(redis, zero, "pw", superuser="0")
    c, _ = raw(b, 5, admin, "pw")
    assert c.publish("anything/at/all", b"x", qos=1, pid=1).rc in OK   # no ACL member needed
    c.close()
    for u in (plain, zero):
        c, _ = raw(b, 5, u, "pw")
        assert c.publish("anything/at/all", b"x", qos=1, pid=1).rc == 0x87
        c.close()


# -- aclcmd ---------------------------------------------------------------------------------

def test_acl_member_forms(broker_factory, redis):
    b = start_broker(broker_factory, redis)
    user = uname()
    add_user(redis, user, "pw", acl=["publish out/%u", "subscribe in/%c/+", "pubsub both/#", "bogus line", "publish"])
    c, _ = raw(b, 5, user, "pw", client_id=f"cid-{user}")
    assert c.publish(f"out/{user}", b"x", qos=1, pid=1).rc in OK
    assert c.publish("out/someone-else", b"x", qos=1, pid=2).rc == 0x87
    assert c.subscribe(f"out/{user}", pid=3, qos=1).rcs == [0x87]          # publish only
    assert c.subscribe(f"in/cid-{user}/+", pid=4, qos=1).rcs == [1]
    assert c.subscribe("in/other/+", pid=5, qos=1).rcs == [0x87]
    assert c.publish(f"in/cid-{user}/x", b"x", qos=1, pid=6).rc == 0x87    # subscribe only
    assert c.subscribe("both/a/b", pid=7, qos=1).rcs == [1]
    assert c.publish("both/a/b", b"x", qos=1, pid=8).rc in OK
    assert c.publish("nowhere", b"x", qos=1, pid=9).rc == 0x87             # acl_nomatch = deny
    c.close()


@pytest.mark.parametrize("name", ["+", "#", "a/b", "x+y"])
def test_names_with_wildcards_never_widen_a_rule(broker_factory, redis, name):
    """%u / %c are substituted literally (AuthBackends' EmqttdACL): a `+`, `#` or `/` in a
    username or client id matches only itself, never as a wildcard."""
    b = start_broker(broker_factory, redis)
    add_user(redis, name, "pw", acl=["pubsub users/%u", "pubsub byid/%c/#"])
    c, _ = raw(b, 5, name, "pw", client_id=name)
    if name == "a/b":
        assert c.publish("users/a/b", b"x", qos=1, pid=1).rc in OK
    assert c.publish("users/bob", b"x", qos=1, pid=2).rc == 0x87
    assert c.subscribe("users/+", pid=3).rcs == [0x87]
    assert c.subscribe("users/#", pid=4).rcs == [0x87]
    assert c.subscribe("byid/+/x", pid=5).rcs == [0x87]
    c.close()


def test_acl_nomatch_allow(broker_factory, redis):
    b = start_broker(broker_factory, redis, acl_nomatch="allow")
    user = uname()
    add_user(redis, user, "pw", acl=["subscribe only/this"])
    c, _ = raw(b, 5, user, "pw")
    assert c.publish("anything", b"x", qos=1, pid=1).rc in OK
    assert c.publish("only/this", b"x", qos=1, pid=2).rc in OK
    c.close()


# -- subcmd: subscriptions loaded at CONNECT ----------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_subcmd_subscribes_and_delivers_retained_and_live(broker_factory, redis, version):
    b = start_broker(broker_factory, redis)
    sub, pub = uname("sub"), uname("pub")
    add_user(redis, sub, "pw", acl=[f"subscribe {sub}/#", "subscribe refused-not/there"],
             subs={f"{sub}/retained": 1, f"{sub}/live/+": 2, "forbidden/topic": 1})
    add_user(redis, pub, "pw", acl=[f"publish {sub}/#", "publish forbidden/topic"])
    p = Client(b, version=5, username=pub, password="pw")
    p.publish(f"{sub}/retained", b"kept", qos=1, retain=True)
    s = Client(b, client_id=f"{sub}-c", version=version, username=sub, password="pw")
    try:
        m = s.get()   # never subscribed by the client itself
        assert (m.topic, m.payload, m.qos, m.retain) == (f"{sub}/retained", b"kept", 1, True)
        rows = ctl_ok(b.ctl, "subscriptions", "list", f"{sub}-c", json_out=True)
        assert {(r["filter"], r["qos"]) for r in rows} == {(f"{sub}/retained", 1), (f"{sub}/live/+", 2)}
        p.publish(f"{sub}/live/now", b"after connect", qos=2)
        m = s.get()
        assert (m.topic, m.payload, m.qos) == (f"{sub}/live/now", b"after connect", 2)
        # The refused one is logged and left out; the client stays connected.
        wait_for(lambda: refusal_logged(b, "forbidden/topic"), msg="refused static subscription logged")
        p.publish("forbidden/topic", b"not for sub", qos=1)
        s.expect_none(0.5)
        assert s.subscribe(f"{sub}/own", qos=1) == [1]
    finally:
        p.publish(f"{sub}/retained", b"", qos=1, retain=True)
        s.disconnect()
        p.disconnect()


def test_subcmd_bad_entries_are_left_out(broker_factory, redis):
    b = start_broker(broker_factory, redis)
    user = uname()
    add_user(redis, user, "pw", acl=[f"pubsub {user}/#"],
             subs={f"{user}/ok": 0, f"{user}/qos9": 9, f"{user}/word": "high", f"{user}/bad/#/filter": 1})
    c = Client(b, client_id=f"{user}-c", version=5, username=user, password="pw")
    try:
        wait_for(lambda: ctl_ok(b.ctl, "subscriptions", "list", f"{user}-c", json_out=True) != [], msg="subscribed")
        rows = ctl_ok(b.ctl, "subscriptions", "list", f"{user}-c", json_out=True)
        assert [(r["filter"], r["qos"]) for r in rows] == [(f"{user}/ok", 0)]
        assert "subcmd: entry left out" in b.log_text()
        assert "static subscription with an invalid topic filter left out" in b.log_text()
    finally:
        c.disconnect()


# -- hostile names and binary-safe arguments ------------------------------------------------------

HOSTILE = ["with space", "cr\rlf\nname", "*3\r\n$3\r\nSET\r\n$4\r\npwnd\r\n$1\r\n1\r\n", "star*", "ünïcødé-日本-😀",
           "%u%c", "mqtt_user:x", "z" * 1000, "\x7f\x01\x1b[31m"]


def test_hostile_usernames_are_one_argument(broker_factory, redis):
    b = start_broker(broker_factory, redis, mqtt={"strict_utf8": False})
    redis.cmd("DEL", "pwnd")
    for i, name in enumerate(HOSTILE):
        add_user(redis, name, f"pw {i}", acl=[f"pubsub t/{i}", "pubsub users/%u"])
        c, _ = raw(b, 5, name, f"pw {i}", client_id=f"hostile-{i}")
        assert c.publish(f"t/{i}", b"x", qos=1, pid=1).rc in OK, name
        assert c.publish("t/other", b"x", qos=1, pid=2).rc == 0x87, name
        c.close()
        raw(b, 5, name, f"pw {i}!", client_id=f"hostile-{i}", expect_rc=0x86)[0].close()
    assert redis.cmd("EXISTS", "pwnd") == 0   # the CR/LF name never became a command


def test_binary_password_bytes(broker_factory, redis):
    b = start_broker(broker_factory, redis)
    user = uname()
    pw = bytes(range(256))
    add_user(redis, user, pw)
    raw(b, 5, user, pw)[0].close()
    raw(b, 5, user, pw[:-1], expect_rc=0x86)[0].close()


# -- requirepass, database, Unix socket ----------------------------------------------------------

def test_requirepass_right(broker_factory, own_redis):
    r = own_redis(password="s3cret pass")
    user = uname()
    add_user(r, user, "pw", acl=[f"pubsub {user}"])
    b = start_broker(broker_factory, r, pool={"password": "s3cret pass"})
    c, _ = raw(b, 5, user, "pw")
    assert c.publish(user, b"x", qos=1, pid=1).rc in OK
    c.close()


def test_requirepass_wrong_logs_once_answers_error_and_does_not_restart(broker_factory, own_redis):
    r = own_redis(password="right")
    user = uname()
    add_user(r, user, "pw")
    b = start_broker(broker_factory, r, pool={"password": "wrong"})
    # The fallback (deny) answers while Redis refuses the password.
    for i in range(3):
        raw(b, 5, user, "pw", client_id=f"wrongpass-{i}", expect_rc=0x86)[0].close()
    wait_for(lambda: "refused AUTH" in b.log_text(), msg="AUTH refusal logged")
    time.sleep(1.5)   # several reconnect attempts (auto_reconnect 0.5 s)
    text = b.log_text()
    assert sum(1 for l in text.splitlines() if "refused AUTH" in l and "unreachable" in l) == 1, text[-3000:]
    assert "sidecar exited unexpectedly" not in text
    assert registrations(b, NAME) == 1
    b.assert_alive()


def test_database_and_unix_socket(broker_factory, redis):
    user = uname()
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        f = s.makefile("rb")
        s.sendall(encode(["SELECT", "3"]))
        read_reply(f)
        s.sendall(encode(["HSET", f"mqtt_user:{user}", "password", sha256("pw")]))
        read_reply(f)
    b = start_broker(broker_factory, redis, pool={"host": None, "port": None, "socket": redis.socket, "database": 3})
    raw(b, 5, user, "pw")[0].close()
    out = ctl_ok(b.ctl, "auth_redis", "status")
    assert "reachable" in out and "db 3" in out


# -- Redis killed and restarted --------------------------------------------------------------

def test_redis_killed_and_restarted(broker_factory, own_redis):
    r = own_redis()
    user = uname()
    add_user(r, user, "pw", acl=[f"pubsub {user}"])
    b = start_broker(broker_factory, r)
    c, _ = raw(b, 5, user, "pw", client_id="before")
    assert c.publish(user, b"x", qos=1, pid=1).rc in OK
    r.kill()
    # New questions (not cached) get the fallback: refused, quickly, the sidecar stays.
    raw(b, 5, user, "pw", client_id="during-1", expect_rc=0x86)[0].close()
    raw(b, 5, user, "pw", client_id="during-2", expect_rc=0x86)[0].close()
    # The connected client keeps its cached ACL answer.
    assert c.publish(user, b"x", qos=1, pid=2).rc in OK
    r.start()
    add_user(r, user, "pw", acl=[f"pubsub {user}"])   # nothing was saved
    n = [0]

    def connects():
        n[0] += 1
        cl = RawClient(b, version=5)
        ack = cl.connect(f"after-{n[0]}", username=user, password=b"pw", expect_rc=None)
        cl.close()
        return ack.rc == 0
    wait_for(connects, timeout=20, interval=0.2, msg="served again after Redis came back")
    assert "database reachable" in b.log_text()
    assert registrations(b, NAME) == 1
    c.close()


# -- the sidecar killed under load -----------------------------------------------------------

def test_kill9_under_200_concurrent_connects_is_restarted_and_serves(broker_factory, redis):
    b = start_broker(broker_factory, redis)
    user = uname()
    add_user(redis, user, "pw")
    kill9_under_load(b, NAME, user, "pw")
    raw(b, 5, user, "pw")[0].close()


# -- ctl -------------------------------------------------------------------------------------

def test_ctl_invalidate_user(broker_factory, redis):
    b = start_broker(broker_factory, redis)
    user = uname()
    add_user(redis, user, "pw")
    raw(b, 5, user, "pw", client_id="inv")[0].close()
    redis.cmd("HSET", f"mqtt_user:{user}", "password", sha256("changed"))
    raw(b, 5, user, "pw", client_id="inv")[0].close()          # the broker's cache still answers
    out = ctl_ok(b.ctl, "auth_redis", "invalidate", "user", user)
    assert "invalidated" in out

    def refused():
        c, ack = raw(b, 5, user, "pw", client_id="inv", expect_rc=None)
        c.close()
        return ack.rc == 0x86
    wait_for(refused, msg="cached answer dropped")
    raw(b, 5, user, "changed", client_id="inv")[0].close()
    assert run_ctl(b.ctl, "auth_redis", "invalidate", "bogus").rc != 0
    assert "invalidated" in ctl_ok(b.ctl, "auth_redis", "invalidate", "all")
