#!/usr/bin/env bash
# Puts etcd's RawNode and Flotilla's side by side, measured in one run on this machine: builds
# the Go anchor (etcd 3.4 raft from Debian's golang-etcd-server-dev) and RawNodeBench (the same
# four loops through Flotilla's RawNode, a plain release executable: RawNodeBench/main.swift),
# runs them in turn ETCD_RUNS times so both see the same load, and prints the medians per
# committed entry and their ratio. Then package-benchmark's RawNode suite for the malloc counts
# (MALLOCS=0 skips it).
#
# Manual only: CI never runs this (it needs Go and etcd's sources, and takes minutes).
#   apt-get install -y golang-go golang-etcd-server-dev     # once
#   Benchmarks/compare-etcd.sh [ENTRIES]                     # ENTRIES per workload, default 200000
#
# ETCD_ANCHOR overrides where the anchor's main.go lives; ETCD_RUNS (default 5) how many rounds
# (each program's figures swing by up to 2x between runs here; the medians are reported).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
anchor="${ETCD_ANCHOR:-/work/shared/etcd-anchors/rawnode_bench_go}"
entries="${1:-200000}"
runs="${ETCD_RUNS:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== $(date -u +%FT%TZ) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building etcd's anchor ($anchor) and RawNodeBench (release)"
(cd "$anchor" && GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$work/rawnode-bench" .)
(cd "$here" && swift build -c release --product RawNodeBench >/dev/null)
ours="$(cd "$here" && swift build -c release --product RawNodeBench --show-bin-path)/RawNodeBench"

echo "== $runs rounds of $entries entries per workload: etcd, then Flotilla"
for round in $(seq "$runs"); do
    "$work/rawnode-bench" "$entries" | sed "s/^/etcd $round /" | tee -a "$work/runs.txt"
    "$ours" "$entries" | sed "s/^/flotilla $round /" | tee -a "$work/runs.txt"
done

if [ "${MALLOCS:-1}" != 0 ]; then
    echo "== Flotilla RawNode malloc counts (package-benchmark, release build)"
    (cd "$here" && swift package --disable-sandbox benchmark --filter 'RawNode/.*' --no-progress) \
        | tee "$work/flotilla.txt"
else
    : > "$work/flotilla.txt"
fi

python3 - "$work/runs.txt" "$work/flotilla.txt" <<'PY'
import re, sys
import statistics
# "<who> <round> <workload> <ns per entry> <allocs per entry or ->"
ns, allocs = {}, {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 5 and parts[2].startswith("nodes="):
        ns.setdefault((parts[0], parts[2]), []).append(float(parts[3]))
        if parts[4] != "-":
            allocs.setdefault((parts[0], parts[2]), []).append(float(parts[4]))

# package-benchmark's text report: the benchmark's name on a line of its own, then a table
# whose rows read "│ <metric> (<unit>) * │ p0 │ p25 │ p50 │ ...". Figures marked * are per
# scaled iteration, i.e. per batch (RawNodeBenchmarks.swift); divide by the batch size.
magnitude = {"(ns)": 1, "(μs)": 1e3, "(us)": 1e3, "(ms)": 1e6, "(s)": 1e9, "(K)": 1e3, "(M)": 1e6}
ours, name = {}, None
for line in open(sys.argv[2]):
    line = line.strip()
    m = re.match(r"^RawNode/(nodes=\d+/batch=(\d+))$", line)
    if m:
        name, batch = m.group(1), int(m.group(2))
        ours[name] = {}
        continue
    if name and line.startswith("│"):
        cells = [c.strip() for c in line.strip("│").split("│")]
        try:
            p50 = float(cells[3].replace(",", ""))
        except (IndexError, ValueError):
            continue
        label = cells[0].replace("*", "").split()
        per_entry = p50 * magnitude.get(label[-1], 1) / batch
        if cells[0].startswith("Time (wall clock)"):
            ours[name]["ns"] = per_entry
        elif cells[0].startswith("Malloc (total)"):
            ours[name]["mallocs"] = per_entry

workloads = ["nodes=1/batch=1", "nodes=1/batch=64", "nodes=3/batch=1", "nodes=3/batch=64"]
print()
print(f"{'workload':<18} {'etcd ns/entry':>14} {'ours ns/entry':>14} {'ours/etcd':>9} {'per round':>26}   {'etcd allocs/entry':>17} {'ours mallocs/entry':>18}")
for w in workloads:
    e, o = ns.get(("etcd", w), []), ns.get(("flotilla", w), [])
    if not e or not o:
        print(f"{w:<18} missing")
        continue
    em, om = statistics.median(e), statistics.median(o)
    rounds = " ".join(f"{b / a:.2f}" for a, b in zip(e, o))
    eal = f"{statistics.median(allocs[('etcd', w)]):.2f}" if ("etcd", w) in allocs else "-"
    oal = f"{ours[w]['mallocs']:.2f}" if "mallocs" in ours.get(w, {}) else "-"
    print(f"{w:<18} {em:>14.1f} {om:>14.1f} {om / em:>9.2f} {rounds:>26}   {eal:>17} {oal:>18}")
print("ns: medians of the rounds, each round etcd's anchor then RawNodeBench on the same workload\n"
      "sizes; per round: that round's ratio. mallocs: package-benchmark's p50 (batch=1 counts are\n"
      "rounded to whole numbers); Go counts heap objects (runtime.MemStats.Mallocs), ours malloc\n"
      "calls: comparable, not identical.")
PY
