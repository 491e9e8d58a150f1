import ArgumentParser
import Foundation
import WardenAuthority
import WardenCore
import WardenStore

#if canImport(Glibc)
import Glibc
#endif

/// Options every command shares: where the home is and where the CA passphrase comes from.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Warden home directory (env WARDEN_HOME, default ./.warden).")
    var home: String?

    @Option(
        name: .long,
        help: "File holding the CA passphrase (else env WARDEN_PASSPHRASE). Never pass a passphrase on the command line.")
    var passphraseFile: String?

    /// The home directory in force.
    var wardenHome: WardenHome {
        WardenHome(path: home ?? ProcessInfo.processInfo.environment["WARDEN_HOME"] ?? "./.warden")
    }

    /// Who is acting, for the audit log.
    var actor: String {
        if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name {
            return "cli:" + String(cString: name)
        }
        return "cli:uid-\(getuid())"
    }

    /// Largest passphrase file accepted.
    static let passphraseFileLimit = 4096

    /// The CA passphrase: `--passphrase-file` first, then `WARDEN_PASSPHRASE`, then an interactive prompt
    /// when standard input is a terminal. One trailing newline of a file is ignored.
    func passphrase(minimumLength: Int = 1) throws -> [UInt8] {
        var bytes: [UInt8]
        if let passphraseFile {
            bytes = try SecureFile.read(passphraseFile, limit: Self.passphraseFileLimit, what: "passphrase file")
            if bytes.last == 0x0A { bytes.removeLast() }
            if bytes.last == 0x0D { bytes.removeLast() }
        } else if let value = ProcessInfo.processInfo.environment["WARDEN_PASSPHRASE"] {
            bytes = Array(value.utf8)
        } else if isatty(STDIN_FILENO) == 1, let typed = getpass("CA passphrase: ") {
            bytes = Array(String(cString: typed).utf8)
        } else {
            throw WardenError.badInput("no CA passphrase: set WARDEN_PASSPHRASE or use --passphrase-file FILE")
        }
        guard bytes.count >= minimumLength else {
            throw WardenError.badInput("the CA passphrase must be at least \(minimumLength) characters long")
        }
        return bytes
    }

    /// Opens the registry of an existing home (read commands never create one).
    func registry() throws -> Registry {
        let home = wardenHome
        guard SecureFile.mode(of: home.registryPath) != nil else {
            throw WardenError.notFound("no Warden registry in '\(home.path)'; run 'warden ca init' first or set --home")
        }
        return try Registry(path: home.registryPath)
    }

    /// Opens the authority (issuing CA + registry).
    func authority() throws -> Authority {
        try Authority.open(home: wardenHome, passphrase: try passphrase(), actor: actor)
    }
}

/// A command whose body throws `WardenError`s; `run()` turns them into one line on stderr and an exit status.
protocol WardenCommand: AsyncParsableCommand {
    /// The body of the command.
    func execute() async throws
}

extension WardenCommand {
    func run() async throws {
        do {
            try await execute()
        } catch let error as WardenError {
            Console.error("warden: \(error.message)")
            throw ExitCode(ExitStatus.of(error).rawValue)
        }
    }
}
