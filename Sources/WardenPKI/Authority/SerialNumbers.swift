import X509

/// Certificate serial numbers, RFC 5280 §4.1.2.2: positive, unique per CA, at most 20 octets.
///
/// swift-certificates' default `Certificate.SerialNumber()` draws 20 random bytes and may need a 21st
/// (a leading zero) to stay positive, which pkilint flags. We draw 16 bytes instead, clear the top bit
/// (positive) and set the next one (no leading zero octet, so the DER length is constant): 126 bits of
/// entropy, well above the 64 the CA/Browser Forum asks for. Uniqueness is enforced again by the
/// registry's UNIQUE constraint; a collision is retried, never issued.
enum SerialNumbers {
    /// A fresh random serial.
    static func random() -> Certificate.SerialNumber {
        Certificate.SerialNumber(bytes: randomBytes())
    }

    /// A fresh random serial's 16 big-endian bytes (the INTEGER's content octets).
    static func randomBytes() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0..<2 {
            let word = generator.next()
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        bytes[0] = (bytes[0] & 0x7F) | 0x40
        return bytes
    }
}
