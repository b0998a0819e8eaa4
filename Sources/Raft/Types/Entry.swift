/// The kind of payload an `Entry` carries.
public enum EntryType: UInt8, Sendable, Hashable, CaseIterable {
    case normal = 0
    case confChange = 1
    case confChangeV2 = 2
}

/// One entry of the replicated log. `data` is opaque to the library except for
/// configuration-change entries, whose data is an encoded `ConfChange`/`ConfChangeV2`.
public struct Entry: Sendable, Hashable {
    public var term: UInt64
    public var index: UInt64
    public var type: EntryType
    public var data: [UInt8]

    public init(term: UInt64 = 0, index: UInt64 = 0, type: EntryType = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.type = type
        self.data = data
    }

    /// The size etcd charges for an entry when paginating and limiting (its protobuf size).
    /// Flow control only needs a stable, monotone measure; the encoded size is what goes on the wire.
    @inlinable
    public var byteSize: UInt64 {
        // tag+varint for type, term, index; tag+len+bytes for data.
        var n = 1 + 1 + 1 + varintSize(term) + 1 + varintSize(index)
        if !data.isEmpty { n += 1 + varintSize(UInt64(data.count)) + data.count }
        return UInt64(n)
    }

    /// The bytes this entry adds to the uncommitted tail (etcd's payloadSize: data only).
    @inlinable
    public var payloadSize: UInt64 { UInt64(data.count) }
}

/// Bytes a protobuf varint of `value` takes.
@inlinable
func varintSize(_ value: UInt64) -> Int {
    Varint.size(value)
}
