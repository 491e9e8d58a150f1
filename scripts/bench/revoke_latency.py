#!/usr/bin/env python3
"""Revocation latency harness for scripts/bench-revoke.sh (not meant to be run alone).

Usage:
  revoke_latency.py keys DIR ID...          make DIR/ID.key.pem + DIR/ID.csr.pem (P-256) and DIR/batch.csv
  revoke_latency.py run  WARDEN BROKER_DIR CHAINS PORT REVOKED BYSTANDERS KICK_PERSISTENT KICK_FRESH PROBE

`run` expects `warden serve` to be running (WARDEN_HOME / WARDEN_PASSPHRASE in the environment) and the devices
enrolled, with chains in CHAINS/ID.crt.pem and keys in CHAINS/ID.key.pem. Lists are comma-separated ids. It:
  1. starts one long-lived mosquitto_sub per device (own down topic) and waits until all are subscribed;
  2. measures the raw pieces Warden chains: a mosquitto SIGHUP reload round trip (SIGHUP then PINGREQ on a live
     connection, against a plain PINGREQ), and a broker-side kick (dynsec deleteClient published by the control
     identity on a persistent connection, and on a fresh TLS connection per kick) until the victim's process exits;
  3. revokes each REVOKED device with `warden device revoke`, timing (a) the command, (b) command return ->
     the device's mosquitto_sub has exited, (a)+(b); checks the reconnect is refused and no other session ended.
Process exits are timestamped by an epoll thread on pidfds (no polling interval).
"""

import json
import os
import select
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time


RELOADS = 50


def now() -> float:
    return time.monotonic()


# ---------------------------------------------------------------------------------------------- keys
def make_keys(directory: str, ids: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    lines = ["id,csr_path"]
    for ident in ids:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        with open(os.path.join(directory, f"{ident}.key.pem"), "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        with open(os.path.join(directory, f"{ident}.csr.pem"), "wb") as handle:
            handle.write(csr.public_bytes(serialization.Encoding.PEM))
        lines.append(f"{ident},{ident}.csr.pem")
    with open(os.path.join(directory, "batch.csv"), "w", encoding="ascii") as handle:
        handle.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------- exits
class ExitWatcher:
    """Timestamps child exits through pidfds and one epoll thread."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.fds: dict[int, int] = {}  # fd -> pid
        self.exited: dict[int, float] = {}  # pid -> monotonic time
        self.cond = threading.Condition()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def watch(self, pid: int) -> None:
        fd = os.pidfd_open(pid)
        with self.cond:
            self.fds[fd] = pid
        self.epoll.register(fd, select.EPOLLIN)

    def _run(self) -> None:
        while not self.stop:
            for fd, _ in self.epoll.poll(0.2):
                stamp = now()
                with self.cond:
                    pid = self.fds.pop(fd, None)
                    if pid is not None:
                        self.exited[pid] = stamp
                        self.cond.notify_all()
                self.epoll.unregister(fd)
                os.close(fd)

    def wait(self, pid: int, deadline: float) -> float | None:
        with self.cond:
            while pid not in self.exited:
                left = deadline - now()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.exited[pid]

    def exit_time(self, pid: int) -> float | None:
        with self.cond:
            return self.exited.get(pid)


# ---------------------------------------------------------------------------------------------- raw MQTT 3.1.1
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


class RawMQTT:
    """Just enough MQTT 3.1.1 over TLS: CONNECT, QoS 0 PUBLISH, PINGREQ."""

    def __init__(self, port: int, cafile: str, cert: str, key: str, client_id: str) -> None:
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = False
        context.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw)
        body = _string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(client_id)
        self.sock.sendall(bytes([0x10]) + _varint(len(body)) + body)
        connack = self._read(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"CONNACK refused: {connack.hex()}")

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("connection closed")
            data += chunk
        return data

    def publish(self, topic: str, payload: bytes) -> None:
        body = _string(topic) + payload
        self.sock.sendall(bytes([0x30]) + _varint(len(body)) + body)

    def ping(self) -> None:
        self.sock.sendall(b"\xc0\x00")
        if self._read(2) != b"\xd0\x00":
            raise RuntimeError("bad PINGRESP")

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------- stats
def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (f"p50={pct(values, 50):.1f} p99={pct(values, 99):.1f} max={max(values):.1f} "
            f"min={min(values):.1f} n={len(values)}")


# ---------------------------------------------------------------------------------------------- run
def run(warden: str, broker: str, chains: str, port: int, revoked: list[str], bystanders: list[str],
        kick_persistent: list[str], kick_fresh: list[str], probe: str) -> int:
    cafile = os.path.join(broker, "ca.pem")
    logs = os.path.join(chains, "logs")
    os.makedirs(logs, exist_ok=True)

    def device_args(ident: str) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1", "--cafile", cafile,
                "--cert", os.path.join(chains, f"{ident}.crt.pem"), "--key", os.path.join(chains, f"{ident}.key.pem")]

    watcher = ExitWatcher()
    subs: dict[str, subprocess.Popen] = {}
    log_files = []
    try:
        everyone = revoked + bystanders + kick_persistent + kick_fresh
        for ident in everyone:
            log = open(os.path.join(logs, f"{ident}.log"), "wb")
            log_files.append(log)
            proc = subprocess.Popen(
                ["stdbuf", "-oL", "-eL", "mosquitto_sub", *device_args(ident), "-t", f"d/{ident}/down/#", "-d"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            subs[ident] = proc
            watcher.watch(proc.pid)
        deadline = now() + 60
        pending = set(everyone)
        while pending and now() < deadline:
            for ident in list(pending):
                with open(os.path.join(logs, f"{ident}.log"), "rb") as handle:
                    if b"Subscribed" in handle.read():
                        pending.discard(ident)
            time.sleep(0.05)
        if pending:
            print(f"error: {len(pending)} subscribers never subscribed, e.g. {sorted(pending)[:3]}", file=sys.stderr)
            return 1
        print(f"subscribers live: {len(everyone)}", file=sys.stderr)

        with open(os.path.join(broker, "mosquitto.pid")) as handle:
            broker_pid = int(handle.read().split()[0])

        # --- reference 1: SIGHUP reload round trip on a live connection.
        def broker_cpu_ns() -> int:
            """The broker's CPU time so far (ns, /proc/PID/schedstat)."""
            with open(f"/proc/{broker_pid}/schedstat") as handle:
                return int(handle.read().split()[0])

        # mosquitto 2.0 blocks signals around epoll_wait, so a SIGHUP is acted on only after the next socket event
        # (or the loop's timeout) has been handled: SIGHUP + PINGREQ is answered before the reload, and a second
        # PINGREQ right after waits for it. So: plain = two pings, hup = SIGHUP + two pings.
        conn = RawMQTT(port, cafile, os.path.join(chains, f"{probe}.crt.pem"), os.path.join(chains, f"{probe}.key.pem"), probe)
        plain, hup, idle = [], [], []
        plain_cpu = hup_cpu = 0
        for _ in range(RELOADS):
            before = broker_cpu_ns()
            started = now(); conn.ping(); conn.ping(); plain.append((now() - started) * 1000)
            time.sleep(0.03)
            plain_cpu += broker_cpu_ns() - before
            before = broker_cpu_ns()
            started = now(); os.kill(broker_pid, signal.SIGHUP); conn.ping(); conn.ping(); hup.append((now() - started) * 1000)
            time.sleep(0.03)
            hup_cpu += broker_cpu_ns() - before
        conn.close()
        # SIGHUP to an idle broker (no traffic): until its CPU time jumps by >= 1 ms (polled every ~0.2 ms).
        for _ in range(10):
            time.sleep(0.3)
            before = broker_cpu_ns()
            started = now(); os.kill(broker_pid, signal.SIGHUP)
            while broker_cpu_ns() - before < 1_000_000 and now() - started < 2:
                time.sleep(0.0002)
            idle.append((now() - started) * 1000)
        reload_cpu_ms = (hup_cpu - plain_cpu) / RELOADS / 1e6

        # --- reference 2: broker-side kick (dynsec deleteClient, no mosquitto_ctrl) until the process exits.
        # The CLI's one-shot control identity (what `warden device revoke` uses) if the setup has one, so that
        # `warden serve`'s own control session is never taken over; the broker forces client id = CN.
        if os.path.exists(os.path.join(broker, "control-cli.crt.pem")):
            control = (os.path.join(broker, "control-cli.crt.pem"), os.path.join(broker, "control-cli.key.pem"))
            control_id = "warden-control-cli"
        else:
            control = (os.path.join(broker, "control.crt.pem"), os.path.join(broker, "control.key.pem"))
            control_id = "warden-control"

        def kick(conn: RawMQTT, ident: str) -> None:
            payload = json.dumps({"commands": [{"command": "deleteClient", "username": ident}]}).encode()
            conn.publish("$CONTROL/dynamic-security/v1", payload)

        kick_persist_ms, kick_fresh_ms, kick_missed = [], [], 0
        conn = RawMQTT(port, cafile, *control, control_id)
        for ident in kick_persistent:
            started = now(); kick(conn, ident)
            ended = watcher.wait(subs[ident].pid, now() + 2)
            if ended is None:
                kick_missed += 1
            else:
                kick_persist_ms.append((ended - started) * 1000)
            time.sleep(0.05)
        conn.close()
        for ident in kick_fresh:
            started = now()
            conn = RawMQTT(port, cafile, *control, control_id)
            kick(conn, ident)
            ended = watcher.wait(subs[ident].pid, now() + 2)
            conn.close()
            if ended is None:
                kick_missed += 1
            else:
                kick_fresh_ms.append((ended - started) * 1000)
            time.sleep(0.05)

        # --- Warden: revoke each device.
        cmd_ms, after_ms, total_ms = [], [], []
        alive_after_1s, reconnect_accepted, failed, before_return, wrong = 0, 0, 0, 0, []
        revoke_started: dict[str, float] = {}
        refused_tls, refused_crl, refused_connack, refusal_sample = 0, 0, 0, ""
        for ident in revoked:
            # Nobody still waiting for its revoke may have lost its session already.
            for other in revoked[len(revoke_started):] + bystanders:
                if watcher.exit_time(subs[other].pid) is not None and other not in wrong:
                    wrong.append(other)
            pid = subs[ident].pid
            started = now()
            revoke_started[ident] = started
            result = subprocess.run([warden, "device", "revoke", ident, "--reason", "keyCompromise"],
                                    capture_output=True, text=True, timeout=30)
            returned = now()
            if result.returncode != 0 or "live session disconnected" not in result.stdout:
                failed += 1
                print(f"revoke {ident}: status {result.returncode}: {result.stdout.strip()} {result.stderr.strip()}",
                      file=sys.stderr)
            ended = watcher.wait(pid, returned + 1.0)
            if ended is None:
                alive_after_1s += 1
                ended = watcher.wait(pid, returned + 5.0)
                print(f"{ident}: session still alive 1 s after revoke returned"
                      + ("" if ended is None else f" (gone after {(ended - returned) * 1000:.0f} ms)"), file=sys.stderr)
            cmd_ms.append((returned - started) * 1000)
            if ended is not None:
                if ended <= returned:
                    before_return += 1
                after_ms.append(max(0.0, ended - returned) * 1000)
                total_ms.append((ended - started) * 1000)
            probe_run = subprocess.run(["mosquitto_pub", *device_args(ident), "-t", f"d/{ident}/up/probe", "-m", "x", "-d"],
                                       capture_output=True, text=True, timeout=10)
            text = probe_run.stdout + probe_run.stderr
            if "CONNACK (0)" in text:
                reconnect_accepted += 1
                print(f"{ident}: reconnect ACCEPTED after revoke", file=sys.stderr)
            elif "received CONNACK" in text:
                refused_connack += 1
            else:
                refused_tls += 1
                if "certificate revoked" in text:
                    refused_crl += 1
            if not refusal_sample:
                refusal_sample = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        for other in bystanders:
            if watcher.exit_time(subs[other].pid) is not None and other not in wrong:
                wrong.append(other)

        print("RESULT revoke_cmd_ms " + summary(cmd_ms))
        print("RESULT return_to_gone_ms " + summary(after_ms))
        print("RESULT issued_to_gone_ms " + summary(total_ms))
        print(f"RESULT gone_before_return {before_return}")
        print(f"RESULT alive_after_1s {alive_after_1s}")
        print(f"RESULT reconnect_accepted {reconnect_accepted}")
        print(f"RESULT revoke_failed {failed}")
        print(f"RESULT refused_tls {refused_tls}")
        print(f"RESULT refused_crl {refused_crl}")
        print(f"RESULT refused_connack {refused_connack}")
        print(f"RESULT refusal_sample {refusal_sample}")
        print(f"RESULT wrongly_disconnected {len(wrong)} {' '.join(wrong)}")
        print("RESULT ping_ms " + summary(plain))
        print("RESULT sighup_ping_ms " + summary(hup))
        print(f"RESULT reload_cpu_ms {reload_cpu_ms:.2f}")
        print("RESULT sighup_idle_ms " + summary(idle))
        print("RESULT kick_persistent_ms " + summary(kick_persist_ms))
        print("RESULT kick_fresh_conn_ms " + summary(kick_fresh_ms))
        print(f"RESULT kick_missed {kick_missed}")
        return 0
    finally:
        for proc in subs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in subs.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        watcher.stop = True
        for log in log_files:
            log.close()


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "keys":
        make_keys(argv[2], argv[3:])
        return 0
    if len(argv) == 11 and argv[1] == "run":
        split = lambda s: [x for x in s.split(",") if x]
        return run(argv[2], argv[3], argv[4], int(argv[5]), split(argv[6]), split(argv[7]), split(argv[8]),
                   split(argv[9]), argv[10])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
