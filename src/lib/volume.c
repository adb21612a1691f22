/*
 * The volume manager, host side: mount and unmount (here), with create, remove,
 * get and list (admin.c), names, options, keys and documents (keys.c), the lock
 * elision memo (memo.c), host convergence (converge.c), failpoints
 * (failpoint.c), over the process context, lease and lock layer (context.c).
 * The manager side (trigger watchers, handlers, reconciler) is manager.c,
 * handlers.c and reconcile.c.
 *
 * ---- Keys (under cfg->prefix, default "vfile/"), for doc/protocol.pml ----
 *  state/<vol>          "Ready" | "Mounted"; written only under lock/state/<vol>
 *                       (create and remove excepted: create needs it absent).
 *  gref/<vol>           decimal count of hosts with the volume mounted.
 *  client/<vol>/<node>  {"addr":"<node addr>","ids":["<mount id>",...]}: the host's
 *                       mount ids live in the store, so they survive a daemon restart.
 *                       The FIRST id of a host takes the global reference (gref+1);
 *                       later ids only rewrite this value; the LAST id drops it.
 *                       gref == number of client keys, always (same txn).
 *  info/<vol>           {"name":..,"options":{..},"server":{"node":..,"addr":..,"port":N}}
 *  start_trigger/<vol>, stop_trigger/<vol>  decimal counters bumped by hosts.
 *  start_marker/<vol>, stop_marker/<vol>    last trigger value a manager claimed.
 *  start_claim/<vol>, stop_claim/<vol>      "<node> <lease> <value>" put WITH the
 *                       claimant's lease in the claim txn, rewritten to "done <value>"
 *                       (no lease) when the handler finished. A marker > 0 whose
 *                       claim key is ABSENT means the claimant died: re-claimable.
 *  server/<vol>         "<node> <lease>" of the manager serving the volume, put with
 *                       its lease: a Mounted state without it = the server died.
 *  lock/gref/<vol>, lock/state/<vol>        lock names (the backend's own keys).
 *
 * ---- Write order ----
 * mount(H, id):   [local mutex per volume in this process]
 *   1 lock(gref, reads state,gref,client/H,info,start_trigger,server)
 *   id already in client/H: unlock, done.  client/H has other ids: txn
 *   [LOCK_HELD, VERSION_EQ client/H] put client/H(+id), UNLOCK.  (2 round trips)
 *   warm (state==Mounted and server present): local mount; txn [LOCK_HELD,
 *   VERSION_EQ state, VERSION_EQ server (both as read: Mounted with a server;
 *   by value a stop plus a new start in between would pass, ABA), VERSION_EQ
 *   gref] put gref+1, put client/H, UNLOCK (2 round trips).
 *   cold: txn [LOCK_HELD, VERSION_EQ start_trigger] put start_trigger+1; watch
 *   state/<vol> until state==Mounted and server present (bounded by op_timeout),
 *   re-reading state, server, start_marker, start_claim on every event: if the
 *   marker reached our bump and the claim is absent or "done" (our start was
 *   handled) but the state is not Mounted with a server (a stop under way
 *   flipped it back), unlock and ask again from 1. Then local mount; the same
 *   final txn. If it fails on "state==Mounted" (a stop flipped it) the local
 *   mount is undone and the mount retries from 1 (likewise on the state or
 *   server/ version). Retries (and a re-run after
 *   VF_ELEASE with the re-granted lease) are bounded by the op deadline.
 *   On time-out: txn [LOCK_HELD, VERSION_EQ stop_trigger] put stop_trigger+1 (a
 *   server started late is stopped), unlock, VF_ETIMEDOUT.
 *   Elided (see vol_memo): H not a client yet and a remembered view: local mount
 *   with the remembered info; txn [LOCK_FREE gref, VERSION_EQ state, gref, client/H
 *   (absent), info, server] put gref+1, put client/H.  (1 round trip; if it fails:
 *   local unmount, then the locked way above)
 * unmount(H, id): elided (see vol_memo) for H's one id while the remembered gref
 *   >= 2: local unmount; txn [LOCK_FREE gref, VERSION_EQ gref, client/H] put
 *   gref-1, delete client/H (1 round trip; if it fails: the locked way below).
 *   1 lock(gref, reads state,gref,client/H,stop_trigger)
 *   other ids left: txn [LOCK_HELD, VERSION_EQ client/H] put client/H(-id), UNLOCK.
 *   last id: local unmount; txn [LOCK_HELD, VERSION_EQ gref, VERSION_EQ client/H,
 *   VERSION_EQ stop_trigger] put gref-1, delete client/H, put stop_trigger+1 (only
 *   when gref reaches 0: a stop can only act then), UNLOCK.  (2 round trips)
 *   id not counted, no id of H counted: local unmount if the mount table (not
 *   this process's memory) says mounted.
 *   The store part failing (unreachable, uncertain and unreadable, a lost
 *   fence, no lock): answered OK, the id released by the converge thread
 *   (the same path, 250 ms doubling to 5 s) until the store takes it; a mount
 *   of the same id voids that. On start: ids of H for volumes not mounted here
 *   are released so; mounts under mount_root no id of H stands for are
 *   unmounted (again every 30 s for mounts this process did not make).
 * Records of this node under an EARLIER lease of its own (server/, claims) count
 *   as absent everywhere below: that lease is gone for this process.
 * claim (manager, one per trigger): one txn reads trigger, marker, claim, server;
 *   a stop is claimed only by the manager server/<vol> names, or by any when it
 *   is absent; our own unfinished claim (same lease) is taken up again as is;
 *   else txn [VERSION_EQ marker (as read)] put marker=trigger, put claim
 *   (lease), only when trigger > marker (strictly up), or when marker > 0 and
 *   the claim is absent (orphan: [.., ABSENT claim], marker rewritten with the
 *   same value; our claim of an earlier lease: [.., VERSION_EQ claim]). The handler
 *   then runs; its end: txn [VALUE_EQ claim] put "done <n>" (ok) or delete the
 *   claim (error: an orphan, which the reconciler claims again).
 * start (manager, claim won): lock(state, reads state,gref,info,server); removed:
 *   nothing; Mounted with server: nothing; server/ of another live manager and
 *   not Mounted (the old incarnation's server of a removed and re-created volume
 *   still runs): VF_EBUSY, the claim is dropped and retried until that manager
 *   deleted the key; ours, not Mounted: stop our server first; restart job and
 *   not Mounted: nothing; else fs start; txn [LOCK_HELD, VERSION_EQ state] put
 *   info(+server), put server (lease), put state=Mounted, UNLOCK.
 * stop (manager, claim won): lock(state, reads state,gref,info,server); removed
 *   or not Mounted: stop our server if we run one, delete server/ if it names us
 *   (txn [VALUE_EQ ours]); server/ names another live manager (it started after
 *   our claim read server/ empty): VF_ECONFLICT, the claim is dropped and the
 *   serving manager re-claims the orphan; gref > 0: nothing; else txn
 *   [LOCK_HELD, VERSION_EQ gref (as read), VALUE_EQ state "Mounted"] put
 *   state=Ready, delete server -- NO UNLOCK: the state lock stays held until our
 *   server is down (so no start can run a second one meanwhile); then unlock. A
 *   server whose server/ key another stop deleted (the key of a dead lease) is
 *   stopped by its manager on the DELETE through its server/ watch (check).
 * check (manager: a server/ event other than our own PUT for a volume we serve,
 *   a start trigger of a volume we serve, a reconcile pass): read state, server;
 *   server/ not ours: stop our server; ours and state absent or not Mounted:
 *   stop our server, then txn [VALUE_EQ ours] delete server/<vol>.
 * orphan-stop (reconciler: a volume this process does not serve, fs->running
 *   says a server of it runs here (left by a daemon that crashed) and server/
 *   names another node): re-read server/; still another node's: fs stop. Never
 *   when server/ names this node or is absent.
 * restart (reconciler: Mounted, server/ absent, no live start claim, a host
 *   counted): the start above without a claim, doing nothing unless still Mounted.
 *   Batched when the backend has lock_many (src/lib/handlers.c): the volumes one pass
 *   finds go K at a time (K = max_txn_ops / 5): lock_many(their state locks,
 *   [VERSION_EQ state as listed, ABSENT server] each: all or nothing); their
 *   info as listed (info/ is listed once, after state/: info is only written
 *   together with state, so the state compare covers it); the servers started;
 *   one txn [LOCK_HELD] x K: the start's puts x K, UNLOCK x K (state cannot
 *   change under its lock). That is K single restarts at one instant (no new
 *   interleaving); a lock held or a compare failed sends the batch back to
 *   single restarts, a failed record txn is redone volume by volume.
 * idle-stop (reconciler: Mounted with a server, no host, nothing pending, for two
 *   passes; or Mounted, no server and no host): try-lock(gref, reads gref,state,
 *   stop_trigger); gref==0 and Mounted: txn [LOCK_HELD, VERSION_EQ gref,
 *   VERSION_EQ stop_trigger] put stop_trigger+1, UNLOCK.
 * locks: a lock or unlock request whose answer was lost (EUNCERTAIN, EUNAVAIL,
 *   ETIMEDOUT, EPROTO) may have left the lock held under our lease: the lease
 *   thread takes and releases it again (under the local mutex), every 0.5 s
 *   while the store does not answer.
 * remove: lock(gref, reads state,gref), lock(state); list client/<vol>/;
 *   refuse VF_EBUSY naming the hosts while gref > 0 or clients exist; else txn
 *   [both LOCK_HELD, VERSION_EQ gref] delete every key of the volume but
 *   server/<vol> (it belongs to the serving manager's lease), UNLOCK x2. A server
 *   still running (its stop was under way) is stopped by its manager, which then
 *   deletes server/<vol> (VALUE_EQ its own value): in its stop handler, its check
 *   and every reconcile pass (above). A start that finds server/<vol> of another
 *   live manager with the state not Mounted waits (above): a re-created volume
 *   never gets a second server while the old incarnation's still runs.
 * create: txn [ABSENT state] put state=Ready, gref=0, info. Compare failed (the
 *   volume exists: two swarm tasks racing to create it) or outcome unknown: one
 *   txn reads state and info; the same options (as a set of key=value) is
 *   success, others are VF_ECONFLICT naming each difference; absent (removed
 *   meanwhile, or our uncertain txn did not land): create again (8 tries).
 */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "metrics_int.h"
#include "volume_int.h"
#include "fs_int.h"

const char *const vf_vol_family[VK_NKEYS] = {
        "state",        "gref",        "info",        "start_trigger", "stop_trigger",
        "start_marker", "stop_marker", "start_claim", "stop_claim",    "server"};

/* ---- locally mounted volumes ---- */
int vol_local_mounted(struct vf_ctx *ctx, const char *vol)
{
	int r = 0;

	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < ctx->nmounted; i++)
		r |= strcmp(ctx->mounted[i], vol) == 0;
	pthread_mutex_unlock(&ctx->mu);
	return r;
}

void vol_local_set(struct vf_ctx *ctx, const char *vol, int on)
{
	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < ctx->nmounted; i++)
		if (strcmp(ctx->mounted[i], vol) == 0) {
			if (!on) {
				free(ctx->mounted[i]);
				ctx->mounted[i] = ctx->mounted[--ctx->nmounted];
				vf_metrics_gauge_set(VF_G_LOCAL_MOUNTS, (int64_t)ctx->nmounted);
			}
			pthread_mutex_unlock(&ctx->mu);
			return;
		}
	if (on) {
		char **v = realloc(ctx->mounted, (ctx->nmounted + 1) * sizeof(*v));

		if (v) {
			ctx->mounted = v;
			if ((v[ctx->nmounted] = strdup(vol)) != NULL)
				ctx->nmounted++;
		}
	}
	vf_metrics_gauge_set(VF_G_LOCAL_MOUNTS, (int64_t)ctx->nmounted);
	pthread_mutex_unlock(&ctx->mu);
}

static vf_vol_probe_fn vol_probe_hook;

void vf_vol_mount_probe_set(vf_vol_probe_fn fn)
{
	vol_probe_hook = fn;
}

/* Is vol mounted at path here: 1, 0, -1 cannot tell (see vf_vol_probe_fn). */
int vol_probe(struct vf_ctx *ctx, const char *vol, const char *path)
{
	if (vol_probe_hook)
		return vol_probe_hook(ctx->fs_arg, vol, path);
	if (ctx->fs && ctx->fs->mounted)
		return ctx->fs->mounted(ctx->fs_arg, vol, path);
	return -1;
}

/* Is vol mounted here? The mount table when the driver can tell (it survives a
 * restart of this process), else what this process did. */
static int vol_mounted_here(struct vf_ctx *ctx, const char *vol, const char *path)
{
	int p = vol_probe(ctx, vol, path);

	return p >= 0 ? p : vol_local_mounted(ctx, vol);
}

/* Does the filesystem at path answer? statvfs reaches the server of a network
 * mount (stat may be answered from a cache); a dead FUSE daemon fails it. */
static int vol_mount_answers(const char *path)
{
	struct statvfs sv;

	return statvfs(path, &sv) == 0;
}

static int vol_fs_mount(struct vf_ctx *ctx, const char *vol, const char *info, const char *path,
                        struct vf_err *err)
{
	int rc;

	if (ctx->fs == NULL || ctx->fs->mount == NULL)
		return vf_err_set(err, VF_ENOTSUP, "volume %s: no file-server mount hook", vol);
	if (mkdir(path, 0755) != 0 && errno != EEXIST && errno != ENOENT)
		vf_log(VF_LOG_WARN, "volume %s: mkdir %s: %s", vol, path, strerror(errno));
	rc = ctx->fs->mount(ctx->fs_arg, vol, info, path, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "volume %s: local mount at %s failed", vol, path);
	vol_local_set(ctx, vol, 1);
	return VF_OK;
}

int vol_fs_unmount(struct vf_ctx *ctx, const char *vol, const char *path, struct vf_err *err)
{
	int rc = VF_OK;

	if (ctx->fs && ctx->fs->unmount)
		rc = ctx->fs->unmount(ctx->fs_arg, vol, path, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "volume %s: local unmount of %s failed", vol, path);
	vol_local_set(ctx, vol, 0);
	return VF_OK;
}

/* ---- waiting for the state, with a watch ---- */
struct vol_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *key;
	int changed;
};

static int vol_wait_cb(const struct vf_kv_event *ev, void *arg)
{
	struct vol_wait *w = arg;

	if (ev->type == VF_EV_RESYNC || strcmp(ev->key, w->key) == 0) {
		pthread_mutex_lock(&w->mu);
		w->changed = 1;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
	return 0;
}

enum { R_STATE = 0, R_GREF, R_CLIENT, R_INFO, R_TRIG, R_SERVER, R_N };

/* Wait until state/<vol> is Mounted with a live server (bounded by deadline);
 * then rr[R_STATE], rr[R_GREF], rr[R_INFO], rr[R_SERVER] hold fresh reads. */
static int vol_wait_mounted(struct vf_ctx *ctx, const char *vol, char keys[R_N][512],
                            int64_t after_rev, int64_t bumped, int64_t deadline,
                            struct vf_kv_result *rr, int *retry_r, struct vf_err *err)
{
	char kmark[512], kclaim[512];
	struct vol_wait w = {.key = keys[R_STATE]};
	struct vf_kv_watch *watch = NULL;
	int rc;

	vf_vol_key(ctx, kmark, sizeof(kmark), VK_START_MARKER, vol);
	vf_vol_key(ctx, kclaim, sizeof(kclaim), VK_START_CLAIM, vol);
	pthread_mutex_init(&w.mu, NULL);
	vf_cond_init(&w.cv);
	rc = ctx->kv->ops->watch_start(ctx->kv, keys[R_STATE], after_rev, vol_wait_cb, &w, &watch,
	                               err);
	if (rc == VF_OK) {
		pthread_mutex_lock(&ctx->mu);
		ctx->nwaits++;
		pthread_mutex_unlock(&ctx->mu);
	}
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot watch %s", vol, keys[R_STATE]);
		goto out;
	}
	for (;;) {
		struct vf_kv_op ops[] = {{.kind = VF_OP_GET, .key = keys[R_STATE]},
		                         {.kind = VF_OP_GET, .key = keys[R_GREF]},
		                         {.kind = VF_OP_GET, .key = keys[R_INFO]},
		                         {.kind = VF_OP_GET, .key = keys[R_SERVER]},
		                         {.kind = VF_OP_GET, .key = kmark},
		                         {.kind = VF_OP_GET, .key = kclaim}};
		struct vf_kv_txn_result res = {0};
		int64_t left;

		pthread_mutex_lock(&w.mu);
		w.changed = 0;
		pthread_mutex_unlock(&w.mu);
		rc = ctx->kv->ops->txn(ctx->kv, NULL, 0, ops, 6, &res, err);
		if (rc == VF_OK && res.count == 6) {
			if (!res.results[0].found) {
				rc = vf_err_set(err, VF_ENOTFOUND,
				                "volume %s was removed while mounting", vol);
			} else if (vol_res_is(&res.results[0], "Mounted") && res.results[3].found) {
				int idx[] = {R_STATE, R_GREF, R_INFO, R_SERVER};

				for (int i = 0; i < 4; i++) {
					vf_kv_results_clear(&rr[idx[i]], 1);
					rr[idx[i]] = res.results[i];
					memset(&res.results[i], 0, sizeof(res.results[i]));
				}
				vf_kv_txn_result_clear(&res);
				goto out;
			} else if (vf_vol_num(&res.results[4]) >= bumped &&
			           (!res.results[5].found ||
			            strncmp(res.results[5].pair.value, "done ", 5) == 0)) {
				/* our start was handled, then the state went back to Ready (a
				 * stop that was already under way): ask again */
				*retry_r = 1;
				rc = vf_err_set(err, VF_ECONFLICT,
				                "volume %s: stopped again while mounting", vol);
			}
		} else if (rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN) {
			rc = VF_OK; /* a read: try again on the next wake-up */
		}
		vf_kv_txn_result_clear(&res);
		if (rc != VF_OK)
			goto out;
		left = deadline - vf_now_ms();
		if (left <= 0) {
			rc = vf_err_set(err, VF_ETIMEDOUT,
			                "volume %s: no file server came up within %d ms", vol,
			                ctx->op_timeout_ms);
			goto out;
		}
		pthread_mutex_lock(&w.mu);
		if (!w.changed) {
			int64_t step =
			        left < 1000 ? left : 1000; /* also re-reads after a lost store */

			vf_cond_wait_ms(&w.cv, &w.mu, step);
		}
		pthread_mutex_unlock(&w.mu);
	}
out:
	if (watch) {
		ctx->kv->ops->watch_stop(ctx->kv, &watch);
		pthread_mutex_lock(&ctx->mu);
		ctx->nwaits--;
		pthread_mutex_unlock(&ctx->mu);
	}
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

/* Bump a trigger counter under the held gref lock (fenced). */
static int vol_bump(struct vf_ctx *ctx, struct vf_kv_lock *lk, const char *key,
                    const struct vf_kv_result *cur, int64_t *rev_r, struct vf_err *err)
{
	char val[32];
	struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lk},
	                        {.kind = VF_CMP_VERSION_EQ,
	                         .key = key,
	                         .mod_rev = cur->found ? cur->pair.mod_rev : 0}};
	struct vf_kv_op op = {.kind = VF_OP_PUT, .key = key, .value = val};
	struct vf_kv_txn_result res = {0};
	int rc;

	op.value_len = (size_t)snprintf(val, sizeof(val), "%" PRId64, vf_vol_num(cur) + 1);
	rc = ctx->kv->ops->txn(ctx->kv, c, 2, &op, 1, &res, err);
	if (rc == VF_OK && rev_r)
		*rev_r = res.revision;
	vf_kv_txn_result_clear(&res);
	return rc;
}

static int64_t vol_left(int64_t deadline)
{
	int64_t l = deadline - vf_now_ms();

	return l > 0 ? l : 1;
}

/* Is mount_id in the client value now? (resolves an uncertain final txn) */
static int vol_client_has(struct vf_ctx *ctx, const char *vol, const char *key, const char *id,
                          int *has_r)
{
	struct vf_kv_result r = {0};
	struct vol_ids ids;
	int rc = ctx->kv->ops->get(ctx->kv, key, &r.pair, NULL);

	if (rc == VF_ENOTFOUND) {
		*has_r = 0;
		return VF_OK;
	}
	if (rc != VF_OK)
		return rc;
	r.found = 1;
	rc = vol_ids_parse(vol, &r, &ids);
	*has_r = rc == VF_OK && vol_ids_find(&ids, id) >= 0;
	vol_ids_free(&ids);
	vf_kv_results_clear(&r, 1);
	return rc;
}

#define VOL_LOCKED 1 /* an elided operation did not happen: go the locked way */

/* Remember what a mount of vol by id saw (rr as read, the txn's results) */
static void vol_memo_mounted(struct vf_ctx *ctx, const char *vol, const char *id,
                             const struct vf_kv_result *rr, int64_t gref,
                             const struct vf_kv_txn_result *tr)
{
	struct vol_memo m = {0};

	if (tr->count < 2 || !rr[R_INFO].found || !rr[R_SERVER].found ||
	    strlen(id) >= sizeof(m.id)) {
		vol_memo_drop(ctx, vol, 0);
		return;
	}
	snprintf(m.vol, sizeof(m.vol), "%s", vol);
	snprintf(m.id, sizeof(m.id), "%s", id);
	m.valid = 1;
	m.state_rev = rr[R_STATE].pair.mod_rev;
	m.gref = gref;
	m.gref_rev = tr->results[0].pair.mod_rev;
	m.client_rev = tr->results[1].pair.mod_rev;
	m.info_rev = rr[R_INFO].pair.mod_rev;
	m.server_rev = rr[R_SERVER].pair.mod_rev;
	m.info = rr[R_INFO].pair.value;
	vol_memo_put(ctx, &m, rr[R_GREF].found ? rr[R_GREF].pair.mod_rev : 0);
}

/* The first mount of vol on this host as one txn (see vol_memo): mount with
 * the info remembered, then gref+1 and the client key, guarded by "no gref
 * lock holder" and the versions of state, gref, client (absent), info and
 * server. VOL_LOCKED when there is nothing to go on or the txn did not commit
 * (the local mount undone: the locked path finds the id counted if an
 * uncertain txn did land). */
static int vol_mount_elided(struct vf_ctx *ctx, const char *vol, const char *id, const char *path,
                            char keys[R_N][512], struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_txn_result tr = {0};
	struct vol_ids none = {0};
	struct vol_memo m;
	struct vf_err e2 = {0};
	char lname[512], gval[32], *cval = NULL;
	int rc;

	if (!vol_memo_get(ctx, vol, &m))
		return VOL_LOCKED;
	if (m.client_rev != 0) { /* another id of this host: the locked way adds it */
		free(m.info);
		return VOL_LOCKED;
	}
	if (vol_mounted_here(ctx, vol, path) ||
	    vol_fs_mount(ctx, vol, m.info, path, &e2) != VF_OK) {
		vol_memo_drop(ctx, vol, 0); /* the locked way reads info afresh */
		free(m.info);
		return VOL_LOCKED;
	}
	if (vf_failpoint_hit("vol.mount_before_txn", vol)) {
		rc = vf_err_set(err, VF_EUNAVAIL, "volume %s: failpoint vol.mount_before_txn", vol);
		goto undo;
	}
	vf_vol_lock_name(ctx, lname, sizeof(lname), "gref", vol);
	snprintf(gval, sizeof(gval), "%" PRId64, m.gref + 1);
	rc = vol_client_value(ctx, &none, id, NULL, &cval, err);
	if (rc == VF_OK) {
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_FREE, .key = lname},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_STATE], .mod_rev = m.state_rev},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_GREF], .mod_rev = m.gref_rev},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_CLIENT], .mod_rev = 0},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_INFO], .mod_rev = m.info_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_SERVER],
		         .mod_rev = m.server_rev}};
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = keys[R_GREF],
		                        .value = gval,
		                        .value_len = strlen(gval)},
		                       {.kind = VF_OP_PUT,
		                        .key = keys[R_CLIENT],
		                        .value = cval,
		                        .value_len = strlen(cval)}};

		rc = kv->ops->txn(kv, c, 6, o, 2, &tr, err);
	}
	if (rc == VF_OK && tr.count == 2) {
		snprintf(m.id, sizeof(m.id), "%s", id);
		m.gref++;
		m.gref_rev = tr.results[0].pair.mod_rev;
		m.client_rev = tr.results[1].pair.mod_rev;
		m.valid = strlen(id) < sizeof(m.id);
		vol_memo_put(ctx, &m, -1);
		goto out;
	}
	rc = VOL_LOCKED;
undo:
	vol_memo_drop(ctx, vol, 1);
	if (vol_fs_unmount(ctx, vol, path, &e2) != VF_OK)
		vf_log(VF_LOG_ERR, "%s", e2.msg);
out:
	vf_kv_txn_result_clear(&tr);
	free(cval);
	free(m.info);
	return rc;
}

/* This host already holds the global reference (ids: its mount ids): make
 * sure its mount answers, then add id to its client key (under the gref lock
 * lk), unless it is there already. */
static int vol_mount_add_id(struct vf_ctx *ctx, const char *vol, const char *id, const char *path,
                            struct vf_kv_lock *lk, char keys[R_N][512],
                            const struct vf_kv_result *rr, const struct vol_ids *ids,
                            struct vf_err *err)
{
	char *cval = NULL;
	int rc;

	/* this host already holds the global reference: its mount must also
	 * answer (a dead FUSE mount is in the table but fails with ENOTCONN;
	 * the driver's mount drops and remounts it) */
	if (!vol_mounted_here(ctx, vol, path) || !vol_mount_answers(path)) {
		rc = vol_fs_mount(ctx, vol, rr[R_INFO].pair.value, path, err);
		if (rc != VF_OK)
			return rc;
	}
	if (vol_ids_find(ids, id) >= 0)
		return VF_OK; /* this id is already counted */
	if (ids->n >= VOL_IDS_MAX)
		return vf_err_set(err, VF_ELIMIT,
		                  "volume %s: this host already holds %zu mount ids (limit %d): "
		                  "unmount some first",
		                  vol, ids->n, VOL_IDS_MAX);
	rc = vol_client_value(ctx, ids, id, NULL, &cval, err);
	if (rc != VF_OK)
		return rc;
	vol_memo_drop(ctx, vol, 0);
	rc = vol_client_rewrite(ctx, lk, keys[R_CLIENT], rr[R_CLIENT].pair.mod_rev, cval, err);
	if (rc == VF_EUNCERTAIN) {
		int has = 0;

		if (vol_client_has(ctx, vol, keys[R_CLIENT], id, &has) == VF_OK && has)
			rc = VF_OK;
	}
	if (rc != VF_OK)
		vf_err_prefix(err, "volume %s: cannot add mount id %s", vol, id);
	free(cval);
	return rc;
}

/* Cold: not Mounted with a server. Bump start_trigger (under the gref lock
 * lk) and wait until the volume is Mounted with a server (rr then holds fresh
 * reads); on time-out bump stop_trigger too. */
static int vol_mount_cold(struct vf_ctx *ctx, const char *vol, struct vf_kv_lock *lk,
                          char keys[R_N][512], struct vf_kv_result *rr, int64_t deadline,
                          int *retry_r, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	int64_t rev = 0;
	int rc;

	rc = vol_bump(ctx, lk, keys[R_TRIG], &rr[R_TRIG], &rev, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot bump %s", vol, keys[R_TRIG]);
		return rc;
	}
	rc = vol_wait_mounted(ctx, vol, keys, rev, vf_vol_num(&rr[R_TRIG]) + 1, deadline, rr,
	                      retry_r, err);
	if (rc == VF_ETIMEDOUT) {
		/* a server that comes up late must not run forever */
		struct vf_kv_result st = {0};
		char sk[512];

		vf_vol_key(ctx, sk, sizeof(sk), VK_STOP_TRIGGER, vol);
		if (kv->ops->get(kv, sk, &st.pair, NULL) == VF_OK)
			st.found = 1;
		vol_bump(ctx, lk, sk, &st, NULL, NULL);
		vf_kv_results_clear(&st, 1);
	}
	return rc;
}

/* The final txn of a locked mount, after the local mount: gref+1 and the
 * client key with id, guarded by the gref lock lk and the versions read; an
 * uncertain outcome read back. VF_OK: counted (the local mount stays). */
static int vol_mount_count(struct vf_ctx *ctx, const char *vol, const char *id,
                           struct vf_kv_lock *lk, char keys[R_N][512],
                           const struct vf_kv_result *rr, const struct vol_ids *ids, int *retry_r,
                           struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_txn_result tr = {0};
	char gval[32], *cval = NULL;
	int rc;

	rc = vol_client_value(ctx, ids, id, NULL, &cval, err);
	if (rc != VF_OK)
		return rc;
	snprintf(gval, sizeof(gval), "%" PRId64, vf_vol_num(&rr[R_GREF]) + 1);
	{
		/* state and server/ by the versions read (Mounted, with a server):
		 * a stop and a new start in between write "Mounted" again, and the
		 * local mount made above would be counted on the stopped server */
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_HELD, .lock = lk},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_STATE],
		         .mod_rev = rr[R_STATE].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_SERVER],
		         .mod_rev = rr[R_SERVER].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_GREF],
		         .mod_rev = rr[R_GREF].found ? rr[R_GREF].pair.mod_rev : 0},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_CLIENT],
		         .mod_rev = rr[R_CLIENT].found ? rr[R_CLIENT].pair.mod_rev : 0}};
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = keys[R_GREF],
		                        .value = gval,
		                        .value_len = strlen(gval)},
		                       {.kind = VF_OP_PUT,
		                        .key = keys[R_CLIENT],
		                        .value = cval,
		                        .value_len = strlen(cval)},
		                       {.kind = VF_OP_UNLOCK, .lock = lk}};

		rc = kv->ops->txn(kv, c, 5, o, 3, &tr, err);
	}
	if (rc == VF_OK)
		vol_memo_mounted(ctx, vol, id, rr, vf_vol_num(&rr[R_GREF]) + 1, &tr);
	else
		vol_memo_drop(ctx, vol, 0);
	vf_kv_txn_result_clear(&tr);
	if (rc == VF_ECONFLICT) {
		/* the state or the server changed under us (a stop won, maybe a
		 * new start too): undo, go again */
		vf_log(VF_LOG_INFO,
		       "volume %s: state changed before the reference was taken; "
		       "retrying",
		       vol);
		*retry_r = 1;
	} else if (rc == VF_EUNCERTAIN) {
		int has = 0;

		if (vol_client_has(ctx, vol, keys[R_CLIENT], id, &has) == VF_OK && has)
			rc = VF_OK;
	}
	if (rc != VF_OK)
		vf_err_prefix(err, "volume %s: cannot take the global reference", vol);
	free(cval);
	return rc;
}

/* One try of a mount: the elided way, else under the gref lock (another id of
 * this host, or cold then warm: the local mount and the final txn, the local
 * mount undone when not counted). *retry_r: go again. */
static int vol_mount_once(struct vf_ctx *ctx, const char *vol, const char *id, const char *path,
                          int64_t deadline, int *retry_r, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);
	char keys[R_N][512];
	const char *reads[R_N];
	struct vf_kv_result rr[R_N];
	struct vf_kv_lock *lk = NULL;
	struct vol_ids ids = {0};
	int rc, mounted_here = 0;

	memset(rr, 0, sizeof(rr));
	*retry_r = 0;
	vf_vol_key(ctx, keys[R_STATE], 512, VK_STATE, vol);
	vf_vol_key(ctx, keys[R_GREF], 512, VK_GREF, vol);
	vol_client_key(ctx, keys[R_CLIENT], 512, vol, ctx->node_id);
	vf_vol_key(ctx, keys[R_INFO], 512, VK_INFO, vol);
	vf_vol_key(ctx, keys[R_TRIG], 512, VK_START_TRIGGER, vol);
	vf_vol_key(ctx, keys[R_SERVER], 512, VK_SERVER, vol);
	for (int i = 0; i < R_N; i++)
		reads[i] = keys[i];
	rc = vol_mount_elided(ctx, vol, id, path, keys, err);
	if (rc != VOL_LOCKED)
		goto out;
	rc = vf_vol_lock(ctx, lease, "gref", vol, (int)vol_left(deadline), reads, R_N, rr, &lk,
	                 err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot take the gref lock", vol);
		goto out;
	}
	if (!rr[R_STATE].found) {
		rc = vf_err_set(err, VF_ENOTFOUND, "volume %s does not exist", vol);
		goto out;
	}
	rc = vol_ids_parse(vol, &rr[R_CLIENT], &ids);
	if (rc != VF_OK)
		goto out;
	if (ids.n > 0) {
		rc = vol_mount_add_id(ctx, vol, id, path, lk, keys, rr, &ids, err);
		goto out;
	}
	if (!vol_res_is(&rr[R_STATE], "Mounted") || !rr[R_SERVER].found) {
		rc = vol_mount_cold(ctx, vol, lk, keys, rr, deadline, retry_r, err);
		if (rc != VF_OK)
			goto out;
	}
	rc = vol_fs_mount(ctx, vol, rr[R_INFO].pair.value, path, err);
	if (rc != VF_OK) {
		/* a stop may have taken the server away since the read: then go again */
		struct vf_kv_pair p = {0};

		if (kv->ops->get(kv, keys[R_SERVER], &p, NULL) != VF_OK ||
		    strcmp(p.value, rr[R_SERVER].pair.value) != 0)
			*retry_r = 1;
		vf_kv_pair_clear(&p);
		goto out;
	}
	mounted_here = 1;
	if (vf_failpoint_hit("vol.mount_before_txn", vol)) {
		rc = vf_err_set(err, VF_EUNAVAIL, "volume %s: failpoint vol.mount_before_txn", vol);
		goto out;
	}
	rc = vol_mount_count(ctx, vol, id, lk, keys, rr, &ids, retry_r, err);
	if (rc == VF_OK)
		mounted_here = 0;
out:
	if (mounted_here) {
		struct vf_err e2 = {0};

		if (vol_fs_unmount(ctx, vol, path, &e2) != VF_OK)
			vf_log(VF_LOG_ERR, "%s", e2.msg);
	}
	vf_vol_unlock(ctx, lease, "gref", vol, &lk);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease); /* a fenced txn found the lease gone */
	vf_kv_results_clear(rr, R_N);
	vol_ids_free(&ids);
	vf_ctx_lease_put(ctx);
	return rc;
}

int vf_volume_mount(struct vf_ctx *ctx, const char *name, const char *mount_id, char **path_r,
                    struct vf_err *err)
{
	int64_t deadline = vf_now_ms() + ctx->op_timeout_ms;
	struct vf_buf path = {0};
	int rc, retry, pend;

	if (path_r)
		*path_r = NULL;
	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	if (mount_id == NULL || mount_id[0] == '\0')
		return vf_err_set(err, VF_EINVAL, "volume %s: empty mount id", name);
	if (strlen(mount_id) > VOL_ID_MAX)
		return vf_err_set(err, VF_EINVAL,
		                  "volume %s: mount id too long (%zu bytes, limit %d)", name,
		                  strlen(mount_id), VOL_ID_MAX);
	if (vf_buf_printf(&path, "%s/%s", ctx->mount_root, name) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "volume %s: out of memory", name);
	vf_vol_local_enter(ctx, "gref", name, 0);
	/* mounted again: a release of this id still to be retried is void, unless
	 * this mount fails (below) */
	pend = vol_pend_cancel(ctx, name, mount_id);
	do {
		unsigned gen = vf_ctx_lease_gen(ctx);

		rc = vol_mount_once(ctx, name, mount_id, path.data, deadline, &retry, err);
		if (rc == VF_ELEASE) {
			/* the lease ended under us (nothing was counted): go again with
			 * the new one, within the same deadline */
			vf_ctx_lease_wait(ctx, gen, deadline);
			retry = 1;
		}
	} while (rc != VF_OK && retry && vf_now_ms() < deadline);
	/* the caller was told this id is unmounted, and now that it did not mount:
	 * the release it was promised still has to happen */
	if (rc != VF_OK && pend >= 0)
		vol_pend_add(ctx, name, mount_id, pend);
	vf_vol_local_leave(ctx, "gref", name);
	if (rc == VF_OK && path_r) {
		*path_r = path.data;
		path.data = NULL;
	}
	vf_buf_free(&path);
	return rc;
}

enum { U_STATE = 0, U_GREF, U_CLIENT, U_TRIG, U_N };

/* The unmount of this host's last mount id as one txn (see vol_memo), when
 * other hosts keep gref above 0 (no stop trigger to bump): unmount locally,
 * then gref-1 and the client key deleted, guarded by "no gref lock holder"
 * and the versions of gref and the client key. VOL_LOCKED when there is
 * nothing to go on or the txn did not commit (the locked path then reads
 * whether it did). */
static int vol_unmount_elided(struct vf_ctx *ctx, const char *name, const char *mount_id,
                              const char *path, char keys[U_N][512], int *unmounted, int *local_err,
                              struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_txn_result tr = {0};
	struct vol_memo m;
	char lname[512], gval[32];
	int rc;

	if (!vol_memo_get(ctx, name, &m))
		return VOL_LOCKED;
	if (m.client_rev == 0 || m.gref < 2 || strcmp(m.id, mount_id) != 0) {
		free(m.info);
		return VOL_LOCKED;
	}
	if (!*unmounted) {
		rc = vol_fs_unmount(ctx, name, path, err);
		if (rc != VF_OK) {
			*local_err = 1;
			free(m.info);
			return rc;
		}
		*unmounted = 1;
	}
	vf_vol_lock_name(ctx, lname, sizeof(lname), "gref", name);
	snprintf(gval, sizeof(gval), "%" PRId64, m.gref - 1);
	{
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_FREE, .key = lname},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[U_GREF], .mod_rev = m.gref_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_CLIENT],
		         .mod_rev = m.client_rev}};
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = keys[U_GREF],
		                        .value = gval,
		                        .value_len = strlen(gval)},
		                       {.kind = VF_OP_DELETE, .key = keys[U_CLIENT]}};

		rc = kv->ops->txn(kv, c, 3, o, 2, &tr, err);
	}
	if (rc == VF_OK && tr.count == 2) {
		m.gref--;
		m.gref_rev = tr.results[0].pair.mod_rev;
		m.client_rev = 0;
		m.id[0] = '\0';
		vol_memo_put(ctx, &m, -1);
	} else {
		vol_memo_drop(ctx, name, 1);
		rc = VOL_LOCKED;
	}
	vf_kv_txn_result_clear(&tr);
	free(m.info);
	return rc;
}

/* mount_id is not counted (a repeated unmount, or one whose answer was lost).
 * With no id of this host counted (ids) no local mount may stay: decided from
 * the mount table, not from this process's memory (a restarted daemon has
 * none; a mount left by a crash mid-mount is real). */
static int vol_unmount_uncounted(struct vf_ctx *ctx, const char *name, const char *mount_id,
                                 const char *path, const struct vol_ids *ids, int *unmounted,
                                 int *local_err, struct vf_err *err)
{
	int rc = VF_OK;

	vf_log(VF_LOG_INFO, "volume %s: mount id %s is not mounted on %s", name, mount_id,
	       ctx->node_id);
	if (ids->n == 0 && !*unmounted &&
	    (vol_local_mounted(ctx, name) || vol_probe(ctx, name, path) != 0)) {
		rc = vol_fs_unmount(ctx, name, path, err);
		*local_err = rc != VF_OK;
	}
	return rc;
}

/* Other ids of this host stay: drop mount_id from its client key (under the
 * gref lock lk); an uncertain outcome read back. */
static int vol_unmount_drop_id(struct vf_ctx *ctx, const char *name, const char *mount_id,
                               struct vf_kv_lock *lk, char keys[U_N][512],
                               const struct vf_kv_result *rr, const struct vol_ids *ids,
                               struct vf_err *err)
{
	char *cval = NULL;
	int rc;

	rc = vol_client_value(ctx, ids, NULL, mount_id, &cval, err);
	if (rc != VF_OK)
		return rc;
	vol_memo_drop(ctx, name, 0);
	rc = vol_client_rewrite(ctx, lk, keys[U_CLIENT], rr[U_CLIENT].pair.mod_rev, cval, err);
	if (rc == VF_EUNCERTAIN) {
		int has = 1;

		if (vol_client_has(ctx, name, keys[U_CLIENT], mount_id, &has) == VF_OK && !has)
			rc = VF_OK;
	}
	if (rc != VF_OK)
		vf_err_prefix(err, "volume %s: cannot drop mount id %s", name, mount_id);
	free(cval);
	return rc;
}

/* The last id of this host, unmounted locally: one txn under the gref lock
 * lk puts gref-1, deletes the client key and, when gref reaches 0, bumps
 * stop_trigger (fenced by the versions read); an uncertain outcome read
 * back. */
static int vol_unmount_release(struct vf_ctx *ctx, const char *name, const char *mount_id,
                               struct vf_kv_lock *lk, char keys[U_N][512],
                               const struct vf_kv_result *rr, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_txn_result tr = {0};
	char gval[32], tval[32];
	int rc;
	int64_t g = vf_vol_num(&rr[U_GREF]) - 1;

	if (g < 0) {
		vf_log(VF_LOG_ERR, "volume %s: gref was %" PRId64 " with client %s listed", name,
		       g + 1, ctx->node_id);
		g = 0;
	}
	snprintf(gval, sizeof(gval), "%" PRId64, g);
	snprintf(tval, sizeof(tval), "%" PRId64, vf_vol_num(&rr[U_TRIG]) + 1);
	{
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_HELD, .lock = lk},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_GREF],
		         .mod_rev = rr[U_GREF].found ? rr[U_GREF].pair.mod_rev : 0},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_CLIENT],
		         .mod_rev = rr[U_CLIENT].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_TRIG],
		         .mod_rev = rr[U_TRIG].found ? rr[U_TRIG].pair.mod_rev : 0}};
		struct vf_kv_op o[4] = {{.kind = VF_OP_PUT,
		                         .key = keys[U_GREF],
		                         .value = gval,
		                         .value_len = strlen(gval)},
		                        {.kind = VF_OP_DELETE, .key = keys[U_CLIENT]}};
		size_t no = 2;

		if (g == 0)
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = keys[U_TRIG],
			                            .value = tval,
			                            .value_len = strlen(tval)};
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = lk};
		rc = kv->ops->txn(kv, c, 4, o, no, &tr, err);
	}
	if (rc == VF_OK && g > 0 && tr.count >= 1)
		vol_memo_unmounted(ctx, name, g, tr.results[0].pair.mod_rev,
		                   rr[U_GREF].found ? rr[U_GREF].pair.mod_rev : 0);
	else
		vol_memo_drop(ctx, name, 0);
	vf_kv_txn_result_clear(&tr);
	if (rc == VF_EUNCERTAIN) {
		int has = 1;

		if (vol_client_has(ctx, name, keys[U_CLIENT], mount_id, &has) == VF_OK && !has)
			rc = VF_OK;
	}
	if (rc != VF_OK)
		vf_err_prefix(err,
		              "volume %s: unmounted locally but cannot drop the global "
		              "reference",
		              name);
	return rc;
}

/* One try of an unmount: the elided way, else under the gref lock (not
 * counted, another id left, or the last id: local unmount, then the release).
 * *unmounted: the local unmount is done (kept across tries); *local_err: it
 * failed. */
int vol_unmount_once(struct vf_ctx *ctx, const char *name, const char *mount_id, const char *path,
                     int64_t deadline, int *unmounted, int *local_err, struct vf_err *err)
{
	struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);
	char keys[U_N][512];
	const char *reads[U_N];
	struct vf_kv_result rr[U_N];
	struct vf_kv_lock *lk = NULL;
	struct vol_ids ids = {0};
	int rc;

	memset(rr, 0, sizeof(rr));
	vf_vol_key(ctx, keys[U_STATE], 512, VK_STATE, name);
	vf_vol_key(ctx, keys[U_GREF], 512, VK_GREF, name);
	vol_client_key(ctx, keys[U_CLIENT], 512, name, ctx->node_id);
	vf_vol_key(ctx, keys[U_TRIG], 512, VK_STOP_TRIGGER, name);
	for (int i = 0; i < U_N; i++)
		reads[i] = keys[i];
	rc = vol_unmount_elided(ctx, name, mount_id, path, keys, unmounted, local_err, err);
	if (rc != VOL_LOCKED)
		goto out;
	rc = vf_vol_lock(ctx, lease, "gref", name, (int)vol_left(deadline), reads, U_N, rr, &lk,
	                 err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot take the gref lock", name);
		goto out;
	}
	rc = vol_ids_parse(name, &rr[U_CLIENT], &ids);
	if (rc != VF_OK)
		goto out;
	if (vol_ids_find(&ids, mount_id) < 0) {
		rc = vol_unmount_uncounted(ctx, name, mount_id, path, &ids, unmounted, local_err,
		                           err);
		goto out;
	}
	if (ids.n > 1) {
		rc = vol_unmount_drop_id(ctx, name, mount_id, lk, keys, rr, &ids, err);
		goto out;
	}
	/* the last id on this host: unmount (unless a try that lost its lease
	 * did already), drop the global reference */
	if (!*unmounted) {
		rc = vol_fs_unmount(ctx, name, path, err);
		if (rc != VF_OK) {
			*local_err = 1;
			goto out;
		}
		*unmounted = 1;
	}
	if (vf_failpoint_hit("vol.unmount_before_txn", name)) {
		rc = vf_err_set(err, VF_EUNAVAIL, "volume %s: failpoint vol.unmount_before_txn",
		                name);
		goto out;
	}
	rc = vol_unmount_release(ctx, name, mount_id, lk, keys, rr, err);
out:
	vf_vol_unlock(ctx, lease, "gref", name, &lk);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease); /* a fenced txn found the lease gone */
	vf_ctx_lease_put(ctx);
	vf_kv_results_clear(rr, U_N);
	vol_ids_free(&ids);
	return rc;
}

int vf_volume_unmount(struct vf_ctx *ctx, const char *name, const char *mount_id,
                      struct vf_err *err)
{
	int64_t deadline = vf_now_ms() + ctx->op_timeout_ms;
	struct vf_buf path = {0};
	int rc, unmounted = 0, local_err = 0;

	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	if (mount_id == NULL || mount_id[0] == '\0')
		return vf_err_set(err, VF_EINVAL, "volume %s: empty mount id", name);
	if (vf_buf_printf(&path, "%s/%s", ctx->mount_root, name) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "volume %s: out of memory", name);
	vf_vol_local_enter(ctx, "gref", name, 0);
	for (;;) {
		unsigned gen = vf_ctx_lease_gen(ctx);

		rc = vol_unmount_once(ctx, name, mount_id, path.data, deadline, &unmounted,
		                      &local_err, err);
		if (rc != VF_ELEASE || vf_now_ms() >= deadline)
			break;
		/* the lease ended under us (nothing was dropped): again with the
		 * new one, within the same deadline */
		vf_ctx_lease_wait(ctx, gen, deadline);
	}
	if (rc != VF_OK && !local_err && vol_conv_retryable(rc)) {
		/* Docker never retries an Unmount: an error here would leave this
		 * id counted for good (gref never 0, the server never stopped, the
		 * volume never removable). The unmount is this host's to finish:
		 * answer success, release the id in the background */
		vf_log(VF_LOG_WARN,
		       "volume %s: unmount of mount id %s answered OK, the store part is "
		       "retried in the background: %s",
		       name, mount_id, err ? err->msg : vf_strerror(rc));
		vol_pend_add(ctx, name, mount_id, unmounted);
		rc = VF_OK;
		if (err) {
			err->code = VF_OK;
			err->msg[0] = '\0';
		}
	}
	vf_vol_local_leave(ctx, "gref", name);
	vf_buf_free(&path);
	return rc;
}
