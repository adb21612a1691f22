# e2e 1 body (sourced by cluster_etcd.test / cluster_consul.test with BACKEND set):
# 2 managers + 2 hosts, each its own vfiled process, socket and mount root, on one
# store; the "hooks" file server with the sample local-directory hook (the export
# directory is shared through the filesystem, mounts are bind mounts).
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || e2e_unavailable "needs root (bind mounts)"
case "$BACKEND" in
etcd) start_etcd ;;
consul) start_consul ;;
esac

mounted() { awk -v mp="$1" '$5 == mp { f = 1 } END { exit !f }' /proc/self/mountinfo; }
field() { req "$1" /VolumeDriver.Get "{\"Name\":\"$2\"}" | jget "$3"; }
state_is() { [ "$(field "$1" "$2" '["Volume"]["Status"]["state"]')" = "$3" ]; }

for n in m1 m2; do write_conf $n manager "$BACKEND"; done
for n in h1 h2; do write_conf $n worker "$BACKEND"; done
for n in m1 m2 h1 h2; do
	start_vfiled $n || { fail "vfiled $n starts"; e2e_finish; exit 1; }
done
ok "4 daemons up (2 managers, 2 hosts) on $BACKEND"
check "m1 reports the manager role" grep -q '"Role":"manager"' <<<"$(req m1 /VFile.Status '')"
check "h1 reports the worker role" grep -q '"Role":"worker"' <<<"$(req h1 /VFile.Status '')"

V=shared1
e=$(err_of h1 /VolumeDriver.Create "{\"Name\":\"$V\",\"Opts\":{}}")
check "create $V through h1 (Err '$e')" test "$e" = ""
check "h2 lists $V" grep -q "\"Name\":\"$V\"" <<<"$(req h2 /VolumeDriver.List '')"
check "$V starts Ready" state_is h2 $V Ready
check "no server before the first mount" test ! -d "$E2E_DIR/export/$V"

# first mount: the server starts
mp1=$(req h1 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"c1\"}" | jget '["Mountpoint"]')
check "mount on h1 -> $mp1" test "$mp1" = "$E2E_DIR/h1/mnt/$V"
check "h1 mountpoint is mounted" mounted "$mp1"
check "server started on the first mount" test -d "$E2E_DIR/export/$V"
check "state Mounted after the first mount" state_is h2 $V Mounted
srv=$(field h1 $V '["Volume"]["Status"]["server"]["node"]')
check "served by a manager ($srv)" grep -qx 'm1\|m2' <<<"$srv"

# data written through host A is read through host B
echo "written through h1 $$" >"$mp1/hello.txt"
mp2=$(req h2 /VolumeDriver.Mount "{\"Name\":\"$V\",\"ID\":\"c2\"}" | jget '["Mountpoint"]')
check "mount on h2 -> $mp2" test "$mp2" = "$E2E_DIR/h2/mnt/$V"
check "h2 reads what h1 wrote" grep -qx "written through h1 $$" "$mp2/hello.txt"
echo "reply from h2" >"$mp2/reply.txt"
check "h1 reads what h2 wrote" grep -qx "reply from h2" "$mp1/reply.txt"
check "gref is 2" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 2
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
check "the mount survives the daemon" mounted "$mp1"
start_vfiled h1 || fail "h1 restarts"
ok "h1 restarted (stale socket replaced)"
e=$(err_of h1 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c3\"}")
check "restarted h1 unmounts c3 (Err '$e')" test "$e" = ""
check "h1 still mounted for c1" mounted "$mp1"
e=$(err_of h1 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c1\"}")
check "restarted h1 unmounts c1 (Err '$e')" test "$e" = ""
check "h1 mountpoint unmounted" not mounted "$mp1"
check "gref is 1" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 1
check "clients is [h2]" test "$(field m1 $V '["Volume"]["Status"]["clients"]')" = '["h2"]'

# restart a host with SIGTERM too: a clean stop keeps the mount and the count
stop_vfiled h2 TERM
check "h2 SIGTERM exits 0 (got $STOP_STATUS)" test "$STOP_STATUS" = 0
start_vfiled h2 || fail "h2 restarts"
check "h2 still counted after its restart" test "$(field m1 $V '["Volume"]["Status"]["gref"]')" = 1

# last unmount: the server stops
e=$(err_of h2 /VolumeDriver.Unmount "{\"Name\":\"$V\",\"ID\":\"c2\"}")
check "last unmount on h2 (Err '$e')" test "$e" = ""
check "server stopped after the last unmount (state Ready)" wait_for 20 state_is m1 $V Ready
check "the serving manager $srv stopped its file server" wait_for 10 grep -q "volume $V: stopping its file server" "$E2E_DIR/$srv.log"
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
e2e_finish
