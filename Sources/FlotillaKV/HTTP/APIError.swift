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
        case .noLeader, .proposalDropped, .stopped, .overloaded:
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

    /// The answer to an error a request's handling threw: an `APIError` as it is, a replica's
    /// error by its HTTP face, any other error with a status by that status, anything else 500.
    init(answering error: any Error) {
        switch error {
        case let error as APIError: self = error
        case let error as ReplicaError: self.init(error)
        case let error as any HTTPResponseError: self.init(error.status, "\(error)")
        default: self.init(.internalServerError, "internal error: \(error)")
        }
    }

    /// Whether `init(answering:)` makes a 500 of `error` because nothing expected it: worth a log line.
    static func isUnexpected(_ error: any Error) -> Bool {
        !(error is APIError || error is ReplicaError || error is any HTTPResponseError)
    }

    public var description: String { "\(status.code) \(message)" }

    /// The response: the status, JSON `{"error": "…"}`, and the error's own header fields.
    var apiResponse: APIResponse {
        var fields: HTTPFields = [.contentType: jsonContentType]
        fields.append(contentsOf: headers)
        return APIResponse(status: status, fields: fields, body: jsonBytes(ErrorBody(error: message)))
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        apiResponse.routerResponse
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
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            throw APIError(.notFound, "no such route: \(request.method) \(request.uri.path)", headers: error.headers)
        } catch let error as HTTPError {
            throw APIError(error.status, error.body ?? error.status.reasonPhrase, headers: error.headers)
        } catch {
            if APIError.isUnexpected(error) {
                context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            }
            throw APIError(answering: error)
        }
    }
}

/// A whole response of the API — status, header fields, body — before either writer has it:
/// the router's `Response` and the head and body `KeyRouteHandler` writes are both made from
/// one, so that the two answer alike.
struct APIResponse: Sendable {
    var status: HTTPResponse.Status
    var fields: HTTPFields = [:]
    /// Nil for none (204).
    var body: [UInt8]?

    /// As the router returns it.
    var routerResponse: Response {
        Response(status: status, headers: fields, body: body.map { ResponseBody(byteBuffer: ByteBuffer(bytes: $0)) } ?? ResponseBody())
    }
}

let jsonContentType = "application/json; charset=utf-8"

/// `value` as the API's JSON: keys sorted, slashes as they are.
func jsonBytes(_ value: some Encodable) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // The API's bodies are plain structs of strings, numbers and booleans: encoding them cannot fail.
    return (try? Array(encoder.encode(value))) ?? Array(#"{"error":"the answer could not be encoded as JSON"}"#.utf8)
}

func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    Response(
        status: status, headers: [.contentType: jsonContentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBytes(value))))
}
