/*
 * etcd prefix watch: one thread per watch doing one long chunked POST /v3/watch,
 * parsing the line-delimited stream as it comes (chunks split anywhere).
 *
 * The thread always asks for an explicit start revision (last delivered + 1), so
 * a reconnect (stream end, in-band error, etcd restart) resumes without gap; an
 * event already delivered (mod_rev <= the revision we resumed after) is skipped,
 * so there is no duplicate either. A cancel with compact_revision means history
 * is gone: the callback gets VF_EV_RESYNC with the current store revision and
 * the watch continues after it. Reconnects back off from 100 ms to 2 s.
 *
 * Failover: a stream is never replayed on another member by the HTTP layer (it
 * would resend the old start revision after events were delivered, and glue the
 * dead stream's partial line to the new one): every reconnect is a new request
 * from last delivered + 1 with an empty line buffer. The member a stream failed
 * on is demoted (tried last); streams carry hasleader, so a member that loses its
 * leader cancels them (etcd checks every election timeout) and refuses new ones.
 * A message's events are all parsed before any is delivered, so a revision is
 * never cut; one that cannot be parsed gives RESYNC. A store whose head is behind
 * what was already delivered (reset or restored) gives RESYNC too, once a
 * linearizable read confirms it (a lagging member alone does not).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd_int.h"

#define WATCH_BACKOFF_MIN_MS 100
#define WATCH_BACKOFF_MAX_MS 2000

struct etcd_watch {
	struct etcd_kv *ek;
	char *prefix;
	char *key, *end;
	size_t klen, elen;
	vf_kv_watch_fn fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	volatile int cancel; /* watch_stop: also aborts the HTTP transfer */
	int done;            /* the callback asked to stop */
	int64_t last_rev;    /* last revision delivered */
	int64_t floor;       /* this stream resumed after floor: skip events <= floor */
	struct etcd_stream stream;
	int created, resync, failed, auth;
	int64_t behind; /* created at a header revision below floor: check for a reset */
	char reason[256 + 32];
	struct etcd_watch *next; /* in ek->watches */
};

static int watch_deliver(struct etcd_watch *w, const struct vf_kv_event *ev)
{
	if (w->fn(ev, w->arg) != 0) {
		w->done = 1;
		return 1;
	}
	return 0;
}

/* Deliver the events of one message: all parsed first, so that a revision is
 * never delivered in part (resuming after it would drop the rest). */
static int watch_events(struct etcd_watch *w, yajl_val events)
{
	size_t n = events ? events->u.array.len : 0, i, got = 0;
	struct vf_kv_event *evs = n ? calloc(n, sizeof(*evs)) : NULL;
	char **bufs = n ? calloc(2 * n, sizeof(char *)) : NULL;
	struct vf_err err = {0};
	int stop = 0;

	if (n && (evs == NULL || bufs == NULL)) {
		snprintf(w->reason, sizeof(w->reason), "out of memory");
		w->failed = 1;
		stop = 1;
		goto out;
	}
	for (got = 0; got < n; got++)
		if (etcd_parse_event(events->u.array.values[got], &evs[got], &bufs[2 * got],
		                     &bufs[2 * got + 1], &err) != VF_OK) {
			vf_log(VF_LOG_WARN,
			       "etcd: watch %s: an event after revision %" PRId64
			       " cannot be read (%s): delivering none of its message, resyncing",
			       w->prefix, w->last_rev, err.msg);
			w->resync = 1;
			stop = 1;
			goto out;
		}
	for (i = 0; i < n && !stop; i++) {
		if (evs[i].mod_rev <= w->floor) /* delivered before the reconnect */
			continue;
		stop = watch_deliver(w, &evs[i]);
		if (evs[i].mod_rev > w->last_rev)
			w->last_rev = evs[i].mod_rev;
	}
out:
	for (i = 0; bufs && i < 2 * got; i++)
		free(bufs[i]);
	free(bufs);
	free(evs);
	return stop;
}

static int watch_msg(yajl_val msg, void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_wmsg m;
	struct vf_err err = {0};

	if (etcd_parse_wmsg(msg, &m, &err) != VF_OK) {
		snprintf(w->reason, sizeof(w->reason), "%s", err.msg);
		w->failed = 1;
		return 1;
	}
	if (m.error || (m.canceled && m.compact_revision == 0)) {
		snprintf(w->reason, sizeof(w->reason), "%s",
		         m.reason ? m.reason : "watch cancelled by etcd");
		w->auth = m.reason && (strstr(m.reason, "auth") || strstr(m.reason, "user name") ||
		                       strstr(m.reason, "Unauthenticated"));
		w->failed = 1;
		return 1;
	}
	if (m.canceled) {
		vf_log(VF_LOG_WARN,
		       "etcd: watch %s: history compacted at revision %" PRId64 ", resyncing",
		       w->prefix, m.compact_revision);
		w->resync = 1;
		return 1;
	}
	if (m.created) {
		w->created = 1;
		/* The store's head is behind what we resumed after: reset, restored,
		 * or a lagging member. Checked outside the stream (watch_thread). */
		if (m.revision > 0 && m.revision < w->floor) {
			w->behind = m.revision;
			return 1;
		}
	}
	return watch_events(w, m.events);
}

static size_t watch_data(const char *p, size_t n, void *arg)
{
	struct etcd_watch *w = arg;
	struct vf_err err = {0};

	if (w->cancel || w->done || w->resync || w->failed || w->behind)
		return 0;
	if (etcd_stream_feed(&w->stream, p, n, watch_msg, w, &err) != VF_OK) {
		if (!w->failed && !w->resync && !w->done) {
			snprintf(w->reason, sizeof(w->reason), "%s", err.msg);
			w->failed = 1;
		}
		return 0;
	}
	return n;
}

/* Sleep ms unless watch_stop comes first. */
static void watch_sleep(struct etcd_watch *w, int ms)
{
	int64_t until = vf_now_ms() + ms;

	pthread_mutex_lock(&w->mu);
	while (!w->cancel && vf_now_ms() < until)
		if (vf_cond_wait_until(&w->cond, &w->mu, until) != 0)
			break;
	pthread_mutex_unlock(&w->mu);
}

/* History is gone: tell the callback the revision to re-list from. */
static int watch_resync(struct etcd_watch *w, struct vf_err *err)
{
	struct vf_kv_event ev = {0};
	int64_t rev;
	int rc = etcd_current_revision(w->ek, w->prefix[0] ? w->prefix : "\x01", &rev, err);

	if (rc != VF_OK)
		return rc;
	ev.type = VF_EV_RESYNC;
	ev.key = w->prefix;
	ev.value = "";
	ev.revision = rev;
	w->resync = 0;
	w->last_rev = rev;
	watch_deliver(w, &ev);
	return VF_OK;
}

/* A stream was created at header revision w->behind, below the revision we
 * resumed after. If a linearizable read agrees that the store is behind, it
 * was reset or restored: writes we would wait for were made at revisions we
 * skip, so the caller must re-list (RESYNC). Otherwise the member lags:
 * reconnect. Returns 1 when a resync is due. */
static int watch_behind(struct etcd_watch *w)
{
	struct vf_err err = {0};
	int64_t rev = 0;

	if (etcd_current_revision(w->ek, w->prefix[0] ? w->prefix : "\x01", &rev, &err) != VF_OK) {
		snprintf(w->reason, sizeof(w->reason),
		         "store revision %" PRId64 " is behind %" PRId64
		         " and cannot be checked: %.180s",
		         w->behind, w->floor, err.msg);
		w->failed = 1;
		return 0;
	}
	if (rev >= w->floor) {
		snprintf(w->reason, sizeof(w->reason),
		         "a member at revision %" PRId64 " lags behind %" PRId64, w->behind,
		         w->floor);
		w->failed = 1;
		return 0;
	}
	vf_log(VF_LOG_WARN,
	       "etcd: watch %s: the store is at revision %" PRId64 ", behind the %" PRId64
	       " already delivered (reset or restored): resyncing",
	       w->prefix, rev, w->floor);
	w->resync = 1;
	return 1;
}

static void *watch_thread(void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_kv *ek = w->ek;
	int backoff = WATCH_BACKOFF_MIN_MS;

	while (!w->cancel && !w->done) {
		struct vf_http_req req = {0};
		struct vf_http_resp resp;
		struct vf_err err = {0};
		unsigned long gen = 0;
		char *body = NULL;
		size_t len;
		int rc;

		if (w->resync) {
			rc = watch_resync(w, &err);
			if (rc != VF_OK) {
				vf_log(VF_LOG_WARN, "etcd: watch %s: %s", w->prefix, err.msg);
				watch_sleep(w, backoff);
				backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS
				                                             : backoff * 2;
			}
			continue;
		}
		w->floor = w->last_rev;
		w->created = w->failed = w->auth = 0;
		w->behind = 0;
		w->reason[0] = '\0';
		etcd_stream_free(&w->stream);
		rc = etcd_build_watch(w->key, w->klen, w->end, w->elen, w->last_rev + 1, &body,
		                      &len, &err);
		if (rc == VF_OK) {
			req.path = "/v3/watch";
			req.body = body;
			req.body_len = len;
			req.idempotent = 1;
			req.timeout_ms = -1;
			req.on_data = watch_data;
			req.arg = w;
			req.cancel = &w->cancel;
			rc = etcd_request(ek, &req, &resp, &gen, &err);
			if (rc == VF_OK && resp.status != 200 && !w->failed) {
				int reauth = 0;

				etcd_map_error(resp.status, w->stream.buf.data, w->stream.buf.len,
				               1, &reauth, "watch", &err);
				snprintf(w->reason, sizeof(w->reason), "%s", err.msg);
				w->auth = reauth;
				w->failed = 1;
			}
			vf_http_resp_free(&resp);
		}
		free(body);
		if (w->cancel || w->done)
			break;
		if (w->created)
			backoff = WATCH_BACKOFF_MIN_MS;
		if (w->auth && ek->username)
			etcd_auth_invalidate(ek, gen);
		if (w->behind && watch_behind(w))
			continue;
		if (w->resync)
			continue;
		/* Reconnect elsewhere first: this member's stream failed. */
		if (!w->auth && resp.endpoint >= 0)
			vf_http_demote(ek->http, resp.endpoint);
		if (w->failed)
			vf_log(VF_LOG_WARN, "etcd: watch %s: %s; resuming after revision %" PRId64,
			       w->prefix, w->reason, w->last_rev);
		else if (rc != VF_OK)
			vf_log(VF_LOG_WARN, "etcd: watch %s: %s; resuming after revision %" PRId64,
			       w->prefix, err.msg, w->last_rev);
		else
			vf_log(VF_LOG_INFO, "etcd: watch %s: stream ended; resuming after %" PRId64,
			       w->prefix, w->last_rev);
		watch_sleep(w, backoff);
		backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : backoff * 2;
	}
	etcd_stream_free(&w->stream);
	return NULL;
}

static void watch_free(struct etcd_watch *w)
{
	etcd_stream_free(&w->stream);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w->prefix);
	free(w->key);
	free(w->end);
	free(w);
}

int etcd_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev, vf_kv_watch_fn fn,
                     void *arg, struct vf_kv_watch **watch_r, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_watch *w;
	int rc;

	*watch_r = NULL;
	if (prefix == NULL || fn == NULL || after_rev < 0)
		return vf_err_set(err, VF_EINVAL, "watch: needs a prefix and a callback");
	if ((rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "watch", err)) != VF_OK)
		return rc;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	pthread_mutex_init(&w->mu, NULL);
	vf_cond_init(&w->cond);
	w->ek = ek;
	w->fn = fn;
	w->arg = arg;
	w->prefix = strdup(prefix);
	if (w->prefix == NULL ||
	    etcd_prefix_range(prefix, &w->key, &w->klen, &w->end, &w->elen) != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto fail;
	}
	/* "From now": pin now to a revision so nothing written after we return is lost. */
	w->last_rev = after_rev;
	if (after_rev == 0) {
		rc = etcd_current_revision(ek, prefix[0] ? prefix : "\x01", &w->last_rev, err);
		if (rc != VF_OK) {
			vf_err_prefix(err, "watch %s", prefix);
			goto fail;
		}
	}
	if (pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "watch %s: cannot start a thread", prefix);
		goto fail;
	}
	pthread_mutex_lock(&ek->mu);
	w->next = ek->watches;
	ek->watches = w;
	pthread_mutex_unlock(&ek->mu);
	*watch_r = (struct vf_kv_watch *)w;
	return VF_OK;
fail:
	watch_free(w);
	return rc;
}

static void watch_join(struct etcd_watch *w)
{
	pthread_mutex_lock(&w->mu);
	w->cancel = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	watch_free(w);
}

void etcd_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_watch *w;

	if (watch == NULL || *watch == NULL)
		return;
	w = (struct etcd_watch *)*watch;
	*watch = NULL;
	pthread_mutex_lock(&ek->mu);
	for (struct etcd_watch **p = &ek->watches; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	pthread_mutex_unlock(&ek->mu);
	watch_join(w);
}

void etcd_watch_shutdown(struct etcd_kv *ek)
{
	for (;;) {
		struct etcd_watch *w;

		pthread_mutex_lock(&ek->mu);
		w = ek->watches;
		if (w)
			ek->watches = w->next;
		pthread_mutex_unlock(&ek->mu);
		if (w == NULL)
			break;
		watch_join(w);
	}
}
