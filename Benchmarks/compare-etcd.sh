#!/usr/bin/env bash
# Puts etcd's RawNode and Flotilla's side by side, measured in one run on this machine:
# builds and runs the Go anchor (etcd 3.4 raft from Debian's golang-etcd-server-dev), then
# Flotilla's RawNode benchmarks, and prints both per committed entry.
#
# Manual only: CI never runs this (it needs Go and etcd's sources, and takes minutes).
#   apt-get install -y golang-go golang-etcd-server-dev     # once
#   Benchmarks/compare-etcd.sh [ENTRIES]                     # ENTRIES for the Go anchor, default 200000
#
# ETCD_ANCHOR overrides where the anchor's main.go lives; ETCD_RUNS (default 3) how many times
# the anchor runs (its figures swing by up to 2x between runs here; the median is reported).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
anchor="${ETCD_ANCHOR:-/work/shared/etcd-anchors/rawnode_bench_go}"
entries="${1:-200000}"
runs="${ETCD_RUNS:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== $(date -u +%FT%TZ) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== etcd RawNode anchor ($anchor, $entries entries per workload, $runs runs)"
(cd "$anchor" && GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$work/rawnode-bench" .)
for _ in $(seq "$runs"); do
    "$work/rawnode-bench" "$entries"
done | tee "$work/etcd.txt"

echo "== Flotilla RawNode benchmarks (package-benchmark, release build)"
(cd "$here" && swift package --disable-sandbox benchmark --filter 'RawNode/.*' --no-progress) \
    | tee "$work/flotilla.txt"

python3 - "$work/etcd.txt" "$work/flotilla.txt" <<'PY'
import re, sys
import statistics
runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[0].startswith("nodes="):
        runs.setdefault(parts[0], []).append((float(parts[1]), float(parts[2])))
etcd = {w: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for w, rs in runs.items()}

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

print()
print(f"{'workload':<18} {'etcd ns/entry':>14} {'ours ns/entry':>14} {'ours/etcd':>9}   {'etcd allocs/entry':>17} {'ours mallocs/entry':>18}")
for w in ["nodes=1/batch=1", "nodes=1/batch=64", "nodes=3/batch=1", "nodes=3/batch=64"]:
    e, o = etcd.get(w), ours.get(w, {})
    ens, eal = (f"{e[0]:.1f}", f"{e[1]:.2f}") if e else ("-", "-")
    ons = f"{o['ns']:.1f}" if "ns" in o else "-"
    oal = f"{o['mallocs']:.2f}" if "mallocs" in o else "-"
    ratio = f"{o['ns'] / e[0]:.2f}" if e and "ns" in o else "-"
    print(f"{w:<18} {ens:>14} {ons:>14} {ratio:>9}   {eal:>17} {oal:>18}")
print("ours: p50 over the measured iterations (package-benchmark rounds the batch=1 malloc counts\n"
      "to whole numbers); etcd: median of its runs. Go counts heap objects (runtime.MemStats.Mallocs),\n"
      "ours counts malloc calls: comparable, not identical.")
PY
