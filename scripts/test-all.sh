#!/usr/bin/env bash
# The test command: install every dependency, build from scratch, run every suite
# against real servers (etcd, Consul, sshd/sshfs, dockerd) that the tests start
# themselves, print each CUnit summary, then the memory, model and packaging checks.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
start=$(date +%s)
# This run's own files (summary, demo and distcheck logs, the sanitizer build), in
# the tree: two checkouts testing on one machine at once must not share them.
run=${VFILE_TEST_RUN_DIR:-$top/.test-run}
mkdir -p "$run"
step() { printf '\n==== %s (%ss)\n' "$*" $(($(date +%s) - start)); }

step "dependencies"
bash scripts/install-deps.sh

step "build"
[ -x configure ] || autoreconf -fi >/dev/null
[ -f Makefile ] || ./configure -q
make -j"$(nproc)" >/dev/null

step "make check"
status=0
make -j2 check || status=$?

# CUnit's summaries and the shell suites' tallies live in the automake logs: show
# them, then one total line.
summary() {
	local passed=0 failed=0 log p f
	for log in $(find tests -name '*.log' ! -name test-suite.log | sort); do
		echo "---- ${log%.log}"
		sed -n '/^Run Summary/,/^Elapsed/p;/^SKIP:/p;/^FAIL:/p;/^[0-9]* passed, [0-9]* failed/p' "$log"
		read -r p f < <(awk '/^ *tests +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+/ {p+=$4; f+=$5}
			/^[0-9]+ passed, [0-9]+ failed/ {p+=$1; f+=$3}
			END {print p+0, f+0}' "$log")
		passed=$((passed + p))
		failed=$((failed + f))
	done
	echo
	echo "total: $passed passed, $failed failed"
}
summary | tee "$run/summary.txt"
if [ "$status" != 0 ]; then
	tail -150 test-suite.log 2>/dev/null || true
	echo "make check failed; what failed:"
	grep -E '^(FAIL|ERROR):|FAILED|had failures|^ +[0-9]+\. [^ ]+:[0-9]+ ' test-suite.log | head -60 || true
	exit "$status"
fi

# The README's first command, on the tree just built (its dependencies and build
# steps find everything done): two hosts share a volume through a file server
# vfile started on demand.
step "the main job (scripts/demo.sh)"
VFILE_SKIP_DEPS=1 bash scripts/demo.sh >"$run/demo.log" 2>&1 ||
	{ tail -40 "$run/demo.log"; echo "scripts/demo.sh failed"; exit 1; }
tail -4 "$run/demo.log"

for target in valgrind model-check fuzz-smoke; do
	if make -n "$target" >/dev/null 2>&1; then
		step "make $target"
		make "$target"
	fi
done

if [ -f scripts/test-sanitizers.sh ]; then
	step "sanitizers (ASan + UBSan build, make check)"
	bash scripts/test-sanitizers.sh "${SAN_BUILD_DIR:-$run/san}"
fi

if make -n check-secrets >/dev/null 2>&1; then
	step "no secret in any log"
	make check-secrets
fi

if make -n bench >/dev/null 2>&1; then
	step "benchmark smoke run (figures: doc/performance.md; full run: make bench)"
	make bench BENCH_FLAGS=--quick
fi

if make -n deb-test >/dev/null 2>&1; then
	step "Debian packages"
	make deb-test
fi

step "make distcheck (unit suites only: the server suites ran above)"
make distcheck TESTS="$(make -s print-unit-tests)" >"$run/distcheck.log" 2>&1 ||
	{ tail -60 "$run/distcheck.log"; exit 1; }
grep -E '^=+$|archives ready|vfile-.*tar.gz' "$run/distcheck.log" | head -5

step "done"
echo "test-all: every suite passed; make check tally:"
tail -1 "$run/summary.txt"
