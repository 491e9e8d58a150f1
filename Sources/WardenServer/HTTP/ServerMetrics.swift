import Prometheus

/// The server's Prometheus metrics, in a registry of its own (no process-wide bootstrap, so several servers can
/// run in one process, as tests do).
final class ServerMetrics: Sendable {
    /// The registry rendered by `/metrics`.
    let registry = PrometheusCollectorRegistry()

    /// Why a presented client certificate was refused, as a bounded label set.
    enum VerificationFailure: String, Sendable, CaseIterable {
        /// Chain, validity, key usage or CRL check failed.
        case chainInvalid = "chain_invalid"
        /// The CN is not a device id, or no device has it.
        case unknownDevice = "unknown_device"
        /// The device is revoked.
        case deviceRevoked = "device_revoked"
        /// The certificate was never recorded for that device.
        case unknownCertificate = "unknown_certificate"
        /// The certificate itself is revoked.
        case certificateRevoked = "certificate_revoked"
        /// The registry could not be read (fail closed).
        case registryError = "registry_error"
    }

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "warden", metricName: "http_requests", unitName: "total", helpText: "HTTP requests by route, method and status.")
    }
    static var verificationFailures: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "warden", metricName: "tls_client_verification_failures", unitName: "total",
            helpText: "Client certificates refused, by reason.")
    }
    static var enrollments: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "warden", metricName: "est_enrollments", unitName: "total", helpText: "EST simpleenroll requests by result.")
    }
    static var renewals: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "warden", metricName: "est_renewals", unitName: "total", helpText: "EST simplereenroll requests by result.")
    }
    static var ocspResponses: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "warden", metricName: "ocsp_responses", unitName: "total", helpText: "OCSP answers by outcome.")
    }

    init() {
        // Declare the families up front so /metrics shows them at zero.
        for reason in VerificationFailure.allCases {
            _ = registry.makeCounter(descriptor: Self.verificationFailures, labels: [("reason", reason.rawValue)])
        }
        for result in ["success", "failure"] {
            _ = registry.makeCounter(descriptor: Self.enrollments, labels: [("result", result)])
            _ = registry.makeCounter(descriptor: Self.renewals, labels: [("result", result)])
        }
    }

    /// Counts one HTTP request by its route pattern (never the raw path, to bound cardinality) and status.
    func request(route: String, method: String, status: Int) {
        registry.makeCounter(
            descriptor: Self.requests, labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
    }

    /// Counts a refused client certificate.
    func verificationFailure(_ reason: VerificationFailure) {
        registry.makeCounter(descriptor: Self.verificationFailures, labels: [("reason", reason.rawValue)]).increment()
    }

    /// Counts an EST enrollment attempt.
    func enrollment(success: Bool) {
        registry.makeCounter(descriptor: Self.enrollments, labels: [("result", success ? "success" : "failure")]).increment()
    }

    /// Counts an EST renewal attempt.
    func renewal(success: Bool) {
        registry.makeCounter(descriptor: Self.renewals, labels: [("result", success ? "success" : "failure")]).increment()
    }

    /// Counts an OCSP answer by outcome (good, revoked, unknown, malformed).
    func ocsp(_ outcome: String) {
        registry.makeCounter(descriptor: Self.ocspResponses, labels: [("outcome", outcome)]).increment()
    }

    /// The Prometheus text exposition.
    func render() -> [UInt8] { registry.emitToBuffer() }
}
