"""MQTT.js, the usual browser MQTT client, bundled for the browser at test time from Debian's
packages: node-mqtt has no browser build, so esbuild makes one (an IIFE defining `mqtt`, as
MQTT.js's own dist/mqtt.js does) with Debian's polyfills for the Node built-ins it uses.
Nothing generated or third-party is committed; the bundle goes to a temporary folder.

MQTT.js picks its browser transport (the native WebSocket) when `process.title` is
"browser", which is what the `process` polyfill says. Its `ws` import is only used in Node, but
is resolved anyway: Debian's ws has an `exports` map that hides its `browser` entry from
esbuild, so the alias below points at that entry (a function that throws if ever called)."""

import os
import shutil
import subprocess
from pathlib import Path

NODE_PATH = Path("/usr/share/nodejs")
# Debian package -> a command or a file it installs that the tests need.
NEEDED = {
    "esbuild": "esbuild",
    "libnss3-tools": "certutil",
    "node-mqtt": NODE_PATH / "mqtt/lib/connect/ws.js",
    "node-buffer": NODE_PATH / "buffer/index.js",
    "node-events": NODE_PATH / "events/package.json",
    "node-process": NODE_PATH / "process/browser.js",
    "node-url": NODE_PATH / "url/url.js",
}

ENTRY = "module.exports = require('mqtt')\n"
# Globals that Node has and browsers do not; esbuild replaces each free use with these.
SHIM = ("export { Buffer } from 'buffer'\n"
        "import process from 'process/browser.js'\n"
        "export { process }\n")


def missing():
    """The packages of NEEDED that are not installed."""
    return [pkg for pkg, f in NEEDED.items() if (shutil.which(f) is None if isinstance(f, str) else not f.exists())]


def bundle(out_dir: Path) -> Path:
    """Builds mqtt.js (global `mqtt`) in out_dir and returns its path."""
    out_dir = Path(out_dir)
    (out_dir / "entry.js").write_text(ENTRY)
    (out_dir / "shim.js").write_text(SHIM)
    out = out_dir / "mqtt.js"
    subprocess.run(["esbuild", "entry.js", "--bundle", "--format=iife", "--global-name=mqtt", "--platform=browser",
                    "--inject:shim.js", "--define:global=globalThis",
                    f"--alias:ws={NODE_PATH / 'ws/browser.js'}", f"--outfile={out}", "--log-level=warning"],
                   cwd=out_dir, env={**os.environ, "NODE_PATH": str(NODE_PATH)}, check=True, capture_output=True)
    return out


def trust_ca(home: Path, ca_pem: str) -> Path:
    """A HOME whose NSS database (the one Chromium reads on Linux) trusts ca_pem to identify
    servers, as a user who imported the test CA would have. Needs certutil (libnss3-tools)."""
    db = Path(home) / ".pki/nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "swiftlet-test-ca", "-t", "C,,", "-i", ca_pem],
                   check=True, capture_output=True)
    return Path(home)
