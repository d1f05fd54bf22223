"""Starting and stopping swiftlet broker processes for the system tests.

Every broker runs as a separate process on a free loopback port, with its own
TOML config file and log file in a pytest temporary directory.

Environment:
  SWIFTLET_BIN              path of the broker binary
                            (default: <repo>/.build/debug/swiftlet)
  SWIFTLET_TEST_LOG_LEVEL   [log] level written into the test configs (default: info)
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_NODE = "swiftlet@127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

ALL_BROKERS = []  # every broker started in this session (for failure reports)


def swiftlet_path():
    return Path(os.environ.get("SWIFTLET_BIN", REPO / ".build" / "debug" / "swiftlet"))


_handed_out = set()


def free_port():
    """A free TCP port on 127.0.0.1, never the same one twice in a test session: the kernel may
    give back a port it has just given out, and two listeners of one broker then collide (a CI
    run lost a TLS module's broker that way, "Address already in use" on its fifth port)."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port left that was not handed out already")


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def render_config(port, node=None, log_level=None, mqtt=None, sys=None, listener=None, extra=""):
    lines = []
    if node is not None:
        lines += ["[node]", f"name = {toml_value(node)}", ""]
    lines += ["[log]", f"level = {toml_value(log_level or os.environ.get('SWIFTLET_TEST_LOG_LEVEL', 'info'))}", ""]
    lines += ["[[listeners]]", 'type = "tcp"', f'bind = "127.0.0.1:{port}"']
    for k, v in (listener or {}).items():
        lines.append(f"{k} = {toml_value(v)}")
    lines.append("")
    if mqtt:
        lines.append("[mqtt]")
        lines += [f"{k} = {toml_value(v)}" for k, v in mqtt.items()]
        lines.append("")
    if sys:
        lines.append("[sys]")
        lines += [f"{k} = {toml_value(v)}" for k, v in sys.items()]
        lines.append("")
    return with_dashboard_off("\n".join(lines) + "\n" + extra)


def with_dashboard_off(text):
    """The dashboard is on by default (port 18083); a test broker leaves it off unless the
    test configures it, so brokers started side by side do not contend for one port."""
    return text if "[dashboard]" in text else text + "\n[dashboard]\nenabled = false\n"


class Broker:
    """One running swiftlet process."""

    def __init__(self, workdir, port, config_text=None, node_name_arg=None, args=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port
        self.node_name_arg = node_name_arg
        self.node = node_name_arg or DEFAULT_NODE
        self.config_path = self.workdir / "swiftlet.toml"
        self.log_path = self.workdir / "broker.log"
        self.config_text = config_text
        self.args = args
        self.proc = None
        self.returncode = None

    # -- lifecycle -------------------------------------------------------
    def start(self, wait=True):
        binary = swiftlet_path()
        if not binary.exists():
            pytest.fail(f"swiftlet binary not found at {binary} (set SWIFTLET_BIN)")
        if self.args is not None:
            cmd = [str(binary)] + list(self.args)
        else:
            self.config_path.write_text(self.config_text)
            cmd = [str(binary), "--config", str(self.config_path)]
            if self.node_name_arg:
                cmd += ["--node-name", self.node_name_arg]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        ALL_BROKERS.append(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"swiftlet exited with {self.proc.returncode} during startup:\n{self.tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"swiftlet did not accept connections on {self.host}:{self.port} within {timeout}s:\n"
                    f"{self.tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), f"broker died (exit {self.proc.returncode}):\n{self.tail()}"
        with socket.create_connection((self.host, self.port), timeout=5):
            pass

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM):
        """Graceful stop; returns the exit code (kill -9 after STOP_TIMEOUT)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.returncode = self.proc.returncode
        if not self._log.closed:
            self._log.close()
        return self.returncode

    # -- introspection ---------------------------------------------------
    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_kb(self):
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def sys_topic(self, suffix):
        return f"$SYS/brokers/{self.node}/{suffix}"

    def __repr__(self):
        return f"<Broker {self.host}:{self.port} node={self.node} dir={self.workdir}>"


class BrokerFactory:
    def __init__(self, base_dir):
        self.base_dir = Path(base_dir)
        self.brokers = []

    def __call__(self, mqtt=None, sys=None, node=None, node_name=None, log_level=None,
                 listener=None, extra="", config_text=None, args=None, port=None, wait=True):
        """Start a broker.

        mqtt/sys/listener: dicts of keys for the [mqtt]/[sys]/[[listeners]] tables.
        node: [node] name in the config; node_name: --node-name argument.
        config_text: a complete config (use {port} as placeholder) instead of the generated one.
        args: a complete argument list (no --config is added).
        """
        port = port or free_port()
        if config_text is not None:
            text = with_dashboard_off(config_text.replace("{port}", str(port)))
        else:
            text = render_config(port, node=node, log_level=log_level, mqtt=mqtt, sys=sys,
                                 listener=listener, extra=extra)
        b = Broker(self.base_dir / f"broker-{len(self.brokers)}-{port}", port, text,
                   node_name_arg=node_name, args=args)
        if node is not None and node_name is None:
            b.node = node
        self.brokers.append(b)
        return b.start(wait=wait)

    def stop_all(self):
        for b in self.brokers:
            b.stop()
