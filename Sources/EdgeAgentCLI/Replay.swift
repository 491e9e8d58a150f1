import ArgumentParser
import EdgeCore

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
                let out = try output.map { try FileOutput.create(path: $0) } ?? .standardOutput
                defer { out.close() }
                try EdgeCore.Replay.run(config: config, reader: reader, source: input) { try out.writeOrThrow($0) }
            } catch let e as EdgeError {
                throw report(e)
            }
        }
    }
}
