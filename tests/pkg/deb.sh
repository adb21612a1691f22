#!/usr/bin/env bash
# The Debian package test (make deb-test): from a `make dist` tarball, in a
# temporary directory,
#   1. make install DESTDIR=... and build a backend stub against the installed
#      header with pkg-config (PKG_CONFIG_SYSROOT_DIR/PKG_CONFIG_PATH);
#   2. dpkg-buildpackage -us -uc -b, then lintian (no error allowed);
#   3. install vfile + vfile-backend-etcd only: vfiled --version, the etcd backend
#      loads through vfiled --check-config, the Consul one is reported missing;
#   4. install vfile-backend-consul and libvfile-dev: both backends load, a stub
#      backend builds against the installed libvfile-dev and loads;
#   5. purge every package (and check /etc/vfile is gone).
# Needs root and: dpkg-dev debhelper lintian build-essential (and the
# Build-Depends of debian/control). DEB_CHECK=1 also runs the unit suites in the
# package build (dh_auto_test); by default the build uses nocheck because the
# test command already ran them.
# usage: deb.sh TARBALL DEBIAN_DIR
set -euo pipefail

tarball=$1
debdir=$2
name=$(basename "$tarball" .tar.gz) # vfile-0.1.0
ver=${name#vfile-}
start=$(date +%s)
fails=0
passes=0
log() { printf 'deb-test: %s\n' "$*" >&2; }
ok() { passes=$((passes + 1)); log "ok: $*"; }
fail() { fails=$((fails + 1)); log "FAIL: $*"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
not() { ! "$@"; }
elapsed() { echo "$(($(date +%s) - start))s"; }
# rc_has RC WANT TEXT NEEDLE: the status was WANT and TEXT holds NEEDLE
rc_has() { [ "$1" = "$2" ] && grep -qF -- "$4" <<<"$3"; }

if [ "$(id -u)" != 0 ]; then
	log "FAIL: needs root (installs packages with apt/dpkg)"
	exit 1
fi
for t in dpkg-buildpackage dh lintian pkg-config cc nm; do
	command -v "$t" >/dev/null || {
		log "FAIL: $t missing: apt-get install dpkg-dev debhelper lintian pkg-config build-essential"
		exit 1
	}
done

PKGS="vfile vfile-backend-etcd vfile-backend-consul libvfile-dev"
tmp=$(mktemp -d /tmp/vfile-deb.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	local p
	for p in $PKGS; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
			DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $PKGS >/dev/null 2>&1 ||
				dpkg --purge $PKGS >/dev/null 2>&1 || true
			break
		fi
	done
	if [ -z "${DEB_KEEP:-}" ]; then rm -rf "$tmp"; else log "kept $tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# the test environment of make check points the loader at the build tree: not here
unset VFILE_BACKEND_DIR

tar -xzf "$tarball" -C "$tmp"
src="$tmp/$name"

# ---- 1. make install DESTDIR + a backend built against the installed header ----
log "make install DESTDIR ($(elapsed))"
mkdir "$tmp/inst-build"
(cd "$tmp/inst-build" && "$src/configure" -q --prefix=/usr --sysconfdir=/etc \
	>"$tmp/inst.log" 2>&1 &&
	make -j"$(nproc)" >>"$tmp/inst.log" 2>&1 &&
	make install DESTDIR="$tmp/dest" >>"$tmp/inst.log" 2>&1) || {
	tail -30 "$tmp/inst.log" >&2
	fail "make install DESTDIR"
}
d="$tmp/dest"
for f in usr/sbin/vfiled usr/bin/vfilectl usr/lib/vfile/backends/etcd.so \
	usr/lib/vfile/backends/consul.so usr/include/vfile/kv.h \
	usr/include/vfile/vfile.h usr/lib/pkgconfig/libvfile.pc \
	usr/share/vfile/vfile.conf usr/share/vfile/hooks/vfile-local-hook \
	usr/lib/systemd/system/vfiled.service usr/lib/systemd/system/vfiled.socket \
	usr/share/man/man8/vfiled.8 \
	usr/share/man/man8/vfilectl.8 usr/share/man/man5/vfile.conf.5; do
	check "installed: /$f" test -e "$d/$f"
done
check "hook sample is executable" test -x "$d/usr/share/vfile/hooks/vfile-local-hook"
check "unit: ExecStart names the installed vfiled" grep -qx 'ExecStart=/usr/sbin/vfiled -c /etc/vfile/vfile.conf' \
	"$d/usr/lib/systemd/system/vfiled.service"
if grep -q '^#define HAVE_LIBSYSTEMD 1' "$tmp/inst-build/config.h"; then
	check "unit: Type=notify (built with libsystemd)" grep -qx 'Type=notify' \
		"$d/usr/lib/systemd/system/vfiled.service"
else
	check "unit: Type=simple (built without libsystemd)" grep -qx 'Type=simple' \
		"$d/usr/lib/systemd/system/vfiled.service"
fi
unit="$d/usr/lib/systemd/system/vfiled.service"
for h in NoNewPrivileges=yes LockPersonality=yes SystemCallArchitectures=native \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK' \
	'EnvironmentFile=-/etc/default/vfile' Requires=vfiled.socket; do
	check "unit: $h" grep -qx "$h" "$unit"
done
check "unit: no option that makes a private mount namespace" \
	not grep -qE '^(Protect(System|Home|KernelTunables|KernelModules|ControlGroups|Proc|Clock|KernelLogs|Hostname)|Private(Tmp|Devices|Mounts|Network|Users)|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|TemporaryFileSystem|BindPaths|BindReadOnlyPaths|RootDirectory|RootImage|MountFlags)=' "$unit"
check "socket unit listens on the default plugin_socket" \
	grep -qx 'ListenStream=/run/docker/plugins/vfile.sock' "$d/usr/lib/systemd/system/vfiled.socket"
cflags=$(PKG_CONFIG_SYSROOT_DIR="$d" PKG_CONFIG_PATH="$d/usr/lib/pkgconfig" \
	pkg-config --cflags libvfile)
check "pkg-config --cflags libvfile points into DESTDIR ($cflags)" grep -q -- "-I$d/usr/include" <<<"$cflags"
check "a backend stub builds against the DESTDIR header" \
	cc -std=gnu11 -Wall -Werror -shared -fPIC -DGOOD_STUB $cflags \
	-o "$tmp/stub-destdir.so" "$src/tests/unit/bad_modules.c"
check "the stub exports vf_backend_entry" sh -c "nm -D '$tmp/stub-destdir.so' | grep -q ' T vf_backend_entry'"

# ---- 2. the packages ----
log "dpkg-buildpackage ($(elapsed))"
cp "$tarball" "$tmp/vfile_$ver.orig.tar.gz"
cp -a "$debdir" "$src/debian"
opts="parallel=$(nproc)"
[ "${DEB_CHECK:-}" = 1 ] || opts="$opts nocheck"
t0=$(date +%s)
if (cd "$src" && DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1); then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - t0))s, DEB_BUILD_OPTIONS=$opts)"
else
	tail -40 "$tmp/build.log" >&2
	fail "dpkg-buildpackage -us -uc -b"
	echo "deb-test: $passes passed, $fails failed"
	exit 1
fi
arch=$(dpkg --print-architecture)
changes="$tmp/vfile_${ver}-1_$arch.changes"
for p in $PKGS; do
	check "built $p" test -f "$tmp/${p}_${ver}-1_$arch.deb"
done
log "lintian ($(elapsed))"
t0=$(date +%s)
lintian --fail-on error --tag-display-limit 0 "$changes" >"$tmp/lintian.log" 2>&1 && lrc=0 || lrc=$?
sed 's/^/  lintian: /' "$tmp/lintian.log" >&2
check "lintian: no error ($(($(date +%s) - t0))s; $(grep -c '^W:' "$tmp/lintian.log" || true) warnings)" \
	test "$lrc" = 0
check "the etcd module is in vfile-backend-etcd only" \
	sh -c "dpkg-deb -c '$tmp/vfile-backend-etcd_${ver}-1_$arch.deb' | grep -q 'backends/etcd.so' &&
		! dpkg-deb -c '$tmp/vfile_${ver}-1_$arch.deb' | grep -q 'backends/'"
check "/etc/vfile/vfile.conf is a conffile of vfile" \
	sh -c "dpkg-deb -e '$tmp/vfile_${ver}-1_$arch.deb' '$tmp/ctrl' && grep -qx /etc/vfile/vfile.conf '$tmp/ctrl/conffiles'"

# ---- 3. the daemon with the etcd backend only ----
log "install vfile + vfile-backend-etcd ($(elapsed))"
export DEBIAN_FRONTEND=noninteractive
apt_install() {
	apt-get install -y -qq --no-install-recommends "$@" >"$tmp/apt.log" 2>&1 ||
		{ tail -20 "$tmp/apt.log" >&2; return 1; }
}
check "apt-get install vfile vfile-backend-etcd" \
	apt_install "$tmp/vfile_${ver}-1_$arch.deb" "$tmp/vfile-backend-etcd_${ver}-1_$arch.deb"
out=$(/usr/sbin/vfiled --version 2>&1 || true)
check "vfiled --version: '$out'" grep -q "vfiled (vfile) $ver" <<<"$out"
check "vfilectl --help" sh -c '/usr/bin/vfilectl --help | grep -q migrate'
check "/etc/vfile/vfile.conf installed" test -f /etc/vfile/vfile.conf
check "the shipped config leaves the worker default" grep -qx '#role = "worker";' /etc/vfile/vfile.conf
check "the shipped config sets no role" not grep -qE '^[[:space:]]*role[[:space:]]*=' /etc/vfile/vfile.conf
check "vfiled.service installed" test -f /lib/systemd/system/vfiled.service
check "vfiled.socket installed" test -f /lib/systemd/system/vfiled.socket
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify --man=no /lib/systemd/system/vfiled.socket \
		/lib/systemd/system/vfiled.service 2>&1) && rc=0 || rc=$?
	check "systemd-analyze verify vfiled.service vfiled.socket (rc $rc): $out" test "$rc" = 0
fi
check "man vfiled installed" test -f /usr/share/man/man8/vfiled.8.gz
check "the service is not enabled before it is configured" \
	test ! -e /etc/systemd/system/multi-user.target.wants/vfiled.service
check "nor its socket" test ! -e /etc/systemd/system/sockets.target.wants/vfiled.socket
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
bedir="/usr/lib/$multiarch/vfile/backends"
# a config naming backend $1 (file servers: none, so no keys are needed)
write_conf() {
	cat >"$tmp/$1.conf" <<EOF
node_id = "deb-test";
role = "manager";
backend = "$2";
plugin_socket = "$tmp/run/vfile.sock";
mount_root = "$tmp/run/mnt";
state_dir = "$tmp/run/state";
etcd = { endpoints = [ "http://127.0.0.1:1" ]; };
consul = { endpoints = [ "http://127.0.0.1:1" ]; };
fileserver = { driver = "none"; };
EOF
}
write_conf etcd etcd
write_conf consul consul
out=$(/usr/sbin/vfiled --check-config -c "$tmp/etcd.conf" 2>&1) && rc=0 || rc=$?
check "etcd backend loads through --check-config (rc $rc): $out" \
	rc_has "$rc" 0 "$out" "backend etcd from $bedir/etcd.so"
out=$(/usr/sbin/vfiled --check-config -c "$tmp/consul.conf" 2>&1) && rc=0 || rc=$?
check "consul backend not installed: refused (rc $rc): $out" \
	rc_has "$rc" 2 "$out" "$bedir/consul.so"
out=$(/usr/sbin/vfiled --check-config -c /etc/vfile/vfile.conf 2>&1) && rc=0 || rc=$?
log "the sample config as shipped: rc $rc: $out"

# ---- 4. every package ----
log "install vfile-backend-consul libvfile-dev ($(elapsed))"
check "apt-get install vfile-backend-consul libvfile-dev" \
	apt_install "$tmp/vfile-backend-consul_${ver}-1_$arch.deb" "$tmp/libvfile-dev_${ver}-1_$arch.deb"
out=$(/usr/sbin/vfiled --check-config -c "$tmp/consul.conf" 2>&1) && rc=0 || rc=$?
check "consul backend loads through --check-config (rc $rc): $out" \
	rc_has "$rc" 0 "$out" "backend consul from $bedir/consul.so"
out=$(/usr/sbin/vfiled --check-config -c "$tmp/etcd.conf" 2>&1) && rc=0 || rc=$?
check "etcd backend still loads (rc $rc)" test "$rc" = 0
check "pkg-config finds the installed libvfile" pkg-config --exists libvfile
check "a third-party backend builds against libvfile-dev" \
	sh -c "cc -std=gnu11 -Wall -Werror -shared -fPIC -DGOOD_STUB \$(pkg-config --cflags libvfile) \
		-o '$tmp/stub.so' '$src/tests/unit/bad_modules.c'"
write_conf stub "$tmp/stub.so"
out=$(/usr/sbin/vfiled --check-config -c "$tmp/stub.conf" 2>&1) && rc=0 || rc=$?
check "the third-party backend loads (rc $rc): $out" \
	rc_has "$rc" 0 "$out" "backend $tmp/stub.so"
cat >"$tmp/api.c" <<'EOF'
#include <stdio.h>
#include <vfile/vfile.h>
int main(void)
{
	puts(vf_strerror(VF_ECONFLICT));
	return vf_volume_name_valid("ok-name") ? 0 : 1;
}
EOF
check "a program links libvfile with pkg-config --libs" \
	sh -c "cc -o '$tmp/api' '$tmp/api.c' \$(pkg-config --cflags --libs libvfile) && '$tmp/api' >/dev/null"

# ---- 5. purge ----
log "purge ($(elapsed))"
check "apt-get purge" sh -c "apt-get purge -y -qq $PKGS >'$tmp/purge.log' 2>&1"
check "vfiled gone" test ! -e /usr/sbin/vfiled
check "the units are gone" test ! -e /lib/systemd/system/vfiled.socket
check "/etc/vfile gone with the purge" test ! -e /etc/vfile/vfile.conf
check "the backends are gone" test ! -e "$bedir/etcd.so"

log "done in $(elapsed)"
echo "deb-test: $passes passed, $fails failed"
[ "$fails" = 0 ]
