/* Private to the volume manager (src/lib: volume.c and the files split from it,
 * context.c, manager.c, node.c) and its tests. */
#ifndef VFILE_VOLUME_INT_H
#define VFILE_VOLUME_INT_H

#include <pthread.h>

#include "vfile/vfile.h"
#include "common_int.h"

/* ---- failpoints (tests) ----
 * A named hook called at a point of the protocol with the volume it is about.
 * Return 0 to go on, non-zero to make the handler stop right there as if its
 * process had died (nothing more is written, nothing is undone). */
typedef int (*vf_failpoint_fn)(const char *name, const char *vol, void *arg);
/* fn NULL removes the hook. */
void vf_failpoint_set(const char *name, vf_failpoint_fn fn, void *arg);
void vf_failpoint_clear_all(void);
int vf_failpoint_hit(const char *name, const char *vol);

/* Names used:
 *  mgr.after_claim_start / mgr.after_claim_stop: a marker was just claimed
 *  mgr.stop_after_read: stop handler holds the state lock and read gref == 0
 *  mgr.stop_done: a stop handler has finished, whatever its outcome (the
 *    return value is ignored)
 *  mgr.reconcile_done: a pass of the reconciler thread has finished (vol "";
 *    the return value is ignored)
 *  mgr.pass_listed: a reconcile pass has its lists and this process's server
 *    value, before it looks at any volume (vol ""; the return value is
 *    ignored)
 *  mgr.lease_back: the manager resumed under a new lease (vol ""; ignored)
 *  mgr.before_start_txn: the server is up, state not yet Mounted
 *  vol.mount_before_txn: host mounted locally, the gref+1 txn not yet sent
 *  mgr.inconsistent: the reconciler is about to log gref != client count
 *  vol.unmount_before_txn: host unmounted its last id locally (locked path),
 *    the gref-1 txn not yet sent */

/* ---- key families ---- */
enum vol_key {
	VK_STATE = 0,
	VK_GREF,
	VK_INFO,
	VK_START_TRIGGER,
	VK_STOP_TRIGGER,
	VK_START_MARKER,
	VK_STOP_MARKER,
	VK_START_CLAIM,
	VK_STOP_CLAIM,
	VK_SERVER,
	VK_NKEYS
};
extern const char *const vf_vol_family[VK_NKEYS];

/* One small table entry per volume busy in this process (serialises the
 * process's own operations on one volume: one lease must not ask twice for
 * one lock). context.c */
struct vol_local {
	char name[VF_VOLUME_NAME_MAX + 16];
	int refs, busy;
	struct vol_local *next;
};

/* A store lock this process's lease may hold without knowing it (context.c). */
struct vol_dirty {
	char which[8];
	char vol[VF_VOLUME_NAME_MAX + 1];
	char lease_id[64];
	struct vol_dirty *next;
};

/* What the manager side does for the process context (context.c calls them,
 * manager.c installs them with ctx->mgr; called only while ctx->mgr is set). */
struct vf_mgr_hooks {
	void (*lease_lost)(struct vf_ctx *ctx); /* stop every server, no store access */
	void (*lease_back)(struct vf_ctx *ctx); /* new lease: resume and reconcile */
	/* open watches and served volumes (caller holds ctx->mu) */
	void (*status)(struct vf_ctx *ctx, int *watchers_r, int *servers_r);
	void (*stop)(struct vf_ctx *ctx);
};

struct vf_ctx {
	struct vf_kv *kv;
	char *node_id, *node_addr, *prefix, *mount_root;
	int manager, lease_ttl_s, op_timeout_ms, reconcile_ms;
	int evict_after_s; /* managers: evict hosts without a lease this long (0: never) */
	int64_t started_s; /* wall clock of vf_ctx_new, in node/<node> */
	const struct vf_fs_ops *fs;
	void *fs_arg;

	/* the process lease: readers use it, the lease thread replaces it */
	pthread_rwlock_t lease_rw;
	struct vf_kv_lease *lease;
	char lease_id[64];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int lease_lost, stopping;
	unsigned lease_gen;
	pthread_t lease_thr;
	int lease_thr_started;

	/* store locks this process's lease may hold without knowing it (a lock
	 * whose answer was lost, an unlock that failed): released by the lease
	 * thread (see vf_vol_lock) */
	struct vol_dirty *dirty;

	/* volumes busy in this process, volumes mounted locally */
	struct vol_local *locals;
	pthread_cond_t local_cv;
	char **mounted;
	size_t nmounted;
	int nwaits; /* mounts waiting on a state watch (under mu) */

	/* what this host's own last mount/unmount of a volume saw (lock elision,
	 * see vol_memo in volume.c); under mu */
	struct vol_memo *memo;
	unsigned long memo_tick;

	/* manager side (manager.c), and its hooks (set with mgr); mgr_mu
	 * serialises its start and stop (a runtime promotion or demotion) with
	 * the lease thread's calls into it */
	struct mgr *mgr;
	const struct vf_mgr_hooks *mgr_hooks;
	pthread_mutex_t mgr_mu;
	int lease_renew; /* under mu: the lease is dropped on purpose (a demotion) */

	/* host convergence (volume.c): mount ids whose release the store has
	 * not taken yet, retried by conv_thr (under mu; conv_cv wakes it) */
	struct vol_pending *pending;
	unsigned long pend_seq;
	pthread_cond_t conv_cv;
	pthread_t conv_thr;
	int conv_started, conv_startup; /* conv_startup: the start-up check to redo */

	/* automatic eviction (src/lib/node.c): hosts seen without a lease, by the
	 * manager's reconciler thread only */
	struct node_gone *gone;
};

/* Key "<prefix><family>/<vol>" into buf. */
void vf_vol_key(const struct vf_ctx *ctx, char *buf, size_t size, int family, const char *vol);
/* Parse a decimal counter value (absent/empty is 0). */
int64_t vf_vol_num(const struct vf_kv_result *r);
/* Lock name "<prefix>lock/<which>/<vol>" of lock which ("gref", "state") of vol. */
void vf_vol_lock_name(const struct vf_ctx *ctx, char *buf, size_t size, const char *which,
                      const char *vol);
/* The process context (context.c): grant the lease (and announce the node);
 * the lease thread (vf_ctx_new starts it). */
int vf_ctx_grant(struct vf_ctx *ctx, struct vf_err *err);
void *vf_ctx_lease_thread(void *arg);
/* Take/release the process-local mutex of lock which ("gref", "state") of vol:
 * one process never asks twice at once for one store lock (its threads share
 * one lease). try: do not wait, return 0 if busy. Returns 1 when entered. */
int vf_vol_local_enter(struct vf_ctx *ctx, const char *which, const char *vol, int try);
void vf_vol_local_leave(struct vf_ctx *ctx, const char *which, const char *vol);
/* The lease to use now (hold lease_rw for reading around its use). */
struct vf_kv_lease *vf_ctx_lease_get(struct vf_ctx *ctx);
void vf_ctx_lease_put(struct vf_ctx *ctx);
/* An operation found lease gone (VF_ELEASE): re-grant now, not at the next
 * keep-alive. */
void vf_ctx_lease_gone(struct vf_ctx *ctx, struct vf_kv_lease *lease);
/* The lease generation (grows with every grant); wait (bounded by the
 * vf_now_ms deadline) until it moves past gen. */
unsigned vf_ctx_lease_gen(struct vf_ctx *ctx);
void vf_ctx_lease_wait(struct vf_ctx *ctx, unsigned gen, int64_t deadline);
/* lock()/unlock() of lock which ("gref", "state") of vol, with the caller's
 * lease, for every volume-manager lock (call it inside vf_vol_local_enter of
 * the same which/vol). VF_ELEASE re-grants at once (vf_ctx_lease_gone). A lock
 * whose outcome is unknown (uncertain, unreachable mid-way, timed out) or an
 * unlock that failed may leave the store lock held by this lease (Consul: our
 * session holds it; etcd: our waiter key stays queued), blocking every OTHER
 * node until the lease ends: such a lock is noted and the lease thread takes
 * and releases it (try-lock + unlock, under the local mutex) as soon as the
 * store answers. */
int vf_vol_lock(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *which, const char *vol,
                int timeout_ms, const char *const *reads, size_t nreads,
                struct vf_kv_result *reads_r, struct vf_kv_lock **lock_r, struct vf_err *err);
/* lock_many() of lock which of every vol in vols (the caller is inside the
 * local mutex of each): all or nothing, never waiting, only if cmps hold.
 * VF_ENOTSUP when the backend has no lock_many. Unknown outcomes are noted as
 * vf_vol_lock does, for each name. */
int vf_vol_lock_many(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *which,
                     const char *const *vols, size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                     struct vf_kv_lock **locks_r, struct vf_err *err);
void vf_vol_unlock(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *which,
                   const char *vol, struct vf_kv_lock **lock);
/* Locks noted as possibly left held (tests). */
size_t vf_vol_dirty_count(struct vf_ctx *ctx);
/* A kv slot that may be NULL: VF_ENOTSUP. */
int vf_vol_need(const struct vf_ctx *ctx, const void *slot, const char *what, struct vf_err *err);

/* info/<vol> with the serving node and address set (options kept). */
int vf_vol_info_with_server(const char *vol, const char *info, const char *node, const char *addr,
                            int port, char **out_r, struct vf_err *err);
/* Value of server/<vol> written by this process under its current lease. */
void vf_vol_server_value(struct vf_ctx *ctx, char *buf, size_t size);

/* ---- shared by the host-side files (volume.c, keys.c, memo.c, converge.c,
 * admin.c): not for other callers ---- */
/* Bounds on mount ids (doc/reliability.md, "Input bounds"): every mount rewrites
 * client/<vol>/<node>, so its size is bounded by both. */
#define VOL_ID_MAX 64   /* bytes; Docker's ids are 64 hex digits (= VF_PLUGIN_ID_MAX) */
#define VOL_IDS_MAX 256 /* ids of one host on one volume */
struct vol_ids {
	char **v;
	size_t n;
};

#define VOL_MEMO_N 64
#define VOL_MEMO_ID 128
struct vol_memo {
	char vol[VF_VOLUME_NAME_MAX + 1];
	int valid;  /* the versions below are this host's last view */
	int missed; /* the last guess failed: wait for a quiet locked op */
	int64_t state_rev, gref, gref_rev, client_rev, info_rev, server_rev;
	char id[VOL_MEMO_ID]; /* the host's one mount id when client_rev != 0 */
	char *info;           /* the info value (what a local mount needs) */
	unsigned long used;
};

/* keys.c (names, options, keys, JSON documents) */
int vol_check_name(const char *name, struct vf_err *err);
int vol_check_opts(const char *name, const struct vf_opt *opts, size_t n, struct vf_err *err);
void vol_client_key(const struct vf_ctx *ctx, char *buf, size_t size, const char *vol,
                    const char *node);
int vol_client_rewrite(struct vf_ctx *ctx, struct vf_kv_lock *lk, const char *key, int64_t mod_rev,
                       const char *cval, struct vf_err *err);
int vol_client_value(struct vf_ctx *ctx, const struct vol_ids *ids, const char *add,
                     const char *skip, char **out_r, struct vf_err *err);
int vol_ids_find(const struct vol_ids *ids, const char *id);
void vol_ids_free(struct vol_ids *ids);
int vol_ids_parse(const char *vol, const struct vf_kv_result *r, struct vol_ids *ids);
int vol_info_gen(const char *vol, const struct vf_opt *opts, size_t nopts, yajl_val optv,
                 const char *node, const char *addr, int port, char **out_r, struct vf_err *err);
int vol_res_is(const struct vf_kv_result *r, const char *s);
/* memo.c (lock elision memo) */
void vol_memo_drop(struct vf_ctx *ctx, const char *vol, int missed);
void vol_memo_free(struct vf_ctx *ctx);
int vol_memo_get(struct vf_ctx *ctx, const char *vol, struct vol_memo *m_r);
void vol_memo_put(struct vf_ctx *ctx, const struct vol_memo *nm, int64_t seen_gref_rev);
void vol_memo_unmounted(struct vf_ctx *ctx, const char *vol, int64_t g, int64_t gref_rev,
                        int64_t seen_gref_rev);
/* converge.c (host convergence) */
void *ctx_converge_thread(void *arg);
int vol_conv_retryable(int rc);
void vol_converge_startup(struct vf_ctx *ctx);
void vol_pend_add(struct vf_ctx *ctx, const char *vol, const char *id, int local_done);
int vol_pend_cancel(struct vf_ctx *ctx, const char *vol, const char *id);
void vol_pend_free(struct vf_ctx *ctx);
/* volume.c (local mounts, mount and unmount) */
int vol_fs_unmount(struct vf_ctx *ctx, const char *vol, const char *path, struct vf_err *err);
int vol_local_mounted(struct vf_ctx *ctx, const char *vol);
void vol_local_set(struct vf_ctx *ctx, const char *vol, int on);
int vol_probe(struct vf_ctx *ctx, const char *vol, const char *path);
int vol_unmount_once(struct vf_ctx *ctx, const char *name, const char *mount_id, const char *path,
                     int64_t deadline, int *unmounted, int *local_err, struct vf_err *err);

/* ---- host convergence (converge.c) ----
 * A host converges its client records to its real mounts by itself: an unmount
 * whose store part failed (store unreachable, outcome unknown, a lost fence)
 * is answered with success once the local unmount is done or still to do, and
 * the release of its mount id is retried in the background (VOL_CONV_MIN_MS
 * doubling to VOL_CONV_MAX_MS) until the store takes it; on start, ids the
 * store holds for this host with no local mount are released the same way, and
 * local mounts of volumes the host holds no id of are unmounted. */
#define VOL_CONV_MIN_MS 250
#define VOL_CONV_MAX_MS 5000
/* ...and every VOL_CONV_SWEEP_MS a host unmounts local mounts no id of it
 * stands for (an sshfs that completed a mount after its daemon was killed may
 * finish after the start-up check). Tests may shorten it (before vf_ctx_new). */
#define VOL_CONV_SWEEP_MS 30000
void vf_vol_sweep_period_set(int ms);
/* Is vol mounted at path on this host? 1 yes, 0 no, -1 cannot tell (a driver
 * that mounts nothing). NULL (default): the driver's answer (its vf_fs_ops
 * mounted slot). Set by tests and test drivers, before vf_ctx_new. */
typedef int (*vf_vol_probe_fn)(void *fs_arg, const char *vol, const char *path);
void vf_vol_mount_probe_set(vf_vol_probe_fn fn);
/* Mount ids of this process whose release is still to be retried (tests). */
size_t vf_vol_pending_count(struct vf_ctx *ctx);
/* Is the release of mount id `id` of vol still to be retried? (tests) */
int vf_vol_pending_has(struct vf_ctx *ctx, const char *vol, const char *id);

/* ---- hosts (src/lib/node.c) ---- */
/* Key "<prefix>node/<node>" into buf. */
void vf_node_key(const struct vf_ctx *ctx, char *buf, size_t size, const char *node);
/* Put node/<this node> with lease (role, address, start time, lease id). */
int vf_node_announce(struct vf_ctx *ctx, struct vf_kv_lease *lease, struct vf_err *err);
/* One automatic-eviction step (manager reconciler, after each pass): hosts
 * with client keys and no node key for evict_after_s are evicted. */
struct node_gone;
void vf_node_auto_evict(struct vf_ctx *ctx, struct node_gone **gone);
void vf_node_gone_free(struct node_gone **gone);

/* On start, with dockerd's view (vfiled): every mount id this host holds for a
 * volume for which in_use(arg, vol) is 0 (no container uses it) is released
 * through the unmount path (gref stays exact; the last one unmounts locally).
 * in_use < 0: unknown, kept. The count of ids released in *released_r. A store
 * error listing the client records is returned (nothing released). */
int vf_vol_release_unused(struct vf_ctx *ctx, int (*in_use)(void *arg, const char *vol), void *arg,
                          size_t *released_r, struct vf_err *err);

/* manager.c */
int vf_mgr_start(struct vf_ctx *ctx, struct vf_err *err);
void vf_mgr_stop(struct vf_ctx *ctx);
/* Lease lost: stop every server this process runs (no store access). */
void vf_mgr_lease_lost(struct vf_ctx *ctx);
/* New lease: resume and reconcile. */
void vf_mgr_lease_back(struct vf_ctx *ctx);
/* Open manager watches and served volumes (caller holds ctx->mu: ctx->mgr is
 * set and cleared under it). */
void vf_mgr_status(struct vf_ctx *ctx, int *watchers_r, int *servers_r);
/* Run one reconcile pass now, synchronously (tests). */
int vf_mgr_reconcile_now(struct vf_ctx *ctx, struct vf_err *err);

#endif
