#!/usr/bin/env bash
# The main job, for now: install the dependencies, build vfile, start a local etcd on
# free loopback ports with a temporary data dir, run tests/selfcheck against it (put,
# txn, lock with two contending threads, watch, all through the loaded etcd.so), print
# a short summary and stop etcd. Run as root on Debian bookworm.
#   VFILE_SKIP_DEPS=1      do not run scripts/install-deps.sh
#   VFILE_BUILD_DIR=DIR    build there (default: the source tree if it is already
#                          configured, else /var/tmp/vfile-demo-build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

[ "${VFILE_SKIP_DEPS:-0}" = 1 ] || bash "$here/scripts/install-deps.sh"

# ---- build ----
if [ -n "${VFILE_BUILD_DIR:-}" ]; then
	build=$VFILE_BUILD_DIR
elif [ -f "$here/config.status" ]; then
	build=$here
else
	build=/var/tmp/vfile-demo-build
fi
(cd "$here" && { [ -x configure ] || autoreconf -fi >/dev/null 2>&1; })
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$here/configure" -q
make -j"$(nproc)" >/dev/null
echo "demo: built vfile in $build"

# ---- a local etcd ----
etcd_bin=$(command -v etcd || true)
[ -n "$etcd_bin" ] || { echo "demo: etcd not found (install etcd-server)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/vfile-demo-XXXXXX)
etcd_pid=
cleanup() {
	if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
		kill "$etcd_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$etcd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$etcd_pid" 2>/dev/null || true
		wait "$etcd_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# A loopback port nobody listens on (the bind by etcd is the real check: retried).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
}

ready=
for attempt in 1 2 3; do
	cport=$(free_port) pport=$(free_port)
	[ "$cport" != "$pport" ] || continue
	"$etcd_bin" --name demo --data-dir "$tmp/etcd" \
		--listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "demo=http://127.0.0.1:$pport" \
		--election-timeout 500 --heartbeat-interval 50 --log-level warn --logger zap \
		>"$tmp/etcd.log" 2>&1 &
	etcd_pid=$!
	for _ in $(seq 200); do # up to 20 s
		kill -0 "$etcd_pid" 2>/dev/null || break
		if curl -fsS --max-time 1 "http://127.0.0.1:$cport/health" 2>/dev/null | grep -q '"true"'; then
			ready=1
			break
		fi
		sleep 0.1
	done
	[ -z "$ready" ] || break
	echo "demo: etcd did not start on 127.0.0.1:$cport (attempt $attempt): $(tail -1 "$tmp/etcd.log")" >&2
	kill -9 "$etcd_pid" 2>/dev/null || true
	wait "$etcd_pid" 2>/dev/null || true
	etcd_pid=
	rm -rf "$tmp/etcd"
done
[ -n "$ready" ] || { echo "demo: cannot start etcd" >&2; exit 1; }
version=$(curl -fsS --max-time 2 "http://127.0.0.1:$cport/version" | sed 's/.*"etcdserver":"\([^"]*\)".*/\1/')
echo "demo: etcd $version on 127.0.0.1:$cport (data in $tmp/etcd, pid $etcd_pid)"

# ---- the self-check through the loaded backend module ----
cat >"$tmp/vfile.conf" <<EOF
etcd = {
  endpoints = ["http://127.0.0.1:$cport"];
  timeout_ms = 2000;
};
EOF
status=0
VFILE_BACKEND_DIR="$build/.libs" "$build/tests/selfcheck" etcd "$tmp/vfile.conf" || status=$?

echo "---- summary"
echo "backend module: $build/.libs/etcd.so"
echo "store:          etcd $version at http://127.0.0.1:$cport (stopped on exit)"
if [ "$status" = 0 ]; then
	echo "result:         put, txn, lock and watch all checked out"
else
	echo "result:         FAILED (selfcheck exit $status); etcd log: $(tail -1 "$tmp/etcd.log")"
fi
exit "$status"
