#!/usr/bin/env bash
# Fault soak (root): the namespace testbed with two WireGuard servers
# (Debian's wireguard-go, miniupnpd as Debian ships it), vpnfwd with both
# wg-quick files, a prober on the internet side every 250 ms, and faults in
# turn for MINUTES (default 30) in each data plane: a local program's
# NAT-PMP delete-all, gateway restarts with and without the epoch going
# back, the local service restarting, the WireGuard server restarting, a
# 10-s blackout, the server killed for good. Prints each fault's recovery
# (median and worst), the share of probes passing outside the faults, and
# how long /healthz said ok while probes failed.
#   MINUTES=30 bench/soak.sh            # both planes, one after the other
#   MINUTES=30 PLANES=tun bench/soak.sh # one plane
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${MINUTES:-30}
case $minutes in '' | *[!0-9.]*) echo "MINUTES must be a number, got '$minutes'" >&2; exit 2 ;; esac
out=$(mktemp -d)
for plane in ${PLANES:-netstack tun}; do
	echo "== $plane: $minutes minutes of faults"
	VPNFWD_SOAK_MINUTES=$minutes VPNFWD_FIGURES="$out/figures" \
		go test ./internal/rootnet -run "^TestFaultSoak\$/^$plane\$" -count=1 -v -timeout "$(awk "BEGIN{print int($minutes*60+900)}")s" |
		grep -E -- '--- |soak_test|^(ok|FAIL)' || true
done
echo
echo "| fault | plane | times | median | worst | bound |"
echo "|---|---|---|---|---|---|"
cat "$out"/figures.* 2>/dev/null | grep '^|' || true
cat "$out"/figures.* 2>/dev/null | grep -v '^|' || true
