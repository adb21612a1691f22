#!/bin/sh
# Run the libFuzzer targets (called by `make fuzz-smoke` / `make fuzz`).
#   run.sh smoke RUNS SRCDIR TARGET...   replay SRCDIR/<t>/regress, then RUNS runs
#   run.sh long SECONDS SRCDIR TARGET... fuzz each target for SECONDS
# <t> is the target name without "fuzz_"; $FUZZ_RUNS_<t> overrides RUNS for it;
# $FUZZ_MAX_TIME (seconds) also bounds each smoke run. New corpus entries go to a scratch dir
# next to the target (removed afterwards); a crash leaves <target dir>/<t>.crash-*
# and fails the run.
set -u
mode=$1 amount=$2 src=$3
shift 3
status=0
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:symbolize=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$src/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
for bin in "$@"; do
	t=$(basename "$bin")
	t=${t#fuzz_}
	dir=$(dirname "$bin")
	log=$dir/$t.log
	seeds=$src/$t
	: >"$log"
	# 1. every regression input once
	if [ -d "$seeds/regress" ] && [ -n "$(ls "$seeds/regress" 2>/dev/null)" ]; then
		n=$(ls "$seeds/regress" | wc -l)
		if ! "$bin" -timeout=10 "$seeds/regress"/* >>"$log" 2>&1; then
			echo "fuzz $t: a regression input fails again:"
			grep -E 'Running|ERROR|SUMMARY|runtime error' "$log" | tail -20
			status=1
			continue
		fi
		echo "fuzz $t: $n regression inputs pass"
	fi
	# 2. fuzzing from the seed corpus
	scratch=$(mktemp -d "$dir/scratch-$t.XXXXXX")
	case $mode in
	smoke) eval "limit=\"-runs=\${FUZZ_RUNS_$t:-$amount} -max_total_time=\${FUZZ_MAX_TIME:-0}\"" ;;
	*) limit="-max_total_time=$amount" ;;
	esac
	start=$(date +%s)
	"$bin" $limit -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
		-artifact_prefix="$dir/$t." "$scratch" "$seeds" >>"$log" 2>&1
	rc=$?
	end=$(date +%s)
	rm -rf "$scratch"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if [ "$rc" != 0 ]; then
		echo "fuzz $t: FAILED (exit $rc) after $((end - start)) s; log $log:"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written|^    #[0-9]' "$log" | head -30
		status=1
	else
		echo "fuzz $t: ${runs:-?} runs in $((end - start)) s, no crash"
	fi
done
exit $status
