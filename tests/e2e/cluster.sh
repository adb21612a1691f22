# shellcheck shell=bash
# e2e 1 body (sourced by cluster_etcd.test / cluster_consul.test with BACKEND set):
# 2 managers + 2 hosts, each its own vfiled process, socket and mount root, on one
# store, with the default "sftp" file server: the manager that wins a start runs an
# sftp-only sshd for the volume and hosts mount it with sshfs, so data written
# through host A reaches host B through that server. Both managers share export_root
# (one machine: the same directory; a real cluster needs shared storage there).
. "$(dirname "$0")/sftp.sh"

r1=$(free_range) && r2=$(free_range) || e2e_unavailable "no free block of ports"
write_sftp_conf m1 manager "$r1"
write_sftp_conf m2 manager "$r2"
for n in h1 h2; do write_sftp_conf $n worker "$r1"; done
for n in m1 m2 h1 h2; do
	start_vfiled $n || { fail "vfiled $n starts"; e2e_finish; exit 1; }
done
ok "4 daemons up (2 managers, 2 hosts) on $BACKEND, sftp file servers"
check "m1 reports the manager role" grep -q '"Role":"manager"' <<<"$(req m1 /VFile.Status '')"
check "h1 reports the worker role" grep -q '"Role":"worker"' <<<"$(req h1 /VFile.Status '')"

V=shared1
e=$(err_of h1 /VolumeDriver.Create "{\"Name\":\"$V\",\"Opts\":{}}")
check "create $V through h1 (Err '$e')" test "$e" = ""
check "h2 lists $V" grep -q "\"Name\":\"$V\"" <<<"$(req h2 /VolumeDriver.List '')"
check "$V starts Ready" state_is h2 $V Ready
check "no server before the first mount (no sshd, no export dir)" \
	sh -c "[ ! -d '$EXPORT/$V' ] && [ ! -e '$E2E_DIR/m1/state/sftp/$V/sshd.pid' ] && [ ! -e '$E2E_DIR/m2/state/sftp/$V/sshd.pid' ]"

# first mount: the server starts
mp1=$(req h1 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"c1\"}" | jget '["Mountpoint"]')
check "mount on h1 -> $mp1" test "$mp1" = "$E2E_DIR/h1/mnt/$V"
check "h1 mountpoint is an sshfs mount" sshfs_mounted "$mp1"
check "state Mounted after the first mount" state_is h2 $V Mounted
srv=$(field h1 $V '["Volume"]["Status"]["server"]["node"]')
check "served by a manager ($srv)" grep -qx 'm1\|m2' <<<"$srv"
other=m1
[ "$srv" = m1 ] && other=m2
sshd_pid=$(sshd_of "$srv" $V)
check "server started on the first mount: $srv runs sshd ${sshd_pid:-(none)} for $V" test -n "$sshd_pid"
check "only $srv serves $V (no sshd on $other)" test -z "$(sshd_of "$other" $V)"
port=$(field h1 $V '["Volume"]["Status"]["server"]["port"]')
check "the sshd listens on the volume's port $port" \
	grep -q "pid=$sshd_pid," <<<"$(ss -Htlnp "sport = :$port" 2>/dev/null)"

# data written through host A is read through host B, through the sftp server
echo "written through h1 $$" >"$mp1/hello.txt"
mp2=$(req h2 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"c2\"}" | jget '["Mountpoint"]')
check "mount on h2 -> $mp2" test "$mp2" = "$E2E_DIR/h2/mnt/$V"
check "h2 mountpoint is an sshfs mount" sshfs_mounted "$mp2"
check "h2 reads what h1 wrote" grep -qx "written through h1 $$" "$mp2/hello.txt"
echo "reply from h2" >"$mp2/reply.txt"
check "h1 reads what h2 wrote" grep -qx "reply from h2" "$mp1/reply.txt"
check "the data is on the server, in export_root/$V/data" grep -qx "written through h1 $$" "$EXPORT/$V/data/hello.txt"
check "gref is 2" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 2
check "one server for both hosts (same sshd $sshd_pid)" test "$(sshd_of "$srv" $V)" = "$sshd_pid"
check "Path on h2 is its mountpoint" test "$(req h2 /VolumeDriver.Path "{\"Name\":\"$V\"}" | jget '["Mountpoint"]')" = "$mp2"

# remove while mounted is refused, naming the hosts
e=$(err_of m2 /VolumeDriver.Remove "{\"Name\":\"$V\"}")
refused_names() { grep -q h1 <<<"$1" && grep -q h2 <<<"$1"; }
check "remove while mounted refused, naming the hosts: '$e'" refused_names "$e"
check "still mounted after the refused remove" state_is m1 $V Mounted

# a second container on h1, then a restarted h1 unmounts both cleanly
e=$(err_of h1 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"c3\"}")
check "second mount id on h1" test "$e" = ""
check "gref still 2 (per-host counting)" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 2
stop_vfiled h1 KILL
check "h1 killed (SIGKILL)" test "$STOP_STATUS" != still-running
check "the sshfs mount survives the daemon" sshfs_mounted "$mp1"
check "and still reads through the server" grep -qx "reply from h2" "$mp1/reply.txt"
start_vfiled h1 || fail "h1 restarts"
ok "h1 restarted (stale socket replaced)"
e=$(err_of h1 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c3\"}")
check "restarted h1 unmounts c3 (Err '$e')" test "$e" = ""
check "h1 still mounted for c1" sshfs_mounted "$mp1"
e=$(err_of h1 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c1\"}")
check "restarted h1 unmounts c1 (Err '$e')" test "$e" = ""
check "h1 mountpoint unmounted" not mounted "$mp1"
check "gref is 1" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 1
check "clients is [h2]" test "$(field m1 $V '["Volume"]["Status"]["clients"]')" = '["h2"]'
check "the server still runs for h2" test "$(sshd_of "$srv" $V)" = "$sshd_pid"

# restart a host with SIGTERM too: a clean stop keeps the mount and the count
stop_vfiled h2 TERM
check "h2 SIGTERM exits 0 (got $STOP_STATUS)" test "$STOP_STATUS" = 0
start_vfiled h2 || fail "h2 restarts"
check "h2 still counted after its restart" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 1
check "h2 still reads through the server" grep -qx "written through h1 $$" "$mp2/hello.txt"

# last unmount: the server stops
e=$(err_of h2 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c2\"}")
check "last unmount on h2 (Err '$e')" test "$e" = ""
check "h2 mountpoint unmounted" not mounted "$mp2"
check "server stopped after the last unmount (state Ready)" wait_for 20 state_is m1 $V Ready
check "the serving manager $srv stopped its file server" wait_for 10 grep -q "volume $V: stopping its file server" "$E2E_DIR/$srv.log"
check "its sshd $sshd_pid has exited" wait_for 10 not_running "$sshd_pid"
check "nothing listens on port $port any more" not grep -q . <<<"$(ss -Htln "sport = :$port" 2>/dev/null)"
check "the data stays in export_root" grep -qx "reply from h2" "$EXPORT/$V/data/reply.txt"
e=$(err_of h2 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c2\"}")
check "unmounting an unknown id again is harmless or an error, not a crash" grep -q Implements <<<"$(req h2 /Plugin.Activate '')"

# now remove works and the keys are gone
e=$(err_of m2 /VolumeDriver.Remove "{\"Name\":\"$V\"}")
check "remove after the last unmount (Err '$e')" test "$e" = ""
e=$(err_of h1 /VolumeDriver.Get "{\"Name\":\"$V\"}")
check "removed volume is gone ('$e')" test -n "$e"
# (lock/ keys may linger on Consul: a released Consul lock leaves its key behind)
kvd=$(req m1 /VFile.KVDump "" | grep -o '"Key":"[^"]*"' | grep -v '"Key":"e2e/lock/')
check "KVDump holds no data key of $V ($(grep "/$V" <<<"$kvd" | tr '\n' ' '))" not grep -q "/$V\"" <<<"$kvd"

for n in m1 m2 h1 h2; do
	stop_vfiled $n TERM
	check "$n: SIGTERM exits 0 (got $STOP_STATUS)" test "$STOP_STATUS" = 0
done
check "no sshd left for $V" test -z "$(sshd_of m1 $V)$(sshd_of m2 $V)"
e2e_finish
