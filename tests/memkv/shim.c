/* The fault-injecting and round-trip-counting shims over any struct vf_kv (memkv.h). */
#include <config.h>

#include <string.h>
#include <pthread.h>

#include "common_int.h"
#include "memkv.h"

struct memkv_shim {
	struct vf_kv base; /* first: the shim is a struct vf_kv */
	struct vf_kv *inner;
	pthread_mutex_t mu;
	unsigned count[MEMKV_NSLOTS];
	/* the fault rule */
	int slot, mode, persistent, fired, armed;
	unsigned seen, nth;
	/* handles of leases/locks "applied but reported uncertain", freed at close */
	struct vf_kv_lease *lost_leases[16];
	size_t nlost_leases;
	struct vf_kv_lock *lost_locks[64];
	size_t nlost_locks;
	/* called around every list() (tests that need a write between two lists) */
	void (*list_hook)(const char *prefix, int after, void *arg);
	void *list_arg;
	/* a second rule, on another slot (memkv_shim_fail_also) */
	int slot2, mode2, armed2;
	unsigned seen2, nth2;
};

static const char *const shim_names[MEMKV_NSLOTS] = {
        "get",          "list",        "put",
        "cas",          "del",         "cas_del",
        "txn",          "lease_grant", "lease_keepalive",
        "lease_revoke", "lock",        "unlock",
        "watch_start",  "lock_many"};

const char *memkv_slot_name(int slot)
{
	return slot >= 0 && slot < MEMKV_NSLOTS ? shim_names[slot] : "?";
}

/* Count the call; return the fault mode to apply to it (0: none). */
static int shim_enter(struct memkv_shim *s, int slot)
{
	int mode = 0;

	pthread_mutex_lock(&s->mu);
	s->count[slot]++;
	if (s->armed && s->slot == slot) {
		s->seen++;
		if (s->seen == s->nth || (s->persistent && s->seen > s->nth)) {
			mode = s->mode;
			s->fired = 1;
			if (!s->persistent)
				s->armed = 0;
		}
	}
	if (mode == 0 && s->armed2 && s->slot2 == slot && ++s->seen2 == s->nth2) {
		mode = s->mode2;
		s->fired = 1;
		s->armed2 = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return mode;
}

static struct memkv_shim *shim_of(struct vf_kv *kv)
{
	return (struct memkv_shim *)kv;
}

/* bench/vfbench links the shim without memkv.c (it wraps the real backends only). */
#pragma weak memkv_ops
#pragma weak memkv_lock_abandon

/* A lock taken in the store whose handle the caller never learns. Over memkv the
 * lease keeps it, adopted by its next lock() (as a real driver adopts the waiter
 * key of a lost answer); over another store the handle is kept and released at
 * close. */
static void shim_lock_lost(struct memkv_shim *s, struct vf_kv_lock **lock)
{
	if (*lock == NULL)
		return;
	if (memkv_ops && memkv_lock_abandon && s->inner->ops == memkv_ops()) {
		memkv_lock_abandon(lock);
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->nlost_locks < 64) {
		s->lost_locks[s->nlost_locks++] = *lock;
		*lock = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (*lock)
		s->inner->ops->unlock(s->inner, lock, NULL);
}

static int shim_fail(int mode, int slot, struct vf_err *err)
{
	if (mode == MEMKV_FAULT_UNAVAIL)
		return vf_err_set(err, VF_EUNAVAIL, "fault shim: %s: store unreachable (injected)",
		                  shim_names[slot]);
	return vf_err_set(err, VF_EUNCERTAIN, "fault shim: %s: outcome uncertain (injected)",
	                  shim_names[slot]);
}

/* The common shape: fault before (not applied) or after (applied) the inner call. */
#define SHIM_CALL(slot, call)                                                                      \
	do {                                                                                       \
		struct memkv_shim *s = shim_of(kv);                                                \
		int mode = shim_enter(s, slot), rc;                                                \
		if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED)      \
			return shim_fail(mode, slot, err);                                         \
		rc = (call);                                                                       \
		if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED && rc == VF_OK)                          \
			return shim_fail(mode, slot, err);                                         \
		return rc;                                                                         \
	} while (0)

static int shim_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
                    struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_GET);

	if (mode)
		return shim_fail(mode == MEMKV_FAULT_UNAVAIL ? mode : MEMKV_FAULT_UNAVAIL,
		                 MEMKV_GET, err);
	return s->inner->ops->get(s->inner, key, pair_r, err);
}

static int shim_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                     struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_LIST);

	void (*hook)(const char *, int, void *);
	void *harg;
	int rc;

	if (mode)
		return shim_fail(MEMKV_FAULT_UNAVAIL, MEMKV_LIST, err);
	pthread_mutex_lock(&s->mu);
	hook = s->list_hook;
	harg = s->list_arg;
	pthread_mutex_unlock(&s->mu);
	if (hook)
		hook(prefix, 0, harg);
	rc = s->inner->ops->list(s->inner, prefix, list_r, err);
	if (hook)
		hook(prefix, 1, harg);
	return rc;
}

/* fn(prefix, after, arg) is called before (after 0) and after (after 1) every
 * list() through the shim, on the caller's thread; NULL removes it. Declared
 * by the tests that use it (test_volume_util.h). */
void memkv_shim_list_hook(struct memkv_shim *s, void (*fn)(const char *, int, void *), void *arg);
void memkv_shim_list_hook(struct memkv_shim *s, void (*fn)(const char *, int, void *), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->list_hook = fn;
	s->list_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

static int shim_put(struct vf_kv *kv, const char *key, const char *value, size_t len,
                    struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	SHIM_CALL(MEMKV_PUT, s->inner->ops->put(s->inner, key, value, len, lease, mod_rev_r, err));
}

static int shim_cas(struct vf_kv *kv, const char *key, const char *value, size_t len,
                    int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                    struct vf_err *err)
{
	SHIM_CALL(MEMKV_CAS,
	          s->inner->ops->cas(s->inner, key, value, len, expect, lease, mod_rev_r, err));
}

static int shim_del(struct vf_kv *kv, const char *key, struct vf_err *err)
{
	SHIM_CALL(MEMKV_DEL, s->inner->ops->del(s->inner, key, err));
}

static int shim_cas_del(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err)
{
	SHIM_CALL(MEMKV_CAS_DEL, s->inner->ops->cas_del(s->inner, key, expect, err));
}

static int shim_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
                    const struct vf_kv_op *ops, size_t nops, struct vf_kv_txn_result *res_r,
                    struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_TXN), rc;

	if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED)
		return shim_fail(mode, MEMKV_TXN, err);
	rc = s->inner->ops->txn(s->inner, cmps, ncmp, ops, nops, res_r, err);
	if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED && rc == VF_OK) {
		if (res_r)
			vf_kv_txn_result_clear(res_r);
		return shim_fail(mode, MEMKV_TXN, err);
	}
	return rc;
}

static int shim_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags,
                            vf_kv_lease_lost_fn lost, void *arg, struct vf_kv_lease **lease_r,
                            struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_LEASE_GRANT), rc;

	if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED)
		return shim_fail(mode, MEMKV_LEASE_GRANT, err);
	rc = s->inner->ops->lease_grant(s->inner, ttl_s, flags, lost, arg, lease_r, err);
	if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED && rc == VF_OK) {
		pthread_mutex_lock(&s->mu);
		if (s->nlost_leases < 16)
			s->lost_leases[s->nlost_leases++] = *lease_r;
		pthread_mutex_unlock(&s->mu);
		*lease_r = NULL;
		return shim_fail(mode, MEMKV_LEASE_GRANT, err);
	}
	return rc;
}

static int shim_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err)
{
	SHIM_CALL(MEMKV_LEASE_KEEPALIVE, s->inner->ops->lease_keepalive(s->inner, lease, err));
}

static int shim_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_LEASE_REVOKE), rc;

	/* a revoke always frees the handle; a failure leaves the lease to expire */
	if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED) {
		pthread_mutex_lock(&s->mu);
		if (s->nlost_leases < 16) {
			s->lost_leases[s->nlost_leases++] = *lease;
			*lease = NULL;
		}
		pthread_mutex_unlock(&s->mu);
		if (*lease)
			s->inner->ops->lease_revoke(s->inner, lease, NULL);
		return shim_fail(mode, MEMKV_LEASE_REVOKE, err);
	}
	rc = s->inner->ops->lease_revoke(s->inner, lease, err);
	if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED)
		return shim_fail(mode, MEMKV_LEASE_REVOKE, err);
	return rc;
}

static int shim_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
                     const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
                     struct vf_kv_lock **lock_r, struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_LOCK), rc;

	if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED)
		return shim_fail(mode, MEMKV_LOCK, err);
	rc = s->inner->ops->lock(s->inner, lease, name, timeout_ms, reads, nreads, reads_r, lock_r,
	                         err);
	if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED && rc == VF_OK) {
		/* the lock is taken in the store; the caller never learns its handle */
		vf_kv_results_clear(reads_r, nreads);
		shim_lock_lost(s, lock_r);
		return shim_fail(mode, MEMKV_LOCK, err);
	}
	return rc;
}

static int shim_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names,
                          size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                          struct vf_kv_lock **locks_r, struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_LOCK_MANY), rc;

	if (s->inner->ops->lock_many == NULL)
		return vf_err_set(err, VF_ENOTSUP, "lock_many: not supported");
	if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED)
		return shim_fail(mode, MEMKV_LOCK_MANY, err);
	rc = s->inner->ops->lock_many(s->inner, lease, names, n, cmps, ncmp, locks_r, err);
	if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED && rc == VF_OK) {
		/* the locks are taken in the store; the caller never learns their handles */
		for (size_t i = 0; i < n; i++)
			shim_lock_lost(s, &locks_r[i]);
		return shim_fail(mode, MEMKV_LOCK_MANY, err);
	}
	return rc;
}

static int shim_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_UNLOCK), rc;

	/* unlock always frees the handle; a failed release leaves the lock to its lease */
	if (mode == MEMKV_FAULT_UNAVAIL || mode == MEMKV_FAULT_UNCERTAIN_NOT_APPLIED) {
		pthread_mutex_lock(&s->mu);
		if (s->nlost_locks < 64) {
			s->lost_locks[s->nlost_locks++] = *lock;
			*lock = NULL;
		}
		pthread_mutex_unlock(&s->mu);
		if (*lock)
			s->inner->ops->unlock(s->inner, lock, NULL);
		return shim_fail(mode, MEMKV_UNLOCK, err);
	}
	rc = s->inner->ops->unlock(s->inner, lock, err);
	if (mode == MEMKV_FAULT_UNCERTAIN_APPLIED)
		return shim_fail(mode, MEMKV_UNLOCK, err);
	return rc;
}

static int shim_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev,
                            vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
                            struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);
	int mode = shim_enter(s, MEMKV_WATCH_START);

	if (mode)
		return shim_fail(MEMKV_FAULT_UNAVAIL, MEMKV_WATCH_START, err);
	return s->inner->ops->watch_start(s->inner, prefix, after_rev, fn, arg, watch_r, err);
}

static void shim_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	struct memkv_shim *s = shim_of(kv);

	s->inner->ops->watch_stop(s->inner, watch);
}

static int shim_compact(struct vf_kv *kv, int64_t revision, struct vf_err *err)
{
	struct memkv_shim *s = shim_of(kv);

	if (s->inner->ops->compact == NULL)
		return vf_err_set(err, VF_ENOTSUP, "compact not supported");
	return s->inner->ops->compact(s->inner, revision, err);
}

static void shim_close(struct vf_kv *kv)
{
	struct memkv_shim *s = shim_of(kv);

	/* "lost" handles: released through the inner handle, which frees them */
	for (size_t i = 0; i < s->nlost_locks; i++)
		s->inner->ops->unlock(s->inner, &s->lost_locks[i], NULL);
	for (size_t i = 0; i < s->nlost_leases; i++)
		s->inner->ops->lease_revoke(s->inner, &s->lost_leases[i], NULL);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static const struct vf_kv_ops shim_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "shim",
        .close = shim_close,
        .get = shim_get,
        .list = shim_list,
        .put = shim_put,
        .cas = shim_cas,
        .del = shim_del,
        .cas_del = shim_cas_del,
        .txn = shim_txn,
        .lease_grant = shim_lease_grant,
        .lease_keepalive = shim_lease_keepalive,
        .lease_revoke = shim_lease_revoke,
        .lock = shim_lock,
        .unlock = shim_unlock,
        .lock_many = shim_lock_many,
        .watch_start = shim_watch_start,
        .watch_stop = shim_watch_stop,
        .compact = shim_compact,
};

static int shim_new(struct vf_kv *inner, struct vf_kv **kv_r, struct memkv_shim **shim_r)
{
	struct memkv_shim *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return VF_ENOMEM;
	s->base = *inner; /* limits of the inner handle */
	s->base.ops = &shim_ops;
	s->inner = inner;
	pthread_mutex_init(&s->mu, NULL);
	*kv_r = &s->base;
	if (shim_r)
		*shim_r = s;
	return VF_OK;
}

int memkv_fault_new(struct vf_kv *inner, struct vf_kv **kv_r, struct memkv_shim **shim_r)
{
	return shim_new(inner, kv_r, shim_r);
}

int memkv_count_new(struct vf_kv *inner, struct vf_kv **kv_r, struct memkv_shim **shim_r)
{
	return shim_new(inner, kv_r, shim_r);
}

void memkv_shim_fail(struct memkv_shim *s, int slot, unsigned nth, int mode, int persistent)
{
	pthread_mutex_lock(&s->mu);
	s->slot = slot;
	s->nth = nth;
	s->mode = mode;
	s->persistent = persistent;
	s->seen = 0;
	s->fired = 0;
	s->armed = 1;
	s->armed2 = 0;
	pthread_mutex_unlock(&s->mu);
}

/* A second rule besides the one of memkv_shim_fail (set that one first): fail
 * call number nth (from now) of slot, once, with mode. Declared by the tests
 * that use it (test_volume_util.h). */
void memkv_shim_fail_also(struct memkv_shim *s, int slot, unsigned nth, int mode);
void memkv_shim_fail_also(struct memkv_shim *s, int slot, unsigned nth, int mode)
{
	pthread_mutex_lock(&s->mu);
	s->slot2 = slot;
	s->nth2 = nth;
	s->mode2 = mode;
	s->seen2 = 0;
	s->armed2 = 1;
	pthread_mutex_unlock(&s->mu);
}

void memkv_shim_clear(struct memkv_shim *s)
{
	pthread_mutex_lock(&s->mu);
	s->armed = 0;
	s->armed2 = 0;
	pthread_mutex_unlock(&s->mu);
}

int memkv_shim_fired(struct memkv_shim *s)
{
	int f;

	pthread_mutex_lock(&s->mu);
	f = s->fired;
	pthread_mutex_unlock(&s->mu);
	return f;
}

unsigned memkv_shim_count(struct memkv_shim *s, int slot)
{
	unsigned n;

	pthread_mutex_lock(&s->mu);
	n = s->count[slot];
	pthread_mutex_unlock(&s->mu);
	return n;
}

unsigned memkv_shim_total(struct memkv_shim *s)
{
	unsigned n = 0;

	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < MEMKV_NSLOTS; i++)
		n += s->count[i];
	pthread_mutex_unlock(&s->mu);
	return n;
}

void memkv_shim_reset(struct memkv_shim *s)
{
	pthread_mutex_lock(&s->mu);
	memset(s->count, 0, sizeof(s->count));
	pthread_mutex_unlock(&s->mu);
}
