#!/usr/bin/env bash
# The main job: install the dependencies, build vfile, and run a two-host cluster on
# this machine with the embedded default:
#   - "manager1": vfiled with embedded etcd (etcd.embedded = true) and the default
#     sftp file-server driver;
#   - "host2": a second vfiled (role worker) on the same store;
# each with its own config file, plugin socket, mount root and state dir, on free
# loopback ports. Then: create a volume with vfilectl, mount it on both hosts, write a
# file through one host's mountpoint and read it through the other's (host2 through
# sshfs to the per-volume sftp server that vfile started; manager1, which serves the
# volume, through a bind mount of the export directory), show `vfilectl inspect`, unmount both,
# show the server stopped, remove the volume, and clean everything up.
# Run as root on Debian bookworm.
#   VFILE_SKIP_DEPS=1      do not run scripts/install-deps.sh
#   VFILE_BUILD_DIR=DIR    build there (default: the source tree if it is already
#                          configured, else /var/tmp/vfile-demo-build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
t0=$(date +%s.%N)

stepno=0
step() {
	stepno=$((stepno + 1))
	printf '\n==== %d. %s\n' "$stepno" "$*"
}
die() {
	printf 'demo: FAILED: %s\n' "$*" >&2
	exit 1
}
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

[ "$(id -u)" = 0 ] || die "run as root (the sftp servers chroot and sshfs mounts need it)"

# ---- dependencies and build ----
step "dependencies (scripts/install-deps.sh)"
if [ "${VFILE_SKIP_DEPS:-0}" = 1 ]; then
	echo "skipped (VFILE_SKIP_DEPS=1)"
else
	bash "$here/scripts/install-deps.sh"
	echo "installed"
fi

step "build"
if [ -n "${VFILE_BUILD_DIR:-}" ]; then
	build=$VFILE_BUILD_DIR
elif [ -f "$here/config.status" ]; then
	build=$here
else
	build=/var/tmp/vfile-demo-build
fi
if [ ! -x "$here/configure" ] || [ ! -f "$here/Makefile.in" ]; then
	(cd "$here" && autoreconf -fi) >/tmp/vfile-demo-autoreconf.log 2>&1 ||
		{ tail -20 /tmp/vfile-demo-autoreconf.log >&2; die "autoreconf -fi in $here"; }
fi
mkdir -p "$build"
cd "$build"
# (re)configure when the build dir is new or was configured for another source tree
if [ ! -f Makefile ] || [ "$(sed -n 's/^abs_srcdir = //p' Makefile)" != "$here" ]; then
	"$here/configure" -q || die "configure in $build"
fi
make -j"$(nproc)" all tests/selfcheck >/dev/null || die "make in $build"
VFILED=$build/vfiled
VFILECTL=$build/vfilectl
echo "built vfiled, vfilectl and the backend modules in $build ($(elapsed))"

for prog in etcd sshd sshfs ssh-keygen fusermount3; do
	command -v "$prog" >/dev/null || die "$prog not found (run scripts/install-deps.sh)"
done
[ -c /dev/fuse ] || die "/dev/fuse missing (sshfs needs FUSE)"

# ---- the temp dirs and the cleanup ----
# Configs, sockets, state, mount roots and keys: $tmp. The volumes' data: $export,
# which sshd's ChrootDirectory needs root-owned with no group/world-writable
# component, so not under /tmp.
tmp=$(mktemp -d /tmp/vfile-demo.XXXXXX)
mkdir -p /var/lib
export=$(mktemp -d /var/lib/vfile-demo-export.XXXXXX)
chmod 755 "$tmp" "$export"
nodes="manager1 host2"
declare -A pid=()
etcd_pid=
cleanup() {
	local rc=$? n p m
	set +e
	trap - EXIT INT TERM
	# mounts first, while their servers still answer
	for m in $(awk -v d="$tmp/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m"
	done
	for n in $nodes; do
		p=${pid[$n]:-}
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null
	done
	for n in $nodes; do
		p=${pid[$n]:-}
		[ -n "$p" ] || continue
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	# what a daemon leaves on purpose or after a failure: file servers, etcd
	for f in "$tmp"/*/state/sftp/*/sshd.pid; do
		[ -f "$f" ] || continue
		p=$(cat "$f" 2>/dev/null)
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null
	done
	[ -n "$etcd_pid" ] && kill -TERM "$etcd_pid" 2>/dev/null
	# nothing may still be mounted under the dirs we delete
	awk -v d="$tmp/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf --one-file-system "$tmp" "$export"
	if [ "$rc" = 0 ]; then
		echo "demo: cleaned up ($tmp, $export)"
	else
		echo "demo: FAILED (exit $rc); cleaned up ($tmp, $export)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Loopback ports for etcd and the sftp servers: below the kernel's ephemeral range
# (an outgoing connection may hold a port of that range at any time), not bound by
# any socket now; "used" holds the ones already handed out.
read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph_lo=32768
port_lo=20000 port_n=$((eph_lo - 20000))
[ "$port_n" -ge 1000 ] || port_lo=40000 port_n=20000
used=" "
port_busy() { [[ "$used" == *" $1 "* ]] || ss -Htan "sport = :$1" 2>/dev/null | grep -q .; }
free_port() {
	local p
	for _ in $(seq 500); do
		p=$((port_lo + RANDOM % port_n))
		port_busy "$p" && continue
		used="$used$p "
		echo "$p"
		return 0
	done
	die "no free loopback port"
}
# A block of 20 free ports for the per-volume sftp servers.
free_range() {
	local lo i busy
	for _ in $(seq 200); do
		lo=$((port_lo + RANDOM % (port_n - 20)))
		busy=
		for i in $(seq 0 19); do
			if port_busy $((lo + i)); then
				busy=1
				break
			fi
		done
		[ -n "$busy" ] || { echo "$lo-$((lo + 19))"; return 0; }
	done
	die "no free block of ports"
}

ctl() { # ctl NODE ARGS...: vfilectl on NODE's socket, the command echoed
	local n=$1
	shift
	echo "[$n]\$ vfilectl $*" >&2
	"$VFILECTL" -s "$tmp/$n/plugin.sock" -t 60 "$@"
}
mounted() { awk -v mp="$1" '$5 == mp { f = 1 } END { exit !f }' /proc/self/mountinfo; }

# ---- keys and configs ----
step "cluster key pair and host key (ssh-keygen, in $tmp/keys)"
mkdir -p "$tmp/keys"
chmod 700 "$tmp/keys"
ssh-keygen -q -t ed25519 -N "" -C vfile-demo-cluster -f "$tmp/keys/cluster_key"
ssh-keygen -q -t ed25519 -N "" -C vfile-demo-host -f "$tmp/keys/host_key"
ls -l "$tmp/keys" | tail -n +2

write_conf() { # write_conf NODE ROLE ETCD-GROUP
	local n=$1
	mkdir -p "$tmp/$n"
	cat >"$tmp/$n/vfile.conf" <<EOF
node_id = "$n";
role = "$2";
backend = "etcd";
backend_dir = "$build/.libs";
prefix = "vfile-demo/";
plugin_socket = "$tmp/$n/plugin.sock";
mount_root = "$tmp/$n/mounts";
state_dir = "$tmp/$n/state";
op_timeout_ms = 30000;
log_level = "info";
etcd = { $3 };
fileserver = {
	driver = "sftp";
	export_root = "$export";
	listen_addr = "127.0.0.1";
	port_range = "$range";
	private_key = "$tmp/keys/cluster_key";
	host_key = "$tmp/keys/host_key";
	vfilectl = "$VFILECTL";
};
EOF
	chmod 600 "$tmp/$n/vfile.conf"
}
write_confs() { # picks the ports, writes both configs
	client_port=$(free_port)
	peer_port=$(free_port)
	range=$(free_range)
	etcd_url="http://127.0.0.1:$client_port"
	write_conf manager1 manager "embedded = true; embedded_data_dir = \"$tmp/manager1/state/etcd\";
	embedded_client_url = \"$etcd_url\"; embedded_peer_url = \"http://127.0.0.1:$peer_port\";"
	write_conf host2 worker "endpoints = [ \"$etcd_url\" ];"
}

step "configs: manager1 (embedded etcd, sftp servers) and host2 (worker)"
write_confs
echo "export_root $export (root-owned, 0755), sftp ports $range, etcd on $etcd_url"
echo "--- $tmp/manager1/vfile.conf"
cat "$tmp/manager1/vfile.conf"
echo "--- $tmp/host2/vfile.conf differs in:"
diff "$tmp/manager1/vfile.conf" "$tmp/host2/vfile.conf" | grep '^>' | sed 's/^> /    /' || true

start_vfiled() { # start_vfiled NODE: waits until vfilectl status answers; 1 if it exited
	local n=$1
	setsid "$VFILED" -c "$tmp/$n/vfile.conf" >"$tmp/$n/vfiled.log" 2>&1 </dev/null &
	pid[$n]=$!
	for _ in $(seq 300); do # up to 30 s (the embedded etcd starts first)
		"$VFILECTL" -s "$tmp/$n/plugin.sock" -t 2 status >/dev/null 2>&1 && return 0
		kill -0 "${pid[$n]}" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$tmp/$n/vfiled.log" >&2
	if [ -f "$tmp/$n/state/etcd.log" ]; then
		echo "--- the end of $tmp/$n/state/etcd.log:" >&2
		tail -3 "$tmp/$n/state/etcd.log" >&2
	fi
	kill -0 "${pid[$n]}" 2>/dev/null && die "vfiled $n did not answer within 30 s (log above)"
	wait "${pid[$n]}" || true
	unset "pid[$n]"
	return 1
}

step "start manager1 (vfiled with embedded etcd)"
for attempt in 1 2 3; do
	start_vfiled manager1 && break
	# another program may take a port between our check and etcd's bind: new ports
	if [ "$attempt" -lt 3 ] && grep -q 'address already in use' "$tmp/manager1/state/etcd.log" 2>/dev/null; then
		rm -rf "$tmp/manager1/state"
		write_confs
		echo "a port was taken meanwhile: retrying with etcd on $etcd_url, sftp ports $range"
		continue
	fi
	die "vfiled manager1 did not start (log above)"
done
etcd_pid=$("$VFILECTL" -s "$tmp/manager1/plugin.sock" --json status |
	python3 -c 'import json,sys; print((json.load(sys.stdin).get("EmbeddedEtcd") or {}).get("Pid",""))')
echo "vfiled pid ${pid[manager1]}; embedded etcd pid ${etcd_pid:-?} on $etcd_url"
ctl manager1 status

step "start host2 (vfiled, role worker, on manager1's etcd)"
start_vfiled host2 || die "vfiled host2 did not start (log above)"
echo "vfiled pid ${pid[host2]}"
ctl host2 status

if [ -x "$build/tests/selfcheck" ]; then
	step "self-check of the etcd backend module against the embedded etcd"
	printf 'etcd = { endpoints = [ "%s" ]; timeout_ms = 2000; };\n' "$etcd_url" >"$tmp/selfcheck.conf"
	VFILE_BACKEND_DIR="$build/.libs" "$build/tests/selfcheck" etcd "$tmp/selfcheck.conf" ||
		die "selfcheck"
fi

# ---- the volume ----
V=demovol
step "create volume $V (through host2)"
ctl host2 create "$V" || die "create $V"
ctl manager1 ls || die "ls"

step "mount $V on manager1 and on host2 (the first mount starts its sftp server)"
mp1=$(ctl manager1 mount "$V") || die "mount $V on manager1"
echo "$mp1"
mp2=$(ctl host2 mount "$V") || die "mount $V on host2"
echo "$mp2"
mounted "$mp1" || die "$mp1 is not mounted"
mounted "$mp2" || die "$mp2 is not mounted"
grep -F -e " $mp1 " -e " $mp2 " /proc/self/mounts | awk '{ print $1, "on", $2, "type", $3 }'

step "write through host2's mountpoint, read through manager1's"
msg="hello from host2, $(date -u +%FT%TZ)"
echo "$msg" >"$mp2/hello.txt"
echo "host2 wrote:    $mp2/hello.txt"
got=$(cat "$mp1/hello.txt") || die "read $mp1/hello.txt"
echo "manager1 reads: $mp1/hello.txt: $got"
[ "$got" = "$msg" ] || die "manager1 read '$got', host2 wrote '$msg'"
echo "reply from manager1" >"$mp1/reply.txt"
got=$(cat "$mp2/reply.txt") || die "read $mp2/reply.txt"
echo "host2 reads:    $mp2/reply.txt: $got"
[ "$got" = "reply from manager1" ] || die "host2 read '$got'"
echo "on the server:  $(ls "$export/$V/data" | tr '\n' ' ')(in $export/$V/data)"

step "vfilectl inspect $V (Mounted, gref 2, both clients, the serving node)"
ctl host2 inspect "$V" || die "inspect $V"
j=$("$VFILECTL" -s "$tmp/host2/plugin.sock" --json inspect "$V")
read -r state gref clients srv_node srv_port < <(python3 -c '
import json, sys
s = json.load(sys.stdin)["Volume"]["Status"]
srv = s.get("server") or {}
print(s["state"], s["gref"], ",".join(sorted(s.get("clients", []))), srv.get("node", "-"), srv.get("port", "-"))
' <<<"$j")
[ "$state" = Mounted ] || die "state is $state, want Mounted"
[ "$gref" = 2 ] || die "gref is $gref, want 2"
[ "$clients" = host2,manager1 ] || die "clients are $clients, want host2,manager1"
[ "$srv_node" = manager1 ] || die "served by '$srv_node', want manager1"
sshd_pidf="$tmp/manager1/state/sftp/$V/sshd.pid"
sshd_pid=$(cat "$sshd_pidf" 2>/dev/null) || die "no $sshd_pidf"
kill -0 "$sshd_pid" 2>/dev/null || die "sshd $sshd_pid of $V is not running"
echo "the server: sshd pid $sshd_pid, listening on 127.0.0.1:$srv_port:"
ps -o pid=,args= -p "$sshd_pid"
ss -Htlnp "sport = :$srv_port" | awk '{ print "    " $4, $6 }'

step "remove while mounted is refused"
if out=$(ctl manager1 rm "$V" 2>&1); then
	die "rm $V succeeded while mounted"
fi
echo "$out"

step "unmount $V on both hosts (the last unmount stops the server)"
ctl manager1 unmount "$V" || die "unmount $V on manager1"
ctl host2 unmount "$V" || die "unmount $V on host2"
! mounted "$mp1" || die "$mp1 still mounted"
! mounted "$mp2" || die "$mp2 still mounted"
echo "both mountpoints unmounted"

step "the server stopped: inspect shows Ready, gref 0; no sshd for $V"
stopped() {
	"$VFILECTL" -s "$tmp/manager1/plugin.sock" --json inspect "$V" |
		python3 -c 'import json,sys; s=json.load(sys.stdin)["Volume"]["Status"]; sys.exit(not (s["state"] == "Ready" and s["gref"] == 0))'
}
for _ in $(seq 200); do stopped && break; sleep 0.1; done # up to 20 s
ctl manager1 inspect "$V" || die "inspect $V"
stopped || die "$V is not Ready with gref 0 after the last unmount"
for _ in $(seq 100); do kill -0 "$sshd_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sshd_pid" 2>/dev/null && die "sshd $sshd_pid of $V still running"
if pgrep -f "$tmp/manager1/state/sftp/$V/sshd_config" >/dev/null; then
	die "an sshd still runs for $V: $(pgrep -af "$tmp/manager1/state/sftp/$V/sshd_config")"
fi
echo "sshd $sshd_pid has exited; no process serves $V; port $srv_port: $(ss -Htln "sport = :$srv_port" | grep -q . && echo listening || echo closed)"
echo "the data stays in export_root: $(cat "$export/$V/data/hello.txt")"

step "remove $V"
ctl manager1 rm "$V" || die "rm $V"
ctl host2 ls || die "ls"
if "$VFILECTL" -s "$tmp/host2/plugin.sock" inspect "$V" >/dev/null 2>&1; then
	die "$V still exists after rm"
fi
echo "$V is gone"

step "stop the daemons (SIGTERM)"
for n in host2 manager1; do
	kill -TERM "${pid[$n]}"
	st=0
	wait "${pid[$n]}" || st=$?
	echo "vfiled $n exited with status $st"
	[ "$st" = 0 ] || die "vfiled $n exited with $st"
	unset "pid[$n]"
done
if [ -n "$etcd_pid" ]; then
	for _ in $(seq 100); do kill -0 "$etcd_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$etcd_pid" 2>/dev/null && die "embedded etcd $etcd_pid still running"
	echo "embedded etcd $etcd_pid stopped with manager1"
fi

echo
echo "==== summary: two vfiled daemons on one embedded etcd shared volume $V through an"
echo "     sftp server that vfile started on the first mount and stopped after the last"
echo "     unmount; everything checked out in $(elapsed)"
