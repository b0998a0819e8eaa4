import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The TCP options of every peer connection, both ends: no Nagle delay, and dead-peer
/// detection. A peer that vanishes without a reset (power loss, a cut cable, a partition)
/// leaves a stream that looks open: keepalive probes after 10 s of silence, every 5 s, 3 of
/// them, so a silent dead peer is noticed within about 25 s (the kernel's default is over two
/// hours); and, on Linux, data that stays unacknowledged for 30 s fails the connection, so a
/// sender does not keep queueing into a dead socket. Either way the stream closes, the sender
/// reports the peer unreachable and redials with backoff.
enum PeerSocketOptions {
    static var all: [(ChannelOptions.Types.SocketOption, SocketOptionValue)] {
        var options: [(ChannelOptions.Types.SocketOption, SocketOptionValue)] = [
            (.tcpOption(.tcp_nodelay), 1),
            (.socketOption(.so_keepalive), 1),
        ]
        #if os(Linux)
        options += [
            (.tcpOption(NIOBSDSocket.Option(rawValue: TCP_KEEPIDLE)), 10),
            (.tcpOption(NIOBSDSocket.Option(rawValue: TCP_KEEPINTVL)), 5),
            (.tcpOption(NIOBSDSocket.Option(rawValue: TCP_KEEPCNT)), 3),
            (.tcpOption(NIOBSDSocket.Option(rawValue: CInt(TCP_USER_TIMEOUT))), 30_000),
        ]
        #elseif canImport(Darwin)
        options += [
            (.tcpOption(NIOBSDSocket.Option(rawValue: TCP_KEEPALIVE)), 10),
            (.tcpOption(NIOBSDSocket.Option(rawValue: TCP_KEEPINTVL)), 5),
            (.tcpOption(NIOBSDSocket.Option(rawValue: TCP_KEEPCNT)), 3),
        ]
        #endif
        return options
    }
}

extension ClientBootstrap {
    /// `PeerSocketOptions` on a dialled peer connection.
    func peerSocketOptions() -> ClientBootstrap {
        PeerSocketOptions.all.reduce(self) { $0.channelOption($1.0, value: $1.1) }
    }
}

extension ServerBootstrap {
    /// `PeerSocketOptions` on every accepted peer connection.
    func peerChildSocketOptions() -> ServerBootstrap {
        PeerSocketOptions.all.reduce(self) { $0.childChannelOption($1.0, value: $1.1) }
    }
}
