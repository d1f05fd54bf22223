"""The broker as production runs it: as an unprivileged user (systemd's User=swiftlet, the
container's USER swiftlet). The test suite otherwise runs as root, which hid a socket option
set at the wrong level (SO_DEBUG instead of TCP_NODELAY: refused without CAP_NET_ADMIN, so
every TCP connection was closed as it was accepted)."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from brokers import free_port, swiftlet_path, with_dashboard_off
from mqttraw import RawClient


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root (as non-root every test covers it)")
def test_broker_serves_mqtt_as_an_unprivileged_user():
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed")
    d = tempfile.mkdtemp(prefix="swiftlet-nobody-")
    os.chmod(d, 0o777)
    port = free_port()
    cfg = os.path.join(d, "swiftlet.toml")
    with open(cfg, "w") as f:
        f.write(with_dashboard_off(f'[[listeners]]\ntype = "tcp"\nbind = "127.0.0.1:{port}"\n'
                                   '[persistence]\nmode = "none"\n'))
    os.chmod(cfg, 0o644)
    log = open(os.path.join(d, "broker.log"), "wb")
    proc = subprocess.Popen([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                             str(swiftlet_path()), "--config", cfg], cwd=d, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, open(os.path.join(d, "broker.log")).read()
            try:
                c = RawClient("127.0.0.1", port, version=4)
                break
            except OSError:
                assert time.monotonic() < deadline, "the broker did not listen"
                time.sleep(0.1)
        assert c.connect("unprivileged").rc == 0
        c.ping()
        c.close()
        c5 = RawClient("127.0.0.1", port, version=5)
        assert c5.connect("unprivileged-5").rc == 0
        c5.close()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)
