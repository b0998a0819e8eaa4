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
# "64 1") the connection counts. Each round also drives etcd through its native gRPC client
# (`ETCD_LOAD=grpc etcd_cluster.sh`: clientv3, the better of etcd's two paths); ETCD_GRPC=0
# leaves that row out.
#
# ETCD=0 leaves every etcd row out (a quick Flotilla-against-BEFORE check).
#
# BEFORE=/path/to/an/older/flotilla adds rows for that binary beside this one's, same load,
# interleaved (the plaintext "no slower than before" check of a change).
#
# MODE=tls: both clusters with mutual TLS between members and HTTPS with client certificates
# on the API, from the same certificates (`flotilla certs`: P-256, one CA), etcd with its own
# TLS flags (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth and the --peer-*
# ones). wrk cannot present a client certificate, so both sides are driven by `flotilla bench`
# (`--api etcd` for etcd), with --cacert/--cert/--key.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
anchors="${ANCHORS:-$root/../shared/etcd-anchors}"
rounds="${1:-3}"
seconds="${2:-10}"
connections="${CONNECTIONS:-64 1}"
flotilla="$root/.build/release/flotilla"
mode="${MODE:-plain}"
before="${BEFORE:-}"
[ -x "$flotilla" ] || { echo "build it first: swift build -c release --product flotilla" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
[ -z "$before" ] || [ -x "$before" ] || { echo "BEFORE=$before is not an executable" >&2; exit 1; }

certs=""
scheme=http
if [ "$mode" = tls ]; then
    certs="$(mktemp -d /tmp/flotilla-compare-certs.XXXX)/certs"
    "$flotilla" certs "$certs" --nodes 3 >/dev/null
    scheme=https
fi
tls_client=(); [ -z "$certs" ] || tls_client=(--cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client-key.pem")
curl_tls=(); [ -z "$certs" ] || curl_tls=("${tls_client[@]}")

# A three-node Flotilla cluster (of $BINARY, default this build's); runs "$@" with $LEADER set
# to the leader's client URL.
with_flotilla() {
    local dir pids=() i leader binary="${BINARY:-$flotilla}" tls=()
    dir="$(mktemp -d /tmp/flotilla-compare.XXXX)"
    local peers=$scheme://127.0.0.1:32379,$scheme://127.0.0.1:32381,$scheme://127.0.0.1:32383
    for i in 1 2 3; do
        [ -z "$certs" ] || tls=(--peer-cert-file "$certs/node-$i.pem" --peer-key-file "$certs/node-$i-key.pem"
            --peer-trusted-ca-file "$certs/ca.pem" --cert-file "$certs/node-$i.pem" --key-file "$certs/node-$i-key.pem"
            --trusted-ca-file "$certs/ca.pem" --client-cert-auth)
        "$binary" serve --id "$i" --cluster "$peers" --port $((32389 + i)) --data-dir "$dir/n$i" \
            --log-level warning "${tls[@]}" >"$dir/n$i.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 100); do curl -sf "${curl_tls[@]}" $scheme://127.0.0.1:32390/health >/dev/null && break; sleep 0.1; done
    sleep 1
    leader=$(curl -s "${curl_tls[@]}" $scheme://127.0.0.1:32390/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
    LEADER="$scheme://127.0.0.1:$((32389 + leader))" "$@"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$dir"
}

# A three-member etcd cluster (as etcd_cluster.sh starts it); runs "$@" with $LEADER set to the
# leader's client URL. For `flotilla bench --api etcd`: the same load generator on both.
with_etcd() {
    local dir pids=() i leader
    dir="$(mktemp -d /tmp/etcd-compare.XXXX)"
    local initial=e1=$scheme://127.0.0.1:23801,e2=$scheme://127.0.0.1:23802,e3=$scheme://127.0.0.1:23803
    local tls=() ctl=()
    [ -z "$certs" ] || ctl=(--cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client-key.pem")
    for i in 1 2 3; do
        [ -z "$certs" ] || tls=(--cert-file "$certs/node-$i.pem" --key-file "$certs/node-$i-key.pem"
            --trusted-ca-file "$certs/ca.pem" --client-cert-auth --peer-cert-file "$certs/node-$i.pem"
            --peer-key-file "$certs/node-$i-key.pem" --peer-trusted-ca-file "$certs/ca.pem" --peer-client-cert-auth)
        etcd --name "e$i" --data-dir "$dir/e$i" --listen-peer-urls "$scheme://127.0.0.1:2380$i" \
            --initial-advertise-peer-urls "$scheme://127.0.0.1:2380$i" --listen-client-urls "$scheme://127.0.0.1:2379$i" \
            --advertise-client-urls "$scheme://127.0.0.1:2379$i" --initial-cluster "$initial" --initial-cluster-state new \
            --log-level error --logger zap "${tls[@]}" >"$dir/e$i.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 50); do ETCDCTL_API=3 etcdctl "${ctl[@]}" --endpoints=$scheme://127.0.0.1:23791 endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
    leader=$(ETCDCTL_API=3 etcdctl "${ctl[@]}" --endpoints=$scheme://127.0.0.1:23791,$scheme://127.0.0.1:23792,$scheme://127.0.0.1:23793 endpoint status -w json \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print([e["Endpoint"] for e in d if e["Status"]["leader"]==e["Status"]["header"]["member_id"]][0])')
    case "$leader" in *://*) ;; *) leader="$scheme://$leader" ;; esac
    LEADER="$leader" "$@"
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
    "$flotilla" bench --api "${API:-flotilla}" --endpoints "$LEADER" --clients "$1" --conns "$1" --val-size 64 --duration "${seconds}s" --no-progress --json "${tls_client[@]}" \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); l=s["latencyMicroseconds"]; print("%10.0f req/s  p50 %.2fms  p99 %.2fms  errors %d" % (s["throughput"], l["p50"]/1000, l["p99"]/1000, s["errors"]))'
}

echo "== $(date -u +%FT%TZ) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds of ${seconds}s, mode $mode"
for round in $(seq "$rounds"); do
    for c in $connections; do
        if [ "$mode" = tls ]; then
            printf "round %d  %3d conns  etcd 3.4 TLS bench  " "$round" "$c"
            API=etcd with_etcd flotilla_bench "$c"
            printf "round %d  %3d conns  flotilla TLS bench  " "$round" "$c"
            with_flotilla flotilla_bench "$c"
            continue
        fi
        if [ "${ETCD:-1}" = 1 ]; then
            printf "round %d  %3d conns  etcd 3.4 wrk     " "$round" "$c"
            "$anchors/etcd_cluster.sh" "$c" "$seconds" 2>&1 | summarize
            if [ "${ETCD_GRPC:-1}" = 1 ]; then
                # etcd's better path: its native gRPC client (clientv3), no JSON gateway.
                printf "round %d  %3d conns  etcd 3.4 gRPC    " "$round" "$c"
                ETCD_LOAD=grpc "$anchors/etcd_cluster.sh" "$c" "$seconds" 2>&1 | summarize
            fi
            printf "round %d  %3d conns  etcd 3.4 bench   " "$round" "$c"
            API=etcd with_etcd flotilla_bench "$c"
        fi
        printf "round %d  %3d conns  flotilla wrk     " "$round" "$c"
        with_flotilla flotilla_wrk "$c"
        printf "round %d  %3d conns  flotilla bench   " "$round" "$c"
        with_flotilla flotilla_bench "$c"
        if [ -n "$before" ]; then
            printf "round %d  %3d conns  before wrk       " "$round" "$c"
            BINARY="$before" with_flotilla flotilla_wrk "$c"
            printf "round %d  %3d conns  before bench     " "$round" "$c"
            BINARY="$before" with_flotilla flotilla_bench "$c"
        fi
    done
done
[ -z "$certs" ] || rm -rf "$(dirname "$certs")"
