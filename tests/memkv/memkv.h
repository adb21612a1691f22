/*
 * memkv: an in-process key-value store implementing the whole struct vf_kv_ops,
 * for the unit tests of the volume manager (no server needed), and two generic
 * shims over any struct vf_kv, SQLite-VFS-shim style (a struct vf_kv embedding
 * the base first and forwarding to an inner handle):
 *  - the fault shim fails call #N of a slot (once or persistently) with
 *    VF_EUNAVAIL (nothing applied), VF_EUNCERTAIN after applying the call, or
 *    VF_EUNCERTAIN without applying it;
 *  - the counting shim counts the round trips made through each slot.
 * Both are the same forwarding object (struct memkv_shim); the constructors
 * only differ in what they enable.
 *
 * A store (struct memkv_store) is shared by any number of handles, so that
 * several "hosts" and "managers" of one test each get their own handle, lease
 * and watches over one store. Leases expire for real (a store thread checks
 * every 20 ms); auto keep-alive renews them unless frozen; memkv_lease_kill()
 * ends one at once (the owner's lost callback runs, as after a partition).
 * Locks are lease-locks with FIFO waiters (one condition variable per waiter),
 * a fence that grows with every acquisition, and, as kv.h says, a lease holds
 * a name at most once (asking again while it holds or awaits it is VF_EBUSY); a
 * hold whose handle was lost (memkv_lock_abandon: the fault shim's "applied but
 * reported uncertain") is adopted by the same lease's next lock(), as the real
 * drivers adopt the waiter key of a lost answer. Watches keep history until
 * compact(). tests/conformance checks memkv against kv.h (memkv.test).
 */
#ifndef VFILE_MEMKV_H
#define VFILE_MEMKV_H

#include <vfile/kv.h>

struct memkv_store;

int memkv_store_new(struct memkv_store **st_r);
/* Every handle must be closed first. */
void memkv_store_free(struct memkv_store **st);
/* A new handle over st (closed with kv->ops->close). */
int memkv_open(struct memkv_store *st, struct vf_kv **kv_r, struct vf_err *err);
/* The ops table (open() without a store creates a private one per handle). */
const struct vf_kv_ops *memkv_ops(void);

/* Test controls. */
int64_t memkv_revision(struct memkv_store *st);
/* End the lease with printable id now (keys vanish, locks pass on, lost runs). */
int memkv_lease_kill(struct memkv_store *st, const char *id);
/* Stop renewing the lease (it then expires after its TTL). */
int memkv_lease_freeze(struct memkv_store *st, const char *id);
/* Number of live leases. */
size_t memkv_lease_count(struct memkv_store *st);
/* A plain value read (NULL if absent), malloc'ed. */
char *memkv_value(struct memkv_store *st, const char *key);
/* Number of keys under prefix. */
size_t memkv_count(struct memkv_store *st, const char *prefix);
/* Free a memkv lock handle as if its acquisition's answer was lost: the lease
 * keeps the lock, and its next lock() of the name adopts it. */
void memkv_lock_abandon(struct vf_kv_lock **lock);

/* ---- shims ---- */
enum memkv_slot {
	MEMKV_GET = 0,
	MEMKV_LIST,
	MEMKV_PUT,
	MEMKV_CAS,
	MEMKV_DEL,
	MEMKV_CAS_DEL,
	MEMKV_TXN,
	MEMKV_LEASE_GRANT,
	MEMKV_LEASE_KEEPALIVE,
	MEMKV_LEASE_REVOKE,
	MEMKV_LOCK,
	MEMKV_UNLOCK,
	MEMKV_WATCH_START,
	MEMKV_LOCK_MANY,
	MEMKV_NSLOTS
};
const char *memkv_slot_name(int slot);

enum memkv_fault {
	MEMKV_FAULT_UNAVAIL = 1,          /* VF_EUNAVAIL, nothing applied */
	MEMKV_FAULT_UNCERTAIN_APPLIED,    /* applied, reported VF_EUNCERTAIN */
	MEMKV_FAULT_UNCERTAIN_NOT_APPLIED /* not applied, reported VF_EUNCERTAIN */
};

struct memkv_shim;

/* A forwarding handle over inner (inner stays owned by the caller and must
 * outlive the shim; close the shim with shim->ops->close or memkv_shim_kv()). */
int memkv_fault_new(struct vf_kv *inner, struct vf_kv **kv_r, struct memkv_shim **shim_r);
int memkv_count_new(struct vf_kv *inner, struct vf_kv **kv_r, struct memkv_shim **shim_r);
/* Fail call number nth (1-based, counted from now) of slot with mode; persistent:
 * fail every call from then on. Replaces any previous rule. */
void memkv_shim_fail(struct memkv_shim *s, int slot, unsigned nth, int mode, int persistent);
void memkv_shim_clear(struct memkv_shim *s);
/* Did the rule fire? */
int memkv_shim_fired(struct memkv_shim *s);
/* Calls made through slot since the last reset. */
unsigned memkv_shim_count(struct memkv_shim *s, int slot);
unsigned memkv_shim_total(struct memkv_shim *s);
void memkv_shim_reset(struct memkv_shim *s);

#endif
