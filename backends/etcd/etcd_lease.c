/*
 * etcd leases: grant, keepalive, revoke, and ONE keep-alive thread per handle that
 * renews every automatic lease at TTL/3, retries failures until that lease's own
 * deadline, and reports a loss exactly once through the lease's callback.
 *
 * A keepalive is one POST /v3/lease/keepalive {"ID"} (a streaming RPC that ends
 * when the request body ends); an answer without TTL means the lease is gone.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd_int.h"

#define LEASE_RETRY_MS 250

int64_t etcd_lease_id(const struct vf_kv_lease *lease)
{
	return ((const struct etcd_lease *)lease)->id;
}

/* Wait on ek->cond (ek->mu held) until the monotonic time deadline_ms. */
static void lease_wait_until(struct etcd_kv *ek, int64_t deadline_ms)
{
	vf_cond_wait_until(&ek->cond, &ek->mu, deadline_ms);
}

/* One renewal of lease id; *ttl_r gets the TTL granted. */
static int lease_renew(struct etcd_kv *ek, int64_t id, long timeout_ms, int64_t *ttl_r,
                       struct vf_err *err)
{
	char what[80], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	*ttl_r = 0;
	snprintf(what, sizeof(what), "keepalive lease %" PRIx64, id);
	rc = etcd_build_lease_id(id, &body, &len, err);
	/* A renewal that lands twice is harmless: treat it as idempotent. */
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/lease/keepalive", body, len, 1, timeout_ms, &tree, what,
		              err);
	if (rc == VF_OK && (rc = etcd_parse_keepalive(tree, ttl_r, err)) != VF_OK)
		vf_err_prefix(err, "lease %" PRIx64, id);
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static struct etcd_lease *lease_find(struct etcd_kv *ek, struct etcd_lease *want, int64_t id)
{
	for (struct etcd_lease *l = ek->leases; l; l = l->next)
		if (l == want && l->id == id)
			return l;
	return NULL;
}

static void lease_unlink(struct etcd_kv *ek, struct etcd_lease *l)
{
	for (struct etcd_lease **p = &ek->leases; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			l->next = NULL;
			return;
		}
}

/* Called with ek->mu held; may drop it around the callback. */
static void lease_report_lost(struct etcd_kv *ek, struct etcd_lease *l, const char *why)
{
	if (l->is_lost)
		return;
	l->is_lost = 1;
	etcd_lock_giveback_drop(ek, l->base.id);
	vf_log(VF_LOG_WARN, "etcd: lease %s lost: %s", l->base.id, why);
	if (l->lost == NULL)
		return;
	l->busy = 1;
	pthread_mutex_unlock(&ek->mu);
	l->lost(&l->base, l->arg);
	pthread_mutex_lock(&ek->mu);
	l->busy = 0;
	if (l->revoked) /* revoked from inside its callback: already unlinked */
		free(l);
	pthread_cond_broadcast(&ek->cond);
}

static void *lease_thread(void *arg)
{
	struct etcd_kv *ek = arg;

	pthread_mutex_lock(&ek->mu);
	while (!ek->ka_stop) {
		int64_t now = vf_now_ms(), wake = now + 60000, ttl = 0, deadline;
		struct etcd_lease *due = NULL, *l;
		struct vf_err err = {0};
		long timeout;
		int64_t id;
		int rc;

		for (l = ek->leases; l; l = l->next) {
			if ((l->flags & VF_LEASE_MANUAL) || l->is_lost)
				continue;
			if (l->next_ms <= now) {
				due = l;
				break;
			}
			if (l->next_ms < wake)
				wake = l->next_ms;
		}
		if (due == NULL) {
			/* Waiter keys to give back, in the time no renewal needs. */
			int64_t slack = wake - now;

			if (slack > ek->timeout_ms)
				slack = ek->timeout_ms;
			if (slack >= 200 && etcd_lock_giveback_due(ek, now, (long)slack, &wake))
				continue;
			lease_wait_until(ek, wake);
			continue;
		}
		id = due->id;
		deadline = due->deadline_ms;
		if (now >= deadline) {
			lease_report_lost(ek, due, "not renewed before its TTL ran out");
			continue;
		}
		timeout = (long)(deadline - now);
		if (timeout > ek->timeout_ms)
			timeout = ek->timeout_ms;
		if (timeout < 200)
			timeout = 200;
		pthread_mutex_unlock(&ek->mu);
		rc = lease_renew(ek, id, timeout, &ttl, &err);
		pthread_mutex_lock(&ek->mu);
		if ((l = lease_find(ek, due, id)) == NULL || l->is_lost)
			continue; /* revoked meanwhile */
		if (rc == VF_OK) {
			if (l->retrying)
				vf_log(VF_LOG_INFO, "etcd: lease %s renewed again", l->base.id);
			l->retrying = 0;
			l->deadline_ms = now + ttl * 1000;
			l->next_ms = now + ttl * 1000 / 3;
			l->base.ttl_s = (int)ttl;
		} else if (rc == VF_ELEASE) {
			lease_report_lost(ek, l, "etcd says it is gone");
		} else {
			int64_t t = vf_now_ms();

			/* Warn once per outage, not at every retry. */
			vf_log(l->retrying ? VF_LOG_DEBUG : VF_LOG_WARN,
			       "etcd: lease %s: renewal failed, retrying until its TTL ends: %s",
			       l->base.id, err.msg);
			l->retrying = 1;
			if (t >= l->deadline_ms)
				lease_report_lost(ek, l, err.msg);
			else
				l->next_ms = t + LEASE_RETRY_MS;
		}
	}
	pthread_mutex_unlock(&ek->mu);
	return NULL;
}

int etcd_ka_kick_locked(struct etcd_kv *ek)
{
	if (!ek->ka_running && !ek->ka_stop) {
		if (pthread_create(&ek->ka_thread, NULL, lease_thread, ek) != 0)
			return VF_ENOMEM;
		ek->ka_running = 1;
	}
	pthread_cond_broadcast(&ek->cond);
	return VF_OK;
}

int etcd_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags, vf_kv_lease_lost_fn lost,
                     void *arg, struct vf_kv_lease **lease_r, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lease *l = NULL;
	char *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int64_t t0, id = 0;
	int ttl = 0, rc;

	*lease_r = NULL;
	if (ttl_s < ETCD_MIN_LEASE_TTL)
		return vf_err_set(err, VF_EINVAL,
		                  "lease grant: TTL %d s is below etcd's minimum of %d s", ttl_s,
		                  ETCD_MIN_LEASE_TTL);
	rc = etcd_build_lease_grant(ttl_s, &body, &len, err);
	t0 = vf_now_ms();
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/lease/grant", body, len, 0, 0, &tree, "lease grant", err);
	if (rc == VF_OK)
		rc = etcd_parse_lease_grant(tree, &id, &ttl, err);
	if (rc != VF_OK)
		goto out;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(l->base.id, sizeof(l->base.id), "%" PRIx64, id);
	l->base.ttl_s = ttl;
	l->id = id;
	l->flags = flags;
	l->lost = lost;
	l->arg = arg;
	l->deadline_ms = t0 + (int64_t)ttl * 1000;
	l->next_ms = t0 + (int64_t)ttl * 1000 / 3;
	pthread_mutex_lock(&ek->mu);
	if (!(flags & VF_LEASE_MANUAL) && etcd_ka_kick_locked(ek) != VF_OK) {
		pthread_mutex_unlock(&ek->mu);
		rc = vf_err_set(err, VF_ENOMEM, "lease grant: cannot start keep-alive thread");
		goto out;
	}
	l->next = ek->leases;
	ek->leases = l;
	pthread_cond_broadcast(&ek->cond);
	pthread_mutex_unlock(&ek->mu);
	*lease_r = &l->base;
	l = NULL;
out:
	if (l) { /* granted but unusable: give it back */
		char *b2 = NULL;
		yajl_val t2 = NULL;

		if (etcd_build_lease_id(id, &b2, &len, NULL) == VF_OK)
			etcd_rpc(ek, "/v3/lease/revoke", b2, len, 1, 0, &t2, "lease revoke", NULL);
		yajl_tree_free(t2);
		free(b2);
		free(l);
	}
	yajl_tree_free(tree);
	free(body);
	return rc;
}

int etcd_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lease *l = (struct etcd_lease *)lease;
	int64_t t0 = vf_now_ms(), ttl = 0;
	int rc;

	if (lease == NULL)
		return vf_err_set(err, VF_EINVAL, "lease keepalive: no lease");
	rc = lease_renew(ek, l->id, 0, &ttl, err);
	if (rc == VF_OK) {
		pthread_mutex_lock(&ek->mu);
		l->deadline_ms = t0 + ttl * 1000;
		l->next_ms = t0 + ttl * 1000 / 3;
		l->base.ttl_s = (int)ttl;
		pthread_mutex_unlock(&ek->mu);
	}
	return rc;
}

int etcd_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lease *l;
	char what[80], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	if (lease == NULL || *lease == NULL)
		return VF_OK;
	l = (struct etcd_lease *)*lease;
	*lease = NULL;
	snprintf(what, sizeof(what), "revoke lease %s", l->base.id);
	rc = etcd_build_lease_id(l->id, &body, &len, err);
	/* Revoking twice is harmless: idempotent, so failover may resend it. */
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/lease/revoke", body, len, 1, 0, &tree, what, err);
	if (rc == VF_ELEASE) /* expired already: what revoke wanted */
		rc = VF_OK;
	yajl_tree_free(tree);
	free(body);

	pthread_mutex_lock(&ek->mu);
	lease_unlink(ek, l);
	if (rc == VF_OK)
		etcd_lock_giveback_drop(ek, l->base.id);
	if (l->busy && ek->ka_running && pthread_equal(pthread_self(), ek->ka_thread))
		l->revoked = 1; /* from its own lost callback: the thread frees it */
	else {
		while (l->busy)
			pthread_cond_wait(&ek->cond, &ek->mu);
		free(l);
	}
	pthread_mutex_unlock(&ek->mu);
	return rc;
}

void etcd_lease_shutdown(struct etcd_kv *ek)
{
	pthread_mutex_lock(&ek->mu);
	ek->ka_stop = 1;
	pthread_cond_broadcast(&ek->cond);
	pthread_mutex_unlock(&ek->mu);
	if (ek->ka_running)
		pthread_join(ek->ka_thread, NULL);
	ek->ka_running = 0;
	while (ek->leases) {
		struct etcd_lease *l = ek->leases;

		ek->leases = l->next;
		free(l);
	}
}
