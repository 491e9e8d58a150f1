import Foundation
import WardenCore

extension PolicyDocument {
    /// Reads the documents at `path`: one file, or every `*.json` of a directory in name order. Each is parsed and
    /// validated; errors name the file and the statement.
    public static func load(path: String) throws -> [(document: PolicyDocument, source: String)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw WardenError.badInput("no policy file or directory '\(path)'")
        }
        let files: [String]
        if isDirectory.boolValue {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            guard !names.isEmpty else { throw WardenError.badInput("policy directory '\(path)' has no *.json documents") }
            files = names.map { path + "/" + $0 }
        } else {
            files = [path]
        }
        return try files.map { file in
            (try parse(try SecureFile.read(file, limit: maximumSize, what: "policy file"), source: file), file)
        }
    }
}
