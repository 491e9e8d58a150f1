import Testing
import WardenPolicy

/// Brute force over a small alphabet: filters of up to 3 levels over {a, $s, "", +} with an optional trailing `#`,
/// topics of up to 4 levels over {a, $s, "", c} (`c` appears in no filter, standing for every other level).
enum BruteForce {
    static let filterLevels = ["a", "$s", "", "+"]
    static let topicLevels = ["a", "$s", "", "c"]

    static func sequences(_ alphabet: [String], upTo length: Int) -> [[String]] {
        var result: [[String]] = [[]]
        var frontier: [[String]] = [[]]
        for _ in 0..<length {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + [$0] } }
            result += frontier
        }
        return result
    }

    static let filters: [String] = {
        var result: [String] = []
        for levels in sequences(filterLevels, upTo: 3) {
            if !levels.isEmpty { result.append(levels.joined(separator: "/")) }
            if levels.count < 3 { result.append((levels + ["#"]).joined(separator: "/")) }
        }
        return result.filter { !$0.isEmpty }
    }()

    static let topics: [String] = sequences(topicLevels, upTo: 4).filter { !$0.isEmpty }.map { $0.joined(separator: "/") }
        .filter { !$0.isEmpty }

    /// Reference matcher, written independently from the spec text.
    static func matches(_ filter: String, _ topic: String) -> Bool {
        let f = filter.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let t = topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if t[0].hasPrefix("$") && (f[0] == "+" || f[0] == "#") { return false }
        func go(_ i: Int, _ j: Int) -> Bool {
            if i == f.count { return j == t.count }
            if f[i] == "#" { return true }  // parent and any children
            if j == t.count { return false }
            return (f[i] == "+" || f[i] == t[j]) && go(i + 1, j + 1)
        }
        return go(0, 0)
    }

    static let matchSets: [String: Set<String>] = {
        var sets: [String: Set<String>] = [:]
        for filter in filters { sets[filter] = Set(topics.filter { matches(filter, $0) }) }
        return sets
    }()
}

/// Deterministic generator for sampled vectors.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }
}

@Suite("topic-filter algebra")
struct TopicAlgebraTests {
    @Test("spec vectors: + and # and $-topics", arguments: [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
        ("sport/#", "sport", true),
        ("#", "sport/tennis", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("#", "$SYS/broker", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/broker", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("d/pump-001/up/#", "d/pump-002/up/x", false),
    ])
    func matching(filter: String, topic: String, expected: Bool) {
        #expect(TopicFilter.matches(filter, topic) == expected)
    }

    @Test("containment and intersection vectors", arguments: [
        ("#", "a/b", true, true),
        ("#", "$SYS/#", false, false),
        ("+/#", "#", true, true),
        ("a/#", "a", true, true),
        ("a/+", "a/#", false, true),
        ("d/+/up/#", "d/pump-001/up/#", true, true),
        ("d/pump-001/up/#", "d/+/up/#", false, true),
        ("d/pump-001/down/#", "d/+/up/#", false, false),
        ("a/+/c", "a/b/+", false, true),
    ])
    func algebra(a: String, b: String, contains: Bool, intersects: Bool) {
        #expect(TopicFilter.contains(a, b) == contains)
        #expect(TopicFilter.intersects(a, b) == intersects)
        #expect(TopicFilter.intersects(b, a) == intersects)
    }

    @Test("matches agrees with the reference matcher on every (filter, topic) pair")
    func matchesExhaustive() {
        var disagreements = 0
        for filter in BruteForce.filters {
            for topic in BruteForce.topics where TopicFilter.matches(filter, topic) != BruteForce.matches(filter, topic) {
                disagreements += 1
            }
        }
        #expect(BruteForce.filters.count > 100)
        #expect(disagreements == 0)
    }

    @Test("contains and intersects agree with set inclusion and overlap on every pair of filters")
    func containsIntersectsExhaustive() {
        let sets = BruteForce.matchSets
        var wrong: [String] = []
        for a in BruteForce.filters {
            for b in BruteForce.filters {
                let sa = sets[a]!, sb = sets[b]!
                if TopicFilter.contains(a, b) != sb.isSubset(of: sa) { wrong.append("contains(\(a), \(b))") }
                if TopicFilter.intersects(a, b) != !sa.isDisjoint(with: sb) { wrong.append("intersects(\(a), \(b))") }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(10))")
    }

    @Test("union coverage agrees with brute force on 5,000 sampled (filter, union) cases")
    func coverageSampled() {
        let sets = BruteForce.matchSets
        var random = SplitMix(state: 42)
        var wrong: [String] = []
        var positives = 0
        for _ in 0..<5000 {
            let filter = random.pick(BruteForce.filters)
            let union = (0..<Int(1 + random.next() % 3)).map { _ in random.pick(BruteForce.filters) }
            let expected = sets[filter]!.isSubset(of: union.reduce(into: Set<String>()) { $0.formUnion(sets[$1]!) })
            if expected { positives += 1 }
            if TopicFilter.covered(filter, by: union) != expected { wrong.append("\(filter) by \(union)") }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(10))")
        #expect(positives > 100)
        // A union that covers where no single member does.
        #expect(TopicFilter.covered("a/#", by: ["a", "a/+/#"]))
        #expect(!TopicFilter.contains("a", "a/#") && !TopicFilter.contains("a/+/#", "a/#"))
        #expect(!TopicFilter.covered("a/#", by: ["a/+/#"]))
        #expect(!TopicFilter.covered("$SYS/x", by: ["#", "+/x"]))
    }
}
