/// How Mosquitto 2.0's dynamic-security plugin matches ACLs, modelled exactly so the evaluator decides what the broker
/// enforces (the agreement test in `Tests/WardenBrokerTests/PolicyAgreementTests.swift` checks it against the real
/// broker).
///
/// - `publishClientSend` / `publishClientReceive` patterns match a topic name with MQTT matching
///   (``TopicFilter/matches(_:_:)``, including the `$` rule).
/// - `subscribeLiteral` matches a subscription filter that is the same string.
/// - `subscribePattern` matches a subscription filter by the plugin's own per-level comparison
///   (``subscribeMatch(acl:subscription:)``), which differs from filter containment in three ways: an ACL `#` matches
///   every filter, `$…` ones included; an ACL `+` level matches a `$…` first level; an ACL or filter that is exactly
///   `/#` is compared as if it were `#`.
/// - Within a role, literals are checked before patterns, patterns by descending priority; the first match decides;
///   no match falls through to the default access (deny, in Warden's broker).
enum DynsecSemantics {
    /// Deny topics with more levels than this are compiled as a pattern, not as literals (see ``generalizations(of:)``).
    static let maximumLiteralLevels = 8

    /// Whether the dynsec `subscribePattern` ACL `acl` matches the subscription filter `subscription`.
    static func subscribeMatch(acl: String, subscription: String) -> Bool {
        if acl == "#" { return true }
        var a = Substring(acl)
        var s = Substring(subscription)
        let aclHash = stripHash(&a)
        let subHash = stripHash(&s)
        if subHash && !aclHash { return false }
        let aclLevels = a.split(separator: "/", omittingEmptySubsequences: false)
        let subLevels = s.split(separator: "/", omittingEmptySubsequences: false)
        if aclLevels.count > subLevels.count { return false }
        if subLevels.count > aclLevels.count && !aclHash { return false }
        for index in subLevels.indices where index < aclLevels.count {
            if aclLevels[index] != "+" && aclLevels[index] != subLevels[index] { return false }
        }
        return true
    }

    /// Removes a trailing `#` (the whole filter) or `/#`; whether there was one.
    private static func stripHash(_ text: inout Substring) -> Bool {
        if text == "#" {
            text = ""
            return true
        }
        if text.utf8.count > 1 && text.hasSuffix("/#") {
            text = text.dropLast(2)
            return true
        }
        return false
    }

    /// Whether a subscribe deny on `filter` compiles to literals: a topic name (no wildcard) of at most
    /// ``maximumLiteralLevels`` levels.
    static func isLiteralDeny(_ filter: String) -> Bool {
        !TopicFilter.hasWildcards(filter) && filter.utf8.reduce(1, { $0 + ($1 == UInt8(ascii: "/") ? 1 : 0) }) <= maximumLiteralLevels
    }

    /// Every valid subscription filter that matches the topic name `topic` (MQTT matching, `$` rule included): the
    /// prefixes of `topic` with any levels replaced by `+`, ending in `#`, and `topic` itself with any levels replaced
    /// by `+`. A subscribe deny on a topic name compiles to these as `subscribeLiteral` denies, so a subscription is
    /// refused exactly when it can match the denied topic.
    static func generalizations(of topic: String) -> [String] {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let dollar = levels.first?.hasPrefix("$") ?? false
        var result: [String] = []
        // prefixes[k] = every generalization of levels[0..<k].
        var prefixes: [[String]] = [[]]
        for (index, level) in levels.enumerated() {
            let choices = (index == 0 && dollar) ? [level] : [level, "+"]
            prefixes = prefixes.flatMap { prefix in choices.map { prefix + [$0] } }
            for prefix in prefixes { result.append((prefix + ["#"]).joined(separator: "/")) }
        }
        if !dollar { result.append("#") }
        for prefix in prefixes { result.append(prefix.joined(separator: "/")) }
        return result
    }
}
