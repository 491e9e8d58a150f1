import ArgumentParser
import Foundation
import WardenAuthority
import WardenCore
import WardenStore
import WardenUpdate

extension WardenRoot {
    /// `warden firmware …`
    struct Firmware: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "firmware",
            abstract: "Signed firmware: the TUF 1.0 repository (keys, trusted root, targets).",
            discussion: """
                Metadata lifetimes: timestamp 1 day, snapshot 7 days, targets 30 days, root 365 days. \
                'warden serve' re-signs timestamp, snapshot and targets when half of their lifetime is gone.
                """,
            subcommands: [Keys.self, Root.self, Add.self, List.self])
    }
}

extension GlobalOptions {
    /// The firmware repository of the home.
    var firmwareRepository: FirmwareRepository { FirmwareRepository(home: wardenHome) }
}

extension WardenRoot.Firmware {
    /// `warden firmware keys …`
    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keys",
            abstract: "Create or rotate the TUF role keys.", subcommands: [Init.self, Rotate.self])
    }

    /// `warden firmware root`
    struct Root: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "root",
            abstract: "Write the current root metadata: the trusted root devices are provisioned with.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Output file (default stdout).") var out: String?

        func execute() async throws {
            let bytes = try global.firmwareRepository.trustedRootBytes()
            try Console.emit(String(decoding: bytes, as: UTF8.self), to: out)
            if let out { Console.error("trusted root written to \(out)") }
        }
    }

    /// `warden firmware add`
    struct Add: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Publish a firmware image as a TUF target (length, sha256, sha512, version, hardware, release counter, Merkle root).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The image file.") var image: String
        @Option(help: "Firmware name (a-z, 0-9, '.', '_', '-').") var name: String
        @Option(help: "Version, 1 to 4 dot-separated numbers; must be above every published version of NAME.") var version: String
        @Option(parsing: .upToNextOption, help: "Hardware ids the image runs on (one or more).") var hardware: [String] = []
        @Option(help: "Block size of the per-block Merkle index: a power of two from 4KiB to 64KiB.") var blockSize: String = "64KiB"
        @Option(help: "Release counter (default: the highest published for NAME + 1).") var releaseCounter: Int64?
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let size = try Self.parseSize(blockSize)
            let registry = try global.registry()
            let release = try global.firmwareRepository.add(
                image: image, name: name, version: version, hardware: hardware, blockSize: size, releaseCounter: releaseCounter,
                passphrase: try global.passphrase(), registry: registry, actor: global.actor, now: Date())
            if json {
                Console.out(try Console.json(release))
            } else {
                Console.out("Published \(release.target) (\(release.length) bytes, release counter \(release.releaseCounter))")
                Console.out("  sha256:      \(release.sha256)")
                Console.out("  merkle root: \(release.merkleRoot) (\(release.blockSize)-byte blocks)")
            }
        }

        /// `4096`, `16KiB`, `64K`.
        static func parseSize(_ text: String) throws -> Int {
            var digits = text
            var multiplier = 1
            for suffix in ["KiB", "kiB", "K", "k"] where text.hasSuffix(suffix) {
                digits = String(text.dropLast(suffix.count))
                multiplier = 1024
                break
            }
            guard let value = Int(digits), value > 0, value <= 1 << 20 else {
                throw WardenError.badInput("--block-size '\(text.prefix(20))' is not a size such as 4096 or 64KiB")
            }
            return value * multiplier
        }
    }

    /// `warden firmware list`
    struct List: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the published firmware releases.")

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let releases = try global.firmwareRepository.list()
            if json {
                Console.out(try Console.json(releases))
                return
            }
            if releases.isEmpty {
                Console.out("no firmware published")
                return
            }
            for release in releases {
                Console.out(
                    "\(release.name)@\(release.version)  counter \(release.releaseCounter)  \(release.length) bytes  hardware \(release.hardware.joined(separator: ","))  sha256 \(release.sha256.prefix(16))…")
            }
        }
    }
}

extension WardenRoot.Firmware.Keys {
    /// `warden firmware keys init`
    struct Init: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create the TUF roles: root (2 of 3 keys, Ed25519 and ECDSA P-256, keep offline), targets, snapshot, timestamp.",
            discussion: "Keys are encrypted with the CA passphrase (mode 0600). Refuses to overwrite an existing repository.")

        @OptionGroup var global: GlobalOptions

        func execute() async throws {
            let home = global.wardenHome
            let repository = global.firmwareRepository
            if repository.isInitialized || SecureFile.mode(of: repository.keysDirectory) != nil {
                throw WardenError.alreadyExists("a firmware repository already exists in '\(repository.tufDirectory)'; refusing to overwrite it")
            }
            let passphrase = try global.passphrase(minimumLength: 8)
            try SecureFile.ensureDirectory(home.path)
            let registry = try Registry(path: home.registryPath)
            let root = try repository.initialize(passphrase: passphrase, registry: registry, actor: global.actor, now: Date())
            Console.out("Created the firmware repository in \(repository.tufDirectory)")
            for role in TUFRoleName.allCases {
                let spec = root.role(role)
                let kinds = spec.keyIDs.map { root.keys[$0]?.scheme ?? "?" }.joined(separator: ", ")
                Console.out("  \(role.rawValue): \(spec.threshold) of \(spec.keyIDs.count) (\(kinds))")
            }
            Console.out("  root keys are needed only to rotate keys: move them offline (see 'warden firmware root --out').")
        }
    }

    /// `warden firmware keys rotate ROLE`
    struct Rotate: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Replace a role's keys; publishes a new root signed by the old and the new root keys.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "root, targets, snapshot or timestamp.") var role: String

        func execute() async throws {
            guard let name = TUFRoleName(rawValue: role) else {
                throw WardenError.badInput("role '\(role.prefix(40))' is not one of root, targets, snapshot, timestamp")
            }
            let registry = try global.registry()
            let root = try global.firmwareRepository.rotate(
                name, passphrase: try global.passphrase(), registry: registry, actor: global.actor, now: Date())
            Console.out("Rotated the \(name.rawValue) keys; published root version \(root.version)")
        }
    }
}
