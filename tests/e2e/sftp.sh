# shellcheck shell=bash
# Shared set-up of the e2e tests that run the "sftp" file server (sourced, bash, with
# BACKEND set): needs root, sshd, sshfs and FUSE; starts the store; makes an
# export_root outside /tmp, a cluster key pair and host key; defines helpers and
# write_sftp_conf NAME ROLE PORTS.
. "${E2E_LIBDIR:-$(dirname "$0")}/lib.sh"

[ "$(id -u)" = 0 ] || e2e_unavailable "needs root (sshd chroot, sshfs mounts)"
for prog in /usr/sbin/sshd sshfs ssh-keygen fusermount3; do
	command -v "$prog" >/dev/null || e2e_unavailable "$prog not installed (openssh-server, sshfs, fuse3)"
done
[ -c /dev/fuse ] || e2e_unavailable "/dev/fuse missing"
case "$BACKEND" in
etcd) start_etcd ;;
consul) start_consul ;;
esac

# sshd's ChrootDirectory wants every component of export_root root-owned and not
# group/world-writable: not under /tmp. At exit: the sshfs mounts are undone first,
# then (after the daemons are gone; their guards stop their servers, this is a
# safety net) the servers named by the managers' pid files are killed and the
# export removed.
mkdir -p /var/lib
EXPORT=$(mktemp -d "/var/lib/vfile-e2e-$E2E_NAME.XXXXXX")
chmod 755 "$EXPORT"
# shellcheck disable=SC2016 # evaluated at exit
E2E_ON_EXIT='for f in "$E2E_DIR"/m?/state/sftp/*/sshd.pid; do [ -f "$f" ] && E2E_SSHD_PIDS="${E2E_SSHD_PIDS:-} $(cat "$f")"; done
for m in $(awk -v d="$E2E_DIR/" '"'"'index($5, d) == 1 { print $5 }'"'"' /proc/self/mountinfo | sort -r); do fusermount3 -u -z "$m" 2>/dev/null; done'
# shellcheck disable=SC2016
E2E_ON_EXIT_LATE='for p in ${E2E_SSHD_PIDS:-}; do kill -KILL "$p" 2>/dev/null; done
if [ -z "${E2E_KEEP:-}" ]; then rm -rf --one-file-system "$EXPORT"; else e2e_log "kept $EXPORT"; fi'

mkdir -p "$E2E_DIR/keys"
ssh-keygen -q -t ed25519 -N "" -C vfile-e2e -f "$E2E_DIR/keys/cluster_key" &&
	ssh-keygen -q -t ed25519 -N "" -C vfile-e2e-host -f "$E2E_DIR/keys/host_key" ||
	e2e_unavailable "ssh-keygen failed"

mounted() { awk -v mp="$1" '$5 == mp { f = 1 } END { exit !f }' /proc/self/mountinfo; }
sshfs_mounted() { awk -v mp="$1" '$5 == mp && / - fuse\.sshfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
field() { req "$1" /VolumeDriver.Get "{\"Name\":\"$2\"}" | jget "$3"; }
state_is() { [ "$(field "$1" "$2" '["Volume"]["Status"]["state"]')" = "$3" ]; }
# sshd_of NODE VOL: the pid of the sshd NODE runs for VOL, when it runs.
sshd_of() {
	local p
	p=$(cat "$E2E_DIR/$1/state/sftp/$2/sshd.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"
}
not_running() { ! kill -0 "$1" 2>/dev/null; }

# A block of 20 loopback ports for one manager's sftp servers, from the port
# registry (lib.sh, free_ports): no other suite is given them while we run.
free_range() { free_ports 20; }
# The ProxyCommand's vfilectl: the binary itself, as an installed system runs it.
# In a shared-library build tree $top_builddir/vfilectl is libtool's wrapper
# script, which spent ~290 ms of every cold mount and reconnect in sed and bash
# before the proxy ran (measured with strace); the binary in .libs finds
# libvfile through the LD_LIBRARY_PATH that vfiled's own wrapper exports.
if [ -x "$top_builddir/.libs/vfilectl" ]; then
	SFTP_VFILECTL=$top_builddir/.libs/vfilectl
else
	SFTP_VFILECTL=$top_builddir/vfilectl
fi
# write_sftp_conf NAME ROLE PORTS: write_conf's file with an sftp fileserver group
# (plus the lines of $E2E_SFTP_EXTRA in it).
write_sftp_conf() {
	write_conf "$1" "$2" "$BACKEND"
	sed -i '/^fileserver = {$/,/^};$/d' "$E2E_DIR/$1.conf"
	cat >>"$E2E_DIR/$1.conf" <<EOF
fileserver = {
	driver = "sftp";
	export_root = "$EXPORT";
	listen_addr = "127.0.0.1";
	port_range = "$3";
	private_key = "$E2E_DIR/keys/cluster_key";
	host_key = "$E2E_DIR/keys/host_key";
	vfilectl = "$SFTP_VFILECTL";
	${E2E_SFTP_EXTRA:-}
};
EOF
}

