/*
 * vfile backend ABI: the contract between libvfile and a key-value store driver.
 * tests/conformance is its executable form: run it against any module
 * (tests/conformance/cf_main.c says how).
 *
 * SUMMARY
 *  - A backend is a shared module exporting exactly one symbol, vf_backend_entry(),
 *    returning a static struct vf_kv_ops. The loader reads abi_version FIRST and
 *    refuses the module (VF_EABI) unless it EQUALS VF_KV_ABI_VERSION: a module
 *    matches the ABI of the vfile it is loaded into exactly, neither older nor
 *    newer; rebuild it against this header. VF_KV_ABI_VERSION is bumped on any
 *    change to a struct here or to the meaning of a slot; slots are only appended.
 *  - Slots are REQUIRED (the loader refuses a module that leaves one NULL, naming
 *    it: vfile calls them without a NULL check) or OPTIONAL (NULL: vfile does
 *    without, or the caller gets VF_ENOTSUP). Below: [REQUIRED] / [OPTIONAL].
 *  - Every slot taking struct vf_err *err accepts err == NULL (no message wanted);
 *    the return value is always the enum vf_status code.
 *  - Results (_r) are malloc'ed by the backend; the caller frees them with the
 *    vf_kv_*_clear() helpers at the end of this file. Event data is valid only
 *    during the callback.
 *  - Any slot may be called from any thread, concurrently, on one handle, except
 *    close() (nothing may run or start after it) and watch_stop() of the watch
 *    whose callback is the caller. Callbacks (watch events, lease loss) run on
 *    backend threads, may call any slot except close() and watch_stop() of their
 *    own watch, and should return promptly.
 *  - Retrying, by status: VF_EUNAVAIL: nothing was applied, any call may be
 *    retried. VF_EUNCERTAIN: it may have applied: retry only what is safe twice
 *    (get, list; a write guarded by a compare, whose retry may then report
 *    VF_ECONFLICT for its own first success: re-read to tell; lock()/lock_many()
 *    with the same lease, which adopt what a lost answer took); a retried
 *    lease_grant may leave a lease behind that expires by its TTL. VF_ECONFLICT:
 *    re-read, then decide. VF_EBUSY, VF_ETIMEDOUT: try again later. VF_ELEASE:
 *    grant a new lease (the old one's keys and locks are gone). Never by retrying
 *    the same call: VF_EINVAL, VF_ELIMIT, VF_EAUTH, VF_ENOTSUP, VF_EABI, VF_EPROTO
 *    (the endpoint is not the store, or answers what we do not understand),
 *    VF_ENOMEM.
 *
 * MODEL
 *  - Keys are NUL-terminated strings; values are byte strings (stored with a NUL
 *    after the last byte, for convenience); which keys are valid: "Keys" below.
 *    Every value read carries mod_rev (etcd mod_revision, Consul ModifyIndex) and
 *    create_rev (create_revision/CreateIndex).
 *    "expected version" 0 means "the key must not exist". A put that leaves the
 *    value unchanged may keep the old mod_rev and send no watch event (Consul).
 *  - Sizes: a key, lock name or prefix is at most VF_KV_KEY_MAX bytes; a value of
 *    up to VF_KV_VALUE_PORTABLE bytes is accepted by every backend (also in a
 *    txn, lock or lock_many); above that, or for a request larger than the store
 *    takes (Consul: 512 KiB per value; etcd: 1.5 MiB per request by default), the
 *    answer is VF_ELIMIT.
 *  - Lease binding of a key (every backend, since ABI 4): a write (put, cas, a
 *    txn's VF_OP_PUT) WITHOUT a lease leaves the key bound to no lease, whatever
 *    lease it was bound to before (Consul's own "set" keeps the key's session: the
 *    driver clears it in the same atomic request); a write WITH lease B binds the
 *    key to B, also when it was bound to another lease A (it succeeds, with no
 *    compare of the binding). The write keeps create_rev of an existing key.
 *  - A lease (etcd lease, Consul session) is kept alive by the backend's own thread
 *    unless granted with VF_LEASE_MANUAL; its loss is reported once through the
 *    callback given at grant. Keys put with a lease vanish when it ends. While the
 *    store cannot be reached, the loss is reported at the local deadline (the
 *    start of the last renewal the store confirmed + the TTL), not later: from
 *    then on the store may have ended the lease. lease_revoke() waits for a lost
 *    callback that is running on another thread (and may be called from it).
 *  - A lock is a lease-lock: held until released or until its lease ends. Its fence
 *    (VF_CMP_LOCK_HELD in a txn) makes a write by a holder that lost it fail.
 *    Waiters block without polling (etcd: FIFO, one woken at a time; Consul: all
 *    waiters wake on release, one wins). A lease holds a given lock name at most
 *    once: asking again while this handle holds or awaits it is VF_EBUSY at once,
 *    whatever the timeout; a waiter key left behind by an acquisition whose answer
 *    was lost is adopted on retry, and without a retry the driver deletes it in the
 *    background (it never comes to own the lock). A lock that the store refuses for
 *    a while after its holder's lease ended (Consul's lock-delay) is held: try-lock
 *    VF_EBUSY, a bounded lock waits it out.
 *  - The keys a lock occupies (since ABI 4): the lock called N uses only the key
 *    "N/.lock" or keys under "N/.lock/": etcd the waiter keys "N/.lock/<lease id>",
 *    Consul the key "N/.lock". No data key can be one of them (segments that
 *    begin with '.' are refused), so a lock never collides with data, also not
 *    with a key N or keys under "N/". vf_kv_lock.key is that store key. A list or
 *    watch of a prefix above N may show them (a key with a ".lock" segment).
 *  - A watch delivers typed events for a prefix, in store order, on a backend
 *    thread; VF_EV_RESYNC means history is gone: re-list, then continue. With
 *    VF_KV_CAP_WATCH_HISTORY every write is one event; without it (Consul) the
 *    backend compares listings, so several writes of one key between two looks
 *    may arrive as ONE event with the latest value, and a key created and deleted
 *    in between may show no event at all: the watched view converges to the
 *    store's, the sequence of versions is not guaranteed.
 *  - The store is checked before it is trusted: an endpoint that does not answer
 *    as the store does (e.g. any HTTP server that answers 404) is refused with
 *    VF_EPROTO naming the endpoint, not read as "no keys".
 *
 * Keys (since ABI 4; every backend refuses the same keys, with VF_EINVAL and a
 * message naming the key, escaped): a key or lock name is valid UTF-8 of 1 to
 * VF_KV_KEY_MAX bytes, without control characters (U+0000-U+001F, U+007F-U+009F),
 * made of '/'-separated segments that are not empty (no leading '/', no "//", no
 * trailing '/') and do not begin with '.' (reserved for drivers: lock keys). A
 * list or watch prefix follows the same rules but may be empty and may end in '/'.
 */
#ifndef VFILE_KV_H
#define VFILE_KV_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <libconfig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: lock_many appended; 3: VF_CMP_LOCK_FREE; 4: the contract of keys (refused
 * keys, lock keys under "N/.lock/"), of a put's lease binding, of lease loss while
 * the store is unreachable, and of a watch resumed past the store's head. */
#define VF_KV_ABI_VERSION 4

#define VF_KV_KEY_MAX 512 /* longest key, prefix or lock name, in bytes */
#define VF_KV_VALUE_PORTABLE 65536 /* a value this long is accepted by every backend */

/* Status codes: append only, never renumber. */
enum vf_status {
	VF_OK = 0,
	VF_ENOTFOUND = -1,  /* key (or lease) does not exist */
	VF_ECONFLICT = -2,  /* a compare failed: someone else won; nothing was written */
	VF_EUNCERTAIN = -3, /* request sent, no answer: it may or may not have applied */
	VF_EUNAVAIL = -4,   /* could not reach the store (nothing was applied) */
	VF_EPROTO = -5,     /* the store answered something we do not understand */
	VF_ENOMEM = -6,     /* out of memory */
	VF_ENOTSUP = -7,    /* the backend does not support this (an OPTIONAL slot is NULL) */
	VF_EABI = -8,       /* module ABI version mismatch or missing entry symbol */
	VF_EAUTH = -9,      /* authentication or permission refused */
	VF_ELIMIT = -10,    /* a store limit was exceeded (txn ops, request size) */
	VF_EBUSY = -11,     /* try-lock: the lock is held by someone else */
	VF_ETIMEDOUT = -12, /* a bounded wait (lock, state) ran out */
	VF_EINVAL = -13,    /* invalid argument or configuration */
	VF_ELEASE = -14,    /* the lease is gone (expired or revoked) */
};

/* A one-line error: code is an enum vf_status, msg never contains '\n'. */
struct vf_err {
	int code;
	long http_status; /* the store's HTTP status when there was one, else 0 */
	char msg[256];
};

/* One key as read from the store. */
struct vf_kv_pair {
	char *key;
	char *value; /* value_len bytes followed by a NUL */
	size_t value_len;
	int64_t mod_rev;    /* version of the last write */
	int64_t create_rev; /* version of the write that created the key */
};

/* The keys under a prefix, sorted by key, and the store revision they were read at. */
struct vf_kv_list {
	struct vf_kv_pair *items;
	size_t count;
	int64_t revision; /* etcd header revision / Consul X-Consul-Index */
};

/* A lease. Backends embed this first in their own struct. */
struct vf_kv_lease {
	char id[64]; /* printable id (etcd lease id in hex, Consul session id) */
	int ttl_s;   /* TTL granted by the store */
};
#define VF_LEASE_MANUAL 0x1u /* no automatic keep-alive: the caller calls lease_keepalive */
typedef void (*vf_kv_lease_lost_fn)(struct vf_kv_lease *lease, void *arg);

/* A held lock. Backends embed this first in their own struct. */
struct vf_kv_lock {
	char *key;     /* the store key that proves ownership */
	int64_t fence; /* fencing token: grows with every acquisition of the same name */
};

/* Transactions: if every compare holds, every op is applied, atomically. A txn
 * writes (PUT, DELETE) a key at most once: two writes of one key are VF_EINVAL,
 * nothing applied. */
enum vf_kv_cmp_kind {
	VF_CMP_VALUE_EQ = 1,   /* key exists and its value equals value/value_len */
	VF_CMP_VERSION_EQ = 2, /* key's mod_rev equals mod_rev (0: key absent) */
	VF_CMP_ABSENT = 3,     /* key does not exist */
	VF_CMP_LOCK_HELD = 4,  /* lock is still held by its owner (the fence) */
	VF_CMP_LOCK_FREE = 5,  /* nobody (this handle included) holds the lock called key
	                        * (etcd: nor waits for it); a txn with it is lock + txn +
	                        * unlock in one step. May fail for a name never locked
	                        * (Consul): a false "held", never a false "free" */
};
struct vf_kv_cmp {
	enum vf_kv_cmp_kind kind;
	const char *key; /* unused for VF_CMP_LOCK_HELD */
	const char *value;
	size_t value_len;
	int64_t mod_rev;
	const struct vf_kv_lock *lock;
};
enum vf_kv_op_kind {
	VF_OP_PUT = 1,    /* put key=value (attached to lease if not NULL) */
	VF_OP_DELETE = 2, /* delete key (absent is fine) */
	VF_OP_GET = 3,    /* read key into the result (absent: found = 0) */
	VF_OP_UNLOCK = 4, /* release lock as part of the txn; caller still frees it with unlock() */
};
struct vf_kv_op {
	enum vf_kv_op_kind kind;
	const char *key;
	const char *value;
	size_t value_len;
	struct vf_kv_lease *lease;
	struct vf_kv_lock *lock;
};
/* One entry per op, in op order. For VF_OP_GET: found and pair; for PUT: pair.mod_rev. */
struct vf_kv_result {
	int found;
	struct vf_kv_pair pair;
};
struct vf_kv_txn_result {
	struct vf_kv_result *results; /* nops entries when the txn committed */
	size_t count;
	int64_t revision; /* the store revision of the commit */
};

/* Watch events (valid during the callback only). */
enum vf_kv_event_type {
	VF_EV_PUT = 1,
	VF_EV_DELETE = 2, /* value empty; mod_rev is the revision of the delete */
	VF_EV_RESYNC = 3, /* history lost: re-list; events continue after revision */
};
struct vf_kv_event {
	enum vf_kv_event_type type;
	const char *key;
	const char *value;
	size_t value_len;
	int64_t mod_rev;
	int64_t create_rev;
	int64_t revision; /* store revision this event belongs to */
};
/* Return 0 to go on, non-zero to stop the watch (the backend then ends its thread;
 * the caller still frees the watch with watch_stop()). */
typedef int (*vf_kv_watch_fn)(const struct vf_kv_event *ev, void *arg);
struct vf_kv_watch;

/* Capability bits. */
#define VF_KV_CAP_WATCH_HISTORY 0x1u /* watch can start at an arbitrary past revision */
#define VF_KV_CAP_COMPACT 0x2u       /* compact() discards history */
#define VF_KV_CAP_SHORT_LEASE 0x4u   /* leases shorter than 10 s */

/* The handle. Backends embed this first in their own struct. */
struct vf_kv {
	const struct vf_kv_ops *ops;
	/* Largest ncmp + nops of a txn (every compare and every op counts one, GET,
	 * VF_OP_UNLOCK and the lock compares included), of n + ncmp of lock_many, and
	 * of nreads + 3 of lock(). At least 16 (etcd 128, Consul 32, memkv 64). */
	unsigned int max_txn_ops;
	int min_lease_ttl_s;      /* shortest TTL the store grants */
};

struct vf_kv_ops {
	unsigned int abi_version; /* [REQUIRED] VF_KV_ABI_VERSION: always the first member */
	const char *name;         /* [REQUIRED] "etcd", "consul": messages and the config group */
	unsigned int caps;        /* VF_KV_CAP_* */

	/* [OPTIONAL] Called by the loader (vf_backend_load), after the ABI check and
	 * before any open; global_fini by vf_backend_unload, after every handle was
	 * closed. A process may load a module more than once (a library user and
	 * vfilectl, tests): init/fini pairs may nest and must be counted or idempotent
	 * (curl_global_init is). A failing global_init refuses the module. */
	int (*global_init)(struct vf_err *err);
	void (*global_fini)(void);

	/* [REQUIRED] Open a handle from the backend's config group (cfg may be NULL:
	 * defaults). Does not contact the store: an unreachable store is reported by
	 * the calls. Leaves kv->ops NULL or sets it (the loader fills it in). */
	int (*open)(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err);
	/* [REQUIRED] Close the handle. The caller first stops every watch and releases
	 * or drops every lock of it (a watch still running at close, or a lock handle
	 * used after, is undefined). close stops the keep-alive and frees the lease
	 * handles still granted (the caller's pointers become invalid), WITHOUT
	 * revoking them: the store ends those leases, their keys and their locks
	 * after the TTL. Revoke first to end them at once. */
	void (*close)(struct vf_kv *kv);

	/* [REQUIRED] Read one key; VF_ENOTFOUND if absent. */
	int (*get)(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
	           struct vf_err *err);
	/* [REQUIRED] Read every key starting with prefix (only those), at one revision. */
	int (*list)(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
	            struct vf_err *err);
	/* [REQUIRED] Unconditional put; lease may be NULL; *mod_rev_r (may be NULL) gets
	 * the new version. */
	int (*put)(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
	           struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err);
	/* [REQUIRED] Put only if the key's mod_rev == expect (0: absent); else
	 * VF_ECONFLICT (also for expect > 0 on an absent key). */
	int (*cas)(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
	           int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
	           struct vf_err *err);
	/* [OPTIONAL] Delete; VF_ENOTFOUND if absent. */
	int (*del)(struct vf_kv *kv, const char *key, struct vf_err *err);
	/* [OPTIONAL] Delete only if the key's mod_rev == expect; else VF_ECONFLICT
	 * (also for expect > 0 on an absent key). expect 0 ("must be absent") on an
	 * absent key holds and deletes nothing: VF_ENOTFOUND. */
	int (*cas_del)(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err);
	/* [REQUIRED] All-or-nothing: VF_OK and res_r (may be NULL) on commit,
	 * VF_ECONFLICT if a compare failed, VF_ELIMIT if ncmp + nops > max_txn_ops,
	 * VF_EINVAL if it writes a key twice. */
	int (*txn)(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
	           const struct vf_kv_op *ops, size_t nops, struct vf_kv_txn_result *res_r,
	           struct vf_err *err);

	/* [REQUIRED] Leases. ttl_s below min_lease_ttl_s is VF_EINVAL. lost (may be
	 * NULL) is called once, from a backend thread, when keep-alive finds the
	 * lease gone; the lease handle stays the caller's (revoke it to free it). */
	int (*lease_grant)(struct vf_kv *kv, int ttl_s, unsigned int flags,
	                   vf_kv_lease_lost_fn lost, void *arg, struct vf_kv_lease **lease_r,
	                   struct vf_err *err);
	/* [OPTIONAL] One renewal now (VF_LEASE_MANUAL leases); VF_ELEASE if gone. */
	int (*lease_keepalive)(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err);
	/* [REQUIRED] Revoke (keys attached to it vanish, its locks are released) and
	 * free. Always frees *lease and sets it NULL, also on failure: the lease is
	 * then no longer kept alive and the store ends it after its TTL. A lease
	 * already gone is VF_OK. */
	int (*lease_revoke)(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err);

	/* [REQUIRED] Acquire the lock called name, owned through lease. timeout_ms 0: try once
	 * (VF_EBUSY if held); < 0: wait forever; else VF_ETIMEDOUT after it. The nreads
	 * keys in reads are read in the same round trip as the acquisition, into
	 * reads_r[i] (found = 0 if absent); reads may be NULL when nreads is 0. */
	int (*lock)(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
	            const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
	            struct vf_kv_lock **lock_r, struct vf_err *err);
	/* [REQUIRED] Release (if still held and not already released by a VF_OP_UNLOCK)
	 * and free. A lock lost with its lease is VF_OK. Always frees *lock and sets
	 * it NULL, also on failure: the lock may then stay held until the driver
	 * releases it in the background (etcd) or its lease ends (Consul). */
	int (*unlock)(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err);

	/* [REQUIRED] Watch every key under prefix, from revision after_rev + 1 (0:
	 * from now). A dropped stream is resumed without gap or duplicate; if that is
	 * impossible the callback gets VF_EV_RESYNC. after_rev older than the history
	 * kept (compacted), or any after_rev the prefix moved past without
	 * VF_KV_CAP_WATCH_HISTORY, or past the store's head (a reset or restored
	 * store): the first event is VF_EV_RESYNC, events follow from its revision. */
	int (*watch_start)(struct vf_kv *kv, const char *prefix, int64_t after_rev,
	                   vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
	                   struct vf_err *err);
	/* [REQUIRED] Stop the watch, join its thread, free it: no callback runs after
	 * it returns. Also for a watch whose callback returned non-zero. */
	void (*watch_stop)(struct vf_kv *kv, struct vf_kv_watch **watch);

	/* [OPTIONAL] Discard history up to revision (VF_KV_CAP_COMPACT; tests and
	 * operators). */
	int (*compact)(struct vf_kv *kv, int64_t revision, struct vf_err *err);

	/* Try-lock n names at once in ONE request, never waiting, and only if every
	 * compare in cmps holds: all or nothing. VF_OK: locks_r[i] holds names[i]
	 * (release each with unlock() or VF_OP_UNLOCK; fences as lock()). VF_EBUSY: a
	 * name is held or awaited by anyone, this handle included; VF_ECONFLICT: a
	 * compare failed; VF_ELIMIT: n + ncmp > max_txn_ops. Nothing is taken unless
	 * VF_OK, except after VF_EUNCERTAIN/VF_EUNAVAIL, where each name may be held
	 * under lease as after a lost lock() answer. [OPTIONAL] NULL: vfile locks one
	 * by one. */
	int (*lock_many)(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names,
	                 size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
	                 struct vf_kv_lock **locks_r, struct vf_err *err);
};

/* The one symbol a backend module exports. */
typedef const struct vf_kv_ops *(*vf_backend_entry_fn)(void);
const struct vf_kv_ops *vf_backend_entry(void);
#define VF_BACKEND_ENTRY "vf_backend_entry"

/* Free what a slot returned (the _r results), leaving the struct empty: pairs of
 * get(), lists of list(), the reads of lock(), the results of txn(). */
static inline void vf_kv_pair_clear(struct vf_kv_pair *p)
{
	free(p->key);
	free(p->value);
	p->key = p->value = NULL;
	p->value_len = 0;
}
static inline void vf_kv_list_clear(struct vf_kv_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		vf_kv_pair_clear(&l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}
static inline void vf_kv_results_clear(struct vf_kv_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		vf_kv_pair_clear(&r[i].pair);
		r[i].found = 0;
	}
}
static inline void vf_kv_txn_result_clear(struct vf_kv_txn_result *t)
{
	vf_kv_results_clear(t->results, t->count);
	free(t->results);
	t->results = NULL;
	t->count = 0;
}

#ifdef __cplusplus
}
#endif
#endif /* VFILE_KV_H */
