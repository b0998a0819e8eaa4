#!/usr/bin/env bash
# The server end to end, side by side with etcd v3.4 on this machine: a three-member etcd
# cluster (Debian's etcd-server, puts through its JSON gateway) and a three-node Flotilla
# cluster (release build, loopback), each driven by the same wrk script with 64-byte values, and
# each by `flotilla bench` (`--api etcd` for etcd's JSON gateway), rounds interleaved (the
# machine is noisy: compare within a run). Prints one line per run.
#
# Manual only: CI never runs this (it needs etcd and wrk, and takes minutes).
#   apt-get install -y etcd-server etcd-client wrk                # once
#   swift build -c release --product flotilla
#   Benchmarks/compare-server.sh [ROUNDS] [SECONDS]               # default 3 rounds of 10 s
#
# ANCHORS overrides where etcd_cluster.sh and the wrk scripts live; CONNECTIONS (default
# "64 1") the connection counts.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
anchors="${ANCHORS:-$root/../shared/etcd-anchors}"
rounds="${1:-3}"
seconds="${2:-10}"
connections="${CONNECTIONS:-64 1}"
flotilla="$root/.build/release/flotilla"
[ -x "$flotilla" ] || { echo "build it first: swift build -c release --product flotilla" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }

# A three-node Flotilla cluster; runs "$@" with $LEADER set to the leader's client URL.
with_flotilla() {
    local dir pids=() i leader
    dir="$(mktemp -d /tmp/flotilla-compare.XXXX)"
    local peers=http://127.0.0.1:32379,http://127.0.0.1:32381,http://127.0.0.1:32383
    for i in 1 2 3; do
        "$flotilla" serve --id "$i" --cluster "$peers" --port $((32389 + i)) --data-dir "$dir/n$i" \
            --log-level warning >"$dir/n$i.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 100); do curl -sf http://127.0.0.1:32390/health >/dev/null && break; sleep 0.1; done
    sleep 1
    leader=$(curl -s http://127.0.0.1:32390/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
    LEADER="http://127.0.0.1:$((32389 + leader))" "$@"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$dir"
}

# A three-member etcd cluster (as etcd_cluster.sh starts it); runs "$@" with $LEADER set to the
# leader's client URL. For `flotilla bench --api etcd`: the same load generator on both.
with_etcd() {
    local dir pids=() i leader
    dir="$(mktemp -d /tmp/etcd-compare.XXXX)"
    local initial=e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$dir/e$i" --listen-peer-urls "http://127.0.0.1:2380$i" \
            --initial-advertise-peer-urls "http://127.0.0.1:2380$i" --listen-client-urls "http://127.0.0.1:2379$i" \
            --advertise-client-urls "http://127.0.0.1:2379$i" --initial-cluster "$initial" --initial-cluster-state new \
            --log-level error --logger zap >"$dir/e$i.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 50); do etcdctl --endpoints=127.0.0.1:23791 endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
    leader=$(ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793 endpoint status -w json \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print([e["Endpoint"] for e in d if e["Status"]["leader"]==e["Status"]["header"]["member_id"]][0])')
    LEADER="http://$leader" "$@"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$dir"
}

# wrk's summary as one line: requests/s, p50, p99.
summarize() {
    awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%10s req/s  p50 %-8s p99 %s\n", rps, p50, p99}'
}

flotilla_wrk() {
    local threads=$(( $1 < 2 ? 1 : 2 ))
    wrk -t"$threads" -c"$1" -d"${seconds}s" --latency -s "$anchors/put_kv.lua" "$LEADER" | summarize
}

flotilla_bench() {
    "$flotilla" bench --api "${API:-flotilla}" --endpoints "$LEADER" --clients "$1" --conns "$1" --val-size 64 --duration "${seconds}s" --no-progress --json \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); l=s["latencyMicroseconds"]; print("%10.0f req/s  p50 %.2fms  p99 %.2fms  errors %d" % (s["throughput"], l["p50"]/1000, l["p99"]/1000, s["errors"]))'
}

echo "== $(date -u +%FT%TZ) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds of ${seconds}s"
for round in $(seq "$rounds"); do
    for c in $connections; do
        printf "round %d  %3d conns  etcd 3.4 wrk     " "$round" "$c"
        "$anchors/etcd_cluster.sh" "$c" "$seconds" 2>&1 | summarize
        printf "round %d  %3d conns  etcd 3.4 bench   " "$round" "$c"
        API=etcd with_etcd flotilla_bench "$c"
        printf "round %d  %3d conns  flotilla wrk     " "$round" "$c"
        with_flotilla flotilla_wrk "$c"
        printf "round %d  %3d conns  flotilla bench   " "$round" "$c"
        with_flotilla flotilla_bench "$c"
    done
done
