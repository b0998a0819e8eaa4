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
    }
}
