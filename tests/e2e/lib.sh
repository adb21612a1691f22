# Shared helpers of the end-to-end tests (sourced, bash). Every process a test
# starts is recorded and killed (with its process group) at exit, mounts under
# the test's directory are undone and the directory removed.
set -u

E2E_NAME=$(basename "$0" .test)
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${VFILE_BACKEND_DIR:=$top_builddir/.libs}"
export PATH="$PATH:/usr/sbin:/sbin"
VFILED="$top_builddir/vfiled"
HOOK="$top_srcdir/conf/hooks/vfile-local-hook"
E2E_PIDS=""
E2E_FAILS=0
E2E_PASSES=0
E2E_DIR=$(mktemp -d "/tmp/vfile-e2e-$E2E_NAME.XXXXXX")
chmod 755 "$E2E_DIR"

e2e_log() { printf '%s: %s\n' "$E2E_NAME" "$*" >&2; }

E2E_ON_EXIT=""   # extra shell commands run first at exit
E2E_MOUNT_DIRS="" # extra directories whose mounts are undone at exit
E2E_ON_EXIT_LATE="" # extra shell commands run last at exit
e2e_cleanup() {
	local p d
	eval "$E2E_ON_EXIT"
	for p in $E2E_PIDS; do
		kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
	done
	for p in $E2E_PIDS; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
	done
	# undo mounts left under our directory (deepest first)
	for d in "$E2E_DIR" $E2E_MOUNT_DIRS; do
		awk -v d="$d" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null; done
	done
	# the sftp driver makes mountpoints immutable while mounted (chattr +i)
	for d in "$E2E_DIR"/*/mnt/*; do [ -d "$d" ] && chattr -i "$d" 2>/dev/null; done
	if [ "${E2E_KEEP:-}" = "" ]; then rm -rf "$E2E_DIR"; else e2e_log "kept $E2E_DIR"; fi
	eval "$E2E_ON_EXIT_LATE"
	e2e_release_ports
}
trap e2e_cleanup EXIT
trap 'exit 1' INT TERM

# Skip outside CI (exit 77), fail under CI=true.
e2e_unavailable() {
	if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
		e2e_log "FAIL: $* (CI=true: required)"
		exit 1
	fi
	e2e_log "SKIP: $* (set CI=true to make this a failure)"
	exit 77
}

not() { ! "$@"; }
ok() { E2E_PASSES=$((E2E_PASSES + 1)); e2e_log "ok: $*"; }
fail() { E2E_FAILS=$((E2E_FAILS + 1)); e2e_log "FAIL: $*"; }
check() { # check "what" cmd...
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
# The closing line: "N passed, N failed"; exit status from it.
e2e_finish() {
	echo "$E2E_NAME: $E2E_PASSES passed, $E2E_FAILS failed"
	[ "$E2E_FAILS" = 0 ]
}

# A loopback port for a test server, from the registry every test process on the
# machine shares (tests/harness/harness.c, vf_srv_free_port, says why): one file per
# port handed out, naming the pid of the test that owns it, taken under flock. The
# port stays ours until this script exits (e2e_cleanup gives it back), so a server
# we kill and restart finds it again and no suite beside us is given it. Drawn
# below the kernel's ephemeral range (an outgoing connection cannot take it between
# now and the bind) and below 49152 (docker's data path port refuses higher ones);
# nothing may use it over TCP or UDP (Consul's serf ports are both).
E2E_PORT_DIR=${VF_TEST_PORT_DIR:-/tmp/vfile-test-ports}
free_port() { free_ports 1; }
# free_ports N: N consecutive such ports, printed as "LO" (N = 1) or "LO-HI".
free_ports() {
	local n=$1 p lo hi holder i
	mkdir -p "$E2E_PORT_DIR" 2>/dev/null && chmod 1777 "$E2E_PORT_DIR" 2>/dev/null
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
	hi=$((lo < 49152 ? lo : 49152))
	(
		flock -w 60 9 || exit 1
		for _ in $(seq 1000); do
			p=$((20000 + (RANDOM * 32768 + RANDOM) % (hi - 20000 - n)))
			for i in $(seq "$p" $((p + n - 1))); do
				holder=
				[ -e "$E2E_PORT_DIR/$i" ] && read -r holder <"$E2E_PORT_DIR/$i" 2>/dev/null
				[ -n "$holder" ] && kill -0 "$holder" 2>/dev/null && continue 2
				[ -z "$(ss -Htuan "sport = :$i" 2>/dev/null)" ] || continue 2
				(exec 3<>"/dev/tcp/127.0.0.1/$i") 2>/dev/null && continue 2
			done
			for i in $(seq "$p" $((p + n - 1))); do
				echo $$ >"$E2E_PORT_DIR/$i" || exit 1
			done
			if [ "$n" = 1 ]; then echo "$p"; else echo "$p-$((p + n - 1))"; fi
			exit 0
		done
		exit 1
	) 9>>"$E2E_PORT_DIR/.lock"
}
# Give back the ports this script took (at exit).
e2e_release_ports() {
	local f holder
	for f in "$E2E_PORT_DIR"/[0-9]*; do
		[ -e "$f" ] || continue
		read -r holder <"$f" 2>/dev/null
		[ "$holder" = "$$" ] && rm -f "$f"
	done
}

# Run "$@" in its own process group in the background; records the pid in E2E_LAST.
spawn() {
	local log=$1
	shift
	setsid "$@" >>"$log" 2>&1 </dev/null &
	E2E_LAST=$!
	E2E_PIDS="$E2E_PIDS $E2E_LAST"
}

# wait_for SECONDS cmd...: poll every 0.1 s until cmd succeeds; 1 on time-out.
wait_for() {
	local secs=$1 i
	shift
	for i in $(seq $((secs * 10))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	return 1
}

# ---- stores ----
# start_etcd [CLIENT_PORT PEER_PORT]: sets ETCD_URL (ports picked unless given)
start_etcd() {
	command -v etcd >/dev/null || e2e_unavailable "etcd not installed"
	local cp=${1:-} pp=${2:-}
	if [ -z "$cp" ]; then
		cp=$(free_port) && pp=$(free_port) || e2e_unavailable "no free port"
	fi
	ETCD_URL="http://127.0.0.1:$cp"
	spawn "$E2E_DIR/etcd.log" etcd --name e2e --data-dir "$E2E_DIR/etcd-data" \
		--listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
		--listen-peer-urls "http://127.0.0.1:$pp" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pp" \
		--initial-cluster "e2e=http://127.0.0.1:$pp"
	wait_for 30 sh -c "curl -sf '$ETCD_URL/health' | grep -q true" ||
		e2e_unavailable "etcd did not start (see $E2E_DIR/etcd.log)"
	STORE_GROUP="etcd = { endpoints = [ \"$ETCD_URL\" ]; };"
}

start_consul() { # sets CONSUL_URL
	command -v consul >/dev/null || e2e_unavailable "consul not installed"
	local hp sl sw sv
	hp=$(free_port) && sl=$(free_port) && sw=$(free_port) && sv=$(free_port) ||
		e2e_unavailable "no free port"
	CONSUL_URL="http://127.0.0.1:$hp"
	spawn "$E2E_DIR/consul.log" consul agent -dev -bind 127.0.0.1 -client 127.0.0.1 \
		-data-dir "$E2E_DIR/consul-data" \
		-hcl "ports { http = $hp, dns = -1, grpc = -1, serf_lan = $sl, serf_wan = $sw, server = $sv }"
	wait_for 30 sh -c "curl -sf '$CONSUL_URL/v1/status/leader' | grep -q ':'" ||
		e2e_unavailable "consul did not start (see $E2E_DIR/consul.log)"
	STORE_GROUP="consul = { endpoints = [ \"$CONSUL_URL\" ]; };"
}

# ---- daemons ----
# write_conf NAME ROLE BACKEND [extra settings...]: $E2E_DIR/NAME.conf
write_conf() {
	local name=$1 role=$2 backend=$3
	shift 3
	cat >"$E2E_DIR/$name.conf" <<EOF
node_id = "$name";
role = "$role";
backend = "$backend";
backend_dir = "$VFILE_BACKEND_DIR";
prefix = "e2e/";
plugin_socket = "$E2E_DIR/$name/plugin.sock";
mount_root = "$E2E_DIR/$name/mnt";
state_dir = "$E2E_DIR/$name/state";
lease_ttl_s = 10;
op_timeout_ms = 20000;
reconcile_ms = 1000;
log_level = "debug";
$STORE_GROUP
fileserver = {
	driver = "${E2E_FS_DRIVER:-hooks}";
	export_root = "$E2E_DIR/export";
	hooks = { start = "$HOOK"; stop = "$HOOK"; mount = "$HOOK"; unmount = "$HOOK"; status = "$HOOK"; };
};
$*
EOF
	if [ "${E2E_FS_DRIVER:-hooks}" = none ]; then
		sed -i '/hooks = {/d' "$E2E_DIR/$name.conf"
	fi
}

# vfiled_ready NAME: vfiled NAME has reached its store (VFile.Status answers without Err;
# while it starts, the socket answers Activate but every other request is an Err).
vfiled_ready() {
	local st
	st=$(req "$1" /VFile.Status '' 2>/dev/null) && [ -n "$st" ] &&
		[ "$(jget '["Err"]' <<<"$st" 2>/dev/null)" = "" ]
}

# start_vfiled NAME: runs vfiled -c NAME.conf, waits until it has reached its store.
start_vfiled() {
	local name=$1
	# as under systemd: no login shell in its environment, so ssh runs a
	# ProxyCommand with /bin/sh, not the caller's (slower) bash
	local -x SHELL=/bin/sh
	mkdir -p "$E2E_DIR/$name"
	spawn "$E2E_DIR/$name.log" "$VFILED" -c "$E2E_DIR/$name.conf"
	eval "PID_$name=$E2E_LAST"
	local i up=0
	for i in $(seq 300); do
		if vfiled_ready "$name"; then up=1; break; fi
		kill -0 "$E2E_LAST" 2>/dev/null || break
		sleep 0.1
	done
	if [ $up = 0 ]; then
		e2e_log "vfiled $name did not start; its log:"
		tail -20 "$E2E_DIR/$name.log" >&2
		return 1
	fi
}

# stop_vfiled NAME [SIG]: signal it and wait (bounded, 30 s) for its exit; the exit
# status in STOP_STATUS ("still-running" if it did not exit). Not in a subshell.
stop_vfiled() {
	local name=$1 sig=${2:-TERM} pid
	eval "pid=\$PID_$name"
	kill -"$sig" "$pid" 2>/dev/null
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		STOP_STATUS=still-running
		return 1
	fi
	wait "$pid" 2>/dev/null
	STOP_STATUS=$?
}

# req NAME PATH BODY: POST to NAME's socket; the answer on stdout, curl's status.
req() {
	curl -sS --max-time 60 --unix-socket "$E2E_DIR/$1/plugin.sock" -X POST \
		-H 'Content-Type: application/json' --data-binary "$3" "http://localhost$2"
}
# The answer's field (jq-less: python3 reads JSON).
jget() { # jget 'expr' < json   e.g. jget '["Err"]'
	python3 -c "import json,sys; d=json.load(sys.stdin); v=d$1; print(v if isinstance(v,str) else json.dumps(v))"
}
# err_of NAME PATH BODY: the Err of the answer.
err_of() { req "$1" "$2" "$3" | jget '["Err"]'; }
