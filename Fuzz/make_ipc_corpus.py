#!/usr/bin/env python3
"""Writes Fuzz/corpus/ipc/: every golden and hostile frame of Protocol/golden as raw bytes
(the .hex files with comments and whitespace removed), plus a handshake-shaped stream of
several frames. Run again when a golden frame is added."""
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
golden = root / "Protocol" / "golden"
out = root / "Fuzz" / "corpus" / "ipc"
out.mkdir(parents=True, exist_ok=True)


def frame_bytes(path):
    hex_digits = "".join(line.split("#", 1)[0] if not line.strip().startswith("#") else ""
                         for line in path.read_text().splitlines())
    return bytes.fromhex("".join(hex_digits.split()))


frames = {}
for path in sorted(golden.glob("*.hex")):
    frames[path.stem] = frame_bytes(path)
    (out / (path.stem + ".bin")).write_bytes(frames[path.stem])
for path in sorted((golden / "hostile").glob("*.hex")):
    (out / ("hostile_" + path.stem + ".bin")).write_bytes(frame_bytes(path))
# A sidecar's side of a session: HELLO, REGISTER, PONG, AUTHN_REPLY, GOODBYE in one stream.
stream = b"".join(frames[n] for n in ["hello", "register", "pong", "authn_reply", "authn_reply_subs", "goodbye"])
(out / "stream_session.bin").write_bytes(stream)
