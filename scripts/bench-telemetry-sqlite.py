#!/usr/bin/env python3
"""Same-run reference for the telemetry ingest benchmark (docs/PERFORMANCE.md, "Telemetry").

Raw SQLite through python3's sqlite3: the same table as the registry's v6-telemetry migration, WAL and
synchronous=FULL like the registry, 256 rows per transaction with INSERT OR IGNORE, no decoding, no counters,
no pruning. Prints records/s for BATCHES batches (default 400), fresh and with 50% of every batch redelivered.
"""
import os, sqlite3, sys, tempfile, time

BATCHES = int(os.environ.get("BATCHES", "400"))

def run(duplicate_share):
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "r.sqlite"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("""CREATE TABLE device_telemetry (device_id TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL,
                      received_at REAL NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (device_id, boot, seq)) STRICT, WITHOUT ROWID""")
        db.execute("CREATE INDEX device_telemetry_by_time ON device_telemetry(device_id, received_at)")
        payload = b'{"kind":"value","ts":1764000000.05,"sensor":"temp","value":50.123456789}'
        batches = []
        nxt = 1
        for i in range(BATCHES):
            if duplicate_share and i > 0:
                nxt -= 128
            batches.append([("gw-0001", 7, s, 1764000000.0, payload) for s in range(nxt, nxt + 256)])
            nxt += 256
        start = time.perf_counter()
        for rows in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO device_telemetry VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        elapsed = time.perf_counter() - start
        db.close()
        return BATCHES * 256 / elapsed

for share in (0, 50):
    print(f"python3 sqlite3 {sqlite3.sqlite_version}: {run(share):,.0f} records/s ({share}% redelivered, 256-row transactions, WAL, synchronous=FULL)")
