import Foundation
import Logging
import Testing
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenPolicy
import WardenTestSupport

@testable import WardenServer

@Suite("CRL refresher")
struct CRLRefresherTests {
    @Test("re-issues the CRL at half of its lifetime and installs it in the broker, never letting it expire")
    func refreshesBeforeNextUpdate() throws {
        let dir = try TemporaryDirectory()
        let home = WardenHome(path: dir.file("home"))
        let passphrase = Array("refresher test passphrase".utf8)
        let start = Date()
        _ = try CAInitializer.initialize(
            layout: home.ca, organization: "Refresh", rootValidity: try WardenDuration(parsing: "10y"),
            issuingValidity: try WardenDuration(parsing: "2y"), passphrase: passphrase, now: start, keyIterations: 1_000)
        let authority = try Authority.open(home: home, passphrase: passphrase, actor: "test")
        let layout = BrokerLayout(directory: dir.file("broker"))
        _ = try BrokerSetup.write(
            layout: layout, port: 18_999, bindAddress: "127.0.0.1", names: [], authority: authority,
            policies: [PolicyDocument.builtInDefault], user: nil, now: start)
        let refresher = CRLRefresher(authority: authority, layout: layout, logger: Logger(label: "test"))

        func installed() throws -> CertificateRevocationList {
            try CertificateRevocationList(pemEncoded: try String(contentsOfFile: layout.crl, encoding: .utf8))
        }
        let first = try installed()
        // Early in its life: nothing happens.
        try refresher.refreshIfNeeded(now: start.addingTimeInterval(86_400))
        #expect(try installed().crlNumber == first.crlNumber)
        // Past half of its 7-day life: a fresh CRL with a higher number, valid well beyond the old nextUpdate.
        let later = start.addingTimeInterval(4 * 86_400)
        try refresher.refreshIfNeeded(now: later)
        let refreshed = try installed()
        #expect((refreshed.crlNumber ?? 0) > (first.crlNumber ?? 0))
        #expect(try #require(refreshed.nextUpdate) > (try #require(first.nextUpdate)))
        #expect(try String(contentsOfFile: layout.crl, encoding: .utf8) == (try String(contentsOfFile: home.ca.crl, encoding: .utf8)))
        // A broker copy that lags behind the authority's CRL (e.g. revoked while the broker was down) is replaced.
        try FileManager.default.removeItem(atPath: layout.crl)
        try Data(first.pemEncoded.utf8).write(to: URL(fileURLWithPath: layout.crl))
        try refresher.refreshIfNeeded(now: later.addingTimeInterval(60))
        #expect(try installed().crlNumber == refreshed.crlNumber)
    }
}
