#!/usr/bin/env python3
"""Make N distinct P-256 keys and PKCS#10 CSRs for enrollment benchmarks.

Usage: make_csrs.py N DIR

Writes DIR/dev-00001.csr.pem ... DIR/dev-NNNNN.csr.pem (CN = device id, ECDSA with SHA-256)
and DIR/batch.csv with rows `id,csr_path` (paths relative to DIR), the input of
`warden device enroll --batch` and of enroll_reference.py. Private keys are discarded: the
benchmarks only need the requests.
"""

import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def device_id(index: int) -> str:
    """The device id (and CN) of the index-th CSR, 1-based: dev-00001, dev-00002, ..."""
    return f"dev-{index:05d}"


def make_csr(common_name: str) -> bytes:
    """A fresh P-256 key's CSR for `common_name`, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit() or not 1 <= int(argv[1]) <= 99_999:
        print("usage: make_csrs.py N DIR   (1 <= N <= 99999)", file=sys.stderr)
        return 2
    count, directory = int(argv[1]), argv[2]
    os.makedirs(directory, exist_ok=True)
    lines = ["id,csr_path"]
    for index in range(1, count + 1):
        name = device_id(index)
        path = f"{name}.csr.pem"
        with open(os.path.join(directory, path), "wb") as handle:
            handle.write(make_csr(name))
        lines.append(f"{name},{path}")
    with open(os.path.join(directory, "batch.csv"), "w", encoding="ascii") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {count} CSRs and batch.csv to {directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
