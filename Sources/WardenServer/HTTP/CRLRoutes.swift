import Hummingbird

/// `GET /crl`: the current CRL as DER (`application/pkix-crl`, RFC 5280 §4.2.1.13, RFC 2585 §4.2), straight from
/// `ca/crl.pem`, which every revocation and `warden crl` rewrite.
struct CRLRoutes {
    let crlFile: CRLFile

    func register(on router: Router<WardenRequestContext>) {
        router.get("/crl") { _, _ in
            guard let snapshot = crlFile.current() else {
                throw WardenHTTPError(.serviceUnavailable, "no CRL has been published yet; run 'warden crl'")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/pkix-crl", .cacheControl: "no-cache"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: snapshot.crl.derEncoded)))
        }
    }
}
