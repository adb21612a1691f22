/*
 * vfbench: how fast vfile coordinates, measured against the store itself in the
 * same run (issue 7). For each backend (etcd, Consul; servers started by the test
 * harness on free loopback ports) it measures:
 *  1. KV round trips per warm mount, warm unmount, cold mount (and the last
 *     unmount), counted through the counting shim (tests/memkv) on the host's
 *     and on the manager's handle;
 *  2. p50/p99 latency of the same operations, with the no-op ("none") file
 *     server, a manager context and host contexts in this process;
 *  3. mount+unmount cycles/s with 1, 4, 16 hosts on distinct volumes and on one
 *     shared volume (every volume pinned by one more host, so cycles stay warm);
 *  4. the store's raw ceiling through the same HTTP client (vf_http_*): put/s and
 *     3-put txn/s at the same concurrencies; for etcd its lock service
 *     (/v3/lock/lock + unlock, own lease) uncontended and with 4 contenders, and
 *     our lock slot the same way;
 *  5. contended hand-off latency (4 contenders), ours against etcd's service;
 *  6. scale: N volumes whose manager died (Mounted, hosts attached, server gone),
 *     a fresh manager in a child process (so its RSS is a daemon's): time until
 *     every volume is served again, time of one steady reconcile pass, VmRSS and
 *     VmHWM, and the watch streams it opened (for N/10 and N: must not grow).
 * Output: a table on stdout and a JSON file (--json PATH). --quick shortens it.
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common_int.h"
#include "fs_int.h"
#include "harness.h"
#include "memkv.h"
#include "volume_int.h"

extern char **environ;

/* ---- options ---- */
struct bn_opts {
	int quick;
	const char *json;
	int backends; /* bit 1 etcd, bit 2 consul */
	int iters;    /* latency samples per operation */
	int dur_ms;   /* per throughput point */
	int volumes;  /* scale */
	int verbose;
	const char *sections; /* lat,tp,raw,scale */
};
static struct bn_opts bn_o;

/* ---- results ---- */
struct bn_metric {
	char be[8];
	char name[64];
	double v;
	char unit[12];
	char note[160];
};
static struct bn_metric bn_m[400];
static size_t bn_nm;

struct bn_check {
	char be[8];
	char what[96];
	double v, limit;
	int ok;
	char note[160];
};
static struct bn_check bn_c[64];
static size_t bn_nc;

static void bn_put(const char *be, const char *name, double v, const char *unit, const char *fmt,
                   ...) VF_PRINTF(5, 6);
static void bn_put(const char *be, const char *name, double v, const char *unit, const char *fmt,
                   ...)
{
	struct bn_metric *m;
	va_list ap;

	if (bn_nm >= sizeof(bn_m) / sizeof(bn_m[0]))
		return;
	m = &bn_m[bn_nm++];
	snprintf(m->be, sizeof(m->be), "%s", be);
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->v = v;
	snprintf(m->unit, sizeof(m->unit), "%s", unit);
	m->note[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(m->note, sizeof(m->note), fmt, ap);
		va_end(ap);
	}
	printf("  %-7s %-34s %12.3f %-8s %s\n", be, name, v, unit, m->note);
	fflush(stdout);
}

static double bn_get(const char *be, const char *name)
{
	for (size_t i = 0; i < bn_nm; i++)
		if (strcmp(bn_m[i].be, be) == 0 && strcmp(bn_m[i].name, name) == 0)
			return bn_m[i].v;
	return NAN;
}

/* le: 1 when the value must be <= limit, 0 when >= limit. */
static void bn_check(const char *be, const char *what, double v, double limit, int le,
                     const char *note)
{
	struct bn_check *c;

	if (bn_nc >= sizeof(bn_c) / sizeof(bn_c[0]))
		return;
	c = &bn_c[bn_nc++];
	snprintf(c->be, sizeof(c->be), "%s", be);
	snprintf(c->what, sizeof(c->what), "%s", what);
	c->v = v;
	c->limit = limit;
	c->ok = !isnan(v) && (le ? v <= limit : v >= limit);
	snprintf(c->note, sizeof(c->note), "%s", note ? note : "");
}

/* ---- small helpers ---- */
static int64_t bn_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Every HTTP request of libvfile goes through curl_easy_perform (src/http.c). This
 * executable defines it and forwards to libcurl's, counting the requests and the
 * time spent in them per calling thread (a stream: until it ends): a cross-check of the counting
 * shim (an unlock() after a txn's VF_OP_UNLOCK is a slot call but no request) and the split between
 * time in the store and time in the client.
 */
static __thread unsigned long bn_http_n;
static __thread int64_t bn_http_us;
static __thread int bn_in_easy; /* curl_easy_perform adds to a multi itself */

CURLcode curl_easy_perform(CURL *c);
CURLcode curl_easy_perform(CURL *c)
{
	static CURLcode (*real)(CURL *);
	int64_t t0 = bn_us();
	CURLcode rc;

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "curl_easy_perform");
	if (real == NULL)
		return CURLE_FAILED_INIT;
	bn_in_easy = 1;
	rc = real(c);
	bn_in_easy = 0;
	bn_http_n++;
	bn_http_us += bn_us() - t0;
	return rc;
}

/* Streams (watches, lock waits) run in a multi handle (src/http.c): count them too. */
CURLMcode curl_multi_add_handle(CURLM *m, CURL *c);
CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
	static CURLMcode (*real)(CURLM *, CURL *);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "curl_multi_add_handle");
	if (real == NULL)
		return CURLM_INTERNAL_ERROR;
	if (!bn_in_easy)
		bn_http_n++;
	return real(m, c);
}

static int bn_dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Percentile p (0..100) of n samples (sorted in place), nearest rank. */
static double bn_pct(double *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), bn_dcmp);
	k = (size_t)ceil(p / 100.0 * (double)n);
	if (k < 1)
		k = 1;
	return v[k - 1];
}

static void bn_die(const char *fmt, ...) VF_PRINTF(1, 2);
static void bn_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vfbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static long bn_status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(field);

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* ---- one backend under test ---- */
struct bn_be {
	const char *name; /* "etcd", "consul" */
	struct vf_srv *srv;
	struct vf_backend *be;
	char snippet[1024];
	char endpoint[64];
	char prefix[32];
	char tmp[256]; /* mount root and fs state dir */
	const struct vf_fs_ops *fs;
	void *fs_arg;
	/* waits on the store, through an uncounted handle watching prefix */
	struct vf_kv *wkv;
	struct vf_kv_watch *watch;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned long gen;
};

static int bn_open_snippet(struct vf_backend *be, const char *name, const char *snippet,
                           struct vf_kv **kv_r, struct vf_err *err)
{
	config_t cfg;
	char *text = NULL;
	int rc;

	config_init(&cfg);
	if (asprintf(&text, "%s = { %s };", name, snippet) < 0) {
		config_destroy(&cfg);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if (config_read_string(&cfg, text) != CONFIG_TRUE)
		rc = vf_err_set(err, VF_EINVAL, "bad config snippet: %s", config_error_text(&cfg));
	else
		rc = vf_backend_open(be, config_lookup(&cfg, name), kv_r, err);
	config_destroy(&cfg);
	free(text);
	return rc;
}

static int bn_open(struct bn_be *b, struct vf_kv **kv_r, struct vf_err *err)
{
	return bn_open_snippet(b->be, b->name, b->snippet, kv_r, err);
}

static int bn_fs_open(const char *state_dir, const struct vf_fs_ops **ops_r, void **arg_r,
                      struct vf_err *err)
{
	config_t cfg;
	int rc;

	config_init(&cfg);
	if (config_read_string(&cfg, "fileserver = { driver = \"none\"; };") != CONFIG_TRUE)
		rc = vf_err_set(err, VF_EINVAL, "fileserver snippet: %s", config_error_text(&cfg));
	else
		rc = vf_fs_open(config_lookup(&cfg, "fileserver"), state_dir, ops_r, arg_r, err);
	config_destroy(&cfg);
	return rc;
}

static int bn_wcb(const struct vf_kv_event *ev, void *arg)
{
	struct bn_be *b = arg;

	pthread_mutex_lock(&b->mu);
	b->gen++;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

enum { W_EQ = 0, W_PREFIX };

/* Wait (watch, re-read on every event, bounded) until key's value equals / starts
 * with want. VF_OK or VF_ETIMEDOUT. */
static int bn_wait(struct bn_be *b, const char *key, int how, const char *want, int timeout_ms)
{
	int64_t deadline = vf_now_ms() + timeout_ms;

	for (;;) {
		struct vf_kv_pair p = {0};
		unsigned long g;
		int rc, ok = 0;

		pthread_mutex_lock(&b->mu);
		g = b->gen;
		pthread_mutex_unlock(&b->mu);
		rc = b->wkv->ops->get(b->wkv, key, &p, NULL);
		if (rc == VF_OK)
			ok = how == W_EQ ? strcmp(p.value, want) == 0
			                 : strncmp(p.value, want, strlen(want)) == 0;
		vf_kv_pair_clear(&p);
		if (ok)
			return VF_OK;
		int64_t left = deadline - vf_now_ms();

		if (left <= 0)
			return VF_ETIMEDOUT;
		pthread_mutex_lock(&b->mu);
		if (b->gen == g) {
			struct timespec ts;
			int64_t step = left < 500 ? left : 500;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)step * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&b->cv, &b->mu, &ts);
		}
		pthread_mutex_unlock(&b->mu);
	}
}

static void bn_key(struct bn_be *b, char *buf, size_t size, const char *fam, const char *vol)
{
	snprintf(buf, size, "%s%s/%s", b->prefix, fam, vol);
}

static int64_t bn_num(struct bn_be *b, const char *fam, const char *vol)
{
	char k[256];
	struct vf_kv_pair p = {0};
	int64_t v = 0;

	bn_key(b, k, sizeof(k), fam, vol);
	if (b->wkv->ops->get(b->wkv, k, &p, NULL) == VF_OK)
		v = strtoll(p.value, NULL, 10);
	vf_kv_pair_clear(&p);
	return v;
}

/* ---- hosts: a volume-manager context on its own counted handle ---- */
struct bn_host {
	struct vf_kv *raw, *kv;
	struct memkv_shim *shim;
	struct vf_ctx *ctx;
	char node[32];
};

static int bn_host_open(struct bn_be *b, struct bn_host *h, const char *node, int manager,
                        struct vf_err *err)
{
	struct vf_ctx_cfg cfg = {0};
	int rc;

	memset(h, 0, sizeof(*h));
	snprintf(h->node, sizeof(h->node), "%s", node);
	rc = bn_open(b, &h->raw, err);
	if (rc != VF_OK)
		return rc;
	if (memkv_count_new(h->raw, &h->kv, &h->shim) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "counting shim: out of memory");
	cfg.node_id = h->node;
	cfg.node_addr = "127.0.0.1";
	cfg.prefix = b->prefix;
	cfg.mount_root = b->tmp;
	cfg.manager = manager;
	cfg.op_timeout_ms = 30000;
	cfg.reconcile_ms = 3600 * 1000; /* the periodic pass would pollute the counts */
	cfg.fs = b->fs;
	cfg.fs_arg = b->fs_arg;
	rc = vf_ctx_new(h->kv, &cfg, &h->ctx, err);
	if (rc == VF_OK && manager)
		rc = vf_ctx_start_manager(h->ctx, err);
	return rc;
}

static void bn_host_close(struct bn_host *h)
{
	vf_ctx_free(&h->ctx);
	if (h->kv)
		h->kv->ops->close(h->kv);
	if (h->raw)
		h->raw->ops->close(h->raw);
	memset(h, 0, sizeof(*h));
}

/* ---- 1 + 2: round trips and latency ---- */
static void bn_stats(const char *be, const char *what, double *v, size_t n)
{
	char name[128];
	double p99, p50 = bn_pct(v, n, 50);

	p99 = bn_pct(v, n, 99);
	snprintf(name, sizeof(name), "%s_p50_ms", what);
	bn_put(be, name, p50, "ms", "n=%zu", n);
	snprintf(name, sizeof(name), "%s_p99_ms", what);
	bn_put(be, name, p99, "ms", "n=%zu, max %.2f ms", n, v[n - 1]);
}

static void bn_rt_put(const char *be, const char *what, const char *side, double *v, size_t n,
                      const char *extra)
{
	char name[64];
	double sum = 0, mx = 0;

	for (size_t i = 0; i < n; i++) {
		sum += v[i];
		mx = v[i] > mx ? v[i] : mx;
	}
	snprintf(name, sizeof(name), "rt_%s_%s", what, side);
	bn_put(be, name, n ? sum / (double)n : NAN, "trips", "mean over %zu, max %.0f%s%s", n, mx,
	       extra ? "; " : "", extra ? extra : "");
}

static void bn_die_err(const char *what, const struct vf_err *e)
{
	bn_die("%s: %s", what, e->msg);
}

/* Samples of one operation: latency, shim slot calls, HTTP requests of the
 * calling thread, time inside those requests. */
struct bn_samples {
	double *lat, *trips, *reqs, *http_ms;
	size_t n;
};

static void bn_samples_init(struct bn_samples *s, size_t n)
{
	s->lat = calloc(n, sizeof(double));
	s->trips = calloc(n, sizeof(double));
	s->reqs = calloc(n, sizeof(double));
	s->http_ms = calloc(n, sizeof(double));
	s->n = 0;
	if (!s->lat || !s->trips || !s->reqs || !s->http_ms)
		bn_die("out of memory");
}

static void bn_samples_free(struct bn_samples *s)
{
	free(s->lat), free(s->trips), free(s->reqs), free(s->http_ms);
}

struct bn_mark {
	int64_t t0, h0;
	unsigned long n0;
};

static void bn_mark_start(struct bn_mark *m, struct bn_host *h)
{
	memkv_shim_reset(h->shim);
	m->n0 = bn_http_n;
	m->h0 = bn_http_us;
	m->t0 = bn_us();
}

static void bn_mark_end(struct bn_mark *m, struct bn_host *h, struct bn_samples *s)
{
	s->lat[s->n] = (double)(bn_us() - m->t0) / 1000.0;
	s->trips[s->n] = memkv_shim_total(h->shim);
	s->reqs[s->n] = (double)(bn_http_n - m->n0);
	s->http_ms[s->n] = (double)(bn_http_us - m->h0) / 1000.0;
	s->n++;
}

static double bn_mean(const double *v, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += v[i];
	return n ? sum / (double)n : NAN;
}

static void bn_samples_put(const char *be, const char *what, struct bn_samples *s)
{
	char extra[96], name[64];
	double ml = bn_mean(s->lat, s->n), mh = bn_mean(s->http_ms, s->n);

	snprintf(extra, sizeof(extra), "HTTP requests of the calling thread: %.2f",
	         bn_mean(s->reqs, s->n));
	bn_rt_put(be, what, "host", s->trips, s->n, extra);
	snprintf(name, sizeof(name), "http_%s_host", what);
	bn_put(be, name, bn_mean(s->reqs, s->n), "requests",
	       "mean; %.2f of %.2f ms spent inside them (%.0f%%)", mh, ml,
	       ml > 0 ? 100.0 * mh / ml : 0.0);
	snprintf(name, sizeof(name), "lat_%s", what);
	bn_stats(be, name, s->lat, s->n);
}

static void bn_section_latency(struct bn_be *b, struct bn_host *mgr, struct bn_host *pin,
                               struct bn_host *h)
{
	const char *vw = "lat-warm", *vc = "lat-cold";
	size_t n = (size_t)bn_o.iters;
	struct bn_samples wm, wu, cm, cu;
	double *mcm = calloc(n, sizeof(double)), *mcu = calloc(n, sizeof(double)),
	       *mwarm = calloc(n, sizeof(double));
	struct vf_err e = {0};
	struct bn_mark mk;
	char key[256], want[64];

	if (!mcm || !mcu || !mwarm)
		bn_die("out of memory");
	bn_samples_init(&wm, n);
	bn_samples_init(&wu, n);
	bn_samples_init(&cm, n);
	bn_samples_init(&cu, n);
	if (vf_volume_create(pin->ctx, vw, NULL, 0, &e) != VF_OK ||
	    vf_volume_create(pin->ctx, vc, NULL, 0, &e) != VF_OK)
		bn_die_err("create", &e);
	/* warm: the pin host keeps the volume served */
	if (vf_volume_mount(pin->ctx, vw, "pin", NULL, &e) != VF_OK)
		bn_die_err("pin mount", &e);
	for (size_t i = 0; i < n; i++) {
		memkv_shim_reset(mgr->shim);
		bn_mark_start(&mk, h);
		if (vf_volume_mount(h->ctx, vw, "c1", NULL, &e) != VF_OK)
			bn_die_err("warm mount", &e);
		bn_mark_end(&mk, h, &wm);
		bn_mark_start(&mk, h);
		if (vf_volume_unmount(h->ctx, vw, "c1", &e) != VF_OK)
			bn_die_err("warm unmount", &e);
		bn_mark_end(&mk, h, &wu);
		mwarm[i] = memkv_shim_total(mgr->shim);
	}
	/* cold: Ready -> mount (a manager starts the server) -> last unmount -> Ready.
	 * The benchmark watches the prefix for its own waits only here: on Consul a
	 * prefix watch re-lists the prefix after every write under it, a load the
	 * warm, throughput and raw figures must not carry. */
	if (b->wkv->ops->watch_start(b->wkv, b->prefix, 0, bn_wcb, b, &b->watch, &e) != VF_OK)
		bn_die_err("watch", &e);
	for (size_t i = 0; i < n; i++) {
		int64_t trig;

		memkv_shim_reset(mgr->shim);
		bn_mark_start(&mk, h);
		if (vf_volume_mount(h->ctx, vc, "c1", NULL, &e) != VF_OK)
			bn_die_err("cold mount", &e);
		bn_mark_end(&mk, h, &cm);
		/* the manager's share ends when it closes its claim */
		trig = bn_num(b, "start_trigger", vc);
		bn_key(b, key, sizeof(key), "start_claim", vc);
		snprintf(want, sizeof(want), "done %" PRId64, trig);
		if (bn_wait(b, key, W_EQ, want, 30000) != VF_OK)
			bn_die("cold mount: %s never became '%s'", key, want);
		mcm[i] = memkv_shim_total(mgr->shim);
		memkv_shim_reset(mgr->shim);
		bn_mark_start(&mk, h);
		if (vf_volume_unmount(h->ctx, vc, "c1", &e) != VF_OK)
			bn_die_err("last unmount", &e);
		bn_mark_end(&mk, h, &cu);
		trig = bn_num(b, "stop_trigger", vc);
		bn_key(b, key, sizeof(key), "stop_claim", vc);
		snprintf(want, sizeof(want), "done %" PRId64, trig);
		if (bn_wait(b, key, W_EQ, want, 30000) != VF_OK)
			bn_die("last unmount: %s never became '%s'", key, want);
		bn_key(b, key, sizeof(key), "state", vc);
		if (bn_wait(b, key, W_EQ, "Ready", 30000) != VF_OK)
			bn_die("last unmount: %s never became Ready", key);
		mcu[i] = memkv_shim_total(mgr->shim);
	}
	b->wkv->ops->watch_stop(b->wkv, &b->watch);
	bn_samples_put(b->name, "warm_mount", &wm);
	bn_samples_put(b->name, "warm_unmount", &wu);
	bn_rt_put(b->name, "warm_cycle", "manager", mwarm, n, "manager not involved");
	bn_samples_put(b->name, "cold_mount", &cm);
	bn_rt_put(b->name, "cold_mount", "manager", mcm, n, "claim + start");
	bn_samples_put(b->name, "last_unmount", &cu);
	bn_rt_put(b->name, "last_unmount", "manager", mcu, n, "claim + stop");
	bn_check(b->name, "warm mount round trips <= 3 (shim slot calls)",
	         bn_get(b->name, "rt_warm_mount_host"), 3, 1, "aim 2");
	bn_check(b->name, "warm unmount round trips <= 3 (shim slot calls)",
	         bn_get(b->name, "rt_warm_unmount_host"), 3, 1, "aim 2");
	bn_check(b->name, "warm mount HTTP requests <= 3", bn_get(b->name, "http_warm_mount_host"),
	         3, 1, "aim 2");
	bn_check(b->name, "warm unmount HTTP requests <= 3",
	         bn_get(b->name, "http_warm_unmount_host"), 3, 1, "aim 2");
	if (vf_volume_unmount(pin->ctx, vw, "pin", &e) != VF_OK)
		bn_die_err("pin unmount", &e);
	bn_samples_free(&wm), bn_samples_free(&wu), bn_samples_free(&cm), bn_samples_free(&cu);
	free(mcm), free(mcu), free(mwarm);
}

/* ---- 3: throughput of mount+unmount cycles ---- */
struct bn_tp {
	struct bn_host *h;
	char vol[64], id[32];
	int64_t deadline_ms;
	pthread_barrier_t *bar;
	unsigned long cycles, errors;
	char lasterr[256];
};

static void *bn_tp_main(void *arg)
{
	struct bn_tp *t = arg;

	pthread_barrier_wait(t->bar);
	while (vf_now_ms() < __atomic_load_n(&t->deadline_ms, __ATOMIC_SEQ_CST)) {
		struct vf_err e = {0};

		if (vf_volume_mount(t->h->ctx, t->vol, t->id, NULL, &e) != VF_OK ||
		    vf_volume_unmount(t->h->ctx, t->vol, t->id, &e) != VF_OK) {
			t->errors++;
			snprintf(t->lasterr, sizeof(t->lasterr), "%s", e.msg);
			continue;
		}
		t->cycles++;
	}
	return NULL;
}

static const int bn_conc[] = {1, 4, 16};
#define BN_NCONC 3
#define BN_MAXH 16

static double bn_tp_run(struct bn_host *hosts, int c, int shared, const char *be)
{
	struct bn_tp t[BN_MAXH];
	pthread_t th[BN_MAXH];
	pthread_barrier_t bar;
	unsigned long cyc = 0, errs = 0;
	int64_t t0;
	double secs;

	pthread_barrier_init(&bar, NULL, (unsigned)c + 1);
	for (int i = 0; i < c; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].h = &hosts[i];
		snprintf(t[i].vol, sizeof(t[i].vol), shared ? "tp-shared" : "tp-%d", i);
		snprintf(t[i].id, sizeof(t[i].id), "ct%d", i);
		t[i].deadline_ms = INT64_MAX; /* set once every thread is ready */
		t[i].bar = &bar;
	}
	for (int i = 0; i < c; i++)
		if (pthread_create(&th[i], NULL, bn_tp_main, &t[i]) != 0)
			bn_die("cannot start a thread");
	pthread_barrier_wait(&bar);
	t0 = vf_now_ms() + bn_o.dur_ms;
	for (int i = 0; i < c; i++)
		__atomic_store_n(&t[i].deadline_ms, t0, __ATOMIC_SEQ_CST);
	t0 = bn_us();
	for (int i = 0; i < c; i++) {
		pthread_join(th[i], NULL);
		cyc += t[i].cycles;
		errs += t[i].errors;
		if (t[i].errors)
			fprintf(stderr, "vfbench: %s: host %d: %lu errors, last: %s\n", be, i,
			        t[i].errors, t[i].lasterr);
	}
	secs = (double)(bn_us() - t0) / 1e6;
	pthread_barrier_destroy(&bar);
	return errs ? -(double)cyc / secs : (double)cyc / secs;
}

static void bn_section_throughput(struct bn_be *b, struct bn_host *pin, struct bn_host *hosts)
{
	struct vf_err e = {0};
	char vol[64];

	for (int i = 0; i <= BN_MAXH; i++) {
		if (i == BN_MAXH)
			snprintf(vol, sizeof(vol), "tp-shared");
		else
			snprintf(vol, sizeof(vol), "tp-%d", i);
		if (vf_volume_create(pin->ctx, vol, NULL, 0, &e) != VF_OK)
			bn_die_err("create", &e);
		if (vf_volume_mount(pin->ctx, vol, "pin", NULL, &e) != VF_OK)
			bn_die_err("pin mount", &e);
	}
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < BN_NCONC; k++) {
			char name[64];
			double r = bn_tp_run(hosts, bn_conc[k], s, b->name);

			snprintf(name, sizeof(name), "cycles_per_s_%s_c%d",
			         s ? "shared" : "distinct", bn_conc[k]);
			bn_put(b->name, name, fabs(r), "1/s", "%s", r < 0 ? "WITH ERRORS" : "");
		}
	for (int i = 0; i <= BN_MAXH; i++) {
		snprintf(vol, sizeof(vol), i == BN_MAXH ? "tp-shared" : "tp-%d", i);
		if (vf_volume_unmount(pin->ctx, vol, "pin", &e) != VF_OK)
			bn_die_err("pin unmount", &e);
	}
}

/* ---- 4: the store's raw ceiling through vf_http ---- */
enum { RAW_PUT = 0, RAW_TXN3, RAW_ELOCK, RAW_OURLOCK };
static const char *const bn_raw_names[] = {"put", "txn3", "etcd_lock", "our_lock"};

struct bn_raw {
	struct bn_be *b;
	struct vf_http *http;
	int kind, idx;
	int64_t deadline_ms;
	pthread_barrier_t *bar;
	unsigned long ops, errors;
	char lasterr[256];
	/* locks */
	const char *lock_name;
	struct vf_kv *kv; /* our lock: own handle */
	double *handoff;  /* hand-off samples (ms), shared, under bn_ho_mu */
	size_t *nhandoff, maxhandoff;
};

static pthread_mutex_t bn_ho_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t bn_ho_released_us; /* when the last holder began its release */
static int bn_ho_by = -1;

static int bn_http(struct vf_http *h, const char *method, const char *path, const char *body,
                   char **resp_r, struct vf_err *err)
{
	struct vf_http_req req = {.method = method,
	                          .path = path,
	                          .body = body,
	                          .body_len = body ? strlen(body) : 0,
	                          .timeout_ms = 60000};
	struct vf_http_resp resp = {0};
	int rc = vf_http_do(h, &req, &resp, err);

	if (rc == VF_OK && resp.status != 200)
		rc = vf_err_set(err, VF_EPROTO, "%s %s: HTTP %ld: %.120s", method, path,
		                resp.status, resp.body.data ? resp.body.data : "");
	if (rc == VF_OK && resp_r) {
		*resp_r = resp.body.data;
		resp.body.data = NULL;
	}
	vf_http_resp_free(&resp);
	return rc;
}

static int bn_raw_put(struct bn_raw *r, unsigned long n, struct vf_err *err)
{
	char key[128], body[512], *k64, *v64;
	int rc;

	snprintf(key, sizeof(key), "raw/put/%d", r->idx);
	if (strcmp(r->b->name, "etcd") == 0) {
		k64 = vf_b64_encode(key, strlen(key));
		v64 = vf_b64_encode("v", 1);
		snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
		free(k64);
		free(v64);
		return bn_http(r->http, "POST", "/v3/kv/put", body, NULL, err);
	}
	snprintf(body, sizeof(body), "/v1/kv/%s", key);
	rc = bn_http(r->http, "PUT", body, "v", NULL, err);
	return rc;
}

static int bn_raw_txn3(struct bn_raw *r, unsigned long n, struct vf_err *err)
{
	struct vf_buf body = {0};
	int etcd = strcmp(r->b->name, "etcd") == 0, rc;
	char *v64 = vf_b64_encode("v", 1);

	vf_buf_printf(&body, etcd ? "{\"success\":[" : "[");
	for (int i = 0; i < 3; i++) {
		char key[128], *k64;

		snprintf(key, sizeof(key), "raw/txn/%d/%d", r->idx, i);
		if (etcd) {
			k64 = vf_b64_encode(key, strlen(key));
			vf_buf_printf(&body,
			              "%s{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
			              i ? "," : "", k64, v64);
			free(k64);
		} else {
			vf_buf_printf(
			        &body,
			        "%s{\"KV\":{\"Verb\":\"set\",\"Key\":\"%s\",\"Value\":\"%s\"}}",
			        i ? "," : "", key, v64);
		}
	}
	vf_buf_printf(&body, etcd ? "]}" : "]");
	free(v64);
	if (body.data == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	rc = bn_http(r->http, etcd ? "POST" : "PUT", etcd ? "/v3/kv/txn" : "/v1/txn", body.data,
	             NULL, err);
	vf_buf_free(&body);
	return rc;
}

static void bn_ho_acquired(struct bn_raw *r, int64_t asked_us)
{
	int64_t now = bn_us();

	pthread_mutex_lock(&bn_ho_mu);
	/* a hand-off: we were waiting when another holder began to release */
	if (r->handoff && bn_ho_by >= 0 && bn_ho_by != r->idx && bn_ho_released_us >= asked_us &&
	    *r->nhandoff < r->maxhandoff)
		r->handoff[(*r->nhandoff)++] = (double)(now - bn_ho_released_us) / 1000.0;
	pthread_mutex_unlock(&bn_ho_mu);
}

static void bn_ho_release(struct bn_raw *r)
{
	pthread_mutex_lock(&bn_ho_mu);
	bn_ho_released_us = bn_us();
	bn_ho_by = r->idx;
	pthread_mutex_unlock(&bn_ho_mu);
}

static void *bn_raw_main(void *arg)
{
	struct bn_raw *r = arg;
	struct vf_err e = {0};
	char lease[64] = "", body[512], *resp = NULL;
	struct vf_kv_lease *our = NULL;
	int rc = VF_OK;

	/* per thread set-up: a lease of its own */
	if (r->kind == RAW_ELOCK) {
		rc = bn_http(r->http, "POST", "/v3/lease/grant", "{\"TTL\":60}", &resp, &e);
		if (rc == VF_OK) {
			yajl_val t = NULL;

			if (vf_json_parse(resp, strlen(resp), &t, &e) == VF_OK &&
			    vf_json_str(vf_json_get(t, "ID", NULL)))
				snprintf(lease, sizeof(lease), "%s",
				         vf_json_str(vf_json_get(t, "ID", NULL)));
			yajl_tree_free(t);
		}
		free(resp);
		resp = NULL;
		if (lease[0] == '\0')
			bn_die("etcd lease grant: %s", e.msg);
	} else if (r->kind == RAW_OURLOCK) {
		if (r->kv->ops->lease_grant(r->kv, 60, 0, NULL, NULL, &our, &e) != VF_OK)
			bn_die_err("lease grant", &e);
	}
	pthread_barrier_wait(r->bar);
	for (unsigned long n = 0; vf_now_ms() < __atomic_load_n(&r->deadline_ms, __ATOMIC_SEQ_CST);
	     n++) {
		switch (r->kind) {
		case RAW_PUT:
			rc = bn_raw_put(r, n, &e);
			break;
		case RAW_TXN3:
			rc = bn_raw_txn3(r, n, &e);
			break;
		case RAW_ELOCK: {
			char *n64 = vf_b64_encode(r->lock_name, strlen(r->lock_name)), *k = NULL;
			int64_t asked = bn_us();
			yajl_val t = NULL;

			snprintf(body, sizeof(body), "{\"name\":\"%s\",\"lease\":\"%s\"}", n64,
			         lease);
			free(n64);
			rc = bn_http(r->http, "POST", "/v3/lock/lock", body, &resp, &e);
			if (rc == VF_OK && vf_json_parse(resp, strlen(resp), &t, &e) == VF_OK &&
			    (k = (char *)vf_json_str(vf_json_get(t, "key", NULL))) != NULL) {
				bn_ho_acquired(r, asked);
				snprintf(body, sizeof(body), "{\"key\":\"%s\"}", k);
				bn_ho_release(r);
				rc = bn_http(r->http, "POST", "/v3/lock/unlock", body, NULL, &e);
			} else if (rc == VF_OK) {
				rc = vf_err_set(&e, VF_EPROTO, "lock: no key in the answer");
			}
			yajl_tree_free(t);
			free(resp);
			resp = NULL;
			break;
		}
		case RAW_OURLOCK: {
			struct vf_kv_lock *lk = NULL;
			int64_t asked = bn_us();

			rc = r->kv->ops->lock(r->kv, our, r->lock_name, 60000, NULL, 0, NULL, &lk,
			                      &e);
			if (rc == VF_OK) {
				bn_ho_acquired(r, asked);
				bn_ho_release(r);
				rc = r->kv->ops->unlock(r->kv, &lk, &e);
			}
			break;
		}
		}
		if (rc == VF_OK)
			r->ops++;
		else {
			r->errors++;
			snprintf(r->lasterr, sizeof(r->lasterr), "%s", e.msg);
		}
	}
	if (r->kind == RAW_ELOCK) {
		snprintf(body, sizeof(body), "{\"ID\":\"%s\"}", lease);
		bn_http(r->http, "POST", "/v3/lease/revoke", body, NULL, NULL);
	} else if (our) {
		r->kv->ops->lease_revoke(r->kv, &our, NULL);
	}
	return NULL;
}

/* c threads of kind for dur_ms; ops/s (negative when errors happened). */
static double bn_raw_run(struct bn_be *b, struct vf_http *http, int kind, int c, int shared_lock,
                         double *handoff, size_t *nhandoff, size_t maxhandoff)
{
	struct bn_raw r[BN_MAXH];
	pthread_t th[BN_MAXH];
	pthread_barrier_t bar;
	unsigned long ops = 0, errs = 0;
	char lname[BN_MAXH][64];
	int64_t t0;
	double secs;
	struct vf_err e = {0};

	pthread_barrier_init(&bar, NULL, (unsigned)c + 1);
	pthread_mutex_lock(&bn_ho_mu);
	bn_ho_by = -1;
	pthread_mutex_unlock(&bn_ho_mu);
	for (int i = 0; i < c; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].b = b;
		r[i].http = http;
		r[i].kind = kind;
		r[i].idx = i;
		r[i].bar = &bar;
		r[i].deadline_ms = INT64_MAX;
		snprintf(lname[i], sizeof(lname[i]), "%sbench-lock/%s/%d", b->prefix,
		         bn_raw_names[kind], shared_lock ? 0 : i);
		r[i].lock_name = lname[i];
		r[i].handoff = handoff;
		r[i].nhandoff = nhandoff;
		r[i].maxhandoff = maxhandoff;
		if (kind == RAW_OURLOCK && bn_open(b, &r[i].kv, &e) != VF_OK)
			bn_die_err("open", &e);
	}
	for (int i = 0; i < c; i++)
		if (pthread_create(&th[i], NULL, bn_raw_main, &r[i]) != 0)
			bn_die("cannot start a thread");
	/* threads set up (leases) before the barrier; the clock starts after it */
	pthread_barrier_wait(&bar);
	{
		int64_t dl = vf_now_ms() + bn_o.dur_ms;

		for (int i = 0; i < c; i++)
			__atomic_store_n(&r[i].deadline_ms, dl, __ATOMIC_SEQ_CST);
	}
	t0 = bn_us();
	for (int i = 0; i < c; i++) {
		pthread_join(th[i], NULL);
		ops += r[i].ops;
		errs += r[i].errors;
		if (r[i].errors)
			fprintf(stderr, "vfbench: %s %s: thread %d: %lu errors, last: %s\n",
			        b->name, bn_raw_names[kind], i, r[i].errors, r[i].lasterr);
		if (r[i].kv)
			r[i].kv->ops->close(r[i].kv);
	}
	secs = (double)(bn_us() - t0) / 1e6;
	pthread_barrier_destroy(&bar);
	return errs ? -(double)ops / secs : (double)ops / secs;
}

static void bn_section_raw(struct bn_be *b)
{
	struct vf_http_cfg hc = {0};
	struct vf_http *http = NULL;
	struct vf_err e = {0};
	char *ep = b->endpoint;
	int etcd = strcmp(b->name, "etcd") == 0;
	size_t maxho = 100000, nho = 0;
	double *ho = calloc(maxho, sizeof(double));

	if (ho == NULL)
		bn_die("out of memory");
	hc.endpoints = &ep;
	hc.nendpoints = 1;
	hc.connect_timeout_ms = 2000;
	hc.timeout_ms = 10000;
	if (vf_http_new(&hc, &http, &e) != VF_OK)
		bn_die_err("http client", &e);
	for (int k = 0; k < BN_NCONC; k++) {
		char name[64];
		double r;

		r = bn_raw_run(b, http, RAW_PUT, bn_conc[k], 0, NULL, NULL, 0);
		snprintf(name, sizeof(name), "raw_put_per_s_c%d", bn_conc[k]);
		bn_put(b->name, name, fabs(r), "1/s", "%s", r < 0 ? "WITH ERRORS" : "");
		r = bn_raw_run(b, http, RAW_TXN3, bn_conc[k], 0, NULL, NULL, 0);
		snprintf(name, sizeof(name), "raw_txn3_per_s_c%d", bn_conc[k]);
		bn_put(b->name, name, fabs(r), "1/s", "%s", r < 0 ? "WITH ERRORS" : "");
	}
	/* locks: uncontended (1 thread) and 4 contenders on one name */
	for (int kind = RAW_ELOCK; kind <= RAW_OURLOCK; kind++) {
		char name[64];
		double r;

		if (kind == RAW_ELOCK && !etcd)
			continue;
		r = bn_raw_run(b, http, kind, 1, 1, NULL, NULL, 0);
		snprintf(name, sizeof(name), "%s_cycles_per_s_c1", bn_raw_names[kind]);
		bn_put(b->name, name, fabs(r), "1/s", "lock+unlock, uncontended%s",
		       r < 0 ? ", WITH ERRORS" : "");
		nho = 0;
		r = bn_raw_run(b, http, kind, 4, 1, ho, &nho, maxho);
		snprintf(name, sizeof(name), "%s_cycles_per_s_c4", bn_raw_names[kind]);
		bn_put(b->name, name, fabs(r), "1/s", "lock+unlock, 4 contenders on one lock%s",
		       r < 0 ? ", WITH ERRORS" : "");
		if (nho > 0) {
			double p50 = bn_pct(ho, nho, 50), p90 = bn_pct(ho, nho, 90),
			       p99 = bn_pct(ho, nho, 99), mean = bn_mean(ho, nho);

			snprintf(name, sizeof(name), "%s_handoff_p50_ms", bn_raw_names[kind]);
			bn_put(b->name, name, p50, "ms", "4 contenders, n=%zu", nho);
			snprintf(name, sizeof(name), "%s_handoff_p90_ms", bn_raw_names[kind]);
			bn_put(b->name, name, p90, "ms", "4 contenders, n=%zu", nho);
			snprintf(name, sizeof(name), "%s_handoff_p99_ms", bn_raw_names[kind]);
			bn_put(b->name, name, p99, "ms", "4 contenders, n=%zu", nho);
			snprintf(name, sizeof(name), "%s_handoff_mean_ms", bn_raw_names[kind]);
			bn_put(b->name, name, mean, "ms", "4 contenders, n=%zu", nho);
		}
	}
	vf_http_free(&http);
	free(ho);
}

/* ---- 6: scale, in a child process ---- */
struct bn_scale {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long served;
	char pre[256];
};

static int bn_scale_cb(const struct vf_kv_event *ev, void *arg)
{
	struct bn_scale *s = arg;

	if (ev->type == VF_EV_PUT && strncmp(ev->key, s->pre, strlen(s->pre)) == 0) {
		pthread_mutex_lock(&s->mu);
		s->served++;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return 0;
}

/* The child: a fresh manager over n volumes under prefix; prints one JSON line. */
static int bn_scale_child(const char *name, long n, const char *prefix, const char *snippet)
{
	struct vf_backend *be = NULL;
	struct vf_kv *raw = NULL, *kv = NULL, *wkv = NULL;
	struct memkv_shim *shim = NULL;
	struct vf_kv_watch *w = NULL;
	struct vf_ctx *ctx = NULL;
	struct vf_ctx_cfg cfg = {0};
	struct bn_scale s = {.served = 0};
	const struct vf_fs_ops *fs = NULL;
	void *fs_arg = NULL;
	struct vf_err e = {0};
	char tmp[] = "/tmp/vfbench-scale-XXXXXX";
	int64_t t0, t_rec, t_pass;
	long rss0 = bn_status_kb("VmRSS");
	unsigned lists_start, watches;

	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	snprintf(s.pre, sizeof(s.pre), "%sserver/", prefix);
	if (mkdtemp(tmp) == NULL)
		bn_die("mkdtemp: %s", strerror(errno));
	if (vf_backend_load(name, NULL, &be, &e) != VF_OK)
		bn_die_err("load", &e);
	if (bn_open_snippet(be, name, snippet, &raw, &e) != VF_OK ||
	    bn_open_snippet(be, name, snippet, &wkv, &e) != VF_OK)
		bn_die_err("open", &e);
	if (memkv_count_new(raw, &kv, &shim) != VF_OK)
		bn_die("counting shim");
	if (bn_fs_open(tmp, &fs, &fs_arg, &e) != VF_OK)
		bn_die_err("fs", &e);
	if (wkv->ops->watch_start(wkv, s.pre, 0, bn_scale_cb, &s, &w, &e) != VF_OK)
		bn_die_err("watch", &e);
	cfg.node_id = "fresh-mgr";
	cfg.node_addr = "127.0.0.1";
	cfg.prefix = prefix;
	cfg.mount_root = tmp;
	cfg.manager = 1;
	cfg.reconcile_ms = 3600 * 1000;
	cfg.fs = fs;
	cfg.fs_arg = fs_arg;
	t0 = bn_us();
	if (vf_ctx_new(kv, &cfg, &ctx, &e) != VF_OK || vf_ctx_start_manager(ctx, &e) != VF_OK)
		bn_die_err("manager", &e);
	pthread_mutex_lock(&s.mu);
	while (s.served < n) {
		struct timespec ts;

		if (bn_us() - t0 > 600LL * 1000000)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s.cv, &s.mu, &ts);
	}
	pthread_mutex_unlock(&s.mu);
	t_rec = bn_us() - t0;
	/* one steady pass (nothing left to do) */
	lists_start = memkv_shim_count(shim, MEMKV_LIST);
	t0 = bn_us();
	if (vf_mgr_reconcile_now(ctx, &e) != VF_OK)
		bn_die_err("reconcile", &e);
	t_pass = bn_us() - t0;
	watches = memkv_shim_count(shim, MEMKV_WATCH_START);
	printf("{\"volumes\":%ld,\"served\":%ld,\"recover_s\":%.3f,\"pass_s\":%.3f,"
	       "\"rss_kb\":%ld,\"hwm_kb\":%ld,\"rss_start_kb\":%ld,\"watch_streams\":%u,"
	       "\"lists_per_pass\":%u,\"trips_total\":%u}\n",
	       n, s.served, (double)t_rec / 1e6, (double)t_pass / 1e6, bn_status_kb("VmRSS"),
	       bn_status_kb("VmHWM"), rss0, watches,
	       memkv_shim_count(shim, MEMKV_LIST) - lists_start,
	       /* unlock() after a txn that released the lock sends nothing */
	       memkv_shim_total(shim) - memkv_shim_count(shim, MEMKV_UNLOCK));
	fflush(stdout);
	for (int sl = 0; sl < MEMKV_NSLOTS; sl++)
		if (memkv_shim_count(shim, sl))
			fprintf(stderr, "vfbench: %s: scale %ld: %s x %u\n", name, n,
			        memkv_slot_name(sl), memkv_shim_count(shim, sl));
	vf_ctx_free(&ctx);
	wkv->ops->watch_stop(wkv, &w);
	kv->ops->close(kv);
	raw->ops->close(raw);
	wkv->ops->close(wkv);
	vf_fs_close(fs_arg);
	vf_backend_unload(&be);
	rmdir(tmp);
	return s.served >= n ? 0 : 1;
}

/* Write n volumes whose manager died: Mounted, one host attached, no server. */
static void bn_populate(struct bn_be *b, struct vf_kv *kv, const char *prefix, long n)
{
	enum { PK = 7 };
	static const char *const fam[PK] = {"state",         "gref",         "info",       "client",
	                                    "start_trigger", "start_marker", "start_claim"};
	size_t per = (kv->max_txn_ops ? kv->max_txn_ops : 64) / PK;
	struct vf_kv_op *ops = calloc(per * PK, sizeof(*ops));
	char(*keys)[160] = calloc(per * PK, sizeof(*keys));
	char(*vals)[160] = calloc(per * PK, sizeof(*vals));
	struct vf_err e = {0};

	if (!ops || !keys || !vals)
		bn_die("out of memory");
	for (long v = 0; v < n;) {
		size_t nops = 0;

		for (size_t j = 0; j < per && v < n; j++, v++)
			for (int f = 0; f < PK; f++) {
				char vol[32];

				snprintf(vol, sizeof(vol), "v%05ld", v);
				if (f == 3)
					snprintf(keys[nops], 160, "%sclient/%s/host-old", prefix,
					         vol);
				else
					snprintf(keys[nops], 160, "%s%s/%s", prefix, fam[f], vol);
				switch (f) {
				case 0:
					snprintf(vals[nops], 160, "Mounted");
					break;
				case 2:
					snprintf(vals[nops], 160,
					         "{\"name\":\"%s\",\"options\":{},\"server\":{"
					         "\"node\":"
					         "\"dead-mgr\",\"addr\":\"127.0.0.1\",\"port\":0}}",
					         vol);
					break;
				case 3:
					snprintf(vals[nops], 160,
					         "{\"addr\":\"127.0.0.1\",\"ids\":[\"c\"]}");
					break;
				case 6:
					snprintf(vals[nops], 160, "done 1");
					break;
				default:
					snprintf(vals[nops], 160, "1");
				}
				ops[nops] = (struct vf_kv_op){.kind = VF_OP_PUT,
				                              .key = keys[nops],
				                              .value = vals[nops],
				                              .value_len = strlen(vals[nops])};
				nops++;
			}
		if (kv->ops->txn(kv, NULL, 0, ops, nops, NULL, &e) != VF_OK)
			bn_die("%s: populate: %s", b->name, e.msg);
	}
	free(ops);
	free(keys);
	free(vals);
}

static void bn_scale_run(struct bn_be *b, struct vf_kv *kv, long n, int report)
{
	char prefix[64], nbuf[32], self[4096];
	int pfd[2], status = 0;
	pid_t pid;
	struct vf_buf out = {0};
	posix_spawn_file_actions_t fa;
	yajl_val t = NULL;
	struct vf_err e = {0};
	int64_t t0;
	ssize_t len;

	snprintf(prefix, sizeof(prefix), "scale%ld/", n);
	t0 = vf_now_ms();
	bn_populate(b, kv, prefix, n);
	fprintf(stderr, "vfbench: %s: %ld volumes written in %.1f s\n", b->name, n,
	        (double)(vf_now_ms() - t0) / 1000.0);
	snprintf(nbuf, sizeof(nbuf), "%ld", n);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		bn_die("readlink /proc/self/exe: %s", strerror(errno));
	self[len] = '\0';
	char *argv[] = {self, "--scale-child", (char *)b->name, nbuf, prefix, b->snippet, NULL};

	if (pipe(pfd) != 0)
		bn_die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0)
		bn_die("spawn %s: %s", self, strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	for (;;) {
		char buf[4096];
		ssize_t r = read(pfd[0], buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		vf_buf_add(&out, buf, (size_t)r);
	}
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (out.data == NULL || vf_json_parse(out.data, out.len, &t, &e) != VF_OK)
		bn_die("%s: scale child (%ld volumes) failed (status %d): %s", b->name, n, status,
		       out.data ? out.data : "no output");
	{
		int64_t vols = 0, served = 0, rss = 0, hwm = 0, rss0 = 0, ws = 0, lists = 0,
		        trips = 0;
		double rec = NAN, pass = NAN;
		yajl_val x;
		char name[64];

		vf_json_int64(vf_json_get(t, "volumes", NULL), &vols);
		vf_json_int64(vf_json_get(t, "served", NULL), &served);
		vf_json_int64(vf_json_get(t, "rss_kb", NULL), &rss);
		vf_json_int64(vf_json_get(t, "hwm_kb", NULL), &hwm);
		vf_json_int64(vf_json_get(t, "rss_start_kb", NULL), &rss0);
		vf_json_int64(vf_json_get(t, "watch_streams", NULL), &ws);
		vf_json_int64(vf_json_get(t, "lists_per_pass", NULL), &lists);
		vf_json_int64(vf_json_get(t, "trips_total", NULL), &trips);
		if ((x = vf_json_get(t, "recover_s", NULL)) && YAJL_IS_NUMBER(x))
			rec = YAJL_GET_DOUBLE(x);
		if ((x = vf_json_get(t, "pass_s", NULL)) && YAJL_IS_NUMBER(x))
			pass = YAJL_GET_DOUBLE(x);
#define BN_SCALE_PUT(what, val, unit, ...)                                                         \
	do {                                                                                       \
		snprintf(name, sizeof(name), "scale%ld_%s", n, what);                              \
		bn_put(b->name, name, val, unit, __VA_ARGS__);                                     \
	} while (0)
		BN_SCALE_PUT("recover_s", rec, "s",
		             "fresh manager: %" PRId64 "/%" PRId64 " volumes served again", served,
		             vols);
		BN_SCALE_PUT("pass_s", pass, "s", "one steady reconcile pass, %" PRId64 " lists",
		             lists);
		BN_SCALE_PUT("rss_mb", (double)rss / 1024.0, "MB", "VmRSS of the manager process");
		BN_SCALE_PUT("hwm_mb", (double)hwm / 1024.0, "MB", "VmHWM (start: %.1f MB)",
		             (double)rss0 / 1024.0);
		BN_SCALE_PUT("watch_streams", (double)ws, "streams",
		             "watch_start calls, whole run");
		BN_SCALE_PUT("trips_per_volume", (double)trips / (double)(vols ? vols : 1), "trips",
		             "store calls of the manager (unlock() not counted) / volumes");
#undef BN_SCALE_PUT
		if (report) {
			char what[96];

			snprintf(what, sizeof(what), "%ld volumes reconciled < 5 s", n);
			bn_check(b->name, what, rec, 5.0, 1,
			         "fresh manager, every server restarted");
			snprintf(what, sizeof(what), "%ld volumes: manager RSS (VmHWM) < 64 MB", n);
			bn_check(b->name, what, (double)hwm / 1024.0, 64.0, 1, NULL);
		}
		if (served < vols)
			bn_die("%s: scale child served only %" PRId64 " of %" PRId64, b->name,
			       served, vols);
	}
	yajl_tree_free(t);
	vf_buf_free(&out);
	/* remove the volumes again (plain deletes, not part of the figures) */
	{
		struct vf_kv_list l = {0};

		if (kv->ops->list(kv, prefix, &l, &e) == VF_OK) {
			size_t per = kv->max_txn_ops ? kv->max_txn_ops : 64;
			struct vf_kv_op *ops = calloc(per, sizeof(*ops));

			for (size_t i = 0; ops && i < l.count; i += per) {
				size_t k = 0;

				for (; k < per && i + k < l.count; k++)
					ops[k] = (struct vf_kv_op){.kind = VF_OP_DELETE,
					                           .key = l.items[i + k].key};
				kv->ops->txn(kv, NULL, 0, ops, k, NULL, NULL);
			}
			free(ops);
			vf_kv_list_clear(&l);
		}
	}
}

static void bn_section_scale(struct bn_be *b)
{
	struct vf_kv *kv = NULL;
	struct vf_err e = {0};
	long n = bn_o.volumes, small = n / 10 > 0 ? n / 10 : 1;

	if (bn_open(b, &kv, &e) != VF_OK)
		bn_die_err("open", &e);
	bn_scale_run(b, kv, small, 0);
	bn_scale_run(b, kv, n, 1);
	{
		char a[64], c[64], what[96];

		snprintf(a, sizeof(a), "scale%ld_watch_streams", small);
		snprintf(c, sizeof(c), "scale%ld_watch_streams", n);
		snprintf(what, sizeof(what), "watch streams at %ld volumes == at %ld", n, small);
		bn_check(b->name, what, bn_get(b->name, c), bn_get(b->name, a), 1, "O(1)");
	}
	kv->ops->close(kv);
}

/* ---- per backend ---- */
static int bn_want(const char *sec)
{
	const char *p = bn_o.sections;
	size_t n = strlen(sec);

	if (p == NULL)
		return 1;
	while ((p = strstr(p, sec)) != NULL) {
		if ((p == bn_o.sections || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

static void bn_backend(int kind)
{
	struct bn_be b = {0};
	struct vf_srv_opts so = {.timeout_ms = 10000};
	struct bn_host mgr, pin, hosts[BN_MAXH], h1;
	struct vf_err e = {0};
	char why[512];

	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	if (vf_srv_start(kind, &so, &b.srv, why, sizeof(why)) != 0)
		bn_die("cannot start %s: %s", kind == VF_SRV_ETCD ? "etcd" : "consul", why);
	b.name = vf_srv_backend_name(b.srv);
	snprintf(b.snippet, sizeof(b.snippet), "%s", vf_srv_config(b.srv));
	snprintf(b.endpoint, sizeof(b.endpoint), "http://127.0.0.1:%d", b.srv->m[0].client_port);
	snprintf(b.prefix, sizeof(b.prefix), "vfile/");
	snprintf(b.tmp, sizeof(b.tmp), "/tmp/vfbench-%s-XXXXXX", b.name);
	if (mkdtemp(b.tmp) == NULL)
		bn_die("mkdtemp: %s", strerror(errno));
	printf("\n== %s (%s) ==\n", b.name, b.endpoint);
	if (vf_backend_load(b.name, NULL, &b.be, &e) != VF_OK)
		bn_die_err("load backend", &e);
	if (bn_fs_open(b.tmp, &b.fs, &b.fs_arg, &e) != VF_OK)
		bn_die_err("fs none", &e);
	if (bn_open(&b, &b.wkv, &e) != VF_OK)
		bn_die_err("open", &e);

	if (bn_host_open(&b, &mgr, "mgr", 1, &e) != VF_OK ||
	    bn_host_open(&b, &pin, "pin", 0, &e) != VF_OK ||
	    bn_host_open(&b, &h1, "h1", 0, &e) != VF_OK)
		bn_die_err("contexts", &e);
	if (bn_want("lat")) {
		printf("-- 1+2: round trips and latency (%d samples each)\n", bn_o.iters);
		bn_section_latency(&b, &mgr, &pin, &h1);
	}
	bn_host_close(&h1);

	if (bn_want("tp")) {
		printf("-- 3: mount+unmount cycles/s (warm: each volume pinned by one more "
		       "host)\n");
		for (int i = 0; i < BN_MAXH; i++) {
			char node[32];

			snprintf(node, sizeof(node), "h%02d", i);
			if (bn_host_open(&b, &hosts[i], node, 0, &e) != VF_OK)
				bn_die_err("host", &e);
		}
		bn_section_throughput(&b, &pin, hosts);
		for (int i = 0; i < BN_MAXH; i++)
			bn_host_close(&hosts[i]);
	}
	bn_host_close(&pin);
	bn_host_close(&mgr);

	if (bn_want("raw")) {
		printf("-- 4+5: the store's raw ceiling through vf_http, locks and hand-off\n");
		bn_section_raw(&b);
	}
	for (int k = 0; k < BN_NCONC; k++) {
		char a[64], c[64], what[96];
		double cyc, txn, r;

		snprintf(a, sizeof(a), "cycles_per_s_distinct_c%d", bn_conc[k]);
		snprintf(c, sizeof(c), "raw_txn3_per_s_c%d", bn_conc[k]);
		cyc = bn_get(b.name, a);
		txn = bn_get(b.name, c);
		r = cyc / txn;
		if (isnan(r))
			continue;
		snprintf(a, sizeof(a), "ratio_cycles_to_txn3_c%d", bn_conc[k]);
		bn_put(b.name, a, r, "x", "distinct volumes; shared: %.3f",
		       bn_get(b.name,
		              (snprintf(c, sizeof(c), "cycles_per_s_shared_c%d", bn_conc[k]), c)) /
		               txn);
		snprintf(what, sizeof(what), "cycles/s >= 1/4 raw txn3/s, %d host(s)", bn_conc[k]);
		bn_check(b.name, what, r, 0.25, 0, "distinct volumes");
	}
	if (kind == VF_SRV_ETCD && bn_want("raw")) {
		double ours = bn_get(b.name, "our_lock_handoff_p50_ms"),
		       theirs = bn_get(b.name, "etcd_lock_handoff_p50_ms");

		bn_put(b.name, "ratio_handoff_etcd_to_ours", theirs / ours, "x",
		       "p50 etcd lock service / p50 ours; cycles c4: %.2fx",
		       bn_get(b.name, "our_lock_cycles_per_s_c4") /
		               bn_get(b.name, "etcd_lock_cycles_per_s_c4"));
		bn_check(b.name, "hand-off >= 10x faster than etcd's lock service", theirs / ours,
		         10, 0, "p50, 4 contenders");
		ours = bn_get(b.name, "our_lock_handoff_mean_ms");
		theirs = bn_get(b.name, "etcd_lock_handoff_mean_ms");
		bn_put(b.name, "ratio_handoff_mean_etcd_to_ours", theirs / ours, "x",
		       "mean etcd lock service / mean ours");
	}

	if (bn_want("scale")) {
		printf("-- 6: scale (%d volumes)\n", bn_o.volumes);
		bn_section_scale(&b);
	}

	b.wkv->ops->close(b.wkv);
	vf_fs_close(b.fs_arg);
	vf_backend_unload(&b.be);
	vf_srv_stop(&b.srv);
	rmdir(b.tmp);
}

/* ---- machine and JSON ---- */
static void bn_cmd_line(const char *cmd, char *buf, size_t size)
{
	FILE *p = popen(cmd, "r");

	buf[0] = '\0';
	if (p == NULL)
		return;
	if (fgets(buf, (int)size, p) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	pclose(p);
}

struct bn_machine {
	char cpu[256], etcd[128], consul[128], kernel[128];
	long cores, mem_mb;
};

static void bn_machine_get(struct bn_machine *m)
{
	char line[512];
	FILE *f;

	memset(m, 0, sizeof(*m));
	m->cores = sysconf(_SC_NPROCESSORS_ONLN);
	m->mem_mb = (long)(sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024);
	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
				snprintf(m->cpu, sizeof(m->cpu), "%s", strchr(line, ':') + 2);
				m->cpu[strcspn(m->cpu, "\n")] = '\0';
				break;
			}
		fclose(f);
	}
	bn_cmd_line("${ETCD:-etcd} --version 2>/dev/null | head -1", m->etcd, sizeof(m->etcd));
	bn_cmd_line("${CONSUL:-consul} version 2>/dev/null | head -1", m->consul,
	            sizeof(m->consul));
	bn_cmd_line("uname -sr", m->kernel, sizeof(m->kernel));
}

static void bn_json_write(const char *path, const struct bn_machine *m)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	char *out = NULL;
	size_t len = 0;
	struct vf_err e = {0};
	FILE *f;

	yajl_gen_config(g, yajl_gen_beautify, 1);
	yajl_gen_map_open(g);
	vf_jgen_str(g, "machine");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "cpu");
	vf_jgen_str(g, m->cpu);
	vf_jgen_str(g, "cores");
	vf_jgen_int(g, m->cores);
	vf_jgen_str(g, "mem_mb");
	vf_jgen_int(g, m->mem_mb);
	vf_jgen_str(g, "kernel");
	vf_jgen_str(g, m->kernel);
	vf_jgen_str(g, "etcd");
	vf_jgen_str(g, m->etcd);
	vf_jgen_str(g, "consul");
	vf_jgen_str(g, m->consul);
	yajl_gen_map_close(g);
	vf_jgen_str(g, "options");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "quick");
	yajl_gen_bool(g, bn_o.quick);
	vf_jgen_str(g, "iters");
	vf_jgen_int(g, bn_o.iters);
	vf_jgen_str(g, "duration_ms");
	vf_jgen_int(g, bn_o.dur_ms);
	vf_jgen_str(g, "volumes");
	vf_jgen_int(g, bn_o.volumes);
	yajl_gen_map_close(g);
	vf_jgen_str(g, "results");
	yajl_gen_map_open(g);
	for (int pass = 0; pass < 2; pass++) {
		const char *be = pass ? "consul" : "etcd";
		int any = 0;

		for (size_t i = 0; i < bn_nm; i++)
			any |= strcmp(bn_m[i].be, be) == 0;
		if (!any)
			continue;
		vf_jgen_str(g, be);
		yajl_gen_map_open(g);
		for (size_t i = 0; i < bn_nm; i++) {
			if (strcmp(bn_m[i].be, be) != 0)
				continue;
			vf_jgen_str(g, bn_m[i].name);
			yajl_gen_map_open(g);
			vf_jgen_str(g, "value");
			if (isnan(bn_m[i].v) || isinf(bn_m[i].v))
				yajl_gen_null(g);
			else
				yajl_gen_double(g, bn_m[i].v);
			vf_jgen_str(g, "unit");
			vf_jgen_str(g, bn_m[i].unit);
			if (bn_m[i].note[0]) {
				vf_jgen_str(g, "note");
				vf_jgen_str(g, bn_m[i].note);
			}
			yajl_gen_map_close(g);
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	vf_jgen_str(g, "targets");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < bn_nc; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "backend");
		vf_jgen_str(g, bn_c[i].be);
		vf_jgen_str(g, "target");
		vf_jgen_str(g, bn_c[i].what);
		vf_jgen_str(g, "value");
		if (isnan(bn_c[i].v) || isinf(bn_c[i].v))
			yajl_gen_null(g);
		else
			yajl_gen_double(g, bn_c[i].v);
		vf_jgen_str(g, "limit");
		yajl_gen_double(g, bn_c[i].limit);
		vf_jgen_str(g, "met");
		yajl_gen_bool(g, bn_c[i].ok);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	if (vf_jgen_finish(g, &out, &len, &e) != VF_OK)
		bn_die_err("json", &e);
	yajl_gen_free(g);
	if ((f = fopen(path, "w")) == NULL)
		bn_die("cannot write %s: %s", path, strerror(errno));
	fwrite(out, 1, len, f);
	fputc('\n', f);
	if (fclose(f) != 0)
		bn_die("cannot write %s: %s", path, strerror(errno));
	free(out);
}

static void bn_usage(FILE *f)
{
	fprintf(f, "usage: vfbench [--quick] [--backend etcd|consul]... [--json PATH]\n"
	           "               [--iters N] [--duration-ms MS] [--volumes N] [--verbose]\n"
	           "               [--sections lat,tp,raw,scale]\n"
	           "Starts its own etcd and Consul (harness), prints a table and writes JSON\n"
	           "(default bench/results.json).\n");
}

int main(int argc, char **argv)
{
	struct bn_machine mach;
	int failed = 0;

	if (argc == 6 && strcmp(argv[1], "--scale-child") == 0) {
		/* VFBENCH_CHILD_LOG=debug: the manager's log (timestamps per restart) */
		vf_log_set_level(getenv("VFBENCH_CHILD_LOG") ? VF_LOG_DEBUG : VF_LOG_ERR);
		vf_malloc_tune(); /* as vfiled does */
		return bn_scale_child(argv[2], strtol(argv[3], NULL, 10), argv[4], argv[5]);
	}
	bn_o.json = "bench/results.json";
	bn_o.iters = -1;
	bn_o.dur_ms = -1;
	bn_o.volumes = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--quick") == 0)
			bn_o.quick = 1;
		else if (strcmp(a, "--verbose") == 0)
			bn_o.verbose = 1;
		else if (strcmp(a, "--backend") == 0 && i + 1 < argc) {
			a = argv[++i];
			if (strcmp(a, "etcd") == 0)
				bn_o.backends |= 1;
			else if (strcmp(a, "consul") == 0)
				bn_o.backends |= 2;
			else {
				bn_usage(stderr);
				return 2;
			}
		} else if (strcmp(a, "--sections") == 0 && i + 1 < argc)
			bn_o.sections = argv[++i];
		else if (strcmp(a, "--json") == 0 && i + 1 < argc)
			bn_o.json = argv[++i];
		else if (strcmp(a, "--iters") == 0 && i + 1 < argc)
			bn_o.iters = atoi(argv[++i]);
		else if (strcmp(a, "--duration-ms") == 0 && i + 1 < argc)
			bn_o.dur_ms = atoi(argv[++i]);
		else if (strcmp(a, "--volumes") == 0 && i + 1 < argc)
			bn_o.volumes = atoi(argv[++i]);
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			bn_usage(stdout);
			return 0;
		} else {
			bn_usage(stderr);
			return 2;
		}
	}
	if (bn_o.backends == 0)
		bn_o.backends = 3;
	if (bn_o.iters <= 0)
		bn_o.iters = bn_o.quick ? 10 : 200;
	if (bn_o.dur_ms <= 0)
		bn_o.dur_ms = bn_o.quick ? 500 : 3000;
	if (bn_o.volumes <= 0)
		bn_o.volumes = bn_o.quick ? 500 : 10000;
	vf_log_set_level(bn_o.verbose ? VF_LOG_INFO : VF_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bn_machine_get(&mach);
	printf("vfbench: %s, %ld cores, %ld MB; %s; %s; %s\n", mach.cpu, mach.cores, mach.mem_mb,
	       mach.kernel, mach.etcd, mach.consul);
	printf("options: %s, %d samples, %d ms per throughput point, %d volumes\n",
	       bn_o.quick ? "quick" : "full", bn_o.iters, bn_o.dur_ms, bn_o.volumes);
	printf("  %-7s %-34s %12s %-8s %s\n", "backend", "figure", "value", "unit", "note");
	if (bn_o.backends & 1)
		bn_backend(VF_SRV_ETCD);
	if (bn_o.backends & 2)
		bn_backend(VF_SRV_CONSUL);
	printf("\n== targets ==\n");
	for (size_t i = 0; i < bn_nc; i++) {
		printf("  %-7s %-56s %10.3f (limit %g) %s\n", bn_c[i].be, bn_c[i].what, bn_c[i].v,
		       bn_c[i].limit, bn_c[i].ok ? "MET" : "MISSED");
		failed |= !bn_c[i].ok;
	}
	bn_json_write(bn_o.json, &mach);
	printf("results written to %s%s\n", bn_o.json,
	       failed ? " (some targets missed: see doc/performance.md)" : "");
	return 0;
}
