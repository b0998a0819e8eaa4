import Raft
import RaftNIO
import RaftWAL

// The runtime's API shows a few types of the layers below it. They are named here, under their
// own names, so that a user of the runtime writes `import Flotilla` and nothing else: the
// layers stay an implementation detail (Docs/DESIGN.md), checked by `ImportLayeringTests`.

/// A peer's host and port (`FlotillaConfiguration.peers`, `.listenAddress`).
public typealias TransportAddress = RaftNIO.TransportAddress
/// Mutual TLS between peers (`FlotillaConfiguration.peerTLS`).
public typealias PeerTLS = RaftNIO.PeerTLS
/// A certificate or key file that cannot be used for TLS (`PeerTLS`, and the client API's).
public typealias TLSFileError = RaftNIO.TLSFileError
/// Where a `PeerTransport` hands what it receives (`FlotillaConfiguration.transport`).
public typealias TransportDelivery = RaftNIO.TransportDelivery
/// What a `PeerTransport` reports about its sends.
public typealias TransportEvent = RaftNIO.TransportEvent
/// The file system under the node's WAL and snapshots (`FlotillaConfiguration.fileSystem`).
public typealias WALFileSystem = RaftWAL.WALFileSystem
/// The real one, POSIX calls.
public typealias POSIXFileSystem = RaftWAL.POSIXFileSystem
/// How reads are made linearizable (`RaftOptions.readOnlyOption`).
public typealias ReadOnlyOption = Raft.ReadOnlyOption
/// A node's role (`FlotillaStatus.role`).
public typealias StateType = Raft.StateType
/// A raft message, what a `PeerTransport` carries.
public typealias Message = Raft.Message

// What the layers above share with the runtime but users should not see: the package's own
// encodings, for state machines of this package (the key-value store) and its tools.

package typealias Varint = Raft.Varint
package typealias ByteReader = Raft.ByteReader
package typealias ByteReadError = Raft.ByteReadError
package typealias ByteWriter = Raft.ByteWriter
package typealias FixedBufferWriter = Raft.FixedBufferWriter
/// The WAL's checksum, which the key-value store's snapshots use too.
package typealias CRC32C = RaftWAL.CRC32C
