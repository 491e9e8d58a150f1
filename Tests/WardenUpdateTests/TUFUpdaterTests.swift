import Foundation
import Testing
import WardenCore
import WardenPKI
@testable import WardenUpdate

@Suite struct TUFUpdaterTests {
    @Test func refreshesAndDownloadsAVerifiedTarget() async throws {
        let repository = try TUFTestRepository()
        let image = Array("firmware image bytes".utf8)
        repository.addTarget("sensor/1.0.0", image)
        try repository.publish()
        let client = try makeClient(repository)
        try await client.updater.refresh()
        let info = try #require(client.updater.targetInfo("sensor/1.0.0"))
        #expect(try await client.updater.download("sensor/1.0.0", info: info) == image)
        #expect(FileManager.default.fileExists(atPath: client.directory.path + "/targets.json"))
        // A second refresh reuses the cached metadata and sees a newer release.
        repository.addTarget("sensor/1.1.0", Array("newer".utf8))
        try repository.publish()
        try await client.updater.refresh()
        #expect(client.updater.targetInfo("sensor/1.1.0") != nil)
    }

    @Test func tamperedTargetIsRefused() async throws {
        let repository = try TUFTestRepository()
        repository.addTarget("fw/1", Array(repeating: 7, count: 1000))
        try repository.publish()
        let client = try makeClient(repository)
        try await client.updater.refresh()
        let info = try #require(client.updater.targetInfo("fw/1"))
        repository.targetFiles.withLock { files in
            for key in files.keys { files[key]![10] ^= 1 }
        }
        await #expect(throws: WardenError(.verificationFailed, "")) { try await client.updater.download("fw/1", info: info) }
    }

    @Test func timestampSignedByANonRoleKeyIsRefused() async throws {
        let repository = try TUFTestRepository()
        // Signed by the targets key: a valid signature, but not by a timestamp key (below threshold for the role).
        let targetsKey = repository.state.withLock { $0.targetsKey }
        try repository.publish(timestampSigners: [targetsKey])
        let client = try makeClient(repository)
        await #expect(throws: WardenError(.signatureInvalid, "")) { try await client.updater.refresh() }
    }

    @Test func rootBelowThresholdIsRefused() throws {
        let repository = try TUFTestRepository()
        var root = try SignedMetadata<RootMetadata>.parse(repository.trustedRoot)
        let keys = repository.state.withLock { $0.rootKeys }
        // One of 2 needed signatures.
        var oneSigned = SignedMetadata(root.payload)
        try oneSigned.sign(with: [keys[0]])
        #expect(throws: WardenError(.signatureInvalid, "")) { try TrustedMetadataSet(trustedRoot: oneSigned.fileBytes, now: Date()) }
        // The same key's signature twice does not count twice: duplicate key ids are refused at parse.
        try root.sign(with: [keys[0]])
        let doubled = String(decoding: oneSigned.fileBytes, as: UTF8.self).replacingOccurrences(
            of: "\"signatures\": [", with: "\"signatures\": [" + signatureJSON(oneSigned.signatures[0]) + ",")
        #expect(throws: WardenError(.badInput, "")) { try TrustedMetadataSet(trustedRoot: Array(doubled.utf8), now: Date()) }
        // A flipped bit in the signed part invalidates a threshold-signed root.
        let text = String(decoding: root.fileBytes, as: UTF8.self)
        let tampered = Array(text.replacingOccurrences(of: "\"expires\": \"20", with: "\"expires\": \"21").utf8)
        #expect(tampered != root.fileBytes)
        #expect(throws: WardenError(.signatureInvalid, "")) { try TrustedMetadataSet(trustedRoot: tampered, now: Date()) }
    }

    func signatureJSON(_ signature: TUFSignature) -> String {
        "{\"keyid\": \"\(signature.keyID)\", \"sig\": \"\(Digest.hex(signature.signature))\"}"
    }

    @Test func expiredTimestampIsRefused() async throws {
        let repository = try TUFTestRepository()
        try repository.publish(expires: -60)
        let client = try makeClient(repository)
        await #expect(throws: WardenError(.verificationFailed, "")) { try await client.updater.refresh() }
    }

    @Test func timestampRollbackIsRefused() async throws {
        let repository = try TUFTestRepository()
        let old = repository.files.withLock { $0["timestamp.json"]! }
        try repository.publish()
        let client = try makeClient(repository)
        try await client.updater.refresh()
        repository.files.withLock { $0["timestamp.json"] = old }
        await #expect(throws: WardenError(.verificationFailed, "")) { try await client.updater.refresh() }
    }

    @Test func targetsVersionMismatchIsRefused() async throws {
        // Mix-and-match: the snapshot pins targets v1 of a different state than the one served.
        let repository = try TUFTestRepository()
        try repository.publish()
        let client = try makeClient(repository)
        try await client.updater.refresh()
        // Targets version going backwards under a newer snapshot (snapshot rollback of targets.json).
        try repository.publish(targetsVersion: 1)
        await #expect(throws: WardenError(.verificationFailed, "")) { try await client.updater.refresh() }
    }

    @Test func rootChainRotationIsFollowedAndUnsignedRotationRefused() async throws {
        let repository = try TUFTestRepository()
        let (oldKeys, newKeys) = repository.state.withLock { state -> ([SigningKey], [SigningKey]) in
            let old = state.rootKeys
            state.rootKeys = [SigningKey.generate(.ecdsaP256), SigningKey.generate(.ed25519), SigningKey.generate(.ed25519)]
            state.timestampKey = SigningKey.generate(.ecdsaP256)
            state.root = TUFTestRepository.makeRoot(state, version: 2, expires: repository.now.addingTimeInterval(86_400))
            return (old, state.rootKeys)
        }
        // Signed only by the new keys: a client trusting root 1 must refuse it.
        try repository.publishRoot(signers: Array(newKeys.prefix(2)))
        try repository.publish()
        let client = try makeClient(repository)
        await #expect(throws: WardenError(.signatureInvalid, "")) { try await client.updater.refresh() }
        // Signed by only the old keys: the new root's own threshold fails.
        try repository.publishRoot(signers: Array(oldKeys.prefix(2)))
        await #expect(throws: WardenError(.signatureInvalid, "")) { try await client.updater.refresh() }
        // Old and new thresholds: accepted, and the rotated timestamp key verifies.
        try repository.publishRoot(signers: Array(oldKeys.prefix(2)) + Array(newKeys.suffix(2)))
        try await client.updater.refresh()
        #expect(client.updater.trusted?.root.payload.version == 2)
        // Skipping a version (3 missing, 4 present) stops at 2; a root 3 with version 4 inside is refused.
        repository.state.withLock { $0.root.version = 4 }
        try repository.publishRoot(signers: newKeys)
        repository.files.withLock { $0["3.root.json"] = $0["4.root.json"] }
        await #expect(throws: WardenError(.verificationFailed, "")) { try await client.updater.refresh() }
    }

    @Test func oversizedMetadataIsRefusedByLength() async throws {
        let repository = try TUFTestRepository()
        let client = try makeClient(repository)
        client.updater.limits.timestampBytes = 100
        await #expect(throws: WardenError(.badInput, "")) { try await client.updater.refresh() }
    }
}
