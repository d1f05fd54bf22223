"""The Python codec of sidecar.py against Protocol/golden (values as in golden/README.md).

Run from the repository root: python3 -m pytest Protocol/examples -q
"""

import os
import struct

import pytest

import sidecar as sc

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "golden")
HOSTILE = os.path.join(GOLDEN, "hostile")


def read_hex(path):
    with open(path, encoding="utf-8") as f:
        return sc.parse_hex(f.read())


LISTENER = "tcp:0.0.0.0:1883"
ALICE_C1 = sc.Client("c1", "alice", "127.0.0.1", 50000, 5, LISTENER, None, None)

# file name -> (request_id, message): the logical values listed in golden/README.md.
EXPECTED = {
    "hello.hex": (1, sc.Hello(1, 1, "pyauth", "0.1.0", 1_048_576)),
    "welcome.hex": (1, sc.Welcome(1, "0.1.0", "node1", 65_536)),
    "register.hex": (2, sc.Register([
        sc.AuthnCapability(100),
        sc.AuthzCapability(200),
        sc.HookCapability("message.publish", True, 500),
        sc.CtlCapability("pydemo", "pydemo [users]"),
        sc.GatewayCapability("coap"),
    ])),
    "registered.hex": (2, sc.Registered(["message.publish"])),
    "ping.hex": (7, sc.Ping()),
    "pong.hex": (7, sc.Pong()),
    "error.hex": (9, sc.Error(2, "unknown kind 0x09")),
    "goodbye.hex": (0, sc.Goodbye("shutdown")),
    "authn_request.hex": (3, sc.AuthnRequest(ALICE_C1, b"secret")),
    "authn_request_anonymous.hex": (4, sc.AuthnRequest(
        sc.Client("c2", None, "::1", 1883, 4, LISTENER, None, None), None)),
    "authn_reply.hex": (3, sc.AuthnReply(0, True, 60_000, "ok")),
    "authz_request.hex": (5, sc.AuthzRequest(
        sc.Client("sensor-1", "bob", "10.0.0.7", 8883, 4, "ssl:0.0.0.0:8883",
                  "sensor-1.example", "CN=sensor-1.example,O=Acme"),
        access=2, topic="a/b", qos=1, retain=True)),
    "authz_reply.hex": (5, sc.AuthzReply(1, 0, "acl")),
    "hook_events.hex": (0, sc.HookEvents([
        sc.Event("client.connected", 1_700_000_000_000, [
            ("clean_start", b"true"),
            ("client_id", b"c1"),
            ("keepalive", b"60"),
            ("peer", b"127.0.0.1:50000"),
            ("protocol", b"5"),
            ("username", b"alice"),
        ]),
        sc.Event("message.publish", 1_700_000_000_001, [
            ("client_id", b"c1"),
            ("payload", b"\x00\x01\x00\xff\x00"),
            ("qos", b"1"),
            ("retain", b"false"),
            ("topic", b"a/b"),
            ("username", b"alice"),
        ]),
    ])),
    "hook_publish.hex": (6, sc.HookPublish(
        ALICE_C1, sc.PublishMessage("a/b", b"hi", 1, False, [("k", b"v")]))),
    "hook_publish_reply.hex": (6, sc.HookPublishReply(
        1, sc.PublishMessage("a/c", b"HI", 0, True, []))),
    "hook_publish_reply_drop.hex": (6, sc.HookPublishReply(2)),
    "ctl_request.hex": (10, sc.CtlRequest("cmd", ["arg1", "arg2"])),
    "ctl_reply.hex": (10, sc.CtlReply(0, "users: alice, bob", '{"users":["alice","bob"]}')),
    "invalidate.hex": (0, sc.Invalidate(1, "alice")),
    # version 2
    "gw_open.hex": (11, sc.GwOpen(1, "mqtt-sn", "192.0.2.10", 47000, "mqtt-sn:udp:0.0.0.0:1884")),
    "gw_opened.hex": (11, sc.GwOpened(1)),
    "gw_data.hex": (0, sc.GwData(1, b"\xc0\x00")),
    "gw_close.hex": (0, sc.GwClose(1, "overflow")),
    # version 3
    "authn_reply_subs.hex": (3, sc.AuthnReplySubs(0, False, 60_000, "ok", (("a/b", 0), ("c/#", 2)))),
}

# hostile file -> the error the decoder must raise
HOSTILE_EXPECTED = {
    "length_too_large.hex": sc.FrameTooLarge,
    "length_too_small.hex": sc.FrameTooSmall,
    "truncated.hex": sc.TruncatedFrame,
    "unknown_kind.hex": sc.UnknownKind,
    "str_past_end.hex": sc.MalformedBody,
    "bool_value_2.hex": sc.MalformedBody,
    "ping_leftover.hex": sc.MalformedBody,
    "gw_data_session_0.hex": sc.MalformedBody,
    "gw_data_bytes_past_end.hex": sc.MalformedBody,
    "authn_reply_subs_qos_3.hex": sc.MalformedBody,
}


def golden_files():
    return sorted(f for f in os.listdir(GOLDEN) if f.endswith(".hex"))


def hostile_files():
    return sorted(f for f in os.listdir(HOSTILE) if f.endswith(".hex"))


def test_every_golden_file_has_expected_values():
    assert golden_files() == sorted(EXPECTED)


def test_every_hostile_file_has_an_expected_error():
    assert hostile_files() == sorted(HOSTILE_EXPECTED)


def test_every_message_kind_has_a_golden_frame():
    kinds = {type(msg).KIND for _, msg in EXPECTED.values()}
    assert kinds == set(sc.MESSAGE_TYPES)


def test_register_has_every_capability_type():
    caps = EXPECTED["register.hex"][1].capabilities
    assert sorted(c.TYPE for c in caps) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_encode_matches_golden(name):
    rid, msg = EXPECTED[name]
    assert sc.encode(msg, rid).hex() == read_hex(os.path.join(GOLDEN, name)).hex()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decode_matches_values(name):
    rid, msg = EXPECTED[name]
    data = read_hex(os.path.join(GOLDEN, name))
    frame = sc.decode_frame(data)
    assert frame.kind == type(msg).KIND
    assert frame.request_id == rid
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4
    assert sc.decode_message(frame.kind, frame.body) == msg
    assert sc.decode(data) == (rid, msg)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_drip_feed_equals_one_piece(name):
    data = read_hex(os.path.join(GOLDEN, name))
    d = sc.FrameDecoder()
    frames = []
    for i in range(len(data)):
        frames += d.feed(data[i:i + 1])
        if i < len(data) - 1:
            assert frames == []
    d.finish()
    assert frames == [sc.decode_frame(data)]


def test_all_golden_frames_concatenated_decode_in_order():
    stream = b"".join(read_hex(os.path.join(GOLDEN, n)) for n in sorted(EXPECTED))
    frames = sc.decode_frames(stream)
    got = [(f.request_id, sc.decode_message(f.kind, f.body)) for f in frames]
    assert got == [EXPECTED[n] for n in sorted(EXPECTED)]


@pytest.mark.parametrize("name", sorted(HOSTILE_EXPECTED))
def test_hostile_rejected(name):
    data = read_hex(os.path.join(HOSTILE, name))
    with pytest.raises(HOSTILE_EXPECTED[name]):
        sc.decode(data)


def test_oversized_length_rejected_from_the_length_alone():
    d = sc.FrameDecoder(65_536)
    with pytest.raises(sc.FrameTooLarge):
        d.feed(bytes.fromhex("00010001"))
    with pytest.raises(sc.FrameTooLarge):  # stays failed
        d.feed(b"\x05")


def test_max_frame_boundary_accepted():
    # length exactly 65,536: a GOODBYE whose reason fills the body (u16 + 65,529 bytes)
    reason = "x" * (65_536 - 5 - 2)
    data = sc.encode(sc.Goodbye(reason))
    assert struct.unpack(">I", data[:4])[0] == 65_536
    assert sc.decode(data) == (0, sc.Goodbye(reason))


def test_truncated_waits_then_fails_at_end_of_stream():
    data = read_hex(os.path.join(HOSTILE, "truncated.hex"))
    d = sc.FrameDecoder()
    assert d.feed(data) == []  # not an error yet: more may come
    with pytest.raises(sc.TruncatedFrame):
        d.finish()


def test_unknown_kind_is_framed_and_carries_its_request_id():
    frame = sc.decode_frame(read_hex(os.path.join(HOSTILE, "unknown_kind.hex")))
    assert (frame.kind, frame.request_id, frame.body) == (0x09, 1, b"")
    with pytest.raises(sc.UnknownKind) as e:
        sc.decode_message(frame.kind, frame.body, frame.request_id)
    assert e.value.request_id == 1 and e.value.code == sc.ERR_UNKNOWN_KIND


@pytest.mark.parametrize("kind", [k for k in range(256) if k not in sc.MESSAGE_TYPES])
def test_every_reserved_kind_is_unknown(kind):
    with pytest.raises(sc.UnknownKind):
        sc.decode_message(kind, b"")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_truncation_of_a_body_is_malformed(name):
    rid, msg = EXPECTED[name]
    body = sc.encode_body(msg)
    for n in range(len(body)):
        with pytest.raises(sc.MalformedBody):
            sc.decode_message(type(msg).KIND, body[:n])
    with pytest.raises(sc.MalformedBody):
        sc.decode_message(type(msg).KIND, body + b"\x00")


def test_opt_flag_2_is_malformed():
    body = bytearray(sc.encode_body(EXPECTED["authn_request_anonymous.hex"][1]))
    body[-1] = 2  # password opt flag
    with pytest.raises(sc.MalformedBody):
        sc.decode_message(sc.Kind.AUTHN_REQUEST, bytes(body))


def test_invalid_utf8_str_is_malformed():
    with pytest.raises(sc.MalformedBody):
        sc.decode_message(sc.Kind.GOODBYE, b"\x00\x02\xc3\x28")


@pytest.mark.parametrize("kind,body", [
    (sc.Kind.GW_OPEN, b"\x00\x00\x00\x00\x00\x01p\x00\x01a\x00\x01\x00\x01l"),
    (sc.Kind.GW_OPENED, b"\x00\x00\x00\x00"),
    (sc.Kind.GW_CLOSE, b"\x00\x00\x00\x00\x00\x00"),
])
def test_gateway_session_0_is_malformed(kind, body):
    with pytest.raises(sc.MalformedBody):
        sc.decode_message(kind, body)


def test_unknown_capability_type_is_malformed():
    with pytest.raises(sc.MalformedBody):
        sc.decode_message(sc.Kind.REGISTER, b"\x00\x01\x06")


def test_encoder_refuses_out_of_range_values():
    with pytest.raises(sc.EncodeError):
        sc.encode(sc.Goodbye("x" * 65_536))
    with pytest.raises(sc.EncodeError):
        sc.encode(sc.Error(70_000, ""), 1)
    with pytest.raises(sc.EncodeError):
        sc.encode(sc.Ping(), 1 << 32)
    with pytest.raises(sc.EncodeError):
        sc.encode(sc.HookPublishReply(1), 1)  # replace without a message
    with pytest.raises(sc.EncodeError):
        sc.encode(sc.HookPublishReply(2, sc.PublishMessage("a", b"", 0, False)), 1)


def test_parse_hex_ignores_comments_and_whitespace():
    assert sc.parse_hex("# c\n 00 0a\n\t# d 99\nFF\n") == b"\x00\x0a\xff"


# ---- topic filters

@pytest.mark.parametrize("flt,topic,ok", [
    ("a/b", "a/b", True), ("a/b", "a/c", False), ("a/+", "a/b", True),
    ("a/+", "a/b/c", False), ("a/#", "a", True), ("a/#", "a/b/c", True),
    ("#", "a/b", True), ("+/+", "a/b", True), ("+", "a/b", False),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/x", True),
    ("a//b", "a//b", True), ("a/+/b", "a//b", True), ("+", "", False),
    ("a/#/b", "a/x/b", False), ("a+", "a+", False), ("/+", "/x", True),
])
def test_topic_matches(flt, topic, ok):
    assert sc.topic_matches(flt, topic) is ok


@pytest.mark.parametrize("rule,sub,ok", [
    ("a/#", "a/+/c", True), ("a/#", "a/#", True), ("a/+", "a/#", False),
    ("a/+", "a/+", True), ("a/b", "a/+", False), ("#", "#", True),
    ("#", "$SYS/#", False), ("a/+/c", "a/b/c", True), ("a/b", "a/b", True),
    ("+/b", "#", False),
])
def test_filter_covers(rule, sub, ok):
    assert sc.filter_covers(rule, sub) is ok
