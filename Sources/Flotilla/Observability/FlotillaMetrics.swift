import Metrics
import RaftNIO

/// The node's swift-metrics instruments. Created with the `MetricsFactory` given to the node
/// (`FlotillaNode.init(…, metricsFactory:)`), or `MetricsSystem.factory` — whatever the
/// process bootstrapped with `MetricsSystem.bootstrap(_:)` — when none is given. Every metric
/// has the dimension `node` (the raft id).
///
/// | label | kind | what |
/// | --- | --- | --- |
/// | `flotilla_proposals_total` | counter | commands proposed through `apply` on this node |
/// | `flotilla_proposals_failed_total` | counter | of those, the ones that failed (any error) |
/// | `flotilla_commits_total` | counter | committed entries applied on this node |
/// | `flotilla_applied_index` | gauge | the last applied index |
/// | `flotilla_apply_lag` | gauge | commit index − applied index, after each Ready |
/// | `flotilla_leader_changes_total` | counter | times this node saw the leader change |
/// | `flotilla_is_leader` | gauge | 1 while this node leads, else 0 |
/// | `flotilla_wal_save_duration` | timer | `DiskStorage.save` per Ready (fdatasync included) |
/// | `flotilla_snapshots_total` | counter | snapshots this node took |
/// | `flotilla_snapshots_restored_total` | counter | snapshots restored (restart or from the leader) |
/// | `flotilla_peer_messages_refused_total` | counter | peer messages dropped, by `reason`: the transport's (`PeerInputRefusal.Reason`: `wrong_receiver`, `sender_mismatch`, `not_a_member`, `peer_removed`, `wrong_kind`) or raft's (`invalid_values`: values no correct peer sends; `unknown_sender`: a response from a non-member) |
package struct FlotillaMetrics: Sendable {
    let proposals: Counter
    let proposalsFailed: Counter
    let commits: Counter
    let appliedIndex: Gauge
    let applyLag: Gauge
    let leaderChanges: Counter
    let isLeader: Gauge
    let walSave: Metrics.Timer
    let snapshots: Counter
    let snapshotsRestored: Counter
    let refusedByTransport: [PeerInputRefusal.Reason: Counter]
    let refusedInvalidValues: Counter
    let refusedUnknownSender: Counter

    package init(nodeID: UInt64, factory: any MetricsFactory) {
        let dimensions = [("node", "\(nodeID)")]
        proposals = Counter(label: "flotilla_proposals_total", dimensions: dimensions, factory: factory)
        proposalsFailed = Counter(label: "flotilla_proposals_failed_total", dimensions: dimensions, factory: factory)
        commits = Counter(label: "flotilla_commits_total", dimensions: dimensions, factory: factory)
        appliedIndex = Gauge(label: "flotilla_applied_index", dimensions: dimensions, factory: factory)
        applyLag = Gauge(label: "flotilla_apply_lag", dimensions: dimensions, factory: factory)
        leaderChanges = Counter(label: "flotilla_leader_changes_total", dimensions: dimensions, factory: factory)
        isLeader = Gauge(label: "flotilla_is_leader", dimensions: dimensions, factory: factory)
        walSave = Metrics.Timer(label: "flotilla_wal_save_duration", dimensions: dimensions, factory: factory)
        snapshots = Counter(label: "flotilla_snapshots_total", dimensions: dimensions, factory: factory)
        snapshotsRestored = Counter(label: "flotilla_snapshots_restored_total", dimensions: dimensions, factory: factory)
        func refused(_ reason: String) -> Counter {
            Counter(label: "flotilla_peer_messages_refused_total", dimensions: dimensions + [("reason", reason)], factory: factory)
        }
        refusedByTransport = Dictionary(uniqueKeysWithValues: PeerInputRefusal.Reason.allCases.map { ($0, refused($0.rawValue)) })
        refusedInvalidValues = refused("invalid_values")
        refusedUnknownSender = refused("unknown_sender")
    }
}
