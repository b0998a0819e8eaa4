import Foundation
import Raft
import RaftWAL

/// The vectors etcd v3.4 wrote (copied from the shared vectors folder).
let vectorsDirectory: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors").path
}()

/// A fresh temporary directory, removed by `cleanup`.
func makeTemporaryDirectory(_ label: String = "wal") -> String {
    let path = NSTemporaryDirectory() + "flotilla-\(label)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// A copy of a vectors sub-folder, writable (the WAL repairs and prepares files in place).
func copyVectors(_ name: String) -> (root: String, path: String) {
    let root = makeTemporaryDirectory("vectors")
    let destination = root + "/" + name
    try! FileManager.default.copyItem(atPath: vectorsDirectory + "/" + name, toPath: destination)
    for file in try! FileManager.default.contentsOfDirectory(atPath: destination) {
        try! FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: destination + "/" + file)
    }
    try! FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: destination)
    return (root, destination)
}

func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        bytes.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

func entry(_ index: UInt64, term: UInt64 = 1, size: Int = 16) -> Entry {
    var data = [UInt8](repeating: 0, count: size)
    for i in 0..<size { data[i] = UInt8(truncatingIfNeeded: index &* 31 &+ UInt64(i) &* 7 &+ 1) }
    // Never a zero last byte: see the bit-flip tests.
    if size > 0 { data[size - 1] = 0xFF }
    return Entry(term: term, index: index, data: data)
}

func entries(_ range: ClosedRange<UInt64>, term: UInt64 = 1, size: Int = 16) -> [Entry] {
    range.map { entry($0, term: term, size: size) }
}
