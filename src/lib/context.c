/* The process context of the volume manager: the process-local serialisation
 * of one volume's operations, the process lease (granted, kept, re-granted by
 * the lease thread) and the store lock layer with its sweep of locks left held
 * by requests whose answer was lost; vf_ctx_new and vf_ctx_free, which start
 * and stop its threads. Both sides use it: the host side (volume.c) and the
 * manager side (manager.c), which installs its hooks (ctx->mgr_hooks: lease
 * lost/back, status, stop) when it starts. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics_int.h"
#include "volume_int.h"

/* ---- the context: made and freed ---- */
int vf_ctx_new(struct vf_kv *kv, const struct vf_ctx_cfg *cfg, struct vf_ctx **ctx_r,
               struct vf_err *err)
{
	struct vf_ctx *ctx;
	int rc;

	*ctx_r = NULL;
	if (kv == NULL || cfg == NULL || cfg->node_id == NULL || cfg->node_id[0] == '\0' ||
	    strchr(cfg->node_id, '/'))
		return vf_err_set(err, VF_EINVAL,
		                  "volume manager: a node_id without '/' is needed");
	if (kv->ops->lock == NULL || kv->ops->txn == NULL || kv->ops->lease_grant == NULL ||
	    kv->ops->watch_start == NULL || kv->ops->list == NULL || kv->ops->get == NULL)
		return vf_err_set(err, VF_ENOTSUP,
		                  "volume manager: backend %s lacks locks, txn, leases, watch or "
		                  "list",
		                  kv->ops->name);
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return vf_err_set(err, VF_ENOMEM, "volume manager: out of memory");
	ctx->kv = kv;
	ctx->node_id = strdup(cfg->node_id);
	ctx->node_addr = strdup(cfg->node_addr ? cfg->node_addr : "");
	ctx->prefix = strdup(cfg->prefix && cfg->prefix[0] ? cfg->prefix : "vfile/");
	ctx->mount_root = strdup(cfg->mount_root ? cfg->mount_root : "/var/lib/vfile/mounts");
	ctx->manager = cfg->manager;
	ctx->lease_ttl_s = cfg->lease_ttl_s > 0 ? cfg->lease_ttl_s : 10;
	if (ctx->lease_ttl_s < kv->min_lease_ttl_s)
		ctx->lease_ttl_s = kv->min_lease_ttl_s;
	ctx->op_timeout_ms = cfg->op_timeout_ms > 0 ? cfg->op_timeout_ms : 30000;
	ctx->reconcile_ms = cfg->reconcile_ms > 0 ? cfg->reconcile_ms : 5000;
	ctx->evict_after_s = cfg->evict_after_s > 0 ? cfg->evict_after_s : 0;
	ctx->started_s = (int64_t)time(NULL);
	ctx->fs = cfg->fs;
	ctx->fs_arg = cfg->fs_arg;
	pthread_rwlock_init(&ctx->lease_rw, NULL);
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_mutex_init(&ctx->mgr_mu, NULL);
	vf_cond_init(&ctx->cv);
	vf_cond_init(&ctx->local_cv);
	vf_cond_init(&ctx->conv_cv);
	if (!ctx->node_id || !ctx->node_addr || !ctx->prefix || !ctx->mount_root) {
		rc = vf_err_set(err, VF_ENOMEM, "volume manager: out of memory");
		goto fail;
	}
	rc = vf_ctx_grant(ctx, err);
	if (rc != VF_OK)
		goto fail;
	if (pthread_create(&ctx->lease_thr, NULL, vf_ctx_lease_thread, ctx) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "volume manager: cannot start the lease thread");
		goto fail;
	}
	ctx->lease_thr_started = 1;
	/* this host's records against its real mounts, then the thread that
	 * retries releases the store did not take */
	vol_converge_startup(ctx);
	if (pthread_create(&ctx->conv_thr, NULL, ctx_converge_thread, ctx) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "volume manager: cannot start the converge thread");
		goto fail;
	}
	ctx->conv_started = 1;
	*ctx_r = ctx;
	return VF_OK;
fail:
	vf_ctx_free(&ctx);
	return rc;
}

void vf_ctx_free(struct vf_ctx **ctxp)
{
	struct vf_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	pthread_mutex_lock(&ctx->mgr_mu);
	if (ctx->mgr)
		ctx->mgr_hooks->stop(ctx);
	pthread_mutex_unlock(&ctx->mgr_mu);
	pthread_mutex_lock(&ctx->mu);
	ctx->stopping = 1;
	pthread_cond_broadcast(&ctx->cv);
	pthread_cond_broadcast(&ctx->conv_cv);
	pthread_mutex_unlock(&ctx->mu);
	if (ctx->conv_started)
		pthread_join(ctx->conv_thr, NULL);
	if (ctx->lease_thr_started)
		pthread_join(ctx->lease_thr, NULL);
	if (ctx->lease)
		ctx->kv->ops->lease_revoke(ctx->kv, &ctx->lease, NULL);
	vf_metrics_gauge_set(VF_G_LEASE_HELD, 0);
	while (ctx->locals) {
		struct vol_local *l = ctx->locals;

		ctx->locals = l->next;
		free(l);
	}
	while (ctx->dirty) {
		struct vol_dirty *d = ctx->dirty;

		ctx->dirty = d->next;
		free(d);
	}
	vol_pend_free(ctx);
	vf_node_gone_free(&ctx->gone);
	vf_strv_free(ctx->mounted, ctx->nmounted);
	vol_memo_free(ctx);
	pthread_rwlock_destroy(&ctx->lease_rw);
	pthread_mutex_destroy(&ctx->mu);
	pthread_mutex_destroy(&ctx->mgr_mu);
	pthread_cond_destroy(&ctx->cv);
	pthread_cond_destroy(&ctx->local_cv);
	pthread_cond_destroy(&ctx->conv_cv);
	free(ctx->node_id);
	free(ctx->node_addr);
	free(ctx->prefix);
	free(ctx->mount_root);
	free(ctx);
	*ctxp = NULL;
}

int vf_vol_local_enter(struct vf_ctx *ctx, const char *which, const char *vol, int try)
{
	struct vol_local *l;
	char name[sizeof(l->name)];

	snprintf(name, sizeof(name), "%s/%s", which, vol);
	pthread_mutex_lock(&ctx->mu);
	for (l = ctx->locals; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			break;
	if (l == NULL) {
		l = calloc(1, sizeof(*l));
		if (l == NULL) { /* degrade: no local serialisation */
			pthread_mutex_unlock(&ctx->mu);
			return 1;
		}
		snprintf(l->name, sizeof(l->name), "%s", name);
		l->next = ctx->locals;
		ctx->locals = l;
	}
	if (try && l->busy) {
		pthread_mutex_unlock(&ctx->mu);
		return 0;
	}
	l->refs++;
	while (l->busy)
		pthread_cond_wait(&ctx->local_cv, &ctx->mu);
	l->busy = 1;
	pthread_mutex_unlock(&ctx->mu);
	return 1;
}

void vf_vol_local_leave(struct vf_ctx *ctx, const char *which, const char *vol)
{
	struct vol_local **pp, *l;
	char name[sizeof(l->name)];

	snprintf(name, sizeof(name), "%s/%s", which, vol);
	pthread_mutex_lock(&ctx->mu);
	for (pp = &ctx->locals; (l = *pp) != NULL; pp = &l->next)
		if (strcmp(l->name, name) == 0) {
			l->busy = 0;
			if (--l->refs == 0) {
				*pp = l->next;
				free(l);
			}
			break;
		}
	pthread_cond_broadcast(&ctx->local_cv);
	pthread_mutex_unlock(&ctx->mu);
}

struct vf_kv_lease *vf_ctx_lease_get(struct vf_ctx *ctx)
{
	pthread_rwlock_rdlock(&ctx->lease_rw);
	return ctx->lease;
}

void vf_ctx_lease_put(struct vf_ctx *ctx)
{
	pthread_rwlock_unlock(&ctx->lease_rw);
}

int vf_ctx_status(struct vf_ctx *ctx, struct vf_ctx_status *st)
{
	int mw, ms;

	if (ctx == NULL || st == NULL)
		return VF_EINVAL;
	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&ctx->lease_rw);
	if (ctx->lease)
		snprintf(st->lease_id, sizeof(st->lease_id), "%s", ctx->lease->id);
	pthread_rwlock_unlock(&ctx->lease_rw);
	st->lease_ttl_s = ctx->lease_ttl_s;
	pthread_mutex_lock(&ctx->mu);
	st->manager = ctx->mgr != NULL;
	mw = ms = 0;
	if (ctx->mgr)
		ctx->mgr_hooks->status(ctx, &mw, &ms);
	st->watchers = ctx->nwaits + mw;
	st->servers = ms;
	pthread_mutex_unlock(&ctx->mu);
	return VF_OK;
}

static void ctx_lease_lost(struct vf_kv_lease *lease, void *arg)
{
	struct vf_ctx *ctx = arg;

	pthread_mutex_lock(&ctx->mu);
	if (strcmp(lease->id, ctx->lease_id) == 0 && !ctx->stopping) {
		ctx->lease_lost = 1;
		pthread_cond_broadcast(&ctx->cv);
	}
	pthread_mutex_unlock(&ctx->mu);
}

int vf_ctx_grant(struct vf_ctx *ctx, struct vf_err *err)
{
	struct vf_kv_lease *l = NULL;
	int rc = ctx->kv->ops->lease_grant(ctx->kv, ctx->lease_ttl_s, 0, ctx_lease_lost, ctx, &l,
	                                   err);

	if (rc != VF_OK)
		return vf_err_prefix(err, "node %s: cannot grant the process lease", ctx->node_id);
	/* node/<node> lives exactly as long as the lease: a lease without it would
	 * let evict take this live host for a dead one, so no key, no lease */
	rc = vf_node_announce(ctx, l, err);
	if (rc != VF_OK) {
		ctx->kv->ops->lease_revoke(ctx->kv, &l, NULL);
		return rc;
	}
	/* the write lock only to swap the pointer: readers never wait on the store */
	pthread_rwlock_wrlock(&ctx->lease_rw);
	pthread_mutex_lock(&ctx->mu);
	ctx->lease = l;
	snprintf(ctx->lease_id, sizeof(ctx->lease_id), "%s", l->id);
	ctx->lease_gen++;
	vf_metrics_gauge_set(VF_G_LEASE_HELD, 1);
	pthread_cond_broadcast(&ctx->cv); /* operations waiting for a new lease */
	pthread_mutex_unlock(&ctx->mu);
	pthread_rwlock_unlock(&ctx->lease_rw);
	return VF_OK;
}

void vf_ctx_lease_gone(struct vf_ctx *ctx, struct vf_kv_lease *lease)
{
	if (lease)
		ctx_lease_lost(lease, ctx);
}

unsigned vf_ctx_lease_gen(struct vf_ctx *ctx)
{
	unsigned g;

	pthread_mutex_lock(&ctx->mu);
	g = ctx->lease_gen;
	pthread_mutex_unlock(&ctx->mu);
	return g;
}

void vf_ctx_lease_wait(struct vf_ctx *ctx, unsigned gen, int64_t deadline)
{
	pthread_mutex_lock(&ctx->mu);
	while (ctx->lease_gen == gen && !ctx->stopping && vf_now_ms() < deadline)
		vf_cond_wait_ms(&ctx->cv, &ctx->mu, 100);
	pthread_mutex_unlock(&ctx->mu);
}

/* ---- locks, and locks left held by requests whose answer was lost ---- */
static void vol_dirty_note(struct vf_ctx *ctx, const char *which, const char *vol,
                           const char *lease_id)
{
	struct vol_dirty *d;

	pthread_mutex_lock(&ctx->mu);
	for (d = ctx->dirty; d; d = d->next)
		if (strcmp(d->which, which) == 0 && strcmp(d->vol, vol) == 0 &&
		    strcmp(d->lease_id, lease_id) == 0)
			break;
	if (d == NULL && (d = calloc(1, sizeof(*d))) != NULL) {
		snprintf(d->which, sizeof(d->which), "%s", which);
		snprintf(d->vol, sizeof(d->vol), "%s", vol);
		snprintf(d->lease_id, sizeof(d->lease_id), "%s", lease_id);
		d->next = ctx->dirty;
		ctx->dirty = d;
		pthread_cond_broadcast(&ctx->cv); /* the lease thread sweeps */
	}
	pthread_mutex_unlock(&ctx->mu);
}

size_t vf_vol_dirty_count(struct vf_ctx *ctx)
{
	size_t n = 0;

	pthread_mutex_lock(&ctx->mu);
	for (struct vol_dirty *d = ctx->dirty; d; d = d->next)
		n++;
	pthread_mutex_unlock(&ctx->mu);
	return n;
}

/* May a failed lock() have left the lock held or our waiter queued? */
static int vol_lock_maybe_left(int rc)
{
	return rc == VF_EUNCERTAIN || rc == VF_EUNAVAIL || rc == VF_ETIMEDOUT || rc == VF_EPROTO;
}

int vf_vol_lock(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *which, const char *vol,
                int timeout_ms, const char *const *reads, size_t nreads,
                struct vf_kv_result *reads_r, struct vf_kv_lock **lock_r, struct vf_err *err)
{
	char name[512];
	int rc;

	*lock_r = NULL;
	if (lease == NULL)
		return vf_err_set(err, VF_ELEASE, "volume %s: node %s has no lease right now", vol,
		                  ctx->node_id);
	vf_vol_lock_name(ctx, name, sizeof(name), which, vol);
	rc = ctx->kv->ops->lock(ctx->kv, lease, name, timeout_ms, reads, nreads, reads_r, lock_r,
	                        err);
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	else if (vol_lock_maybe_left(rc))
		vol_dirty_note(ctx, which, vol, lease->id);
	return rc;
}

int vf_vol_lock_many(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *which,
                     const char *const *vols, size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                     struct vf_kv_lock **locks_r, struct vf_err *err)
{
	char(*names)[512] = NULL;
	const char **np = NULL;
	int rc;

	for (size_t i = 0; i < n; i++)
		locks_r[i] = NULL;
	if (lease == NULL)
		return vf_err_set(err, VF_ELEASE, "node %s has no lease right now", ctx->node_id);
	if (ctx->kv->ops->lock_many == NULL)
		return vf_err_set(err, VF_ENOTSUP, "backend %s has no lock_many",
		                  ctx->kv->ops->name);
	names = calloc(n, sizeof(*names));
	np = calloc(n, sizeof(*np));
	if (names == NULL || np == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory locking %zu volumes", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		vf_vol_lock_name(ctx, names[i], sizeof(names[i]), which, vols[i]);
		np[i] = names[i];
	}
	rc = ctx->kv->ops->lock_many(ctx->kv, lease, np, n, cmps, ncmp, locks_r, err);
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	else if (vol_lock_maybe_left(rc))
		for (size_t i = 0; i < n; i++)
			vol_dirty_note(ctx, which, vols[i], lease->id);
out:
	free(names);
	free(np);
	return rc;
}

void vf_vol_unlock(struct vf_ctx *ctx, struct vf_kv_lease *lease, const char *which,
                   const char *vol, struct vf_kv_lock **lock)
{
	struct vf_err e = {0};
	int rc;

	if (*lock == NULL)
		return;
	rc = ctx->kv->ops->unlock(ctx->kv, lock, &e);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease);
	else if (rc != VF_OK && lease)
		vol_dirty_note(ctx, which, vol, lease->id);
}

/* Take and release each noted lock (lease thread; mu not held). Stops at the
 * first store error: the store is down, try again later. */
static void ctx_sweep(struct vf_ctx *ctx)
{
	struct vol_dirty *list, *keep = NULL;
	int down = 0;

	pthread_mutex_lock(&ctx->mu);
	list = ctx->dirty;
	ctx->dirty = NULL;
	pthread_mutex_unlock(&ctx->mu);
	while (list) {
		struct vol_dirty *d = list;
		struct vf_kv_lease *lease;
		int left = 0;

		list = d->next;
		lease = vf_ctx_lease_get(ctx);
		if (down) {
			left = 1;
		} else if (lease && strcmp(lease->id, d->lease_id) == 0) {
			/* under the local mutex: no thread of ours holds it meanwhile */
			if (vf_vol_local_enter(ctx, d->which, d->vol, 1)) {
				struct vf_kv_lock *lk = NULL;
				struct vf_err e = {0};
				char name[512];
				int rc;

				vf_vol_lock_name(ctx, name, sizeof(name), d->which, d->vol);
				rc = ctx->kv->ops->lock(ctx->kv, lease, name, 0, NULL, 0, NULL, &lk,
				                        &e);
				if (rc == VF_OK) {
					rc = ctx->kv->ops->unlock(ctx->kv, &lk, &e);
					if (rc == VF_OK)
						vf_log(VF_LOG_INFO,
						       "volume %s: released lock %s left held by a "
						       "request whose answer was lost",
						       d->vol, name);
				}
				left = vol_lock_maybe_left(rc);
				down = left;
				vf_vol_local_leave(ctx, d->which, d->vol);
			} else {
				left = 1; /* an operation of ours is on it: later */
			}
		} /* else: an earlier lease's locks ended with it */
		vf_ctx_lease_put(ctx);
		if (left) {
			d->next = keep;
			keep = d;
		} else {
			free(d);
		}
	}
	pthread_mutex_lock(&ctx->mu);
	while (keep) {
		struct vol_dirty *d = keep;

		keep = d->next;
		d->next = ctx->dirty;
		ctx->dirty = d;
	}
	pthread_mutex_unlock(&ctx->mu);
}

/* Waits for lease loss; then stops acting as manager, re-grants, resumes. The
 * lease pointer is NULL while a new one is sought (operations then fail with
 * VF_ELEASE or wait for it within their own deadline, never on the store). */
void *vf_ctx_lease_thread(void *arg)
{
	struct vf_ctx *ctx = arg;

	pthread_mutex_lock(&ctx->mu);
	for (;;) {
		struct vf_kv_lease *old;

		while (!ctx->lease_lost && !ctx->stopping) {

			if (ctx->dirty == NULL) {
				pthread_cond_wait(&ctx->cv, &ctx->mu);
				continue;
			}
			/* locks possibly left held: release them (again in 0.5 s
			 * while the store does not answer) */
			pthread_mutex_unlock(&ctx->mu);
			ctx_sweep(ctx);
			pthread_mutex_lock(&ctx->mu);
			if (ctx->dirty == NULL || ctx->lease_lost || ctx->stopping)
				continue;
			vf_cond_wait_ms(&ctx->cv, &ctx->mu, 500);
		}
		if (ctx->stopping)
			break;
		int renew = ctx->lease_renew;

		ctx->lease_renew = 0;
		pthread_mutex_unlock(&ctx->mu);
		if (renew)
			vf_log(VF_LOG_INFO,
			       "node %s: dropping lease %s (manager duties stopped: the server "
			       "records bound to it go with it), granting a new lease",
			       ctx->node_id, ctx->lease_id);
		else
			vf_log(VF_LOG_ERR,
			       "node %s: LEASE %s LOST: stopping manager duties and this node's "
			       "file servers, granting a new lease",
			       ctx->node_id, ctx->lease_id);
		/* a manager being started or stopped meanwhile (mgr_mu busy): its
		 * stop stops the servers; a new one is not suspended and its
		 * records under the old lease go with it */
		if (pthread_mutex_trylock(&ctx->mgr_mu) == 0) {
			if (ctx->mgr)
				ctx->mgr_hooks->lease_lost(ctx);
			pthread_mutex_unlock(&ctx->mgr_mu);
		}
		pthread_rwlock_wrlock(&ctx->lease_rw);
		old = ctx->lease;
		ctx->lease = NULL;
		vf_metrics_gauge_set(VF_G_LEASE_HELD, 0);
		pthread_rwlock_unlock(&ctx->lease_rw);
		if (old)
			ctx->kv->ops->lease_revoke(ctx->kv, &old, NULL);
		for (;;) {
			struct vf_err e = {0};
			int stop;

			pthread_mutex_lock(&ctx->mu);
			ctx->lease_lost = 0;
			stop = ctx->stopping;
			pthread_mutex_unlock(&ctx->mu);
			if (stop || vf_ctx_grant(ctx, &e) == VF_OK)
				break;
			vf_log(VF_LOG_ERR, "%s (retrying)", e.msg);
			struct timespec ts = {0, 500000000L};

			nanosleep(&ts, NULL);
		}
		pthread_rwlock_rdlock(&ctx->lease_rw);
		old = ctx->lease;
		pthread_rwlock_unlock(&ctx->lease_rw);
		if (old)
			vf_log(VF_LOG_WARN, "node %s: new lease %s granted", ctx->node_id,
			       ctx->lease_id);
		pthread_mutex_lock(&ctx->mgr_mu);
		if (ctx->mgr && old)
			ctx->mgr_hooks->lease_back(ctx);
		pthread_mutex_unlock(&ctx->mgr_mu);
		pthread_mutex_lock(&ctx->mu);
	}
	pthread_mutex_unlock(&ctx->mu);
	return NULL;
}
