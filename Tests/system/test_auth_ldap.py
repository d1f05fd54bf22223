"""swiftlet-auth-ldap (emqttd_auth_ldap as a sidecar) against real slapd servers started by the
tests on free loopback ports in temporary directories (ldapserver.py; never the system service),
run by the broker as a managed plugin: bind mode (right and wrong password, unknown user, empty
password, hostile usernames), search mode (injection, unknown and ambiguous users, superuser
group, ACL attributes), a second server taking over, LDAPS and StartTLS with a test CA and a
client certificate, a wrong service password, the sidecar killed with -9 under load."""

import json
import os
import time

import pytest

from brokers import swiftlet_path, toml_value
from clients import wait_for
from ctl import ctl_config, ctl_ok, run_ctl
from ldapserver import (GROUPS, PEOPLE, SERVICE_DN, SERVICE_PW, Slapd, Certificates, available, user_dn,
                        user_ldif)
from sidecars import (kill9_under_load, raw_login, registrations, shipped_plugin_broker, short_dir, sidecar_config,
                      wait_registered)

NAME = "auth_ldap"


def sidecar_binary():
    return swiftlet_path().parent / "swiftlet-auth-ldap"


pytestmark = [
    pytest.mark.skipif(not sidecar_binary().exists(),
                       reason=f"{sidecar_binary()} not built (swift build --product swiftlet-auth-ldap)"),
    pytest.mark.skipif(not available(), reason="slapd and ldap-utils not installed (apt-get install slapd ldap-utils)"),
]

REFUSED = {5: 0x86, 4: 4, 3: 4}   # credentials given and refused
OK = (0, 0x10)                    # PUBACK: success, or success with no subscriber


@pytest.fixture(scope="session")
def ca():
    c = Certificates()
    yield c
    c.destroy()


@pytest.fixture(scope="session")
def slapd(ca):
    s = Slapd(ca=ca).start()
    yield s
    s.destroy()


@pytest.fixture
def own_slapd(ca):
    """slapd servers for one test (stopped, or with other TLS settings)."""
    made = []

    def make(**kw):
        s = Slapd(ca=ca, **kw).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.destroy()


_uid_number = [20000]


def add_user(servers, uid, password, ou=PEOPLE, **attrs):
    """Adds the user to each server (a list, or one), replacing an entry of the same DN (the
    session server is shared: literal names such as "*" recur); returns its DN."""
    _uid_number[0] += 1
    for s in servers if isinstance(servers, list) else [servers]:
        s.delete(user_dn(uid, ou))
        s.add(user_ldif(uid, password, ou=ou, uid_number=_uid_number[0], attrs=attrs))
    return user_dn(uid, ou)


def uname(prefix="u"):
    return f"{prefix}-{os.urandom(4).hex()}"


# -- the broker with the sidecar -----------------------------------------------------------

BIND_MODE = {"user_dn": f"uid=$u,{PEOPLE}"}
SEARCH_MODE = {
    "bind_dn": SERVICE_DN,
    "bind_password": SERVICE_PW,
    "base_dn": "dc=example,dc=com",
    "filter": "(&(objectClass=posixAccount)(uid=%u))",
}


def plugin_toml(servers, mode=None, sslopts=None, **options):
    lines = [
        "[sidecar]",
        f"command = {json.dumps(str(sidecar_binary()))}",
        "enabled = true",
        "[sidecar.restart]",
        "initial_backoff = 0.1", "max_backoff = 0.5", "max_restarts = 50", "period = 60", "shutdown_grace = 2",
        "",
        "[auth_ldap]",
    ]
    opts = {"servers": servers, "timeout": 3, "pool_size": 4, "auto_reconnect": 0.5, "keep_alive": 0.5,
            **(mode if mode is not None else BIND_MODE), **options}
    lines += [f"{k} = {toml_value(v)}" for k, v in opts.items() if v is not None]
    if sslopts:
        lines.append("[auth_ldap.sslopts]")
        lines += [f"{k} = {toml_value(v)}" for k, v in sslopts.items()]
    return "\n".join(lines) + "\n"


def start_broker(broker_factory, servers, mqtt=None, extra="", wait=True, **options):
    """A broker running the sidecar against `servers` (slapd objects or "host:port" strings)."""
    d = short_dir()
    plugins = d / "plugins"
    plugins.mkdir()
    names = [s if isinstance(s, str) else f"127.0.0.1:{s.port}" for s in (servers if isinstance(servers, list) else [servers])]
    (plugins / f"{NAME}.toml").write_text(plugin_toml(names, **options))
    b = broker_factory(extra=sidecar_config(d / "sc.sock", mqtt=mqtt) + f'plugins_dir = "{plugins}"\n'
                       + ctl_config(d / "ctl.sock") + extra)
    b.ctl = d / "ctl.sock"
    if wait:
        wait_registered(b, NAME)
    return b


raw = raw_login


def allowed(b, user, password, version=5, client_id=None):
    """True when CONNECT is accepted (CONNACK 0), false when refused; the connection is closed."""
    c, ack = raw(b, version, user, password, client_id=client_id, expect_rc=None)
    c.close()
    return ack.rc == 0


# -- shipped plugin file ------------------------------------------------------------------------

def test_shipped_plugin_file_loads_on_demand(broker_factory, slapd):
    b, ctl = shipped_plugin_broker(broker_factory, NAME, {
        'command = ".build/release/swiftlet-auth-ldap"': f'command = "{sidecar_binary()}"',
        'servers = ["localhost"]': 'servers = ["127.0.0.1"]',
        "port = 389": f"port = {slapd.port}"})
    rows = ctl_ok(ctl, "plugins", "list", json_out=True)
    assert [r for r in rows if r["name"] == NAME][0]["state"] == "stopped"
    user = uname()
    add_user(slapd, user, "pw")
    raw(b, 5, user, "pw", expect_rc=0x86)[0].close()
    ctl_ok(ctl, "plugins", "load", NAME)
    wait_registered(b, NAME)
    raw(b, 5, user, "pw")[0].close()


# -- bind mode ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 4, 5])
def test_bind_mode_right_wrong_unknown(broker_factory, slapd, version):
    b = start_broker(broker_factory, slapd)
    user = uname()
    add_user(slapd, user, "secret")
    raw(b, version, user, "secret")[0].close()
    raw(b, version, user, "wrong", expect_rc=REFUSED[version])[0].close()
    raw(b, version, uname("nobody"), "secret", expect_rc=REFUSED[version])[0].close()


def test_ctl_invalidate_and_status(broker_factory, slapd):
    b = start_broker(broker_factory, slapd, ttl_ms=600000)
    user = uname()
    add_user(slapd, user, "secret")
    assert allowed(b, user, "secret", client_id="inv")
    add_user(slapd, user, "changed")            # the password changes in the directory ...
    assert allowed(b, user, "secret", client_id="inv")  # ... the broker answers from its cache (same client)
    assert "invalidated cached answers of user" in ctl_ok(b.ctl, NAME, "invalidate", "user", user)
    assert not allowed(b, user, "secret", client_id="inv")
    assert allowed(b, user, "changed", client_id="inv")
    status = ctl_ok(b.ctl, NAME, "status", json_out=True)
    assert status["reachable"] is True and status["pool_size"] == 4
    assert status["servers"] == [f"127.0.0.1:{slapd.port}"]
    assert "reachable" in ctl_ok(b.ctl, NAME, "status")
    assert run_ctl(b.ctl, NAME, "invalidate", "bogus").rc != 0


def test_empty_password_never_reaches_the_server(broker_factory, slapd):
    """This slapd accepts unauthenticated binds (allow bind_anon_dn): a DN with an empty password
    binds. The plugin must deny without sending it."""
    user = uname()
    dn = add_user(slapd, user, "secret")
    assert slapd.whoami(dn, "") == 0          # the server would have said yes
    b = start_broker(broker_factory, slapd)
    raw(b, 5, user, "", expect_rc=0x86)[0].close()
    raw(b, 5, user, None, expect_rc=0x86)[0].close()
    raw(b, 4, user, "", expect_rc=4)[0].close()
    raw(b, 5, user, "secret")[0].close()


# Usernames that are DN syntax: each is a user of its own (uid holding the characters
# literally), who logs in with their own password and with no other.
DN_NAMES = ["*", "\\", "a,b", "x=y", "p+q", 'say "hi"', "#lead", " spaced ", "semi;colon", "<angle>",
            "a,ou=People,dc=example,dc=com", "ünïcødé-日本"]


def test_bind_mode_hostile_usernames_are_one_rdn_value(broker_factory, slapd):
    b = start_broker(broker_factory, slapd, mqtt={"strict_utf8": False})
    victim = uname("victim")
    add_user(slapd, victim, "victim-pw")
    for i, name in enumerate(DN_NAMES):
        add_user(slapd, name, f"pw-{i}")
    for i, name in enumerate(DN_NAMES):
        assert allowed(b, name, f"pw-{i}", client_id=f"dn-{i}"), name
        assert not allowed(b, name, f"pw-{i}x", client_id=f"dn-{i}"), name
        assert not allowed(b, name, "victim-pw", client_id=f"dn-{i}"), name
    # A leading '#' unescaped would be a BER-encoded value; ',' would end the RDN; NUL would end
    # the C string: none of them reaches another entry.
    ber_victim = "#" + (bytes([0x04, len(victim)]) + victim.encode()).hex()
    for name in [ber_victim, f"{victim},ou=People", f"{victim}\x00junk", f"{victim}+cn={victim}"]:
        assert not allowed(b, name, "victim-pw"), repr(name)
    assert allowed(b, victim, "victim-pw")
    b.assert_alive()


# -- search mode -------------------------------------------------------------------------------

def test_search_mode_right_wrong_and_filter_injection(broker_factory, slapd):
    b = start_broker(broker_factory, slapd, mode=SEARCH_MODE, mqtt={"strict_utf8": False})
    alice = uname("alice")
    add_user(slapd, alice, "alice-pw")
    # Literal users named like filter syntax: escaped, each filter finds exactly its own entry;
    # unescaped, "*" would find every user (refused as ambiguous), "*)(uid=*" would be a broken
    # or widened filter.
    hostile = ["*", "*)(uid=*", "\\", "x)(|(objectClass=*)", "(", ")"]
    for i, name in enumerate(hostile):
        add_user(slapd, name, f"pw-{i}")
    assert allowed(b, alice, "alice-pw")
    assert not allowed(b, alice, "bad")
    for i, name in enumerate(hostile):
        assert allowed(b, name, f"pw-{i}", client_id=f"f-{i}"), name
        assert not allowed(b, name, "alice-pw", client_id=f"f-{i}"), name
    for name in [f"{alice}*", f"{alice[:3]}*", f"{alice})(uid=*", f"{alice}\x00"]:
        assert not allowed(b, name, "alice-pw"), repr(name)
    b.assert_alive()


def test_search_mode_unknown_user_is_ignore_or_deny(broker_factory, slapd):
    """No entry: ignore lets the built-in users decide; unknown_user = "deny" refuses."""
    from test_auth_orders import pbkdf2_sha512
    d = short_dir()
    users = d / "users.toml"
    local = uname("local")
    users.write_text(f"[users.{json.dumps(local)}]\npassword = {toml_value(pbkdf2_sha512('local-pw'))}\n")
    extra = f"\n[auth]\nusers_file = {toml_value(str(users))}\n"
    b = start_broker(broker_factory, slapd, mode=SEARCH_MODE, extra=extra)
    assert allowed(b, local, "local-pw")
    b2 = start_broker(broker_factory, slapd, mode=SEARCH_MODE, extra=extra, unknown_user="deny")
    assert not allowed(b2, local, "local-pw")


def test_search_mode_more_than_one_entry_is_denied(broker_factory, slapd):
    twin = uname("twin")
    slapd.add(f"dn: ou={twin},dc=example,dc=com\nobjectClass: organizationalUnit\nou: {twin}\n\n")
    add_user(slapd, twin, "pw")
    add_user(slapd, twin, "pw", ou=f"ou={twin},dc=example,dc=com")
    b = start_broker(broker_factory, slapd, mode=SEARCH_MODE, unknown_user="deny")
    assert not allowed(b, twin, "pw")
    assert "more than one entry" in b.log_text()
    # base_dn narrowed to ou=People: one entry, allowed.
    b2 = start_broker(broker_factory, slapd, mode={**SEARCH_MODE, "base_dn": PEOPLE})
    assert allowed(b2, twin, "pw")


def test_superuser_group_by_member_and_by_member_uid(broker_factory, slapd):
    admin, ops, plain = uname("admin"), uname("ops"), uname("plain")
    admin_dn = add_user(slapd, admin, "pw")
    add_user(slapd, ops, "pw")
    add_user(slapd, plain, "pw")
    names = f"cn=names-{admin},{GROUPS}"
    posix = f"cn=posix-{admin},{GROUPS}"
    slapd.add(f"dn: {names}\nobjectClass: groupOfNames\ncn: names-{admin}\nmember: {admin_dn}\n\n"
              f"dn: {posix}\nobjectClass: posixGroup\ncn: posix-{admin}\ngidNumber: 5000\nmemberUid: {ops}\n\n")
    acl = {"pubsub_attribute": "mqttPubSubTopic", "acl_nomatch": "deny"}
    for group, superuser, normal in ((names, admin, ops), (posix, ops, admin)):
        b = start_broker(broker_factory, slapd, mode={**SEARCH_MODE, "superuser_group": group, **acl})
        for user, expected in ((superuser, OK), (normal, (0x87,)), (plain, (0x87,))):
            c, _ = raw(b, 5, user, "pw")
            assert c.publish("anything/at/all", b"x", qos=1, pid=1).rc in expected, (group, user)
            c.close()
        raw(b, 5, superuser, "wrong", expect_rc=0x86)[0].close()


def test_acl_attributes(broker_factory, slapd):
    user = uname()
    add_user(slapd, user, "pw", mqttPublishTopic=["out/%u", "sensors/+/temp"], mqttSubscribeTopic=["in/%c/#"],
             mqttPubSubTopic=["chat/#"])
    acl = {"publish_attribute": "mqttPublishTopic", "subscribe_attribute": "mqttSubscribeTopic",
           "pubsub_attribute": "mqttPubSubTopic"}
    b = start_broker(broker_factory, slapd, mode={**SEARCH_MODE, **acl})
    c, _ = raw(b, 5, user, "pw", client_id=f"cid-{user}")
    assert c.publish(f"out/{user}", b"x", qos=1, pid=1).rc in OK
    assert c.publish("out/someone-else", b"x", qos=1, pid=2).rc == 0x87
    assert c.publish("sensors/kitchen/temp", b"x", qos=1, pid=3).rc in OK
    assert c.subscribe(f"out/{user}", pid=4, qos=1).rcs == [0x87]           # publish only
    assert c.subscribe(f"in/cid-{user}/+", pid=5, qos=1).rcs == [1]
    assert c.subscribe("in/other/+", pid=6, qos=1).rcs == [0x87]
    assert c.publish(f"in/cid-{user}/x", b"x", qos=1, pid=7).rc == 0x87     # subscribe only
    assert c.subscribe("chat/a/b", pid=8, qos=1).rcs == [1]
    assert c.publish("chat/a/b", b"x", qos=1, pid=9).rc in OK
    assert c.publish("nowhere", b"x", qos=1, pid=10).rc == 0x87             # acl_nomatch = deny
    c.close()
    b2 = start_broker(broker_factory, slapd, mode={**SEARCH_MODE, **acl, "acl_nomatch": "allow"})
    c, _ = raw(b2, 5, user, "pw")
    assert c.publish("nowhere", b"x", qos=1, pid=1).rc in OK
    c.close()


@pytest.mark.parametrize("name", ["+", "#", "a/b"])
def test_acl_names_with_wildcards_never_widen_a_rule(broker_factory, slapd, name):
    add_user(slapd, name, "pw", mqttPubSubTopic=["users/%u"])
    b = start_broker(broker_factory, slapd, mode={**SEARCH_MODE, "pubsub_attribute": "mqttPubSubTopic"})
    c, _ = raw(b, 5, name, "pw")
    if name == "a/b":
        assert c.publish("users/a/b", b"x", qos=1, pid=1).rc in OK
    assert c.publish("users/bob", b"x", qos=1, pid=2).rc == 0x87
    assert c.subscribe("users/+", pid=3).rcs == [0x87]
    assert c.subscribe("users/#", pid=4).rcs == [0x87]
    c.close()


def test_wrong_service_password_logs_once_answers_error_and_does_not_restart(broker_factory, slapd):
    user = uname()
    add_user(slapd, user, "pw")
    b = start_broker(broker_factory, slapd, mode={**SEARCH_MODE, "bind_password": "wrong"})
    for i in range(3):
        assert not allowed(b, user, "pw", client_id=f"wrongsvc-{i}")
    wait_for(lambda: "refused: invalidCredentials (49)" in b.log_text(), msg="service bind refusal logged")
    time.sleep(1.5)   # several reconnect attempts (auto_reconnect 0.5 s)
    text = b.log_text()
    assert sum(1 for l in text.splitlines() if "unreachable" in l and "invalidCredentials" in l) == 1, text[-3000:]
    assert "sidecar exited unexpectedly" not in text
    assert registrations(b, NAME) == 1
    b.assert_alive()


# -- failover ----------------------------------------------------------------------------------

def test_second_server_takes_over_when_the_first_stops(broker_factory, own_slapd):
    first, second = own_slapd(), own_slapd()
    servers = [first, second]
    b = start_broker(broker_factory, servers)
    u1 = uname()
    add_user(servers, u1, "pw")
    assert allowed(b, u1, "pw")
    first.stop()
    # New users (nothing cached): the connections to the first break, reopen to the second.
    n = [0]

    def served():
        n[0] += 1
        u = f"{u1}-{n[0]}"
        add_user(second, u, "pw")
        return allowed(b, u, "pw")
    wait_for(served, timeout=20, interval=0.2, msg="served by the second server")
    # Both down: error answers, the fallback refuses, the sidecar stays.
    second.stop()
    wait_for(lambda: "database unreachable" in b.log_text(), timeout=20, msg="unreachable logged")
    assert not allowed(b, uname(), "pw")
    # The first back (its tree as it was): served again.
    first.start()

    def back():
        return allowed(b, u1, "pw", client_id=f"back-{os.urandom(3).hex()}")
    wait_for(back, timeout=20, interval=0.2, msg="served again after the first came back")
    assert "database reachable" in b.log_text()
    assert registrations(b, NAME) == 1
    b.assert_alive()


# -- TLS ---------------------------------------------------------------------------------------

def test_ldaps_with_the_test_ca(broker_factory, slapd, ca):
    user = uname()
    add_user(slapd, user, "pw")
    b = start_broker(broker_factory, f"127.0.0.1:{slapd.tls_port}", ssl=True, sslopts={"cacertfile": ca.ca})
    assert allowed(b, user, "pw")
    assert not allowed(b, user, "bad")


def test_ldaps_refuses_a_server_its_ca_did_not_sign(broker_factory, slapd, ca):
    user = uname()
    add_user(slapd, user, "pw")
    b = start_broker(broker_factory, f"127.0.0.1:{slapd.tls_port}", ssl=True, sslopts={"cacertfile": ca.other_ca})
    assert not allowed(b, user, "pw")
    wait_for(lambda: "unreachable" in b.log_text(), msg="TLS failure logged")
    # verify_none accepts any certificate (testing only).
    b2 = start_broker(broker_factory, f"127.0.0.1:{slapd.tls_port}", ssl=True, sslopts={"verify": "verify_none"})
    assert allowed(b2, user, "pw")


def test_ldaps_checks_the_server_name(broker_factory, own_slapd, ca):
    """A certificate the CA signed for another name (ldap.invalid) is refused with verify_peer."""
    s = own_slapd(wrong_name=True)
    user = uname()
    add_user(s, user, "pw")
    b = start_broker(broker_factory, f"127.0.0.1:{s.tls_port}", ssl=True, sslopts={"cacertfile": ca.ca})
    assert not allowed(b, user, "pw")
    wait_for(lambda: "unreachable" in b.log_text(), msg="TLS failure logged")
    assert "certificate check that failed" in b.log_text()
    b2 = start_broker(broker_factory, f"127.0.0.1:{s.tls_port}", ssl=True, sslopts={"cacertfile": ca.ca, "verify": "verify_none"})
    assert allowed(b2, user, "pw")


def test_starttls_with_the_test_ca(broker_factory, slapd, ca):
    user = uname()
    add_user(slapd, user, "pw")
    b = start_broker(broker_factory, slapd, starttls=True, sslopts={"cacertfile": ca.ca}, mode=SEARCH_MODE)
    assert allowed(b, user, "pw")
    assert not allowed(b, user, "bad")
    b2 = start_broker(broker_factory, slapd, starttls=True, sslopts={"cacertfile": ca.other_ca})
    assert not allowed(b2, user, "pw")
    wait_for(lambda: "StartTLS" in b2.log_text(), msg="StartTLS failure logged")


def test_client_certificate(broker_factory, own_slapd, ca):
    s = own_slapd(verify_client=True)
    user = uname()
    add_user(s, user, "pw")
    tls = f"127.0.0.1:{s.tls_port}"
    b = start_broker(broker_factory, tls, ssl=True,
                     sslopts={"cacertfile": ca.ca, "certfile": ca.client_cert, "keyfile": ca.client_key})
    assert allowed(b, user, "pw")
    b2 = start_broker(broker_factory, tls, ssl=True, sslopts={"cacertfile": ca.ca})
    assert not allowed(b2, user, "pw")


# -- configuration errors, kill -9 ---------------------------------------------------------------

def test_configuration_error_exits_and_the_broker_stays(broker_factory, slapd):
    b = start_broker(broker_factory, slapd, wait=False, ssl=True, starttls=True)
    wait_for(lambda: "choose one" in b.log_text(), msg="configuration error logged")
    assert registrations(b, NAME) == 0
    b.assert_alive()


def test_kill9_under_200_concurrent_connects_is_restarted_and_serves(broker_factory, slapd):
    b = start_broker(broker_factory, slapd)
    user = uname()
    add_user(slapd, user, "pw")
    kill9_under_load(b, NAME, user, "pw")
    other = uname()
    add_user(slapd, other, "pw")
    raw(b, 5, other, "pw")[0].close()
