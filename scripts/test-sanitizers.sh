#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (with
# LeakSanitizer): configures a separate build with --enable-sanitizers and runs
# `make check` there. Any ASan/UBSan report or leak fails the test that hit it.
#
#   scripts/test-sanitizers.sh [BUILD_DIR]      (default: $SAN_BUILD_DIR, else $TMPDIR/vfile-build-san)
#
# A source tree configured in place (./configure run at the top, as test-all.sh
# does) cannot host a second, out-of-tree build: the sources are then taken from
# `make distdir` (what distcheck builds) into BUILD_DIR/src. Backend modules are
# dlopen'ed into sanitized programs; they are built with the same flags and
# resolve the sanitizer runtime from the program.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${SAN_BUILD_DIR:-${TMPDIR:-/tmp}/vfile-build-san}}
jobs=${SAN_JOBS:-2}
mkdir -p "$build"
build=$(cd "$build" && pwd)

[ -x "$src/configure" ] || (cd "$src" && autoreconf -fi >/dev/null)
top=$src
if [ -f "$src/config.status" ]; then
	echo "test-sanitizers: $src is configured in place: building from make distdir"
	rm -rf "$build/src"
	make -C "$src" -s distdir distdir="$build/src" >/dev/null
	top=$build/src
fi
obj=$build/obj
mkdir -p "$obj"
cd "$obj"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ]; then
	"$top/configure" -q --enable-sanitizers
fi
grep -q -- '-fsanitize=address' Makefile || {
	echo "test-sanitizers: $obj is not configured with --enable-sanitizers" >&2
	exit 1
}
make -s -j"$(nproc)" >/dev/null

# halt_on_error + abort_on_error=0: a report ends the program with a failure exit.
# Leaks are checked at exit of every program (tests, vfiled, vfilectl);
# tests/fuzz/lsan.supp lists leaks inside system libraries (libconfig 1.5).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:allocator_may_return_null=1:print_summary=1${ASAN_EXTRA:+:$ASAN_EXTRA}"
export LSAN_OPTIONS="suppressions=$top/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:print_summary=1"
export CI=${CI:-}

status=0
start=$(date +%s)
make -j"$jobs" check || status=$?
end=$(date +%s)
for log in $(find tests -name '*.log' ! -name test-suite.log | sort); do
	echo "==== sanitizers: ${log%.log}"
	sed -n '/^Run Summary/,/^Elapsed/p;/^SKIP:/p;/^FAIL:/p;/^ERROR:/p' "$log"
	grep -h -A12 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | head -40 || true
done
if [ "$status" != 0 ]; then
	tail -100 test-suite.log 2>/dev/null || true
	grep -E '^(FAIL|ERROR):|FAILED|had failures|^ +[0-9]+\. [^ ]+:[0-9]+ ' test-suite.log | head -60 || true
	echo "test-sanitizers: FAILED after $((end - start)) s (build $obj)"
	exit "$status"
fi
echo "test-sanitizers: make check passed under ASan+UBSan+LSan in $((end - start)) s (build $obj)"
