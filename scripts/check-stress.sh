#!/usr/bin/env bash
# make check-stress: run the timing-sensitive suites N times (STRESS_N, default 5)
# while other processes keep every core busy (STRESS_LOAD busy loops, default one
# per core), then print each test that failed at least once with its count.
# Not part of the test command: run it before landing anything that touches
# timing, and record the result in doc/reliability.md.
# Usage (from the build dir): check-stress.sh TEST...   (automake test names)
set -uo pipefail
n=${STRESS_N:-5}
load=${STRESS_LOAD:-$(nproc)}
out=${STRESS_DIR:-stress-logs}
rm -rf "$out"
mkdir -p "$out"
pids=()
stop_load() {
	((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
}
trap stop_load EXIT
for ((i = 0; i < load; i++)); do
	(while :; do :; done) &
	pids+=($!)
done
echo "check-stress: $n runs of $# suites with $load busy loops ($(nproc) cores)"
start=$(date +%s)
declare -A fails=()
runs=0
for ((r = 1; r <= n; r++)); do
	for t in "$@"; do
		runs=$((runs + 1))
		if make -s check TESTS="$t" >/dev/null 2>&1; then
			continue
		fi
		log="$t.log"
		keep="$out/$(echo "$t" | tr / _).run$r.log"
		cp "$log" "$keep" 2>/dev/null || echo "(no log)" >"$keep"
		# the failed CUnit tests: the last "Test: NAME" before each FAILED
		names=$(awk '/Test: [A-Za-z0-9_]+ \.\.\./ {
				match($0, /Test: [A-Za-z0-9_]+/); cur = substr($0, RSTART + 6, RLENGTH - 6) }
			/FAILED/ && cur != "" { print cur; cur = "" }' "$keep" | sort -u)
		[ -n "$names" ] || names="(whole program: $(grep -m1 -E '^(FAIL|SKIP|ERROR)' "$keep" || echo 'see log'))"
		while read -r name; do
			key="$t: $name"
			fails[$key]=$((${fails[$key]:-0} + 1))
		done <<<"$names"
		echo "  run $r: $t failed ($(echo "$names" | tr '\n' ' ')), log $keep"
	done
done
stop_load
trap - EXIT
echo "check-stress: $runs suite runs in $(($(date +%s) - start)) s"
if ((${#fails[@]} == 0)); then
	echo "check-stress: no test failed in $n runs"
	exit 0
fi
echo "check-stress: tests that failed at least once (count of $n):"
for k in "${!fails[@]}"; do
	printf '  %s: %d\n' "$k" "${fails[$k]}"
done | sort
exit 1
