import CRC32CHardware

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of etcd's WAL and
/// snapshot files. With the CPU's CRC instructions where it has them (SSE 4.2, ARMv8 CRC),
/// which are several times faster than the tables and matter because every snapshot is
/// checksummed twice (measured: see Benchmarks/README.md); else pure Swift slicing-by-8: eight
/// 256-entry tables let the loop fold eight input bytes per step instead of one.
///
/// `update(_:with:)` continues a running checksum exactly as Go's `crc32.Update` does, so the
/// chained WAL checksum is `crc = CRC32C.update(crc, with: record.data)`.
package enum CRC32C {
    /// The checksum of `bytes` on its own.
    @inlinable
    package static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        update(0, with: bytes)
    }

    /// `crc` continued over `bytes`.
    package static func update(_ crc: UInt32, with bytes: some Collection<UInt8>) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ update(crc, buffer: UnsafeRawBufferPointer($0)) }) {
            return result
        }
        let copy = Array(bytes)
        return copy.withUnsafeBytes { update(crc, buffer: $0) }
    }

    /// `crc` continued over the bytes of `buffer`.
    package static func update(_ crc: UInt32, buffer: UnsafeRawBufferPointer) -> UInt32 {
        guard hardwareAvailable, let base = buffer.baseAddress else {
            return softwareUpdate(crc, buffer: buffer)
        }
        return ~flotilla_crc32c_hardware_update(~crc, base, buffer.count)
    }

    /// Whether the CPU's CRC-32C instructions are used.
    package static let hardwareAvailable = flotilla_crc32c_hardware_available() != 0

    /// `update(_:buffer:)` with the tables, whatever the CPU has (the tests compare the two).
    static func softwareUpdate(_ crc: UInt32, buffer: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var i = 0
        let n = buffer.count
        table.withUnsafeBufferPointer { t in
            // Eight bytes at a time: the low four fold into the running value, every byte
            // indexes its own table (table k advances a byte by k+1 positions).
            while n - i >= 8 {
                let lo = c ^ (UInt32(buffer[i]) | UInt32(buffer[i + 1]) << 8
                    | UInt32(buffer[i + 2]) << 16 | UInt32(buffer[i + 3]) << 24)
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(buffer[i + 4])] ^ t[2 * 256 + Int(buffer[i + 5])]
                    ^ t[1 * 256 + Int(buffer[i + 6])] ^ t[Int(buffer[i + 7])]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(buffer[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }

    /// Table k (at offset 256·k) maps a byte to its CRC after k further zero bytes.
    static let table: [UInt32] = {
        let polynomial: UInt32 = 0x82F6_3B78
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var c = UInt32(byte)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1 }
            t[byte] = c
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = t[(k - 1) * 256 + byte]
                t[k * 256 + byte] = t[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return t
    }()
}
