#!/usr/bin/env python3
"""python-tuf as an independent oracle for Warden's TUF repository and verifier.

  client MD_DIR METADATA_URL TARGETS_URL CA_PEM [TARGET OUT]
      ngclient.Updater refresh (MD_DIR must hold the trusted root.json); prints JSON {targets, versions};
      with TARGET, downloads it to OUT. On failure prints the exception class and message to stderr, exit 1.
  verify ROOT.json METADATA.json ROLE
      Metadata API: ROOT verifies METADATA as ROLE (threshold). Exit 0 valid, 1 invalid.
  canonical FILE.json
      prints securesystemslib's canonical JSON of the document's "signed" object.
  make-repo DIR TARGET_NAME TARGET_FILE
      a consistent-snapshot repository written by python-tuf (root 2-of-3 ed25519+ecdsa keys) in DIR/metadata, DIR/targets.
  bench N
      python-tuf Metadata API: build targets metadata with N targets, sign targets, snapshot, timestamp; prints seconds.
"""
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp,
)


def client(md_dir, metadata_url, targets_url, ca, target=None, out=None):
    import urllib3
    from tuf.ngclient import Updater
    from tuf.ngclient.fetcher import FetcherInterface
    from tuf.api import exceptions

    class CAFetcher(FetcherInterface):
        def __init__(self):
            self.pool = urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED", timeout=urllib3.Timeout(20))

        def _fetch(self, url):
            response = self.pool.request("GET", url, preload_content=False)
            if response.status != 200:
                response.release_conn()
                raise exceptions.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
            return response.stream(65536)

    try:
        updater = Updater(md_dir, metadata_url, target_dir=os.path.dirname(out) if out else None,
                          target_base_url=targets_url, fetcher=CAFetcher(), bootstrap=None)
        updater.refresh()
        trusted = updater._trusted_set
        def signed(role):  # python-tuf >= 3 returns the signed payload itself
            return getattr(role, "signed", role)
        result = {
            "targets": sorted(signed(trusted.targets).targets.keys()),
            "versions": {
                "root": signed(trusted.root).version,
                "timestamp": signed(trusted.timestamp).version,
                "snapshot": signed(trusted.snapshot).version,
                "targets": signed(trusted.targets).version,
            },
        }
        if target:
            info = updater.get_targetinfo(target)
            if info is None:
                raise RuntimeError(f"target {target} not found")
            updater.download_target(info, filepath=out)
            result["downloaded"] = out
            result["custom"] = info.custom
        print(json.dumps(result))
    except Exception as error:  # report the class so tests can assert which check refused
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)


def verify(root_path, md_path, role):
    root = Metadata[Root].from_file(root_path)
    md = Metadata.from_file(md_path)
    try:
        root.signed.verify_delegate(role, md.signed_bytes, md.signatures)
    except Exception as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print("valid")


def canonical(path):
    with open(path, "rb") as f:
        doc = json.load(f)
    sys.stdout.buffer.write(encode_canonical(doc["signed"]).encode("utf-8"))


def make_repo(directory, target_name, target_file):
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    root_signers = [CryptoSigner.generate_ed25519(), CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ed25519()]
    online = {"targets": CryptoSigner.generate_ecdsa(), "snapshot": CryptoSigner.generate_ed25519(),
              "timestamp": CryptoSigner.generate_ecdsa()}
    root = Root(expires=expires, consistent_snapshot=True)
    for signer in root_signers:
        root.add_key(signer.public_key, "root")
    root.roles["root"].threshold = 2
    for role, signer in online.items():
        root.add_key(signer.public_key, role)
    with open(target_file, "rb") as f:
        data = f.read()
    targets = Targets(expires=expires)
    info = TargetFile.from_data(target_name, data, ["sha256", "sha512"])
    info.unrecognized_fields["custom"] = {"version": "1.0.0", "note": "python-tuf made this \u00e9"}
    targets.targets[target_name] = info
    md_targets = Metadata(targets)
    md_targets.sign(online["targets"])
    snapshot = Snapshot(expires=expires)
    snapshot.meta["targets.json"] = MetaFile(version=1)
    md_snapshot = Metadata(snapshot)
    md_snapshot.sign(online["snapshot"])
    timestamp = Timestamp(expires=expires)
    timestamp.snapshot_meta = MetaFile(version=1)
    md_timestamp = Metadata(timestamp)
    md_timestamp.sign(online["timestamp"])
    md_root = Metadata(root)
    for signer in root_signers[:2]:
        md_root.sign(signer, append=True)
    os.makedirs(os.path.join(directory, "metadata"), exist_ok=True)
    os.makedirs(os.path.join(directory, "targets"), exist_ok=True)
    md_root.to_file(os.path.join(directory, "metadata", "1.root.json"))
    md_targets.to_file(os.path.join(directory, "metadata", "1.targets.json"))
    md_snapshot.to_file(os.path.join(directory, "metadata", "1.snapshot.json"))
    md_timestamp.to_file(os.path.join(directory, "metadata", "timestamp.json"))
    digest = info.hashes["sha256"]
    dirname, sep, basename = target_name.rpartition("/")
    path = os.path.join(directory, "targets", f"{dirname}{sep}{digest}.{basename}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def bench(n):
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {"targets": CryptoSigner.generate_ed25519(), "snapshot": CryptoSigner.generate_ecdsa(),
               "timestamp": CryptoSigner.generate_ed25519()}
    import hashlib
    entries = {}
    for i in range(n):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        entries[f"fw-{i % 100}/{i}.0.0"] = TargetFile(length=1048576 + i, hashes={"sha256": h, "sha512": h + h},
                                                      path=f"fw-{i % 100}/{i}.0.0",
                                                      unrecognized_fields={"custom": {"version": f"{i}.0.0",
                                                          "hardware": ["board-a"], "release_counter": i,
                                                          "block_size": 65536, "merkle_root": h}})
    targets = Targets(expires=expires, targets=entries)
    start = time.perf_counter()
    cpu_start = time.process_time()
    rounds = 5
    for r in range(rounds):
        targets.version += 1
        md = Metadata(targets)
        md.sign(signers["targets"])
        data = md.to_bytes()
        snap = Snapshot(expires=expires, version=r + 2)
        snap.meta["targets.json"] = MetaFile(version=targets.version, length=len(data),
                                             hashes={"sha256": hashlib.sha256(data).hexdigest()})
        ms = Metadata(snap)
        ms.sign(signers["snapshot"])
        sdata = ms.to_bytes()
        ts = Timestamp(expires=expires, version=r + 2,
                       snapshot_meta=MetaFile(version=snap.version, length=len(sdata),
                                              hashes={"sha256": hashlib.sha256(sdata).hexdigest()}))
        mt = Metadata(ts)
        mt.sign(signers["timestamp"])
        mt.to_bytes()
    elapsed = (time.perf_counter() - start) / rounds
    cpu = (time.process_time() - cpu_start) / rounds
    print(json.dumps({"targets": n, "wall_seconds_per_update": round(elapsed, 3), "cpu_seconds_per_update": round(cpu, 3),
                      "targets_bytes": len(data)}))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "client":
        client(*args)
    elif command == "verify":
        verify(*args)
    elif command == "canonical":
        canonical(*args)
    elif command == "make-repo":
        make_repo(*args)
    elif command == "bench":
        bench(int(args[0]))
    else:
        sys.exit(f"unknown command {command}")
