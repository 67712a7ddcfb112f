#!/usr/bin/env bash
# Whole-path benchmark (root): builds the namespace testbed (Debian's
# wireguard-go as the VPN server), then measures vpnfwd's forwarded-port
# throughput next to Debian's kernel-TUN wireguard-go client in the same
# run, and vpnfwd's memory with 1,000 TCP + 1,000 UDP peers.
#   VPNFWD_BENCH_SECONDS=10 bench/whole-path.sh
# Knobs: VPNFWD_BENCH_ROUNDS (3), _SECONDS (5), _STREAMS (1, iperf3 -P),
# _BIN (vpnfwd to measure), _BIN2 (a second one in the same rounds),
# _PERF=DIR (perf record of each vpnfwd during the first round),
# _SETTLE=S (every client's RSS each 10 s for S seconds after the runs);
# VPNFWD_TEST_WG_SERVER=PATH: another wireguard-go as the VPN server, e.g.
#   go build -o /tmp/wireguard-go golang.zx2c4.com/wireguard
set -euo pipefail
cd "$(dirname "$0")/.."
VPNFWD_BENCH=1 exec go test ./internal/rootnet -run '^TestWholePath$' -count=1 -v -timeout 10m
