#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real file system, through POSIX calls. Stateless; share one freely.
public struct POSIXFileSystem: WALFileSystem {
    public init() {}

    public func open(_ path: String, _ mode: WALOpenMode) throws(WALError) -> WALFileHandle {
        var flags: Int32 = O_CLOEXEC
        switch mode {
        case .read: flags |= O_RDONLY
        case .readWrite: flags |= O_RDWR
        case .createNew: flags |= O_RDWR | O_CREAT | O_EXCL
        case .createOrTruncate: flags |= O_RDWR | O_CREAT | O_TRUNC
        }
        let fd = retryingEINTR { systemOpen(path, flags, 0o600) }
        if fd < 0 { throw WALError.io(operation: "open", path: path, errno: errno) }
        return WALFileHandle(descriptor: fd, path: path)
    }

    public func close(_ file: WALFileHandle) {
        // Nothing useful to do on failure: the data that mattered was synced before.
        _ = systemClose(file.descriptor)
    }

    public func write(_ file: WALFileHandle, _ bytes: [UInt8], at offset: Int64) throws(WALError) {
        // withUnsafeBytes rethrows untyped: carry the error out as a value.
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(WALError) in try write(file, buffer, at: offset) }
        }
        try result.get()
    }

    public func write(_ file: WALFileHandle, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(WALError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = retryingEINTR {
                pwrite(file.descriptor, base + done, bytes.count - done, off_t(offset) + off_t(done))
            }
            if n < 0 { throw WALError.io(operation: "write", path: file.path, errno: errno) }
            if n == 0 { throw WALError.io(operation: "write", path: file.path, errno: EIO) }
            done += n
        }
    }

    public func read(_ file: WALFileHandle, count: Int, at offset: Int64) throws(WALError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = result.withUnsafeMutableBytes { buffer in
                retryingEINTR {
                    pread(file.descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
            }
            if n < 0 { throw WALError.io(operation: "read", path: file.path, errno: errno) }
            if n == 0 { break }
            done += n
        }
        if done < count { result.removeSubrange(done...) }
        return result
    }

    public func fsync(_ file: WALFileHandle) throws(WALError) {
        // No retry on EINTR/EIO beyond EINTR itself: after a failed fsync the kernel may have
        // dropped the dirty pages, so a second fsync can succeed without the data (fsyncgate).
        if retryingEINTR({ systemFsync(file.descriptor) }) != 0 {
            throw WALError.io(operation: "fsync", path: file.path, errno: errno)
        }
    }

    public func fdatasync(_ file: WALFileHandle) throws(WALError) {
        #if canImport(Darwin)
        // Darwin's fsync does not flush the drive's cache; F_FULLFSYNC does.
        let result = retryingEINTR { fcntl(file.descriptor, F_FULLFSYNC) }
        #else
        let result = retryingEINTR { Glibc.fdatasync(file.descriptor) }
        #endif
        if result != 0 { throw WALError.io(operation: "fdatasync", path: file.path, errno: errno) }
    }

    public func truncate(_ file: WALFileHandle, to size: Int64) throws(WALError) {
        if retryingEINTR({ ftruncate(file.descriptor, off_t(size)) }) != 0 {
            throw WALError.io(operation: "ftruncate", path: file.path, errno: errno)
        }
    }

    public func preallocate(_ file: WALFileHandle, size: Int64) throws(WALError) {
        #if canImport(Glibc)
        // posix_fallocate returns the error instead of setting errno; glibc falls back to
        // writing zeros where the file system cannot allocate.
        let result = posix_fallocate(file.descriptor, 0, off_t(size))
        if result == 0 { return }
        if result != EINVAL && result != EOPNOTSUPP {
            throw WALError.io(operation: "preallocate", path: file.path, errno: result)
        }
        #endif
        // No allocation: extending the size still makes the new bytes read as zeros.
        if try self.size(file) < size { try truncate(file, to: size) }
    }

    public func size(_ file: WALFileHandle) throws(WALError) -> Int64 {
        var info = stat()
        if fstat(file.descriptor, &info) != 0 {
            throw WALError.io(operation: "fstat", path: file.path, errno: errno)
        }
        return Int64(info.st_size)
    }

    public func rename(_ from: String, to: String) throws(WALError) {
        if systemRename(from, to) != 0 {
            throw WALError.io(operation: "rename to \(to) from", path: from, errno: errno)
        }
    }

    public func remove(_ path: String) throws(WALError) {
        if unlink(path) != 0 { throw WALError.io(operation: "remove", path: path, errno: errno) }
    }

    public func removeDirectory(_ path: String) throws(WALError) {
        if rmdir(path) != 0 { throw WALError.io(operation: "remove directory", path: path, errno: errno) }
    }

    public func listDirectory(_ path: String) throws(WALError) -> [String] {
        guard let dir = opendir(path) else {
            throw WALError.io(operation: "list directory", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func makeDirectory(_ path: String) throws(WALError) {
        if mkdir(path, 0o700) != 0 {
            throw WALError.io(operation: "create directory", path: path, errno: errno)
        }
    }

    public func syncDirectory(_ path: String) throws(WALError) {
        let fd = retryingEINTR { systemOpen(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY, 0) }
        if fd < 0 { throw WALError.io(operation: "open directory", path: path, errno: errno) }
        defer { _ = systemClose(fd) }
        if retryingEINTR({ systemFsync(fd) }) != 0 {
            throw WALError.io(operation: "fsync directory", path: path, errno: errno)
        }
    }

    public func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    public func lock(_ file: WALFileHandle) throws(WALError) {
        if retryingEINTR({ flock(file.descriptor, LOCK_EX | LOCK_NB) }) != 0 {
            if errno == EWOULDBLOCK { throw WALError.locked(path: file.path) }
            throw WALError.io(operation: "flock", path: file.path, errno: errno)
        }
    }
}

@inline(__always)
private func retryingEINTR<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}

// The module's own names shadow these (open, close, rename, fsync), so reach them explicitly.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    #if canImport(Glibc)
    Glibc.open(path, flags, mode)
    #else
    Darwin.open(path, flags, mode)
    #endif
}

private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.close(fd)
    #else
    Darwin.close(fd)
    #endif
}

private func systemFsync(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.fsync(fd)
    #else
    Darwin.fsync(fd)
    #endif
}

private func systemRename(_ from: String, _ to: String) -> Int32 {
    #if canImport(Glibc)
    Glibc.rename(from, to)
    #else
    Darwin.rename(from, to)
    #endif
}
