import Foundation
import WardenCore
import WardenHTTPClient
import WardenMQTT
import WardenPKI
import WardenUpdate

/// The OTA client's state machine behind ``OTAFeature``: assignment → TUF verification → block download → install
/// → health check → commit or rollback, each transition persisted in `STATE/ota/job.json`.
///
/// `@unchecked Sendable`: it is used by one task at a time: ``recoverAtStart()`` runs before the session starts,
/// then the feature's `run`, of which the session runs at most one at a time.
final class OTAEngine: @unchecked Sendable {
    /// Blocks asked for per request: bounds what is in flight (and buffered in the feature's inbox).
    static let requestWindow = 256
    /// Rejections of the same block index before the download is abandoned.
    static let maximumRejections = 3
    /// `unavailable` answers before the download is abandoned.
    static let maximumUnavailable = 5
    /// `not_found` / `forbidden` answers before the download is abandoned.
    static let maximumRefusals = 3
    /// Unanswered block requests in a row before the missing blocks are fetched over HTTPS (Range).
    static let httpsBlockFallbackRounds = 4
    /// Blocks per HTTPS Range request.
    static let httpsRangeBlocks = 16
    /// How long the retained metadata may stay incomplete before HTTPS is tried.
    static let httpsFallbackAfter: TimeInterval = 3
    /// How long an assigned target may stay unknown to the trusted targets metadata before the job fails.
    static let unknownTargetTimeout: TimeInterval = 30
    /// How long metadata may stay unavailable or inconsistent (other than expired) before the job fails.
    static let metadataTimeout: TimeInterval = 60

    enum Event: Sendable {
        case message(MQTTMessage)
        case tick
        case closed
    }

    /// Transient request state of the current download (not persisted: a restart asks afresh).
    struct Flow {
        var requestID = UInt64.random(in: 1...(UInt64.max / 2))
        var askNow = true
        var quietDeadline = Date.distantFuture
        var notBefore = Date.distantPast
        var quietRounds = 0
        var unavailable = 0
        var refusals = 0
        var rejections: [Int: Int] = [:]
        var fetched = 0
        var httpsFailures = 0
    }

    let settings: OTAFeature.Settings
    let log: @Sendable (String) -> Void
    let store: SlotStore
    var state: OTAJobFile
    var metadata: [String: [UInt8]] = [:]
    var download: BlockDownload?
    var flow = Flow()
    var assignedAt = Date()
    var nextResolveAt = Date.distantPast
    var nextReportAt = Date.distantPast

    var otaDirectory: String { settings.stateDirectory + "/ota" }
    var jobPath: String { otaDirectory + "/job.json" }
    var tufDirectory: String { otaDirectory + "/tuf" }
    var downloadDirectory: String { otaDirectory + "/download" }
    var assignmentTopic: String { "d/\(settings.device.rawValue)/down/ota/assignment" }
    var blockTopic: String { OTATopics.blocks(device: settings.device.rawValue) }

    init(settings: OTAFeature.Settings, log: @escaping @Sendable (String) -> Void) throws {
        self.settings = settings
        self.log = { log("ota: " + $0) }
        store = SlotStore(stateDirectory: settings.stateDirectory)
        state = try OTAJobFile.load(settings.stateDirectory + "/ota/job.json")
    }

    // MARK: Persistence

    func save() {
        do {
            try SecureFile.ensureDirectory(otaDirectory)
            try state.save(jobPath)
        } catch {
            log("cannot persist the OTA job: \(error)")
        }
    }

    /// Sets the current job's phase (and whatever `change` edits) and persists it.
    func update(_ change: (inout OTAJob) -> Void) {
        guard var job = state.job else { return }
        change(&job)
        state.job = job
        save()
    }

    func queueReport(_ job: OTAJob, _ reportState: String, reason: String? = nil) {
        state.pending.append(OTAPendingReport(rollout: job.rollout, state: reportState, reason: reason))
        nextReportAt = .distantPast
    }

    // MARK: Start-up recovery

    func recoverAtStart() async {
        let outcome: RecoveryOutcome
        do {
            outcome = try store.recover()
        } catch {
            log("slot recovery failed: \(error)")
            return
        }
        log("slot recovery: \(outcome)")
        let job = state.job
        switch outcome {
        case .trialPending(let slot):
            let trialSHA = ((try? store.manifest(of: slot)) ?? nil)?.sha256
            if let job, job.phase == .installing || job.phase == .trial, let sha = job.resolved.map({ Digest.hex($0.block.sha256) }), sha == trialSHA {
                update { $0.phase = .trial }
                await finishTrial()
            } else {
                do {
                    try store.rollback(reason: "no OTA job owns the pending install in slot \(slot)")
                    log("rolled back the pending install in slot \(slot): no OTA job owns it")
                } catch {
                    log("cannot roll back the pending install in slot \(slot): \(error)")
                }
            }
        case .trialDiscarded:
            if job?.phase == .trial { update { $0.phase = .installing } }
        default:
            break
        }
        if state.job?.phase == .installing { await install() }
        if state.job?.phase == .trial { await finishTrial() }
    }

    // MARK: The feature's run loop

    func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        let (events, sink) = AsyncStream<Event>.makeStream()
        let forwarder = Task {
            for await message in inbox { sink.yield(.message(message)) }
            sink.yield(.closed)
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                sink.yield(.tick)
            }
        }
        defer {
            forwarder.cancel()
            ticker.cancel()
            sink.finish()
            try? download?.checkpoint()
        }
        link.health.ok("ota")
        // A new connection: ask for missing blocks afresh, re-send owed reports now.
        flow.askNow = true
        flow.notBefore = .distantPast
        nextReportAt = .distantPast
        for await event in events {
            try Task.checkCancellation()
            switch event {
            case .message(let message): await handle(message, link: link)
            case .tick: try await step(link: link)
            case .closed: return
            }
            guard link.isConnected else { return }
        }
    }

    func handle(_ message: MQTTMessage, link: AgentLink) async {
        if let name = OTAMetadataFetcher.fileName(ofTopic: message.topic) {
            if message.payload.isEmpty {
                metadata[name] = nil
            } else if message.payload.count <= OTAMetadataFetcher.maximumFileBytes {
                metadata[name] = message.payload
            }
        } else if message.topic == assignmentTopic {
            handleAssignment(message.payload)
        } else if message.topic == blockTopic {
            await handleBlock(message.payload)
        }
    }

    // MARK: Assignments

    struct Assignment: Decodable {
        var rollout: Int64
        var target: String
    }

    func handleAssignment(_ payload: [UInt8]) {
        if payload.isEmpty {
            if let job = state.job, job.phase == .assigned || job.phase == .downloading {
                closeDownload()
                update { $0.phase = .cancelled }
                log("assignment of rollout \(job.rollout) withdrawn; job cancelled")
            }
            return
        }
        guard payload.count <= 4096, let assignment = try? JSONDecoder().decode(Assignment.self, from: Data(payload)),
            assignment.rollout > 0, TUFPath.isSafe(assignment.target)
        else {
            log("ignoring a malformed assignment (\(payload.count) bytes)")
            return
        }
        if let job = state.job, job.rollout == assignment.rollout { return }
        closeDownload()
        state.job = OTAJob(rollout: assignment.rollout, target: assignment.target)
        save()
        assignedAt = Date()
        nextResolveAt = Date().addingTimeInterval(0.3)
        log("assignment: rollout \(assignment.rollout), target \(assignment.target)")
    }

    // MARK: Steps

    func step(link: AgentLink) async throws {
        try await sendPending(link: link)
        guard let job = state.job, !job.phase.isFinal else { return }
        switch job.phase {
        case .assigned: await resolve(job)
        case .downloading: try await driveDownload(link: link)
        case .installing: await install()
        case .trial: await finishTrial()
        case .succeeded, .failed, .cancelled: break
        }
    }

    func sendPending(link: AgentLink) async throws {
        guard Date() >= nextReportAt else { return }
        while let report = state.pending.first, link.isConnected {
            let payload: [UInt8]
            do {
                payload = try OTAStatusReport.payload(device: settings.device, report: report, keyPath: settings.keyPath)
            } catch {
                log("cannot sign the \(report.state) report of rollout \(report.rollout): \(error); dropped")
                state.pending.removeFirst()
                save()
                continue
            }
            let code = try await link.publish(MQTTMessage(topic: OTATopics.status(device: settings.device.rawValue), payload: payload, qos: 1))
            guard code < 128 else {
                log("the broker refused the \(report.state) report of rollout \(report.rollout) (PUBACK \(code)); retrying in 5 s")
                nextReportAt = Date().addingTimeInterval(5)
                return
            }
            state.pending.removeFirst()
            save()
            log("reported \(report.state) for rollout \(report.rollout)\(report.reason.map { ": \($0)" } ?? "")")
        }
    }

    // MARK: Final states

    func fail(_ reason: String) {
        guard let job = state.job else { return }
        closeDownload()
        removeDownloadFiles(job)
        var failed = job
        failed.phase = .failed
        failed.reason = reason
        state.job = failed
        queueReport(failed, "failed", reason: reason)
        save()
        log("rollout \(job.rollout) failed: \(reason)")
    }

    func succeed(_ note: String) {
        guard let job = state.job else { return }
        closeDownload()
        removeDownloadFiles(job)
        var done = job
        done.phase = .succeeded
        state.job = done
        queueReport(done, "succeeded")
        save()
        log("rollout \(job.rollout) succeeded: \(note)")
    }

    func closeDownload() {
        try? download?.checkpoint()
        download = nil
        flow = Flow()
    }

    func destination(_ resolved: OTAJob.Resolved) -> String { downloadDirectory + "/" + Digest.hex(resolved.block.sha256) }

    /// Removes every entry of `directory` except the download files of the image `keeping` (its hex SHA-256: the
    /// image, `.part` and `.state`). A device on small flash must not collect the partial downloads of assignments
    /// that were replaced (aborted rollouts, newer releases). Returns how many files and bytes went.
    static func pruneDownloads(in directory: String, keeping: String) -> (files: Int, bytes: Int) {
        let kept: Set<String> = [keeping, keeping + ".part", keeping + ".state"]
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return (0, 0) }
        var files = 0
        var bytes = 0
        for name in names where !kept.contains(name) {
            let path = directory + "/" + name
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            if (try? FileManager.default.removeItem(atPath: path)) != nil {
                files += 1
                bytes += size
            }
        }
        return (files, bytes)
    }

    func removeDownloadFiles(_ job: OTAJob) {
        guard let resolved = job.resolved else { return }
        let path = destination(resolved)
        for file in [path, path + ".part", path + ".state"] { try? FileManager.default.removeItem(atPath: file) }
    }

    // MARK: TUF verification of the assigned target

    func resolve(_ job: OTAJob) async {
        let now = Date()
        guard now >= nextResolveAt else { return }
        nextResolveAt = now.addingTimeInterval(1)
        let waited = now.timeIntervalSince(assignedAt)
        guard let root = settings.tufRoot else { return fail("the agent config has no TUF root; firmware cannot be verified") }
        do {
            if SecureFile.mode(of: tufDirectory + "/root.json") == nil {
                try TUFUpdater.provision(trustedRoot: root, metadataDirectory: tufDirectory)
            }
        } catch {
            return fail("cannot provision the TUF root: \(error)")
        }
        var updater = TUFUpdater(metadataDirectory: tufDirectory, fetcher: OTAMetadataFetcher(files: metadata))
        do {
            try await updater.refresh(now: now)
        } catch let error as WardenError where error.code == .notFound || error.code == .storage {
            // The retained metadata is incomplete: after a moment, try HTTPS.
            var recovered = false
            if waited >= Self.httpsFallbackAfter, let base = settings.httpsURL, let url = URL(string: base + "/tuf/metadata"),
                let fetcher = try? HTTPFetcher(metadataBaseURL: url, idleTimeout: 5, totalTimeout: 20, caFile: settings.httpsCAFile)
            {
                updater = TUFUpdater(metadataDirectory: tufDirectory, fetcher: fetcher)
                do {
                    try await updater.refresh(now: now)
                    recovered = true
                    log("TUF metadata refreshed over HTTPS (the retained metadata was incomplete)")
                } catch let https as WardenError where https.code != .notFound && https.code != .storage {
                    return metadataFailure(https, waited: waited)
                } catch {}
            }
            if !recovered {
                if waited >= Self.metadataTimeout { fail("TUF metadata unavailable: \(error.message)") }
                return
            }
        } catch let error as WardenError {
            return metadataFailure(error, waited: waited)
        } catch {
            return fail("TUF refresh failed: \(error)")
        }
        guard let info = updater.targetInfo(job.target) else {
            if waited >= Self.unknownTargetTimeout { fail("target \(job.target) is not in the signed targets metadata") }
            return
        }
        let resolved: OTAJob.Resolved
        do {
            resolved = try Self.resolved(info, name: job.target)
        } catch {
            return fail("target \(job.target) has unusable signed metadata: \(error)")
        }
        guard let hardware = settings.hardware, resolved.hardware.contains(hardware) else {
            return fail("hardware mismatch: \(job.target) runs on \(resolved.hardware.joined(separator: ",")), this device is \(settings.hardware ?? "unconfigured")")
        }
        let sha = Digest.hex(resolved.block.sha256)
        if let active = try? store.status().activeManifest, active.sha256 == sha {
            update { $0.resolved = resolved }
            return succeed("\(resolved.name)@\(resolved.version) is already the active release")
        }
        do {
            try store.checkFloor(name: resolved.name, version: resolved.version, releaseCounter: resolved.releaseCounter)
        } catch let error as WardenError {
            return fail("downgrade below floor: \(error.message)")
        } catch {
            return fail("downgrade below floor: \(error)")
        }
        var downloading = job
        downloading.resolved = resolved
        downloading.phase = .downloading
        if !downloading.downloadingReported {
            downloading.downloadingReported = true
            queueReport(downloading, "downloading")
        }
        state.job = downloading
        save()
        log("verified \(job.target): \(resolved.name)@\(resolved.version), \(resolved.block.length) bytes, sha256 \(sha)")
    }

    func metadataFailure(_ error: WardenError, waited: TimeInterval) {
        let message = error.message
        if message.contains("timestamp metadata"), message.contains("expired") {
            return fail("timestamp expired: \(message)")
        }
        if message.contains("expired") { return fail("metadata expired: \(message)") }
        // Other inconsistencies may be a publication in progress: retry for a while.
        if waited >= 10 { fail("TUF metadata verification failed: \(message)") }
    }

    /// The verified facts of a target entry (`custom`: name, version, release_counter, hardware, block_size,
    /// merkle_root; `length`, `hashes.sha256`).
    static func resolved(_ info: TargetFileInfo, name: String) throws -> OTAJob.Resolved {
        guard let custom = info.custom, let firmware = custom["name"]?.stringValue, let version = custom["version"]?.stringValue,
            let counter = custom["release_counter"]?.intValue, let blockSize = custom["block_size"]?.intValue,
            let merkle = custom["merkle_root"]?.stringValue.flatMap(Digest.bytes(fromHex:)),
            let hardware = custom["hardware"]?.arrayValue?.compactMap(\.stringValue),
            let sha = info.hashes["sha256"].flatMap(Digest.bytes(fromHex:))
        else { throw WardenError.badInput("custom name, version, release_counter, hardware, block_size or merkle_root is missing") }
        let block = try BlockTarget(sha256: sha, length: Int(info.length), blockSize: Int(blockSize), merkleRoot: merkle)
        return OTAJob.Resolved(name: firmware, version: version, releaseCounter: counter, hardware: hardware, block: block)
    }

    // MARK: Download

    func jitter(_ cap: Double) -> TimeInterval { Double.random(in: 0...max(0, cap)) }

    func driveDownload(link: AgentLink) async throws {
        guard let job = state.job, let resolved = job.resolved else { return fail("download without a verified target") }
        if download == nil {
            let path = destination(resolved)
            if FileManager.default.fileExists(atPath: path) {
                // Finished before a restart; install() re-checks the image against the manifest.
                update { $0.phase = .installing }
                return
            }
            do {
                try SecureFile.ensureDirectory(downloadDirectory)
                // Only one download is ever resumed: what an earlier, replaced assignment left behind goes.
                let pruned = Self.pruneDownloads(in: downloadDirectory, keeping: Digest.hex(resolved.block.sha256))
                if pruned.files > 0 { log("discarded \(pruned.files) file(s), \(pruned.bytes) bytes, of replaced downloads") }
                let opened = try BlockDownload(target: resolved.block, destination: path, checkpointInterval: 16)
                download = opened
                flow = Flow()
                if opened.receivedCount > 0 {
                    log("resuming at \(opened.receivedCount)/\(resolved.block.blockCount) blocks")
                } else {
                    log("downloading \(job.target): \(resolved.block.blockCount) blocks of \(resolved.block.blockSize) bytes")
                }
            } catch {
                return fail("cannot open the download: \(error)")
            }
        }
        guard let download else { return }
        if download.isComplete { return await complete() }
        let now = Date()
        guard now >= flow.notBefore, flow.askNow || now >= flow.quietDeadline else { return }
        if flow.quietRounds >= Self.httpsBlockFallbackRounds << min(flow.httpsFailures, 4), let base = settings.httpsURL {
            // The block service stays silent (down, or its topics refused): HTTPS Range from the authority.
            if await fetchOverHTTPS(download, job: job, resolved: resolved, base: base) {
                if download.isComplete { return await complete() }
            } else {
                flow.httpsFailures += 1
            }
        }
        flow.requestID &+= 1
        guard let request = download.request(requestID: flow.requestID, maxBits: Self.requestWindow) else { return }
        let code = try await link.publish(MQTTMessage(topic: OTATopics.request(device: settings.device.rawValue), payload: try request.encoded(), qos: 1))
        if code >= 128 { log("the broker refused the block request (PUBACK \(code))") }
        flow.askNow = false
        flow.quietDeadline = now.addingTimeInterval(2 + jitter(min(30, pow(2, Double(flow.quietRounds)))))
        flow.quietRounds += 1
    }

    /// The HTTPS Range fallback (`firmware/OTA-PROTOCOL.md` §8): fetches the missing blocks from
    /// `<https_url>/tuf/targets/<consistent target path>`, ``httpsRangeBlocks`` per request, over the libcurl client
    /// that trusts only the verified config's bundle. Such blocks carry no Merkle proof: the whole-image SHA-256 (signed
    /// by TUF) checks them in ``complete()``, which discards the image on a mismatch. Progress is checkpointed per
    /// request, so a restart resumes either way. Returns false if nothing could be fetched.
    func fetchOverHTTPS(_ download: BlockDownload, job: OTAJob, resolved: OTAJob.Resolved, base: String) async -> Bool {
        let target = resolved.block
        let path = TUFPath.consistentTargetPath(job.target, hash: Digest.hex(target.sha256))
        let url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/tuf/targets/" + path
        var fetched = 0
        do {
            guard url.lowercased().hasPrefix("https://") else { throw WardenError.badInput("the config's https_url is not https") }
            let client = try HTTPSClient(options: TLSOptions(caFile: settings.httpsCAFile), connectTimeout: .seconds(10))
            var index = 0
            while index < target.blockCount {
                try Task.checkCancellation()
                guard download.isMissing(index) else {
                    index += 1
                    continue
                }
                var end = index
                while end + 1 < target.blockCount, end + 1 - index < Self.httpsRangeBlocks, download.isMissing(end + 1) { end += 1 }
                let lower = index * target.blockSize
                let upper = min(target.length, (end + 1) * target.blockSize) - 1
                let response = try await client.get(url, range: lower...upper, maxBytes: upper - lower + 1, timeout: .seconds(120))
                guard response.status == 206, response.body.count == upper - lower + 1 else {
                    throw WardenError.storage("HTTP \(response.status) with \(response.body.count) bytes for bytes \(lower)-\(upper)")
                }
                for block in index...end {
                    let start = (block - index) * target.blockSize
                    let slice = Array(response.body[start..<min(response.body.count, start + target.blockSize)])
                    if case .rejected(_, let reason) = download.acceptUnproven(index: block, data: slice) {
                        throw WardenError.storage(reason)
                    }
                    fetched += 1
                    flow.fetched += 1
                }
                try download.checkpoint()
                index = end + 1
            }
            log("fetched \(fetched) block(s) over HTTPS (Range) from \(url); the block service did not answer")
            return true
        } catch {
            log("HTTPS Range fallback from \(url) failed after \(fetched) block(s): \(error)")
            try? download.checkpoint()
            return fetched > 0
        }
    }

    func handleBlock(_ payload: [UInt8]) async {
        guard let job = state.job, job.phase == .downloading, let resolved = job.resolved, let download else { return }
        let response: OTAWire.Response
        do {
            response = try OTAWire.Response(decoding: payload)
        } catch {
            log("ignoring an undecodable block-topic message: \(error)")
            return
        }
        switch response {
        case .status(let status):
            handleStatus(status, sha: resolved.block.sha256)
        case .block(let message):
            switch download.accept(message) {
            case .stored:
                flow.fetched += 1
                flow.quietRounds = 0
                flow.quietDeadline = Date().addingTimeInterval(2)
                if download.receivedCount % 16 == 0, !download.isComplete {
                    // Durable before it is announced: a kill -9 after this line resumes at least here.
                    do {
                        try download.checkpoint()
                        log("downloaded \(download.receivedCount)/\(resolved.block.blockCount) blocks")
                    } catch {
                        log("cannot checkpoint the download: \(error)")
                    }
                }
                if download.isComplete { await complete() }
            case .duplicate:
                break
            case .rejected(let index?, let reason):
                let count = (flow.rejections[index] ?? 0) + 1
                flow.rejections[index] = count
                log("block \(index) rejected (\(count)/\(Self.maximumRejections)): \(reason)")
                if count >= Self.maximumRejections { fail("block \(index) rejected \(count) times: \(reason)") }
            case .rejected(nil, _):
                break  // another image's block (a stale answer): not ours to judge
            }
        }
    }

    func handleStatus(_ status: OTAWire.StatusMessage, sha: [UInt8]) {
        guard status.requestID == flow.requestID || status.targetSHA256 == sha else { return }
        let now = Date()
        switch status.code {
        case .done:
            guard status.requestID == flow.requestID else { return }
            try? download?.checkpoint()
            flow.askNow = true
        case .rateLimited, .busy:
            flow.notBefore = now.addingTimeInterval(Double(status.retryAfterMilliseconds) / 1000 + jitter(0.5))
            flow.askNow = true
        case .unavailable:
            flow.unavailable += 1
            log("the block service withholds the image (unavailable, \(flow.unavailable)/\(Self.maximumUnavailable))")
            if flow.unavailable >= Self.maximumUnavailable { return fail("the authority withholds the image (unavailable)") }
            flow.notBefore = now.addingTimeInterval(jitter(min(30, pow(2, Double(flow.unavailable)))))
            flow.askNow = true
        case .notFound, .forbidden:
            flow.refusals += 1
            log("the block service answered \(status.code) (\(flow.refusals)/\(Self.maximumRefusals))")
            if flow.refusals >= Self.maximumRefusals { return fail("the block service answered \(status.code)") }
            flow.notBefore = now.addingTimeInterval(1 + jitter(1))
            flow.askNow = true
        case .badRequest:
            fail("the block service refused the request (bad_request)")
        }
    }

    func complete() async {
        guard let download else { return }
        let fetched = flow.fetched
        do {
            try download.finish()
        } catch {
            return fail("downloaded image refused: \(error)")
        }
        self.download = nil
        log("download complete: fetched \(fetched) blocks in this run")
        update { $0.phase = .installing }
        await install()
    }

    // MARK: Install, health check, commit

    func install() async {
        guard let job = state.job, job.phase == .installing, let resolved = job.resolved else { return }
        let sha = Digest.hex(resolved.block.sha256)
        let status = try? store.status()
        if status?.trialManifest?.sha256 == sha {
            update { $0.phase = .trial }
            return await finishTrial()
        }
        if status?.activeManifest?.sha256 == sha {
            return succeed("\(resolved.name)@\(resolved.version) is already the active release")
        }
        let path = destination(resolved)
        guard FileManager.default.fileExists(atPath: path) else {
            update { $0.phase = .downloading }
            return
        }
        let manifest = SlotManifest(
            name: resolved.name, version: resolved.version, releaseCounter: resolved.releaseCounter, sha256: sha,
            length: resolved.block.length, hardware: resolved.hardware, rollout: job.rollout)
        do {
            let slot = try store.install(image: path, manifest: manifest)
            log("installed \(resolved.name)@\(resolved.version) in slot \(slot) (trial)")
        } catch let error as WardenError {
            if error.message.contains("floor") { return fail("downgrade below floor: \(error.message)") }
            return fail("install failed: \(error.message)")
        } catch {
            return fail("install failed: \(error)")
        }
        update { $0.phase = .trial }
        try? FileManager.default.removeItem(atPath: path)
        await finishTrial()
    }

    func finishTrial() async {
        guard let job = state.job, job.phase == .trial, let resolved = job.resolved else { return }
        let sha = Digest.hex(resolved.block.sha256)
        let status = try? store.status()
        guard status?.trialManifest?.sha256 == sha else {
            if status?.activeManifest?.sha256 == sha { return succeed("\(resolved.name)@\(resolved.version) is active") }
            return fail("the pending install of \(resolved.name)@\(resolved.version) disappeared")
        }
        if let check = settings.healthCheck {
            log("running the health check \(check.command[0])")
            let result = await store.runHealthCheck(HealthCheck(command: check.command, timeoutSeconds: check.timeoutSeconds))
            guard result.healthy else {
                let reason = "health check failed: \(result.reason)"
                do { try store.rollback(reason: reason) } catch { log("rollback failed: \(error)") }
                return fail(reason)
            }
        }
        do {
            try store.commit()
        } catch {
            try? store.rollback(reason: "commit failed: \(error)")
            return fail("commit failed: \(error)")
        }
        succeed("\(resolved.name)@\(resolved.version) committed and active")
    }
}
