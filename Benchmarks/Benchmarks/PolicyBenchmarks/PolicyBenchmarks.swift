import Benchmark
import Foundation
import WardenPolicy

/// Policy decisions per second with 10,000 devices and 100 statements. The same fleet, policy and request sequence as
/// `scripts/bench-cedar.py` (Cedar via cedarpy), which documents the statements; figures in docs/PERFORMANCE.md.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 100
    )

    let devices = 10_000
    let groupCount = 50
    func deviceID(_ i: Int) -> String { String(format: "dev-%05d", i) }
    func group(_ i: Int) -> String { String(format: "g%02d", i % groupCount) }

    var statements: [PolicyDocument.Statement] = [
        .init(sid: "publish-own-up", effect: .allow, principals: ["device:*"], actions: ["mqtt:publish"], resources: ["topic:d/${device.id}/up/#"]),
        .init(
            sid: "own-down", effect: .allow, principals: ["device:*"], actions: ["mqtt:subscribe", "mqtt:receive"],
            resources: ["topic:d/${device.id}/down/#"]),
        .init(sid: "no-secret", effect: .deny, principals: ["device:*"], actions: ["mqtt:publish"], resources: ["topic:d/${device.id}/up/secret"]),
    ]
    for n in 0..<groupCount {
        let name = String(format: "g%02d", n)
        statements.append(.init(sid: "fleet-\(name)", effect: .allow, principals: ["group:\(name)"], actions: ["mqtt:receive"], resources: ["topic:fleet/\(name)/#"]))
    }
    for n in 0..<47 {
        let name = String(format: "g%02d", n)
        statements.append(
            .init(sid: "restricted-\(name)", effect: .deny, principals: ["group:\(name)"], actions: ["mqtt:receive"], resources: ["topic:fleet/\(name)/restricted/#"]))
    }
    precondition(statements.count == 100)
    let evaluator = PolicyEvaluator(documents: [PolicyDocument(version: 1, description: nil, statements: statements)])

    // The request sequence of scripts/bench-cedar.py (same LCG).
    struct Request { var device: String; var groups: [String]; var action: String; var topic: String }
    var requests: [Request] = []
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    for _ in 0..<100_000 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let r = Int(state >> 33)
        let i = r % devices
        let other = (i + 1 + (r >> 14) % (devices - 1)) % devices
        let me = deviceID(i)
        let (action, topic): (String, String)
        switch (r >> 7) % 8 {
        case 0: (action, topic) = ("mqtt:publish", "d/\(me)/up/telemetry")
        case 1: (action, topic) = ("mqtt:publish", "d/\(me)/up/secret")
        case 2: (action, topic) = ("mqtt:publish", "d/\(deviceID(other))/up/telemetry")
        case 3: (action, topic) = ("mqtt:receive", "d/\(me)/down/config")
        case 4: (action, topic) = ("mqtt:receive", "fleet/\(group(i))/status")
        case 5: (action, topic) = ("mqtt:receive", "fleet/\(group(i))/restricted/key")
        case 6: (action, topic) = ("mqtt:receive", "fleet/\(group(other))/status")
        default: (action, topic) = ("mqtt:subscribe", "d/\(me)/down/config")
        }
        requests.append(Request(device: me, groups: [group(i)], action: action, topic: topic))
    }
    let allowed = requests.filter { evaluator.allows(device: $0.device, groups: $0.groups, action: $0.action, name: $0.topic) }.count
    print("PolicyBenchmarks: 100,000 requests, \(allowed) allowed (scripts/bench-cedar.py must print the same)")
    let sequence = requests

    // One iteration = 1000 decisions (scalingFactor .kilo): throughput reads as decisions/s × 1000.
    Benchmark("Policy decision (allow/deny), 10,000 devices x 100 statements") { benchmark in
        var i = 0
        var count = 0
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 {
                let request = sequence[i]
                if evaluator.allows(device: request.device, groups: request.groups, action: request.action, name: request.topic) { count += 1 }
                i = i == sequence.count - 1 ? 0 : i + 1
            }
        }
        blackHole(count)
    }

    Benchmark("Policy decision with explanation (decide), 10,000 devices x 100 statements") { benchmark in
        var i = 0
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 {
                let request = sequence[i]
                blackHole(
                    try? evaluator.decide(
                        principal: .device(id: request.device, groups: request.groups), action: request.action, resource: "topic:" + request.topic))
                i = i == sequence.count - 1 ? 0 : i + 1
            }
        }
    }

    Benchmark("Policy compile (100 statements) and one dynsec role", configuration: .init(scalingFactor: .one)) { benchmark in
        for _ in benchmark.scaledIterations {
            let compiled = PolicyEvaluator(documents: [PolicyDocument(version: 1, description: nil, statements: statements)])
            blackHole(DynsecCompiler.role(for: "dev-00042", groups: ["g42"], evaluator: compiled))
        }
    }
}
