/// The TUF specification version Warden's metadata declares in its `spec_version` field.
public enum TUFSpec {
    /// The version string written into every role's metadata.
    public static let version = "1.0.31"
}
