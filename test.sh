#!/usr/bin/env bash
# vpnfwd's test command (the README's, and what .ci/run calls):
#   gofmt and go vet, all tests with the race detector, then each fuzz
#   target briefly. Tests that need root (network namespaces with Debian's
#   wireguard-go and miniupnpd) skip themselves unless run as root.
# FUZZTIME=0 skips fuzzing; FUZZTIME=1m fuzzes longer. STATICCHECK=0 skips
# staticcheck (it comes from the Go module proxy, pinned).
set -euo pipefail
cd "$(dirname "$0")"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# The machines users run besides amd64: ARM seedboxes and Raspberry Pis
# (64-bit, and 32-bit ARMv7). CROSS=0 skips.
if [ "${CROSS:-1}" != 0 ]; then
	for target in arm64 arm/7; do
		echo "cross-compiling cmd/vpnfwd for linux/$target"
		goarm=
		[ "${target#*/}" != "$target" ] && goarm=${target#*/}
		CGO_ENABLED=0 GOOS=linux GOARCH=${target%%/*} GOARM=$goarm go build -trimpath -o /dev/null ./cmd/vpnfwd
	done
fi
if [ "${STATICCHECK:-1}" != 0 ]; then
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
fi
go test -race -count=1 -timeout 15m ./...
# The Kubernetes example against the Kubernetes API's own types (a module
# of its own, so vpnfwd does not depend on k8s.io).
(cd examples/kubernetes/validate && go test -count=1 ./...)

fuzztime=${FUZZTIME:-10s}
# inputs counts the saved inputs in a fuzz corpus directory (0 if none).
inputs() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
if [ "$fuzztime" != 0 ]; then
	grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
		pkg=./$(dirname "${file#./}")
		for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
			echo "fuzz $pkg $fn ($fuzztime)"
			# Quiet when it passes; everything it said when it does not
			# (the failing input is then in $pkg/testdata/fuzz/$fn).
			before=$(inputs "$pkg/testdata/fuzz/$fn")
			if ! out=$(go test "$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" 2>&1); then
				after=$(inputs "$pkg/testdata/fuzz/$fn")
				# Go 1.26's fuzz coordinator can fail a run at the end of a
				# timed -fuzztime with a bare "context deadline exceeded"
				# and no failing input (golang/go#75804, fixed in Go 1.27):
				# only then, fuzz again by count, which has no deadline.
				if [ "$after" = "$before" ] && [ "$(echo "$out" | grep -c 'context deadline exceeded')" = 1 ] &&
					! echo "$out" | grep -q -e 'panic' -e 'Failing input'; then
					echo "  (Go's fuzz deadline race, golang/go#75804: fuzzing again by count)"
					out=$(go test "$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime 5000x 2>&1) || {
						echo "$out" >&2
						exit 1
					}
				else
					echo "$out" >&2
					exit 1
				fi
			fi
		done
	done
	echo "fuzzing: no failures"
fi
