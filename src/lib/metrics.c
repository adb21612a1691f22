/* Process-wide metrics: lock-free counters and histograms, a counting shim store
 * handle, and their Prometheus text exposition (served by metrics_http.c). */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common_int.h"
#include "metrics_int.h"

/* ---- storage ---- */

/* Histogram bucket upper bounds in ms (Prometheus "le", printed in seconds). */
static const int64_t metrics_bounds_ms[] = {1,   5,    10,   25,   50,    100,   250,
                                            500, 1000, 2500, 5000, 10000, 30000, 60000};
#define METRICS_NBOUNDS (sizeof(metrics_bounds_ms) / sizeof(metrics_bounds_ms[0]))

struct metrics_hist {
	atomic_uint_fast64_t buckets[METRICS_NBOUNDS + 1]; /* last: +Inf only */
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_ms;
};

/* Store slots whose errors are counted, and error kinds (index -code). */
static const char *const metrics_kv_ops[] = {
        "get",          "list",        "put",
        "cas",          "del",         "cas_del",
        "txn",          "lease_grant", "lease_keepalive",
        "lease_revoke", "lock",        "unlock",
        "watch",        "compact",     "lock_many",
        "other",
};
#define METRICS_NOPS (sizeof(metrics_kv_ops) / sizeof(metrics_kv_ops[0]))
static const char *const metrics_kinds[] = {
        "ok",  "notfound", "conflict", "uncertain", "unavail",  "proto",   "nomem", "notsup",
        "abi", "auth",     "limit",    "busy",      "timedout", "invalid", "lease", "other",
};
#define METRICS_NKINDS (sizeof(metrics_kinds) / sizeof(metrics_kinds[0]))

static atomic_uint_fast64_t metrics_counters[VF_M_NCOUNTERS];
static struct metrics_hist metrics_hists[VF_H_NHISTS];
static atomic_uint_fast64_t metrics_kv_errs[METRICS_NOPS][METRICS_NKINDS];

void vf_metrics_inc(enum vf_metric m)
{
	if ((unsigned)m < VF_M_NCOUNTERS)
		atomic_fetch_add_explicit(&metrics_counters[m], 1, memory_order_relaxed);
}

static atomic_int_fast64_t metrics_gauges[VF_G_NGAUGES];
static atomic_int metrics_etcd_set; /* an embedded-cluster gauge was set */
static vf_metrics_health_fn metrics_health_fn;
static void *metrics_health_arg;

void vf_metrics_gauge_set(enum vf_metric_gauge g, int64_t v)
{
	if ((unsigned)g >= VF_G_NGAUGES)
		return;
	atomic_store_explicit(&metrics_gauges[g], v, memory_order_relaxed);
	if (g >= VF_G_ETCD_MEMBERS)
		atomic_store_explicit(&metrics_etcd_set, 1, memory_order_relaxed);
}

int64_t vf_metrics_gauge_get(enum vf_metric_gauge g)
{
	if ((unsigned)g >= VF_G_NGAUGES)
		return 0;
	return atomic_load_explicit(&metrics_gauges[g], memory_order_relaxed);
}

void vf_metrics_health_set(vf_metrics_health_fn fn, void *arg)
{
	metrics_health_fn = fn;
	metrics_health_arg = arg;
}

int vf_metrics_health(struct vf_err *err)
{
	if (metrics_health_fn)
		return metrics_health_fn(metrics_health_arg, err);
	if (!vf_metrics_gauge_get(VF_G_LEASE_HELD))
		return vf_err_set(err, VF_ELEASE, "no lease held");
	if (!vf_metrics_gauge_get(VF_G_STORE_UP))
		return vf_err_set(err, VF_EUNAVAIL, "the store did not answer the last request");
	return VF_OK;
}

void vf_metrics_add(enum vf_metric m, uint64_t n)
{
	if ((unsigned)m < VF_M_NCOUNTERS)
		atomic_fetch_add_explicit(&metrics_counters[m], n, memory_order_relaxed);
}

uint64_t vf_metrics_get(enum vf_metric m)
{
	if ((unsigned)m >= VF_M_NCOUNTERS)
		return 0;
	return atomic_load_explicit(&metrics_counters[m], memory_order_relaxed);
}

void vf_metrics_observe_ms(enum vf_metric_hist h, int64_t ms)
{
	struct metrics_hist *hi;
	size_t b = 0;

	if ((unsigned)h >= VF_H_NHISTS)
		return;
	hi = &metrics_hists[h];
	if (ms < 0)
		ms = 0;
	while (b < METRICS_NBOUNDS && ms > metrics_bounds_ms[b])
		b++;
	atomic_fetch_add_explicit(&hi->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hi->sum_ms, (uint_fast64_t)ms, memory_order_relaxed);
	atomic_fetch_add_explicit(&hi->count, 1, memory_order_relaxed);
}

uint64_t vf_metrics_hist_count(enum vf_metric_hist h)
{
	if ((unsigned)h >= VF_H_NHISTS)
		return 0;
	return atomic_load_explicit(&metrics_hists[h].count, memory_order_relaxed);
}

void vf_metrics_kv_error(const char *op, int code)
{
	size_t o = 0, k;

	if (code == VF_OK || code == VF_ENOTFOUND)
		return;
	while (o + 1 < METRICS_NOPS && strcmp(metrics_kv_ops[o], op) != 0)
		o++;
	k = code < 0 && (size_t)-code < METRICS_NKINDS - 1 ? (size_t)-code : METRICS_NKINDS - 1;
	atomic_fetch_add_explicit(&metrics_kv_errs[o][k], 1, memory_order_relaxed);
}

void vf_metrics_reset(void)
{
	for (size_t i = 0; i < VF_M_NCOUNTERS; i++)
		atomic_store(&metrics_counters[i], 0);
	atomic_store(&metrics_etcd_set, 0);
	for (size_t h = 0; h < VF_H_NHISTS; h++) {
		for (size_t b = 0; b <= METRICS_NBOUNDS; b++)
			atomic_store(&metrics_hists[h].buckets[b], 0);
		atomic_store(&metrics_hists[h].count, 0);
		atomic_store(&metrics_hists[h].sum_ms, 0);
	}
	for (size_t o = 0; o < METRICS_NOPS; o++)
		for (size_t k = 0; k < METRICS_NKINDS; k++)
			atomic_store(&metrics_kv_errs[o][k], 0);
	for (size_t g = 0; g < VF_G_NGAUGES; g++)
		atomic_store(&metrics_gauges[g], 0);
}

/* ---- exposition ---- */

static uint64_t metrics_load(atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static void metrics_family(struct vf_buf *b, const char *name, const char *type, const char *help)
{
	vf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A counter family with result="ok"/"error". */
static void metrics_results(struct vf_buf *b, const char *name, const char *help, enum vf_metric ok,
                            enum vf_metric bad)
{
	metrics_family(b, name, "counter", help);
	vf_buf_printf(b, "%s{result=\"ok\"} %llu\n", name,
	              (unsigned long long)metrics_load(&metrics_counters[ok]));
	vf_buf_printf(b, "%s{result=\"error\"} %llu\n", name,
	              (unsigned long long)metrics_load(&metrics_counters[bad]));
}

static void metrics_hist_render(struct vf_buf *b, const char *name, const char *help,
                                enum vf_metric_hist h)
{
	struct metrics_hist *hi = &metrics_hists[h];
	uint64_t cum = 0, count, sum;

	/* read count first: buckets may then only be ahead, never behind it */
	count = metrics_load(&hi->count);
	sum = metrics_load(&hi->sum_ms);
	metrics_family(b, name, "histogram", help);
	for (size_t i = 0; i < METRICS_NBOUNDS; i++) {
		cum += metrics_load(&hi->buckets[i]);
		vf_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		              (double)metrics_bounds_ms[i] / 1000.0,
		              (unsigned long long)(cum < count ? cum : count));
	}
	vf_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
	vf_buf_printf(b, "%s_sum %.3f\n", name, (double)sum / 1000.0);
	vf_buf_printf(b, "%s_count %llu\n", name, (unsigned long long)count);
}

/* Error kinds whose series exist from the start (0) for every slot, so that
 * rate() and alerts see them before the first error: the store failing, not a
 * lost race (conflict, busy) nor a missing key. */
static int metrics_kind_always(size_t k)
{
	static const int always[] = {-VF_EUNCERTAIN, -VF_EUNAVAIL,  -VF_EPROTO,
	                             -VF_EAUTH,      -VF_ETIMEDOUT, -VF_ELEASE};

	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if ((size_t)always[i] == k)
			return 1;
	return 0;
}

static void metrics_gauge(struct vf_buf *b, const char *name, const char *help,
                          enum vf_metric_gauge g)
{
	metrics_family(b, name, "gauge", help);
	vf_buf_printf(b, "%s %lld\n", name, (long long)vf_metrics_gauge_get(g));
}

int vf_metrics_render(char **text_r, size_t *len_r, struct vf_err *err)
{
	struct vf_buf b = {0};

	*text_r = NULL;
	metrics_family(&b, "vfile_build_info", "gauge", "vfile version of this process.");
	vf_buf_printf(&b, "vfile_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	metrics_results(&b, "vfile_mounts_total", "Mount requests answered, by result.",
	                VF_M_MOUNTS, VF_M_MOUNT_ERRORS);
	metrics_results(&b, "vfile_unmounts_total", "Unmount requests answered, by result.",
	                VF_M_UNMOUNTS, VF_M_UNMOUNT_ERRORS);
	metrics_results(&b, "vfile_server_starts_total",
	                "File servers started by this manager, by result.", VF_M_SERVER_STARTS,
	                VF_M_SERVER_START_ERRORS);
	metrics_results(&b, "vfile_server_stops_total",
	                "File servers stopped by this manager, by result.", VF_M_SERVER_STOPS,
	                VF_M_SERVER_STOP_ERRORS);
	metrics_family(&b, "vfile_watch_resyncs_total", "counter",
	               "Watch resyncs (store history lost: the watcher re-lists).");
	vf_buf_printf(&b, "vfile_watch_resyncs_total %llu\n",
	              (unsigned long long)metrics_load(&metrics_counters[VF_M_WATCH_RESYNCS]));
	metrics_family(&b, "vfile_reconcile_runs_total", "counter", "Reconciler passes.");
	vf_buf_printf(&b, "vfile_reconcile_runs_total %llu\n",
	              (unsigned long long)metrics_load(&metrics_counters[VF_M_RECONCILE_RUNS]));
	metrics_family(&b, "vfile_evictions_total", "counter",
	               "Volumes a dead host was evicted from (vfilectl evict, evict_after_s).");
	vf_buf_printf(&b, "vfile_evictions_total %llu\n",
	              (unsigned long long)metrics_load(&metrics_counters[VF_M_EVICTIONS]));
	if (atomic_load_explicit(&metrics_etcd_set, memory_order_relaxed)) {
		static const struct {
			const char *name, *help;
		} gs[VF_G_NGAUGES - VF_G_ETCD_MEMBERS] = {
		        {"vfile_etcd_members", "Embedded cluster: members (voters and learners)."},
		        {"vfile_etcd_voters", "Embedded cluster: voting members."},
		        {"vfile_etcd_learners", "Embedded cluster: learners."},
		        {"vfile_etcd_healthy_members",
		         "Embedded cluster: members whose /health answered true."},
		        {"vfile_etcd_local_member", "1 when this host runs an embedded member."},
		};

		for (size_t i = 0; i < VF_G_NGAUGES - VF_G_ETCD_MEMBERS; i++) {
			metrics_family(&b, gs[i].name, "gauge", gs[i].help);
			vf_buf_printf(&b, "%s %lld\n", gs[i].name,
			              (long long)vf_metrics_gauge_get(VF_G_ETCD_MEMBERS + i));
		}
		metrics_family(&b, "vfile_etcd_member_changes_total", "counter",
		               "Embedded cluster: membership changes this host made (bootstrap, "
		               "add, promote, remove).");
		vf_buf_printf(
		        &b, "vfile_etcd_member_changes_total %llu\n",
		        (unsigned long long)metrics_load(&metrics_counters[VF_M_MEMBER_CHANGES]));
	}
	metrics_family(&b, "vfile_kv_errors_total", "counter",
	               "Store calls that did not succeed, by slot and kind (conflict and busy "
	               "are lost races, not failures).");
	for (size_t o = 0; o < METRICS_NOPS; o++)
		for (size_t k = 1; k < METRICS_NKINDS; k++) {
			uint64_t v = metrics_load(&metrics_kv_errs[o][k]);

			if (v || metrics_kind_always(k))
				vf_buf_printf(
				        &b, "vfile_kv_errors_total{op=\"%s\",kind=\"%s\"} %llu\n",
				        metrics_kv_ops[o], metrics_kinds[k], (unsigned long long)v);
		}
	metrics_family(&b, "vfile_volumes", "gauge",
	               "Volumes by state, as the last reconcile pass listed them (managers).");
	vf_buf_printf(&b, "vfile_volumes{state=\"Ready\"} %lld\n",
	              (long long)vf_metrics_gauge_get(VF_G_VOLUMES_READY));
	vf_buf_printf(&b, "vfile_volumes{state=\"Mounted\"} %lld\n",
	              (long long)vf_metrics_gauge_get(VF_G_VOLUMES_MOUNTED));
	metrics_gauge(&b, "vfile_servers_running", "File servers this daemon runs.", VF_G_SERVERS);
	metrics_gauge(&b, "vfile_local_mounts", "Volumes mounted on this host by this daemon.",
	              VF_G_LOCAL_MOUNTS);
	metrics_gauge(&b, "vfile_lease_held", "1 while this daemon holds its store lease.",
	              VF_G_LEASE_HELD);
	metrics_gauge(&b, "vfile_store_up",
	              "1 if the store answered this daemon's last request (or health probe).",
	              VF_G_STORE_UP);
	metrics_gauge(&b, "vfile_last_reconcile_timestamp_seconds",
	              "Unix time of the last reconcile pass (managers; 0: none yet).",
	              VF_G_LAST_RECONCILE);
	metrics_hist_render(&b, "vfile_lock_wait_seconds",
	                    "Time spent acquiring a store lock (acquired or not).", VF_H_LOCK_WAIT);
	metrics_hist_render(&b, "vfile_mount_duration_seconds", "Duration of mount requests.",
	                    VF_H_MOUNT);
	metrics_hist_render(&b, "vfile_unmount_duration_seconds", "Duration of unmount requests.",
	                    VF_H_UNMOUNT);
	metrics_hist_render(&b, "vfile_server_start_duration_seconds",
	                    "Duration of file-server starts.", VF_H_SERVER_START);
	if (b.data == NULL) {
		vf_buf_free(&b);
		return vf_err_set(err, VF_ENOMEM, "metrics: out of memory");
	}
	*text_r = b.data;
	if (len_r)
		*len_r = b.len;
	return VF_OK;
}

/* ---- the counting store shim ---- */

struct metrics_kv {
	struct vf_kv base; /* first */
	struct vf_kv_ops ops;
	struct vf_kv *in;
};

struct metrics_watch {
	struct vf_kv_watch *in;
	vf_kv_watch_fn fn;
	void *arg;
};

#define MKV_IN(kv) (((struct metrics_kv *)(kv))->in)

static int metrics_count(const char *op, int rc)
{
	vf_metrics_kv_error(op, rc);
	/* reached or not: an answer of any kind (a compare failed, a key missing,
	 * a lock busy or waited out) is the store up */
	vf_metrics_gauge_set(VF_G_STORE_UP, rc != VF_EUNAVAIL && rc != VF_EUNCERTAIN);
	return rc;
}

static void metrics_kv_close(struct vf_kv *kv)
{
	struct vf_kv *in = MKV_IN(kv);

	in->ops->close(in);
	free(kv);
}

static int metrics_kv_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
                          struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("get", in->ops->get(in, key, pair_r, err));
}

static int metrics_kv_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                           struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("list", in->ops->list(in, prefix, list_r, err));
}

static int metrics_kv_put(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                          struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("put", in->ops->put(in, key, value, value_len, lease, mod_rev_r, err));
}

static int metrics_kv_cas(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                          int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                          struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count(
	        "cas", in->ops->cas(in, key, value, value_len, expect, lease, mod_rev_r, err));
}

static int metrics_kv_del(struct vf_kv *kv, const char *key, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("del", in->ops->del(in, key, err));
}

static int metrics_kv_cas_del(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("cas_del", in->ops->cas_del(in, key, expect, err));
}

static int metrics_kv_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
                          const struct vf_kv_op *ops, size_t nops, struct vf_kv_txn_result *res_r,
                          struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("txn", in->ops->txn(in, cmps, ncmp, ops, nops, res_r, err));
}

static int metrics_kv_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags,
                                  vf_kv_lease_lost_fn lost, void *arg, struct vf_kv_lease **lease_r,
                                  struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("lease_grant",
	                     in->ops->lease_grant(in, ttl_s, flags, lost, arg, lease_r, err));
}

static int metrics_kv_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease,
                                      struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("lease_keepalive", in->ops->lease_keepalive(in, lease, err));
}

static int metrics_kv_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("lease_revoke", in->ops->lease_revoke(in, lease, err));
}

static int metrics_kv_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name,
                           int timeout_ms, const char *const *reads, size_t nreads,
                           struct vf_kv_result *reads_r, struct vf_kv_lock **lock_r,
                           struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);
	int64_t t0 = vf_now_ms();
	int rc = in->ops->lock(in, lease, name, timeout_ms, reads, nreads, reads_r, lock_r, err);

	vf_metrics_observe_ms(VF_H_LOCK_WAIT, vf_now_ms() - t0);
	return metrics_count("lock", rc);
}

static int metrics_kv_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease,
                                const char *const *names, size_t n, const struct vf_kv_cmp *cmps,
                                size_t ncmp, struct vf_kv_lock **locks_r, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("lock_many",
	                     in->ops->lock_many(in, lease, names, n, cmps, ncmp, locks_r, err));
}

static int metrics_kv_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("unlock", in->ops->unlock(in, lock, err));
}

static int metrics_watch_cb(const struct vf_kv_event *ev, void *arg)
{
	struct metrics_watch *mw = arg;

	if (ev->type == VF_EV_RESYNC)
		vf_metrics_inc(VF_M_WATCH_RESYNCS);
	return mw->fn(ev, mw->arg);
}

static int metrics_kv_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev,
                                  vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
                                  struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);
	struct metrics_watch *mw = calloc(1, sizeof(*mw));
	int rc;

	*watch_r = NULL;
	if (mw == NULL)
		return vf_err_set(err, VF_ENOMEM, "watch %s: out of memory", prefix);
	mw->fn = fn;
	mw->arg = arg;
	rc = in->ops->watch_start(in, prefix, after_rev, metrics_watch_cb, mw, &mw->in, err);
	if (rc != VF_OK) {
		free(mw);
		return metrics_count("watch", rc);
	}
	*watch_r = (struct vf_kv_watch *)mw;
	return VF_OK;
}

static void metrics_kv_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	struct vf_kv *in = MKV_IN(kv);
	struct metrics_watch *mw = (struct metrics_watch *)*watch;

	if (mw == NULL)
		return;
	in->ops->watch_stop(in, &mw->in);
	free(mw);
	*watch = NULL;
}

static int metrics_kv_compact(struct vf_kv *kv, int64_t revision, struct vf_err *err)
{
	struct vf_kv *in = MKV_IN(kv);

	return metrics_count("compact", in->ops->compact(in, revision, err));
}

int vf_metrics_kv_wrap(struct vf_kv *inner, struct vf_kv **kv_r, struct vf_err *err)
{
	const struct vf_kv_ops *o = inner->ops;
	struct metrics_kv *m = calloc(1, sizeof(*m));

	*kv_r = NULL;
	if (m == NULL)
		return vf_err_set(err, VF_ENOMEM, "metrics: out of memory");
	m->in = inner;
	m->ops.abi_version = o->abi_version;
	m->ops.name = o->name;
	m->ops.caps = o->caps;
	/* global_init, global_fini and open belong to the module, not to a handle */
	m->ops.close = metrics_kv_close;
#define METRICS_SLOT(s) m->ops.s = o->s ? metrics_kv_##s : NULL
	METRICS_SLOT(get);
	METRICS_SLOT(list);
	METRICS_SLOT(put);
	METRICS_SLOT(cas);
	METRICS_SLOT(del);
	METRICS_SLOT(cas_del);
	METRICS_SLOT(txn);
	METRICS_SLOT(lease_grant);
	METRICS_SLOT(lease_keepalive);
	METRICS_SLOT(lease_revoke);
	METRICS_SLOT(lock);
	METRICS_SLOT(unlock);
	METRICS_SLOT(watch_start);
	METRICS_SLOT(watch_stop);
	METRICS_SLOT(compact);
	METRICS_SLOT(lock_many);
#undef METRICS_SLOT
	m->base.ops = &m->ops;
	m->base.max_txn_ops = inner->max_txn_ops;
	m->base.min_lease_ttl_s = inner->min_lease_ttl_s;
	*kv_r = &m->base;
	return VF_OK;
}
