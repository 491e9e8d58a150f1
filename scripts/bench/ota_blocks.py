#!/usr/bin/env python3
"""OTA block delivery benchmark driver (see scripts/bench-ota.sh and docs/PERFORMANCE.md, "OTA block delivery").

  ota_blocks.py run BROKER_DIR CHAINS PORT IMAGE BLOCK_SIZE RUNS ID...

With `warden serve` running the block service on the broker in BROKER_DIR:
  goodput   for N = 1 and N = len(IDs) devices, RUNS times each, interleaved:
            ota: N mosquitto_sub (one per device, its own certificate) on d/<id>/down/ota/block; each device asks for
                 all blocks with one missing-block bitmap request (mosquitto_pub -f); timed from the first request to
                 the last subscriber's exit (all blocks + the `done` status received);
            raw: the same N subscribers on d/<id>/down/raw; one publisher (the CLI control identity, one connection
                 per device, one after the other) sends the same image bytes as one message per device.
            Every received block is verified alone with an independent Python Merkle verifier (RFC 9162 audit
            path) against the root computed here, and the reassembled image is compared with the original.
  overhead  bytes on the device's side of the wire (TLS included, both directions, every device connection: the
            subscriber and, for ota, the request publisher), counted by a relay on 127.0.0.1 in front of the broker,
            for one device, per image byte. The authority side (block service or raw publisher) connects directly.
Prints RESULT lines for the shell script.
"""
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time


def leaf(block: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + block).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(blocks: list) -> bytes:
    level = [leaf(b) for b in blocks]
    while len(level) > 1:
        nxt = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def verify(block: bytes, index: int, proof: list, root: bytes, count: int, length: int, size: int) -> bool:
    """RFC 9162 §2.1.3.2 inclusion-proof verification, with the exact block length check."""
    if index >= count or len(block) != min(size, length - index * size):
        return False
    fn, sn, r = index, count - 1, leaf(block)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def request(image_hash: bytes, block_size: int, count: int, request_id: int) -> bytes:
    bits = bytearray((count + 7) // 8)
    for i in range(count):
        bits[i >> 3] |= 0x80 >> (i & 7)
    exponent = block_size.bit_length() - 1
    return struct.pack(">BBQBB32sBII", 1, 1, request_id, exponent, 1, image_hash, 2, 0, count) + bytes(bits)


def parse_sub_output(path: str) -> list:
    """mosquitto_sub -F '%l\\n%p' -N: '<length>\\n<payload>' repeated."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        n = int(data[pos:nl])
        out.append(data[nl + 1:nl + 1 + n])
        pos = nl + 1 + n
    return out


class Relay:
    """Counts bytes both ways between local clients and the broker."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.bytes = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, src, dst):
        try:
            while True:
                chunk = src.recv(1 << 20)
                if not chunk:
                    break
                with self.lock:
                    self.bytes += len(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _s(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class Device:
    """A minimal MQTT v5 device over TLS: one connection that subscribes, publishes its request, and acknowledges
    QoS 1 deliveries (Mosquitto takes the certificate CN as the client id, so a device has exactly one session)."""

    def __init__(self, port: int, cafile: str, cert: str, key: str, client_id: str):
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = False
        context.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=120)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock = context.wrap_socket(raw)
        self.buffer = bytearray()
        self.send(0x10, _s("MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big") + b"\x00" + _s(client_id))
        kind, body = self.packet()
        if kind != 0x20 or body[1] != 0:
            raise RuntimeError(f"CONNACK refused: {bytes(body).hex()}")

    def send(self, first: int, body: bytes) -> None:
        self.sock.sendall(bytes([first]) + _varint(len(body)) + body)

    def packet(self):
        while True:
            if len(self.buffer) >= 2:
                length, shift, pos = 0, 0, 1
                while pos < len(self.buffer):
                    byte = self.buffer[pos]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    pos += 1
                    if not byte & 0x80:
                        if len(self.buffer) >= pos + length:
                            first, body = self.buffer[0], self.buffer[pos:pos + length]
                            del self.buffer[:pos + length]
                            return first, body
                        break
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buffer += chunk

    def subscribe(self, topic: str) -> None:
        self.send(0x82, (1).to_bytes(2, "big") + b"\x00" + _s(topic) + b"\x01")
        kind, body = self.packet()
        if kind != 0x90 or body[-1] >= 0x80:
            raise RuntimeError(f"SUBACK refused: {bytes(body).hex()}")

    def publish(self, topic: str, payload: bytes, packet_id: int = 2) -> None:
        self.send(0x32, _s(topic) + packet_id.to_bytes(2, "big") + b"\x00" + payload)

    def receive(self):
        """The next PUBLISH payload (PUBACKs sent for QoS 1; other packets skipped)."""
        while True:
            first, body = self.packet()
            if first >> 4 != 3:
                continue
            qos = (first >> 1) & 3
            n = int.from_bytes(body[0:2], "big")
            pos = 2 + n
            if qos:
                self.send(0x40, bytes(body[pos:pos + 2]))
                pos += 2
            props, shift = 0, 0
            while True:
                byte = body[pos]
                pos += 1
                props |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return bytes(body[pos + props:])

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass


def device_main(argv: list) -> int:
    """device MODE PORT CAFILE CERT KEY ID COUNT OUT [REQUEST]: connect, subscribe, print READY, wait for a line on
    stdin; ota: publish REQUEST and receive until COUNT distinct blocks arrived (asking again after each `done`);
    raw: receive COUNT messages. Messages go to OUT ('<length>\\n<payload>' each); print DONE."""
    mode, port, cafile, cert, key, ident, count, out = argv[2], int(argv[3]), *argv[4:8], int(argv[8]), argv[9]
    device = Device(port, cafile, cert, key, ident)
    device.subscribe(f"d/{ident}/down/ota/block" if mode == "ota" else f"d/{ident}/down/raw")
    print("READY", flush=True)
    sys.stdin.readline()
    if mode == "ota":
        # Ask for everything; after each `done`, ask again for what is still missing (the service sends at most
        # 1024 blocks per request), as the agent does.
        request_bytes = bytearray(open(argv[10], "rb").read())
        device.publish(f"d/{ident}/up/ota/get", bytes(request_bytes))
        received = set()
        with open(out, "wb") as handle:
            while len(received) < count:
                payload = device.receive()
                handle.write(b"%d\n" % len(payload) + payload)
                if payload[1] == 2:
                    received.add(struct.unpack(">I", payload[43:47])[0])
                elif payload[1] == 3 and payload[42] == 0 and len(received) < count:
                    first = min(i for i in range(count) if i not in received)
                    bits = bytearray((count - first + 7) // 8)
                    for i in range(first, count):
                        if i not in received:
                            bits[(i - first) >> 3] |= 0x80 >> ((i - first) & 7)
                    request_bytes[2:10] = (int.from_bytes(request_bytes[2:10], "big") + 1).to_bytes(8, "big")
                    again = bytes(request_bytes[:45]) + struct.pack(">II", first, count - first) + bytes(bits)
                    device.publish(f"d/{ident}/up/ota/get", again, packet_id=3)
    else:
        with open(out, "wb") as handle:
            for _ in range(count):
                payload = device.receive()
                handle.write(b"%d\n" % len(payload) + payload)
    device.close()
    print("DONE", flush=True)
    return 0


def main(argv: list) -> int:
    if len(argv) > 1 and argv[1] == "device":
        return device_main(argv)
    if len(argv) < 9 or argv[1] != "run":
        print(__doc__, file=sys.stderr)
        return 64
    broker, chains, port, image_path, block_size, runs = argv[2], argv[3], int(argv[4]), argv[5], int(argv[6]), int(argv[7])
    ids = argv[8:]
    image = open(image_path, "rb").read()
    image_hash = hashlib.sha256(image).digest()
    blocks = [image[i:i + block_size] for i in range(0, len(image), block_size)]
    count, root = len(blocks), merkle_root(blocks)
    cafile = os.path.join(broker, "ca.pem")
    control = ["--cert", os.path.join(broker, "control-cli.crt.pem"), "--key", os.path.join(broker, "control-cli.key.pem")]
    work = tempfile.mkdtemp(prefix="ota-bench-")
    try:
        return measure(work, broker, chains, port, image_path, block_size, runs, ids, image, image_hash, blocks, count, root, cafile, control)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work, broker, chains, port, image_path, block_size, runs, ids, image, image_hash, blocks, count, root, cafile, control):
    request_id = [0]

    def creds(ident):
        return ["--cert", os.path.join(chains, f"{ident}.crt.pem"), "--key", os.path.join(chains, f"{ident}.key.pem")]

    def base(p):
        return ["-h", "127.0.0.1", "-p", str(p), "-V", "mqttv5", "-q", "1", "--cafile", cafile]

    def check_ota(outputs):
        """Verifies every block alone and the reassembly; returns (blocks, wire payload bytes)."""
        total_blocks = payload = 0
        for out in outputs:
            got = {}
            for message in parse_sub_output(out):
                payload += len(message)
                if message[1] == 3:
                    assert message[42] == 0, f"status code {message[42]}"
                    continue
                exp, index, n, p = message[42], *struct.unpack(">II", message[43:51]), message[51]
                proof = [message[52 + 32 * k:84 + 32 * k] for k in range(p)]
                data = message[52 + 32 * p:]
                assert message[10:42] == image_hash and 1 << exp == block_size and n == count, "header mismatch"
                assert verify(data, index, proof, root, count, len(image), block_size), f"block {index} does not verify"
                got[index] = data
            assert b"".join(got[i] for i in range(count)) == image, "reassembled image differs"
            total_blocks += len(got)
        return total_blocks, payload

    def spawn(mode, d, messages, p, req=None):
        out = os.path.join(work, f"{d}.{mode}.out")
        args = [sys.executable, os.path.abspath(__file__), "device", mode, str(p), cafile,
                os.path.join(chains, f"{d}.crt.pem"), os.path.join(chains, f"{d}.key.pem"), d, str(messages), out]
        proc = subprocess.Popen(args + ([req] if req else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if proc.stdout.readline().strip() != b"READY":
            raise SystemExit(f"device {d} did not get ready")
        return proc, out

    def finish(procs):
        for proc, _ in procs:
            if proc.stdout.readline().strip() != b"DONE" or proc.wait() != 0:
                raise SystemExit("a device failed")

    def ota_round(devices, p=port):
        procs = []
        for d in devices:
            request_id[0] += 1
            path = os.path.join(work, f"{d}.req")
            open(path, "wb").write(request(image_hash, block_size, count, request_id[0]))
            procs.append(spawn("ota", d, count, p, path))
        start = time.monotonic()
        for proc, _ in procs:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        finish(procs)
        return time.monotonic() - start, [out for _, out in procs]

    def publish_raw(devices):
        # The publisher plays the authority side: it always connects directly (not through the relay).
        for d in devices:
            subprocess.run(["mosquitto_pub", *base(port), *control, "-t", f"d/{d}/down/raw", "-f", image_path], check=True)

    def raw_round(devices, p=port):
        """mosquitto_pub -> the Python device (the same receiver as the block service's)."""
        procs = [spawn("raw", d, 1, p) for d in devices]
        for proc, _ in procs:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        start = time.monotonic()
        publish_raw(devices)
        finish(procs)
        elapsed = time.monotonic() - start
        for _, out in procs:
            assert parse_sub_output(out) == [image], "raw image differs"
        return elapsed

    def raw_c_round(devices):
        """mosquitto_pub -> mosquitto_sub: the raw tools alone."""
        subs = []
        for d in devices:
            out = os.path.join(work, f"{d}.rawc.out")
            handle = open(out, "wb")
            subs.append((subprocess.Popen(["mosquitto_sub", *base(port), *creds(d), "-t", f"d/{d}/down/raw", "-C", "1",
                                           "-N", "-F", "%l\\n%p", "-W", "300"], stdout=handle), handle, out))
        time.sleep(1.0 + 0.05 * len(subs))  # no "subscribed" signal without -d, which would mix into stdout
        start = time.monotonic()
        publish_raw(devices)
        for proc, handle, _ in subs:
            if proc.wait() != 0:
                raise SystemExit("mosquitto_sub failed")
            handle.close()
        elapsed = time.monotonic() - start
        for _, _, out in subs:
            assert parse_sub_output(out) == [image], "raw image differs"
        return elapsed

    mib = len(image) / (1 << 20)
    for n in sorted({1, len(ids)}):
        devices = ids[:n]
        ota_rates, raw_rates, rawc_rates = [], [], []
        for _ in range(runs):
            elapsed, outputs = ota_round(devices)
            verified, _ = check_ota(outputs)
            assert verified == n * count
            ota_rates.append(n * mib / elapsed)
            raw_rates.append(n * mib / raw_round(devices))
            rawc_rates.append(n * mib / raw_c_round(devices))
        for xs in (ota_rates, raw_rates, rawc_rates):
            xs.sort()
        med = lambda xs: xs[len(xs) // 2]
        text = lambda xs: ",".join(f"{x:.1f}" for x in xs)
        print(f"RESULT goodput_n{n} ota_mib_s={med(ota_rates):.1f} raw_mib_s={med(raw_rates):.1f} "
              f"rawc_mib_s={med(rawc_rates):.1f} ratio={med(ota_rates) / med(raw_rates):.2f} "
              f"ratio_c={med(ota_rates) / med(rawc_rates):.2f} ota_all={text(ota_rates)} raw_all={text(raw_rates)} "
              f"rawc_all={text(rawc_rates)} runs={runs}")

    relay = Relay(port)
    before = relay.bytes
    _, outputs = ota_round(ids[:1], relay.port)
    _, payload = check_ota(outputs)
    ota_wire = relay.bytes - before
    before = relay.bytes
    raw_round(ids[:1], relay.port)
    raw_wire = relay.bytes - before
    print(f"RESULT overhead ota_wire={ota_wire} raw_wire={raw_wire} image={len(image)} ota_payload={payload} "
          f"ota_per_byte={ota_wire / len(image):.4f} raw_per_byte={raw_wire / len(image):.4f} "
          f"ota_payload_per_byte={payload / len(image):.4f} blocks={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
