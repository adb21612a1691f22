#!/usr/bin/env bash
# The data-plane section of `make bench` (issue 13, part 3): file operations on a
# vfile volume served by the sftp driver (a real vfiled + sshd + sshfs on loopback,
# set up as tests/e2e does) against the same operations on the export directory
# itself, with the ratio vfile/local printed in one run, for
#   - the serving host: a vfiled manager that serves the volume and mounts it itself
#     (a bind mount of the export directory, no ssh: fileserver.local_bind), and
#   - another host: a second vfiled (a worker) on the same machine, which mounts the
#     volume with sshfs through `vfilectl proxy`.
# Local and serving-host figures are the median of 3 alternating runs (1 in quick
# mode); the other host's are one run. Operations: sequential write (dd, fdatasync), sequential read (dd; page cache
# dropped first when /proc/sys/vm/drop_caches is writable, so both sides read the
# disk), create N x 4 KiB files, `ls -l` of them, delete them, `tar -x` of a tarball
# of /usr/share/doc (exit status shown). Then the cold mount latency: Mount of a
# volume no host holds (the server start included) to mounted, p50/p90.
#
# Usage: bench/dataplane.sh [--quick] [vfbench flags, ignored]   (run by `make bench`; needs root, etcd,
# sshd, sshfs and FUSE, else it prints why and exits 0: the section is skipped).
# Output: a table on stdout, and "FIGURE name=value" lines for doc/performance.md.
QUICK=
for a in "$@"; do [ "$a" = --quick ] && QUICK=1; done
skip() {
	echo "data plane: SKIPPED: $*"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (sshd chroot, mounts)"
command -v etcd >/dev/null || skip "etcd not installed"
export CI="" # sftp.sh: a missing tool is a skip here (exit 77), not a failure
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
BACKEND=etcd
# sftp.sh exits 77 when something is missing: say so instead
trap 'rc=$?; [ $rc = 77 ] && echo "data plane: SKIPPED (see the line above)"' EXIT
E2E_LIBDIR="$top_srcdir/tests/e2e"
. "$E2E_LIBDIR/sftp.sh"
trap 'e2e_cleanup' EXIT

if [ -n "${COLD_ONLY:-}" ]; then
	SEQ_MIB=1 NFILES=2 MOUNTS=${MOUNTS:-6} TARDIRS=1 REPS=1
elif [ -n "$QUICK" ]; then
	SEQ_MIB=32 NFILES=200 MOUNTS=3 TARDIRS=40 REPS=1
else
	SEQ_MIB=512 NFILES=2000 MOUNTS=20 TARDIRS= REPS=3
fi

r1=$(free_range) || skip "no free block of ports"
write_sftp_conf m1 manager "$r1"
write_sftp_conf h1 worker "$r1"
for n in m1 h1; do start_vfiled $n || skip "vfiled $n did not start (see $E2E_DIR/$n.log)"; done

now_ns() { date +%s%N; }
# timed CMD...: run it, its wall time in seconds (3 decimals) in T, its status in RC
timed() {
	local t0 t1
	sync # the previous operation's write-back is not charged to this one
	t0=$(now_ns)
	"$@" >/dev/null 2>>"$E2E_DIR/ops.err"
	RC=$?
	t1=$(now_ns)
	T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}
drop_caches() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches; }

# the tarball: /usr/share/doc (its first TARDIRS directories in quick mode)
TARBALL="$E2E_DIR/doc.tar"
if [ -n "$TARDIRS" ]; then
	(cd /usr/share && tar -cf "$TARBALL" $(cd /usr/share && ls -d doc/* | head -n "$TARDIRS")) 2>/dev/null
else
	tar -C /usr/share -cf "$TARBALL" doc 2>/dev/null
fi
TARMIB=$(( $(stat -c %s "$TARBALL") / 1048576 ))
TARFILES=$(tar -tf "$TARBALL" | wc -l)

mkfiles() { python3 - "$1" "$2" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
blk = b"x" * 4096
for i in range(n):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(blk)
EOF
}

# ops DIR LABEL: every operation in DIR (empty, on the filesystem measured); the
# figures in FIG_<op>_<label>
ops() {
	local d=$1 l=$2
	timed dd if=/dev/zero of="$d/seq" bs=1M count="$SEQ_MIB" conv=fdatasync
	awk -v t=$T -v m=$SEQ_MIB 'BEGIN { printf "%.1f\n", m / t }' >>"$E2E_DIR/fig.write.$l"
	drop_caches
	timed dd if="$d/seq" of=/dev/null bs=1M
	awk -v t=$T -v m=$SEQ_MIB 'BEGIN { printf "%.1f\n", m / t }' >>"$E2E_DIR/fig.read.$l"
	rm -f "$d/seq"
	timed mkfiles "$d/many" "$NFILES"
	awk -v t=$T -v n=$NFILES 'BEGIN { printf "%.0f\n", n / t }' >>"$E2E_DIR/fig.create.$l"
	timed ls -l "$d/many"
	awk -v t=$T -v n=$NFILES 'BEGIN { printf "%.0f\n", n / t }' >>"$E2E_DIR/fig.ls.$l"
	timed rm -rf "$d/many"
	awk -v t=$T -v n=$NFILES 'BEGIN { printf "%.0f\n", n / t }' >>"$E2E_DIR/fig.delete.$l"
	mkdir "$d/tar"
	timed tar -C "$d/tar" -xf "$TARBALL"
	awk -v t=$T -v n=$TARFILES 'BEGIN { printf "%.0f\n", n / t }' >>"$E2E_DIR/fig.tar.$l"
	eval "TAR_RC_$l=$RC"
	rm -rf "$d/tar"
}

V=dp1
e=$(err_of h1 /VolumeDriver.Create "{\"Name\":\"$V\",\"Opts\":{}}")
[ -z "$e" ] || skip "create $V: $e"
mp_srv=$(req m1 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"b1\"}" | jget '["Mountpoint"]')
mp_oth=$(req h1 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"b2\"}" | jget '["Mountpoint"]')
mounted "$mp_srv" && mounted "$mp_oth" || skip "volume not mounted on both hosts (see $E2E_DIR/*.log)"
kind() { awk -v mp="$1" '$5 == mp { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo; }
LOCAL="$EXPORT/local-ref"
mkdir -p "$LOCAL"

echo "data plane: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo),"\
	"export_root on $(df -T "$EXPORT" | awk 'NR == 2 { print $2 }'), $(sshfs -V 2>&1 | awk '/SSHFS/ { print $3 }') sshfs,"\
	"$(ssh -V 2>&1 | cut -d, -f1); seq ${SEQ_MIB} MiB, $NFILES files, tar ${TARMIB} MiB / $TARFILES entries"
echo "data plane: serving host mounts with $(kind "$mp_srv"), other host with $(kind "$mp_oth")"
# local and the serving host (the same filesystem) alternate REPS times, and each
# figure is the median: one sample of either is at the mercy of the machine's load
for _ in $(seq "$REPS"); do
	ops "$LOCAL" local
	ops "$mp_srv" srv
done
ops "$mp_oth" oth
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for op in write read create ls delete tar; do
	for l in local srv oth; do eval "FIG_${op}_$l=\$(median \"\$E2E_DIR/fig.$op.$l\")"; done
done

row() { # row OP UNIT
	local op=$1 unit=$2 lv sv ov
	eval "lv=\$FIG_${op}_local sv=\$FIG_${op}_srv ov=\$FIG_${op}_oth"
	printf '%-10s %-8s %10s %10s %6s %10s %6s\n' "$op" "$unit" "$lv" "$sv" \
		"$(awk -v a="$sv" -v b="$lv" 'BEGIN { printf "%.2f", a / b }')" "$ov" \
		"$(awk -v a="$ov" -v b="$lv" 'BEGIN { printf "%.2f", a / b }')"
	echo "FIGURE dp_${op}_local=$lv dp_${op}_srv=$sv dp_${op}_oth=$ov" >>"$E2E_DIR/figures"
}
printf '%-10s %-8s %10s %10s %6s %10s %6s\n' op unit local serving ratio other ratio
row write MB/s
row read MB/s
row create files/s
row ls files/s
row delete files/s
row tar files/s
echo "tar -x exit status: local $TAR_RC_local, serving host $TAR_RC_srv, other host $TAR_RC_oth"
cat "$E2E_DIR/figures"

# ---- cold mount latency: Mount (the server's start included) to mounted ----
req m1 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"b1\"}" >/dev/null
req h1 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"b2\"}" >/dev/null
pct() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int((NR - 1) * p + 0.5) + 1; print a[i] }'; }
for n in m1 h1; do
	: >"$E2E_DIR/cold.$n"
	for i in $(seq "$MOUNTS"); do
		# cold: the volume is Ready (no server) when the Mount comes
		wait_for 30 state_is $n $V Ready || { echo "data plane: $V not Ready before mount $i"; break; }
		t0=$(now_ns)
		ans=$(req $n /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"c$i\"}")
		t1=$(now_ns)
		echo "$n c$i $(date -d @$((t0 / 1000000000)) +%T).$(printf %09d $((t0 % 1000000000)) | cut -c1-3) $(((t1 - t0) / 1000000)) ms" >>"$E2E_DIR/cold.log"
		mp=$(jget '["Mountpoint"]' <<<"$ans" 2>/dev/null)
		if ! mounted "$mp"; then
			echo "data plane: cold mount $i on $n failed after $(((t1 - t0) / 1000000)) ms"
			continue
		fi
		echo $(((t1 - t0) / 1000000)) >>"$E2E_DIR/cold.$n"
		req $n /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c$i\"}" >/dev/null
	done
	p50=$(pct 0.5 <"$E2E_DIR/cold.$n")
	p90=$(pct 0.9 <"$E2E_DIR/cold.$n")
	what="serving host"
	[ $n = h1 ] && what="other host"
	echo "cold mount ($what, $(wc -l <"$E2E_DIR/cold.$n") mounts): p50 ${p50} ms, p90 ${p90} ms"
	echo "FIGURE dp_cold_mount_${n}_p50_ms=$p50 dp_cold_mount_${n}_p90_ms=$p90"
done
