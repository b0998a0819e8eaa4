import Hummingbird
import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - Errors as JSON

/// An error answered as `{"error": "…"}` with its status.
public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    /// The HTTP face of a replica error: 503 with `Retry-After` for what a retry can fix, 504 on
    /// timeout, 500 for an internal failure.
    public init(_ error: ReplicaError) {
        switch error {
        case .noLeader, .proposalDropped, .stopped:
            self.init(.serviceUnavailable, error.description, headers: [.retryAfter: "1"])
        case .timeout:
            self.init(.gatewayTimeout, error.description)
        case .invalidRequest:
            self.init(.badRequest, error.description)
        case .tooLarge:
            self.init(.contentTooLarge, error.description)
        case .failed:
            self.init(.internalServerError, error.description)
        }
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try jsonResponse(ErrorBody(error: message), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    private struct ErrorBody: Encodable {
        var error: String
    }
}

/// Turns every error below it into an `APIError`, so that clients always get JSON.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as ReplicaError {
            throw APIError(error)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            throw APIError(.notFound, "no such route: \(request.method) \(request.uri.path)", headers: error.headers)
        } catch let error as HTTPError {
            throw APIError(error.status, error.body ?? error.status.reasonPhrase, headers: error.headers)
        } catch let error as any HTTPResponseError {
            throw APIError(error.status, "\(error)")
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            throw APIError(.internalServerError, "internal error: \(error)")
        }
    }
}

func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    return Response(
        status: status, headers: [.contentType: "application/json; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

// MARK: - Percent-encoding

enum PercentEncoding {
    /// Decodes `%XX` escapes into raw bytes (the result need not be UTF-8). Nil when a `%` is not
    /// followed by two hex digits.
    static func decode(_ string: String) -> [UInt8]? {
        let utf8 = Array(string.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            let byte = utf8[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < utf8.count, let high = hexValue(utf8[i + 1]), let low = hexValue(utf8[i + 2]) else {
                    return nil
                }
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(byte)
                i += 1
            }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
