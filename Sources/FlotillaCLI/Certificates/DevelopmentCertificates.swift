import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftASN1
import X509

/// `flotilla certs DIR`: a development CA and the certificates a cluster needs, made with
/// swift-certificates and swift-crypto (no openssl): P-256 keys, ECDSA-SHA256 signatures.
///
/// | file | what |
/// | --- | --- |
/// | `ca.pem`, `ca-key.pem` | the CA (self-signed, may sign end-entity certificates only) |
/// | `node-N.pem`, `node-N-key.pem` | node N: `serverAuth` and `clientAuth` (a peer is both), SANs = the hosts |
/// | `client.pem`, `client-key.pem` | a client (`clientAuth`), for `--client-cert-auth` |
///
/// Keys are written readable by their owner only. For development and tests: a production CA
/// keeps its key offline and issues certificates per host.
public struct DevelopmentCertificates {
    public var hosts: [String]
    public var nodes: Int
    /// How long the certificates are valid, from now.
    public var validity: TimeInterval

    public init(hosts: [String] = ["localhost", "127.0.0.1", "::1"], nodes: Int = 3, validity: TimeInterval = 365 * 86_400) {
        self.hosts = hosts
        self.nodes = nodes
        self.validity = validity
    }

    /// One certificate and its key, PEM.
    public struct Issued: Sendable {
        public var certificatePEM: String
        public var keyPEM: String
    }

    /// The CA, each node's certificate, and a client certificate.
    public struct Set: Sendable {
        public var ca: Issued
        public var nodes: [Issued]
        public var client: Issued
    }

    public func make() throws -> Set {
        let now = Date()
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("Flotilla development")
            CommonName("Flotilla development CA")
        }
        let caPublicKey = Certificate.PublicKey(caKey.publicKey)
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: caPublicKey,
            notValidBefore: now - 300, notValidAfter: now + validity, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: caPublicKey)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))
        return try issueAll(ca: ca, caKey: caKey, caPEM: Issued(certificatePEM: try ca.serializeAsPEM().pemString, keyPEM: caKey.pemRepresentation))
    }

    /// Node and client certificates from an existing CA (its certificate and P-256 key, PEM):
    /// more nodes for a cluster whose CA `make()` made, or certificates from your own CA.
    public func make(signedBy ca: Issued) throws -> Set {
        let certificate: Certificate
        let key: P256.Signing.PrivateKey
        do {
            certificate = try Certificate(pemEncoded: ca.certificatePEM)
            key = try P256.Signing.PrivateKey(pemRepresentation: ca.keyPEM)
        } catch {
            throw CertificatesError("the CA is not a PEM certificate with its P-256 key (\(error))")
        }
        return try issueAll(ca: certificate, caKey: key, caPEM: ca)
    }

    private func issueAll(ca: Certificate, caKey: P256.Signing.PrivateKey, caPEM: Issued) throws -> Set {
        let now = Date()
        let notBefore = now - 300  // tolerate a peer's clock a few minutes behind
        let notAfter = min(now + validity, ca.notValidAfter)
        let caKeyID = SubjectKeyIdentifier(hash: ca.publicKey).keyIdentifier

        func issue(commonName: String, usages: [ExtendedKeyUsage.Usage], names: [GeneralName]) throws -> Issued {
            let key = P256.Signing.PrivateKey()
            let publicKey = Certificate.PublicKey(key.publicKey)
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: ca.subject,
                subject: try DistinguishedName {
                    OrganizationName("Flotilla development")
                    CommonName(commonName)
                },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                    try ExtendedKeyUsage(usages)
                    SubjectKeyIdentifier(hash: publicKey)
                    AuthorityKeyIdentifier(keyIdentifier: caKeyID)
                    if !names.isEmpty { SubjectAlternativeNames(names) }
                },
                issuerPrivateKey: Certificate.PrivateKey(caKey))
            return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation)
        }

        let names = try hosts.map(Self.generalName)
        return Set(
            ca: caPEM,
            nodes: try (1...max(nodes, 1)).map { n in
                try issue(commonName: "flotilla node \(n)", usages: [.serverAuth, .clientAuth], names: names)
            },
            client: try issue(commonName: "flotilla client", usages: [.clientAuth], names: []))
    }

    /// A host as a SAN: an IP address (v4 or v6) as such, anything else as a DNS name.
    static func generalName(_ host: String) throws -> GeneralName {
        if let v4 = IPv4(host) { return .ipAddress(ASN1OctetString(contentBytes: v4[...])) }
        if let v6 = IPv6(host) { return .ipAddress(ASN1OctetString(contentBytes: v6[...])) }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "*" }) else {
            throw CertificatesError("\"\(host)\" is neither an IP address nor a DNS name")
        }
        return .dnsName(host)
    }

    /// The four bytes of a dotted IPv4 address, or nil.
    static func IPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    /// The sixteen bytes of an IPv6 address (with at most one `::`), or nil.
    static func IPv6(_ text: String) -> [UInt8]? {
        guard text.contains(":") else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                out.append(value)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// Writes the set into `directory` (created if needed); refuses to overwrite a CA key.
    public func write(_ set: Set, to directory: String) throws -> [String] {
        let fileManager = FileManager.default
        try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard !fileManager.fileExists(atPath: directory + "/ca-key.pem") else {
            throw CertificatesError("\(directory)/ca-key.pem exists: certificates are already there (remove the directory to make new ones)")
        }
        var files: [(String, String, Bool)] = [("ca.pem", set.ca.certificatePEM, false), ("ca-key.pem", set.ca.keyPEM, true)]
        for (i, node) in set.nodes.enumerated() {
            files += [("node-\(i + 1).pem", node.certificatePEM, false), ("node-\(i + 1)-key.pem", node.keyPEM, true)]
        }
        files += [("client.pem", set.client.certificatePEM, false), ("client-key.pem", set.client.keyPEM, true)]
        for (name, text, secret) in files {
            let path = directory + "/" + name
            guard fileManager.createFile(
                atPath: path, contents: Data((text.hasSuffix("\n") ? text : text + "\n").utf8),
                attributes: [.posixPermissions: secret ? 0o600 : 0o644])
            else { throw CertificatesError("cannot write \(path)") }
        }
        return files.map { directory + "/" + $0.0 }
    }
}

public struct CertificatesError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
