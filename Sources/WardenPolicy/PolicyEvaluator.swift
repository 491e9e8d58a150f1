import WardenCore

/// Compiles documents once and answers requests. Default deny; an explicit deny wins.
///
/// - Topic names (`mqtt:publish`, `mqtt:receive`), `mqtt:connect` on `client:<id>`: denied when an applicable deny
///   matches, else allowed when an applicable allow matches, else denied by default. `mqtt:publish` to `$SYS/…` is
///   refused whatever the policy (Mosquitto does so), except `$SYS/broker/connection/+/state`.
/// - `mqtt:subscribe` (a filter): decided exactly as the compiled dynsec role is enforced (``DynsecSemantics``):
///   1. refused (explicit deny) when it can match a topic name an applicable deny names, or when an applicable deny
///      filter with wildcards matches it as a dynsec pattern;
///   2. allowed when ONE applicable allow filter contains it (dynsec pattern match) and that allow overlaps no
///      applicable deny filter with wildcards (an allow that does grants no subscription at all);
///   3. otherwise denied by default.
///   So a subscription is allowed only if every topic it can match is allowed (up to the `$` exceptions documented in
///   `policies/README.md`).
/// - Any other request on a filter (`api:` on `device:*`, or a topic filter for publish/receive): denied when an
///   applicable deny intersects it, allowed when the union of the applicable allows covers it.
///
/// The compiled form indexes statements by action and principal (any device, device id, group, role) and splits topic
/// templates into levels once, so a topic-name decision costs a few hash lookups and level comparisons.
public struct PolicyEvaluator: Sendable {
    /// One level of a topic template.
    enum Level: Sendable, Equatable {
        case literal([UInt8])
        case plus
        case hash
        case deviceID
        case group
        case mixed(String)
    }

    /// A resource of one statement, compiled.
    struct Resource: Sendable {
        var pattern: ResourcePattern
        var levels: [Level]
    }

    /// One statement for one action.
    struct Compiled: Sendable {
        var sid: String
        var source: String
        var effect: PolicyDocument.Effect
        var condition: PolicyCondition?
        var resources: [Resource]
    }

    /// The statements of one action, indexed by principal.
    struct IndexBuilder {
        var statements: [Compiled] = []
        var anyDevice: [Int] = []
        var byDevice: [String: [Int]] = [:]
        var byGroup: [String: [Int]] = [:]
        var byRole: [String: [Int]] = [:]
    }

    /// The statements of one action, indexed by principal (a class, so a lookup copies one reference).
    final class ActionIndex: Sendable {
        let action: String
        let statements: [Compiled]
        let anyDevice: [Int]
        let byDevice: [String: [Int]]
        let byGroup: [String: [Int]]
        let byRole: [String: [Int]]

        init(action: String, _ builder: IndexBuilder) {
            self.action = action
            statements = builder.statements
            anyDevice = builder.anyDevice
            byDevice = builder.byDevice
            byGroup = builder.byGroup
            byRole = builder.byRole
        }
    }

    /// Indexes by action; few actions, so a linear scan with `==` on short strings beats hashing.
    let indexes: [ActionIndex]

    func index(_ action: String) -> ActionIndex? {
        for index in indexes where index.action == action { return index }
        return nil
    }

    /// Compiles `documents` (already validated by `PolicyDocument.parse`). Sids are qualified by the document's source
    /// only when two documents repeat one.
    public init(documents: [PolicyDocument], sources: [String]? = nil) {
        var index: [String: IndexBuilder] = [:]
        var sidCount: [String: Int] = [:]
        for document in documents { for statement in document.statements { sidCount[statement.sid, default: 0] += 1 } }
        for (position, document) in documents.enumerated() {
            let source = sources?[position] ?? "document \(position + 1)"
            for statement in document.statements {
                let principals = statement.principals.compactMap { try? Principal.parse($0, at: "") }
                let resources = statement.resources.compactMap { try? ResourcePattern.parse($0, at: "") }
                let sid = (sidCount[statement.sid] ?? 0) > 1 ? "\(source)#\(statement.sid)" : statement.sid
                for action in Set(statement.actions) {
                    let applicable = resources.filter { $0.applies(to: action) }.map { Resource(pattern: $0, levels: Self.levels($0.template)) }
                    guard !applicable.isEmpty else { continue }
                    var entry = index[action] ?? IndexBuilder()
                    let number = entry.statements.count
                    entry.statements.append(
                        Compiled(sid: sid, source: source, effect: statement.effect, condition: statement.when, resources: applicable))
                    var seen = Set<String>()
                    for principal in principals {
                        switch principal {
                        case .anyDevice: if seen.insert("*").inserted { entry.anyDevice.append(number) }
                        case .device(let id): if seen.insert("d:" + id).inserted { entry.byDevice[id, default: []].append(number) }
                        case .group(let name): if seen.insert("g:" + name).inserted { entry.byGroup[name, default: []].append(number) }
                        case .role(let name):
                            if statement.when == nil, seen.insert("r:" + name).inserted { entry.byRole[name, default: []].append(number) }
                        }
                    }
                    index[action] = entry
                }
            }
        }
        indexes = index.keys.sorted().map { ActionIndex(action: $0, index[$0]!) }
    }

    static func levels(_ template: String) -> [Level] {
        template.split(separator: "/", omittingEmptySubsequences: false).map { level in
            switch level {
            case "+": return .plus
            case "#": return .hash
            case "${device.id}", "${cert.cn}": return .deviceID
            case "${device.groups}": return .group
            default: return level.contains("${") ? .mixed(String(level)) : .literal(Array(level.utf8))
            }
        }
    }

    // MARK: Applicable statements

    /// The statement numbers of `action` that apply to `principal`, in document order, without repeats.
    func applicable(_ index: ActionIndex, _ principal: PolicyPrincipal) -> [Int] {
        switch principal {
        case .role(let name):
            return index.byRole[name] ?? []
        case .device(let id, let groups):
            var numbers = index.anyDevice
            numbers += index.byDevice[id] ?? []
            for group in groups { numbers += index.byGroup[group] ?? [] }
            if numbers.count > 1 { numbers = Array(Set(numbers)).sorted() }
            return numbers.filter { index.statements[$0].condition?.holds(deviceID: id, groups: groups) ?? true }
        }
    }

    // MARK: Fast path

    /// Whether `device` (in `groups`) may do `action` on the topic name (or, for `mqtt:connect`, client id) `name`:
    /// the decision of ``decide(principal:action:resource:)`` without its explanation. `name` must not contain `+` or
    /// `#`; for other requests use ``decide(principal:action:resource:)``. No allocation for native strings.
    public func allows(device: String, groups: [String], action: String, name: String) -> Bool {
        if action == "mqtt:publish", Self.brokerRefusesPublish(name) { return false }
        guard let index = index(action) else { return false }
        var topic = name
        var id = device
        return topic.withUTF8 { topicBytes in
            id.withUTF8 { idBytes in
                var allowed = false
                if Self.scan(index.anyDevice, index, topicBytes, idBytes, device, groups, &allowed) { return false }
                if !index.byDevice.isEmpty, let numbers = index.byDevice[device], Self.scan(numbers, index, topicBytes, idBytes, device, groups, &allowed) {
                    return false
                }
                if !index.byGroup.isEmpty {
                    for group in groups {
                        if let numbers = index.byGroup[group], Self.scan(numbers, index, topicBytes, idBytes, device, groups, &allowed) { return false }
                    }
                }
                return allowed
            }
        }
    }

    /// Visits statements: true when a deny matches; sets `allowed` when an allow does.
    @inline(__always)
    static func scan(
        _ numbers: [Int], _ index: ActionIndex, _ topic: UnsafeBufferPointer<UInt8>, _ id: UnsafeBufferPointer<UInt8>, _ device: String,
        _ groups: [String], _ allowed: inout Bool
    ) -> Bool {
        for number in numbers {
            let deny = index.statements[number].effect == .deny
            if !deny && allowed { continue }
            if let condition = index.statements[number].condition, !condition.holds(deviceID: device, groups: groups) { continue }
            for resource in index.statements[number].resources where matches(resource.levels, topic, id, device, groups) {
                if deny { return true }
                allowed = true
                break
            }
        }
        return false
    }

    /// Whether a template matches a topic name given as UTF-8 bytes (MQTT matching with the `$` rule) for one device.
    static func matches(
        _ template: [Level], _ topic: UnsafeBufferPointer<UInt8>, _ id: UnsafeBufferPointer<UInt8>, _ device: String, _ groups: [String]
    ) -> Bool {
        let slash = UInt8(ascii: "/")
        if let first = template.first, first == .plus || first == .hash, topic.first == UInt8(ascii: "$") { return false }
        var start = 0  // start of the next topic level; topic.count + 1 once every level is consumed
        for level in template {
            if case .hash = level { return true }
            guard start <= topic.count else { return false }
            var end = start
            while end < topic.count && topic[end] != slash { end += 1 }
            switch level {
            case .hash, .plus: break
            case .literal(let bytes): guard equal(bytes, topic, start, end) else { return false }
            case .deviceID: guard equal(id, topic, start, end) else { return false }
            case .group:
                guard groups.contains(where: { $0.utf8.count == end - start && $0.utf8.elementsEqual(topic[start..<end]) && ResourcePattern.isTopicLevel($0) })
                else { return false }
            case .mixed(let text):
                let found = String(decoding: topic[start..<end], as: UTF8.self)
                let candidates = text.contains("${device.groups}")
                    ? groups.filter(ResourcePattern.isTopicLevel).map { PolicyDocument.substitute(text, deviceID: device, group: $0) }
                    : [PolicyDocument.substitute(text, deviceID: device)]
                guard candidates.contains(found) else { return false }
            }
            start = end + 1
        }
        return start == topic.count + 1
    }

    @inline(__always)
    static func equal<C: Collection<UInt8>>(_ bytes: C, _ topic: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        guard bytes.count == end - start else { return false }
        var i = start
        for byte in bytes {
            if topic[i] != byte { return false }
            i += 1
        }
        return true
    }

    /// Mosquitto refuses every client publish to a topic starting with `$SYS` except bridge state.
    static func brokerRefusesPublish(_ topic: String) -> Bool {
        topic.hasPrefix("$SYS") && !TopicFilter.matches("$SYS/broker/connection/+/state", topic)
    }

    // MARK: Explained decisions

    /// Decides `action` by `principal` on `resource` (`client:…`, `topic:…`, `device:…`, `firmware:…`), with the
    /// deciding statements.
    public func decide(principal: PolicyPrincipal, action: String, resource: String) throws -> Decision {
        let request = try ResourcePattern.parse(resource, at: "request")
        guard !request.usesDeviceID else { throw WardenError.badInput("request resource '\(resource)' must not use variables") }
        return decide(principal: principal, action: action, request: request)
    }

    /// One applicable (statement, concrete filter) pair.
    struct Grant {
        var sid: String
        var effect: PolicyDocument.Effect
        var filter: String
    }

    func grants(_ principal: PolicyPrincipal, _ action: String, kind: ResourceKind) -> [Grant] {
        guard let index = index(action) else { return [] }
        var result: [Grant] = []
        for number in applicable(index, principal) {
            let statement = index.statements[number]
            for resource in statement.resources where resource.pattern.kind == kind {
                let filters: [String]
                switch principal {
                case .role:
                    if resource.pattern.usesDeviceID { continue }
                    filters = [resource.pattern.template]
                case .device(let id, let groups):
                    filters = resource.pattern.filters(deviceID: id, groups: groups)
                }
                for filter in filters { result.append(Grant(sid: statement.sid, effect: statement.effect, filter: filter)) }
            }
        }
        return result
    }

    func decide(principal: PolicyPrincipal, action: String, request: ResourcePattern) -> Decision {
        let filter = request.template
        let what = "\(principal) \(action) \(request.text)"
        let grants = self.grants(principal, action, kind: request.kind)
        func sids(_ list: [Grant]) -> [String] {
            var result: [String] = []
            for grant in list where !result.contains(grant.sid) { result.append(grant.sid) }
            return result
        }
        func deny(_ list: [Grant], _ detail: String? = nil) -> Decision {
            let names = sids(list)
            return Decision(
                effect: .deny, decidingStatements: names, reason: .explicitDeny,
                detail: detail ?? "\(what): denied by statement(s) \(names.joined(separator: ", "))")
        }
        func allow(_ list: [Grant]) -> Decision {
            let names = sids(list)
            return Decision(
                effect: .allow, decidingStatements: names, reason: .allowedBy,
                detail: "\(what): allowed by statement(s) \(names.joined(separator: ", "))")
        }
        func defaultDeny(_ why: String) -> Decision {
            Decision(effect: .deny, decidingStatements: [], reason: .defaultDeny, detail: "\(what): denied by default (\(why))")
        }
        let denies = grants.filter { $0.effect == .deny }
        let allows = grants.filter { $0.effect == .allow }
        if action == "mqtt:subscribe" && request.kind == .topic {
            return decideSubscription(filter, denies: denies, allows: allows, deny: deny, allow: allow, defaultDeny: defaultDeny)
        }
        if action == "mqtt:publish", request.kind == .topic, !TopicFilter.hasWildcards(filter), Self.brokerRefusesPublish(filter) {
            return Decision(
                effect: .deny, decidingStatements: [], reason: .brokerReserved,
                detail: "\(what): Mosquitto refuses client publishes to $SYS topics, whatever the policy")
        }
        let denying = denies.filter { TopicFilter.intersects($0.filter, filter) }
        if !denying.isEmpty { return deny(denying) }
        let overlapping = allows.filter { TopicFilter.intersects($0.filter, filter) }
        if TopicFilter.covered(filter, by: overlapping.map(\.filter)) { return allow(overlapping) }
        let partly = overlapping.isEmpty ? "no statement allows it" : "statement(s) \(sids(overlapping).joined(separator: ", ")) allow only part of it"
        return defaultDeny(partly)
    }

    func decideSubscription(
        _ filter: String, denies: [Grant], allows: [Grant], deny: ([Grant], String?) -> Decision, allow: ([Grant]) -> Decision,
        defaultDeny: (String) -> Decision
    ) -> Decision {
        let patternDenies = denies.filter { !DynsecSemantics.isLiteralDeny($0.filter) }
        let caught = denies.filter { grant in
            DynsecSemantics.isLiteralDeny(grant.filter)
                ? TopicFilter.matches(filter, grant.filter) : DynsecSemantics.subscribeMatch(acl: grant.filter, subscription: filter)
        }
        if !caught.isEmpty { return deny(caught, nil) }
        let containing = allows.filter { DynsecSemantics.subscribeMatch(acl: $0.filter, subscription: filter) }
        let usable = containing.filter { Self.usableForSubscribe($0.filter, patternDenies: patternDenies) }
        if !usable.isEmpty { return allow(usable) }
        let blocking = patternDenies.filter { deny in containing.contains { TopicFilter.intersects($0.filter, deny.filter) } }
        if !blocking.isEmpty {
            let names = containing.map(\.sid)
            return deny(
                blocking,
                "filter '\(filter)': allow statement(s) \(names.joined(separator: ", ")) overlap deny statement(s) \(blocking.map(\.sid).joined(separator: ", ")) with wildcards, so they grant no subscription")
        }
        let intersecting = denies.filter { TopicFilter.intersects($0.filter, filter) }
        if !intersecting.isEmpty { return deny(intersecting, nil) }
        if !containing.isEmpty { return defaultDeny("'/#' grants no subscription: Mosquitto 2.0 would compare it as '#'") }
        let overlapping = allows.filter { TopicFilter.intersects($0.filter, filter) }
        return defaultDeny(
            overlapping.isEmpty
                ? "no statement allows it"
                : "statement(s) \(overlapping.map(\.sid).joined(separator: ", ")) allow only part of it, and a subscription needs one allow that contains it")
    }

    /// Whether an allow filter may be compiled for subscriptions: it overlaps no deny filter with wildcards, and is not
    /// `/#`.
    static func usableForSubscribe(_ allow: String, patternDenies: [Grant]) -> Bool {
        allow != "/#" && !patternDenies.contains { TopicFilter.intersects(allow, $0.filter) }
    }
}

extension Principal {
    func matches(_ principal: PolicyPrincipal) -> Bool {
        switch (self, principal) {
        case (.role(let a), .role(let b)): return a == b
        case (.role, .device), (_, .role): return false
        case (_, .device(let id, let groups)): return matches(deviceID: id, groups: groups)
        }
    }
}
