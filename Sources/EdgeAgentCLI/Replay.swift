import ArgumentParser
import EdgeCore
import Foundation

extension WardenAgent {
    /// `warden-agent replay`: runs the filtering core offline on recorded data.
    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a pipeline offline over a recorded CSV and print JSON Lines.",
            discussion: """
                Input columns: ts (epoch seconds or ISO 8601), sensor, and value or lat,lon. \
                Output: one JSON object per line with kind = value | alert | gap | stats.
                """
        )

        @Option(name: .long, help: "Pipeline configuration (JSON, see docs/EDGE.md).")
        var pipeline: String

        @Option(name: .long, help: "Recorded input CSV.")
        var input: String

        @Option(name: .long, help: "Write JSON Lines here instead of stdout.")
        var output: String?

        func run() throws {
            do {
                let config = try PipelineConfig.load(path: pipeline)
                let reader = try CSVSampleReader(path: input)
                // A file output is written next to its destination and renamed on success, so a
                // failed replay never leaves a truncated JSONL behind.
                let temporary = output.map { $0 + ".partial" }
                let out = try temporary.map { try FileOutput.create(path: $0) } ?? .standardOutput
                do {
                    try EdgeCore.Replay.run(config: config, reader: reader, source: input) { try out.writeOrThrow($0) }
                    out.close()
                } catch {
                    out.close()
                    if let temporary { try? FileManager.default.removeItem(atPath: temporary) }
                    throw error
                }
                if let temporary, let output {
                    _ = try? FileManager.default.removeItem(atPath: output)
                    do {
                        try FileManager.default.moveItem(atPath: temporary, toPath: output)
                    } catch {
                        throw EdgeError(.io, "\(output): cannot write the output file")
                    }
                }
            } catch let e as EdgeError {
                throw report(e)
            }
        }
    }
}
