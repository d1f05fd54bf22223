#!/usr/bin/env python3
"""A Swiftlet sidecar in Python 3 (standard library only), written from Protocol/SPEC.md.

It is both a module and a program:

* as a module (``import sidecar``) it exposes the protocol codec: the message classes
  (``Hello``, ``AuthnRequest``, ...), ``encode(message, request_id)``, ``FrameDecoder``,
  ``decode_frames``/``decode_frame``/``decode_message``/``decode``, the ``ProtocolError``
  family, and MQTT topic-filter matching (``topic_matches``, ``filter_covers``);
* as a program it connects to the broker's sidecar socket and serves authentication,
  authorization, a ``client.connected`` hook and the ``swiftlet-ctl pydemo`` command from
  a JSON users file::

      {"users": {"alice": {"password": "secret", "superuser": false,
                           "subscriptions": {"inbox/alice": 1}}},
       "acl": [{"allow": true, "username": "alice", "access": "pubsub", "topic": "a/#"},
               {"allow": false, "username": "$all", "access": "publish", "topic": "#"}]}

Usage: sidecar.py [--socket PATH] [--name NAME] [--users FILE] [--order N] [--reconnect]
                  [--gateway HOST:PORT]
With --gateway it is also a gateway (protocol version 2): MQTT clients accepted on HOST:PORT
are carried into the broker as gateway sessions (``GatewayRelay``).
The socket defaults to $SWIFTLET_SOCKET, the name to $SWIFTLET_SIDECAR_NAME and the users
file to $SWIFTLET_PLUGIN_CONFIG. SIGHUP reloads the users file and sends INVALIDATE (all).
A user's "subscriptions" ({filter: qos}) are returned with an allow when the broker speaks
protocol version 3 (AUTHN_REPLY_SUBS): the broker subscribes the client to them at CONNECT.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import struct
import sys
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

PROTOCOL_VERSION = 3          # the highest version spoken (2 = 1 + gateway sessions, 3 = 2 +
                              # subscriptions with an authentication answer)
MIN_PROTOCOL_VERSION = 1
GATEWAY_VERSION = 2           # the first version with GW_* frames (SPEC 7)
SUBSCRIPTIONS_VERSION = 3     # the first version with AUTHN_REPLY_SUBS (SPEC 8)
GATEWAY_BUFFER_LIMIT = 1 << 20  # the broker closes a session with more unconsumed bytes
HANDSHAKE_MAX_FRAME = 65_536  # the maximum value of `length` before the handshake
MIN_FRAME = 5                  # kind + request_id
HEADER_SIZE = 9                # length + kind + request_id


class Kind:
    HELLO = 0x01
    WELCOME = 0x02
    REGISTER = 0x03
    REGISTERED = 0x04
    PING = 0x05
    PONG = 0x06
    ERROR = 0x07
    GOODBYE = 0x08
    AUTHN_REQUEST = 0x10
    AUTHN_REPLY = 0x11
    AUTHZ_REQUEST = 0x12
    AUTHZ_REPLY = 0x13
    AUTHN_REPLY_SUBS = 0x14  # version 3 (SPEC 8)
    HOOK_EVENTS = 0x20
    HOOK_PUBLISH = 0x21
    HOOK_PUBLISH_REPLY = 0x22
    CTL_REQUEST = 0x30
    CTL_REPLY = 0x31
    INVALIDATE = 0x40
    # version 2 (SPEC 7)
    GW_OPEN = 0x50
    GW_OPENED = 0x51
    GW_DATA = 0x52
    GW_CLOSE = 0x53


# Decisions (3.3)
ALLOW, DENY, IGNORE, DECISION_ERROR = 0, 1, 2, 3
# AUTHZ access (3.3)
ACCESS_SUBSCRIBE, ACCESS_PUBLISH = 1, 2
# HOOK_PUBLISH_REPLY actions (3.5)
ACTION_CONTINUE, ACTION_REPLACE, ACTION_DROP = 0, 1, 2
# CTL_REPLY status
CTL_OK, CTL_USAGE, CTL_FAILED = 0, 1, 2
# INVALIDATE scope
SCOPE_ALL, SCOPE_USERNAME, SCOPE_CLIENT_ID = 0, 1, 2
# ERROR codes (3.6)
ERR_MALFORMED = 1
ERR_UNKNOWN_KIND = 2
ERR_UNKNOWN_REQUEST_ID = 3
ERR_UNSUPPORTED = 4
ERR_WRONG_STATE = 5
ERR_OVERLOADED = 6
ERR_INTERNAL = 7
ERR_VERSION = 8


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

class ProtocolError(Exception):
    """A frame or body that violates the protocol. `code` is the matching ERROR code."""
    code = ERR_MALFORMED


class FrameTooLarge(ProtocolError):
    def __init__(self, length: int, maximum: int):
        super().__init__(f"frame length {length} above the maximum {maximum}")
        self.length, self.maximum = length, maximum


class FrameTooSmall(ProtocolError):
    def __init__(self, length: int):
        super().__init__(f"frame length {length} below the minimum {MIN_FRAME}")
        self.length = length


class TruncatedFrame(ProtocolError):
    def __init__(self, have: int, need: int):
        super().__init__(f"truncated frame: {have} of {need} bytes")
        self.have, self.need = have, need


class UnknownKind(ProtocolError):
    code = ERR_UNKNOWN_KIND

    def __init__(self, kind: int, request_id: int = 0):
        super().__init__(f"unknown kind 0x{kind:02x}")
        self.kind, self.request_id = kind, request_id


class MalformedBody(ProtocolError):
    pass


class EncodeError(ValueError):
    """A value that cannot be encoded (out of range, too long)."""


# --------------------------------------------------------------------------------------
# Field writer / reader (2.1)
# --------------------------------------------------------------------------------------

class Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def _uint(self, fmt: str, bits: int, v: int, what: str) -> "Writer":
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << bits):
            raise EncodeError(f"{what} {v!r} is not a u{bits}")
        self.buf += struct.pack(fmt, v)
        return self

    def u8(self, v: int) -> "Writer":
        return self._uint(">B", 8, v, "value")

    def u16(self, v: int) -> "Writer":
        return self._uint(">H", 16, v, "value")

    def u32(self, v: int) -> "Writer":
        return self._uint(">I", 32, v, "value")

    def u64(self, v: int) -> "Writer":
        return self._uint(">Q", 64, v, "value")

    def bool(self, v: bool) -> "Writer":
        if not isinstance(v, bool):
            raise EncodeError(f"bool expected, got {v!r}")
        self.buf.append(1 if v else 0)
        return self

    def str(self, v: str) -> "Writer":
        if not isinstance(v, str):
            raise EncodeError(f"str expected, got {v!r}")
        b = v.encode("utf-8")
        if len(b) > 0xFFFF:
            raise EncodeError(f"str of {len(b)} bytes is longer than 65535")
        self.u16(len(b))
        self.buf += b
        return self

    def bytes(self, v: bytes) -> "Writer":
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise EncodeError(f"bytes expected, got {v!r}")
        b = bytes(v)
        if len(b) > 0xFFFFFFFF:
            raise EncodeError("bytes longer than 2^32-1")
        self.u32(len(b))
        self.buf += b
        return self

    def list(self, items, put) -> "Writer":
        items = list(items)
        if len(items) > 0xFFFF:
            raise EncodeError(f"list of {len(items)} items is longer than 65535")
        self.u16(len(items))
        for item in items:
            put(item)
        return self

    def map(self, entries) -> "Writer":
        def put(entry):
            k, v = entry
            self.str(k)
            self.bytes(v)
        return self.list(entries, put)

    def opt(self, v, put) -> "Writer":
        if v is None:
            self.buf.append(0)
        else:
            self.buf.append(1)
            put(v)
        return self


class Reader:
    def __init__(self, body: bytes) -> None:
        self.body = bytes(body)
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n > len(self.body) - self.pos:
            raise MalformedBody(
                f"field of {n} bytes at offset {self.pos} runs past the end of the "
                f"{len(self.body)}-byte body")
        b = self.body[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def bool(self) -> bool:
        v = self.u8()
        if v > 1:
            raise MalformedBody(f"bool value {v} at offset {self.pos - 1}")
        return v == 1

    def str(self) -> str:
        b = self.take(self.u16())
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedBody(f"str is not UTF-8: {e}") from None

    def bytes(self) -> bytes:
        return self.take(self.u32())

    def list(self, get) -> tuple:
        return tuple(get() for _ in range(self.u16()))

    def map(self) -> Tuple[Tuple[str, bytes], ...]:
        return self.list(lambda: (self.str(), self.bytes()))

    def opt(self, get):
        flag = self.u8()
        if flag == 0:
            return None
        if flag == 1:
            return get()
        raise MalformedBody(f"opt flag {flag} at offset {self.pos - 1}")

    def end(self) -> None:
        if self.pos != len(self.body):
            raise MalformedBody(f"{len(self.body) - self.pos} bytes left over after the body")


# --------------------------------------------------------------------------------------
# Messages (3)
# --------------------------------------------------------------------------------------
# List fields are tuples (so messages compare and hash); encoders accept any iterable.
# `map` values are tuples of (str key, bytes value) pairs, in wire order.

Map = Tuple[Tuple[str, bytes], ...]


def _tuple_map(m) -> Map:
    if isinstance(m, dict):
        m = m.items()
    return tuple((k, bytes(v)) for k, v in m)


@dataclass(frozen=True)
class Client:
    client_id: str
    username: Optional[str]
    peer_address: str
    peer_port: int
    protocol_level: int
    listener: str
    cert_common_name: Optional[str] = None
    cert_subject: Optional[str] = None

    def put(self, w: Writer) -> None:
        w.str(self.client_id).opt(self.username, w.str).str(self.peer_address)
        w.u16(self.peer_port).u8(self.protocol_level).str(self.listener)
        w.opt(self.cert_common_name, w.str).opt(self.cert_subject, w.str)

    @classmethod
    def get(cls, r: Reader) -> "Client":
        return cls(r.str(), r.opt(r.str), r.str(), r.u16(), r.u8(), r.str(),
                   r.opt(r.str), r.opt(r.str))


@dataclass(frozen=True)
class PublishMessage:
    """The `message` of 3.5."""
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: Map = ()

    def __post_init__(self):
        object.__setattr__(self, "user_properties", _tuple_map(self.user_properties))

    def put(self, w: Writer) -> None:
        w.str(self.topic).bytes(self.payload).u8(self.qos).bool(self.retain)
        w.map(self.user_properties)

    @classmethod
    def get(cls, r: Reader) -> "PublishMessage":
        return cls(r.str(), r.bytes(), r.u8(), r.bool(), r.map())


@dataclass(frozen=True)
class Event:
    """An `event` of 3.4: fields are (key, bytes value) pairs in wire order."""
    hook: str
    timestamp_ms: int
    fields: Map = ()

    def __post_init__(self):
        object.__setattr__(self, "fields", _tuple_map(self.fields))

    def field(self, key: str) -> Optional[bytes]:
        for k, v in self.fields:
            if k == key:
                return v
        return None

    def put(self, w: Writer) -> None:
        w.str(self.hook).u64(self.timestamp_ms).map(self.fields)

    @classmethod
    def get(cls, r: Reader) -> "Event":
        return cls(r.str(), r.u64(), r.map())


# Capabilities (3.1)

@dataclass(frozen=True)
class AuthnCapability:
    order: int
    TYPE = 1

    def put(self, w: Writer) -> None:
        w.u16(self.order)

    @classmethod
    def get(cls, r: Reader):
        return cls(r.u16())


@dataclass(frozen=True)
class AuthzCapability:
    order: int
    TYPE = 2

    def put(self, w: Writer) -> None:
        w.u16(self.order)

    @classmethod
    def get(cls, r: Reader):
        return cls(r.u16())


@dataclass(frozen=True)
class HookCapability:
    hook: str
    sync: bool = False
    budget_ms: int = 0
    TYPE = 3

    def put(self, w: Writer) -> None:
        w.str(self.hook).bool(self.sync).u32(self.budget_ms)

    @classmethod
    def get(cls, r: Reader):
        return cls(r.str(), r.bool(), r.u32())


@dataclass(frozen=True)
class CtlCapability:
    command: str
    usage: str
    TYPE = 4

    def put(self, w: Writer) -> None:
        w.str(self.command).str(self.usage)

    @classmethod
    def get(cls, r: Reader):
        return cls(r.str(), r.str())


@dataclass(frozen=True)
class GatewayCapability:
    protocol: str
    TYPE = 5

    def put(self, w: Writer) -> None:
        w.str(self.protocol)

    @classmethod
    def get(cls, r: Reader):
        return cls(r.str())


CAPABILITY_TYPES = {c.TYPE: c for c in (AuthnCapability, AuthzCapability, HookCapability,
                                         CtlCapability, GatewayCapability)}


def _put_capability(w: Writer, cap) -> None:
    w.u8(cap.TYPE)
    cap.put(w)


def _get_capability(r: Reader):
    t = r.u8()
    cls = CAPABILITY_TYPES.get(t)
    if cls is None:
        raise MalformedBody(f"unknown capability type {t}")
    return cls.get(r)


# Frame messages. Each has KIND, put(w) and get(r).

@dataclass(frozen=True)
class Hello:
    min_version: int
    max_version: int
    name: str
    sidecar_version: str
    max_frame: int
    KIND = Kind.HELLO

    def put(self, w):
        w.u16(self.min_version).u16(self.max_version).str(self.name)
        w.str(self.sidecar_version).u32(self.max_frame)

    @classmethod
    def get(cls, r):
        return cls(r.u16(), r.u16(), r.str(), r.str(), r.u32())


@dataclass(frozen=True)
class Welcome:
    version: int
    broker_version: str
    node: str
    max_frame: int
    KIND = Kind.WELCOME

    def put(self, w):
        w.u16(self.version).str(self.broker_version).str(self.node).u32(self.max_frame)

    @classmethod
    def get(cls, r):
        return cls(r.u16(), r.str(), r.str(), r.u32())


@dataclass(frozen=True)
class Register:
    capabilities: tuple
    KIND = Kind.REGISTER

    def __post_init__(self):
        object.__setattr__(self, "capabilities", tuple(self.capabilities))

    def put(self, w):
        w.list(self.capabilities, lambda c: _put_capability(w, c))

    @classmethod
    def get(cls, r):
        return cls(r.list(lambda: _get_capability(r)))


@dataclass(frozen=True)
class Registered:
    hooks: Tuple[str, ...]
    KIND = Kind.REGISTERED

    def __post_init__(self):
        object.__setattr__(self, "hooks", tuple(self.hooks))

    def put(self, w):
        w.list(self.hooks, w.str)

    @classmethod
    def get(cls, r):
        return cls(r.list(r.str))


@dataclass(frozen=True)
class Ping:
    KIND = Kind.PING

    def put(self, w):
        pass

    @classmethod
    def get(cls, r):
        return cls()


@dataclass(frozen=True)
class Pong:
    KIND = Kind.PONG

    def put(self, w):
        pass

    @classmethod
    def get(cls, r):
        return cls()


@dataclass(frozen=True)
class Error:
    code: int
    message: str
    KIND = Kind.ERROR

    def put(self, w):
        w.u16(self.code).str(self.message)

    @classmethod
    def get(cls, r):
        return cls(r.u16(), r.str())


@dataclass(frozen=True)
class Goodbye:
    reason: str
    KIND = Kind.GOODBYE

    def put(self, w):
        w.str(self.reason)

    @classmethod
    def get(cls, r):
        return cls(r.str())


@dataclass(frozen=True)
class AuthnRequest:
    client: Client
    password: Optional[bytes]
    KIND = Kind.AUTHN_REQUEST

    def put(self, w):
        self.client.put(w)
        w.opt(self.password, w.bytes)

    @classmethod
    def get(cls, r):
        return cls(Client.get(r), r.opt(r.bytes))


@dataclass(frozen=True)
class AuthnReply:
    decision: int
    superuser: bool
    ttl_ms: int
    reason: str
    KIND = Kind.AUTHN_REPLY

    def put(self, w):
        w.u8(self.decision).bool(self.superuser).u32(self.ttl_ms).str(self.reason)

    @classmethod
    def get(cls, r):
        return cls(r.u8(), r.bool(), r.u32(), r.str())


@dataclass(frozen=True)
class AuthnReplySubs:
    """Version 3 (SPEC 8): AUTHN_REPLY plus the subscriptions, (filter, qos) pairs, that the
    broker makes for the client after CONNACK when the decision is allow."""
    decision: int
    superuser: bool
    ttl_ms: int
    reason: str
    subscriptions: Tuple[Tuple[str, int], ...] = ()
    KIND = Kind.AUTHN_REPLY_SUBS

    def __post_init__(self):
        object.__setattr__(self, "subscriptions", tuple((f, q) for f, q in self.subscriptions))

    def put(self, w):
        w.u8(self.decision).bool(self.superuser).u32(self.ttl_ms).str(self.reason)
        w.u16(len(self.subscriptions))
        for flt, qos in self.subscriptions:
            if qos not in (0, 1, 2):
                raise EncodeError(f"subscription QoS {qos}")
            w.str(flt).u8(qos)

    @classmethod
    def get(cls, r):
        head = (r.u8(), r.bool(), r.u32(), r.str())
        subs = []
        for _ in range(r.u16()):
            flt, qos = r.str(), r.u8()
            if qos > 2:
                raise MalformedBody(f"subscription QoS {qos}")
            subs.append((flt, qos))
        return cls(*head, tuple(subs))


@dataclass(frozen=True)
class AuthzRequest:
    client: Client
    access: int
    topic: str
    qos: int
    retain: bool
    KIND = Kind.AUTHZ_REQUEST

    def put(self, w):
        self.client.put(w)
        w.u8(self.access).str(self.topic).u8(self.qos).bool(self.retain)

    @classmethod
    def get(cls, r):
        return cls(Client.get(r), r.u8(), r.str(), r.u8(), r.bool())


@dataclass(frozen=True)
class AuthzReply:
    decision: int
    ttl_ms: int
    reason: str
    KIND = Kind.AUTHZ_REPLY

    def put(self, w):
        w.u8(self.decision).u32(self.ttl_ms).str(self.reason)

    @classmethod
    def get(cls, r):
        return cls(r.u8(), r.u32(), r.str())


@dataclass(frozen=True)
class HookEvents:
    events: Tuple[Event, ...]
    KIND = Kind.HOOK_EVENTS

    def __post_init__(self):
        object.__setattr__(self, "events", tuple(self.events))

    def put(self, w):
        w.list(self.events, lambda e: e.put(w))

    @classmethod
    def get(cls, r):
        return cls(r.list(lambda: Event.get(r)))


@dataclass(frozen=True)
class HookPublish:
    client: Client
    message: PublishMessage
    KIND = Kind.HOOK_PUBLISH

    def put(self, w):
        self.client.put(w)
        self.message.put(w)

    @classmethod
    def get(cls, r):
        return cls(Client.get(r), PublishMessage.get(r))


@dataclass(frozen=True)
class HookPublishReply:
    """`message` is present exactly when `action` is 1 (replace)."""
    action: int
    message: Optional[PublishMessage] = None
    KIND = Kind.HOOK_PUBLISH_REPLY

    def put(self, w):
        if (self.action == ACTION_REPLACE) != (self.message is not None):
            raise EncodeError("HOOK_PUBLISH_REPLY carries a message exactly when action is 1")
        w.u8(self.action)
        if self.message is not None:
            self.message.put(w)

    @classmethod
    def get(cls, r):
        action = r.u8()
        return cls(action, PublishMessage.get(r) if action == ACTION_REPLACE else None)


@dataclass(frozen=True)
class CtlRequest:
    command: str
    args: Tuple[str, ...] = ()
    KIND = Kind.CTL_REQUEST

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(self.args))

    def put(self, w):
        w.str(self.command).list(self.args, w.str)

    @classmethod
    def get(cls, r):
        return cls(r.str(), r.list(r.str))


@dataclass(frozen=True)
class CtlReply:
    status: int
    text: str
    json: str = ""
    KIND = Kind.CTL_REPLY

    def put(self, w):
        w.u8(self.status).str(self.text).str(self.json)

    @classmethod
    def get(cls, r):
        return cls(r.u8(), r.str(), r.str())


@dataclass(frozen=True)
class Invalidate:
    scope: int
    value: str
    KIND = Kind.INVALIDATE

    def put(self, w):
        w.u8(self.scope).str(self.value)

    @classmethod
    def get(cls, r):
        return cls(r.u8(), r.str())


def _session(r: Reader) -> int:
    sid = r.u32()
    if sid == 0:
        raise MalformedBody("gateway session 0")
    return sid


@dataclass(frozen=True)
class GwOpen:
    """Version 2: asks for a gateway session (SPEC 7.3)."""
    session: int
    protocol: str
    peer_address: str
    peer_port: int
    listener: str
    KIND = Kind.GW_OPEN

    def put(self, w):
        w.u32(self.session).str(self.protocol).str(self.peer_address).u16(self.peer_port).str(self.listener)

    @classmethod
    def get(cls, r):
        return cls(_session(r), r.str(), r.str(), r.u16(), r.str())


@dataclass(frozen=True)
class GwOpened:
    session: int
    KIND = Kind.GW_OPENED

    def put(self, w):
        w.u32(self.session)

    @classmethod
    def get(cls, r):
        return cls(_session(r))


@dataclass(frozen=True)
class GwData:
    """Version 2: the next bytes of a session's MQTT stream (SPEC 7.4)."""
    session: int
    data: bytes
    KIND = Kind.GW_DATA

    def put(self, w):
        w.u32(self.session).bytes(self.data)

    @classmethod
    def get(cls, r):
        return cls(_session(r), r.bytes())


@dataclass(frozen=True)
class GwClose:
    session: int
    reason: str = ""
    KIND = Kind.GW_CLOSE

    def put(self, w):
        w.u32(self.session).str(self.reason)

    @classmethod
    def get(cls, r):
        return cls(_session(r), r.str())


MESSAGE_TYPES = {cls.KIND: cls for cls in (
    Hello, Welcome, Register, Registered, Ping, Pong, Error, Goodbye,
    AuthnRequest, AuthnReply, AuthzRequest, AuthzReply,
    HookEvents, HookPublish, HookPublishReply, CtlRequest, CtlReply, Invalidate,
    GwOpen, GwOpened, GwData, GwClose, AuthnReplySubs)}

REQUEST_KINDS = {Kind.HELLO, Kind.REGISTER, Kind.PING, Kind.AUTHN_REQUEST,
                 Kind.AUTHZ_REQUEST, Kind.HOOK_PUBLISH, Kind.CTL_REQUEST, Kind.GW_OPEN}
REPLY_KINDS = {Kind.WELCOME, Kind.REGISTERED, Kind.PONG, Kind.ERROR, Kind.AUTHN_REPLY,
               Kind.AUTHZ_REPLY, Kind.HOOK_PUBLISH_REPLY, Kind.CTL_REPLY, Kind.GW_OPENED,
               Kind.AUTHN_REPLY_SUBS}
NOTIFICATION_KINDS = {Kind.GOODBYE, Kind.HOOK_EVENTS, Kind.INVALIDATE, Kind.GW_DATA, Kind.GW_CLOSE}
GATEWAY_KINDS = {Kind.GW_OPEN, Kind.GW_OPENED, Kind.GW_DATA, Kind.GW_CLOSE}
# The version that introduced each kind; in an older connection the kind is unknown (SPEC 3).
KIND_VERSION = {**{k: GATEWAY_VERSION for k in GATEWAY_KINDS}, Kind.AUTHN_REPLY_SUBS: SUBSCRIPTIONS_VERSION}


# --------------------------------------------------------------------------------------
# Frames (2)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    kind: int
    request_id: int
    body: bytes = b""

    def encoded(self) -> bytes:
        return encode_frame(self.kind, self.request_id, self.body)


def encode_frame(kind: int, request_id: int, body: bytes = b"") -> bytes:
    if not 0 <= kind <= 0xFF:
        raise EncodeError(f"kind {kind} is not a u8")
    if not 0 <= request_id <= 0xFFFFFFFF:
        raise EncodeError(f"request_id {request_id} is not a u32")
    length = MIN_FRAME + len(body)
    if length > 0xFFFFFFFF:
        raise EncodeError("frame too long")
    return struct.pack(">IBI", length, kind, request_id) + bytes(body)


def encode_body(message) -> bytes:
    w = Writer()
    message.put(w)
    return bytes(w.buf)


def encode(message, request_id: int = 0) -> bytes:
    """The complete frame of `message` with `request_id` (0 for notifications)."""
    return encode_frame(message.KIND, request_id, encode_body(message))


def decode_message(kind: int, body: bytes, request_id: int = 0):
    """Parses a body of `kind`; raises UnknownKind or MalformedBody."""
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise UnknownKind(kind, request_id)
    r = Reader(body)
    msg = cls.get(r)
    r.end()
    return msg


class FrameDecoder:
    """Incremental framing. feed() returns the frames completed so far; the length is
    checked as soon as its 4 bytes are in, so an oversized frame is rejected before its
    body arrives. `max_frame` may be changed between frames (after WELCOME). After an
    error the decoder stays failed. finish() at end of stream raises TruncatedFrame when
    a partial frame is buffered."""

    def __init__(self, max_frame: int = HANDSHAKE_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.buf = bytearray()
        self.failed: Optional[ProtocolError] = None

    def _check_length(self) -> Optional[int]:
        if len(self.buf) < 4:
            return None
        length = struct.unpack_from(">I", self.buf, 0)[0]
        if length > self.max_frame:
            self.failed = FrameTooLarge(length, self.max_frame)
            raise self.failed
        if length < MIN_FRAME:
            self.failed = FrameTooSmall(length)
            raise self.failed
        return length

    def next_frame(self) -> Optional[Frame]:
        if self.failed:
            raise self.failed
        length = self._check_length()
        if length is None or len(self.buf) < 4 + length:
            return None
        kind = self.buf[4]
        request_id = struct.unpack_from(">I", self.buf, 5)[0]
        body = bytes(self.buf[HEADER_SIZE:4 + length])
        del self.buf[:4 + length]
        return Frame(kind, request_id, body)

    def frames(self) -> Iterator[Frame]:
        """Yields buffered frames one at a time (max_frame may change in between)."""
        while True:
            f = self.next_frame()
            if f is None:
                return
            yield f

    def feed(self, data: bytes) -> List[Frame]:
        if self.failed:
            raise self.failed
        self.buf += data
        return list(self.frames())

    def finish(self) -> None:
        if self.failed:
            raise self.failed
        self._check_length()
        if self.buf:
            need = 4 + struct.unpack_from(">I", self.buf, 0)[0] if len(self.buf) >= 4 else 4
            self.failed = TruncatedFrame(len(self.buf), need)
            raise self.failed


def decode_frames(data: bytes, max_frame: int = HANDSHAKE_MAX_FRAME) -> List[Frame]:
    """All frames of a complete byte stream; a partial frame at the end is TruncatedFrame."""
    d = FrameDecoder(max_frame)
    frames = d.feed(data)
    d.finish()
    return frames


def decode_frame(data: bytes, max_frame: int = HANDSHAKE_MAX_FRAME) -> Frame:
    frames = decode_frames(data, max_frame)
    if len(frames) != 1:
        raise ValueError(f"expected exactly one frame, found {len(frames)}")
    return frames[0]


def decode(data: bytes, max_frame: int = HANDSHAKE_MAX_FRAME):
    """One complete frame -> (request_id, message)."""
    f = decode_frame(data, max_frame)
    return f.request_id, decode_message(f.kind, f.body, f.request_id)


def parse_hex(text: str) -> bytes:
    """Reads the golden-file format: hex digits, whitespace ignored, lines whose first
    non-blank character is '#' are comments."""
    digits = "".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return bytes.fromhex("".join(digits.split()))


# --------------------------------------------------------------------------------------
# MQTT topic filters
# --------------------------------------------------------------------------------------

def valid_filter(flt: str) -> bool:
    if not flt:
        return False
    levels = flt.split("/")
    for i, lvl in enumerate(levels):
        if "#" in lvl and (lvl != "#" or i != len(levels) - 1):
            return False
        if "+" in lvl and lvl != "+":
            return False
    return True


def topic_matches(flt: str, topic: str) -> bool:
    """Does filter `flt` (with + and #) match topic name `topic`? Topics starting with '$'
    are not matched by a leading wildcard (MQTT 4.7.2)."""
    if not valid_filter(flt) or not topic:
        return False
    f_levels, t_levels = flt.split("/"), topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, f in enumerate(f_levels):
        if f == "#":
            return True  # matches the parent level too: "a/#" matches "a"
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def filter_covers(rule: str, sub: str) -> bool:
    """Is every topic matched by subscription filter `sub` also matched by `rule`?
    (Used for subscribe authorization: rule "a/#" covers "a/+/c", rule "a/+" does not
    cover "a/#".)"""
    if not valid_filter(rule) or not valid_filter(sub):
        return False
    r_levels, s_levels = rule.split("/"), sub.split("/")
    if s_levels[0] in ("+", "#") and not r_levels[0] in ("+", "#"):
        return False
    if sub.startswith("$") and r_levels[0] in ("+", "#"):
        return False
    for i, r in enumerate(r_levels):
        if r == "#":
            return True
        if i >= len(s_levels):
            return False
        s = s_levels[i]
        if s == "#":
            return False  # sub reaches arbitrarily deep, rule does not
        if r == "+":
            continue
        if s == "+" or s != r:
            return False
    return len(r_levels) == len(s_levels)


# --------------------------------------------------------------------------------------
# Policy: users and ACL from a JSON file
# --------------------------------------------------------------------------------------

class Policy:
    def __init__(self, data: Optional[dict] = None) -> None:
        data = data or {}
        self.users: Dict[str, dict] = dict(data.get("users", {}))
        self.acl: List[dict] = list(data.get("acl", []))

    @classmethod
    def load(cls, path: Optional[str]) -> "Policy":
        if not path:
            return cls()
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def authenticate(self, req: AuthnRequest, version: int = 1):
        """AUTHN_REPLY; with version 3 and a user with "subscriptions" ({filter: qos}) an
        allow is AUTHN_REPLY_SUBS carrying them (SPEC 8)."""
        name = req.client.username
        if name is None or name not in self.users:
            return AuthnReply(IGNORE, False, 0, "unknown user")
        user = self.users[name]
        expected = str(user.get("password", "")).encode("utf-8")
        if req.password is not None and hmac.compare_digest(req.password, expected):
            subs = [(str(f), int(q)) for f, q in dict(user.get("subscriptions", {})).items()]
            if subs and version >= SUBSCRIPTIONS_VERSION:
                return AuthnReplySubs(ALLOW, bool(user.get("superuser", False)), 0, "ok", tuple(subs))
            return AuthnReply(ALLOW, bool(user.get("superuser", False)), 0, "ok")
        return AuthnReply(DENY, False, 0, "bad password")

    def authorize(self, req: AuthzRequest) -> AuthzReply:
        for i, rule in enumerate(self.acl):
            who = rule.get("username", "$all")
            if who != "$all" and who != req.client.username:
                continue
            access = rule.get("access", "pubsub")
            if access == "publish" and req.access != ACCESS_PUBLISH:
                continue
            if access == "subscribe" and req.access != ACCESS_SUBSCRIBE:
                continue
            if access not in ("publish", "subscribe", "pubsub"):
                continue
            flt = rule.get("topic", "")
            hit = (filter_covers(flt, req.topic) if req.access == ACCESS_SUBSCRIBE
                   else topic_matches(flt, req.topic))
            if hit:
                allow = bool(rule.get("allow", False))
                return AuthzReply(ALLOW if allow else DENY, 0, f"acl rule {i}")
        return AuthzReply(IGNORE, 0, "")

    def ctl(self, req: CtlRequest) -> CtlReply:
        if req.command != "pydemo":
            return CtlReply(CTL_USAGE, f"unknown command {req.command!r}", "")
        if req.args not in ((), ("users",)):
            return CtlReply(CTL_USAGE, "usage: pydemo [users]", "")
        names = sorted(self.users)
        text = "users: " + ", ".join(names) if names else "users: (none)"
        return CtlReply(CTL_OK, text, json.dumps({"users": names}, separators=(",", ":")))


# --------------------------------------------------------------------------------------
# The sidecar
# --------------------------------------------------------------------------------------

log = logging.getLogger("pysidecar")
SIDECAR_VERSION = "0.1.0"


class Closed(Exception):
    pass


class BrokerError(Exception):
    def __init__(self, err: Error):
        super().__init__(f"broker answered ERROR {err.code}: {err.message}")
        self.error = err


class Connection:
    """One connection to the broker: framing, request ids, dispatch."""

    def __init__(self, reader, writer, sidecar: "Sidecar") -> None:
        self.reader, self.writer, self.sidecar = reader, writer, sidecar
        self.decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        self.send_max = HANDSHAKE_MAX_FRAME
        self.outstanding: Dict[int, asyncio.Future] = {}
        self.next_id = 1
        self.hello_id: Optional[int] = None
        self.closed = False
        self.close_reason = ""
        self.goodbye_received = False
        self.version = 1          # chosen in WELCOME
        self.registered = False
        # Gateway sessions (version 2): session id -> the relay client's StreamWriter. An id
        # stays taken until the broker's GW_CLOSE for it (SPEC 7.5).
        self.gw_sessions: Dict[int, asyncio.StreamWriter] = {}
        self.next_session = 0

    # -- sending
    def send(self, message, request_id: int = 0) -> None:
        data = encode(message, request_id)
        if len(data) - 4 > self.send_max:
            raise EncodeError(f"frame of {len(data) - 4} bytes above the maximum {self.send_max}")
        if not self.closed:
            self.writer.write(data)

    def reply(self, request_id: int, message) -> None:
        try:
            self.send(message, request_id)
        except EncodeError as e:
            log.error("cannot send reply to %d: %s", request_id, e)
            self.send(Error(ERR_INTERNAL, "reply too large"), request_id)

    def allocate_session(self) -> int:
        while True:
            self.next_session = self.next_session % 0xFFFFFFFF + 1
            if self.next_session not in self.gw_sessions:
                return self.next_session

    def allocate_id(self) -> int:
        while True:
            rid = self.next_id
            self.next_id = self.next_id % 0xFFFFFFFF + 1  # 1..2^32-1, never 0
            if rid not in self.outstanding:
                return rid

    def request(self, message) -> "asyncio.Future":
        """Sends a request; the future gets the reply message (or BrokerError/Closed)."""
        rid = self.allocate_id()
        fut = asyncio.get_running_loop().create_future()
        # Mark an exception as retrieved even when nobody awaits the future (pings).
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.outstanding[rid] = fut
        if isinstance(message, Hello):
            self.hello_id = rid
        try:
            self.send(message, rid)
        except Exception:
            del self.outstanding[rid]
            raise
        return fut

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    def close(self, reason: str, goodbye: bool = False) -> None:
        if self.closed:
            return
        if goodbye:
            try:
                self.send(Goodbye(reason))
            except Exception:
                pass
        self.closed = True
        self.close_reason = reason
        for fut in self.outstanding.values():
            if not fut.done():
                fut.set_exception(Closed(reason))
        self.outstanding.clear()
        # Sessions never survive their connection: the relay's clients are dropped too.
        for w in self.gw_sessions.values():
            w.close()
        self.gw_sessions.clear()
        try:
            self.writer.close()
        except Exception:
            pass

    # -- receiving
    async def read_loop(self) -> None:
        try:
            while not self.closed:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, OSError) as e:
                    self.close(f"read error: {e}")
                    return
                if not data:
                    try:
                        self.decoder.finish()
                    except ProtocolError as e:
                        self.close(f"end of stream: {e}")
                        return
                    self.close("end of stream")
                    return
                self.decoder.buf += data
                while not self.closed:
                    frame = self.decoder.next_frame()
                    if frame is None:
                        break
                    self.dispatch(frame)
                await self.drain()
        except ProtocolError as e:  # framing: the stream cannot be resynchronised
            log.error("protocol violation by the broker: %s", e)
            self.close(f"protocol violation: {e}", goodbye=True)

    def dispatch(self, frame: Frame) -> None:
        kind, rid = frame.kind, frame.request_id
        try:
            if KIND_VERSION.get(kind, 1) > self.version:
                raise UnknownKind(kind, rid)  # not part of the negotiated version
            msg = decode_message(kind, frame.body, rid)
        except UnknownKind as e:
            log.warning("unknown kind 0x%02x (request id %d)", kind, rid)
            if rid != 0:
                self.send(Error(ERR_UNKNOWN_KIND, str(e)), rid)
            return
        except MalformedBody as e:
            log.error("malformed %s body from the broker: %s", MESSAGE_TYPES[kind].__name__, e)
            if rid != 0 and kind in REQUEST_KINDS:
                self.send(Error(ERR_MALFORMED, str(e)), rid)
            self.close(f"malformed body: {e}", goodbye=True)
            return

        if kind in REPLY_KINDS:
            fut = self.outstanding.pop(rid, None)
            if fut is None:
                log.error("reply %s with id %d matches no outstanding request", type(msg).__name__, rid)
                self.close(f"unknown reply id {rid}", goodbye=True)
                return
            if isinstance(msg, Welcome) and rid == self.hello_id:
                # The negotiated maximum applies to the very next frame.
                self.decoder.max_frame = min(self.sidecar.max_frame, msg.max_frame)
                self.send_max = self.decoder.max_frame
            if fut.done():  # the requester gave up (timeout); the reply is still legitimate
                return
            if isinstance(msg, Error):
                fut.set_exception(BrokerError(msg))
            else:
                fut.set_result(msg)
            return

        if isinstance(msg, Goodbye):
            log.info("broker said goodbye: %s", msg.reason or "(no reason)")
            self.goodbye_received = True
            self.close(f"goodbye: {msg.reason}")
            return
        if isinstance(msg, GwData):
            w = self.gw_sessions.get(msg.session)
            if w is not None and not w.is_closing():
                w.write(msg.data)
            return
        if isinstance(msg, GwClose):
            w = self.gw_sessions.pop(msg.session, None)  # the id is free again
            if w is not None:
                log.info("gateway session %d closed by the broker: %s", msg.session, msg.reason)
                w.close()
            return
        if isinstance(msg, HookEvents):
            for ev in msg.events:
                self.sidecar.log_event(ev)
            return
        if isinstance(msg, Ping):
            self.reply(rid, Pong())
            return
        handler = {
            AuthnRequest: lambda m: self.sidecar.policy_authn(m, self.version),
            AuthzRequest: self.sidecar.policy_authz,
            CtlRequest: self.sidecar.policy_ctl,
            HookPublish: lambda m: HookPublishReply(ACTION_CONTINUE),
        }.get(type(msg))
        if handler is not None:
            try:
                answer = handler(msg)
            except Exception as e:  # a bug here must not kill the connection
                log.exception("handler failed")
                answer = Error(ERR_INTERNAL, f"internal error: {e}")
            self.reply(rid, answer)
            return
        # A known kind that a broker does not send (HELLO, REGISTER, INVALIDATE, ...).
        log.warning("unexpected %s from the broker", type(msg).__name__)
        if rid != 0 and kind in REQUEST_KINDS:
            self.send(Error(ERR_UNSUPPORTED, f"{type(msg).__name__} is not served by a sidecar"), rid)


class Sidecar:
    def __init__(self, socket_path: str, name: str, users_path: Optional[str], order: int = 100,
                 reconnect: bool = False, max_frame: int = 1 << 20, ping_interval: float = 10.0,
                 ping_timeout: float = 30.0) -> None:
        self.socket_path, self.name, self.users_path = socket_path, name, users_path
        self.order, self.reconnect, self.max_frame = order, reconnect, max_frame
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.policy = Policy.load(users_path)
        self.conn: Optional[Connection] = None
        self.relay: Optional["GatewayRelay"] = None
        self.stopping = False
        self.stop_event: Optional[asyncio.Event] = None

    # -- policy hooks (kept as methods so a reload swaps the policy atomically)
    def policy_authn(self, req: AuthnRequest, version: int = 1):
        r = self.policy.authenticate(req, version)
        log.info("authn %s (%s): %s", req.client.username, req.client.client_id,
                 ["allow", "deny", "ignore", "error"][r.decision])
        return r

    def policy_authz(self, req: AuthzRequest) -> AuthzReply:
        return self.policy.authorize(req)

    def policy_ctl(self, req: CtlRequest) -> CtlReply:
        return self.policy.ctl(req)

    def log_event(self, ev: Event) -> None:
        parts = []
        for k, v in ev.fields:
            try:
                text = v.decode("utf-8")
                parts.append(f"{k}={text!r}")
            except UnicodeDecodeError:
                parts.append(f"{k}=0x{v.hex()}")
        print(f"[{self.name}] event {ev.hook} at {ev.timestamp_ms}: {' '.join(parts)}",
              file=sys.stderr, flush=True)

    def capabilities(self, version: int = 1) -> list:
        caps = [AuthnCapability(self.order), AuthzCapability(self.order),
                HookCapability("client.connected", False, 0),
                CtlCapability("pydemo", "pydemo [users]: lists the users of the python sidecar")]
        if self.relay and version >= GATEWAY_VERSION:
            caps.append(GatewayCapability(GatewayRelay.PROTOCOL))
        return caps

    def reload(self) -> None:
        try:
            self.policy = Policy.load(self.users_path)
        except (OSError, ValueError) as e:
            log.error("reload failed, keeping the old users: %s", e)
            return
        log.info("users reloaded")
        if self.conn and not self.conn.closed:
            self.conn.send(Invalidate(SCOPE_ALL, ""))

    def stop(self) -> None:
        self.stopping = True
        if self.conn:
            self.conn.close("shutdown", goodbye=True)
        if self.stop_event:
            self.stop_event.set()

    async def session(self) -> Tuple[bool, str]:
        """One connection. Returns (handshake_done, why it ended)."""
        reader, writer = await asyncio.open_unix_connection(self.socket_path)
        conn = self.conn = Connection(reader, writer, self)
        read_task = asyncio.create_task(conn.read_loop())
        handshake_done = False
        try:
            welcome = await asyncio.wait_for(conn.request(
                Hello(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, self.name, SIDECAR_VERSION,
                      self.max_frame)), 10)
            if not MIN_PROTOCOL_VERSION <= welcome.version <= PROTOCOL_VERSION:
                conn.close(f"broker chose version {welcome.version}", goodbye=True)
                return False, conn.close_reason
            log.info("welcome: broker %s on %s, version %d, max frame %d",
                     welcome.broker_version, welcome.node, welcome.version,
                     conn.decoder.max_frame)
            conn.version = welcome.version
            if self.relay and welcome.version < GATEWAY_VERSION:
                log.error("the broker speaks protocol version %d: no gateway sessions", welcome.version)
            registered = await asyncio.wait_for(conn.request(Register(self.capabilities(welcome.version))), 10)
            conn.registered = True
            log.info("registered; hooks accepted: %s", ", ".join(registered.hooks) or "(none)")
            handshake_done = True
            await conn.drain()
            await self.keepalive(conn, read_task)
        except BrokerError as e:
            log.error("%s", e)
            conn.close(str(e))
        except Closed as e:
            conn.close(str(e))
        except asyncio.TimeoutError:
            conn.close("handshake timeout", goodbye=True)
        finally:
            await conn.drain()
            conn.close(conn.close_reason or "done")
            read_task.cancel()
            try:
                await read_task
            except (asyncio.CancelledError, Exception):
                pass
        return handshake_done, conn.close_reason

    async def keepalive(self, conn: Connection, read_task: "asyncio.Task") -> None:
        """Pings the broker every ping_interval until the connection ends."""
        pending: Optional[asyncio.Future] = None
        sent_at = 0.0
        loop = asyncio.get_running_loop()
        while not conn.closed:
            done, _ = await asyncio.wait({read_task}, timeout=self.ping_interval)
            if done or conn.closed:
                return
            now = loop.time()
            if pending is not None and not pending.done():
                if now - sent_at >= self.ping_timeout:
                    conn.close("broker did not answer PING", goodbye=True)
                    return
                continue
            if pending is not None and pending.done() and not pending.cancelled():
                pending.exception()  # consume (Closed/BrokerError are harmless here)
            pending, sent_at = conn.request(Ping()), now
            await conn.drain()

    async def run(self) -> int:
        self.stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig, fn in ((signal.SIGTERM, self.stop), (signal.SIGINT, self.stop),
                        (signal.SIGHUP, self.reload)):
            try:
                loop.add_signal_handler(sig, fn)
            except (NotImplementedError, RuntimeError):
                pass
        if self.relay:
            await self.relay.start()
        backoff = 0.2
        while not self.stopping:
            try:
                handshake_done, why = await self.session()
            except (ConnectionError, OSError) as e:
                handshake_done, why = False, f"cannot connect to {self.socket_path}: {e}"
                if not self.reconnect:
                    log.error("%s", why)
                    return 1
            if self.stopping:
                break
            log.info("connection ended: %s", why)
            if not self.reconnect:
                # Clean: the broker said GOODBYE or closed after a complete handshake.
                clean = (handshake_done and self.conn is not None and
                         (self.conn.goodbye_received or why == "end of stream"))
                return 0 if clean else 1
            if handshake_done:
                backoff = 0.2
            log.info("reconnecting in %.1f s", backoff)
            try:
                await asyncio.wait_for(self.stop_event.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, 5.0)
        return 0


class GatewayRelay:
    """Gateway demo mode (--gateway HOST:PORT, protocol version 2, SPEC 7): every TCP client
    accepted on HOST:PORT is carried into the broker as a gateway session of protocol
    "mqtt-relay". Its bytes are MQTT already, so the translation a real gateway (MQTT-SN,
    STOMP) does between reading its client and GW_DATA is the identity here. The broker shows
    the client with its own address and the listener "mqtt-relay:tcp:HOST:PORT"."""

    PROTOCOL = "mqtt-relay"

    def __init__(self, sidecar: "Sidecar", host: str, port: int) -> None:
        self.sidecar, self.host, self.port = sidecar, host, port
        self.server = None

    @property
    def listener(self) -> str:
        return f"{self.PROTOCOL}:tcp:{self.host}:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.client, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("gateway relay listening on %s", self.listener)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.sidecar.conn
        if conn is None or conn.closed or not conn.registered or conn.version < GATEWAY_VERSION:
            writer.close()  # no broker to carry the client to: it reconnects later
            return
        sid = conn.allocate_session()
        peer = writer.get_extra_info("peername") or ("", 0)
        conn.gw_sessions[sid] = writer
        try:
            # GW_DATA may follow GW_OPEN at once (SPEC 7.3); waiting keeps the demo simple.
            await conn.request(GwOpen(sid, self.PROTOCOL, str(peer[0]), int(peer[1]), self.listener))
        except (BrokerError, Closed) as e:
            log.warning("gateway session refused: %s", e)
            conn.gw_sessions.pop(sid, None)  # a refused id is free at once
            writer.close()
            return
        log.info("gateway session %d for %s:%s", sid, peer[0], peer[1])
        try:
            while True:
                data = await reader.read(65536)
                if not data or conn.closed or conn.gw_sessions.get(sid) is not writer:
                    break
                conn.send(GwData(sid, data))
                await conn.drain()
        except (ConnectionError, OSError):
            pass
        if not conn.closed and conn.gw_sessions.get(sid) is writer:
            # The broker confirms with its own GW_CLOSE, which frees the id.
            conn.send(GwClose(sid, "client closed"))
            await conn.drain()
        writer.close()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Swiftlet sidecar example (auth, ACL, hook, ctl)")
    p.add_argument("--socket", default=os.environ.get("SWIFTLET_SOCKET"),
                   help="broker sidecar socket (default $SWIFTLET_SOCKET)")
    p.add_argument("--name", default=os.environ.get("SWIFTLET_SIDECAR_NAME", "pydemo"),
                   help="sidecar name (default $SWIFTLET_SIDECAR_NAME or 'pydemo')")
    p.add_argument("--users", default=os.environ.get("SWIFTLET_PLUGIN_CONFIG"),
                   help="JSON users/ACL file (default $SWIFTLET_PLUGIN_CONFIG)")
    p.add_argument("--order", type=int, default=100, help="authn/authz order (default 100)")
    p.add_argument("--reconnect", action="store_true",
                   help="reconnect with backoff (0.2 s doubling to 5 s) when the broker goes away")
    p.add_argument("--max-frame", type=int, default=1 << 20, help="largest frame accepted")
    p.add_argument("--gateway", metavar="HOST:PORT",
                   help="demo gateway (protocol version 2): carry MQTT clients accepted on HOST:PORT "
                        "into the broker as gateway sessions")
    p.add_argument("--ping-interval", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    if not args.socket:
        p.error("no socket: set SWIFTLET_SOCKET or give --socket")
    if not 0 <= args.order <= 0xFFFF:
        p.error("--order must be 0..65535")
    try:
        sc = Sidecar(args.socket, args.name, args.users, args.order, args.reconnect,
                     args.max_frame, args.ping_interval, max(3 * args.ping_interval, 1.0))
    except (OSError, ValueError) as e:
        print(f"cannot read the users file: {e}", file=sys.stderr)
        return 2
    if args.gateway:
        host, _, port = args.gateway.rpartition(":")
        if not host or not port.isdigit():
            p.error("--gateway takes HOST:PORT")
        sc.relay = GatewayRelay(sc, host, int(port))
    return asyncio.run(sc.run())


if __name__ == "__main__":
    sys.exit(main())
