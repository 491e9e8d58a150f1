import Crypto

/// An incremental SHA-256, for callers outside WardenPKI that hash large or composite inputs (a domain-separation
/// prefix followed by a firmware block, a file read in chunks) without first copying them into one array.
///
/// Only WardenPKI imports swift-crypto; this wrapper keeps that rule while avoiding the copy that
/// ``Digest/sha256(_:)`` makes of its argument.
public struct IncrementalSHA256 {
    private var hasher = SHA256()

    /// Starts an empty hash.
    public init() {}

    /// Feeds `bytes` into the hash.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    /// Feeds `bytes` into the hash.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    }

    /// Feeds `bytes` into the hash.
    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    }

    /// Feeds one byte into the hash.
    public mutating func update(byte: UInt8) {
        withUnsafeBytes(of: byte) { hasher.update(bufferPointer: $0) }
    }

    /// The 32-byte digest of everything fed so far. The hasher must not be used afterwards.
    public func finalize() -> [UInt8] {
        Array(hasher.finalize())
    }
}
