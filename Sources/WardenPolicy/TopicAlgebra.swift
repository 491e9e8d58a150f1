/// Topic-filter algebra (MQTT 5.0 §4.7): matching, containment, intersection and union coverage.
///
/// Exact semantics:
/// - levels are separated by `/`; empty levels are levels;
/// - `+` matches exactly one level (possibly empty);
/// - `#` (last level only) matches its parent level and any number of child levels, so `a/#` matches `a`, `a/b`, `a/b/c`;
/// - a filter whose first level is `+` or `#` does not match a topic whose first level starts with `$` (§4.7.2);
/// - topic names are at least one character long, so the one empty level `""` is not a topic (`/#` and `+` do not
///   intersect).
///
/// All functions assume their arguments are valid filters (see ``TopicFilter/validate(_:at:)``); topic names are
/// filters without wildcards.
extension TopicFilter {
    typealias Levels = [Substring]

    static func levels(_ filter: String) -> Levels {
        filter.split(separator: "/", omittingEmptySubsequences: false)
    }

    static func isWildcard(_ level: Substring) -> Bool { level == "+" || level == "#" }

    /// Whether `filter` contains `+` or `#`.
    public static func hasWildcards(_ filter: String) -> Bool {
        levels(filter).contains { isWildcard($0) }
    }

    /// Whether the filter matches the topic name.
    public static func matches(_ filter: String, _ topic: String) -> Bool {
        matches(levels(filter), levels(topic))
    }

    static func matches(_ f: Levels, _ t: Levels) -> Bool {
        if let first = f.first, let topicFirst = t.first, isWildcard(first), topicFirst.hasPrefix("$") { return false }
        var i = 0
        while i < f.count {
            if f[i] == "#" { return t.count >= i }
            guard i < t.count else { return false }
            if f[i] != "+" && f[i] != t[i] { return false }
            i += 1
        }
        return t.count == f.count
    }

    /// Whether every topic `inner` can match is matched by `outer`.
    public static func contains(_ outer: String, _ inner: String) -> Bool {
        contains(levels(outer), levels(inner))
    }

    static func contains(_ o: Levels, _ n: Levels) -> Bool {
        if let of = o.first, let nf = n.first, isWildcard(of), !isWildcard(nf), nf.hasPrefix("$") { return false }
        var i = 0
        while true {
            if i == o.count { return i == n.count }
            if o[i] == "#" { return true }
            if i == n.count { return false }
            if n[i] == "#" {
                // `#` matches its parent, unless that is no topic (nothing, or the one empty level), then one or more
                // further levels.
                if parentIsTopic(n, i) { return false }
                return contains(o, Array(n[..<i]) + ["+", "#"])
            }
            if o[i] != "+" && (n[i] == "+" || n[i] != o[i]) { return false }
            i += 1
        }
    }

    /// Whether some topic is matched by both filters.
    public static func intersects(_ a: String, _ b: String) -> Bool {
        intersects(levels(a), levels(b))
    }

    static func intersects(_ a: Levels, _ b: Levels) -> Bool {
        if let af = a.first, let bf = b.first {
            if isWildcard(af), !isWildcard(bf), bf.hasPrefix("$") { return false }
            if isWildcard(bf), !isWildcard(af), af.hasPrefix("$") { return false }
        }
        // Build the meet (the filter matching exactly the common topics), then refuse the one non-topic `""`.
        var meet: Levels = []
        var i = 0
        while true {
            if i < a.count && a[i] == "#" { meet += b[i...]; break }
            if i < b.count && b[i] == "#" { meet += a[i...]; break }
            if i == a.count || i == b.count {
                guard a.count == b.count else { return false }
                break
            }
            if a[i] != "+" && b[i] != "+" && a[i] != b[i] { return false }
            meet.append(a[i] == "+" ? b[i] : a[i])
            i += 1
        }
        return !(meet.count == 1 && meet[0] == "")
    }

    /// Whether the first `i` levels of `f` form a topic name: the empty topic and the one empty level (`""`) are not
    /// topics (MQTT 5.0 §4.7.3: topic names are at least one character long).
    static func parentIsTopic(_ f: Levels, _ i: Int) -> Bool {
        !(i == 0 || (i == 1 && f[0] == ""))
    }

    /// Whether every topic `filter` can match is matched by at least one of `union` (union coverage: `a/#` is
    /// covered by `{a, a/+/#}` although by neither alone).
    public static func covered(_ filter: String, by union: [String]) -> Bool {
        let f = levels(filter)
        var candidates = union.map(levels)
        // A `$` first level is only matched by filters that name it.
        if let first = f.first, !isWildcard(first), first.hasPrefix("$") {
            candidates.removeAll { $0.first.map(isWildcard) ?? true }
        }
        return covered(f, 0, candidates)
    }

    static func covered(_ f: Levels, _ i: Int, _ candidates: [Levels]) -> Bool {
        // Every candidate here agrees with every topic of `f` on levels 0..<i.
        if candidates.isEmpty { return false }
        if candidates.contains(where: { $0.count > i && $0[i] == "#" }) { return true }
        if i == f.count { return candidates.contains { $0.count == i } }
        let level = f[i]
        if level == "#" {
            // The parent (length i), then everything longer: f[..<i]/+/#.
            if parentIsTopic(f, i) { guard candidates.contains(where: { $0.count == i }) else { return false } }
            return covered(Array(f[..<i]) + ["+", "#"], i, candidates)
        }
        let next: [Levels]
        if level == "+" {
            next = candidates.filter { $0.count > i && $0[i] == "+" }
        } else {
            next = candidates.filter { $0.count > i && ($0[i] == level || $0[i] == "+") }
        }
        return covered(f, i + 1, next)
    }
}
