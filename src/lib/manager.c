/*
 * The volume manager, manager side: one prefix watch per family and process
 * (start_trigger/, stop_trigger/, server/), a small worker pool that runs the
 * handlers of different volumes in parallel and those of one volume one at a
 * time, and a level-triggered reconciler (reconcile.c: at start, after every
 * RESYNC and every reconcile_ms) that lists each family once per pass and
 * finishes what was left undone. This file holds the served set, the job
 * queue and restart batches, the trigger claims, the workers, the watches and
 * the lifecycle; what each job does is in handlers.c. The key semantics and
 * write order are in volume.c.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "metrics_int.h"
#include "mgr_int.h"

static const char *const mgr_job_names[] = {"start",     "stop",        "check",        "restart",
                                            "idle-stop", "orphan-stop", "restart-batch"};

static void mgr_batch_free(struct mgr_batch *b)
{
	for (size_t i = 0; b && i < b->n; i++)
		free(b->info[i]);
	free(b);
}

/* ---- served set ---- */
int mgr_serves(struct mgr *m, const char *vol)
{
	int r;

	pthread_mutex_lock(&m->mu);
	r = vf_strmap_get(&m->served, vol) != NULL;
	pthread_mutex_unlock(&m->mu);
	return r;
}

void mgr_served_set(struct mgr *m, const char *vol, int on)
{
	pthread_mutex_lock(&m->mu);
	if (on)
		vf_strmap_put(&m->served, vol);
	else
		vf_strmap_del(&m->served, vol);
	vf_metrics_gauge_set(VF_G_SERVERS, (int64_t)m->served.n);
	pthread_mutex_unlock(&m->mu);
}

/* Copy of any served volume into vol (MGR_NAME); 0 if none. */
static int mgr_served_any(struct mgr *m, char *vol)
{
	const char *k;

	pthread_mutex_lock(&m->mu);
	k = vf_strmap_any(&m->served);
	if (k)
		snprintf(vol, MGR_NAME, "%s", k);
	pthread_mutex_unlock(&m->mu);
	return k != NULL;
}

void mgr_fs_stop(struct mgr *m, const char *vol, const char *why)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_err e = {0};

	vf_log(VF_LOG_INFO, "volume %s: stopping its file server on %s (%s)", vol, ctx->node_id,
	       why);
	if (ctx->fs->stop(ctx->fs_arg, vol, NULL, &e) != VF_OK)
		vf_log(VF_LOG_ERR, "volume %s: file server stop failed: %s", vol, e.msg);
	mgr_served_set(m, vol, 0);
}

/* ---- job queue ---- */
void mgr_enqueue(struct mgr *m, const char *vol, int kind)
{
	struct mgr_job *j;

	if (!vf_volume_name_valid(vol))
		return;
	char qk[MGR_NAME + 16];
	struct vf_strmap_node *q;

	snprintf(qk, sizeof(qk), "%d/%s", kind, vol);
	pthread_mutex_lock(&m->mu);
	if (m->stop)
		goto out;
	q = vf_strmap_put(&m->queued, qk);
	if (q && q->val == (void *)1)
		goto out; /* already queued and not started: it will read fresh state */
	j = calloc(1, sizeof(*j));
	if (j == NULL || q == NULL) {
		free(j);
		if (q)
			vf_strmap_del(&m->queued, qk);
		vf_log(VF_LOG_ERR, "volume %s: out of memory queueing a %s job", vol,
		       mgr_job_names[kind]);
		goto out;
	}
	q->val = (void *)1; /* a marker, not freed (vf_strmap_del hands it back) */
	snprintf(j->vol, sizeof(j->vol), "%s", vol);
	j->kind = kind;
	if (m->tail)
		m->tail->next = j;
	else
		m->head = j;
	m->tail = j;
	pthread_cond_signal(&m->job_cv);
out:
	pthread_mutex_unlock(&m->mu);
}

/* Volumes per restart batch: lock_many takes n names + 2n compares, the record
 * txn n compares + 4n ops; 0 when the backend cannot lock many at once. */
size_t mgr_batch_size(const struct vf_ctx *ctx)
{
	size_t k = ctx->kv->max_txn_ops / 5;

	if (ctx->kv->ops->lock_many == NULL || k < 2)
		return 0;
	return k < MGR_BATCH_MAX ? k : MGR_BATCH_MAX;
}

/* Queue the batch *bp (a single restart when it holds one volume). */
void mgr_batch_flush(struct mgr *m, struct mgr_batch **bp)
{
	struct mgr_batch *b = *bp;
	struct mgr_job *j;

	*bp = NULL;
	if (b == NULL || b->n == 0) {
		mgr_batch_free(b);
		return;
	}
	if (b->n == 1) {
		mgr_enqueue(m, b->vol[0], JOB_RESTART);
		mgr_batch_free(b);
		return;
	}
	pthread_mutex_lock(&m->mu);
	j = m->stop ? NULL : calloc(1, sizeof(*j));
	if (j) {
		j->kind = JOB_RESTART_BATCH;
		j->batch = b;
		snprintf(j->vol, sizeof(j->vol), "%s", b->vol[0]);
		for (size_t i = 0; i < b->n; i++) {
			char qk[MGR_NAME + 16];
			struct vf_strmap_node *q;

			snprintf(qk, sizeof(qk), "%d/%s", JOB_RESTART, b->vol[i]);
			if ((q = vf_strmap_put(&m->queued, qk)) != NULL)
				q->val = (void *)1;
		}
		if (m->tail)
			m->tail->next = j;
		else
			m->head = j;
		m->tail = j;
		pthread_cond_signal(&m->job_cv);
	}
	pthread_mutex_unlock(&m->mu);
	if (j == NULL) {
		for (size_t i = 0; i < b->n; i++)
			mgr_enqueue(m, b->vol[i], JOB_RESTART);
		mgr_batch_free(b);
	}
}

/* Add a restart of vol (state/<vol> Mounted at state_rev, info as listed) to
 * the batch *bp, queueing it when full. */
void mgr_batch_add(struct mgr *m, struct mgr_batch **bp, const char *vol, int64_t state_rev,
                   const char *info)
{
	size_t max = mgr_batch_size(m->ctx);
	char qk[MGR_NAME + 16], *icopy = NULL;
	int queued;

	snprintf(qk, sizeof(qk), "%d/%s", JOB_RESTART, vol);
	pthread_mutex_lock(&m->mu);
	queued = vf_strmap_get(&m->queued, qk) != NULL || vf_strmap_get(&m->bbusy, vol) != NULL;
	pthread_mutex_unlock(&m->mu);
	if (queued)
		return; /* its job will read fresh state, or a batch restarts it now */
	if (max == 0 || (info && (icopy = strdup(info)) == NULL) ||
	    (*bp == NULL && (*bp = calloc(1, sizeof(**bp))) == NULL)) {
		free(icopy);
		mgr_enqueue(m, vol, JOB_RESTART);
		return;
	}
	snprintf((*bp)->vol[(*bp)->n], MGR_NAME, "%s", vol);
	(*bp)->info[(*bp)->n] = icopy;
	(*bp)->state_rev[(*bp)->n++] = state_rev;
	if ((*bp)->n >= max)
		mgr_batch_flush(m, bp);
}

/* A worker takes batch b: volume i is its own (marked in bbusy at once, so that
 * no reconcile pass between the take and the run batches it again), another
 * batch's, or busy with a single job (back to a single restart). Caller holds
 * mu. */
static void mgr_batch_claim(struct mgr *m, struct mgr_batch *b, size_t i)
{
	int busy = 0;

	b->claim[i] = BATCH_SKIP;
	if (vf_strmap_get(&m->bbusy, b->vol[i]))
		return; /* another batch restarts it right now */
	for (int w = 0; w < m->nworkers && !busy; w++)
		busy = strcmp(m->busy[w], b->vol[i]) == 0;
	b->claim[i] = busy || vf_strmap_put(&m->bbusy, b->vol[i]) == NULL ? BATCH_BACK : BATCH_MINE;
}

/* A job on vol ended: passes that listed before now skip its restart. Caller
 * holds mu. */
static void mgr_settled(struct mgr *m, const char *vol)
{
	struct vf_strmap_node *x = vf_strmap_put(&m->settled, vol);

	if (x)
		x->val = (void *)++m->done_seq;
}

/* The first queued job whose volume no worker is busy with (caller holds mu). */
static struct mgr_job *mgr_take(struct mgr *m, int self)
{
	struct mgr_job **pp, *j, *prev = NULL;

	for (pp = &m->head; (j = *pp) != NULL; prev = j, pp = &j->next) {
		char qk[MGR_NAME + 16];
		int busy = 0;

		for (int i = 0; i < m->nworkers && !busy && j->batch == NULL; i++)
			busy = i != self && strcmp(m->busy[i], j->vol) == 0;
		if (busy || (j->batch == NULL && vf_strmap_get(&m->bbusy, j->vol)))
			continue;
		*pp = j->next;
		if (m->tail == j)
			m->tail = prev;
		for (size_t b = 0; j->batch && b < j->batch->n; b++) {
			snprintf(qk, sizeof(qk), "%d/%s", JOB_RESTART, j->batch->vol[b]);
			vf_strmap_del(&m->queued, qk);
			mgr_batch_claim(m, j->batch, b);
		}
		if (j->batch == NULL) {
			snprintf(qk, sizeof(qk), "%d/%s", j->kind, j->vol);
			vf_strmap_del(&m->queued, qk);
		}
		return j;
	}
	return NULL;
}

/* ---- claims ---- */
enum { C_TRIG = 0, C_MARK, C_CLAIM, C_SERVER, C_N };

/* A server or claim value ("<node> <lease>[ <n>]") written by this node under an
 * EARLIER lease of its own: this process lost that lease (and stopped its
 * servers then), so the record is dead even while the store still keeps the
 * old lease alive (a revoke that did not reach it: the keys stay until its
 * TTL runs out). cur is "<node> <current lease>". */
int mgr_stale_mine(const struct vf_ctx *ctx, const char *value, const char *cur)
{
	size_t nl = strlen(ctx->node_id), cl = strlen(cur);

	if (value == NULL || strncmp(value, ctx->node_id, nl) != 0 || value[nl] != ' ')
		return 0;
	return !(strncmp(value, cur, cl) == 0 && (value[cl] == ' ' || value[cl] == '\0'));
}

/* Claim the trigger of family kind (0 start, 1 stop) for vol: 1 won, 0 nothing
 * to do or another manager won, < 0 a store error. *claim_r: the claim value. */
static int mgr_claim(struct mgr *m, const char *vol, int stop, char *claim, size_t csize,
                     char keys[C_N][512], struct vf_kv_lease *lease)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv_op g[C_N];
	struct vf_kv_txn_result res = {0};
	struct vf_err e = {0};
	char mval[32], mine[200];
	int64_t t, mk;
	int rc, orphan = 0, stale = 0;

	vf_vol_key(ctx, keys[C_TRIG], 512, stop ? VK_STOP_TRIGGER : VK_START_TRIGGER, vol);
	vf_vol_key(ctx, keys[C_MARK], 512, stop ? VK_STOP_MARKER : VK_START_MARKER, vol);
	vf_vol_key(ctx, keys[C_CLAIM], 512, stop ? VK_STOP_CLAIM : VK_START_CLAIM, vol);
	vf_vol_key(ctx, keys[C_SERVER], 512, VK_SERVER, vol);
	for (int i = 0; i < C_N; i++)
		g[i] = (struct vf_kv_op){.kind = VF_OP_GET, .key = keys[i]};
	rc = ctx->kv->ops->txn(ctx->kv, NULL, 0, g, C_N, &res, &e);
	if (rc != VF_OK || res.count != C_N) {
		vf_log(VF_LOG_WARN, "volume %s: cannot read %s trigger/marker: %s", vol,
		       stop ? "stop" : "start", e.msg);
		vf_kv_txn_result_clear(&res);
		return rc != VF_OK ? rc : VF_EPROTO;
	}
	t = vf_vol_num(&res.results[C_TRIG]);
	mk = vf_vol_num(&res.results[C_MARK]);
	snprintf(mine, sizeof(mine), "%s %s ", ctx->node_id, lease->id);
	mine[strlen(mine) - 1] = '\0';
	stale = res.results[C_CLAIM].found &&
	        mgr_stale_mine(ctx, res.results[C_CLAIM].pair.value, mine);
	if (stop && res.results[C_SERVER].found &&
	    strcmp(res.results[C_SERVER].pair.value, mine) != 0 &&
	    !mgr_stale_mine(ctx, res.results[C_SERVER].pair.value, mine)) {
		/* only the serving manager stops its server (it stops it before the
		 * state can be Ready, so no other manager can start a second one);
		 * if it dies, its server key goes and any manager may act */
		vf_kv_txn_result_clear(&res);
		return 0;
	}
	strcat(mine, " ");
	if (res.results[C_CLAIM].found &&
	    strncmp(res.results[C_CLAIM].pair.value, mine, strlen(mine)) == 0) {
		/* our own unfinished claim (an uncertain claim txn that landed): this
		 * process runs one handler per volume at a time, so nobody works on it */
		snprintf(claim, csize, "%s", res.results[C_CLAIM].pair.value);
		vf_kv_txn_result_clear(&res);
		return 1;
	}
	if (t <= mk) {
		/* nothing new; but a claim whose claimant's lease died is re-claimable */
		orphan = mk > 0 && res.results[C_MARK].found &&
		         (!res.results[C_CLAIM].found || stale);
		if (!orphan) {
			vf_kv_txn_result_clear(&res);
			return 0;
		}
		t = mk;
		vf_log(VF_LOG_WARN,
		       "volume %s: %s marker %" PRId64 " has no live claim: its "
		       "manager died; taking it over",
		       vol, stop ? "stop" : "start", mk);
	}
	snprintf(mval, sizeof(mval), "%" PRId64, t);
	snprintf(claim, csize, "%s %s %" PRId64, ctx->node_id, lease->id, t);
	struct vf_kv_cmp c[] = {
	        {.kind = VF_CMP_VERSION_EQ,
	         .key = keys[C_MARK],
	         .mod_rev = res.results[C_MARK].found ? res.results[C_MARK].pair.mod_rev : 0},
	        {.kind = VF_CMP_ABSENT, .key = keys[C_CLAIM]}};

	if (orphan && stale) /* our own claim of an earlier lease: replace exactly it */
		c[1] = (struct vf_kv_cmp){.kind = VF_CMP_VERSION_EQ,
		                          .key = keys[C_CLAIM],
		                          .mod_rev = res.results[C_CLAIM].pair.mod_rev};
	struct vf_kv_op o[] = {
	        {.kind = VF_OP_PUT, .key = keys[C_MARK], .value = mval, .value_len = strlen(mval)},
	        {.kind = VF_OP_PUT,
	         .key = keys[C_CLAIM],
	         .value = claim,
	         .value_len = strlen(claim),
	         .lease = lease}};

	vf_kv_txn_result_clear(&res);
	rc = ctx->kv->ops->txn(ctx->kv, c, orphan ? 2 : 1, o, 2, NULL, &e);
	if (rc == VF_ECONFLICT)
		return 0; /* another manager won this trigger */
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	if (rc == VF_EUNCERTAIN) {
		struct vf_kv_pair p = {0};

		if (ctx->kv->ops->get(ctx->kv, keys[C_CLAIM], &p, NULL) == VF_OK &&
		    strcmp(p.value, claim) == 0)
			rc = VF_OK;
		vf_kv_pair_clear(&p);
	}
	if (rc != VF_OK) {
		/* uncertain: if it landed, the claim dies with our lease or our next
		 * pass takes it up again (its value names us) */
		vf_log(VF_LOG_WARN, "volume %s: claiming %s trigger %" PRId64 ": %s", vol,
		       stop ? "stop" : "start", t, e.msg);
		return rc;
	}
	vf_log(VF_LOG_DEBUG, "volume %s: %s trigger %" PRId64 " claimed by %s", vol,
	       stop ? "stop" : "start", t, ctx->node_id);
	return 1;
}

/* Mark our claim finished ("done <value>", no lease); or drop it (retry later). */
static void mgr_claim_end(struct mgr *m, const char *vol, const char *key, const char *claim,
                          int ok)
{
	struct vf_ctx *ctx = m->ctx;
	const char *sp = strrchr(claim, ' ');
	char done[64];
	struct vf_kv_cmp c = {
	        .kind = VF_CMP_VALUE_EQ, .key = key, .value = claim, .value_len = strlen(claim)};
	struct vf_kv_op o = {.kind = ok ? VF_OP_PUT : VF_OP_DELETE, .key = key};
	struct vf_err e = {0};
	int rc;

	snprintf(done, sizeof(done), "done %s", sp ? sp + 1 : "0");
	o.value = done;
	o.value_len = strlen(done);
	rc = ctx->kv->ops->txn(ctx->kv, &c, 1, &o, 1, NULL, &e);
	if (rc != VF_OK && rc != VF_ECONFLICT) /* conflict: removed, or our lease ended */
		vf_log(VF_LOG_WARN, "volume %s: cannot close claim %s: %s", vol, key, e.msg);
}

/* The worker is done with batch b, run or not: its volumes leave bbusy (a
 * volume left there is never restarted again by this process: no pass batches
 * it, no single restart of it is taken) and count as settled. */
static void mgr_batch_release(struct mgr *m, const struct mgr_batch *b)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < b->n; i++)
		if (b->claim[i] == BATCH_MINE) {
			vf_strmap_del(&m->bbusy, b->vol[i]);
			mgr_settled(m, b->vol[i]);
		}
	pthread_cond_broadcast(&m->job_cv);
	pthread_mutex_unlock(&m->mu);
}

/* A restart batch: keep the volumes no other job is on (marked in bbusy while
 * it runs), restart them at once; the rest, and a batch that cannot go as a
 * whole, go back as single restarts. */
static void mgr_run_batch(struct mgr *m, const struct mgr_batch *b, struct vf_kv_lease *lease)
{
	struct vf_ctx *ctx = m->ctx;
	const char *vols[MGR_BATCH_MAX];
	char *infos[MGR_BATCH_MAX];
	int64_t revs[MGR_BATCH_MAX];
	int mine[MGR_BATCH_MAX] = {0}, back[MGR_BATCH_MAX] = {0}, all_back = 0;
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++) { /* claimed by mgr_take */
		mine[i] = b->claim[i] == BATCH_MINE;
		back[i] = b->claim[i] == BATCH_BACK;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (!mine[i])
			continue;
		if (!vf_vol_local_enter(ctx, "state", b->vol[i], 1)) {
			back[i] = 1;
			continue;
		}
		vols[n] = b->vol[i];
		infos[n] = b->info[i];
		revs[n++] = b->state_rev[i];
	}
	if (n)
		mgr_do_restart_batch(m, vols, revs, infos, n, lease, &all_back);
	for (size_t i = 0; i < b->n; i++)
		if (mine[i] && !back[i])
			vf_vol_local_leave(ctx, "state", b->vol[i]);
	mgr_batch_release(m, b);
	for (size_t i = 0; i < b->n; i++)
		if (back[i] || (mine[i] && all_back))
			mgr_enqueue(m, b->vol[i], JOB_RESTART);
}

static void mgr_run(struct mgr *m, const struct mgr_job *j)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);
	char keys[C_N][512], claim[256];
	int suspended, won;

	pthread_mutex_lock(&m->mu);
	suspended = m->suspended;
	pthread_mutex_unlock(&m->mu);
	/* the failpoint: a batch taken just before the lease was found lost */
	if (lease == NULL || suspended ||
	    (j->batch && vf_failpoint_hit("mgr.batch_taken_suspended", j->vol))) {
		if (j->batch) /* taken, so its volumes are in bbusy: out again */
			mgr_batch_release(m, j->batch);
		goto out;
	}
	vf_log(VF_LOG_DEBUG, "volume %s: %s job", j->vol, mgr_job_names[j->kind]);
	switch (j->kind) {
	case JOB_START:
	case JOB_STOP:
		won = mgr_claim(m, j->vol, j->kind == JOB_STOP, claim, sizeof(claim), keys, lease);
		if (won <= 0)
			break;
		if (vf_failpoint_hit(j->kind == JOB_STOP ? "mgr.after_claim_stop"
		                                         : "mgr.after_claim_start",
		                     j->vol))
			break; /* "died" holding the claim */
		vf_vol_local_enter(ctx, "state", j->vol, 0);
		if (j->kind == JOB_START)
			won = mgr_do_start(m, j->vol, lease, 0);
		else
			won = mgr_do_stop(m, j->vol, lease);
		vf_vol_local_leave(ctx, "state", j->vol);
		/* a failed handler drops its claim: the reconciler retries it */
		mgr_claim_end(m, j->vol, keys[C_CLAIM], claim, won == VF_OK);
		break;
	case JOB_RESTART:
		vf_vol_local_enter(ctx, "state", j->vol, 0);
		mgr_do_start(m, j->vol, lease, 1);
		vf_vol_local_leave(ctx, "state", j->vol);
		break;
	case JOB_RESTART_BATCH:
		mgr_run_batch(m, j->batch, lease);
		break;
	case JOB_CHECK:
		mgr_do_check(m, j->vol, lease);
		break;
	case JOB_ORPHAN:
		mgr_do_orphan(m, j->vol);
		break;
	case JOB_IDLE:
		/* a host operation of this process on the volume: not idle */
		if (vf_vol_local_enter(ctx, "gref", j->vol, 1)) {
			mgr_do_idle(m, j->vol, lease);
			vf_vol_local_leave(ctx, "gref", j->vol);
		}
		break;
	}
out:
	vf_ctx_lease_put(ctx);
}

struct mgr_worker_arg {
	struct mgr *m;
	int self;
};

static void *mgr_worker(void *arg)
{
	struct mgr *m = ((struct mgr_worker_arg *)arg)->m;
	int self = ((struct mgr_worker_arg *)arg)->self;

	free(arg);
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		struct mgr_job *j = mgr_take(m, self);

		if (j == NULL) {
			pthread_cond_wait(&m->job_cv, &m->mu);
			continue;
		}
		/* a batch marks its volumes in bbusy itself */
		snprintf(m->busy[self], MGR_NAME, "%s", j->batch ? "" : j->vol);
		pthread_mutex_unlock(&m->mu);
		mgr_run(m, j);
		mgr_batch_free(j->batch);
		free(j);
		pthread_mutex_lock(&m->mu);
		if (m->busy[self][0])
			mgr_settled(m, m->busy[self]);
		m->busy[self][0] = '\0';
		pthread_cond_broadcast(&m->job_cv);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- watches ---- */
struct mgr_watch_arg {
	struct mgr *m;
	int family;
};

static void mgr_request_reconcile(struct mgr *m)
{
	pthread_mutex_lock(&m->mu);
	m->rec_req = 1;
	pthread_cond_broadcast(&m->rec_cv);
	pthread_mutex_unlock(&m->mu);
}

static int mgr_watch_cb(const struct vf_kv_event *ev, void *arg)
{
	struct mgr_watch_arg *wa = arg;
	struct mgr *m = wa->m;
	char pre[512];
	size_t plen;

	if (ev->type == VF_EV_RESYNC) {
		vf_log(VF_LOG_WARN, "watch of %s%s/ lost history: reconciling", m->ctx->prefix,
		       vf_vol_family[wa->family]);
		mgr_request_reconcile(m);
		return 0;
	}
	plen = (size_t)snprintf(pre, sizeof(pre), "%s%s/", m->ctx->prefix,
	                        vf_vol_family[wa->family]);
	if (strncmp(ev->key, pre, plen) != 0)
		return 0;
	const char *vol = ev->key + plen;

	switch (wa->family) {
	case VK_START_TRIGGER:
		if (ev->type == VF_EV_PUT) {
			/* a start asked for a volume we serve: removed and created
			 * again under us? (the check comes first: one job per volume
			 * at a time, in queue order) */
			if (mgr_serves(m, vol))
				mgr_enqueue(m, vol, JOB_CHECK);
			mgr_enqueue(m, vol, JOB_START);
		}
		break;
	case VK_STOP_TRIGGER:
		if (ev->type == VF_EV_PUT)
			mgr_enqueue(m, vol, JOB_STOP);
		break;
	case VK_SERVER:
		/* our own start recording us: nothing to check (one GET per start
		 * saved); a DELETE or another owner: check */
		if (mgr_serves(m, vol)) {
			char mine[200];
			int ours;

			pthread_mutex_lock(&m->ctx->mu);
			snprintf(mine, sizeof(mine), "%s %s", m->ctx->node_id, m->ctx->lease_id);
			pthread_mutex_unlock(&m->ctx->mu);
			ours = ev->type == VF_EV_PUT && ev->value_len == strlen(mine) &&
			       memcmp(ev->value, mine, ev->value_len) == 0;
			if (!ours)
				mgr_enqueue(m, vol, JOB_CHECK);
		}
		break;
	}
	return 0;
}

/* ---- lifecycle ---- */
static void mgr_free(struct mgr *m)
{
	while (m->head) {
		struct mgr_job *j = m->head;

		m->head = j->next;
		mgr_batch_free(j->batch);
		free(j);
	}
	vf_strmap_free(&m->served, 0);
	vf_strmap_free(&m->queued, 0);
	vf_strmap_free(&m->idle, 1);
	vf_strmap_free(&m->bbusy, 0);
	vf_strmap_free(&m->settled, 0);
	pthread_mutex_destroy(&m->pass_mu);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->job_cv);
	pthread_cond_destroy(&m->rec_cv);
	free(m);
}

static const struct vf_mgr_hooks mgr_hooks = {
        .lease_lost = vf_mgr_lease_lost,
        .lease_back = vf_mgr_lease_back,
        .status = vf_mgr_status,
        .stop = vf_mgr_stop,
};

int vf_mgr_start(struct vf_ctx *ctx, struct vf_err *err)
{
	static const int fams[3] = {VK_START_TRIGGER, VK_STOP_TRIGGER, VK_SERVER};
	struct mgr *m = calloc(1, sizeof(*m));
	int rc = VF_OK;

	if (m == NULL)
		return vf_err_set(err, VF_ENOMEM, "node %s: manager: out of memory", ctx->node_id);
	m->ctx = ctx;
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_init(&m->pass_mu, NULL);
	vf_cond_init(&m->job_cv);
	vf_cond_init(&m->rec_cv);
	m->rec_req = 1; /* the first pass runs at once */
	pthread_mutex_lock(&ctx->mu);
	ctx->mgr_hooks = &mgr_hooks;
	ctx->mgr = m;
	pthread_mutex_unlock(&ctx->mu);
	for (int i = 0; i < 3; i++) {
		struct mgr_watch_arg *wa = calloc(1, sizeof(*wa));
		char pre[512];

		if (wa == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "manager: out of memory");
			goto fail;
		}
		wa->m = m;
		wa->family = fams[i];
		snprintf(pre, sizeof(pre), "%s%s/", ctx->prefix, vf_vol_family[fams[i]]);
		/* the watch runs from now; the first reconcile pass covers the past */
		rc = ctx->kv->ops->watch_start(ctx->kv, pre, 0, mgr_watch_cb, wa, &m->watches[i],
		                               err);
		if (rc != VF_OK) {
			free(wa);
			vf_err_prefix(err, "node %s: cannot watch %s", ctx->node_id, pre);
			goto fail;
		}
		m->wargs[i] = wa;
	}
	for (int i = 0; i < MGR_WORKERS; i++) {
		struct mgr_worker_arg *a = calloc(1, sizeof(*a));

		if (a == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "manager: out of memory");
			goto fail;
		}
		a->m = m;
		a->self = i;
		if (pthread_create(&m->workers[i], NULL, mgr_worker, a) != 0) {
			free(a);
			rc = vf_err_set(err, VF_ENOMEM, "node %s: cannot start a worker",
			                ctx->node_id);
			goto fail;
		}
		m->nworkers++;
	}
	if (pthread_create(&m->rec_thr, NULL, mgr_reconciler, m) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "node %s: cannot start the reconciler",
		                ctx->node_id);
		goto fail;
	}
	m->rec_started = 1;
	vf_log(VF_LOG_INFO, "node %s: manager started (lease %s)", ctx->node_id, ctx->lease_id);
	return VF_OK;
fail:
	vf_mgr_stop(ctx);
	return rc;
}

void vf_mgr_stop(struct vf_ctx *ctx)
{
	struct mgr *m = ctx->mgr;

	if (m == NULL)
		return;
	for (int i = 0; i < 3; i++) {
		if (m->watches[i])
			ctx->kv->ops->watch_stop(ctx->kv, &m->watches[i]);
		free(m->wargs[i]);
		m->wargs[i] = NULL;
	}
	pthread_mutex_lock(&m->mu);
	m->stop = 1;
	pthread_cond_broadcast(&m->job_cv);
	pthread_cond_broadcast(&m->rec_cv);
	pthread_mutex_unlock(&m->mu);
	for (int i = 0; i < m->nworkers; i++)
		pthread_join(m->workers[i], NULL);
	if (m->rec_started)
		pthread_join(m->rec_thr, NULL);
	/* this process no longer serves anything */
	{
		char vol[MGR_NAME];

		while (mgr_served_any(m, vol))
			mgr_fs_stop(m, vol, "manager shutting down");
	}
	pthread_mutex_lock(&ctx->mu); /* vf_ctx_status reads it */
	ctx->mgr = NULL;
	pthread_mutex_unlock(&ctx->mu);
	mgr_free(m);
}

void vf_mgr_status(struct vf_ctx *ctx, int *watchers_r, int *servers_r)
{
	struct mgr *m = ctx->mgr;

	*watchers_r = *servers_r = 0;
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	for (int i = 0; i < 3; i++)
		*watchers_r += m->watches[i] != NULL;
	*servers_r = (int)m->served.n;
	pthread_mutex_unlock(&m->mu);
}

void vf_mgr_lease_lost(struct vf_ctx *ctx)
{
	struct mgr *m = ctx->mgr;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->suspended = 1;
	m->lease_epoch++;
	pthread_mutex_unlock(&m->mu);
	{
		char vol[MGR_NAME];

		while (mgr_served_any(m, vol))
			mgr_fs_stop(m, vol, "lease lost");
	}
}

void vf_mgr_lease_back(struct vf_ctx *ctx)
{
	struct mgr *m = ctx->mgr;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->suspended = 0;
	m->rec_req = 1;
	pthread_cond_broadcast(&m->rec_cv);
	pthread_mutex_unlock(&m->mu);
	vf_failpoint_hit("mgr.lease_back", "");
}

int vf_ctx_start_manager(struct vf_ctx *ctx, struct vf_err *err)
{
	if (ctx->fs == NULL || ctx->fs->start == NULL || ctx->fs->stop == NULL)
		return vf_err_set(err, VF_EINVAL, "node %s: a manager needs file-server start/stop",
		                  ctx->node_id);
	int rc = VF_OK, promoted = 0;

	pthread_mutex_lock(&ctx->mgr_mu);
	if (ctx->mgr)
		goto out;
	if (!ctx->manager) {
		promoted = 1;
		/* a promotion: node/<node> says so from now (vfilectl nodes) */
		struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);
		struct vf_err e = {0};

		ctx->manager = 1;
		if (lease && vf_node_announce(ctx, lease, &e) != VF_OK)
			vf_log(VF_LOG_WARN, "node %s: cannot record the manager role: %s",
			       ctx->node_id, e.msg);
		vf_ctx_lease_put(ctx);
	}
	rc = vf_mgr_start(ctx, err);
	if (rc != VF_OK && promoted) {
		struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);

		ctx->manager = 0;
		if (lease)
			(void)vf_node_announce(ctx, lease, NULL);
		vf_ctx_lease_put(ctx);
	}
out:
	pthread_mutex_unlock(&ctx->mgr_mu);
	return rc;
}

void vf_ctx_stop_manager(struct vf_ctx *ctx)
{
	int was;

	pthread_mutex_lock(&ctx->mgr_mu);
	was = ctx->mgr != NULL || ctx->manager;
	if (ctx->mgr)
		vf_mgr_stop(ctx); /* watchers, workers, reconciler, then every server */
	ctx->manager = 0;
	pthread_mutex_unlock(&ctx->mgr_mu);
	if (!was)
		return;
	/* server/<vol> (and the claims) are bound to the lease: drop it, the lease
	 * thread grants a new one (node/<node> then says worker). The other
	 * managers see those volumes Mounted without a server and restart them. */
	pthread_mutex_lock(&ctx->mu);
	if (!ctx->stopping) {
		ctx->lease_renew = 1;
		ctx->lease_lost = 1;
		pthread_cond_broadcast(&ctx->cv);
	}
	pthread_mutex_unlock(&ctx->mu);
}
