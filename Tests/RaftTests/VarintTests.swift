import Raft
import Testing

@Suite struct VarintTests {
    static let cases: [(value: UInt64, bytes: [UInt8])] = [
        (0, [0x00]),
        (1, [0x01]),
        (127, [0x7f]),
        (128, [0x80, 0x01]),
        (300, [0xac, 0x02]),
        (16_383, [0xff, 0x7f]),
        (16_384, [0x80, 0x80, 0x01]),
        (4_294_967_295, [0xff, 0xff, 0xff, 0xff, 0x0f]),
        (UInt64.max, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ]

    @Test(arguments: cases)
    func encodesAsProtobuf(value: UInt64, expected: [UInt8]) {
        var out: [UInt8] = [0xAA]  // appends after what is there
        Varint.append(value, to: &out)
        #expect(out == [0xAA] + expected)
        #expect(Varint.size(value) == expected.count)
        #expect(Varint.size(value) <= Varint.maxLength)
        #expect(Varint.decode(out, from: 1, to: out.count) == .value(value, end: out.count))
        // Written into memory: the same bytes, their count returned, nothing past them touched.
        var memory = [UInt8](repeating: 0xAA, count: Varint.maxLength + 1)
        let written = memory.withUnsafeMutableBufferPointer { Varint.write(value, to: $0.baseAddress!) }
        #expect(written == expected.count && Array(memory[..<written]) == expected)
        #expect(memory[written...].allSatisfy { $0 == 0xAA })
        // Cut anywhere inside: truncated.
        for cut in 1..<out.count - 1 { #expect(Varint.decode(out, from: 1, to: cut + 1) == .truncated) }
    }

    @Test func decodeRefusesMoreThan64Bits() {
        let nine = [UInt8](repeating: 0xff, count: 9)
        #expect(Varint.decode(nine + [0x02], from: 0, to: 10) == .overflow)
        #expect(Varint.decode(nine + [0x81, 0x00], from: 0, to: 11) == .overflow)
        #expect(Varint.decode(nine + [0x01], from: 0, to: 10) == .value(.max, end: 10))
        // Reads within the bounds given, from the start given.
        let slice: ArraySlice<UInt8> = [0x00, 0xac, 0x02, 0x07]
        #expect(Varint.decode(slice, from: 1, to: 3) == .value(300, end: 3))
        #expect(Varint.decode(slice, from: 1, to: 2) == .truncated)
    }
}
