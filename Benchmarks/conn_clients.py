"""Opens N MQTT 3.1.1 connections (clean session, keep alive 600 s), 200 CONNECTs in flight,
then with `sub` one SUBSCRIBE each to conn/<i> (QoS 0); writes READY_FILE and holds them.
Usage: conn_clients.py PORT N idle|sub HOLD_SECONDS READY_FILE (scripts/conn-memory runs it)."""
import socket, struct, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]); sub = sys.argv[3] == "sub"; hold = float(sys.argv[4])
def s8(s): b = s.encode(); return struct.pack("!H", len(b)) + b
def rl(n):
    out = b""
    while True:
        d = n % 128; n //= 128
        out += bytes([d | (0x80 if n else 0)])
        if not n: return out
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux 4.2
socks = []
t0 = time.time()
for i in range(n):
    s = socket.socket()
    # The source port is chosen at connect(), for the whole address pair: a bind() that picks
    # it alone failed with EADDRINUSE after earlier runs left ports of 127.0.0.2 in TIME_WAIT.
    s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind(("127.0.0.%d" % (2 + i // 20000), 0)); s.connect(("127.0.0.1", port))
    body = s8("MQTT") + bytes([4, 2]) + struct.pack("!H", 600) + s8("c%d" % i)
    s.sendall(bytes([0x10]) + rl(len(body)) + body)
    socks.append(s)
    if len(socks) % 200 == 0:
        for x in socks[-200:]: assert x.recv(4)[0] == 0x20
for x in socks[len(socks) - len(socks) % 200:]: assert x.recv(4)[0] == 0x20
if sub:
    for i, s in enumerate(socks):
        body = struct.pack("!H", 1) + s8("conn/%d" % i) + bytes([0])
        s.sendall(bytes([0x82]) + rl(len(body)) + body)
    for s in socks: assert s.recv(5)[0] == 0x90
print("connected %d in %.1fs" % (n, time.time() - t0), flush=True)
open(sys.argv[5], "w").write("1")
time.sleep(hold)
