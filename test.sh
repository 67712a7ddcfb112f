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
if [ "${STATICCHECK:-1}" != 0 ]; then
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
fi
go test -race -count=1 -timeout 15m ./...

fuzztime=${FUZZTIME:-10s}
if [ "$fuzztime" != 0 ]; then
	grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
		pkg=./$(dirname "${file#./}")
		for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
			echo "fuzz $pkg $fn ($fuzztime)"
			# Quiet when it passes; everything it said when it does not
			# (the failing input is then in $pkg/testdata/fuzz/$fn).
			if ! out=$(go test "$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" 2>&1); then
				echo "$out" >&2
				exit 1
			fi
		done
	done
	echo "fuzzing: no failures"
fi
