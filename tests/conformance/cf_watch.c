/* Conformance (conformance.h): watch_start, watch_stop, compact: order, stop, RESYNC after
 * compaction, a cut stream and a restarted store resumed without gap, a start past the head. */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- 7/8. watches ---- */
void cf_watch_init(struct cf_watch *w, const char *prefix)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->prefix = prefix;
}

void cf_watch_fini(struct cf_watch *w)
{
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

void cf_mirror_set(struct cf_watch *w, const char *key, const char *val)
{
	int i;

	for (i = 0; i < w->mn; i++)
		if (strcmp(w->mkey[i], key) == 0)
			break;
	if (val == NULL) {
		if (i < w->mn) {
			w->mn--;
			memmove(w->mkey[i], w->mkey[i + 1],
			        sizeof(w->mkey[0]) * (size_t)(w->mn - i));
			memmove(w->mval[i], w->mval[i + 1],
			        sizeof(w->mval[0]) * (size_t)(w->mn - i));
		}
		return;
	}
	if (i == w->mn) {
		if (w->mn == CF_MAX_MIRROR) {
			w->overflow++;
			return;
		}
		w->mn++;
		snprintf(w->mkey[i], sizeof(w->mkey[i]), "%s", key);
	}
	snprintf(w->mval[i], sizeof(w->mval[i]), "%s", val);
}

/* Replace the mirror with a fresh listing (caller holds w->mu or is single). */
int cf_mirror_relist(struct cf_watch *w, int64_t *rev_r)
{
	struct vf_kv_list l = {0};
	struct vf_err err = {0};
	int rc = cf_ops->list(cf_kv, w->prefix, &l, &err);

	if (rc != VF_OK)
		return rc;
	w->mn = 0;
	for (size_t i = 0; i < l.count; i++)
		cf_mirror_set(w, l.items[i].key, l.items[i].value);
	if (rev_r)
		*rev_r = l.revision;
	vf_kv_list_clear(&l);
	return VF_OK;
}

int cf_watch_cb(const struct vf_kv_event *ev, void *arg)
{
	struct cf_watch *w = arg;

	pthread_mutex_lock(&w->mu);
	if (w->n < CF_MAX_EV) {
		struct cf_ev *e = &w->ev[w->n++];

		e->type = ev->type;
		snprintf(e->key, sizeof(e->key), "%s", ev->key ? ev->key : "");
		e->len = ev->value_len;
		snprintf(e->val, sizeof(e->val), "%.*s",
		         (int)(ev->value_len < 63 ? ev->value_len : 63),
		         ev->value ? ev->value : "");
		e->mod_rev = ev->type == VF_EV_RESYNC ? ev->revision : ev->mod_rev;
	} else {
		w->overflow++;
	}
	if (ev->type == VF_EV_PUT) {
		char val[64];

		snprintf(val, sizeof(val), "%.*s", (int)(ev->value_len < 63 ? ev->value_len : 63),
		         ev->value ? ev->value : "");
		cf_mirror_set(w, ev->key, val);
	} else if (ev->type == VF_EV_DELETE) {
		cf_mirror_set(w, ev->key, NULL);
	} else if (ev->type == VF_EV_RESYNC) {
		w->resyncs++;
		if (cf_mirror_relist(w, NULL) != VF_OK)
			w->list_errors++;
	}
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* Wait until pred holds on the collected events, within ms. Returns 1 if it did. */
int cf_watch_wait(struct cf_watch *w, int (*pred)(struct cf_watch *, const void *), const void *arg,
                  int ms)
{
	int64_t deadline = vf_test_now_ms() + (int64_t)ms * cf_slow;
	int ok;

	pthread_mutex_lock(&w->mu);
	while (!(ok = pred(w, arg))) {
		struct timespec ts;
		int64_t left = deadline - vf_test_now_ms();

		if (left <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}

int cf_pred_count(struct cf_watch *w, const void *arg)
{
	return w->n >= *(const int *)arg;
}

/* The PUT of key with value has been seen (by event or by a RESYNC re-list). */
int cf_pred_mirror_has(struct cf_watch *w, const void *arg)
{
	const char *const *kv = arg;

	for (int i = 0; i < w->mn; i++)
		if (strcmp(w->mkey[i], kv[0]) == 0 && strcmp(w->mval[i], kv[1]) == 0)
			return 1;
	return 0;
}

void cf_check_seq(struct cf_watch *w, int from, const struct cf_want *want, int n, const char *what)
{
	int bad = 0;

	pthread_mutex_lock(&w->mu);
	if (w->n - from != n) {
		fprintf(stderr, "\n%s: %d events, want %d\n", what, w->n - from, n);
		bad = 1;
	}
	for (int i = 0; i < n && from + i < w->n; i++) {
		const struct cf_ev *e = &w->ev[from + i];

		if (e->type != want[i].type || strcmp(e->key, want[i].key) != 0 ||
		    (want[i].type == VF_EV_PUT && strcmp(e->val, want[i].val) != 0) ||
		    (from + i > 0 && e->mod_rev <= w->ev[from + i - 1].mod_rev)) {
			fprintf(stderr, "\n%s: event %d is %d %s=%s @%" PRId64 ", want %d %s=%s\n",
			        what, i, e->type, e->key, e->val, e->mod_rev, want[i].type,
			        want[i].key, want[i].val ? want[i].val : "");
			bad = 1;
		}
	}
	pthread_mutex_unlock(&w->mu);
	CU_ASSERT_EQUAL(bad, 0);
}

/* The mirror built from events equals a fresh listing. */
void cf_check_mirror(struct cf_watch *w, const char *what)
{
	struct cf_watch fresh;
	int bad = 0;

	cf_watch_init(&fresh, w->prefix);
	CU_ASSERT_EQUAL_FATAL(cf_mirror_relist(&fresh, NULL), VF_OK);
	pthread_mutex_lock(&w->mu);
	if (fresh.mn != w->mn)
		bad = 1;
	/* Same set of key=value pairs (the watched view is in event order). */
	for (int i = 0; !bad && i < fresh.mn; i++) {
		int found = 0;

		for (int j = 0; j < w->mn; j++)
			if (strcmp(fresh.mkey[i], w->mkey[j]) == 0 &&
			    strcmp(fresh.mval[i], w->mval[j]) == 0)
				found = 1;
		if (!found)
			bad = 1;
	}
	if (bad) {
		fprintf(stderr, "\n%s: watched view (%d keys) differs from the store (%d keys)\n",
		        what, w->mn, fresh.mn);
		for (int i = 0; i < w->mn; i++)
			fprintf(stderr, "  watched %s=%s\n", w->mkey[i], w->mval[i]);
		for (int i = 0; i < fresh.mn; i++)
			fprintf(stderr, "  store   %s=%s\n", fresh.mkey[i], fresh.mval[i]);
	}
	pthread_mutex_unlock(&w->mu);
	cf_watch_fini(&fresh);
	CU_ASSERT_EQUAL(bad, 0);
}

/* Write, then wait for the event (works for history and diff-based watches). */
void cf_step(struct cf_watch *w, const char *key, const char *val, int64_t *rev_r)
{
	struct vf_err err = {0};
	int want;

	pthread_mutex_lock(&w->mu);
	want = w->n + 1;
	pthread_mutex_unlock(&w->mu);
	if (val)
		CF_OK(cf_ops->put(cf_kv, key, val, strlen(val), NULL, rev_r, &err));
	else
		CF_OK(cf_ops->del(cf_kv, key, &err));
	CU_ASSERT(cf_watch_wait(w, cf_pred_count, &want, 15000));
}

static void test_watch_order(void)
{
	struct vf_err err = {0};
	struct cf_watch w, h;
	struct vf_kv_watch *wh = NULL, *hh = NULL;
	char base[128], a[256], b[256], c[256], d[256], outside[256];
	int64_t r0 = 0, ra1 = 0, ra2 = 0, rb = 0;
	int history = (cf_ops->caps & VF_KV_CAP_WATCH_HISTORY) != 0;

	cf_case("watch_order", 90);
	cf_key(base, sizeof(base), "watch", "");
	cf_key(a, sizeof(a), "watch", "a");
	cf_key(b, sizeof(b), "watch", "b");
	cf_key(c, sizeof(c), "watch", "c");
	cf_key(d, sizeof(d), "watch", "d");
	snprintf(outside, sizeof(outside), "%swatchX", cf_prefix);
	cf_watch_init(&w, base);
	CF_OK_FATAL(cf_ops->put(cf_kv, cf_key(c, sizeof(c), "watch", "seed"), "s", 1, NULL, NULL,
	                        &err));
	cf_key(c, sizeof(c), "watch", "c");
	CF_OK_FATAL(cf_mirror_relist(&w, &r0));
	CU_ASSERT(r0 > 0);
	CF_OK_FATAL(cf_ops->watch_start(cf_kv, base, r0, cf_watch_cb, &w, &wh, &err));

	/* Step by step: each write's event, with its version. */
	cf_step(&w, a, "1", &ra1);
	CF_OK(cf_ops->put(cf_kv, outside, "no", 2, NULL, NULL, &err)); /* not under base */
	cf_step(&w, a, "2", &ra2);
	cf_step(&w, a, NULL, NULL);
	cf_step(&w, b, "x", &rb);
	{
		const struct cf_want want[] = {{VF_EV_PUT, a, "1"},
		                               {VF_EV_PUT, a, "2"},
		                               {VF_EV_DELETE, a, NULL},
		                               {VF_EV_PUT, b, "x"}};

		cf_check_seq(&w, 0, want, 4, "watch steps");
		pthread_mutex_lock(&w.mu);
		if (w.n >= 4) {
			CU_ASSERT_EQUAL(w.ev[0].mod_rev, ra1);
			CU_ASSERT_EQUAL(w.ev[1].mod_rev, ra2);
			CU_ASSERT(w.ev[2].mod_rev > ra2 && w.ev[2].mod_rev < rb);
			CU_ASSERT_EQUAL(w.ev[3].mod_rev, rb);
			CU_ASSERT_EQUAL(w.ev[3].len, 1);
		}
		pthread_mutex_unlock(&w.mu);
	}
	if (history) {
		/* A burst without waiting: every version, in order. */
		const struct cf_want all[] = {{VF_EV_PUT, a, "1"},     {VF_EV_PUT, a, "2"},
		                              {VF_EV_DELETE, a, NULL}, {VF_EV_PUT, b, "x"},
		                              {VF_EV_PUT, c, "1"},     {VF_EV_PUT, c, "2"},
		                              {VF_EV_DELETE, c, NULL}, {VF_EV_PUT, d, "y"}};
		int eight = 8;

		CF_OK(cf_ops->put(cf_kv, c, "1", 1, NULL, NULL, &err));
		CF_OK(cf_ops->put(cf_kv, c, "2", 1, NULL, NULL, &err));
		CF_OK(cf_ops->del(cf_kv, c, &err));
		CF_OK(cf_ops->put(cf_kv, d, "y", 1, NULL, NULL, &err));
		CU_ASSERT(cf_watch_wait(&w, cf_pred_count, &eight, 15000));
		cf_check_seq(&w, 0, all, 8, "watch burst");
		/* A watch from the old revision replays the same history. */
		cf_watch_init(&h, base);
		CF_OK(cf_ops->watch_start(cf_kv, base, r0, cf_watch_cb, &h, &hh, &err));
		CU_ASSERT(cf_watch_wait(&h, cf_pred_count, &eight, 15000));
		cf_check_seq(&h, 0, all, 8, "watch replay from old revision");
		if (hh)
			cf_ops->watch_stop(cf_kv, &hh);
		CU_ASSERT_PTR_NULL(hh);
		cf_watch_fini(&h);
		pthread_mutex_lock(&w.mu);
		CU_ASSERT_EQUAL(w.resyncs, 0);
		pthread_mutex_unlock(&w.mu);
	} else {
		cf_note("no VF_KV_CAP_WATCH_HISTORY: burst and replay not checked");
	}
	cf_check_mirror(&w, "watch view");
	cf_ops->watch_stop(cf_kv, &wh);
	CU_ASSERT_PTR_NULL(wh);
	/* Stopped: no more events. A second watch on the same prefix, started after
	 * the stop, sees the next write: by then the stopped watch would have had it
	 * too, had it not stopped (an event after watch_stop returned is a use of
	 * freed caller memory in real code). */
	{
		const char *want[2] = {a, "after-stop"};
		int n0;

		pthread_mutex_lock(&w.mu);
		n0 = w.n;
		pthread_mutex_unlock(&w.mu);
		cf_watch_init(&h, base);
		CF_OK_FATAL(cf_ops->watch_start(cf_kv, base, 0, cf_watch_cb, &h, &hh, &err));
		CF_OK(cf_ops->put(cf_kv, a, "after-stop", 10, NULL, NULL, &err));
		CU_ASSERT(cf_watch_wait(&h, cf_pred_mirror_has, want, 15000));
		cf_ops->watch_stop(cf_kv, &hh);
		cf_watch_fini(&h);
		pthread_mutex_lock(&w.mu);
		if (w.n != n0)
			fprintf(stderr, "\nstopped watch: %d events after watch_stop returned\n",
			        w.n - n0);
		CU_ASSERT_EQUAL(w.n, n0);
		pthread_mutex_unlock(&w.mu);
	}
	cf_watch_fini(&w);
}

/* The watch's stream is cut by a proxy while the server stays up and takes writes. */
static void test_watch_cut(void)
{
	struct vf_err err = {0};
	struct cf_watch w;
	struct vf_kv_watch *wh = NULL;
	struct vf_kv *pkv = NULL;
	struct vf_proxy *px = NULL;
	char base[128], k1[256], k2[256], end[256], why[512], cfg[256];
	const char *endkv[2];
	int64_t r0 = 0, t0;
	int n_before, history = (cf_ops->caps & VF_KV_CAP_WATCH_HISTORY) != 0;
	int accepted0;

	cf_case("watch_cut", 120);
	if (vf_proxy_start(cf_srv->m[0].client_port, &px, why, sizeof(why)) != 0) {
		fprintf(stderr, "\nproxy: %s\n", why);
		CU_FAIL_FATAL("proxy");
	}
	snprintf(cfg, sizeof(cfg), "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         vf_proxy_port(px), cf_timeout_ms);
	CF_OK_FATAL(cf_open(cfg, &pkv, &err));
	cf_key(base, sizeof(base), "cut", "");
	cf_key(k1, sizeof(k1), "cut", "k1");
	cf_key(k2, sizeof(k2), "cut", "k2");
	cf_key(end, sizeof(end), "cut", "end");
	endkv[0] = end;
	endkv[1] = "done";
	cf_watch_init(&w, base);
	CF_OK_FATAL(cf_mirror_relist(&w, &r0));
	/* The watch goes through the proxy; the writes go straight to the server. */
	CF_OK_FATAL(pkv->ops->watch_start(pkv, base, r0, cf_watch_cb, &w, &wh, &err));
	cf_step(&w, k1, "before", NULL);
	pthread_mutex_lock(&w.mu);
	n_before = w.n;
	pthread_mutex_unlock(&w.mu);

	accepted0 = vf_proxy_accepted(px);
	t0 = vf_test_now_ms();
	vf_proxy_cut(px);
	CF_OK(cf_ops->put(cf_kv, k2, "a", 1, NULL, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k2, "b", 1, NULL, NULL, &err));
	CF_OK(cf_ops->del(cf_kv, k2, &err));
	CF_OK(cf_ops->put(cf_kv, k1, "after", 5, NULL, NULL, &err));
	/* The watcher notices and tries again while the cut lasts (refused). */
	{
		int64_t deadline = vf_test_now_ms() + 15000 * cf_slow;

		while (vf_proxy_accepted(px) == accepted0 && vf_test_now_ms() < deadline)
			vf_test_sleep_ms(20);
		CU_ASSERT(vf_proxy_accepted(px) > accepted0);
	}
	pthread_mutex_lock(&w.mu);
	CU_ASSERT_EQUAL(w.n, n_before); /* nothing can come through the cut */
	pthread_mutex_unlock(&w.mu);
	cf_note("watch retried %" PRId64 " ms into the cut", vf_test_now_ms() - t0);
	vf_proxy_restore(px);
	CF_OK(cf_ops->put(cf_kv, end, "done", 4, NULL, NULL, &err));
	CU_ASSERT(cf_watch_wait(&w, cf_pred_mirror_has, endkv, 30000));
	cf_note("resumed %" PRId64 " ms after the cut", vf_test_now_ms() - t0);
	if (history) {
		const struct cf_want want[] = {{VF_EV_PUT, k2, "a"},
		                               {VF_EV_PUT, k2, "b"},
		                               {VF_EV_DELETE, k2, NULL},
		                               {VF_EV_PUT, k1, "after"},
		                               {VF_EV_PUT, end, "done"}};

		cf_check_seq(&w, n_before, want, 5, "watch resumed after a cut stream");
		CU_ASSERT_EQUAL(w.resyncs, 0);
	} else {
		cf_note("no history: %d RESYNC, view checked against the store", w.resyncs);
	}
	CU_ASSERT_EQUAL(w.list_errors, 0);
	cf_check_mirror(&w, "watch view after a cut stream");
	pkv->ops->watch_stop(pkv, &wh);
	pkv->ops->close(pkv);
	vf_proxy_stop(&px);
	cf_watch_fini(&w);
}

static void test_watch_resume(void)
{
	struct vf_err err = {0};
	struct cf_watch w;
	struct vf_kv_watch *wh = NULL;
	char base[128], k1[256], k2[256], end[256], why[512];
	const char *endkv[2];
	int64_t r0 = 0, t0;
	int n_before, history = (cf_ops->caps & VF_KV_CAP_WATCH_HISTORY) != 0;

	cf_case("watch_resume", 120);
	cf_key(base, sizeof(base), "resume", "");
	cf_key(k1, sizeof(k1), "resume", "k1");
	cf_key(k2, sizeof(k2), "resume", "k2");
	cf_key(end, sizeof(end), "resume", "end");
	endkv[0] = end;
	endkv[1] = "done";
	cf_watch_init(&w, base);
	CF_OK_FATAL(cf_mirror_relist(&w, &r0));
	CF_OK_FATAL(cf_ops->watch_start(cf_kv, base, r0, cf_watch_cb, &w, &wh, &err));
	cf_step(&w, k1, "before", NULL);

	/* Cut every stream: restart the server (same ports, same data). */
	t0 = vf_test_now_ms();
	if (vf_srv_restart(cf_srv, why, sizeof(why)) != 0) {
		fprintf(stderr, "\nrestart: %s\n", why);
		CU_FAIL_FATAL("server restart");
	}
	cf_note("server restarted in %" PRId64 " ms", vf_test_now_ms() - t0);
	pthread_mutex_lock(&w.mu);
	n_before = w.n;
	pthread_mutex_unlock(&w.mu);
	/* Written while the watch is (probably) still reconnecting. */
	CF_OK(cf_ops->put(cf_kv, k2, "a", 1, NULL, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k2, "b", 1, NULL, NULL, &err));
	CF_OK(cf_ops->del(cf_kv, k2, &err));
	CF_OK(cf_ops->put(cf_kv, k1, "after", 5, NULL, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, end, "done", 4, NULL, NULL, &err));
	CU_ASSERT(cf_watch_wait(&w, cf_pred_mirror_has, endkv, 30000));
	cf_note("resumed %" PRId64 " ms after the restart began", vf_test_now_ms() - t0);
	if (history) {
		const struct cf_want want[] = {{VF_EV_PUT, k2, "a"},
		                               {VF_EV_PUT, k2, "b"},
		                               {VF_EV_DELETE, k2, NULL},
		                               {VF_EV_PUT, k1, "after"},
		                               {VF_EV_PUT, end, "done"}};

		cf_check_seq(&w, n_before, want, 5, "watch resumed after restart");
		CU_ASSERT_EQUAL(w.resyncs, 0);
	} else {
		cf_note("no history: %d RESYNC, view checked against the store", w.resyncs);
	}
	CU_ASSERT_EQUAL(w.list_errors, 0);
	cf_check_mirror(&w, "watch view after restart");
	cf_ops->watch_stop(cf_kv, &wh);
	cf_watch_fini(&w);
}

int cf_pred_resync(struct cf_watch *w, const void *arg)
{
	(void)arg;
	return w->resyncs > 0;
}

static void test_watch_compact(void)
{
	struct vf_err err = {0};
	struct cf_watch w;
	struct vf_kv_watch *wh = NULL;
	char base[128], x[256];
	int64_t r1 = 0, r2 = 0, r3 = 0;

	cf_case("watch_compact", 60);
	cf_key(base, sizeof(base), "compact", "");
	cf_key(x, sizeof(x), "compact", "x");
	CF_OK_FATAL(cf_ops->put(cf_kv, x, "1", 1, NULL, &r1, &err));
	CF_OK_FATAL(cf_ops->put(cf_kv, x, "2", 1, NULL, &r2, &err));
	CF_OK_FATAL(cf_ops->put(cf_kv, x, "3", 1, NULL, &r3, &err));
	CF_OK_FATAL(cf_ops->compact(cf_kv, r3, &err));
	/* A watcher that stopped at r1 comes back after the compaction: RESYNC. */
	cf_watch_init(&w, base);
	CF_OK_FATAL(cf_ops->watch_start(cf_kv, base, r1, cf_watch_cb, &w, &wh, &err));
	CU_ASSERT(cf_watch_wait(&w, cf_pred_resync, NULL, 15000));
	pthread_mutex_lock(&w.mu);
	CU_ASSERT(w.n >= 1);
	if (w.n >= 1) {
		CU_ASSERT_EQUAL(w.ev[0].type, VF_EV_RESYNC);
		CU_ASSERT(w.ev[0].mod_rev >= r3);
	}
	CU_ASSERT_EQUAL(w.resyncs, 1);
	pthread_mutex_unlock(&w.mu);
	/* After the RESYNC, events continue. */
	cf_step(&w, x, "4", NULL);
	{
		const char *want[2] = {x, "4"};

		CU_ASSERT(cf_watch_wait(&w, cf_pred_mirror_has, want, 100));
		pthread_mutex_lock(&w.mu);
		CU_ASSERT_EQUAL(w.ev[w.n - 1].type, VF_EV_PUT);
		CU_ASSERT_STRING_EQUAL(w.ev[w.n - 1].val, "4");
		pthread_mutex_unlock(&w.mu);
	}
	cf_check_mirror(&w, "view after compaction resync");
	cf_ops->watch_stop(cf_kv, &wh);
	cf_watch_fini(&w);
}

static void test_watch_past_head(void)
{
	struct vf_err err = {0};
	struct cf_watch w;
	struct vf_kv_watch *wh = NULL;
	char base[128], x[256];
	int64_t r = 0;

	cf_case("watch_past_head", 60);
	cf_key(base, sizeof(base), "pasthead", "");
	cf_key(x, sizeof(x), "pasthead", "x");
	CF_OK_FATAL(cf_ops->put(cf_kv, x, "1", 1, NULL, &r, &err));
	cf_watch_init(&w, base);
	CF_OK_FATAL(cf_ops->watch_start(cf_kv, base, r + 1000000, cf_watch_cb, &w, &wh, &err));
	CU_ASSERT(cf_watch_wait(&w, cf_pred_resync, NULL, 15000));
	pthread_mutex_lock(&w.mu);
	CU_ASSERT(w.n >= 1 && w.ev[0].type == VF_EV_RESYNC);
	pthread_mutex_unlock(&w.mu);
	cf_step(&w, x, "2", NULL);
	{
		const char *want[2] = {x, "2"};

		CU_ASSERT(cf_watch_wait(&w, cf_pred_mirror_has, want, 15000));
	}
	cf_ops->watch_stop(cf_kv, &wh);
	cf_watch_fini(&w);
}

/* kv.h: while the store cannot be reached, a lease's loss is reported at the
 * local deadline (last confirmed renewal + TTL), and lease_revoke() waits for
 * a lost callback running on another thread (it must not free the lease under
 * it: the callback below reads the lease after revoke was called). */

void cf_register_watch(CU_pSuite s)
{
	CF_ADD(s, test_watch_order, CF_NEEDS(del));
	CF_ADD(s, test_watch_compact,
	       (cf_ops->caps & VF_KV_CAP_COMPACT) ? CF_NEEDS(compact)
	                                          : "no VF_KV_CAP_COMPACT: nothing to compact");
	CF_ADD(s, test_watch_cut, CF_EITHER(cf_no_server(), CF_NEEDS(del)));
	CF_ADD(s, test_watch_resume, CF_EITHER(cf_no_server(), CF_NEEDS(del)));
	CF_ADD(s, test_watch_past_head, NULL);
}
