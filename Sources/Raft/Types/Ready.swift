/// Everything the application must do next, in order: persist `hardState`, `entries` and
/// `snapshot` (syncing when `mustSync`), send `messages`, apply `committedEntries`, then call
/// `advance`. A leader may send its messages before its own write completes (thesis §10.2.1).
public struct Ready: Sendable {
    /// nil when unchanged since the last Ready.
    public var softState: SoftState?
    /// nil when unchanged since the last Ready.
    public var hardState: HardState?
    public var readStates: [ReadState]
    /// Persist before sending `messages`.
    public var entries: [Entry]
    /// Persist and apply when non-nil.
    public var snapshot: Snapshot?
    /// Apply in order.
    public var committedEntries: [Entry]
    public var messages: [Message]
    /// Whether `hardState` and `entries` must reach stable storage before `messages` are sent
    /// (with `Config.asyncStorageWrites`: before `messagesAfterPersist` are).
    public var mustSync: Bool
    /// With `Config.asyncStorageWrites`: this Ready's place in the order of persistence, for
    /// `RawNode.onPersistReady(_:)` (1, 2, …). 0 in the synchronous mode.
    public var number: UInt64 = 0
    /// With `Config.asyncStorageWrites`: messages that promise what this Ready persists (a
    /// follower's acknowledgements, votes, a candidate's vote requests); send them once it, and
    /// every Ready before it, is durable. Always empty in the synchronous mode, where `messages`
    /// holds everything.
    public var messagesAfterPersist: [Message] = []

    /// Nothing to persist, send or apply.
    public var isEmpty: Bool {
        softState == nil && hardState == nil && readStates.isEmpty && entries.isEmpty && snapshot == nil
            && committedEntries.isEmpty && messages.isEmpty && messagesAfterPersist.isEmpty
    }
}

// The public initializer lives in an extension so that the struct keeps its implicit memberwise
// one, which the core uses: that builds a Ready as one value, where an initializer written out
// builds it in a stack slot and copies it out, retaining and releasing every array (measured:
// see Benchmarks/README.md).
extension Ready {
    public init(
        softState: SoftState? = nil, hardState: HardState? = nil, readStates: [ReadState] = [],
        entries: [Entry] = [], snapshot: Snapshot? = nil, committedEntries: [Entry] = [],
        messages: [Message] = [], mustSync: Bool = false
    ) {
        self.softState = softState
        self.hardState = hardState
        self.readStates = readStates
        self.entries = entries
        self.snapshot = snapshot
        self.committedEntries = committedEntries
        self.messages = messages
        self.mustSync = mustSync
    }
}
