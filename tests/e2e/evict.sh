# shellcheck shell=bash
# e2e body (sourced by evict_etcd.test / evict_consul.test with BACKEND set): a
# host whose vfiled is killed -9 for good pins its volumes (Mounted, gref counts
# it, rm refused) until it is evicted. Real store, real vfiled processes (the
# "none" file server: the protocol, not the data path). Case 1: vfilectl evict,
# refused for a live host, releases the dead one's ids with gref exact; the last
# unmount then stops the server and rm works. Case 2: a manager with
# evict_after_s evicts a dead host by itself, and keeps the live one.
. "$(dirname "$0")/lib.sh"

VFILECTL="$top_builddir/vfilectl"
export E2E_FS_DRIVER=none
case "$BACKEND" in
etcd) start_etcd; TTL=3 ;;
consul) start_consul; TTL=10 ;; # a Consul session lives at least 10 s
esac
# the bound of a wait for a lease to run out: TTL (Consul: up to 2 x TTL) + slack
GONE_S=$((2 * TTL + 20))

conf() { # conf NAME ROLE [extra]
	write_conf "$1" "$2" "$BACKEND" "${3:-}"
	sed -i "s/^lease_ttl_s = 10;/lease_ttl_s = $TTL;/" "$E2E_DIR/$1.conf"
}
ctl() { local n=$1; shift; "$VFILECTL" -s "$E2E_DIR/$n/plugin.sock" "$@"; }
field() { req "$1" /VolumeDriver.Get "{\"Name\":\"$2\"}" | jget "$3"; }
gref_is() { [ "$(field m1 "$1" '["Volume"]["Status"]["gref"]')" = "$2" ]; }
clients_are() { [ "$(field m1 "$1" '["Volume"]["Status"]["clients"]')" = "$2" ]; }
state_is() { [ "$(field m1 "$1" '["Volume"]["Status"]["state"]')" = "$2" ]; }
gone() { ctl m1 nodes | awk -v n="$1" '$1 == n && $3 == "GONE" { f = 1 } END { exit !f }'; }
serves() { req m1 /VFile.Status '{}' | jget '["Manager"]["Servers"]' | grep -q "\"$1\""; }

conf m1 manager
conf h1 worker
conf h2 worker
conf h3 worker
for n in m1 h1 h2 h3; do
	start_vfiled $n || { fail "vfiled $n starts"; e2e_finish; exit 1; }
done

# ---- case 1: vfilectl evict ----
check "create v" ctl m1 create v
check "h1 mounts v for c1" ctl h1 mount v --id c1
check "h1 mounts v for c2" ctl h1 mount v --id c2
check "h2 mounts v for c3" ctl h2 mount v --id c3
check "gref 2" gref_is v 2
# for case 2 (h3 dies with h1: one wait for both leases to run out)
check "create w" ctl m1 create w
check "h3 mounts w" ctl h3 mount w --id c4
check "h2 mounts w" ctl h2 mount w --id c5
check "gref of w: 2" gref_is w 2
out=$(ctl m1 nodes)
check "nodes: h1 alive, a worker, holds v: $(tr '\n' '|' <<<"$out")" \
	awk '$1 == "h1" && $2 == "worker" && $3 == "alive" && $5 == "v" { f = 1 } END { exit !f }' <<<"$out"
check "nodes: m1 is a manager" awk '$1 == "m1" && $2 == "manager" { f = 1 } END { exit !f }' <<<"$out"
out=$(ctl m1 evict h2 2>&1)
st=$?
check "evict of a live host is refused (exit $st): $out" test "$st" = 1
check "the refusal says why" grep -q "is alive" <<<"$out"
check "gref still 2 after the refusal" gref_is v 2

stop_vfiled h1 KILL
check "h1 killed -9" test "$STOP_STATUS" != still-running
stop_vfiled h3 KILL
check "h3 killed -9" test "$STOP_STATUS" != still-running
check "v stays Mounted with h1 gone" state_is v Mounted
check "gref still counts h1" gref_is v 2
out=$(ctl m1 rm v 2>&1)
check "rm v refused while h1's record stays: $out" grep -q "h1" <<<"$out"
check "h1's lease runs out: nodes shows it GONE (within ${GONE_S} s)" wait_for "$GONE_S" gone h1
check "v still Mounted with h1 GONE" state_is v Mounted
check "m1 still serves v" serves v
check "evict h2 v is refused (h2 alive)" not ctl m1 evict h2 v
out=$(ctl m1 evict h1 2>&1)
st=$?
check "evict h1 (exit $st): $out" test "$st" = 0
check "evict says what it released" grep -q "released v from h1: mount ids c1, c2; hosts 2 -> 1" <<<"$out"
check "gref exact: 1" gref_is v 1
check "clients: h2 only" clients_are v '["h2"]'
out=$(ctl m1 evict h1 2>&1)
check "a second evict releases nothing: $out" grep -q "nothing released" <<<"$out"
check "v still served for h2" serves v
check "h2 unmounts v (the last)" ctl h2 unmount v --id c3
check "the last unmount stops the server: v Ready" wait_for 30 state_is v Ready
check "m1 serves v no more" wait_for 30 not serves v
check "rm v works" ctl m1 rm v

# ---- case 2: automatic eviction (evict_after_s) ----
check "h3 is GONE too" wait_for "$GONE_S" gone h3
check "w still counts h3" gref_is w 2
# a second manager evicts hosts it has seen without a lease for 2 x TTL
conf m2 manager "evict_after_s = $((2 * TTL));"
t0=$(date +%s)
start_vfiled m2 || fail "vfiled m2 starts"
evicted() { gref_is w 1 && clients_are w '["h2"]'; }
check "m2 evicts h3 by itself (within $((2 * TTL + 30)) s)" wait_for $((2 * TTL + 30)) evicted
took=$(($(date +%s) - t0))
check "not before the grace ($took s >= $((2 * TTL - 1)) s)" test "$took" -ge $((2 * TTL - 1))
check "m2's log names the eviction" grep -q "volume w: evicted node h3" "$E2E_DIR/m2.log"
check "the live host h2 was kept" clients_are w '["h2"]'
check "h2 is listed alive" sh -c "'$VFILECTL' -s '$E2E_DIR/m1/plugin.sock' nodes | awk '\$1 == \"h2\" && \$3 == \"alive\" { f = 1 } END { exit !f }'"
check "h2 unmounts w" ctl h2 unmount w --id c5
check "w Ready" wait_for 30 state_is w Ready
check "rm w works" ctl m1 rm w
for n in m1 m2 h2; do
	stop_vfiled $n
	check "vfiled $n stops cleanly (status $STOP_STATUS)" test "$STOP_STATUS" = 0
done
e2e_finish
