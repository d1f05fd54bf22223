"""swiftlet-auth-mongo (emqttd_auth_mongo on libmongoc, as a sidecar) against a real MongoDB
wire-protocol server with SCRAM authentication: SecantusDB (mongoserver.py), started by the
test session on a free loopback port in a temporary folder, run by the broker as a managed
plugin. Every query of the seed (authquery with each hash form and the salt field, superquery,
aclquery's publish / subscribe / pubsub lists over several documents), operator-injection
usernames, documents with fields of the wrong type, wrong database credentials, the server
stopped and started and hanging mid-test, the sidecar killed with -9 under load, ctl."""

import hashlib
import json
import os
import signal
import time

import pytest

from brokers import swiftlet_path
from clients import wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from hashforms import HASH_FORMS, VARIANT_PASSWORD, digest
from mqttraw import RawClient
from sidecars import (ConnectLoad, managed_pid, raw_login, registrations, shipped_plugin_broker, short_dir, sidecar_config,
                      wait_registered)

NAME = "auth_mongo"


def sidecar_binary():
    return swiftlet_path().parent / "swiftlet-auth-mongo"


pytestmark = pytest.mark.skipif(not sidecar_binary().exists(),
                                reason=f"{sidecar_binary()} not built (swift build --product swiftlet-auth-mongo)")

REFUSED = {5: 0x86, 4: 4, 3: 4}   # credentials given and refused
OK = (0, 0x10)                    # PUBACK: success, or success with no subscriber


@pytest.fixture(scope="session")
def mongo():
    """The session's SecantusDB server, with users root and mqtt, running with --auth."""
    from mongoserver import Mongo, available
    why = available()
    if why:
        pytest.skip(why)
    m = Mongo().create()
    yield m
    m.destroy()


@pytest.fixture
def own_mongo():
    """A server for one test (stopped, restarted, paused)."""
    from mongoserver import Mongo, available
    why = available()
    if why:
        pytest.skip(why)
    made = []

    def make(**kw):
        m = Mongo(**kw).create()
        made.append(m)
        return m
    yield make
    for m in made:
        m.destroy()


# -- stored passwords -------------------------------------------------------------------------

VARIANTS = HASH_FORMS


def sha256(pw):
    return hashlib.sha256(pw.encode() if isinstance(pw, str) else pw).hexdigest()


def uname(prefix="u"):
    return f"{prefix}-{os.urandom(4).hex()}"


def add_user(m, name, password="pw", superuser=None, stored=None, acl=None, **extra):
    """A user document as the seed shows it ({username, password, is_superuser}), and its
    ACL documents (a list of dicts: publish / subscribe / pubsub / clientid...)."""
    m.db.mqtt_user.delete_many({"username": name})
    m.db.mqtt_acl.delete_many({"username": name})
    doc = {"username": name, "password": stored if stored is not None else sha256(password), **extra}
    if superuser is not None:
        doc["is_superuser"] = superuser
    m.db.mqtt_user.insert_one(doc)
    for a in acl or []:
        m.db.mqtt_acl.insert_one({"username": name, **a})


# -- the broker with the sidecar -------------------------------------------------------------

SEED = {
    "superquery": {"collection": "mqtt_user", "super_field": "is_superuser", "selector": {"username": "%u"}},
    "authquery": {"collection": "mqtt_user", "password_field": "password", "password_hash": "sha256",
                  "selector": {"username": "%u"}},
    "aclquery": {"collection": "mqtt_acl", "selector": {"username": "%u"}},
}


def toml_inline(v):
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(toml_inline(x) for x in v) + "]"
    return json.dumps(v)


def plugin_toml(m, pool=None, queries=None, **options):
    from mongoserver import DATABASE, DB_PASSWORD, DB_USER
    lines = [
        "[sidecar]",
        f"command = {json.dumps(str(sidecar_binary()))}",
        "enabled = true",
        "[sidecar.restart]",
        "initial_backoff = 0.1", "max_backoff = 0.5", "max_restarts = 50", "period = 60", "shutdown_grace = 2",
        "",
        "[auth_mongo]",
    ]
    opts = {"acl_nomatch": "deny", **options}
    lines += [f"{k} = {toml_inline(v)}" for k, v in opts.items() if v is not None]
    for name, q in {**SEED, **(queries or {})}.items():
        if q is None:
            continue
        lines.append(f"[auth_mongo.{name}]")
        lines += [f"{k} = {toml_inline(v)}" for k, v in q.items()]
    p = {"pool_size": 4, "auto_reconnect": 0.5, "host": "127.0.0.1", "port": m.port, "database": DATABASE,
         "login": DB_USER, "password": DB_PASSWORD, "keep_alive": 0.5, **(pool or {})}
    lines.append("[auth_mongo.mongo_pool]")
    lines += [f"{k} = {toml_inline(v)}" for k, v in p.items() if v is not None]
    return "\n".join(lines) + "\n"


def start_broker(broker_factory, m, mqtt=None, pool=None, queries=None, wait=True, extra="", **options):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    (plugins / f"{NAME}.toml").write_text(plugin_toml(m, pool, queries, **options))
    b = broker_factory(extra=sidecar_config(d / "sc.sock", mqtt=mqtt) + f'plugins_dir = "{plugins}"\n'
                       + ctl_config(d / "ctl.sock") + extra)
    b.ctl = d / "ctl.sock"
    if wait:
        wait_registered(b, NAME)
    return b


raw = raw_login


def connects(b, user, password, version=5):
    """True when a CONNECT with user/password is accepted (a fresh client id: never cached)."""
    c = RawClient(b, version=version)
    ack = c.connect(f"probe-{os.urandom(4).hex()}", username=user, password=password.encode(), expect_rc=None)
    c.close()
    return ack.rc == 0


# -- the shipped plugin file -----------------------------------------------------------------

def test_shipped_plugin_file_loads_on_demand(broker_factory, mongo):
    from mongoserver import DB_PASSWORD, DB_USER
    b, ctl = shipped_plugin_broker(broker_factory, NAME, {
        'command = ".build/release/swiftlet-auth-mongo"': f'command = "{sidecar_binary()}"',
        "port = 27017": f"port = {mongo.port}",
        'login = ""': f"login = {json.dumps(DB_USER)}",
        'password = ""': f"password = {json.dumps(DB_PASSWORD)}"})
    rows = ctl_ok(ctl, "plugins", "list", json_out=True)
    assert [r for r in rows if r["name"] == NAME][0]["state"] == "stopped"
    user = uname()
    add_user(mongo, user, "pw", acl=[{"pubsub": [f"{user}/#"]}])
    raw(b, 5, user, "pw", expect_rc=0x86)[0].close()
    ctl_ok(ctl, "plugins", "load", NAME)
    wait_registered(b, NAME)
    c, _ = raw(b, 5, user, "pw")
    assert c.publish(f"{user}/x", b"x", qos=1, pid=1).rc in OK
    assert c.publish("other/x", b"x", qos=1, pid=2).rc == 0x87
    c.close()


# -- authquery -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 4, 5])
def test_allow_wrong_password_unknown_user_no_password(broker_factory, mongo, version):
    b = start_broker(broker_factory, mongo)
    user = uname()
    add_user(mongo, user, "secret", acl=[{"pubsub": [f"{user}/#"]}])
    c, _ = raw(b, version, user, "secret")
    assert c.publish(f"{user}/t", b"x", qos=1, pid=1).rc in OK
    c.close()
    raw(b, version, user, "wrong", expect_rc=REFUSED[version])[0].close()
    raw(b, version, uname("nobody"), "secret", expect_rc=REFUSED[version])[0].close()  # no document: ignore, refused
    raw(b, version, user, None, expect_rc=REFUSED[version])[0].close()                # no password: deny


def test_unknown_user_is_ignore_and_the_next_provider_decides(broker_factory, mongo, tmp_path):
    """No document: "ignore", so the built-in users (asked after the plugin) decide."""
    import base64
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha512", b"bpw", salt, 1000, 64)
    users = tmp_path / "users.toml"
    users.write_text(f'[users.builtin-only]\npassword = "pbkdf2-sha512$1000${base64.b64encode(salt).decode()}'
                     f'${base64.b64encode(dk).decode()}"\n')
    b = start_broker(broker_factory, mongo, extra=f"[auth]\nusers_file = {json.dumps(str(users))}\n")
    assert connects(b, "builtin-only", "bpw")
    assert not connects(b, "builtin-only", "nope")
    # A user the plugin knows is decided by the plugin: a wrong password is not passed on.
    add_user(mongo, "builtin-only", "mongo-pw")
    assert connects(b, "builtin-only", "mongo-pw")
    mongo.db.mqtt_user.delete_many({"username": "builtin-only"})


@pytest.mark.parametrize("tag,form,make", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_each_password_hash_form(broker_factory, mongo, tag, form, make):
    user = uname(tag)
    salt = "s4lt" if "-" in tag or tag == "pbkdf2" else None
    add_user(mongo, user, stored=make(VARIANT_PASSWORD, salt or ""), **({"salt": salt} if salt else {}))
    q = {**SEED["authquery"], "password_hash": form}
    b = start_broker(broker_factory, mongo, queries={"authquery": q})
    raw(b, 5, user, VARIANT_PASSWORD)[0].close()
    raw(b, 5, user, VARIANT_PASSWORD + "x", expect_rc=0x86)[0].close()


def test_salt_field_changes_the_hash(broker_factory, mongo):
    """The document's salt is what is hashed: the same stored value with another salt fails."""
    good, other = uname("salted"), uname("resalted")
    add_user(mongo, good, stored=digest("sha256", b"NaCl" + b"pw"), salt="NaCl")
    add_user(mongo, other, stored=digest("sha256", b"NaCl" + b"pw"), salt="KCl")
    b = start_broker(broker_factory, mongo, queries={"authquery": {**SEED["authquery"], "password_hash": ["salt", "sha256"]}})
    assert connects(b, good, "pw")
    assert not connects(b, other, "pw")


def test_superuser(broker_factory, mongo):
    b = start_broker(broker_factory, mongo)
    admin, one, plain, no, text = uname("admin"), uname("one"), uname("plain"), uname("no"), uname("text")
    add_user(mongo, admin, superuser=True)
    add_user(mongo, one, superuser=1)
    add_user(mongo, plain)
    add_user(mongo, no, superuser=False)
    add_user(mongo, text, superuser="true")   # a string: logged, not a superuser
    for u in (admin, one):
        c, _ = raw(b, 5, u, "pw")
        assert c.publish("anything/at/all", b"x", qos=1, pid=1).rc in OK, u   # no ACL document needed
        c.close()
    for u in (plain, no, text):
        c, _ = raw(b, 5, u, "pw")
        assert c.publish("anything/at/all", b"x", qos=1, pid=1).rc == 0x87, u
        c.close()
    wait_for(lambda: "is_superuser is string, not a boolean" in b.log_text(), msg="wrong superuser type logged")


def test_superquery_on_another_collection(broker_factory, mongo):
    """superquery with its own collection and selector: a second find on the same client."""
    user = uname("sep")
    add_user(mongo, user)
    mongo.db.mqtt_admins.delete_many({})
    mongo.db.mqtt_admins.insert_one({"name": user, "admin": True})
    b = start_broker(broker_factory, mongo, queries={
        "superquery": {"collection": "mqtt_admins", "super_field": "admin", "selector": {"name": "%u"}}})
    c, _ = raw(b, 5, user, "pw")
    assert c.publish("any/topic", b"x", qos=1, pid=1).rc in OK
    c.close()


# -- aclquery --------------------------------------------------------------------------------

def test_each_acl_list(broker_factory, mongo):
    b = start_broker(broker_factory, mongo)
    user = uname()
    add_user(mongo, user, acl=[{"publish": ["out/%u"], "subscribe": ["in/%c/+"], "pubsub": ["both/#"]}])
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


def test_several_acl_documents_all_apply_and_clientid_is_no_filter(broker_factory, mongo):
    """The seed's ACL documents: every one the selector matches applies; their clientid is
    data, not a condition (the selector decides)."""
    b = start_broker(broker_factory, mongo)
    user = uname()
    add_user(mongo, user, acl=[
        {"clientid": "some-other-client", "publish": ["t/1", "t/2"], "subscribe": ["user/%u", "client/%c"]},
        {"pubsub": ["shared/#"]},
        {"publish": None, "subscribe": []},          # null and empty lists: no rules, no error
    ])
    add_user(mongo, "someone-else", acl=[{"pubsub": ["#"]}])
    c, _ = raw(b, 5, user, "pw", client_id=f"c-{user}")
    assert c.publish("t/2", b"x", qos=1, pid=1).rc in OK
    assert c.subscribe(f"user/{user}", pid=2, qos=1).rcs == [1]
    assert c.subscribe(f"client/c-{user}", pid=3, qos=1).rcs == [1]
    assert c.publish("shared/a", b"x", qos=1, pid=4).rc in OK
    assert c.publish("t/3", b"x", qos=1, pid=5).rc == 0x87
    c.close()


def test_selector_with_several_fields_and_placeholders(broker_factory, mongo):
    """selector = { username = "%u", clientid = "%c" }: documents for this client only;
    `%a` for the address; constants (booleans) too."""
    user = uname()
    add_user(mongo, user, acl=[{"clientid": "dev-1", "pubsub": ["dev1/#"]}, {"clientid": "dev-2", "pubsub": ["dev2/#"]},
                               {"ip": "127.0.0.1", "pubsub": ["local/#"]}])
    mongo.db.mqtt_user.update_one({"username": user}, {"$set": {"enabled": True}})
    disabled = uname("off")
    add_user(mongo, disabled, enabled=False)
    b = start_broker(broker_factory, mongo, queries={
        "authquery": {**SEED["authquery"], "selector": {"username": "%u", "enabled": True}},
        "aclquery": {"collection": "mqtt_acl", "selector": {"username": "%u", "clientid": "%c"}}})
    c, _ = raw(b, 5, user, "pw", client_id="dev-1")
    assert c.publish("dev1/x", b"x", qos=1, pid=1).rc in OK
    assert c.publish("dev2/x", b"x", qos=1, pid=2).rc == 0x87
    c.close()
    assert not connects(b, disabled, "pw")   # no document with enabled = true: ignore, refused
    b2 = start_broker(broker_factory, mongo, queries={
        "aclquery": {"collection": "mqtt_acl", "selector": {"username": "%u", "ip": "%a"}}})
    c, _ = raw(b2, 5, user, "pw", client_id="dev-2")
    assert c.publish("local/x", b"x", qos=1, pid=1).rc in OK
    assert c.publish("dev2/x", b"x", qos=1, pid=2).rc == 0x87
    c.close()


@pytest.mark.parametrize("name", ["+", "#", "a/b"])
def test_names_with_wildcards_never_widen_a_rule(broker_factory, mongo, name):
    b = start_broker(broker_factory, mongo)
    add_user(mongo, name, acl=[{"pubsub": ["users/%u", "byid/%c/#"]}])
    c, _ = raw(b, 5, name, "pw", client_id=name)
    if name == "a/b":
        assert c.publish("users/a/b", b"x", qos=1, pid=1).rc in OK
    assert c.publish("users/bob", b"x", qos=1, pid=2).rc == 0x87
    assert c.subscribe("users/+", pid=3).rcs == [0x87]
    assert c.subscribe("users/#", pid=4).rcs == [0x87]
    assert c.subscribe("byid/+/x", pid=5).rcs == [0x87]
    c.close()


def test_acl_nomatch_allow(broker_factory, mongo):
    b = start_broker(broker_factory, mongo, acl_nomatch="allow")
    user = uname()
    add_user(mongo, user, acl=[{"subscribe": ["only/this"]}])
    c, _ = raw(b, 5, user, "pw")
    assert c.publish("anything", b"x", qos=1, pid=1).rc in OK
    c.close()


# -- operator injection ----------------------------------------------------------------------

INJECTIONS = ['{"$ne": null}', '{"$gt": ""}', '$where', "this.password != ''", '{"$regex": ".*"}',
              '{"$exists": true}', "'; return true; var x='", "\\u0000", "$ne", "{$ne: 1}",
              "username", "password"]   # (U+0000 never gets here: the broker refuses it as malformed)


def test_operator_usernames_are_strings_and_match_nothing_else(broker_factory, mongo):
    """Selector values are BSON strings: a username that reads like an operator or a
    JavaScript clause finds only a document with exactly that username."""
    b = start_broker(broker_factory, mongo, mqtt={"strict_utf8": False})
    victim = uname("victim")
    add_user(mongo, victim, "victim-pw", superuser=True, acl=[{"pubsub": ["#"]}])
    for i, name in enumerate(INJECTIONS):
        # Nobody with that name: the victim's password must not open anything.
        assert not connects(b, name, "victim-pw"), name
    # A user really named like an operator is a user like any other.
    for i, name in enumerate(INJECTIONS):
        add_user(mongo, name, f"pw {i}", acl=[{"pubsub": [f"inj/{i}"]}])
        c, _ = raw(b, 5, name, f"pw {i}", client_id=f"inj-{i}")
        assert c.publish(f"inj/{i}", b"x", qos=1, pid=1).rc in OK, name
        assert c.publish("anything", b"x", qos=1, pid=2).rc == 0x87, name   # not the victim's ACL
        c.close()
        assert not connects(b, name, "victim-pw"), name
    assert mongo.db.mqtt_user.count_documents({"username": victim}) == 1   # nothing was changed


# -- stored documents of the wrong shape -----------------------------------------------------

def test_wrong_bson_types_are_an_error_for_that_user_only(broker_factory, mongo):
    b = start_broker(broker_factory, mongo)
    numeric, salty, listless, mixed, good = uname("num"), uname("salt"), uname("nolist"), uname("mixed"), uname("ok")
    mongo.db.mqtt_user.insert_one({"username": numeric, "password": 12345})
    b2 = start_broker(broker_factory, mongo,
                      queries={"authquery": {**SEED["authquery"], "password_hash": ["salt", "sha256"]}})
    mongo.db.mqtt_user.insert_one({"username": salty, "password": sha256("pw"), "salt": 42})
    add_user(mongo, listless, acl=[{"publish": "not/a/list"}])
    add_user(mongo, mixed, acl=[{"subscribe": ["ok/topic", 7, {"x": 1}]}])
    add_user(mongo, good, acl=[{"pubsub": ["good/#"]}])
    # The broker's fallback (deny) answers; the sidecar stays.
    assert not connects(b, numeric, "12345")
    assert not connects(b2, salty, "pw")
    for u in (listless, mixed):
        c, _ = raw(b, 5, u, "pw")
        assert c.publish("not/a/list", b"x", qos=1, pid=1).rc == 0x87
        assert c.subscribe("ok/topic", pid=2).rcs == [0x87]
        c.close()
    c, _ = raw(b, 5, good, "pw")
    assert c.publish("good/x", b"x", qos=1, pid=1).rc in OK
    c.close()
    text = b.log_text()
    wait_for(lambda: "password is int, not a string" in b.log_text(), msg="numeric password logged")
    wait_for(lambda: "publish is string, not an array" in b.log_text(), msg="publish not an array logged")
    wait_for(lambda: "subscribe.1 is int, not a string" in b.log_text(), msg="non-string topic logged")
    wait_for(lambda: "salt is int, not a string" in b2.log_text(), msg="numeric salt logged")
    text = b.log_text()
    assert "sidecar exited unexpectedly" not in text
    assert registrations(b, NAME) == 1
    b.assert_alive()


def test_acl_over_max_rows_is_an_error(broker_factory, mongo):
    b = start_broker(broker_factory, mongo, max_rows=3)
    user = uname()
    add_user(mongo, user, acl=[{"pubsub": [f"t/{i}"]} for i in range(4)])
    c, _ = raw(b, 5, user, "pw")
    assert c.publish("t/0", b"x", qos=1, pid=1).rc == 0x87   # nothing decided on part of the list
    c.close()
    wait_for(lambda: "more than max_rows (3) documents" in b.log_text(), msg="max_rows logged")


# -- database credentials and configuration ----------------------------------------------------

def test_wrong_database_password_logs_once_answers_error_and_does_not_restart(broker_factory, mongo):
    user = uname()
    add_user(mongo, user)
    b = start_broker(broker_factory, mongo, pool={"password": "wrong"})
    for i in range(3):
        raw(b, 5, user, "pw", client_id=f"wrongpass-{i}", expect_rc=0x86)[0].close()
    wait_for(lambda: "database unreachable" in b.log_text(), msg="refusal logged")
    time.sleep(1.5)   # several reconnect attempts (auto_reconnect 0.5 s)
    text = b.log_text()
    lines = [l for l in text.splitlines() if "requests answer error until it is back" in l]
    assert len(lines) == 1, text[-3000:]
    assert "uthentication failed" in lines[0], lines[0]
    assert "sidecar exited unexpectedly" not in text
    assert registrations(b, NAME) == 1
    b.assert_alive()


def test_full_uri_instead_of_the_options(broker_factory, mongo):
    from urllib.parse import quote
    from mongoserver import DB_PASSWORD, DB_USER
    user = uname()
    add_user(mongo, user)
    uri = f"mongodb://{quote(DB_USER, safe='')}:{quote(DB_PASSWORD, safe='')}@127.0.0.1:{mongo.port}/mqtt"
    b = start_broker(broker_factory, mongo, pool={"host": None, "port": None, "login": None, "password": None,
                                                  "uri": uri})
    assert connects(b, user, "pw")
    out = ctl_ok(b.ctl, NAME, "status")
    assert "reachable" in out and "***" in out and DB_PASSWORD not in out


def test_bad_configuration_is_refused_with_its_key(broker_factory, mongo):
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    text = plugin_toml(mongo, queries={"aclquery": {"collection": "mqtt_acl", "selector": {"$where": "%u"}}})
    (plugins / f"{NAME}.toml").write_text(text)
    b = broker_factory(extra=sidecar_config(d / "sc.sock") + f'plugins_dir = "{plugins}"\n')
    wait_for(lambda: "auth_mongo.aclquery.selector.$where" in b.log_text(), msg="configuration error logged")
    assert "must not start with $" in b.log_text()
    assert registrations(b, NAME) == 0
    b.assert_alive()


@pytest.fixture(scope="module")
def tls_mongo():
    """A server that speaks TLS only and requires a client certificate."""
    from mongoserver import Mongo, available
    why = available()
    if why:
        pytest.skip(why)
    m = Mongo(tls=True).create()
    yield m
    m.destroy()


def test_tls_with_ca_and_client_certificate(broker_factory, tls_mongo):
    user = uname("tls")
    add_user(tls_mongo, user, acl=[{"pubsub": [f"{user}/#"]}])
    t = tls_mongo.tls
    b = start_broker(broker_factory, tls_mongo, pool={"ssl": True, "ssl_opts": {"cafile": t["ca"], "certfile": t["client_pem"]}})
    c, _ = raw(b, 5, user, "pw")
    assert c.publish(f"{user}/x", b"x", qos=1, pid=1).rc in OK
    c.close()
    assert not connects(b, user, "wrong")


@pytest.mark.parametrize("case", ["plain-tcp", "unknown-ca", "no-client-certificate"])
def test_tls_refusals_answer_error_and_are_logged_once(broker_factory, tls_mongo, case):
    user = uname("tls")
    add_user(tls_mongo, user)
    t = tls_mongo.tls
    pool = {"plain-tcp": {},
            "unknown-ca": {"ssl": True, "ssl_opts": {"cafile": t["other_ca"], "certfile": t["client_pem"]}},
            "no-client-certificate": {"ssl": True, "ssl_opts": {"cafile": t["ca"]}}}[case]
    b = start_broker(broker_factory, tls_mongo, pool=pool)
    for i in range(2):
        raw(b, 5, user, "pw", client_id=f"{case}-{i}", expect_rc=0x86)[0].close()
    wait_for(lambda: "requests answer error until it is back" in b.log_text(), msg="refusal logged")
    lines = [l for l in b.log_text().splitlines() if "requests answer error until it is back" in l]
    assert len(lines) == 1, lines
    if case == "unknown-ca":
        assert "TLS handshake failed: certificate verify failed" in lines[0], lines[0]
    assert registrations(b, NAME) == 1
    b.assert_alive()


# -- MongoDB stopped, started, hanging -----------------------------------------------------------

def test_server_stopped_and_started_mid_test(broker_factory, own_mongo):
    m = own_mongo()
    user = uname()
    add_user(m, user, acl=[{"pubsub": [user]}])
    b = start_broker(broker_factory, m)
    c, _ = raw(b, 5, user, "pw", client_id="before")
    assert c.publish(user, b"x", qos=1, pid=1).rc in OK
    m.kill()
    # New questions (not cached) get the fallback: refused; the sidecar stays.
    raw(b, 5, user, "pw", client_id="during-1", expect_rc=0x86)[0].close()
    raw(b, 5, user, "pw", client_id="during-2", expect_rc=0x86)[0].close()
    # The connected client keeps its cached ACL answer.
    assert c.publish(user, b"x", qos=1, pid=2).rc in OK
    wait_for(lambda: "database unreachable" in b.log_text(), msg="outage logged")
    m.start()
    wait_for(lambda: connects(b, user, "pw"), timeout=30, interval=0.3, msg="served again after MongoDB came back")
    assert "database reachable" in b.log_text()
    assert registrations(b, NAME) == 1
    c.close()


def test_several_hosts_find_the_one_that_answers(broker_factory, own_mongo):
    """host = [...]: a seed list; the first host refuses, the second (the primary of a
    one-member replica set) answers."""
    from brokers import free_port
    m = own_mongo(standalone=False)
    user = uname("rs")
    add_user(m, user)
    b = start_broker(broker_factory, m, pool={"host": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{m.port}"], "port": None})
    assert connects(b, user, "pw")
    assert not connects(b, user, "nope")
    assert registrations(b, NAME) == 1


def test_hanging_server_answers_error_and_recovers(broker_factory, own_mongo):
    """A server that accepts and never answers (SIGSTOP): requests are answered error (the
    fallback refuses) instead of piling up; when it answers again, so does the plugin."""
    m = own_mongo()
    user = uname()
    add_user(m, user)
    b = start_broker(broker_factory, m, query_timeout=1)
    assert connects(b, user, "pw")
    m.pause()
    try:
        for i in range(3):
            try:
                raw(b, 5, user, "pw", client_id=f"hang-{i}", expect_rc=0x86)[0].close()
            except AssertionError as e:
                # Once seen in CI (CONNACK 0 while paused): say who could have answered.
                raise AssertionError(f"{e}\nserver pid {m.proc.pid}: alive {m.alive()}, holds port {m.port} "
                                     f"{m._owns_port()}, every thread stopped {m._all_threads_stopped()}\n"
                                     f"{m.log_tail()}") from e
    finally:
        m.resume()
    wait_for(lambda: connects(b, user, "pw"), timeout=30, interval=0.3, msg="served again after the pause")
    assert registrations(b, NAME) == 1
    b.assert_alive()


# -- the sidecar killed under load -------------------------------------------------------------

def test_kill9_under_200_concurrent_connects_is_restarted_and_serves(broker_factory, mongo):
    b = start_broker(broker_factory, mongo)
    user = uname()
    add_user(mongo, user)
    first = managed_pid(b, NAME)
    load = ConnectLoad(b, 200, user, "pw")
    wait_for(lambda: load.ok >= 200, timeout=60, msg="200 concurrent CONNECTs served")
    os.kill(first, signal.SIGKILL)
    wait_registered(b, NAME, count=2, timeout=20)
    ok_at_restart = load.ok
    wait_for(lambda: load.ok >= ok_at_restart + 200, timeout=60, msg="served again after the restart")
    load.stop()
    assert managed_pid(b, NAME) != first
    assert "sidecar exited unexpectedly" in b.log_text()
    b.assert_alive()
    raw(b, 5, user, "pw")[0].close()


# -- ctl -------------------------------------------------------------------------------------

def test_ctl_invalidate_user_and_status(broker_factory, mongo):
    b = start_broker(broker_factory, mongo)
    user = uname()
    add_user(mongo, user)
    raw(b, 5, user, "pw", client_id="inv")[0].close()
    mongo.db.mqtt_user.update_one({"username": user}, {"$set": {"password": sha256("changed")}})
    raw(b, 5, user, "pw", client_id="inv")[0].close()          # the broker's cache still answers
    assert "invalidated" in ctl_ok(b.ctl, NAME, "invalidate", "user", user)

    def refused():
        c, ack = raw(b, 5, user, "pw", client_id="inv", expect_rc=None)
        c.close()
        return ack.rc == 0x86
    wait_for(refused, msg="cached answer dropped")
    raw(b, 5, user, "changed", client_id="inv")[0].close()
    assert run_ctl(b.ctl, NAME, "invalidate", "bogus").rc != 0
    assert "invalidated" in ctl_ok(b.ctl, NAME, "invalidate", "all")
    status = ctl_ok(b.ctl, NAME, "status", json_out=True)
    assert status["reachable"] is True and status["pool_size"] == 4
