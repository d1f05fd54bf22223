"""`swiftlet-ctl trace client ID | topic FILTER --to FILE --for SECONDS` (issue 18 point 1):
packet headers of one client (payloads only with --payload), or the PUBLISH packets of one
topic filter, written to a file for a while; other clients are not traced."""

import time

from clients import Client, wait_for
from ctl import ctl_config, ctl_ok, run_ctl


def start(broker_factory, tmp_path):
    return broker_factory(extra=ctl_config(tmp_path / "ctl.sock")), tmp_path / "ctl.sock"


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_trace_client_headers_both_ways_for_a_while(broker_factory, tmp_path):
    b, ctl = start(broker_factory, tmp_path)
    traced = Client(b, version=5, client_id="traced-1")
    other = Client(b, version=5, client_id="other-1")
    out = tmp_path / "trace.log"
    assert "tracing client traced-1" in ctl_ok(ctl, "trace", "client", "traced-1", "--to", str(out), "--for", "2")
    traced.subscribe("tr/#", qos=1)
    traced.publish("tr/a", b"secret-payload", qos=1)
    assert traced.get().payload == b"secret-payload"
    other.publish("tr/b", b"from-other", qos=0)
    traced.get()
    wait_for(lambda: any(" out PUBLISH topic=tr/b" in l for l in lines(out)), msg="delivery traced")
    got = lines(out)
    assert any(l.split()[1:4] == ["traced-1", "in", "SUBSCRIBE"] for l in got), got
    assert any(" in PUBLISH topic=tr/a qos=1" in l and " id=" in l for l in got), got
    assert any(" out PUBACK" in l for l in got) and any(" out SUBACK" in l for l in got), got
    assert all(l.split()[1] == "traced-1" for l in got), "only the traced client"
    assert not any("secret-payload" in l for l in got), "no payload without --payload"
    # After --for the tap is gone: nothing more is written.
    time.sleep(2.5)
    n = len(lines(out))
    traced.publish("tr/c", b"after", qos=1)
    traced.get()
    time.sleep(0.5)
    assert len(lines(out)) == n
    traced.disconnect()
    other.disconnect()


def test_trace_topic_with_payloads(broker_factory, tmp_path):
    b, ctl = start(broker_factory, tmp_path)
    a = Client(b, version=4, client_id="pub-a")
    s = Client(b, version=5, client_id="sub-s")
    s.subscribe("sensors/#", qos=0)
    out = tmp_path / "topic.log"
    j = ctl_ok(ctl, "trace", "topic", "sensors/+/temp", "--to", str(out), "--for", "3", "--payload", json_out=True)
    assert j["traced_connections"] == 2
    a.publish("sensors/k/temp", b"21.5", qos=0)
    a.publish("sensors/k/humidity", b"40", qos=0)
    s.get()
    s.get()
    wait_for(lambda: len(lines(out)) >= 2, msg="publish traced in and out")
    got = lines(out)
    assert all("topic=sensors/k/temp" in l for l in got), got
    assert any("pub-a in PUBLISH" in l and 'payload="21.5"' in l for l in got), got
    assert any("sub-s out PUBLISH" in l for l in got), got
    a.disconnect()
    s.disconnect()


def test_trace_errors(broker_factory, tmp_path):
    b, ctl = start(broker_factory, tmp_path)
    r = run_ctl(ctl, "trace", "client", "nobody-here", "--to", str(tmp_path / "x"), "--for", "1")
    assert r.rc == 2 and "no connected client" in r.err, r
    for args in (["trace"], ["trace", "client", "x"], ["trace", "client", "x", "--to", "/tmp/y"], ["trace", "bogus", "x"]):
        r = run_ctl(ctl, *args)
        assert r.rc in (1, 2), (args, r)
    r = run_ctl(ctl, "trace", "topic", "a/#/b", "--to", str(tmp_path / "x"), "--for", "1")
    assert r.rc == 2 and "invalid topic filter" in r.err, r
    c = Client(b, version=5, client_id="here")
    r = run_ctl(ctl, "trace", "client", "here", "--to", "/no/such/dir/f", "--for", "1")
    assert r.rc == 2 and "trace not started" in r.err, r
    c.disconnect()
    b.assert_alive()
