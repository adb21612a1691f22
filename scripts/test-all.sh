#!/usr/bin/env bash
# The test command: install every dependency, build from scratch, run every suite
# against real servers, print each CUnit summary, then valgrind and distcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CI=${CI:-}
[ -x configure ] || autoreconf -fi >/dev/null
[ -f Makefile ] || ./configure -q
make -j"$(nproc)" >/dev/null
status=0
make -j2 check || status=$?
# CUnit's summaries live in the automake logs: show them.
for log in $(find tests -name '*.log' ! -name test-suite.log | sort); do
	echo "==== ${log%.log}"
	sed -n '/^Run Summary/,/^Elapsed/p;/^SKIP:/p;/^FAIL:/p' "$log"
done
[ "$status" = 0 ] || { cat test-suite.log 2>/dev/null | tail -100; exit "$status"; }
make valgrind
make distcheck >/dev/null
echo "test-all: all suites passed"
