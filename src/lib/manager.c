/*
 * The volume manager, manager side: one prefix watch per family and process
 * (start_trigger/, stop_trigger/, server/), a small worker pool that runs the
 * handlers of different volumes in parallel and those of one volume one at a
 * time, and a level-triggered reconciler (reconcile.c: at start, after every
 * RESYNC and every reconcile_ms) that lists each family once per pass and
 * finishes what was left undone. The key semantics and write order are in
 * volume.c.
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

static void mgr_served_set(struct mgr *m, const char *vol, int on)
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

static void mgr_fs_stop(struct mgr *m, const char *vol, const char *why)
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

/* ---- handlers ---- */
enum { S_STATE = 0, S_GREF, S_INFO, S_SERVER, S_N };

/* Serve vol here unless it is served already (state lock held throughout).
 * restart: only a Mounted volume whose server is gone (the reconciler's lists
 * are not one snapshot: a volume it saw Mounted may be Ready by now, and then
 * nobody asked for a server). */
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

static int mgr_do_start(struct mgr *m, const char *vol, struct vf_kv_lease *lease, int restart)
{
	struct vf_ctx *ctx = m->ctx;
	char keys[S_N][512], sval[200];
	const char *reads[S_N];
	struct vf_kv_result rr[S_N];
	struct vf_kv_lock *lk = NULL;
	struct vf_err e = {0};
	char *addr = NULL, *info = NULL;
	int port = 0, rc, started = 0;

	memset(rr, 0, sizeof(rr));
	vf_vol_key(ctx, keys[S_STATE], 512, VK_STATE, vol);
	vf_vol_key(ctx, keys[S_GREF], 512, VK_GREF, vol);
	vf_vol_key(ctx, keys[S_INFO], 512, VK_INFO, vol);
	vf_vol_key(ctx, keys[S_SERVER], 512, VK_SERVER, vol);
	for (int i = 0; i < S_N; i++)
		reads[i] = keys[i];
	rc = vf_vol_lock(ctx, lease, "state", vol, ctx->op_timeout_ms, reads, S_N, rr, &lk, &e);
	if (rc != VF_OK) {
		vf_log(VF_LOG_ERR, "volume %s: start: cannot take the state lock: %s", vol, e.msg);
		goto out;
	}
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

/* The restart of every volume in vols[0..n) (all Mounted with no server when
 * listed, at revs; the caller is inside their local state mutexes), batched:
 * lock_many(state locks, [VERSION_EQ state, ABSENT server] each), one txn of
 * GETs of their info, the file servers started, one record txn for all. What a
 * batch cannot settle as a whole goes back to the caller (*back_r = 1: queue
 * single restarts) or is recorded volume by volume. */
static void mgr_do_restart_batch(struct mgr *m, const char *const *vols, const int64_t *revs,
                                 char *const *infos, size_t n, struct vf_kv_lease *lease,
                                 int *back_r)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv *kv = ctx->kv;
	char(*keys)[3][512] = calloc(n, sizeof(*keys));
	struct vf_kv_lock *locks[MGR_BATCH_MAX] = {0};
	struct vf_kv_cmp c[2 * MGR_BATCH_MAX];
	struct vf_kv_op o[4 * MGR_BATCH_MAX];
	char *addr[MGR_BATCH_MAX] = {0}, *info[MGR_BATCH_MAX] = {0}, sval[200];
	int port[MGR_BATCH_MAX], up[MGR_BATCH_MAX] = {0};
	size_t nc = 0, no = 0, nup = 0;
	struct vf_err e = {0};
	int rc, held = 1;

	*back_r = 0;
	if (keys == NULL) {
		*back_r = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		vf_vol_key(ctx, keys[i][0], 512, VK_STATE, vols[i]);
		vf_vol_key(ctx, keys[i][1], 512, VK_SERVER, vols[i]);
		vf_vol_key(ctx, keys[i][2], 512, VK_INFO, vols[i]);
		c[nc++] = (struct vf_kv_cmp){
		        .kind = VF_CMP_VERSION_EQ, .key = keys[i][0], .mod_rev = revs[i]};
		c[nc++] = (struct vf_kv_cmp){.kind = VF_CMP_ABSENT, .key = keys[i][1]};
	}
	rc = vf_vol_lock_many(ctx, lease, "state", vols, n, c, nc, locks, &e);
	if (rc != VF_OK) {
		/* held, changed since the listing, or too many: single restarts sort it
		 * out; a store error: the next pass */
		*back_r = rc == VF_EBUSY || rc == VF_ECONFLICT || rc == VF_ELIMIT ||
		          rc == VF_ENOTSUP || rc == VF_ENOMEM;
		vf_log(*back_r ? VF_LOG_DEBUG : VF_LOG_ERR,
		       "restart of %zu volumes (%s ...): cannot take their state locks at once: %s",
		       n, vols[0], e.msg);
		goto out;
	}
	/* info as listed is current: it is only written with state/<vol>, whose
	 * version the locks were taken at */
	snprintf(sval, sizeof(sval), "%s %s", ctx->node_id, lease->id);
	for (size_t i = 0; i < n; i++) {
		const char *old = infos[i];

		rc = ctx->fs->start(ctx->fs_arg, vols[i], old ? old : "{}", &addr[i], &port[i], &e);
		if (rc != VF_OK) {
			vf_log(VF_LOG_ERR, "volume %s: file server start failed on %s: %s", vols[i],
			       ctx->node_id, e.msg);
			continue;
		}
		mgr_served_set(m, vols[i], 1);
		up[i] = 1;
		if (vf_vol_info_with_server(vols[i], old, ctx->node_id, addr[i], port[i], &info[i],
		                            &e) != VF_OK) {
			vf_log(VF_LOG_ERR, "volume %s: %s", vols[i], e.msg);
			mgr_fs_stop(m, vols[i], "start not recorded");
			up[i] = 0;
		}
	}
	/* one record txn for all: what single starts would write, at one instant */
	nc = no = 0;
	for (size_t i = 0; i < n; i++) {
		if (up[i]) {
			nup++;
			/* LOCK_HELD alone: state/<vol> is written only under this lock, and
			 * lock_many took it at the listed version */
			c[nc++] = (struct vf_kv_cmp){.kind = VF_CMP_LOCK_HELD, .lock = locks[i]};
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = keys[i][2],
			                            .value = info[i],
			                            .value_len = strlen(info[i])};
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = keys[i][1],
			                            .value = sval,
			                            .value_len = strlen(sval),
			                            .lease = lease};
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = keys[i][0],
			                            .value = "Mounted",
			                            .value_len = 7};
		}
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = locks[i]};
	}
	rc = kv->ops->txn(kv, c, nc, o, no, NULL, &e);
	held = 0; /* released by that txn, or by unlock() below */
	if (rc != VF_OK)
		vf_log(VF_LOG_WARN, "restart of %zu volumes (%s ...): the record txn failed: %s%s",
		       n, vols[0], e.msg,
		       rc == VF_EUNCERTAIN ? " (reading back)" : " (recording one by one)");
	for (size_t i = 0; i < n; i++) {
		int ok;

		if (!up[i])
			continue;
		if (rc == VF_OK)
			ok = 1;
		else if (rc == VF_EUNCERTAIN)
			ok = mgr_server_is(ctx, keys[i][1], sval);
		else /* a compare failed for some: record each on its own */
			ok = mgr_record_start(ctx, vols[i], locks[i], revs[i], info[i], sval, lease,
			                      &e) == VF_OK;
		if (ok) {
			vf_log(VF_LOG_INFO, "volume %s: Mounted, served by %s at %s:%d (restarted)",
			       vols[i], ctx->node_id, addr[i], port[i]);
		} else {
			vf_log(VF_LOG_ERR, "volume %s: cannot record the restarted file server: %s",
			       vols[i], e.msg);
			mgr_fs_stop(m, vols[i], "start not recorded");
		}
	}
	if (rc == VF_ELEASE)
		vf_ctx_lease_gone(ctx, lease);
	vf_log(VF_LOG_DEBUG, "restart batch of %zu volumes (%s ...): %zu started", n, vols[0], nup);
out:
	if (held)
		mgr_batch_unlock(ctx, lease, vols, n, locks);
	for (size_t i = 0; i < n; i++)
		vf_vol_unlock(ctx, lease, "state", vols[i], &locks[i]);
	for (size_t i = 0; i < n; i++) {
		free(addr[i]);
		free(info[i]);
	}
	free(keys);
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
static int mgr_do_stop(struct mgr *m, const char *vol, struct vf_kv_lease *lease)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv *kv = ctx->kv;
	char keys[S_N][512], mine[200];
	const char *reads[S_N];
	struct vf_kv_result rr[S_N];
	struct vf_kv_lock *lk = NULL;
	struct vf_err e = {0};
	int rc, served_here;

	memset(rr, 0, sizeof(rr));
	vf_vol_key(ctx, keys[S_STATE], 512, VK_STATE, vol);
	vf_vol_key(ctx, keys[S_GREF], 512, VK_GREF, vol);
	vf_vol_key(ctx, keys[S_INFO], 512, VK_INFO, vol);
	vf_vol_key(ctx, keys[S_SERVER], 512, VK_SERVER, vol);
	for (int i = 0; i < S_N; i++)
		reads[i] = keys[i];
	snprintf(mine, sizeof(mine), "%s %s", ctx->node_id, lease->id);
	rc = vf_vol_lock(ctx, lease, "state", vol, ctx->op_timeout_ms, reads, S_N, rr, &lk, &e);
	if (rc != VF_OK) {
		vf_log(VF_LOG_ERR, "volume %s: stop: cannot take the state lock: %s", vol, e.msg);
		goto out;
	}
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
static void mgr_do_check(struct mgr *m, const char *vol, struct vf_kv_lease *lease)
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
static void mgr_do_orphan(struct mgr *m, const char *vol)
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
static void mgr_do_idle(struct mgr *m, const char *vol, struct vf_kv_lease *lease)
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

/* A restart batch: keep the volumes no other job is on (marked in bbusy while
 * it runs), restart them at once; the rest, and a batch that cannot go as a
 * whole, go back as single restarts. */
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
