/* The manager side's level-triggered reconciler (at start, after every RESYNC
 * and every reconcile_ms): lists each family once per pass and finishes what
 * was left undone (see manager.c). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "metrics_int.h"
#include "mgr_int.h"

/* ---- reconciler ---- */
static int64_t mgr_num(const struct vf_kv_pair *p)
{
	return p && p->value ? strtoll(p->value, NULL, 10) : 0;
}

static int mgr_pending(const struct vf_kv_pair *t, const struct vf_kv_pair *mk,
                       const struct vf_kv_pair *claim, const char *mine)
{
	if (mgr_num(t) > mgr_num(mk))
		return 1;
	if (claim && strncmp(claim->value, mine, strlen(mine)) == 0 &&
	    claim->value[strlen(mine)] == ' ')
		return 1;                              /* our own claim left unfinished */
	return mk && mgr_num(mk) > 0 && claim == NULL; /* orphaned claim */
}

/* The record p unless it is ours of an earlier lease (then: as if absent). */
static const struct vf_kv_pair *mgr_live_rec(const struct vf_ctx *ctx, const struct vf_kv_pair *p,
                                             const char *mine)
{
	return p && mgr_stale_mine(ctx, p->value, mine) ? NULL : p;
}

static int mgr_live_claim(const struct vf_kv_pair *claim)
{
	return claim && strncmp(claim->value, "done ", 5) != 0;
}

static void mgr_idle_note(struct mgr *m, const char *vol, const struct vf_kv_pair *s,
                          const struct vf_kv_pair *g, const struct vf_kv_pair *srv)
{
	int64_t sr = s->mod_rev, gr = g ? g->mod_rev : 0, vr = srv->mod_rev;
	struct vf_strmap_node *n = vf_strmap_put(&m->idle, vol);
	struct mgr_idle *x;

	if (n == NULL)
		return;
	if ((x = n->val) == NULL) {
		if ((x = n->val = calloc(1, sizeof(*x))) == NULL) {
			vf_strmap_del(&m->idle, vol);
			return;
		}
		snprintf(x->vol, MGR_NAME, "%s", vol);
	} else if (x->seen == m->pass - 1 && x->state_rev == sr && x->gref_rev == gr &&
	           x->server_rev == vr) {
		mgr_enqueue(m, vol, JOB_IDLE);
	}
	x->state_rev = sr;
	x->gref_rev = gr;
	x->server_rev = vr;
	x->seen = m->pass;
}

/* Drop the idle notes of volumes not seen idle in this pass. */
static void mgr_idle_prune(struct mgr *m)
{
	for (size_t i = 0; i < m->idle.nb; i++) {
		struct vf_strmap_node **pp = &m->idle.b[i], *x;

		while ((x = *pp) != NULL) {
			if (((struct mgr_idle *)x->val)->seen != m->pass) {
				*pp = x->next;
				free(x->val);
				free(x);
				m->idle.n--;
			} else {
				pp = &x->next;
			}
		}
	}
}

enum {
	L_STATE = 0,
	L_GREF,
	L_CLIENT,
	L_STRIG,
	L_SMARK,
	L_SCLAIM,
	L_PTRIG,
	L_PMARK,
	L_PCLAIM,
	L_SERVER,
	L_N
};
static const int mgr_lfam[L_N] = {VK_STATE,         VK_GREF,         -1,
                                  VK_START_TRIGGER, VK_START_MARKER, VK_START_CLAIM,
                                  VK_STOP_TRIGGER,  VK_STOP_MARKER,  VK_STOP_CLAIM,
                                  VK_SERVER};

/* One list of a reconcile pass, on its own thread: the lists of a pass go out
 * together (each is its own snapshot either way; every action a pass queues is
 * re-validated under a lock or a compare). */
struct mgr_lister {
	struct vf_kv *kv;
	const char *prefix;
	struct vf_kv_list *l;
	struct vf_err err;
	int rc;
};

static void *mgr_lister_run(void *arg)
{
	struct mgr_lister *a = arg;

	a->rc = a->kv->ops->list(a->kv, a->prefix, a->l, &a->err);
	return NULL;
}

struct mgr_rcand {
	const char *vol;
	int64_t state_rev;
};

/* Queue the restarts a pass found: batched (with info/ listed once, after the
 * states) when the backend can, else one job each. */
static void mgr_queue_restarts(struct mgr *m, struct mgr_rcand *c, size_t n, uintptr_t seq0)
{
	struct vf_ctx *ctx = m->ctx;
	struct vf_kv_list info = {0};
	struct mgr_batch *batch = NULL;
	struct vf_err e = {0};
	char pre[512];

	/* a job that ended on a volume since this pass listed it may have
	 * restarted it already: the next pass sees */
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < n;) {
		const struct vf_strmap_node *x = vf_strmap_get(&m->settled, c[i].vol);

		if (x && (uintptr_t)x->val > seq0)
			c[i] = c[--n];
		else
			i++;
	}
	/* no later pass listed before seq0 (passes run one at a time) */
	for (size_t b = 0; b < m->settled.nb; b++)
		for (struct vf_strmap_node *x = m->settled.b[b], *nx; x; x = nx) {
			nx = x->next;
			if ((uintptr_t)x->val <= seq0)
				vf_strmap_del(&m->settled, x->key);
		}
	pthread_mutex_unlock(&m->mu);
	snprintf(pre, sizeof(pre), "%s%s/", ctx->prefix, vf_vol_family[VK_INFO]);
	if (n < 2 || mgr_batch_size(ctx) == 0 ||
	    ctx->kv->ops->list(ctx->kv, pre, &info, &e) != VF_OK) {
		if (n >= 2 && mgr_batch_size(ctx))
			vf_log(VF_LOG_WARN, "reconcile: cannot list %s: %s (restarting one by one)",
			       pre, e.msg);
		for (size_t i = 0; i < n; i++)
			mgr_enqueue(m, c[i].vol, JOB_RESTART);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char k[1024];
		const struct vf_kv_pair *p;

		snprintf(k, sizeof(k), "%s%s", pre, c[i].vol);
		p = vf_kv_list_find(&info, k);
		mgr_batch_add(m, &batch, c[i].vol, c[i].state_rev, p ? p->value : NULL);
	}
	mgr_batch_flush(m, &batch);
	vf_kv_list_clear(&info);
}

/* The lists of a pass come from different revisions (one request per family):
 * a mount or unmount committing between the gref/ and the client/ lists makes
 * a consistent volume look inconsistent. Re-read vol alone: gref (its
 * version), its client keys, gref again. gref and the client keys change in
 * the same txn (gref == number of client keys), so when gref's version did not
 * move across the listing, the listing is of that same state. 1: inconsistent
 * (*gref_r, *n_r as re-read); 0: consistent or changed meanwhile (the next
 * pass looks again); < 0: a store error (not judged). */
static int mgr_recheck_clients(struct vf_ctx *ctx, const char *vol, int64_t *gref_r, size_t *n_r)
{
	char kg[512], cpre[512];
	struct vf_kv_pair g1 = {0}, g2 = {0};
	struct vf_kv_list cl = {0};
	int rc, r1, r2, r = 0;

	vf_vol_key(ctx, kg, sizeof(kg), VK_GREF, vol);
	snprintf(cpre, sizeof(cpre), "%sclient/%s/", ctx->prefix, vol);
	r1 = ctx->kv->ops->get(ctx->kv, kg, &g1, NULL);
	rc = ctx->kv->ops->list(ctx->kv, cpre, &cl, NULL);
	r2 = ctx->kv->ops->get(ctx->kv, kg, &g2, NULL);
	if ((r1 != VF_OK && r1 != VF_ENOTFOUND) || rc != VF_OK ||
	    (r2 != VF_OK && r2 != VF_ENOTFOUND)) {
		r = -1;
	} else if (r1 == r2 && (r1 == VF_ENOTFOUND || g1.mod_rev == g2.mod_rev)) {
		int64_t g = r1 == VF_OK ? mgr_num(&g1) : 0;

		/* a removed volume (gref absent, no clients) is consistent */
		if (g != (int64_t)cl.count) {
			*gref_r = g;
			*n_r = cl.count;
			r = 1;
		}
	}
	vf_kv_pair_clear(&g1);
	vf_kv_pair_clear(&g2);
	vf_kv_list_clear(&cl);
	return r;
}

/* One reconcile pass: its lists (one per family, pre[i] their prefixes), this
 * process's server value, and the restarts it found. */
struct mgr_pass {
	struct vf_kv_list l[L_N];
	char pre[L_N][512], mine[200];
	struct mgr_rcand *c;
	size_t n, cap;
	unsigned long epoch; /* m->lease_epoch before the lists were taken */
	uintptr_t seq0;      /* m->done_seq then */
};

/* Is pass p stale, for vol or (vol NULL) as a whole? As a whole: this process
 * lost its lease since p began (or is without one), so p's lists predate the
 * loss and its served set was emptied meanwhile; its restarts are left to the
 * pass that the lease's return asks for (which batches them). For vol, also: a
 * job on vol runs now (alone or in a batch) or ended since p began, so p's lists
 * show vol as it was (a check job that found server/<vol> gone stops the server
 * while the pass still lists the record as ours); the next pass lists again.
 * Call it after reading mgr_serves: the loss bumps the epoch before it stops
 * the servers, and a job's end (settled) and the clearing of its busy mark
 * happen under the lock taken here. */
static int mgr_pass_stale(struct mgr *m, const struct mgr_pass *p, const char *vol)
{
	const struct vf_strmap_node *x;
	int r;

	pthread_mutex_lock(&m->mu);
	r = m->suspended || m->lease_epoch != p->epoch ||
	    (vol && vf_strmap_get(&m->bbusy, vol) != NULL);
	for (int w = 0; vol && w < m->nworkers && !r; w++)
		r = strcmp(m->busy[w], vol) == 0;
	if (vol && !r && (x = vf_strmap_get(&m->settled, vol)) != NULL)
		r = (uintptr_t)x->val > p->seq0;
	pthread_mutex_unlock(&m->mu);
	return r;
}

/* One list per family per pass, all at once (on threads). */
static int mgr_pass_list(struct vf_ctx *ctx, struct mgr_pass *p, struct vf_err *err)
{
	struct mgr_lister la[L_N];
	pthread_t lt[L_N];
	int lstarted[L_N] = {0};
	int rc = VF_OK;

	for (int i = 0; i < L_N; i++) {
		la[i] = (struct mgr_lister){.kv = ctx->kv, .prefix = p->pre[i], .l = &p->l[i]};
		lstarted[i] = i > 0 && pthread_create(&lt[i], NULL, mgr_lister_run, &la[i]) == 0;
		if (!lstarted[i])
			mgr_lister_run(&la[i]);
	}
	for (int i = 0; i < L_N; i++) {
		if (lstarted[i])
			pthread_join(lt[i], NULL);
		if (la[i].rc != VF_OK && rc == VF_OK) {
			rc = la[i].rc;
			*err = la[i].err;
			vf_err_prefix(err, "reconcile: cannot list %s", p->pre[i]);
		}
	}
	return rc;
}

/* The volume gauges (Mounted and Ready) from the state/ list. */
static void mgr_pass_gauges(const struct mgr_pass *p)
{
	int64_t nm = 0, nv = 0;

	for (size_t i = 0; i < p->l[L_STATE].count; i++)
		if (vf_volume_name_valid(p->l[L_STATE].items[i].key + strlen(p->pre[L_STATE]))) {
			nv++;
			nm += strcmp(p->l[L_STATE].items[i].value, "Mounted") == 0;
		}
	vf_metrics_gauge_set(VF_G_VOLUMES_MOUNTED, nm);
	vf_metrics_gauge_set(VF_G_VOLUMES_READY, nv - nm);
}

/* The records of vol in each list but client/ (f[L_STATE] and f[L_CLIENT] are
 * left out); server and claims of an earlier lease of ours count as absent. */
static void mgr_pass_find(const struct vf_ctx *ctx, const struct mgr_pass *p, const char *vol,
                          const struct vf_kv_pair *f[L_N])
{
	char k[1024];

	for (int x = 1; x < L_N; x++) {
		f[x] = NULL;
		if (x == L_CLIENT)
			continue;
		snprintf(k, sizeof(k), "%s%s", p->pre[x], vol);
		f[x] = vf_kv_list_find(&p->l[x], k);
		if (x == L_SERVER || x == L_SCLAIM || x == L_PCLAIM)
			f[x] = mgr_live_rec(ctx, f[x], p->mine);
	}
}

/* The number of client/<vol>/ keys listed (the list is sorted). */
static size_t mgr_pass_clients(const struct mgr_pass *p, const char *vol)
{
	const struct vf_kv_list *cl = &p->l[L_CLIENT];
	char k[1024];
	size_t nclients = 0, lo = 0, hi = cl->count;

	snprintf(k, sizeof(k), "%s%s/", p->pre[L_CLIENT], vol);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(cl->items[mid].key, k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < cl->count && strncmp(cl->items[lo].key, k, strlen(k)) == 0; lo++)
		nclients++;
	return nclients;
}

/* Note a restart of vol (state/<vol> listed at state_rev) for the end of the
 * pass; queued at once when the list of them cannot grow. */
static void mgr_pass_restart(struct mgr *m, struct mgr_pass *p, const char *vol, int64_t state_rev)
{
	if (p->n == p->cap) {
		size_t nc = p->cap ? 2 * p->cap : 64;
		struct mgr_rcand *x = realloc(p->c, nc * sizeof(*x));

		if (x) {
			p->c = x;
			p->cap = nc;
		}
	}
	if (p->n < p->cap)
		p->c[p->n++] = (struct mgr_rcand){vol, state_rev};
	else
		mgr_enqueue(m, vol, JOB_RESTART);
}

/* What the pass finds for one volume (s: its state/ record): pending starts
 * and stops, a restart, an idle volume, a server left by a crashed daemon. */
static void mgr_pass_volume(struct mgr *m, struct mgr_pass *p, const struct vf_kv_pair *s)
{
	struct vf_ctx *ctx = m->ctx;
	const struct vf_kv_pair *f[L_N];
	const char *vol = s->key + strlen(p->pre[L_STATE]), *mine = p->mine;
	char k[1024];
	size_t nclients;

	if (!vf_volume_name_valid(vol))
		return;
	mgr_pass_find(ctx, p, vol, f);
	nclients = mgr_pass_clients(p, vol);
	int64_t gref = mgr_num(f[L_GREF]);
	int mounted = strcmp(s->value, "Mounted") == 0;
	int start_p = mgr_pending(f[L_STRIG], f[L_SMARK], f[L_SCLAIM], mine);
	int stop_p = mgr_pending(f[L_PTRIG], f[L_PMARK], f[L_PCLAIM], mine);

	if (gref != (int64_t)nclients && mgr_recheck_clients(ctx, vol, &gref, &nclients) == 1) {
		vf_failpoint_hit("mgr.inconsistent", vol);
		vf_log(VF_LOG_ERR,
		       "volume %s: INCONSISTENT: gref is %" PRId64 " but %zu client(s) "
		       "are listed",
		       vol, gref, nclients);
	}
	if (start_p)
		mgr_enqueue(m, vol, JOB_START);
	if (stop_p)
		mgr_enqueue(m, vol, JOB_STOP);
	if (mounted && f[L_SERVER] == NULL && !mgr_live_claim(f[L_SCLAIM]) &&
	    (gref > 0 || nclients > 0)) {
		vf_log(VF_LOG_WARN,
		       "volume %s: Mounted but its server's lease is gone: "
		       "restarting it",
		       vol);
		mgr_pass_restart(m, p, vol, s->mod_rev);
	} else if (f[L_SERVER] && strcmp(f[L_SERVER]->value, mine) == 0 && !mgr_serves(m, vol) &&
	           !mgr_live_claim(f[L_SCLAIM]) && !mgr_live_claim(f[L_PCLAIM]) &&
	           !mgr_pass_stale(m, p, vol)) {
		/* server/ names this process, which serves nothing for it: the
		 * restart (under the state lock) starts it again or, not
		 * Mounted, deletes the key */
		mgr_enqueue(m, vol, JOB_RESTART);
	} else if (mounted && f[L_SERVER] == NULL && !start_p && !stop_p &&
	           !mgr_live_claim(f[L_SCLAIM]) && !mgr_live_claim(f[L_PCLAIM])) {
		/* nobody mounts it and nobody serves it: no restart, a stop
		 * (unless a host holds the gref lock: a cold mount under way) */
		mgr_enqueue(m, vol, JOB_IDLE);
	}
	/* a server left running here by a daemon that crashed, while another
	 * live manager serves the volume: stop it */
	snprintf(k, sizeof(k), "%s%s", p->pre[L_SERVER], vol);
	{
		const struct vf_kv_pair *raw = vf_kv_list_find(&p->l[L_SERVER], k);

		if (raw && !mgr_names_node(ctx, raw->value) && ctx->fs->running &&
		    !mgr_serves(m, vol) && ctx->fs->running(ctx->fs_arg, vol))
			mgr_enqueue(m, vol, JOB_ORPHAN);
	}
	if (mounted && f[L_SERVER] && gref == 0 && nclients == 0 && !start_p && !stop_p &&
	    !mgr_live_claim(f[L_SCLAIM]) && !mgr_live_claim(f[L_PCLAIM]))
		mgr_idle_note(m, vol, s, f[L_GREF], f[L_SERVER]);
}

/* Servers this process runs that the store does not assign to it (server/
 * not ours, or the state absent or not Mounted, as listed): a check each. */
static void mgr_pass_check_served(struct mgr *m, const struct mgr_pass *p)
{
	char(*chk)[MGR_NAME] = NULL;
	size_t nchk = 0;

	pthread_mutex_lock(&m->mu);
	if (m->served.n)
		chk = calloc(m->served.n, sizeof(*chk));
	for (size_t b = 0; chk && b < m->served.nb; b++)
		for (struct vf_strmap_node *x = m->served.b[b]; x; x = x->next) {
			char k[1024];
			const struct vf_kv_pair *sp, *st;

			snprintf(k, sizeof(k), "%s%s", p->pre[L_SERVER], x->key);
			sp = vf_kv_list_find(&p->l[L_SERVER], k);
			snprintf(k, sizeof(k), "%s%s", p->pre[L_STATE], x->key);
			st = vf_kv_list_find(&p->l[L_STATE], k);
			if (sp == NULL || strcmp(sp->value, p->mine) != 0 || st == NULL ||
			    strcmp(st->value, "Mounted") != 0)
				snprintf(chk[nchk++], MGR_NAME, "%s", x->key);
		}
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < nchk; i++)
		mgr_enqueue(m, chk[i], JOB_CHECK);
	free(chk);
}

int vf_mgr_reconcile_now(struct vf_ctx *ctx, struct vf_err *err)
{
	struct mgr *m = ctx->mgr;
	struct mgr_pass p;
	int64_t t0;
	int rc;

	if (m == NULL)
		return vf_err_set(err, VF_EINVAL, "node %s is not a manager", ctx->node_id);
	memset(&p, 0, sizeof(p));
	pthread_mutex_lock(&m->pass_mu);
	for (int i = 0; i < L_N; i++)
		snprintf(p.pre[i], 512, "%s%s/", ctx->prefix,
		         mgr_lfam[i] < 0 ? "client" : vf_vol_family[mgr_lfam[i]]);
	pthread_mutex_lock(&m->mu);
	p.seq0 = m->done_seq;
	p.epoch = m->lease_epoch;
	pthread_mutex_unlock(&m->mu);
	t0 = vf_now_ms();
	rc = mgr_pass_list(ctx, &p, err);
	if (rc != VF_OK)
		goto out;
	vf_log(VF_LOG_DEBUG, "reconcile: %zu volumes listed in %" PRId64 " ms", p.l[L_STATE].count,
	       vf_now_ms() - t0);
	pthread_rwlock_rdlock(&ctx->lease_rw);
	snprintf(p.mine, sizeof(p.mine), "%s %s", ctx->node_id, ctx->lease_id);
	pthread_rwlock_unlock(&ctx->lease_rw);
	vf_failpoint_hit("mgr.pass_listed", "");
	m->pass++;
	vf_metrics_inc(VF_M_RECONCILE_RUNS);
	vf_metrics_gauge_set(VF_G_LAST_RECONCILE, (int64_t)time(NULL));
	mgr_pass_gauges(&p);
	for (size_t i = 0; i < p.l[L_STATE].count; i++)
		mgr_pass_volume(m, &p, &p.l[L_STATE].items[i]);
	if (p.n && mgr_pass_stale(m, &p, NULL)) {
		vf_log(VF_LOG_DEBUG,
		       "reconcile: the lease was lost during the pass: its %zu restarts are "
		       "left to the next pass",
		       p.n);
		p.n = 0;
	}
	mgr_queue_restarts(m, p.c, p.n, p.seq0);
	if (p.n)
		vf_log(VF_LOG_DEBUG, "reconcile: %zu restarts queued after %" PRId64 " ms", p.n,
		       vf_now_ms() - t0);
	mgr_idle_prune(m);
	mgr_pass_check_served(m, &p);
out:
	pthread_mutex_unlock(&m->pass_mu);
	for (int i = 0; i < L_N; i++)
		vf_kv_list_clear(&p.l[i]);
	free(p.c);
	return rc;
}

void *mgr_reconciler(void *arg)
{
	struct mgr *m = arg;
	struct vf_ctx *ctx = m->ctx;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		if (!m->rec_req) {
			vf_cond_wait_ms(&m->rec_cv, &m->mu, ctx->reconcile_ms);
			if (m->stop)
				break;
		}
		m->rec_req = 0;
		if (m->suspended)
			continue;
		pthread_mutex_unlock(&m->mu);
		struct vf_err e = {0};

		if (vf_mgr_reconcile_now(ctx, &e) != VF_OK)
			vf_log(VF_LOG_WARN, "node %s: %s", ctx->node_id, e.msg);
		else
			vf_node_auto_evict(ctx, &ctx->gone);
		vf_failpoint_hit("mgr.reconcile_done", "");
		pthread_mutex_lock(&m->mu);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}
