/*
 * The manager side's job handlers (run by the workers of manager.c, each under
 * the volume's local state mutex where it needs one): start and restart a
 * volume's file server and record it (mgr_do_start), the batched restart of
 * many volumes at once (mgr_do_restart_batch), stop (flip Mounted to Ready and
 * stop the server), check (stop a server the store no longer assigns here),
 * orphan-stop (a server a crashed daemon left) and idle-stop (bump the stop
 * trigger of a volume nobody mounts). The key semantics and write order are in
 * volume.c.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mgr_int.h"

/* ---- handlers ---- */
enum { S_STATE = 0, S_GREF, S_INFO, S_SERVER, S_N };

/* Take vol's state lock for a start or stop (what), reading its state, gref, info
 * and server/ keys with it: keys[] and rr[] are indexed by S_*. Logs a failure. */
static int mgr_state_lock(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *vol,
                          const char *what, char keys[S_N][512], struct vf_kv_result rr[S_N],
                          struct vf_kv_lock **lk, struct vf_err *e)
{
	const char *reads[S_N];
	int rc;

	memset(rr, 0, S_N * sizeof(rr[0]));
	vf_vol_key(ctx, keys[S_STATE], 512, VK_STATE, vol);
	vf_vol_key(ctx, keys[S_GREF], 512, VK_GREF, vol);
	vf_vol_key(ctx, keys[S_INFO], 512, VK_INFO, vol);
	vf_vol_key(ctx, keys[S_SERVER], 512, VK_SERVER, vol);
	for (int i = 0; i < S_N; i++)
		reads[i] = keys[i];
	rc = vf_vol_lock(ctx, lease, "state", vol, ctx->op_timeout_ms, reads, S_N, rr, lk, e);
	if (rc != VF_OK)
		vf_log(VF_LOG_ERR, "volume %s: %s: cannot take the state lock: %s", vol, what,
		       e->msg);
	return rc;
}

/* Is server/<vol> (key) now sval? Settles an uncertain record txn: asks until
 * the store answers (a failed read is no answer: taking it for "not recorded"
 * stopped a server the store names, with nothing to repair it). Gives up only
 * when the lease that sval names is no longer this process's (its keys end with
 * it, and the lease-loss path stops every server) or the process stops.
 * 1 recorded, 0 not. */
static int mgr_server_is(struct vf_ctx *ctx, const char *key, const char *sval)
{
	int64_t backoff = 50;

	for (;;) {
		struct vf_kv_pair p = {0};
		struct vf_err e = {0};
		int rc = ctx->kv->ops->get(ctx->kv, key, &p, &e), r = -1, gone;
		char cur[200];

		if (rc == VF_OK)
			r = strcmp(p.value, sval) == 0;
		else if (rc == VF_ENOTFOUND)
			r = 0;
		vf_kv_pair_clear(&p);
		if (r >= 0)
			return r;
		pthread_mutex_lock(&ctx->mu);
		snprintf(cur, sizeof(cur), "%s %s", ctx->node_id, ctx->lease_id);
		gone = ctx->stopping || ctx->lease_lost || strcmp(cur, sval) != 0;
		pthread_mutex_unlock(&ctx->mu);
		if (gone)
			return 0;
		vf_log(VF_LOG_WARN, "%s: outcome of the start record unknown, reading back: %s",
		       key, e.msg);
		struct timespec ts = {0, (long)backoff * 1000000L};

		nanosleep(&ts, NULL);
		if (backoff < 1000)
			backoff *= 2;
	}
}

/* The txn that ends a start: [LOCK_HELD lk, VERSION_EQ state] put info(+server),
 * put server/<vol> = sval (lease), put state=Mounted, UNLOCK lk. */
static int mgr_record_start(struct vf_ctx *ctx, const char *vol, struct vf_kv_lock *lk,
                            int64_t state_rev, const char *info, const char *sval,
                            struct vf_kv_lease *lease, struct vf_err *err)
{
	char ks[512], ki[512], kv_[512];
	int rc;

	vf_vol_key(ctx, ks, sizeof(ks), VK_STATE, vol);
	vf_vol_key(ctx, ki, sizeof(ki), VK_INFO, vol);
	vf_vol_key(ctx, kv_, sizeof(kv_), VK_SERVER, vol);
	struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lk},
	                        {.kind = VF_CMP_VERSION_EQ, .key = ks, .mod_rev = state_rev}};
	struct vf_kv_op o[] = {
	        {.kind = VF_OP_PUT, .key = ki, .value = info, .value_len = strlen(info)},
	        {.kind = VF_OP_PUT,
	         .key = kv_,
	         .value = sval,
	         .value_len = strlen(sval),
	         .lease = lease},
	        {.kind = VF_OP_PUT, .key = ks, .value = "Mounted", .value_len = 7},
	        {.kind = VF_OP_UNLOCK, .lock = lk}};

	rc = ctx->kv->ops->txn(ctx->kv, c, 2, o, 4, NULL, err);
	if (rc == VF_EUNCERTAIN && mgr_server_is(ctx, kv_, sval))
		rc = VF_OK;
	return rc;
}

static int vol_mounted_str(const struct vf_kv_result *r)
{
	return r->found && r->pair.value && strcmp(r->pair.value, "Mounted") == 0;
}

static void mgr_unserve_removed(struct mgr *m, const char *vol, const char *mine, int key_mine);

/* Serve vol here unless it is served already (state lock held throughout).
 * restart: only a Mounted volume whose server is gone (the reconciler's lists
 * are not one snapshot: a volume it saw Mounted may be Ready by now, and then
 * nobody asked for a server). */
int mgr_do_start(struct mgr *m, const char *vol, struct vf_kv_lease *lease, int restart)
{
	struct vf_ctx *ctx = m->ctx;
	char keys[S_N][512], sval[200];
	struct vf_kv_result rr[S_N];
	struct vf_kv_lock *lk = NULL;
	struct vf_err e = {0};
	char *addr = NULL, *info = NULL;
	int port = 0, rc, started = 0;

	if ((rc = mgr_state_lock(ctx, lease, vol, "start", keys, rr, &lk, &e)) != VF_OK)
		goto out;
	if (!rr[S_STATE].found) {
		vf_log(VF_LOG_INFO, "volume %s: start: the volume was removed", vol);
		goto out;
	}
	snprintf(sval, sizeof(sval), "%s %s", ctx->node_id, lease->id);
	if (rr[S_SERVER].found && strcmp(rr[S_SERVER].pair.value, sval) == 0 &&
	    !mgr_serves(m, vol)) {
		/* server/ names this process, which runs no server for it (a start
		 * record whose answer was lost, its server stopped): repair. Not
		 * Mounted: the key goes; Mounted: serve it again (the record txn
		 * below rewrites the key) */
		vf_log(VF_LOG_WARN, "volume %s: %s names this node, which does not serve it: %s",
		       vol, keys[S_SERVER],
		       vol_mounted_str(&rr[S_STATE]) ? "starting its server" : "deleting the key");
		if (!vol_mounted_str(&rr[S_STATE])) {
			mgr_unserve_removed(m, vol, sval, 1);
			if (restart)
				goto out;
		}
	} else if (rr[S_SERVER].found && !mgr_stale_mine(ctx, rr[S_SERVER].pair.value, sval)) {
		if (rr[S_STATE].pair.value && strcmp(rr[S_STATE].pair.value, "Mounted") == 0)
			goto out; /* served already */
		if (strcmp(rr[S_SERVER].pair.value, sval) != 0) {
			/* the server of a removed incarnation still runs there: wait
			 * for its manager to stop it and delete the key (retried) */
			vf_log(VF_LOG_INFO,
			       "volume %s: start waits: the server of a removed incarnation "
			       "(%s) is still recorded",
			       vol, rr[S_SERVER].pair.value);
			rc = VF_EBUSY;
			goto out;
		}
		/* ours, of a removed incarnation: stop it first (the txn below
		 * rewrites the key) */
		if (mgr_serves(m, vol))
			mgr_fs_stop(m, vol, "volume removed and created again");
	}
	if (restart &&
	    (rr[S_STATE].pair.value == NULL || strcmp(rr[S_STATE].pair.value, "Mounted") != 0))
		goto out; /* stopped meanwhile: nothing to restart */
	rc = ctx->fs->start(ctx->fs_arg, vol, rr[S_INFO].found ? rr[S_INFO].pair.value : "{}",
	                    &addr, &port, &e);
	if (rc != VF_OK) {
		vf_log(VF_LOG_ERR, "volume %s: file server start failed on %s: %s", vol,
		       ctx->node_id, e.msg);
		goto out;
	}
	started = 1;
	mgr_served_set(m, vol, 1);
	rc = vf_vol_info_with_server(vol, rr[S_INFO].found ? rr[S_INFO].pair.value : NULL,
	                             ctx->node_id, addr, port, &info, &e);
	if (rc != VF_OK)
		goto out;
	if (vf_failpoint_hit("mgr.before_start_txn", vol)) {
		started = 0; /* "died": leave the server to the lease's end */
		rc = VF_EUNAVAIL;
		goto out;
	}
	snprintf(sval, sizeof(sval), "%s %s", ctx->node_id, lease->id);
	rc = mgr_record_start(ctx, vol, lk, rr[S_STATE].pair.mod_rev, info, sval, lease, &e);
	if (rc != VF_OK) {
		vf_log(VF_LOG_ERR, "volume %s: cannot record the file server as Mounted: %s", vol,
		       e.msg);
		goto out;
	}
	started = 0;
	vf_log(VF_LOG_INFO, "volume %s: Mounted, served by %s at %s:%d", vol, ctx->node_id, addr,
	       port);
out:
	if (started)
		mgr_fs_stop(m, vol, "start not recorded");
	vf_vol_unlock(ctx, lease, "state", vol, &lk);
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	vf_kv_results_clear(rr, S_N);
	free(addr);
	free(info);
	return rc;
}

/* One txn releasing every lock still held in locks (VF_OP_UNLOCK), then free
 * them (a lock the txn did not release is released one by one, or noted). */
static void mgr_batch_unlock(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *const *vols,
                             size_t n, struct vf_kv_lock **locks)
{
	struct vf_kv_op o[MGR_BATCH_MAX];
	size_t no = 0;

	for (size_t i = 0; i < n; i++)
		if (locks[i])
			o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = locks[i]};
	if (no)
		ctx->kv->ops->txn(ctx->kv, NULL, 0, o, no, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		vf_vol_unlock(ctx, lease, "state", vols[i], &locks[i]);
}

/* One restart batch at work (mgr_do_restart_batch): its volumes as listed,
 * their keys (state, server, info) and state locks, the servers started here
 * (up) with their address and new info, and the one error all steps report
 * into. */
struct mgr_rbatch {
	const char *const *vols;
	const int64_t *revs;
	char *const *infos;
	size_t n;
	char (*keys)[3][512];
	struct vf_kv_lock *locks[MGR_BATCH_MAX];
	char *addr[MGR_BATCH_MAX], *info[MGR_BATCH_MAX], sval[200];
	int port[MGR_BATCH_MAX], up[MGR_BATCH_MAX];
	struct vf_err e;
};

/* lock_many(state locks, [VERSION_EQ state as listed, ABSENT server] each).
 * On failure *back_r says whether single restarts should sort it out. */
static int mgr_rbatch_lock(struct vf_ctx *ctx, struct mgr_rbatch *b, struct vf_kv_lease *lease,
                           int *back_r)
{
	struct vf_kv_cmp c[2 * MGR_BATCH_MAX];
	size_t nc = 0;
	int rc;

	for (size_t i = 0; i < b->n; i++) {
		vf_vol_key(ctx, b->keys[i][0], 512, VK_STATE, b->vols[i]);
		vf_vol_key(ctx, b->keys[i][1], 512, VK_SERVER, b->vols[i]);
		vf_vol_key(ctx, b->keys[i][2], 512, VK_INFO, b->vols[i]);
		c[nc++] = (struct vf_kv_cmp){
		        .kind = VF_CMP_VERSION_EQ, .key = b->keys[i][0], .mod_rev = b->revs[i]};
		c[nc++] = (struct vf_kv_cmp){.kind = VF_CMP_ABSENT, .key = b->keys[i][1]};
	}
	rc = vf_vol_lock_many(ctx, lease, "state", b->vols, b->n, c, nc, b->locks, &b->e);
	if (rc != VF_OK) {
		/* held, changed since the listing, or too many: single restarts sort it
		 * out; a store error: the next pass */
		*back_r = rc == VF_EBUSY || rc == VF_ECONFLICT || rc == VF_ELIMIT ||
		          rc == VF_ENOTSUP || rc == VF_ENOMEM;
		vf_log(*back_r ? VF_LOG_DEBUG : VF_LOG_ERR,
		       "restart of %zu volumes (%s ...): cannot take their state locks at once: %s",
		       b->n, b->vols[0], b->e.msg);
	}
	return rc;
}

/* Start the file server of every volume (locks held), with its info as listed;
 * up[i]: started, and its info with the server made. */
static void mgr_rbatch_start(struct mgr *m, struct mgr_rbatch *b)
{
	struct vf_ctx *ctx = m->ctx;

	for (size_t i = 0; i < b->n; i++) {
		const char *old = b->infos[i];
		int rc = ctx->fs->start(ctx->fs_arg, b->vols[i], old ? old : "{}", &b->addr[i],
		                        &b->port[i], &b->e);

		if (rc != VF_OK) {
			vf_log(VF_LOG_ERR, "volume %s: file server start failed on %s: %s",
			       b->vols[i], ctx->node_id, b->e.msg);
			continue;
		}
		mgr_served_set(m, b->vols[i], 1);
		b->up[i] = 1;
		if (vf_vol_info_with_server(b->vols[i], old, ctx->node_id, b->addr[i], b->port[i],
		                            &b->info[i], &b->e) != VF_OK) {
			vf_log(VF_LOG_ERR, "volume %s: %s", b->vols[i], b->e.msg);
			mgr_fs_stop(m, b->vols[i], "start not recorded");
			b->up[i] = 0;
		}
	}
}

/* One record txn for all: what single starts would write, at one instant
 * ([LOCK_HELD] and the start's puts for each volume started, UNLOCK for
 * every lock). *nup_r: the volumes it records. */
static int mgr_rbatch_record(struct vf_ctx *ctx, struct mgr_rbatch *b, struct vf_kv_lease *lease,
                             size_t *nup_r)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_cmp c[2 * MGR_BATCH_MAX];
	struct vf_kv_op o[4 * MGR_BATCH_MAX];
	size_t nc = 0, no = 0;
	int rc;

	for (size_t i = 0; i < b->n; i++) {
		if (b->up[i]) {
			(*nup_r)++;
			/* LOCK_HELD alone: state/<vol> is written only under this lock, and
			 * lock_many took it at the listed version */
			c[nc++] = (struct vf_kv_cmp){.kind = VF_CMP_LOCK_HELD, .lock = b->locks[i]};
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = b->keys[i][2],
			                            .value = b->info[i],
			                            .value_len = strlen(b->info[i])};
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = b->keys[i][1],
			                            .value = b->sval,
			                            .value_len = strlen(b->sval),
			                            .lease = lease};
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = b->keys[i][0],
			                            .value = "Mounted",
			                            .value_len = 7};
		}
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = b->locks[i]};
	}
	rc = kv->ops->txn(kv, c, nc, o, no, NULL, &b->e);
	if (rc != VF_OK)
		vf_log(VF_LOG_WARN, "restart of %zu volumes (%s ...): the record txn failed: %s%s",
		       b->n, b->vols[0], b->e.msg,
		       rc == VF_EUNCERTAIN ? " (reading back)" : " (recording one by one)");
	return rc;
}

/* After the record txn (its result rc): each server started is recorded (an
 * uncertain txn read back, a failed one redone volume by volume) or stopped. */
static void mgr_rbatch_settle(struct mgr *m, struct mgr_rbatch *b, struct vf_kv_lease *lease,
                              int rc)
{
	struct vf_ctx *ctx = m->ctx;

	for (size_t i = 0; i < b->n; i++) {
		int ok;

		if (!b->up[i])
			continue;
		if (rc == VF_OK)
			ok = 1;
		else if (rc == VF_EUNCERTAIN)
			ok = mgr_server_is(ctx, b->keys[i][1], b->sval);
		else /* a compare failed for some: record each on its own */
			ok = mgr_record_start(ctx, b->vols[i], b->locks[i], b->revs[i], b->info[i],
			                      b->sval, lease, &b->e) == VF_OK;
		if (ok) {
			vf_log(VF_LOG_INFO, "volume %s: Mounted, served by %s at %s:%d (restarted)",
			       b->vols[i], ctx->node_id, b->addr[i], b->port[i]);
		} else {
			vf_log(VF_LOG_ERR, "volume %s: cannot record the restarted file server: %s",
			       b->vols[i], b->e.msg);
			mgr_fs_stop(m, b->vols[i], "start not recorded");
		}
	}
}

/* The restart of every volume in vols[0..n) (all Mounted with no server when
 * listed, at revs; the caller is inside their local state mutexes), batched:
 * lock_many(state locks, [VERSION_EQ state, ABSENT server] each), one txn of
 * GETs of their info, the file servers started, one record txn for all. What a
 * batch cannot settle as a whole goes back to the caller (*back_r = 1: queue
 * single restarts) or is recorded volume by volume. */
void mgr_do_restart_batch(struct mgr *m, const char *const *vols, const int64_t *revs,
                          char *const *infos, size_t n, struct vf_kv_lease *lease, int *back_r)
{
	struct vf_ctx *ctx = m->ctx;
	struct mgr_rbatch b = {.vols = vols, .revs = revs, .infos = infos, .n = n};
	size_t nup = 0;
	int rc, held = 1;

	*back_r = 0;
	b.keys = calloc(n, sizeof(*b.keys));
	if (b.keys == NULL) {
		*back_r = 1;
		return;
	}
	rc = mgr_rbatch_lock(ctx, &b, lease, back_r);
	if (rc != VF_OK)
		goto out;
	/* info as listed is current: it is only written with state/<vol>, whose
	 * version the locks were taken at */
	snprintf(b.sval, sizeof(b.sval), "%s %s", ctx->node_id, lease->id);
	mgr_rbatch_start(m, &b);
	rc = mgr_rbatch_record(ctx, &b, lease, &nup);
	held = 0; /* released by that txn, or by unlock() below */
	mgr_rbatch_settle(m, &b, lease, rc);
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	vf_log(VF_LOG_DEBUG, "restart batch of %zu volumes (%s ...): %zu started", n, vols[0], nup);
out:
	if (held)
		mgr_batch_unlock(ctx, lease, vols, n, b.locks);
	for (size_t i = 0; i < n; i++)
		vf_vol_unlock(ctx, lease, "state", vols[i], &b.locks[i]);
	for (size_t i = 0; i < n; i++) {
		free(b.addr[i]);
		free(b.info[i]);
	}
	free(b.keys);
}

/* vol is removed or not Mounted: stop the server this process may still run
 * for it, then delete server/<vol> if it still names us (remove leaves it). */
static void mgr_unserve_removed(struct mgr *m, const char *vol, const char *mine, int key_mine)
{
	struct vf_ctx *ctx = m->ctx;
	char key[512];
	struct vf_kv_cmp c = {.kind = VF_CMP_VALUE_EQ, .value = mine, .value_len = strlen(mine)};
	struct vf_kv_op o = {.kind = VF_OP_DELETE};
	struct vf_err e = {0};
	int rc;

	if (mgr_serves(m, vol))
		mgr_fs_stop(m, vol, "volume removed or not Mounted");
	if (!key_mine)
		return;
	vf_vol_key(ctx, key, sizeof(key), VK_SERVER, vol);
	c.key = o.key = key;
	rc = ctx->kv->ops->txn(ctx->kv, &c, 1, &o, 1, NULL, &e);
	if (rc != VF_OK && rc != VF_ECONFLICT)
		vf_log(VF_LOG_WARN, "volume %s: cannot delete %s: %s", vol, key, e.msg);
}

/* Flip Mounted to Ready if gref == 0 (as read, fenced by the gref version). */
int mgr_do_stop(struct mgr *m, const char *vol, struct vf_kv_lease *lease)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv *kv = ctx->kv;
	char keys[S_N][512], mine[200];
	struct vf_kv_result rr[S_N];
	struct vf_kv_lock *lk = NULL;
	struct vf_err e = {0};
	int rc, served_here;

	snprintf(mine, sizeof(mine), "%s %s", ctx->node_id, lease->id);
	if ((rc = mgr_state_lock(ctx, lease, vol, "stop", keys, rr, &lk, &e)) != VF_OK)
		goto out;
	served_here = rr[S_SERVER].found && strcmp(rr[S_SERVER].pair.value, mine) == 0;
	if (!rr[S_STATE].found || strcmp(rr[S_STATE].pair.value, "Mounted") != 0) {
		/* removed (and maybe created again) while we served it */
		mgr_unserve_removed(m, vol, mine, served_here);
		goto out;
	}
	if (rr[S_SERVER].found && !served_here &&
	    !mgr_stale_mine(ctx, rr[S_SERVER].pair.value, mine)) {
		/* another live manager started a server after our claim read
		 * server/<vol> empty: only it may stop that server (flipping to
		 * Ready here would leave it running, and a later start a second
		 * one). Drop the claim: the orphaned stop is re-claimed by the
		 * serving manager (mgr_claim lets only it through). */
		vf_log(VF_LOG_INFO,
		       "volume %s: stop left to its serving manager (%s), which started "
		       "after this claim",
		       vol, rr[S_SERVER].pair.value);
		rc = vf_err_set(&e, VF_ECONFLICT, "volume %s: served by %s", vol,
		                rr[S_SERVER].pair.value);
		goto out;
	}
	if (vf_vol_num(&rr[S_GREF]) > 0)
		goto out; /* a host mounted it since: keep serving */
	if (vf_failpoint_hit("mgr.stop_after_read", vol)) {
		rc = VF_EUNAVAIL;
		goto out;
	}
	{
		struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lk},
		                        {.kind = VF_CMP_VERSION_EQ,
		                         .key = keys[S_GREF],
		                         .mod_rev = rr[S_GREF].found ? rr[S_GREF].pair.mod_rev : 0},
		                        {.kind = VF_CMP_VALUE_EQ,
		                         .key = keys[S_STATE],
		                         .value = "Mounted",
		                         .value_len = 7}};
		struct vf_kv_op o[] = {
		        {.kind = VF_OP_PUT, .key = keys[S_STATE], .value = "Ready", .value_len = 5},
		        {.kind = VF_OP_DELETE, .key = keys[S_SERVER]}};

		/* no UNLOCK op: the state lock is held until the server is down, so
		 * no manager can start a second one meanwhile */
		rc = kv->ops->txn(kv, c, 3, o, 2, NULL, &e);
	}
	if (rc == VF_ECONFLICT) {
		vf_log(VF_LOG_INFO,
		       "volume %s: a host took a reference during the stop: keeping "
		       "the server",
		       vol);
		rc = VF_OK;
		goto out;
	}
	if (rc != VF_OK) {
		vf_log(VF_LOG_ERR, "volume %s: cannot set state Ready: %s", vol, e.msg);
		goto out;
	}
	vf_log(VF_LOG_INFO, "volume %s: Ready (no host has it mounted)", vol);
	if (mgr_serves(m, vol))
		mgr_fs_stop(m, vol, "stopped");
	/* else: the serving manager sees server/<vol> go and stops its server */
out:
	vf_vol_unlock(ctx, lease, "state", vol, &lk);
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	vf_kv_results_clear(rr, S_N);
	vf_failpoint_hit("mgr.stop_done", vol);
	return rc;
}

/* A server this process runs that the store no longer assigns to it, or whose
 * volume was removed (state absent or not Mounted): stop it. */
void mgr_do_check(struct mgr *m, const char *vol, struct vf_kv_lease *lease)
{
	struct vf_ctx *ctx = m->ctx;
	char ks[512], kv[512], mine[200];
	struct vf_kv_op g[] = {{.kind = VF_OP_GET, .key = ks}, {.kind = VF_OP_GET, .key = kv}};
	struct vf_kv_txn_result res = {0};
	struct vf_err e = {0};
	int rc;

	if (!mgr_serves(m, vol))
		return;
	if (vf_failpoint_hit("mgr.check", vol))
		return;
	vf_vol_key(ctx, ks, sizeof(ks), VK_STATE, vol);
	vf_vol_key(ctx, kv, sizeof(kv), VK_SERVER, vol);
	snprintf(mine, sizeof(mine), "%s %s", ctx->node_id, lease->id);
	rc = ctx->kv->ops->txn(ctx->kv, NULL, 0, g, 2, &res, &e);
	if (rc == VF_OK && res.count == 2) {
		const struct vf_kv_result *st = &res.results[0], *sv = &res.results[1];
		int key_mine = sv->found && strcmp(sv->pair.value, mine) == 0;

		if (!key_mine)
			mgr_fs_stop(m, vol, "the store no longer names this node as its server");
		else if (!st->found || strcmp(st->pair.value, "Mounted") != 0)
			mgr_unserve_removed(m, vol, mine, 1);
	} else {
		vf_log(VF_LOG_WARN, "volume %s: cannot check its server: %s", vol, e.msg);
	}
	vf_kv_txn_result_clear(&res);
}

/* Does server value v name this node (under any lease)? */
int mgr_names_node(const struct vf_ctx *ctx, const char *v)
{
	size_t nl = strlen(ctx->node_id);

	return v && strncmp(v, ctx->node_id, nl) == 0 && v[nl] == ' ';
}

/* A file server the driver runs here for vol that this process did not start
 * (a daemon that crashed left it, e.g. its sshd): if server/<vol> names another
 * live manager (its key exists: its lease lives), stop it. Never when
 * server/<vol> names this node (that one is ours to adopt), nor when it is
 * absent (a restart here adopts it). */
void mgr_do_orphan(struct mgr *m, const char *vol)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv_pair p = {0};
	struct vf_err e = {0};
	char key[512];
	int rc;

	if (mgr_serves(m, vol) || ctx->fs->running == NULL || !ctx->fs->running(ctx->fs_arg, vol))
		return;
	vf_vol_key(ctx, key, sizeof(key), VK_SERVER, vol);
	rc = ctx->kv->ops->get(ctx->kv, key, &p, &e);
	if (rc == VF_OK && !mgr_names_node(ctx, p.value)) {
		vf_log(VF_LOG_WARN,
		       "volume %s: a file server runs on %s that this process did not start, "
		       "while %s names %s: stopping the local one",
		       vol, ctx->node_id, key, p.value);
		if (ctx->fs->stop(ctx->fs_arg, vol, NULL, &e) != VF_OK)
			vf_log(VF_LOG_ERR, "volume %s: file server stop failed: %s", vol, e.msg);
	} else if (rc != VF_OK && rc != VF_ENOTFOUND) {
		vf_log(VF_LOG_WARN, "volume %s: cannot read %s: %s", vol, key, e.msg);
	}
	vf_kv_pair_clear(&p);
}

/* Mounted, nobody mounts it, nothing pending, for two passes: bump stop_trigger.
 * Only if no host holds the gref lock (a cold mount waiting for the server holds
 * it): try-lock it, read under it, bump fenced by it. */
void mgr_do_idle(struct mgr *m, const char *vol, struct vf_kv_lease *lease)
{
	struct vf_ctx *ctx = m->ctx;
	char kg[512], ks[512], kt[512], tval[32];
	const char *reads[] = {kg, ks, kt};
	struct vf_kv_result rr[3];
	struct vf_kv_lock *lk = NULL;
	struct vf_err e = {0};

	memset(rr, 0, sizeof(rr));
	vf_vol_key(ctx, kg, sizeof(kg), VK_GREF, vol);
	vf_vol_key(ctx, ks, sizeof(ks), VK_STATE, vol);
	vf_vol_key(ctx, kt, sizeof(kt), VK_STOP_TRIGGER, vol);
	if (vf_vol_lock(ctx, lease, "gref", vol, 0, reads, 3, rr, &lk, &e) != VF_OK)
		return; /* busy (a host is at work) or unreachable: next pass */
	if (vf_vol_num(&rr[0]) != 0 || !rr[1].found || strcmp(rr[1].pair.value, "Mounted") != 0)
		goto out;
	snprintf(tval, sizeof(tval), "%" PRId64, vf_vol_num(&rr[2]) + 1);
	struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lk},
	                        {.kind = VF_CMP_VERSION_EQ,
	                         .key = kg,
	                         .mod_rev = rr[0].found ? rr[0].pair.mod_rev : 0},
	                        {.kind = VF_CMP_VERSION_EQ,
	                         .key = kt,
	                         .mod_rev = rr[2].found ? rr[2].pair.mod_rev : 0}};
	struct vf_kv_op o[] = {
	        {.kind = VF_OP_PUT, .key = kt, .value = tval, .value_len = strlen(tval)},
	        {.kind = VF_OP_UNLOCK, .lock = lk}};

	if (ctx->kv->ops->txn(ctx->kv, c, 3, o, 2, NULL, &e) == VF_OK)
		vf_log(VF_LOG_WARN, "volume %s: served with no host mounting it: asked for a stop",
		       vol);
out:
	vf_vol_unlock(ctx, lease, "gref", vol, &lk);
	vf_kv_results_clear(rr, 3);
}
