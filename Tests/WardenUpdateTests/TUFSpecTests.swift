import Testing
@testable import WardenUpdate

@Test func specVersionIsOnePointZero() {
    #expect(TUFSpec.version.hasPrefix("1.0."))
}
