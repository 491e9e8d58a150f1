#!/usr/bin/env python3
"""Same-run reference for the edge queue benchmark (docs/PERFORMANCE.md, "Edge core").

Runs `warden-agent bench --json` and, in the same directory (same disk) and the same run, SQLite
inserts in WAL mode with python's sqlite3, then prints a Markdown table with ratios.

    python3 tests/python/edge_bench_reference.py --agent .build-edge/release/warden-agent --dir .build-edge/bench

SQLite references (100-byte blob payload, one row per message; rates through the sqlite3 shell, bytes
written through python's sqlite3 doing the same statements):
  per-message  <->  WAL, synchronous=FULL, one transaction (commit + fsync) per insert
  group:10     <->  WAL, synchronous=FULL, 1000 inserts per transaction
  none         <->  WAL, synchronous=OFF, one transaction per insert (no fsync)
Bytes written per payload byte for SQLite are this process's write(2) bytes (/proc/self/io wchar).
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time


def wchar():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def sqlite_run(path, count, payload, synchronous, batch):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE q (seq INTEGER PRIMARY KEY, lane INTEGER NOT NULL, body BLOB NOT NULL)")
    body = b"a" * payload
    before = wchar()
    start = time.perf_counter()
    i = 0
    while i < count:
        n = min(batch, count - i)
        db.execute("BEGIN")
        db.executemany("INSERT INTO q (lane, body) VALUES (2, ?)", [(body,)] * n)
        db.execute("COMMIT")
        i += n
    elapsed = time.perf_counter() - start
    written = wchar() - before
    db.close()
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    return count / elapsed, written / (count * payload)


def sqlite_cli_rate(path, count, payload, synchronous, batch):
    """Insert rate through the sqlite3 command-line shell (C speed, no interpreter per insert)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    blob = "X'" + "61" * payload + "'"
    lines = ["PRAGMA journal_mode=WAL;", f"PRAGMA synchronous={synchronous};",
             "CREATE TABLE q (seq INTEGER PRIMARY KEY, lane INTEGER NOT NULL, body BLOB NOT NULL);"]
    setup = "\n".join(lines) + "\n"
    body = []
    i = 0
    while i < count:
        n = min(batch, count - i)
        if batch > 1:
            body.append("BEGIN;")
        body.extend([f"INSERT INTO q (lane, body) VALUES (2, {blob});"] * n)
        if batch > 1:
            body.append("COMMIT;")
        i += n
    script = "\n".join(body) + "\n"
    subprocess.run(["sqlite3", path], input=setup, text=True, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(["sqlite3", path], input=f"PRAGMA synchronous={synchronous};\n" + script, text=True, check=True,
                   capture_output=True)
    elapsed = time.perf_counter() - start
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    return count / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--dir", default=".build-edge/bench")
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--payload", type=int, default=100)
    ap.add_argument("--samples", type=int, default=5000000)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    out = subprocess.run(
        [a.agent, "bench", "--json", "--dir", a.dir, "--appends", str(a.appends), "--payload", str(a.payload),
         "--samples", str(a.samples)],
        check=True, capture_output=True, text=True)
    ours = json.loads(out.stdout)
    db = os.path.join(a.dir, "reference.sqlite")
    plan = {"per-message": (a.appends, "FULL", 1), "group:10": (a.appends * 100, "FULL", 1000),
            "none": (a.appends * 100, "OFF", 1)}
    refs = {}
    for name, (count, sync, batch) in plan.items():
        rate = sqlite_cli_rate(db, count, a.payload, sync, batch)
        _, amp = sqlite_run(db, min(count, 20000), a.payload, sync, batch)
        refs[name] = (rate, amp)
    print(f"pipeline: {ours['pipeline_samples_per_s']:,} samples/s per CPU-second "
          f"(no reorder window {ours['pipeline_no_reorder_samples_per_s']:,}; "
          f"no latency clock {ours['pipeline_no_latency_clock_samples_per_s']:,})")
    print()
    print("| policy | queue appends/s | SQLite WAL appends/s | queue / SQLite | queue bytes written per byte | SQLite bytes written per byte |")
    print("|---|---|---|---|---|---|")
    for name, (rate, amp) in refs.items():
        q = ours[f"queue_{name}"]
        print(f"| {name} | {q['appends_per_s']:,} | {int(rate):,} | {q['appends_per_s'] / rate:.2f}× | "
              f"{q['bytes_written_per_byte']:.3f} | {amp:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
