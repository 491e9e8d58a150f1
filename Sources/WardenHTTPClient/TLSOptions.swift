/// How an ``HTTPSClient`` authenticates the server and, optionally, itself.
///
/// Peer and hostname verification are always on and TLS 1.2 is the minimum; these options only choose the anchors
/// and the client credential.
public struct TLSOptions: Sendable, Equatable {
    /// PEM file of the CA certificates to trust. When set, ONLY these are trusted (the system store is not consulted);
    /// when nil, the system trust store is used.
    public var caFile: String?
    /// PEM file of the client certificate (leaf first, then intermediates) for mutual TLS; nil for none.
    public var certFile: String?
    /// PEM file of the client certificate's private key (unencrypted PKCS#8 or SEC1); required with `certFile`.
    public var keyFile: String?

    /// Options trusting `caFile` only (or the system store when nil), presenting `certFile`/`keyFile` when given.
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}
