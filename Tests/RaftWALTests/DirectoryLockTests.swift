import Foundation
import Raft
import RaftTestKit
import RaftWAL
import Testing

/// One writer per data directory: a second `DiskStorage` (another process, or the same one)
/// is refused with `WALError.locked` and nothing it could write reaches the WAL.
@Suite struct DirectoryLockTests {
    @Test func aSecondStorageOnTheSameDirectoryIsRefused() throws {
        let directory = makeTemporaryDirectory("lock")
        defer { removeDirectory(directory) }
        let first = try DiskStorage(directory: directory, metadata: Array("n1".utf8))
        try first.append(hardState: HardState(term: 1, vote: 1, commit: 1), entries: entries(1...3))

        let lockPath = directory + "/" + DiskStorage.lockFileName
        #expect(throws: WALError.locked(path: lockPath)) {
            try DiskStorage(directory: directory, metadata: Array("n1".utf8))
        }
        let message = WALError.locked(path: lockPath).description
        #expect(message.contains(lockPath) && message.contains("in use") && message.contains("another data directory"))

        // The refused open changed nothing: the first storage goes on writing.
        try first.append(hardState: HardState(term: 1, vote: 1, commit: 4), entries: entries(4...4))
        try first.close()

        // Closed, the directory opens again, with everything.
        let reopened = try DiskStorage(directory: directory, metadata: Array("n1".utf8))
        #expect(try reopened.lastIndex() == 4)
        #expect(reopened.hardState.commit == 4)
        try reopened.close()
    }

    @Test func theLockGoesWithTheStorage() throws {
        let directory = makeTemporaryDirectory("lock")
        defer { removeDirectory(directory) }
        do {
            let storage = try DiskStorage(directory: directory)
            try storage.append(hardState: HardState(term: 1, vote: 1, commit: 0), entries: entries(1...2))
            // Not closed: released when it is gone (a process's end releases it likewise).
        }
        let again = try DiskStorage(directory: directory)
        #expect(try again.lastIndex() == 2)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/flock")))
    func anotherProcessIsRefused() throws {
        // flock(1) of util-linux holds the lock file in another process, as a second server would.
        let directory = makeTemporaryDirectory("lock")
        defer { removeDirectory(directory) }
        let lockPath = directory + "/" + DiskStorage.lockFileName
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        // --no-fork: the holder is the process terminated below, not a child that outlives it.
        holder.arguments = ["--exclusive", "--no-fork", lockPath, "sh", "-c", "echo locked; exec sleep 30"]
        let output = Pipe()
        holder.standardOutput = output
        try holder.run()
        // SIGKILL: the test runner's children may inherit a blocked SIGTERM.
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() } }
        let line = output.fileHandleForReading.availableData
        #expect(String(decoding: line, as: UTF8.self).hasPrefix("locked"))

        #expect(throws: WALError.locked(path: lockPath)) { try DiskStorage(directory: directory) }
        // Refused before it wrote anything.
        #expect(!FileManager.default.fileExists(atPath: directory + "/wal"))

        kill(holder.processIdentifier, SIGKILL)  // its end releases the lock
        holder.waitUntilExit()
        let storage = try DiskStorage(directory: directory)
        #expect(storage.isNew)
        try storage.close()
    }

    @Test func aCrashReleasesTheLockOfTheSimulatedFileSystem() throws {
        let fs = SimulatedFileSystem()
        let storage = try DiskStorage(directory: "/node", fileSystem: fs)
        try storage.append(hardState: HardState(term: 1, vote: 1, commit: 1), entries: entries(1...1))
        #expect(throws: WALError.locked(path: "/node/LOCK")) { try DiskStorage(directory: "/node", fileSystem: fs) }
        fs.crash(.dropUnsynced)
        let recovered = try DiskStorage(directory: "/node", fileSystem: fs)
        #expect(try recovered.lastIndex() == 1)
        _ = storage
    }
}
