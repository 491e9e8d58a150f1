#!/usr/bin/env python3
"""The python-cryptography reference for `warden device enroll --batch`.

Usage: enroll_reference.py DIR [--processes N]

Reads DIR/batch.csv (as written by make_csrs.py) and, for every row, does what Warden does per CSR:
read the file, load the PEM CSR, verify its self-signature, check that the CN is the device id, build
a comparable device certificate (subject O + CN, KeyUsage digitalSignature critical, EKU clientAuth,
SKI, AKI, 90 days backdated 5 minutes, random 16-byte serial), sign it with a P-256 issuing CA
(ECDSA with SHA-256) and DER-encode it.

The CA (a P-256 root and issuing CA) is created in memory before the clock starts; only the loop is
timed. With --processes 1 (the default) it is a plain loop in one process; with N > 1 the rows are
spread over a multiprocessing pool of N workers, started and warmed up before the clock starts.

Prints one line: `rows=R processes=N seconds=S rows_per_s=X`.
"""

import argparse
import datetime
import multiprocessing
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "Bench"
VALIDITY = datetime.timedelta(days=90)
CLOCK_SKEW = datetime.timedelta(minutes=5)

# The issuing CA of this process, set by `install_ca` (in the parent and in every pool worker).
_CA = {}


def make_ca() -> tuple[bytes, bytes]:
    """A P-256 root and issuing CA; returns the issuing key (PKCS#8 PEM) and certificate (PEM)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{ORGANIZATION} Root CA"),
    ])
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{ORGANIZATION} Issuing CA 1"),
    ])
    issuing = (
        x509.CertificateBuilder()
        .subject_name(issuing_name)
        .issuer_name(root_name)
        .public_key(issuing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=5 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key_pem = issuing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem, issuing.public_bytes(serialization.Encoding.PEM)


def install_ca(key_pem: bytes, certificate_pem: bytes) -> None:
    """Loads the issuing CA into this process (also the pool initializer)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    _CA["key"] = key
    _CA["subject"] = certificate.subject
    _CA["aki"] = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
        certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    _CA["key_usage"] = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
    _CA["eku"] = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


def enroll_one(row: tuple[str, str]) -> bytes:
    """Reads, verifies and signs one row's CSR; returns the certificate DER."""
    device_id, path = row
    with open(path, "rb") as handle:
        csr = x509.load_pem_x509_csr(handle.read())
    if not csr.is_signature_valid:
        raise ValueError(f"CSR '{path}' has an invalid signature")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise ValueError(f"CSR '{path}' does not hold an EC key")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        raise ValueError(f"CSR '{path}' does not name device '{device_id}'")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    public_key = csr.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        ]))
        .issuer_name(_CA["subject"])
        .public_key(public_key)
        .serial_number(int.from_bytes(os.urandom(16), "big") >> 1)  # positive (RFC 5280 §4.1.2.2)
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(_CA["key_usage"], critical=True)
        .add_extension(_CA["eku"], critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_CA["aki"], critical=False)
        .sign(_CA["key"], hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def read_batch(directory: str) -> list[tuple[str, str]]:
    """The (id, absolute CSR path) rows of DIR/batch.csv."""
    rows = []
    with open(os.path.join(directory, "batch.csv"), encoding="ascii") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#") or line == "id,csr_path":
                continue
            device_id, path = line.split(",")[:2]
            rows.append((device_id, path if os.path.isabs(path) else os.path.join(directory, path)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="directory holding batch.csv and the CSRs (make_csrs.py)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default 1: a plain loop)")
    options = parser.parse_args()
    if options.processes < 1:
        parser.error("--processes must be at least 1")
    rows = read_batch(options.directory)
    key_pem, certificate_pem = make_ca()
    if options.processes == 1:
        install_ca(key_pem, certificate_pem)
        started = time.perf_counter()
        issued = [enroll_one(row) for row in rows]
        seconds = time.perf_counter() - started
    else:
        with multiprocessing.Pool(options.processes, initializer=install_ca, initargs=(key_pem, certificate_pem)) as pool:
            pool.map(abs, range(options.processes * 4))  # make sure every worker is up before timing
            started = time.perf_counter()
            issued = pool.map(enroll_one, rows, chunksize=max(1, len(rows) // (options.processes * 16)))
            seconds = time.perf_counter() - started
    assert len(issued) == len(rows)
    print(f"rows={len(rows)} processes={options.processes} seconds={seconds:.3f} rows_per_s={len(rows) / seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
