/* The Consul driver's watch: blocking listings diffed into events. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consul_int.h"

/* ---- watch ---- */

/* Wait up to ms, or until the watch is cancelled. Returns non-zero if cancelled. */
static int consul_watch_pause(struct consul_watch *w, int64_t ms)
{
	int64_t until = vf_now_ms() + ms;
	int cancelled;

	pthread_mutex_lock(&w->mu);
	if (!w->cancel)
		vf_cond_wait_until(&w->cv, &w->mu, until);
	cancelled = w->cancel;
	pthread_mutex_unlock(&w->mu);
	return cancelled;
}

/* A watch keeps only keys and indexes of its last listing: the diff needs no
 * more (DELETE events carry no value; PUTs take the new listing's). */
static void consul_list_drop_values(struct vf_kv_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->items[i].value);
		l->items[i].value = NULL;
		l->items[i].value_len = 0;
	}
}

static int consul_watch_emit(struct consul_watch *w, const struct vf_kv_list *old_l,
                             const struct vf_kv_list *new_l, size_t *nev_r)
{
	struct consul_event *ev = NULL;
	size_t n = 0;
	int stop = 0;

	*nev_r = 0;
	if (consul_list_diff(old_l, new_l, &ev, &n) != VF_OK)
		return 0;
	for (size_t i = 0; i < n && !stop && !w->cancel; i++) {
		struct vf_kv_event e = {.type = ev[i].type, .key = ev[i].pair->key};

		if (ev[i].type == VF_EV_PUT) {
			e.value = ev[i].pair->value;
			e.value_len = ev[i].pair->value_len;
			e.mod_rev = ev[i].pair->mod_rev;
			e.create_rev = ev[i].pair->create_rev;
			e.revision = ev[i].pair->mod_rev;
		} else {
			e.value = "";
			e.mod_rev = new_l->revision;
			e.revision = new_l->revision;
		}
		stop = w->fn(&e, w->arg);
	}
	free(ev);
	*nev_r = n;
	return stop;
}

/* The KV store's head index: X-Consul-Index of a read of a key that never
 * exists (a '.' segment: refused as a data key), which Consul answers with the
 * index of the KV table (writes and deletes). */
static int consul_kv_head(struct consul_kv *ck, int64_t *head_r, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	int rc;

	*head_r = 0;
	rc = consul_http(ck, "GET", "/v1/kv/.vfile/head", NULL, 0, 1, 0, NULL, &resp, err);
	if (rc == VF_OK && resp.status != 404 && resp.status != 200)
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
		                         "KV head index", err);
	else if (rc == VF_OK && resp.header == NULL)
		rc = vf_err_set(err, VF_EPROTO,
		                "endpoint answered HTTP %ld without X-Consul-Index: not Consul?",
		                resp.status);
	if (rc == VF_OK)
		*head_r = consul_index_parse(resp.header);
	vf_http_resp_free(&resp);
	return rc;
}

/*
 * The loop: blocking query on the prefix from the last index; diff the new
 * listing against the previous one (PUT for new or changed ModifyIndex, DELETE
 * for keys gone). Index rules from Consul's docs: index backwards → reset to 0
 * and RESYNC; never below 1; token bucket (burst 2, 1/s) against returns that
 * changed nothing. After an error: back off, then re-list and diff against the
 * last listing (no gap, no duplicate for the key state).
 */
static void *consul_watch_main(void *arg)
{
	struct consul_watch *w = arg;
	struct consul_kv *ck = w->ck;
	double tokens = 2;
	int64_t last_refill = vf_now_ms(), backoff = 0;
	int stop = 0, failing = 0;

	if (w->check_head > 0) {
		/* A head below after_rev is a restored or reset store (kv.h). If the
		 * head cannot be read, RESYNC too: re-listing is always safe. */
		struct vf_err e = {0};
		int64_t head = 0;
		int hrc = consul_kv_head(ck, &head, &e);

		if (hrc != VF_OK)
			vf_log(VF_LOG_INFO,
			       "consul: watch %s: resumed after index %" PRId64
			       " but the store's index cannot be read (%s): resync",
			       w->prefix, w->check_head, e.msg);
		else if (head < w->check_head)
			vf_log(VF_LOG_INFO,
			       "consul: watch %s: resumed after index %" PRId64
			       " but the store is at %" PRId64 " (reset or restored): resync",
			       w->prefix, w->check_head, head);
		if (hrc != VF_OK || head < w->check_head)
			w->resync_first = 1;
	}
	if (w->resync_first) {
		struct vf_kv_event e = {.type = VF_EV_RESYNC,
		                        .key = w->prefix,
		                        .value = "",
		                        .revision = w->last.revision};
		stop = w->fn(&e, w->arg);
	}
	while (!stop && !w->cancel) {
		struct vf_kv_list nl;
		struct vf_err e = {0};
		size_t nev = 0;
		int reset, rc;

		rc = consul_list_ex(ck, w->prefix, w->index, (long)ck->watch_wait_s * 1000,
		                    &w->cancel, &w->last, CONSUL_VALUES_CHANGED, &nl, &e);
		if (w->cancel) {
			vf_kv_list_clear(&nl);
			break;
		}
		if (rc != VF_OK) {
			if (!failing)
				vf_log(VF_LOG_WARN, "consul: watch %s: %s; retrying", w->prefix,
				       e.msg);
			failing = 1;
			backoff = backoff ? backoff * 2 : 200;
			if (backoff > 5000)
				backoff = 5000;
			w->index = 0; /* re-list at once when back */
			if (consul_watch_pause(w, backoff))
				break;
			continue;
		}
		if (failing)
			vf_log(VF_LOG_INFO, "consul: watch %s: store reachable again", w->prefix);
		failing = 0;
		backoff = 0;
		/* The docs' reset rule compares with the index asked with; after a
		 * re-list (index 0) compare with the last listing instead. */
		consul_next_index(w->last.revision, nl.revision, &reset);
		if (reset) {
			struct vf_kv_event re = {.type = VF_EV_RESYNC,
			                         .key = w->prefix,
			                         .value = "",
			                         .revision = nl.revision};

			vf_log(VF_LOG_INFO,
			       "consul: watch %s: index went back from %" PRId64 " to %" PRId64
			       ": resync",
			       w->prefix, w->last.revision, nl.revision);
			vf_kv_list_clear(&w->last);
			consul_list_drop_values(&nl);
			w->last = nl;
			w->index = 0;
			stop = w->fn(&re, w->arg);
			continue;
		}
		stop = consul_watch_emit(w, &w->last, &nl, &nev);
		vf_kv_list_clear(&w->last);
		consul_list_drop_values(&nl);
		w->last = nl;
		w->index = nl.revision < 1 ? 1 : nl.revision;
		if (nev == 0 && !stop) {
			int64_t now = vf_now_ms();

			tokens += (double)(now - last_refill) / 1000.0;
			last_refill = now;
			if (tokens > 2)
				tokens = 2;
			if (tokens < 1 && consul_watch_pause(w, (int64_t)((1 - tokens) * 1000)))
				break;
			if (tokens < 1) {
				tokens = 1;
				last_refill = vf_now_ms();
			}
			tokens -= 1;
		}
	}
	return NULL;
}

int consul_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev, vf_kv_watch_fn fn,
                       void *arg, struct vf_kv_watch **watch_r, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_watch *w;
	int rc;

	*watch_r = NULL;
	if (fn == NULL)
		return vf_err_set(err, VF_EINVAL, "watch: a callback is required");
	rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "watch", err);
	if (rc != VF_OK)
		return rc;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->prefix = strdup(prefix)) == NULL) {
		free(w);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	w->ck = ck;
	w->fn = fn;
	w->arg = arg;
	pthread_mutex_init(&w->mu, NULL);
	vf_cond_init(&w->cv);
	/* The baseline listing: events are what changes after it. Consul has no
	 * history: if the prefix already moved past after_rev, the caller re-lists. */
	rc = consul_list_ex(ck, prefix, 0, 0, NULL, NULL, CONSUL_VALUES_NONE, &w->last, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "watch %s", prefix);
		goto fail;
	}
	w->index = w->last.revision < 1 ? 1 : w->last.revision;
	w->resync_first = after_rev > 0 && w->last.revision > after_rev;
	/* The prefix's index may lag the store's; the KV head may not: the watch
	 * thread reads it first (off the caller's path), see consul_watch_main. */
	w->check_head = after_rev > 0 && w->last.revision < after_rev ? after_rev : 0;
	if (pthread_create(&w->thread, NULL, consul_watch_main, w) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "watch %s: cannot start a thread", prefix);
		goto fail;
	}
	*watch_r = (struct vf_kv_watch *)w;
	return VF_OK;
fail:
	vf_kv_list_clear(&w->last);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->prefix);
	free(w);
	return rc;
}

void consul_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	struct consul_watch *w = (struct consul_watch *)*watch;

	if (w == NULL)
		return;
	*watch = NULL;
	pthread_mutex_lock(&w->mu);
	w->cancel = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	vf_kv_list_clear(&w->last);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->prefix);
	free(w);
}
