#!/usr/bin/env bash
# Install everything vfile needs to build and test on Debian bookworm (run as root),
# from the machine's configured apt sources only (no archive host is named here;
# systemd: systemd-socket-activate and systemd-analyze for boot.test and deb-test).
# Consul is not in bookworm: take the Debian 11 package (from the pool of the mirror the
# machine's apt sources name, else the copy in ../shared/deps), verify its sha256, and extract
# usr/bin/consul into /usr/local/bin.
set -euo pipefail

PKGS=(build-essential autoconf automake libtool pkg-config
	libcurl4-openssl-dev libyajl-dev libconfig-dev libcunit1-dev libmicrohttpd-dev
	etcd-server etcd-client valgrind clang clang-format spin openssl curl ca-certificates
	openssh-server openssh-client sshfs fuse3 busybox-static procps iproute2 docker.io python3 util-linux libsystemd-dev libclang-rt-14-dev debhelper lintian dpkg-dev
	systemd rsync git)
CONSUL_DEB=consul_1.8.7+dfsg1-2+b3_amd64.deb
CONSUL_SHA256=e4e888bba104daba1d9161f49bfc52649a7e4efd45b1a7ead5bc54f2cb9c89d9
here=$(cd "$(dirname "$0")/.." && pwd)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "install-deps: installing ${missing[*]}"
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# etcd-server's package starts a system etcd on 2379; our tests pick their own ports.
systemctl disable --now etcd >/dev/null 2>&1 || true

if ! command -v consul >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mirror=$(grep -hoE '^URIs: *http[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')
	mirror=${mirror:-$(grep -hoE '^deb +http[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')}
	got=""
	if [ -n "$mirror" ] &&
		curl -fsSL --max-time 120 -o "$tmp/$CONSUL_DEB" "$mirror/pool/main/c/consul/$CONSUL_DEB" &&
		echo "$CONSUL_SHA256  $tmp/$CONSUL_DEB" | sha256sum -c --quiet; then
		got="$tmp/$CONSUL_DEB"
	else
		for d in "$here/../shared/deps" /work/shared/deps; do
			if [ -f "$d/$CONSUL_DEB" ] && echo "$CONSUL_SHA256  $d/$CONSUL_DEB" | sha256sum -c --quiet; then
				got="$d/$CONSUL_DEB"
				break
			fi
		done
	fi
	if [ -z "$got" ]; then
		echo "install-deps: cannot get $CONSUL_DEB with sha256 $CONSUL_SHA256" >&2
		exit 1
	fi
	dpkg-deb --fsys-tarfile "$got" | tar -x -C "$tmp" ./usr/bin/consul
	install -m 0755 "$tmp/usr/bin/consul" /usr/local/bin/consul
	echo "install-deps: consul $(consul version | head -1) from $got"
fi
