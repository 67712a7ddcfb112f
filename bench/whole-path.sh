#!/usr/bin/env bash
# Whole-path benchmark (root): builds the namespace testbed with the
# current wireguard-go (built from the module vpnfwd requires) as the VPN
# server and as the kernel-TUN reference client, Debian's wireguard-go as
# a second labelled client, and measures in one interleaved run: start to
# port reachable, bulk TCP (one connection, and 50 at once with their
# spread), UDP at offered rates with the loss each way, CPU per GB (each
# client's own and the whole machine's), the internet end's TCP counters
# (segments retransmitted, or received twice or out of order), and
# vpnfwd's memory with 1,000 TCP + 1,000 UDP peers held, and a seedbox's
# load (200 peers downloading at 1 Mbit/s each) through the reference, the
# netstack and --tun: CPUs and memory over idle.
#   bench/whole-path.sh
#   VPNFWD_BENCH_GOMAXPROCS=1 bench/whole-path.sh      # a small ARM board
# Knobs: VPNFWD_BENCH_ROUNDS (3), _SECONDS (5), _STREAMS (1), _MANY (50;
# 0 skips), _TCP=0 (no one-connection runs), _UDP (Mbit/s offered,
# "300,800"; "0" skips), _GOMAXPROCS,
# _WG=PATH (another wireguard-go as server and reference), _DEBIAN=0 (no
# Debian row), _BIN (vpnfwd to measure), _BIN2 (a second one in the same
# rounds), _PERF=DIR (perf record of each vpnfwd during the first round),
# _SETTLE=S (every client's RSS each 10 s for S seconds after the runs),
# _SEEDBOX (rounds of the 200-peer comparison, 1; 0 skips),
# _SEEDBOX_ONLY=1 (only that comparison: a few minutes), _TRACE=DIR (the
# netstack's TCP senders and the reference's sockets over time, in DIR).
# Takes about 10 minutes with the defaults; not part of CI (./test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VPNFWD_BENCH=1 exec go test ./internal/rootnet -run '^TestWholePath$' -count=1 -v -timeout 45m
